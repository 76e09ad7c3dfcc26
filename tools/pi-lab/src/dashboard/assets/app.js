// pi-lab dashboard: draws the lab from /api/topology, then follows
// /events (server-sent events) and updates nodes, links and flows in place.
// No libraries, nothing loaded from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NODE_R = 16;
const TIER_GAP = 170;
const SEGMENT_COLORS = ["#7b4fd0", "#0f9a8f", "#d0561b", "#c2378f", "#5a8f1b", "#1b6fd0"];

let topology = null;
let live = null;
let selected = null;
let detailsAsked = 0;
const nodeEls = new Map();
const linkEls = new Map();

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function text(node, value) {
  node.textContent = value;
  return node;
}

function rate(bps) {
  if (bps === null || bps === undefined) return "–";
  const units = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [n, u] of units) if (bps >= n) return (bps / n).toFixed(bps >= 10 * n ? 0 : 1) + u;
  return bps.toFixed(0);
}

function ago(unix) {
  if (!unix) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  return duration(s) + " ago";
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  if (m) return `${m}m${s % 60}s`;
  return `${s}s`;
}

// Utilisation on a log scale: 0.01 % is thin and grey, 100 % thick and red.
function load(util) {
  if (util === null || util === undefined) return 0;
  return Math.max(0, Math.min(1, Math.log10(Math.max(util, 1e-6) * 1e4) / 4));
}

function loadColor(t) {
  if (t <= 0) return "#9aa1a8";
  const hue = 210 - 210 * t; // blue to red
  return `hsl(${hue.toFixed(0)}, 70%, ${(48 - 8 * t).toFixed(0)}%)`;
}

// ---- drawing the topology (once) ----------------------------------------

// Layers top to bottom as the server lists them (those of `lab graph`),
// each spread over the width; the segments below, one box each, joined to
// their VTEPs (leaves) as `lab graph` draws them.
function layout(t) {
  const widest = Math.max(1, t.segments.length, ...t.tiers.map((tier) => tier.length));
  const width = Math.max(760, widest * 120);
  const pos = new Map();
  let y = 60;
  for (const tier of t.tiers) {
    tier.forEach((name, j) => pos.set(name, { x: ((j + 0.5) * width) / tier.length, y }));
    y += TIER_GAP;
  }
  const segments = new Map();
  t.segments.forEach((s, k) => segments.set(s.name, { x: ((k + 0.5) * width) / t.segments.length, y: y - 40 }));
  return { width, height: (t.segments.length ? y - 40 : y - TIER_GAP) + 50, pos, segments };
}

function draw(t) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  nodeEls.clear();
  linkEls.clear();
  const { width, height, pos, segments: at } = layout(t);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const segments = el("g", { class: "segments" }, svg);
  const links = el("g", { class: "links" }, svg);
  const nodes = el("g", { class: "nodes" }, svg);

  t.segments.forEach((s, k) => drawSegment(segments, s, k, pos, at.get(s.name)));

  // Links between the same two nodes are drawn side by side.
  const pairs = new Map();
  for (const l of t.links) {
    const key = [l.a.node, l.b.node].sort().join("|");
    pairs.set(key, (pairs.get(key) || []).concat([l]));
  }
  for (const group of pairs.values()) {
    group.forEach((l, i) => drawLink(links, l, pos, (i - (group.length - 1) / 2) * 10));
  }
  for (const [name, facts] of Object.entries(t.nodes)) {
    const p = pos.get(name);
    if (p) drawNode(nodes, name, facts, p);
  }
}

// A segment is a box with its VNI, joined by dashed lines to its VTEPs.
function drawSegment(parent, s, k, pos, at) {
  const color = SEGMENT_COLORS[k % SEGMENT_COLORS.length];
  const g = el("g", { class: "segment", "data-segment": s.name }, parent);
  for (const leaf of s.leaves) {
    const p = pos.get(leaf);
    if (p) el("line", { x1: p.x, y1: p.y + NODE_R, x2: at.x, y2: at.y - 16, stroke: color }, g);
  }
  el("rect", { class: "box", x: at.x - 85, y: at.y - 16, width: 170, height: 32, stroke: color }, g);
  text(el("text", { x: at.x, y: at.y - 2, fill: color }, g), s.name);
  text(el("text", { class: "sub", x: at.x, y: at.y + 11 }, g), `VNI ${s.vni} · ${s.flooding} flooding`);
  el("title", {}, g).textContent =
    `segment ${s.name}, VNI ${s.vni}, ${s.flooding} flooding: VTEPs ${s.leaves.join(", ")}; hosts ${s.hosts.join(", ") || "none"}`;
}

function drawLink(parent, l, pos, offset) {
  const a = pos.get(l.a.node), b = pos.get(l.b.node);
  if (!a || !b) return;
  const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
  const nx = -dy / len, ny = dx / len; // unit normal
  const A = { x: a.x + nx * offset, y: a.y + ny * offset };
  const B = { x: b.x + nx * offset, y: b.y + ny * offset };
  const g = el("g", { class: "link", "data-link": l.id, "data-kind": l.kind }, parent);
  const wire = el("line", { class: "wire", x1: A.x, y1: A.y, x2: B.x, y2: B.y, stroke: "#9aa1a8", "stroke-width": 2 }, g);
  const title = el("title", {}, g);
  // Which end is drawn higher (or further left): its traffic goes "down".
  const aFirst = A.y < B.y - 1 || (Math.abs(A.y - B.y) <= 1 && A.x <= B.x);
  const flat = Math.abs(A.y - B.y) <= 1;
  const arrows = flat ? ["→", "←"] : ["↓", "↑"];
  const side = offset < 0 ? -1 : 1;
  const mid = { x: A.x + (B.x - A.x) * 0.45 + nx * 14 * side, y: A.y + (B.y - A.y) * 0.45 + ny * 14 * side };
  const labels = el("text", { x: mid.x, y: mid.y, "text-anchor": "middle" }, g);
  const down = el("tspan", { x: mid.x, dy: "-0.2em" }, labels);
  const up = el("tspan", { x: mid.x, dy: "1.1em" }, labels);
  let badge = null;
  if (l.kind === "underlay") {
    // Near the lower end: spines have many links, leaves few.
    const f = aFirst ? 0.75 : 0.25;
    const at = { x: A.x + (B.x - A.x) * f, y: A.y + (B.y - A.y) * f };
    badge = el("g", { class: "badge unknown", transform: `translate(${at.x - 15},${at.y - 6})` }, g);
    el("rect", { width: 30, height: 12 }, badge);
    el("text", { x: 15, y: 9 }, badge);
  }
  linkEls.set(l.id, { g, wire, title, down, up, badge, aFirst, arrows, facts: l });
}

function drawNode(parent, name, facts, p) {
  const g = el("g", { class: "node unknown", "data-node": name, "data-condition": "unknown", tabindex: 0, transform: `translate(${p.x},${p.y})` }, parent);
  el("circle", { r: NODE_R }, g);
  text(el("text", { y: NODE_R + 15 }, g), name);
  text(el("text", { class: "role", y: -NODE_R - 6 }, g), facts.role + (facts.asn ? ` · AS${facts.asn}` : ""));
  const title = el("title", {}, g);
  const open = () => select(name);
  g.addEventListener("click", open);
  g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") open(); });
  nodeEls.set(name, { g, title, facts });
}

// ---- following the live state -------------------------------------------

function apply(state) {
  live = state.live;
  document.body.dataset.seq = state.seq;
  const counts = {};
  for (const [name, n] of Object.entries(live.nodes)) {
    counts[n.condition] = (counts[n.condition] || 0) + 1;
    const e = nodeEls.get(name);
    if (!e) continue;
    e.g.setAttribute("class", `node ${n.condition}${name === selected ? " selected" : ""}`);
    e.g.dataset.condition = n.condition;
    e.title.textContent = `${name}: ${n.condition}` + (n.problems.length ? "\n" + n.problems.join("\n") : "");
  }
  for (const l of live.links) updateLink(l);
  document.getElementById("counts").textContent = ["healthy", "degraded", "unreachable", "unprovisioned", "unknown"]
    .filter((c) => counts[c]).map((c) => `${counts[c]} ${c}`).join(" · ");
  const s = live.sflow;
  document.getElementById("sflow").textContent =
    `sFlow on ${s.listen}: ${s.datagrams} datagrams from ${s.agents} agents` +
    (s.lost ? `, ${s.lost} lost` : "") + (s.skipped ? `, ${s.skipped} skipped` : "");
  drawFlows(live.flows);
  if (selected && Date.now() - detailsAsked > 1000) loadDetails();
}

function updateLink(l) {
  const e = linkEls.get(l.id);
  if (!e) return;
  const f = e.facts;
  const t = load(l.utilization);
  e.wire.setAttribute("stroke", loadColor(t));
  e.wire.setAttribute("stroke-width", (2 + 8 * t).toFixed(1));
  e.g.dataset.abBps = l.ab_bps ?? "";
  e.g.dataset.baBps = l.ba_bps ?? "";
  e.g.dataset.utilization = l.utilization ?? "";
  const [first, second] = e.aFirst ? [l.ab_bps, l.ba_bps] : [l.ba_bps, l.ab_bps];
  e.down.textContent = l.ab_bps === null ? "" : `${e.arrows[0]} ${rate(first)}`;
  e.up.textContent = l.ab_bps === null ? "" : `${e.arrows[1]} ${rate(second)}`;
  const s = l.session;
  e.g.dataset.session = s ? s.state : "";
  e.g.classList.toggle("down", !!s && !s.up && s.state !== "unknown");
  if (e.badge) {
    e.badge.setAttribute("class", `badge ${!s || s.state === "unknown" ? "unknown" : s.up ? "up" : "down"}`);
    e.badge.querySelector("text").textContent = s ? { bgp: "BGP", ospf: "OSPF", isis: "IS-IS" }[s.protocol] : "";
  }
  const pct = l.utilization === null ? "unknown" : `${(100 * l.utilization).toPrecision(2)} %`;
  e.title.textContent =
    `${f.a.node}:${f.a.interface} — ${f.b.node}:${f.b.interface}` +
    (f.segment ? ` (access, segment ${f.segment})` : "") +
    (s ? `\n${s.protocol.toUpperCase()} ${s.state}` : "") +
    `\n${f.a.node} → ${f.b.node}: ${rate(l.ab_bps)}bit/s\n${f.b.node} → ${f.a.node}: ${rate(l.ba_bps)}bit/s\nutilisation ${pct}`;
}

function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function drawFlows(flows) {
  const body = document.getElementById("flows-body");
  const rows = flows.map((f) => {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.append(`${f.src} → ${f.dst}`, document.createElement("br"));
    text(td.appendChild(document.createElement("span")), `${f.proto}, sampled on ${f.seen_on}`).className = "muted";
    tr.appendChild(td);
    cell(tr, rate(f.bps), "num");
    cell(tr, f.pps.toFixed(0), "num");
    return tr;
  });
  body.replaceChildren(...rows);
  document.getElementById("flows-empty").hidden = flows.length > 0;
}

// ---- details of one node --------------------------------------------------

function select(name) {
  selected = name;
  for (const [n, e] of nodeEls) e.g.classList.toggle("selected", n === name);
  document.getElementById("details").hidden = false;
  document.getElementById("details-node").textContent = name;
  loadDetails();
}

async function loadDetails() {
  const name = selected;
  detailsAsked = Date.now();
  try {
    const r = await fetch(`/api/nodes/${encodeURIComponent(name)}`);
    if (r.ok && name === selected) showDetails(await r.json());
  } catch (_) {
    // The connection state says enough.
  }
}

function table(parent, headers, rows) {
  const t = document.createElement("table");
  const head = t.createTHead().insertRow();
  for (const h of headers) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  const body = t.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const v of r) {
      const td = tr.insertCell();
      if (v instanceof Node) td.appendChild(v);
      else td.textContent = v;
    }
  }
  parent.appendChild(t);
}

function twoLines(first, second) {
  const span = document.createElement("span");
  span.append(first, document.createElement("br"));
  text(span.appendChild(document.createElement("span")), second).className = "muted";
  return span;
}

function state(ok, words) {
  const span = document.createElement("span");
  span.className = ok ? "ok" : "bad";
  span.textContent = words;
  return span;
}

function section(parent, title) {
  const h = document.createElement("h3");
  h.textContent = title;
  parent.appendChild(h);
}

function facts(parent, pairs) {
  const dl = document.createElement("dl");
  for (const [k, v] of pairs) {
    if (v === null || v === undefined) continue;
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    if (v instanceof Node) dd.appendChild(v);
    else dd.textContent = v;
    dl.append(dt, dd);
  }
  parent.appendChild(dl);
}

function showDetails(d) {
  const body = document.getElementById("details-body");
  body.replaceChildren();
  body.dataset.node = d.node;
  facts(body, [["condition", state(d.condition === "healthy", d.condition)], ["agent API", d.api]]);
  if (d.problems && d.problems.length) {
    const ul = document.createElement("ul");
    ul.className = "problems";
    for (const p of d.problems) text(ul.appendChild(document.createElement("li")), p);
    body.appendChild(ul);
  }
  const r = d.report;
  if (!r) return;
  const sys = r.system, board = r.board;
  const gib = (b) => (b / 2 ** 30).toFixed(2) + " GiB";
  section(body, "Health report");
  facts(body, [
    ["hostname", sys.hostname],
    ["role", r.role],
    ["agent", r.agent_version],
    ["uptime", duration(sys.uptime_seconds)],
    ["load", sys.load.map((l) => l.toFixed(2)).join(" ")],
    ["memory", `${gib(sys.memory_available_bytes)} free of ${gib(sys.memory_total_bytes)}`],
    ["disk", `${gib(sys.disk_available_bytes)} free of ${gib(sys.disk_total_bytes)}`],
    ["board", board.model],
    ["SoC temperature", board.soc_temperature_celsius != null ? board.soc_temperature_celsius.toFixed(1) + " °C" : null],
    ["throttled", board.throttled != null ? String(board.throttled) : null],
    ["under-voltage", board.under_voltage != null ? String(board.under_voltage) : null],
    ["sFlow", r.sflow.enabled ? `${r.sflow.datagrams_sent} datagrams sent` + (r.sflow.sampling_rate ? `, sampling 1-in-${r.sflow.sampling_rate}` : "") : "off"],
  ]);
  section(body, "Neighbours");
  const neighbours = [];
  for (const n of r.bgp) {
    neighbours.push([
      twoLines(`${n.description || n.address} · BGP`, `${n.address} AS${n.remote_asn}`),
      state(n.established, n.state),
      n.uptime_seconds != null ? duration(n.uptime_seconds) : "",
      n.prefixes_received ?? "",
    ]);
  }
  for (const [proto, list] of [["OSPF", r.ospf || []], ["IS-IS", r.isis || []]]) {
    for (const a of list) {
      neighbours.push([twoLines(`${a.description} · ${proto}`, `${a.router_id} on ${a.interface}`), state(a.up, a.state), "", ""]);
    }
  }
  if (neighbours.length) table(body, ["peer", "state", "up", "prefixes"], neighbours);
  else body.appendChild(text(document.createElement("p"), "none")).className = "muted";
  section(body, "VNIs and flood lists");
  if (r.vxlan.length) {
    table(body, ["VNI", "flooding", "flood list (remote VTEPs)", ""], r.vxlan.map((v) => [
      twoLines(String(v.vni), `${v.device} ${v.device_up ? "up" : "DOWN"}`),
      v.flooding,
      twoLines(
        v.remote_vteps.join(", ") || "–",
        v.flooding === "static" ? `expected: ${v.expected_vteps.join(", ") || "–"}` : "learnt over EVPN",
      ),
      state(v.ok, v.ok ? "ok" : "wrong"),
    ]));
  } else body.appendChild(text(document.createElement("p"), "none")).className = "muted";
  section(body, "Last reconcile");
  const rc = r.reconcile;
  facts(body, [
    // Health schema 3 gives the age on the board's monotonic clock; older
    // agents a wall-clock time.
    ["when", rc.last_run_age_seconds != null ? duration(rc.last_run_age_seconds) + " ago" : ago(rc.last_run_unix)],
    ["result", state(rc.ok, rc.ok ? "ok" : "failed")],
    ["changes", rc.changes],
    ["passes", rc.passes],
    ["config version", rc.config_version || "none (not provisioned)"],
    ["missing ports", rc.missing_ports && rc.missing_ports.length ? state(false, rc.missing_ports.join(", ")) : null],
  ]);
  if (rc.errors.length) {
    const ul = document.createElement("ul");
    ul.className = "problems";
    for (const e of rc.errors) text(ul.appendChild(document.createElement("li")), e);
    body.appendChild(ul);
  }
}

// ---- start ------------------------------------------------------------------

function connection(stateName, words) {
  const c = document.getElementById("connection");
  c.dataset.state = stateName;
  c.textContent = words;
}

async function start() {
  document.getElementById("details-close").addEventListener("click", () => {
    selected = null;
    document.getElementById("details").hidden = true;
    for (const e of nodeEls.values()) e.g.classList.remove("selected");
  });
  for (;;) {
    try {
      const r = await fetch("/api/topology");
      if (r.ok) {
        topology = await r.json();
        break;
      }
    } catch (_) {
      connection("lost", "no answer from pi-lab; retrying…");
    }
    await new Promise((done) => setTimeout(done, 2000));
  }
  document.getElementById("lab").textContent = topology.lab;
  document.title = `${topology.lab} — pi-lab dashboard`;
  document.getElementById("runs-on").textContent = `on ${topology.runs_on}, ${topology.underlay} underlay`;
  draw(topology);
  document.body.dataset.drawn = "true";
  const events = new EventSource("/events");
  events.addEventListener("open", () => connection("live", "live"));
  events.addEventListener("error", () => connection("lost", "connection lost; reconnecting…"));
  events.addEventListener("state", (e) => apply(JSON.parse(e.data)));
}

start();
