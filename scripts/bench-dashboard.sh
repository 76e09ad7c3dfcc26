#!/usr/bin/env bash
# Benchmark `pi-lab dashboard` on a 64-node leaf-spine virtual fleet
# (4 spines, 20 leaves, 40 hosts; 120 links; sFlow every 2 s, sampling
# 1-in-100):
#   - the dashboard server's RSS and CPU, with no page open and with a page
#     open in headless Chromium (following the events);
#   - the page's update latency: from the moment a counter sample with a
#     new rate is sent to pi-lab to the moment the page shows it. One
#     host's agent is stopped and the script sends that host's counter
#     samples itself (a real node-agent datagram layout, port name
#     included), changing the rate every 3 s; a MutationObserver in the
#     page notes when the link shows the new rate.
# Usage: sudo scripts/bench-dashboard.sh [PHASE_SECONDS] [CHANGES]   (defaults 60, 20)
# Root: namespaces and FRR. Runs the lab as `benchdsh` on 172.31.228.0/24.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-60}
CHANGES=${2:-20}
LAB=benchdsh
SFLOW_PORT=16451
HTTP=127.0.0.1:18451
WORK=$(mktemp -d /tmp/pi-lab-bench-dash.XXXXXX)
export PI_LAB_STATE_DIR=$WORK/state

cargo build --release -q -p pi-lab -p node-agent
export PI_LAB_AGENT=$PWD/target/release/node-agent
PI_LAB=$PWD/target/release/pi-lab

python3 - "$WORK/lab.toml" "$LAB" "$SFLOW_PORT" <<'PY'
import sys
path, name, port = sys.argv[1], sys.argv[2], sys.argv[3]
out = [f'name = "{name}"',
       '[management]', 'subnet = "172.31.228.0/24"', 'controller = "172.31.228.1"',
       '[bgp]', 'keepalive = 3', 'hold = 9',
       '[sflow]', f'collectors = ["172.31.228.1:{port}"]', 'polling_interval = 2', 'sampling_rate = 100']
for s in range(1, 5):
    out += [f'[nodes.spine{s}]', 'role = "spine"', 'asn = 65000']
for l in range(1, 21):
    out += [f'[nodes.leaf{l}]', 'role = "leaf"', f'asn = {65000 + l}']
for h in range(1, 41):
    out += [f'[nodes.h{h}]', 'role = "host"']
for s in range(1, 5):
    for l in range(1, 21):
        out += ['[[links]]', f'a = "spine{s}:eth{l}"', f'b = "leaf{l}:eth{s}"']
access = []
for h in range(1, 41):
    leaf, port_no = (h - 1) // 2 + 1, 5 + (h - 1) % 2
    out += ['[[links]]', f'a = "h{h}:eth1"', f'b = "leaf{leaf}:eth{port_no}"']
    access.append(f'"leaf{leaf}:eth{port_no}"')
leaves = ", ".join(f'"leaf{l}"' for l in range(1, 21))
out += ['[[segments]]', 'name = "green"', 'vni = 10020', 'flooding = "evpn"',
        f'leaves = [{leaves}]', f'access = [{", ".join(access)}]']
open(path, "w").write("\n".join(out) + "\n")
PY

DASH_PID=
cleanup() {
    [ -n "$DASH_PID" ] && kill "$DASH_PID" 2>/dev/null || true
    "$PI_LAB" lab down --name "$LAB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "lab up: 64 nodes ..."
t0=$(date +%s)
"$PI_LAB" lab up --timeout 600 "$WORK/lab.toml" >"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log"; exit 1; }
echo "lab up took $(( $(date +%s) - t0 )) s"

"$PI_LAB" dashboard "$WORK/lab.toml" --listen "$HTTP" >"$WORK/dash.log" 2>&1 &
DASH_PID=$!
sleep 5

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
phase() {
    local start; start=$(ticks "$DASH_PID")
    sleep "$PHASE"
    local cpu; cpu=$(awk -v t="$(ticks "$DASH_PID")" -v s="$start" -v hz="$HZ" -v n="$PHASE" \
        'BEGIN {printf "%.2f", (t - s) * 100 / (hz * n)}')
    printf '%-28s RSS %6d KiB (%.1f MiB)  CPU %5.2f %%  threads %d\n' "$1" "$(rss_kib "$DASH_PID")" \
        "$(awk -v k="$(rss_kib "$DASH_PID")" 'BEGIN {print k / 1024}')" "$cpu" \
        "$(awk '/^Threads:/ {print $2}' "/proc/$DASH_PID/status")"
}

phase "no page open"

# The rest drives a browser and sends sFlow: Python, standard library only.
STOP_AGENT() {
    local config="$PI_LAB_STATE_DIR/$LAB/fleet/nodes/$1.toml"
    local pid; pid=$(pgrep -f "node-agent run.*$config" | head -1)
    kill "$pid"
}
STOP_AGENT h40
H40_MGMT=$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["management"]["address"].split("/")[0])' \
    "$PI_LAB_STATE_DIR/$LAB/fleet/nodes/h40.toml")

TMPDIR="$WORK" python3 - "$HTTP" "$SFLOW_PORT" "$H40_MGMT" "$CHANGES" "$PHASE" "$DASH_PID" "$HZ" <<'PY'
import atexit, json, os, signal, socket, statistics, struct, subprocess, sys, tempfile, threading, time, urllib.request

http, sflow_port, agent, changes, phase, dash_pid, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])

# --- WebDriver (chromedriver) ---------------------------------------------
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); wd_port = s.getsockname()[1]
# Its own process group: Chromium and its helpers go with it, whatever happens.
driver = subprocess.Popen(["chromedriver", f"--port={wd_port}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
def stop_browser():
    try: os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    driver.wait()
atexit.register(stop_browser)
base = f"http://127.0.0.1:{wd_port}"
def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["value"]
for _ in range(200):
    try:
        if call("GET", "/status")["ready"]: break
    except OSError: pass
    time.sleep(0.1)
profile = tempfile.mkdtemp(prefix="bench-chromium-")
session = call("POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
    "binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--window-size=1500,1000", f"--user-data-dir={profile}"]}}}})["sessionId"]
def js(script):
    return call("POST", f"/session/{session}/execute/sync", {"script": script, "args": []})
call("POST", f"/session/{session}/url", {"url": f"http://{http}/"})
while js("return document.body.dataset.drawn === 'true'") is not True: time.sleep(0.2)

def ticks(): return sum(int(x) for x in open(f"/proc/{dash_pid}/stat").read().split()[13:15])
def rss(): return next(int(l.split()[1]) for l in open(f"/proc/{dash_pid}/status") if l.startswith("VmRSS:"))
t, start = time.time(), ticks()
time.sleep(phase)
print(f"{'one page open':28} RSS {rss():6d} KiB ({rss()/1024:.1f} MiB)  CPU {(ticks()-start)*100/(hz*phase):5.2f} %")
# What the page showed meanwhile: the lab must have been whole and live.
shown = js("""return [document.querySelectorAll('g.node').length, document.querySelectorAll('g.link').length,
  [...document.querySelectorAll('g.link')].filter(g => g.dataset.session === 'Established').length,
  [...document.querySelectorAll('g.link')].filter(g => g.dataset.abBps !== '').length,
  document.getElementById('counts').textContent, document.getElementById('sflow').textContent]""")
print(f"the page showed {shown[0]} nodes ({shown[4]}), {shown[1]} links ({shown[2]} BGP Established, "
      f"{shown[3]} with rates); {shown[5]}")

# --- counter samples as h40's agent: generic counters + port name ---------
link = js("return [...document.querySelectorAll('g.link')].map(g => g.dataset.link).find(id => id.startsWith('h40:eth1|'))")
addr = socket.inet_aton(agent)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
seq, octets, t_up = 0, 0, 0
def sample(out_octets, uptime):
    global seq
    seq += 1
    gen = struct.pack(">IIQII", 2, 6, 10_000_000_000, 1, 3) + struct.pack(">QIIIIII", 0, 0, 0, 0xffffffff, 0, 0, 0) \
        + struct.pack(">QIIIIII", out_octets, 0, 0xffffffff, 0xffffffff, 0, 0, 2)
    name = b"eth1"
    records = struct.pack(">II", 1, len(gen)) + gen + struct.pack(">III", 1005, 4 + len(name), len(name)) + name
    body = struct.pack(">IIII", seq, 0, 2, 2) + records
    dgram = struct.pack(">II4sIIII", 5, 1, addr, 0, seq, uptime, 1) + struct.pack(">II", 4, len(body)) + body
    sock.sendto(dgram, ("127.0.0.1", sflow_port))
    return time.time()

js("""window.__seen = {}; const g = document.querySelector(`g.link[data-link="%s"]`);
new MutationObserver(() => { const v = g.dataset.abBps; if (!(v in window.__seen)) window.__seen[v] = Date.now(); })
  .observe(g, {attributes: true, attributeFilter: ['data-ab-bps']});""" % link)
latencies = []
rate = 1_000_000
for i in range(changes + 2):
    # Two samples at the old rate, then one at the new: the page's rate
    # changes with the sample sent at `sent`.
    for _ in range(2):
        octets += rate // 8 * 1; t_up += 1000
        sample(octets, t_up); time.sleep(1)
    rate = 1_000_000 + (i + 1) * 8_000
    octets += rate // 8; t_up += 1000
    sent = sample(octets, t_up)
    deadline = time.time() + 10
    while time.time() < deadline:
        seen = js("return window.__seen")
        hit = [ms for v, ms in seen.items() if v and abs(float(v) - rate) < 1]
        if hit:
            if i >= 2:  # the first changes warm up the link's rate
                latencies.append(hit[0] / 1000 - sent)
            break
        time.sleep(0.05)
    else:
        print(f"change {i}: the page never showed {rate} bit/s", file=sys.stderr)
latencies.sort()
q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))]
print(f"update latency, counter sample sent -> page shows it ({len(latencies)} changes): "
      f"median {statistics.median(latencies)*1000:.0f} ms, p90 {q(0.9)*1000:.0f} ms, max {latencies[-1]*1000:.0f} ms")
call("DELETE", f"/session/{session}")
PY
