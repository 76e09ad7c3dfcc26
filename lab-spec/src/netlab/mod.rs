//! netlab topology files (`topology.yml`) turned into pi-lab lab files.
//!
//! [`convert`] reads the YAML with positions ([`yaml`]), takes what pi-lab
//! builds key by key ([`read`]) and writes the equivalent lab TOML, which
//! then goes through the same parser and checks as a hand-written one.
//! Anything pi-lab cannot build (a module such as `mpls`, a key such as
//! `vrfs`, a LAN with three nodes) is an error at `file:line:column` naming
//! it; what only concerns netlab's runtime (`provider`, `defaults.*`, node
//! `device` and image settings) is said once, as one warning.
//!
//! How netlab's model maps (and where pi-lab's defaults differ):
//!
//! - nodes (list, dictionary, `name:` entries) and groups with members;
//!   `device: linux` or `role: host` make a host, other nodes are routers;
//! - routers with a `vlan.access` link are leaves (VTEPs), route
//!   reflectors (`bgp.rr`, `bgp.rr_list`) are spines, and so are EVPN
//!   routers without VLANs in an eBGP fabric (they carry EVPN between
//!   leaves); the rest stay routers;
//! - modules: `ospf` or `isis` on the routers picks the underlay; without
//!   an IGP, `bgp` is the eBGP underlay; `bgp.as`, `bgp.as_list` and node
//!   `bgp.as` give the ASNs (netlab has no default AS, nor has pi-lab);
//! - node ids as netlab numbers them (explicit `id` first, then in order):
//!   loopback = loopback pool + id (10.0.0.1, ...), management address =
//!   mgmt pool + `mgmt.start` (100) + id, like netlab. The management pool
//!   is pi-lab's 192.168.200.0/24 unless `addressing.mgmt` says otherwise
//!   (netlab's 192.168.121.0/24 is a vagrant-libvirt default); loopback
//!   10.0.0.0/24, p2p 10.1.0.0/16 and lan 172.16.0.0/16 are the same in
//!   both. Links get /31s allocated by pi-lab (netlab numbers /30s in
//!   order) unless `prefix` fixes one;
//! - `vlans` with `vlan.access` links become segments (VNI from `vni`, else
//!   netlab's 100000 + VLAN id, VLAN ids from 1000 in order); flooding is
//!   EVPN where the `evpn` module runs, else `vxlan.flooding` (static);
//! - interfaces are `eth1`, `eth2`, ... per node in link order (what netlab
//!   gives FRR and Linux nodes) unless `ifname` fixes one;
//! - `validate` tests whose `plugin` pi-lab knows become `[[validate]]`.

pub mod read;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use crate::diagnostics::{Diagnostic, Diagnostics, Source, Span, list};
use crate::lab::{FloodingMode, defaults};
use read::{NCheck, NNode, Reader, Topology, netlab_defaults, pi_lab_name};

/// A converted topology.
#[derive(Debug, Clone)]
pub struct Import {
    /// The lab file, ready for [`crate::parse`].
    pub toml: String,
    pub name: String,
    /// Warnings about the YAML (what was left to netlab's runtime), to be
    /// shown once.
    pub notes: Diagnostics,
}

/// Convert the text of a netlab topology. `file_name` names it in
/// messages; `default_name` is the lab name when the topology has none
/// (netlab takes the directory's name).
pub fn convert(text: &str, file_name: &str, default_name: &str) -> Result<Import, Diagnostics> {
    let source = Source::new(file_name, text);
    let mut diags = Diagnostics::new(source);
    let doc = match yaml::load(text) {
        Ok(doc) => doc,
        Err(e) => {
            diags.push(Diagnostic::error(e.span, e.message).help("fix the YAML syntax"));
            return Err(diags);
        }
    };
    let mut reader = Reader::new(text);
    let topo = reader.topology(&doc);
    let mut builder = Builder { reader, topo };
    let lab = builder.build(default_name);
    let Reader { found, ignored, .. } = builder.reader;
    diags.extend(found);
    if let Some((_, span)) = ignored.first() {
        let keys: Vec<&str> = ignored.iter().map(|(k, _)| k.as_str()).collect();
        diags.push(
            Diagnostic::warning(
                span.clone(),
                format!("ignored (netlab runtime settings): {}", list(&keys)),
            )
            .help("pi-lab runs every router on FRR, on Raspberry Pis or in network namespaces"),
        );
    }
    diags.sort();
    match lab {
        Some((name, toml)) if !diags.has_errors() => Ok(Import { toml, name, notes: diags }),
        _ => Err(diags),
    }
}

/// The lab name netlab would use: the file's stem, or its directory's
/// name for the usual `topology.yml`.
pub fn default_name(path: &std::path::Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("netlab");
    let from_dir = path.canonicalize().ok().and_then(|p| {
        p.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned())
    });
    match (stem, from_dir) {
        ("topology", Some(dir)) => dir,
        (stem, _) => stem.to_string(),
    }
}

/// The name of the lab a netlab topology makes, without converting the
/// rest (for `lab down`, which must work on a file that no longer
/// converts).
pub fn lab_name(text: &str, path: &std::path::Path) -> String {
    let named = yaml::load(text).ok().and_then(|doc| doc.get("name").and_then(|e| e.value.text()));
    pi_lab_name(&named.unwrap_or_else(|| default_name(path)))
}

struct Builder<'t> {
    reader: Reader<'t>,
    topo: Topology,
}

/// What each router runs, decided from the modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Underlay {
    Ebgp,
    Ospf,
    Isis,
}

/// A link end with its interface name decided.
#[derive(Debug, Clone)]
struct End {
    node: String,
    interface: String,
}

impl Builder<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.reader.error(span, message, help);
    }

    fn node(&self, name: &str) -> Option<&NNode> {
        self.topo.nodes.iter().find(|n| n.name == name)
    }

    /// A node's modules: its own list, else the lab's (hosts inherit none).
    fn modules(&self, n: &NNode) -> Vec<(String, Span)> {
        match (&n.modules, n.host) {
            (Some(m), _) => m.clone(),
            (None, true) => Vec::new(),
            (None, false) => self.topo.modules.clone().unwrap_or_default(),
        }
    }

    fn runs(&self, n: &NNode, module: &str) -> bool {
        self.modules(n).iter().any(|(m, _)| m == module)
    }

    fn routers(&self) -> impl Iterator<Item = &NNode> {
        self.topo.nodes.iter().filter(|n| !n.host)
    }

    fn build(&mut self, default_name: &str) -> Option<(String, String)> {
        let name = self.name(default_name)?;
        let underlay = self.underlay()?;
        let ends = self.interfaces();
        let leaves = self.leaves();
        let roles = self.roles(underlay, &leaves);
        let ids = self.ids();
        let segments = self.segments(&ends);
        self.check_links();
        let mut out = String::new();
        self.header(&mut out, &name, underlay);
        self.emit_nodes(&mut out, &roles, &ids, underlay);
        self.emit_links(&mut out, &ends);
        emit_segments(&mut out, &segments);
        self.emit_tests(&mut out);
        Some((name, out))
    }

    fn name(&mut self, default_name: &str) -> Option<String> {
        let (raw, span) = self.topo.name.clone().unwrap_or((default_name.to_string(), 0..0));
        let name = pi_lab_name(&raw);
        let ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && name.len() <= 63
            && !name.ends_with('-');
        if !ok {
            self.error(span, format!("\"{raw}\" cannot name a pi-lab lab"), "set name: with letters, digits and '_' (it becomes part of namespace and file names)");
            return None;
        }
        Some(name)
    }

    /// OSPF or IS-IS when the routers run it (all of them, one of the
    /// two); else eBGP when they run BGP.
    fn underlay(&mut self) -> Option<Underlay> {
        let routers: Vec<NNode> = self.routers().cloned().collect();
        let igp_of = |b: &Self, n: &NNode| -> Vec<(String, Span)> {
            b.modules(n).into_iter().filter(|(m, _)| m == "ospf" || m == "isis").collect()
        };
        let mut chosen: Option<(String, Span)> = None;
        for n in &routers {
            for (m, span) in igp_of(self, n) {
                match &chosen {
                    Some((c, _)) if *c != m => {
                        self.error(
                            span,
                            format!("module {m} next to {c}: pi-lab runs one IGP"),
                            format!("use {c} on every router, or {m}"),
                        );
                        return None;
                    }
                    Some(_) => {}
                    None => chosen = Some((m, span)),
                }
            }
        }
        if let Some((igp, _)) = &chosen {
            let missing: Vec<&NNode> = routers.iter().filter(|n| !self.runs(n, igp)).collect();
            for n in missing {
                self.reader.error(n.span.clone(), format!("router {} does not run {igp}", n.name), format!("pi-lab runs the underlay's IGP on every router; add {igp} to its module list"));
            }
            return Some(if igp == "ospf" { Underlay::Ospf } else { Underlay::Isis });
        }
        let bgp: Vec<&NNode> = routers.iter().filter(|n| self.runs(n, "bgp")).collect();
        if bgp.is_empty() {
            let linked = self
                .topo
                .links
                .iter()
                .any(|l| l.ends.iter().all(|e| self.node(&e.node).is_some_and(|n| !n.host)));
            if linked {
                let span = self.topo.links.first().map(|l| l.span.clone()).unwrap_or(0..0);
                self.error(
                    span,
                    "routers are linked but run no routing module",
                    "add module: [ ospf ] (or isis, or bgp) to the topology",
                );
                return None;
            }
            // Nothing to route between: OSPF only advertises the loopbacks.
            return Some(Underlay::Ospf);
        }
        let missing: Vec<&NNode> = routers.iter().filter(|n| !self.runs(n, "bgp")).collect();
        for n in missing {
            self.reader.error(
                n.span.clone(),
                format!("router {} runs no routing module", n.name),
                "with a BGP underlay every router runs bgp; add it to its module list",
            );
        }
        Some(Underlay::Ebgp)
    }

    /// `eth1`, `eth2`, ... per node in link order; `ifname` wins.
    fn interfaces(&mut self) -> Vec<(End, End)> {
        let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in &self.topo.links {
            for e in &l.ends {
                if let Some(i) = &e.ifname {
                    used.entry(e.node.clone()).or_default().insert(i.clone());
                }
            }
        }
        let mut next: BTreeMap<String, u32> = BTreeMap::new();
        let mut out = Vec::new();
        let links = self.topo.links.clone();
        for l in &links {
            let mut ends = Vec::new();
            for e in &l.ends {
                let interface = match &e.ifname {
                    Some(i) => {
                        if let Err((message, help)) = crate::parse::interface_ok(i) {
                            self.error(e.span.clone(), message, help);
                        }
                        i.clone()
                    }
                    None => {
                        let taken = used.entry(e.node.clone()).or_default();
                        let n = next.entry(e.node.clone()).or_insert(1);
                        while taken.contains(&format!("eth{n}")) {
                            *n += 1;
                        }
                        let name = format!("eth{n}");
                        taken.insert(name.clone());
                        name
                    }
                };
                ends.push(End { node: e.node.clone(), interface });
            }
            if let [a, b] = &ends[..] {
                out.push((a.clone(), b.clone()));
            }
        }
        out
    }

    /// Routers with an access port: the VTEPs.
    fn leaves(&self) -> BTreeSet<String> {
        self.topo
            .links
            .iter()
            .filter(|l| l.access.is_some())
            .flat_map(|l| l.ends.iter())
            .filter(|e| self.node(&e.node).is_some_and(|n| !n.host))
            .map(|e| e.node.clone())
            .collect()
    }

    fn roles(
        &mut self,
        underlay: Underlay,
        leaves: &BTreeSet<String>,
    ) -> BTreeMap<String, &'static str> {
        let mut roles = BTreeMap::new();
        let nodes = self.topo.nodes.clone();
        for n in &nodes {
            let role = if n.host {
                "host"
            } else if leaves.contains(&n.name) {
                if n.rr {
                    self.error(
                        n.span.clone(),
                        format!("{} is a route reflector with VLAN access ports", n.name),
                        "pi-lab's route reflectors are spines; give the VLANs to other routers",
                    );
                }
                "leaf"
            } else if n.rr || (underlay == Underlay::Ebgp && self.runs(n, "evpn")) {
                "spine"
            } else {
                "router"
            };
            if n.rr && !self.runs(n, "bgp") {
                self.error(
                    n.span.clone(),
                    format!("{} is a route reflector without the bgp module", n.name),
                    "add bgp to its module list",
                );
            }
            roles.insert(n.name.clone(), role);
        }
        roles
    }

    /// netlab's node ids: explicit ones, then 1, 2, ... in node order.
    fn ids(&mut self) -> BTreeMap<String, u32> {
        let mut ids = BTreeMap::new();
        let mut taken: BTreeSet<u32> = BTreeSet::new();
        let nodes = self.topo.nodes.clone();
        for n in &nodes {
            if let Some(id) = n.id {
                if !taken.insert(id) {
                    self.error(
                        n.span.clone(),
                        format!("id {id} of {} is also another node's", n.name),
                        "give each node its own id",
                    );
                }
                ids.insert(n.name.clone(), id);
            }
        }
        let mut next = 1;
        for n in nodes.iter().filter(|n| n.id.is_none()) {
            while taken.contains(&next) {
                next += 1;
            }
            taken.insert(next);
            ids.insert(n.name.clone(), next);
        }
        ids
    }

    fn check_links(&mut self) {
        let links = self.topo.links.clone();
        for l in &links {
            let hosts: Vec<&str> = l
                .ends
                .iter()
                .filter(|e| self.node(&e.node).is_some_and(|n| n.host))
                .map(|e| e.node.as_str())
                .collect();
            match (hosts.len(), &l.access) {
                (0, Some((_, span))) => self.error(
                    span.clone(),
                    "vlan.access on a link between two routers",
                    "pi-lab carries VLANs to hosts; link routers without a VLAN",
                ),
                (1, None) => {
                    let host = hosts[0].to_string();
                    self.error(l.span.clone(), format!("host {host} is on a link without vlan.access"), "pi-lab hosts sit in VLANs (segments): add vlan.access: NAME to the link and define the VLAN under vlans");
                }
                (2, _) => self.error(
                    l.span.clone(),
                    "a link between two hosts",
                    "link each host to a router with vlan.access",
                ),
                _ => {}
            }
            if l.access.is_some() && l.prefix.is_some() {
                let span = l.prefix.as_ref().map(|p| p.1.clone()).unwrap_or(l.span.clone());
                self.error(
                    span,
                    "prefix on a VLAN access link",
                    "set the prefix on the VLAN under vlans",
                );
            }
        }
    }

    /// Segments from VLANs with access links.
    fn segments(&mut self, ends: &[(End, End)]) -> Vec<Segment> {
        let vlans = self.topo.vlans.clone();
        // netlab's VLAN ids: explicit ones, then 1000, 1001, ...
        let mut taken: BTreeSet<u32> = vlans.iter().filter_map(|v| v.id).collect();
        let mut next = netlab_defaults::START_VLAN_ID;
        let mut ids = BTreeMap::new();
        for v in &vlans {
            let id = v.id.unwrap_or_else(|| {
                while taken.contains(&next) {
                    next += 1;
                }
                taken.insert(next);
                next
            });
            ids.insert(v.name.clone(), id);
        }
        let evpn_on = self.topo.nodes.iter().any(|n| self.runs(n, "evpn"));
        let mut segments: Vec<Segment> = Vec::new();
        let links = self.topo.links.clone();
        for (l, (a, b)) in links.iter().zip(ends) {
            let Some((vlan, span)) = &l.access else { continue };
            let Some(def) = vlans.iter().find(|v| v.name == *vlan) else {
                let known: Vec<&str> = vlans.iter().map(|v| v.name.as_str()).collect();
                let help = if known.is_empty() {
                    "define it: vlans: { NAME: { vni: 5000 } }".to_string()
                } else {
                    format!("the VLANs are {}", list(&known))
                };
                self.error(span.clone(), format!("unknown VLAN \"{vlan}\""), help);
                continue;
            };
            let (leaf, host) =
                if self.node(&a.node).is_some_and(|n| n.host) { (b, a) } else { (a, b) };
            let seg = match segments.iter_mut().position(|s| s.vlan == *vlan) {
                Some(i) => &mut segments[i],
                None => {
                    let id = ids.get(vlan).copied().unwrap_or(netlab_defaults::START_VLAN_ID);
                    let in_evpn = evpn_on
                        && self
                            .topo
                            .evpn_vlans
                            .as_ref()
                            .is_none_or(|v| v.iter().any(|(n, _)| n == vlan));
                    let flooding = if in_evpn {
                        FloodingMode::Evpn
                    } else {
                        self.topo.vxlan_flooding.unwrap_or(FloodingMode::Static)
                    };
                    segments.push(Segment {
                        vlan: vlan.clone(),
                        span: def.span.clone(),
                        vni: def.vni.unwrap_or(netlab_defaults::START_VNI + id),
                        flooding,
                        subnet: def.prefix.as_ref().map(|p| p.0),
                        leaves: Vec::new(),
                        access: Vec::new(),
                        hosts: Vec::new(),
                    });
                    let last = segments.len() - 1;
                    &mut segments[last]
                }
            };
            if !seg.leaves.contains(&leaf.node) {
                seg.leaves.push(leaf.node.clone());
            }
            seg.access.push(format!("{}:{}", leaf.node, leaf.interface));
            seg.hosts.push(host.node.clone());
        }
        for seg in &segments {
            if seg.leaves.len() < 2 {
                continue;
            }
            let no_vxlan: Vec<String> = seg
                .leaves
                .iter()
                .filter(|l| self.node(l).is_some_and(|n| !self.runs(n, "vxlan")))
                .cloned()
                .collect();
            let listed = self
                .topo
                .vxlan_vlans
                .as_ref()
                .is_none_or(|v| v.iter().any(|(n, _)| *n == seg.vlan));
            if !no_vxlan.is_empty() || !listed {
                self.error(seg.span.clone(), format!("VLAN {} spans {} but is not carried by VXLAN", seg.vlan, seg.leaves.join(", ")), "add vxlan (and vlan) to the routers' modules, and the VLAN to vxlan.vlans if that list is given; pi-lab has no VLAN trunks");
            }
        }
        if evpn_on {
            let nodes = self.topo.nodes.clone();
            let missing: Vec<&NNode> =
                nodes.iter().filter(|n| self.runs(n, "evpn") && !self.runs(n, "bgp")).collect();
            for n in missing {
                self.reader.error(
                    n.span.clone(),
                    format!("{} runs evpn without bgp", n.name),
                    "EVPN rides on BGP: add bgp to its modules",
                );
            }
        }
        segments
    }

    fn header(&mut self, out: &mut String, name: &str, underlay: Underlay) {
        let _ = writeln!(out, "# Converted from a netlab topology by `pi-lab lab import`.");
        let _ = writeln!(out, "name = {}", quote(name));
        if let Some(mgmt) = self.topo.mgmt {
            let _ = writeln!(out, "\n[management]\nsubnet = {}", quote(&mgmt.to_string()));
        }
        let t = &self.topo;
        let pools = [
            ("loopback", t.loopback_pool.map(IpNet::from)),
            ("p2p", t.p2p_pool.map(IpNet::from)),
            ("segments", t.lan_pool.map(IpNet::from)),
            ("loopback6", t.loopback6_pool.map(IpNet::from)),
            ("p2p6", t.p2p6_pool.map(IpNet::from)),
            ("segments6", t.lan6_pool.map(IpNet::from)),
        ];
        if pools.iter().any(|p| p.1.is_some()) {
            out.push_str("\n[pools]\n");
            for (key, net) in pools {
                if let Some(net) = net {
                    let _ = writeln!(out, "{key} = {}", quote(&net.to_string()));
                }
            }
        }
        let (protocol, igp) = match underlay {
            Underlay::Ebgp => ("ebgp", None),
            Underlay::Ospf => ("ospf", Some(self.topo.ospf.clone())),
            Underlay::Isis => ("isis", Some(self.topo.isis.clone())),
        };
        let _ = writeln!(out, "\n[underlay]\nprotocol = {}", quote(protocol));
        if self.topo.p2p_unnumbered {
            out.push_str("unnumbered = true\n");
        }
        if let Some(igp) = igp {
            if let Some((area, _)) = &igp.area {
                let _ = writeln!(out, "area = {}", quote(area));
            }
            if let Some(h) = igp.hello {
                let _ = writeln!(out, "hello = {h}");
            }
            if let Some(d) = igp.dead {
                let _ = writeln!(out, "dead = {d}");
            }
        }
        if let Some((asn, _)) = self.topo.bgp_as {
            let _ = writeln!(out, "\n[bgp]\nasn = {asn}");
        }
    }

    fn emit_nodes(
        &mut self,
        out: &mut String,
        roles: &BTreeMap<String, &str>,
        ids: &BTreeMap<String, u32>,
        underlay: Underlay,
    ) {
        let loopbacks = self.topo.loopback_pool.unwrap_or(defaults::LOOPBACK);
        let mgmt = self.topo.mgmt.unwrap_or(defaults::MANAGEMENT);
        let start = self.topo.mgmt_start.unwrap_or(netlab_defaults::MGMT_START);
        let nodes = self.topo.nodes.clone();
        for n in &nodes {
            let role = roles.get(&n.name).copied().unwrap_or("router");
            let _ = writeln!(out, "\n[nodes.{}]\nrole = {}", key(&n.name), quote(role));
            let id = ids.get(&n.name).copied().unwrap_or(1);
            if !n.host {
                let bgp = self.runs(n, "bgp");
                match (n.asn.clone(), bgp) {
                    (Some((asn, _)), true) => {
                        let _ = writeln!(out, "asn = {asn}");
                    }
                    (Some((_, span)), false) if underlay == Underlay::Ebgp => {
                        self.error(
                            span,
                            format!("{} has an AS but does not run bgp", n.name),
                            "add bgp to its module list",
                        );
                    }
                    (None, true) if self.topo.bgp_as.is_none() => {
                        self.error(
                            n.span.clone(),
                            format!("{} runs bgp but has no AS", n.name),
                            "set bgp.as for the lab, bgp.as on the node, or list it in bgp.as_list",
                        );
                    }
                    _ => {}
                }
                let lo = n.loopback.or_else(|| host_of(loopbacks, id));
                if let Some(lo) = lo {
                    let _ = writeln!(out, "loopback = {}", quote(&lo.to_string()));
                }
            }
            if let Some(m) = n.mgmt.or_else(|| host_of(mgmt, start + id)) {
                let _ = writeln!(out, "management = {}", quote(&m.to_string()));
            }
        }
    }

    fn emit_links(&self, out: &mut String, ends: &[(End, End)]) {
        for (l, (a, b)) in self.topo.links.iter().zip(ends) {
            let _ = writeln!(
                out,
                "\n[[links]]\na = {}\nb = {}",
                quote(&format!("{}:{}", a.node, a.interface)),
                quote(&format!("{}:{}", b.node, b.interface))
            );
            if let Some(mtu) = l.mtu {
                let _ = writeln!(out, "mtu = {mtu}");
            }
            if let Some((net, _)) = l.prefix {
                let _ = writeln!(out, "subnet = {}", quote(&net.to_string()));
            }
            if l.is_unnumbered() {
                out.push_str("unnumbered = true\n");
            }
            let ends = l.ends.iter().map(|e| &e.tc);
            for (key, tc) in
                [("tc", &l.tc)].into_iter().chain(["tc_a", "tc_b"].into_iter().zip(ends))
            {
                if let Some(tc) = tc {
                    let _ = writeln!(out, "{key} = {tc}");
                }
            }
        }
    }

    fn emit_tests(&self, out: &mut String) {
        for t in &self.topo.tests {
            let _ = writeln!(out, "\n[[validate]]\nname = {}", quote(&t.name));
            if let Some(d) = &t.description {
                let _ = writeln!(out, "description = {}", quote(d));
            }
            let nodes: Vec<String> = t.nodes.iter().map(|n| quote(n)).collect();
            let _ = writeln!(out, "nodes = [{}]", nodes.join(", "));
            let _ = match &t.check {
                NCheck::Ping(to, None) => writeln!(out, "ping = {}", quote(to)),
                NCheck::Ping(to, Some(af)) => {
                    writeln!(out, "ping = {{ to = {}, af = {} }}", quote(to), quote(af.as_str()))
                }
                NCheck::Bgp(peer) => writeln!(out, "bgp = {}", quote(peer)),
                NCheck::Ospf(peer) => writeln!(out, "ospf = {}", quote(peer)),
                NCheck::Isis(peer) => writeln!(out, "isis = {}", quote(peer)),
            };
            if let Some(w) = t.wait {
                let _ = writeln!(out, "wait = {w}");
            }
            if t.level_warning {
                let _ = writeln!(out, "level = \"warning\"");
            }
            for (k, v) in [("pass", &t.pass), ("fail", &t.fail)] {
                if let Some(v) = v {
                    let _ = writeln!(out, "{k} = {}", quote(v));
                }
            }
        }
    }
}

/// A segment made from a VLAN.
#[derive(Debug, Clone)]
struct Segment {
    vlan: String,
    span: Span,
    vni: u32,
    flooding: FloodingMode,
    subnet: Option<Ipv4Net>,
    leaves: Vec<String>,
    access: Vec<String>,
    hosts: Vec<String>,
}

fn emit_segments(out: &mut String, segments: &[Segment]) {
    for s in segments {
        let _ = writeln!(out, "\n# VLAN {} (hosts {})", s.vlan, s.hosts.join(", "));
        let _ = writeln!(
            out,
            "[[segments]]\nname = {}\nvni = {}\nflooding = {}",
            quote(&pi_lab_name(&s.vlan)),
            s.vni,
            quote(&s.flooding.to_string())
        );
        let leaves: Vec<String> = s.leaves.iter().map(|l| quote(l)).collect();
        let access: Vec<String> = s.access.iter().map(|a| quote(a)).collect();
        let _ = writeln!(out, "leaves = [{}]\naccess = [{}]", leaves.join(", "), access.join(", "));
        if let Some(net) = s.subnet {
            let _ = writeln!(out, "subnet = {}", quote(&net.to_string()));
        }
    }
}

/// Host number `n` of `net`, if it is one.
fn host_of(net: Ipv4Net, n: u32) -> Option<Ipv4Addr> {
    let addr = Ipv4Addr::from(u32::from(net.network()).checked_add(n)?);
    (net.contains(&addr) && addr != net.broadcast() && n > 0).then_some(addr)
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be.
fn key(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        s.to_string()
    } else {
        quote(s)
    }
}
