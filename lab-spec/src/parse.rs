//! Reading a lab file: TOML with spans, walked by hand so that every
//! problem is reported at once with its line and column, not just the first
//! one serde would stop at.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostics::{Diagnostic, Diagnostics, Source, Span, did_you_mean, list};
use crate::lab::{
    BgpSpec, Endpoint, EndpointSpans, FloodingMode, Lab, Link, LinkSpans, ManagementSpans,
    ManagementSpec, Node, NodeSpans, PoolSpans, Pools, SegmentMode, SegmentSpans, SegmentSpec,
    SflowSpec, UnderlayProtocol, UnderlaySpans, UnderlaySpec, defaults,
};
use crate::node_config::{IgpTimers, Led, Role};

type Table<'i> = DeTable<'i>;
type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &[
    "name",
    "management",
    "pools",
    "underlay",
    "bgp",
    "sflow",
    "nodes",
    "links",
    "segments",
    "validate",
];
const UNDERLAY_KEYS: &[&str] = &["protocol", "area", "hello", "dead"];
const PROTOCOLS: &[&str] = &["ebgp", "ospf", "isis"];
const MANAGEMENT_KEYS: &[&str] = &["subnet", "controller", "gateway"];
const POOL_KEYS: &[&str] = &["loopback", "p2p", "segments"];
const BGP_KEYS: &[&str] = &["asn", "keepalive", "hold", "connect_retry", "multipath"];
const SFLOW_KEYS: &[&str] = &["collectors", "polling_interval", "sampling_rate"];
const NODE_KEYS: &[&str] =
    &["role", "asn", "id", "serial", "mac", "management", "loopback", "led", "frr"];
const LINK_KEYS: &[&str] = &["a", "b", "mtu", "subnet", "tc", "tc_a", "tc_b"];
const SEGMENT_KEYS: &[&str] = &["name", "vni", "flooding", "mode", "leaves", "access", "subnet"];
const SEGMENT_MODES: &[&str] = &["bridge", "irb"];
const ROLES: &[&str] = &["router", "spine", "leaf", "host"];

/// Largest valid 4-byte ASN (4294967295 is reserved, RFC 7300).
pub const ASN_RANGE: RangeInclusive<i128> = 1..=4_294_967_294;
/// VXLAN network identifiers are 24 bits; 0 is not used.
pub const VNI_RANGE: RangeInclusive<i128> = 1..=16_777_215;

/// Parse the text of a lab file and check it. `file_name` is only used in
/// messages.
pub fn parse(text: &str, file_name: &str) -> Result<Lab, Diagnostics> {
    let source = Source::new(file_name, text);
    let mut reader =
        Reader { diags: Diagnostics::new(source.clone()), left_out_access: Vec::new() };
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        reader.toml_errors(&errors, &source);
        reader.diags.sort();
        return Err(reader.diags);
    }
    let lab = reader.lab(doc.get_ref(), source);
    let mut diags = std::mem::take(&mut reader.diags);
    if let Some(lab) = &lab {
        // Nodes with errors of their own are left out of `lab`; references
        // to them are not reported again as unknown.
        let left_out = crate::validate::LeftOut {
            nodes: declared_nodes(doc.get_ref()),
            access_ports: std::mem::take(&mut reader.left_out_access),
        };
        crate::validate::check(lab, &left_out, &mut diags);
    }
    diags.sort();
    match lab {
        Some(lab) if !diags.has_errors() => Ok(lab),
        _ => Err(diags),
    }
}

/// Parse the bytes of a lab file: text that is not UTF-8 is reported at
/// its first bad byte, like any other mistake in the file.
pub fn parse_bytes(bytes: &[u8], file_name: &str) -> Result<Lab, Diagnostics> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file_name),
        Err(err) => Err(not_utf8(bytes, &err, file_name)),
    }
}

pub(crate) fn not_utf8(bytes: &[u8], err: &std::str::Utf8Error, file_name: &str) -> Diagnostics {
    // The lossy text is the same as the file up to the first bad byte, so
    // offsets (and lines and columns) before it agree; the bad byte itself
    // shows as U+FFFD, three bytes long.
    let text = String::from_utf8_lossy(bytes);
    let at = err.valid_up_to();
    let bad = bytes.get(at).copied().unwrap_or_default();
    let mut diags = Diagnostics::new(Source::new(file_name, &text));
    diags.push(
        Diagnostic::error(
            at..at + char::REPLACEMENT_CHARACTER.len_utf8(),
            format!("byte 0x{bad:02x} is not UTF-8"),
        )
        .help("a lab file is UTF-8 text; convert it, e.g. iconv -f latin1 -t utf-8 lab.toml"),
    );
    diags
}

/// The span of line `line` (0-based) of a string's `value` as written in
/// `text` at `span` (quotes included): from its first non-blank character
/// to its end. The string itself when its lines are not the file's lines
/// one for one (escaped newlines, a line-ending backslash).
pub fn string_line_span(text: &str, span: &Span, value: &str, line: usize) -> Span {
    let whole = span.clone();
    let Some(raw) = text.get(span.clone()) else { return whole };
    let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") { 3 } else { 1 };
    let mut start = span.start + quote;
    let inner = raw.get(quote..raw.len().saturating_sub(quote)).unwrap_or("");
    // TOML drops a newline right after the opening quotes.
    let inner = match inner.strip_prefix("\r\n").or_else(|| inner.strip_prefix('\n')) {
        Some(rest) if quote == 3 => {
            start += inner.len() - rest.len();
            rest
        }
        _ => inner,
    };
    if inner.lines().count() != value.lines().count() || inner.contains("\\\n") {
        return whole;
    }
    let mut offset = start;
    for (i, written) in inner.split('\n').enumerate() {
        if i == line {
            let from = offset + written.len() - written.trim_start().len();
            let to = offset + written.trim_end().len();
            return if to > from { from..to } else { from..from + 1 };
        }
        offset += written.len() + 1;
    }
    whole
}

struct Reader {
    diags: Diagnostics,
    /// Access ports of segments left out because of their own errors.
    left_out_access: Vec<(String, String)>,
}

/// A field read from a table: its value and where it was written.
type Field<T> = Option<(T, Span)>;

impl Reader {
    fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, message).help(help));
    }

    /// Turn the TOML parser's errors into ours: each says which key or
    /// table it is in, and a node (table) written twice is named clearly.
    fn toml_errors(&mut self, errors: &[toml::de::Error], source: &Source) {
        let text: &str = &source.text;
        let line_start =
            |at: usize| text.get(..at).and_then(|b| b.rfind('\n')).map_or(0, |i| i + 1);
        let is_duplicate = |err: &toml::de::Error| err.message() == "duplicate key";
        // The parser recovers from a syntax error by guessing; a "duplicate
        // key" on the same line is one of its guesses, not the user's.
        let broken_lines: std::collections::HashSet<usize> = errors
            .iter()
            .filter(|e| !is_duplicate(e))
            .map(|e| line_start(e.span().unwrap_or(0..0).start))
            .collect();
        let headers = table_headers(text);
        let mut duplicate_section: Option<usize> = None;
        for err in errors {
            let span = err.span().unwrap_or(0..0);
            let line_start = line_start(span.start);
            let line = text.get(line_start..).and_then(|l| l.lines().next()).unwrap_or("");
            if !is_duplicate(err) {
                let place = syntax_error_place(line, span.start - line_start, &headers, line_start);
                let mut d =
                    Diagnostic::error(span, format!("invalid TOML {place}: {}", err.message()));
                if err.message().contains("must be quoted") {
                    d = d.help("put text in double quotes (role = \"router\"); numbers, true and false stay bare (asn = 65001)");
                }
                self.diags.push(d);
                continue;
            }
            if broken_lines.contains(&line_start) {
                continue;
            }
            let line = line.trim_start();
            let key = source.slice(&span).unwrap_or("").to_string();
            if line.starts_with('[') {
                duplicate_section = Some(line_start);
                self.duplicate_table(span, &key, line);
                continue;
            }
            // Keys inside a table that is itself a duplicate are noise.
            if duplicate_section
                .is_some_and(|s| text.get(s..line_start).is_some_and(|t| !t.contains("\n[")))
            {
                continue;
            }
            self.error(
                span,
                format!("key {key} is written twice in the same table"),
                "keep one of them",
            );
        }
    }

    fn duplicate_table(&mut self, span: Span, key: &str, header: &str) {
        let name = key.trim_matches(['"', '\'']);
        if header.starts_with("[nodes.") {
            self.error(
                span,
                format!("node \"{name}\" is defined twice"),
                "every [nodes.NAME] table needs its own name; rename or merge one of them",
            );
        } else {
            self.error(
                span,
                format!("table {header} is defined twice"),
                "merge the two tables into one",
            );
        }
    }

    /// Report keys that are not in `allowed`, with a did-you-mean.
    fn keys(&mut self, table: &Table, allowed: &[&str], place: &str) {
        for key in table.keys() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let help = match did_you_mean(name, allowed) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None if place == "[pools]" && name == "management" => {
                    "the management pool is [management] subnet".to_string()
                }
                None => format!("expected one of: {}", list(allowed)),
            };
            self.error(key.span(), format!("unknown key \"{name}\" in {place}"), help);
        }
    }

    fn wrong_type(&mut self, value: &Value, key: &str, place: &str, expected: &str) {
        let found = value.get_ref().type_str();
        self.error(
            value.span(),
            format!("\"{key}\" in {place} must be {expected}, found {found}"),
            format!("write {key} as {expected}"),
        );
    }

    fn table<'t, 'i>(
        &mut self,
        value: &'t Value<'i>,
        key: &str,
        place: &str,
    ) -> Option<&'t Table<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(value, key, place, "a table");
                None
            }
        }
    }

    /// A top-level `[key]` table (empty when absent), its keys checked.
    fn section<'t, 'i>(
        &mut self,
        doc: &'t Table<'i>,
        key: &str,
        allowed: &[&str],
        empty: &'t Table<'i>,
    ) -> &'t Table<'i> {
        let t = doc.get(key).and_then(|v| self.table(v, key, "the lab file")).unwrap_or(empty);
        self.keys(t, allowed, &format!("[{key}]"));
        t
    }

    fn string(&mut self, t: &Table, key: &str, place: &str) -> Field<String> {
        let value = t.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            _ => {
                self.wrong_type(value, key, place, "a string");
                None
            }
        }
    }

    fn integer(
        &mut self,
        t: &Table,
        key: &str,
        place: &str,
        range: RangeInclusive<i128>,
    ) -> Field<i128> {
        let value = t.get(key)?;
        let number = match value.get_ref() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(value, key, place, "an integer");
                return None;
            }
        };
        match number {
            Some(n) if range.contains(&n) => Some((n, value.span())),
            _ => {
                let shown = value.get_ref().as_integer().map(|i| i.to_string()).unwrap_or_default();
                self.error(
                    value.span(),
                    format!("{key} {shown} is out of range"),
                    format!("{key} must be between {} and {}", range.start(), range.end()),
                );
                None
            }
        }
    }

    /// A string field turned into `T` by `convert`, which says what is
    /// wrong and what would be right.
    fn converted<T>(
        &mut self,
        t: &Table,
        key: &str,
        place: &str,
        convert: impl Fn(&str) -> Result<T, (String, String)>,
    ) -> Field<T> {
        let (text, span) = self.string(t, key, place)?;
        match convert(&text) {
            Ok(v) => Some((v, span)),
            Err((message, help)) => {
                self.error(span, message, help);
                None
            }
        }
    }

    /// Report a missing key (one present with a wrong value was reported
    /// already).
    fn required<T>(
        &mut self,
        field: Field<T>,
        t: &Table,
        key: &str,
        place: &str,
        at: &Span,
        help: &str,
    ) -> Field<T> {
        if !t.contains_key(key) {
            self.error(at.clone(), format!("missing \"{key}\" in {place}"), help);
        }
        field
    }

    fn lab(&mut self, doc: &Table, source: Source) -> Option<Lab> {
        self.keys(doc, TOP_KEYS, "the lab file");
        let top = 0..0;
        let name = self.converted(doc, "name", "the lab file", |s| name_ok(s, "lab name"));
        let name = self.required(
            name,
            doc,
            "name",
            "the lab file",
            &top,
            "start the file with name = \"my-lab\"",
        );
        let management = self.management(doc);
        let pools = self.pools(doc, &management);
        let underlay = self.underlay(doc);
        let bgp = self.bgp(doc);
        let sflow = self.sflow(doc, &management);
        let nodes = self.nodes(doc);
        let links = self.links(doc);
        let segments = self.segments(doc);
        let tests = self.tests(doc);
        Some(Lab {
            name: name?.0,
            management,
            pools,
            underlay,
            bgp,
            sflow,
            nodes,
            links,
            segments,
            tests,
            source,
            notes: Diagnostics::default(),
        })
    }

    fn management(&mut self, doc: &Table) -> ManagementSpec {
        let place = "[management]";
        let empty = Table::new();
        let t = self.section(doc, "management", MANAGEMENT_KEYS, &empty);
        let subnet =
            self.converted(t, "subnet", place, |s| network(s, "management subnet", 0..=30));
        let (subnet, subnet_span) = split(subnet, defaults::MANAGEMENT);
        let first_host = Ipv4Addr::from(u32::from(subnet.network()) + 1);
        let in_subnet = |what: &'static str| {
            move |s: &str| -> Result<Ipv4Addr, (String, String)> {
                let addr = ipv4(s, what)?;
                if !subnet.contains(&addr) || addr == subnet.network() || addr == subnet.broadcast()
                {
                    return Err((
                        format!(
                            "{what} {addr} is not a host address of the management subnet {subnet}"
                        ),
                        format!(
                            "pick an address between {} and {}",
                            first_host,
                            subnet.hosts().last().unwrap_or(first_host)
                        ),
                    ));
                }
                Ok(addr)
            }
        };
        let controller = self.converted(t, "controller", place, in_subnet("controller"));
        let (controller, controller_span) = split(controller, first_host);
        let gateway = self.converted(t, "gateway", place, in_subnet("gateway"));
        ManagementSpec {
            subnet,
            controller,
            gateway: gateway.as_ref().map(|g| g.0),
            spans: ManagementSpans {
                subnet: subnet_span,
                controller: controller_span,
                gateway: gateway.map(|g| g.1),
            },
        }
    }

    fn pools(&mut self, doc: &Table, management: &ManagementSpec) -> Pools {
        let place = "[pools]";
        let empty = Table::new();
        let t = self.section(doc, "pools", POOL_KEYS, &empty);
        let loopback =
            self.converted(t, "loopback", place, |s| network(s, "pools.loopback", 0..=32));
        let p2p = self.converted(t, "p2p", place, |s| network(s, "pools.p2p", 0..=31));
        let segments = self.converted(t, "segments", place, |s| {
            network(s, "pools.segments", 0..=defaults::SEGMENT_PREFIX)
        });
        let (loopback, loopback_span) = split(loopback, defaults::LOOPBACK);
        let (p2p, p2p_span) = split(p2p, defaults::P2P);
        let (segments, segments_span) = split(segments, defaults::SEGMENTS);
        Pools {
            loopback,
            p2p,
            segments,
            spans: PoolSpans {
                loopback: loopback_span,
                p2p: p2p_span,
                segments: segments_span,
                management: management.spans.subnet.clone(),
            },
        }
    }

    /// `[underlay]`: protocol, area and IGP timers (checked against each
    /// other: an IS-IS area is not an OSPF area).
    fn underlay(&mut self, doc: &Table) -> UnderlaySpec {
        let place = "[underlay]";
        let empty = Table::new();
        let t = self.section(doc, "underlay", UNDERLAY_KEYS, &empty);
        let protocol = self.converted(t, "protocol", place, protocol);
        let (protocol, protocol_span) = split(protocol, UnderlayProtocol::Ebgp);
        let defaults = IgpTimers::default();
        let hello = self.integer(t, "hello", place, 1..=600);
        let dead = self.integer(t, "dead", place, 2..=65535);
        let h = hello.as_ref().map_or(i128::from(defaults.hello), |h| h.0);
        if let Some((d, span)) = &dead {
            if *d <= h {
                self.error(
                    span.clone(),
                    format!("dead {d} must be longer than hello {h}"),
                    "dead is usually four times hello (hello = 1, dead = 4)",
                );
            } else if protocol == UnderlayProtocol::Isis && (d + h - 1) / h > 100 {
                self.error(
                    span.clone(),
                    format!("dead {d} is more than 100 hellos of {h} s"),
                    "IS-IS holds an adjacency for 2 to 100 hellos (isis hello-multiplier)",
                );
            }
        }
        let area = match protocol {
            UnderlayProtocol::Ospf => self.converted(t, "area", place, ospf_area),
            UnderlayProtocol::Isis => self.converted(t, "area", place, isis_area),
            UnderlayProtocol::Ebgp => {
                if let Some(v) = t.get("area") {
                    self.error(
                        v.span(),
                        "area with an eBGP underlay",
                        "areas belong to OSPF and IS-IS; set protocol = \"ospf\" or \"isis\", or remove area",
                    );
                }
                None
            }
        };
        let default_area = match protocol {
            UnderlayProtocol::Ospf => defaults::OSPF_AREA,
            UnderlayProtocol::Isis => defaults::ISIS_AREA,
            UnderlayProtocol::Ebgp => "",
        };
        let (area, area_span) = split(area, default_area.to_string());
        let int =
            |f: &Field<i128>, d: u16| f.as_ref().map_or(d, |(v, _)| u16::try_from(*v).unwrap_or(d));
        UnderlaySpec {
            protocol,
            area,
            timers: IgpTimers {
                hello: int(&hello, defaults.hello),
                dead: int(&dead, defaults.dead),
            },
            spans: UnderlaySpans {
                protocol: protocol_span,
                area: area_span,
                hello: hello.map(|h| h.1),
                dead: dead.map(|d| d.1),
            },
        }
    }

    fn bgp(&mut self, doc: &Table) -> BgpSpec {
        let place = "[bgp]";
        let empty = Table::new();
        let t = self.section(doc, "bgp", BGP_KEYS, &empty);
        let timers = crate::node_config::BgpTimers::default();
        let asn = self.integer(t, "asn", place, ASN_RANGE);
        let keepalive = self.integer(t, "keepalive", place, 1..=65535);
        let hold = self.integer(t, "hold", place, 0..=65535);
        let connect_retry = self.integer(t, "connect_retry", place, 1..=65535);
        let multipath = self.integer(t, "multipath", place, 1..=64);
        if let Some((h, span)) = &hold {
            if *h != 0 && *h < 3 {
                self.error(
                    span.clone(),
                    format!("hold {h} is too short"),
                    "hold must be 0 (never expire) or at least 3 seconds",
                );
            }
            let k = keepalive.as_ref().map_or(i128::from(timers.keepalive), |k| k.0);
            if *h != 0 && *h >= 3 && k >= *h {
                self.error(
                    span.clone(),
                    format!("hold {h} must be longer than keepalive {k}"),
                    "hold is usually three times keepalive",
                );
            }
        }
        let int = |f: Field<i128>, d: u16| f.map_or(d, |(v, _)| u16::try_from(v).unwrap_or(d));
        BgpSpec {
            asn: asn.as_ref().map(|(a, _)| *a as u32),
            asn_span: asn.map(|a| a.1),
            keepalive: int(keepalive, timers.keepalive),
            hold: int(hold, timers.hold),
            connect_retry: int(connect_retry, timers.connect_retry),
            multipath: int(multipath, defaults::MULTIPATH),
        }
    }

    fn sflow(&mut self, doc: &Table, management: &ManagementSpec) -> SflowSpec {
        let place = "[sflow]";
        let empty = Table::new();
        let t = self.section(doc, "sflow", SFLOW_KEYS, &empty);
        let polling = self.integer(t, "polling_interval", place, 1..=3600);
        let sampling = self.integer(t, "sampling_rate", place, 0..=i128::from(u32::MAX));
        let collectors = match t.get("collectors") {
            None => vec![SocketAddr::new(IpAddr::V4(management.controller), defaults::SFLOW_PORT)],
            Some(v) => self
                .strings(v, "collectors", place)
                .into_iter()
                .filter_map(|(s, span)| match collector(&s) {
                    Ok(addr) => Some(addr),
                    Err((message, help)) => {
                        self.error(span, message, help);
                        None
                    }
                })
                .collect(),
        };
        SflowSpec {
            collectors,
            polling_interval: polling.map_or(defaults::SFLOW_POLLING_INTERVAL, |(v, _)| v as u32),
            sampling_rate: sampling.map_or(0, |(v, _)| v as u32),
        }
    }

    /// An array of strings, each with its span.
    fn strings(&mut self, value: &Value, key: &str, place: &str) -> Vec<(String, Span)> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, key, place, "an array of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => self.wrong_type(item, key, place, "an array of strings"),
            }
        }
        out
    }

    fn nodes(&mut self, doc: &Table) -> BTreeMap<String, Node> {
        let mut nodes = BTreeMap::new();
        let Some(value) = doc.get("nodes") else {
            self.error(
                0..0,
                "the lab has no nodes",
                "add nodes as [nodes.NAME] tables with a role",
            );
            return nodes;
        };
        let Some(t) = self.table(value, "nodes", "the lab file") else { return nodes };
        if t.is_empty() {
            self.error(
                value.span(),
                "the lab has no nodes",
                "add nodes as [nodes.NAME] tables with a role",
            );
        }
        for (key, value) in t.iter() {
            let name = key.get_ref().to_string();
            if let Err((message, help)) = name_ok(&name, "node name") {
                self.error(key.span(), message, help);
            }
            if let Some(node) = self.node(&name, key.span(), value) {
                nodes.insert(name, node);
            }
        }
        nodes
    }

    fn node(&mut self, name: &str, name_span: Span, value: &Value) -> Option<Node> {
        let place = format!("[nodes.{name}]");
        let t = self.table(value, name, "[nodes]")?;
        self.keys(t, NODE_KEYS, &place);
        let role = self.converted(t, "role", &place, role);
        let role = self.required(
            role,
            t,
            "role",
            &place,
            &name_span,
            "add role = \"router\", \"spine\", \"leaf\" or \"host\"",
        );
        let asn = self.integer(t, "asn", &place, ASN_RANGE);
        let id = self.integer(t, "id", &place, 1..=65534);
        let serial = self.converted(t, "serial", &place, serial);
        let mac = self.converted(t, "mac", &place, mac);
        let management = self.converted(t, "management", &place, |s| ipv4(s, "management address"));
        let loopback = self.converted(t, "loopback", &place, |s| ipv4(s, "loopback address"));
        let led = self.led(t, &place);
        let frr = self.string(t, "frr", &place);
        let (role, role_span) = role?;
        let is_host = role == Role::Host;
        if is_host {
            if let Some((_, span)) = &asn {
                self.error(
                    span.clone(),
                    format!("host {name} has an asn"),
                    "hosts do not run BGP; remove asn",
                );
            }
            if let Some((_, span)) = &loopback {
                self.error(
                    span.clone(),
                    format!("host {name} has a loopback"),
                    "only routers, spines and leaves have loopbacks; remove it",
                );
            }
            if let Some((_, span)) = &frr {
                self.error(
                    span.clone(),
                    format!("host {name} has frr lines"),
                    "hosts run no FRR; give the lines to a router, spine or leaf",
                );
            }
        }
        Some(Node {
            name: name.to_string(),
            role,
            asn: asn.as_ref().map(|(a, _)| *a as u32),
            id: id.as_ref().map(|(i, _)| *i as u32),
            serial: serial.as_ref().map(|s| s.0.clone()),
            mac: mac.as_ref().map(|m| m.0.clone()),
            management: management.as_ref().map(|m| m.0),
            loopback: loopback.as_ref().map(|l| l.0),
            led,
            frr: frr.as_ref().map(|f| f.0.clone()),
            spans: NodeSpans {
                name: name_span,
                role: Some(role_span),
                asn: asn.map(|a| a.1),
                id: id.map(|i| i.1),
                serial: serial.map(|s| s.1),
                mac: mac.map(|m| m.1),
                management: management.map(|m| m.1),
                loopback: loopback.map(|l| l.1),
                frr: frr.map(|f| f.1),
            },
        })
    }

    /// `led = "act"`, `"none"` or `{ gpio = N }`; default the ACT LED.
    fn led(&mut self, t: &Table, place: &str) -> Led {
        let act = Led::Sysfs { name: "ACT".to_string() };
        let Some(value) = t.get("led") else { return act };
        let help = "write led = \"act\" (the on-board LED), led = \"none\", or led = { gpio = 17 }";
        match value.get_ref() {
            DeValue::String(s) if s.eq_ignore_ascii_case("act") => act,
            DeValue::String(s) if s.eq_ignore_ascii_case("none") => Led::None,
            DeValue::Table(lt) => {
                self.keys(lt, &["gpio"], &format!("{place} led"));
                match self.integer(lt, "gpio", place, 0..=27) {
                    Some((pin, _)) => Led::Gpio { pin: pin as u8 },
                    None => {
                        if !lt.contains_key("gpio") {
                            self.error(value.span(), "led table without gpio", help);
                        }
                        act
                    }
                }
            }
            _ => {
                self.error(value.span(), "led must be \"act\", \"none\" or { gpio = N }", help);
                act
            }
        }
    }

    /// Elements of an array of tables such as `[[links]]`.
    fn array_of_tables<'t, 'i>(
        &mut self,
        doc: &'t Table<'i>,
        key: &str,
    ) -> Vec<(&'t Table<'i>, Span)> {
        let Some(value) = doc.get(key) else { return Vec::new() };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, key, "the lab file", &format!("an array of tables ([[{key}]])"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((t, item.span())),
                _ => self.wrong_type(
                    item,
                    key,
                    "the lab file",
                    &format!("an array of tables ([[{key}]])"),
                ),
            }
        }
        out
    }

    fn links(&mut self, doc: &Table) -> Vec<Link> {
        let mut links = Vec::new();
        for (t, header) in self.array_of_tables(doc, "links") {
            let place = "[[links]]";
            self.keys(t, LINK_KEYS, place);
            let a = self.endpoint_field(t, "a", place, &header);
            let b = self.endpoint_field(t, "b", place, &header);
            let mtu = self.integer(t, "mtu", place, 68..=65535);
            let subnet = self.converted(t, "subnet", place, |s| network(s, "link subnet", 30..=31));
            let (tc_a, tc_b) = self.link_tc(t);
            if let (Some(a), Some(b)) = (a, b) {
                links.push(Link {
                    a,
                    b,
                    mtu: mtu.map(|m| m.0 as u32),
                    tc_a,
                    tc_b,
                    subnet: subnet.as_ref().map(|s| s.0),
                    spans: LinkSpans { header, subnet: subnet.map(|s| s.1) },
                });
            }
        }
        links
    }

    fn endpoint_field(
        &mut self,
        t: &Table,
        key: &str,
        place: &str,
        header: &Span,
    ) -> Option<Endpoint> {
        let field = self.string(t, key, place);
        let (text, span) = self.required(
            field,
            t,
            key,
            place,
            header,
            &format!("add {key} = \"node:interface\""),
        )?;
        self.endpoint(&text, span)
    }

    /// `node:interface`, with spans for each half.
    fn endpoint(&mut self, text: &str, span: Span) -> Option<Endpoint> {
        let Some((node, interface)) = text.split_once(':') else {
            self.error(
                span,
                format!("\"{text}\" is not node:interface"),
                "write both, e.g. \"leaf1:eth1\" or \"leaf1:eth0.101\" for VLAN 101 on eth0",
            );
            return None;
        };
        let node_span = self.inner(&span, text, 0, node.len());
        let iface_span = self.inner(&span, text, node.len() + 1, interface.len());
        if node.is_empty() {
            self.error(span, format!("\"{text}\" has no node name"), "write \"node:interface\"");
            return None;
        }
        if let Err((message, help)) = interface_ok(interface) {
            self.error(iface_span, message, help);
            return None;
        }
        Some(Endpoint {
            node: node.to_string(),
            interface: interface.to_string(),
            spans: EndpointSpans { whole: span, node: node_span, interface: iface_span },
        })
    }

    /// The span of `text[offset..offset+len]` inside a string value, when
    /// the string is written plainly (no escapes); else the whole value.
    fn inner(&self, span: &Span, text: &str, offset: usize, len: usize) -> Span {
        let raw = self.diags.source.slice(span).unwrap_or("");
        if raw.len() == text.len() + 2 && raw.get(1..raw.len() - 1) == Some(text) {
            span.start + 1 + offset..span.start + 1 + offset + len
        } else {
            span.clone()
        }
    }

    fn segments(&mut self, doc: &Table) -> Vec<SegmentSpec> {
        let mut segments = Vec::new();
        for (t, header) in self.array_of_tables(doc, "segments") {
            let place = "[[segments]]";
            self.keys(t, SEGMENT_KEYS, place);
            let name = self.converted(t, "name", place, |s| name_ok(s, "segment name"));
            let name = self.required(name, t, "name", place, &header, "add name = \"blue\"");
            let vni = self.integer(t, "vni", place, VNI_RANGE);
            let vni = self.required(vni, t, "vni", place, &header, "add vni = N (1 to 16777215)");
            let flooding = self.converted(t, "flooding", place, flooding);
            let mode = self.converted(t, "mode", place, segment_mode);
            // A missing list is reported by validation as "no leaves".
            let leaves =
                t.get("leaves").map(|v| self.strings(v, "leaves", place)).unwrap_or_default();
            let access: Vec<Endpoint> = match t.get("access") {
                Some(v) => self
                    .strings(v, "access", place)
                    .into_iter()
                    .filter_map(|(s, span)| self.endpoint(&s, span))
                    .collect(),
                None => Vec::new(),
            };
            let subnet =
                self.converted(t, "subnet", place, |s| network(s, "segment subnet", 0..=30));
            let (Some((name, name_span)), Some((vni, vni_span))) = (name, vni) else {
                let ports = access.into_iter().map(|e| (e.node, e.interface));
                self.left_out_access.extend(ports);
                continue;
            };
            segments.push(SegmentSpec {
                name,
                vni: vni as u32,
                flooding: flooding.map_or(FloodingMode::Static, |f| f.0),
                mode: mode.map_or(SegmentMode::Bridge, |m| m.0),
                leaves: leaves.iter().map(|l| l.0.clone()).collect(),
                access,
                subnet: subnet.as_ref().map(|s| s.0),
                spans: SegmentSpans {
                    header,
                    name: Some(name_span),
                    vni: Some(vni_span),
                    leaves: leaves.into_iter().map(|l| l.1).collect(),
                    subnet: subnet.map(|s| s.1),
                },
            });
        }
        segments
    }
}

#[path = "parse_tests.rs"]
mod lab_tests;

#[path = "parse_tc.rs"]
mod tc;

/// Offsets and texts (`[nodes.r1]`, `[[links]]`) of the table headers in
/// a TOML text, in order: read once, so that any number of errors can be
/// placed in their table.
fn table_headers(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let header = trimmed.split('#').next().unwrap_or(trimmed).trim_end();
            out.push((offset, header));
        }
        offset += line.len();
    }
    out
}

/// Where on its line a TOML syntax error is, in the user's words: `in the
/// value of "asn" in [nodes.r1]`, `in a table header`, `in [nodes.r1]`.
fn syntax_error_place(line: &str, column: usize, headers: &[(usize, &str)], at: usize) -> String {
    if line.trim_start().starts_with('[') {
        return "in a table header".to_string();
    }
    let table = match headers.partition_point(|(offset, _)| *offset <= at) {
        0 => "the lab file",
        i => headers[i - 1].1,
    };
    let key = line.get(..column).and_then(|before| before.split_once('=')).map(|(k, _)| k.trim());
    match key {
        Some(key) if !key.is_empty() && !key.contains('#') => {
            format!("in the value of \"{}\" in {table}", key.trim_matches(['"', '\'']))
        }
        _ => format!("in {table}"),
    }
}

fn declared_nodes(doc: &Table) -> Vec<String> {
    match doc.get("nodes").map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => t.keys().map(|k| k.get_ref().to_string()).collect(),
        _ => Vec::new(),
    }
}

fn split<T>(field: Field<T>, default: T) -> (T, Option<Span>) {
    match field {
        Some((v, span)) => (v, Some(span)),
        None => (default, None),
    }
}

type Check<T> = Result<T, (String, String)>;

/// Names of labs, nodes and segments: usable as hostnames and in file and
/// namespace names.
pub(crate) fn name_ok(s: &str, what: &str) -> Check<String> {
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.ends_with('-');
    if valid {
        Ok(s.to_string())
    } else {
        Err((
            format!("{what} \"{s}\" is not a valid name"),
            "use letters, digits and '-', start with a letter, at most 63 characters (it becomes a hostname)".to_string(),
        ))
    }
}

/// A Linux interface name, optionally `parent.vlan`.
pub fn interface_ok(name: &str) -> Check<()> {
    let help = "Linux interface names are 1-15 characters without '/', ':' or spaces; write eth0.101 for VLAN 101 on eth0".to_string();
    if name.is_empty()
        || name.len() > 15
        || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        || name == "."
        || name == ".."
    {
        return Err((format!("\"{name}\" is not a valid interface name"), help));
    }
    let mut port = name;
    if let Some((parent, vid)) = name.rsplit_once('.')
        && vid.chars().all(|c| c.is_ascii_digit())
    {
        match vid.parse::<u16>() {
            Ok(id @ 1..=4094) if !parent.is_empty() => {
                if vid.starts_with('0') {
                    return Err((
                        format!("VLAN id {vid} of \"{name}\" has a leading zero"),
                        format!(
                            "write {parent}.{id}: {name} and {parent}.{id} would be one VLAN under two names"
                        ),
                    ));
                }
                port = parent;
            }
            _ => {
                return Err((
                    format!("\"{name}\" is not a valid VLAN interface"),
                    "write PARENT.VLAN with a VLAN id from 1 to 4094, e.g. eth0.101".to_string(),
                ));
            }
        }
    }
    if let Some(owner) = reserved_port(port) {
        return Err((
            format!("\"{port}\" is {owner}, not a lab port"),
            "name the lab port after its NIC, e.g. eth1, or eth0.101 for VLAN 101 on eth0"
                .to_string(),
        ));
    }
    Ok(())
}

/// Devices a node has besides its lab ports: the loopback, the fleet's
/// management port, and the agent's VXLAN device and bridge of each VNI
/// (`vxlanN`, `brN`, see `compile`).
fn reserved_port(name: &str) -> Option<String> {
    let vni = |prefix: &str| {
        name.strip_prefix(prefix).filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    if name == "lo" {
        Some("the loopback".to_string())
    } else if name == defaults::FLEET_MANAGEMENT_PORT {
        Some("the management port of the virtual fleet".to_string())
    } else if let Some(n) = vni("vxlan") {
        Some(format!("the agent's VXLAN device of VNI {n}"))
    } else {
        vni("br").map(|n| format!("the agent's bridge of VNI {n}"))
    }
}

fn ipv4(s: &str, what: &str) -> Check<Ipv4Addr> {
    s.parse().map_err(|_| {
        (
            format!("{what} \"{s}\" is not an IPv4 address"),
            "write a dotted quad, e.g. 192.168.200.10 (the underlay is IPv4)".to_string(),
        )
    })
}

/// A prefix written as its network address, with a length in `lengths`.
fn network(s: &str, what: &str, lengths: RangeInclusive<u8>) -> Check<Ipv4Net> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        (
            format!("{what} \"{s}\" is not an IPv4 prefix"),
            "write ADDRESS/LENGTH, e.g. 10.1.0.0/16".to_string(),
        )
    })?;
    if !lengths.contains(&net.prefix_len()) {
        return Err((
            format!("{what} {net} has the wrong length"),
            format!("use a prefix length from /{} to /{}", lengths.start(), lengths.end()),
        ));
    }
    if net.trunc() != net {
        return Err((
            format!("{what} {net} has host bits set"),
            format!("did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

pub(crate) fn role(s: &str) -> Check<Role> {
    match s {
        "router" => Ok(Role::Router),
        "spine" => Ok(Role::Spine),
        "leaf" => Ok(Role::Leaf),
        "host" => Ok(Role::Host),
        _ => Err((
            format!("unknown role \"{s}\""),
            match did_you_mean(s, ROLES) {
                Some(r) => format!("did you mean \"{r}\"?"),
                None => format!("expected one of: {}", list(ROLES)),
            },
        )),
    }
}

fn protocol(s: &str) -> Check<UnderlayProtocol> {
    match s {
        "ebgp" => Ok(UnderlayProtocol::Ebgp),
        "ospf" => Ok(UnderlayProtocol::Ospf),
        "isis" => Ok(UnderlayProtocol::Isis),
        _ => Err((
            format!("unknown underlay protocol \"{s}\""),
            match did_you_mean(s, PROTOCOLS) {
                Some(p) => format!("did you mean \"{p}\"?"),
                None => "expected \"ebgp\" (the default), \"ospf\" or \"isis\"".to_string(),
            },
        )),
    }
}

/// An OSPF area: a dotted quad, or a number written as a string.
fn ospf_area(s: &str) -> Check<String> {
    if let Ok(addr) = s.parse::<Ipv4Addr>() {
        return Ok(addr.to_string());
    }
    match s.parse::<u32>() {
        Ok(n) => Ok(Ipv4Addr::from(n).to_string()),
        Err(_) => Err((
            format!("OSPF area \"{s}\" is neither a dotted quad nor a number"),
            "write area = \"0.0.0.0\" (the backbone) or area = \"0\"".to_string(),
        )),
    }
}

/// An IS-IS area address: an AFI byte and up to six groups of four hex
/// digits, e.g. `49.0001`.
pub fn isis_area(s: &str) -> Check<String> {
    let mut parts = s.split('.');
    let afi = parts.next().unwrap_or("");
    let groups: Vec<&str> = parts.collect();
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    if hex(afi, 2) && groups.len() <= 6 && groups.iter().all(|g| hex(g, 4)) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err((
            format!("IS-IS area \"{s}\" is not an area address"),
            "write two hex digits and groups of four, e.g. area = \"49.0001\"".to_string(),
        ))
    }
}

fn flooding(s: &str) -> Check<FloodingMode> {
    match s {
        "static" => Ok(FloodingMode::Static),
        "evpn" => Ok(FloodingMode::Evpn),
        _ => Err((
            format!("unknown flooding \"{s}\""),
            "expected \"static\" (head-end replication lists) or \"evpn\" (BGP EVPN)".to_string(),
        )),
    }
}

fn segment_mode(s: &str) -> Check<SegmentMode> {
    match s {
        "bridge" => Ok(SegmentMode::Bridge),
        "irb" => Ok(SegmentMode::Irb),
        _ => Err((
            format!("unknown segment mode \"{s}\""),
            match did_you_mean(s, SEGMENT_MODES) {
                Some(m) => format!("did you mean \"{m}\"?"),
                None => "expected \"bridge\" (the leaves only bridge, the default) or \"irb\" (each leaf also gets an address on its bridge)".to_string(),
            },
        )),
    }
}

/// A board serial number as the kernel shows it: hex digits, stored in
/// lower case.
fn serial(s: &str) -> Check<String> {
    if !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err((
            format!("serial \"{s}\" is not a board serial number"),
            "write the hex digits of /proc/device-tree/serial-number, e.g. \"00000000a1b2c3d4\""
                .to_string(),
        ))
    }
}

/// A MAC address with `:` or `-`, stored as lower-case `aa:bb:cc:dd:ee:ff`.
fn mac(s: &str) -> Check<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let hex_pair = |p: &&str| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit());
    let bytes: Vec<u8> = parts.iter().filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    if parts.len() != 6 || !parts.iter().all(hex_pair) {
        return Err((
            format!("mac \"{s}\" is not a MAC address"),
            "write six hex pairs, e.g. \"b8:27:eb:12:34:56\"".to_string(),
        ));
    }
    let mac = parts.join(":").to_ascii_lowercase();
    let kind = if bytes.iter().all(|b| *b == 0xff) {
        "the broadcast address"
    } else if bytes[0] & 1 == 1 {
        "a multicast address (its first byte is odd)"
    } else if bytes.iter().all(|b| *b == 0) {
        "the all-zero address"
    } else {
        return Ok(mac);
    };
    Err((
        format!("mac {mac} is {kind}, not a board's address"),
        "write the board's own unicast MAC, e.g. \"b8:27:eb:12:34:56\" (ip link show eth0)"
            .to_string(),
    ))
}

/// `address[:port]`, IPv4 or IPv6 (`[2001:db8::1]:6343`).
pub fn collector(s: &str) -> Check<SocketAddr> {
    let parsed = s.parse::<SocketAddr>().ok().or_else(|| {
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, defaults::SFLOW_PORT))
    });
    match parsed {
        Some(addr) if addr.port() != 0 => Ok(addr),
        _ => Err((
            format!("collector \"{s}\" is not address[:port]"),
            "write e.g. \"192.168.200.1\", \"192.168.200.1:6343\" or \"[2001:db8::1]:6343\" (default port 6343)".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectors_take_default_port() {
        assert_eq!(collector("10.0.0.1").unwrap(), "10.0.0.1:6343".parse().unwrap());
        assert_eq!(collector("10.0.0.1:9999").unwrap(), "10.0.0.1:9999".parse().unwrap());
        assert_eq!(collector("[2001:db8::1]:1").unwrap(), "[2001:db8::1]:1".parse().unwrap());
        assert_eq!(collector("2001:db8::1").unwrap().port(), 6343);
        assert!(collector("host.example:6343").is_err());
        assert!(collector("10.0.0.1:0").is_err());
    }

    #[test]
    fn interface_names() {
        assert!(interface_ok("eth0.101").is_ok());
        assert!(interface_ok("enx001122334455").is_ok());
        assert!(interface_ok("eth0.0").is_err());
        assert!(interface_ok("eth0.4095").is_err());
        assert!(interface_ok("a-name-that-is-too-long").is_err());
        assert!(interface_ok("").is_err());
    }

    #[test]
    fn macs_are_normalised() {
        assert_eq!(mac("B8-27-EB-12-34-56").unwrap(), "b8:27:eb:12:34:56");
        assert!(mac("b8:27:eb:12:34").is_err());
    }
}
