//! VLANs and how they are carried: `vlans`, `vlan`, `vxlan` and `evpn`.

use super::{NVlan, Reader, Topology};
use crate::lab::FloodingMode;
use crate::netlab::yaml::{Node, Value};

const VLAN_KEYS: &[&str] = &["id", "vni", "prefix", "ipv4", "mode", "evpn"];

impl Reader<'_> {
    pub(super) fn vlans(&mut self, node: &Node) -> Vec<NVlan> {
        let Some(entries) = node.entries() else {
            self.error(
                node.span.clone(),
                "vlans must be a dictionary of VLAN names",
                "write vlans: { red: { vni: 5000 } }",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            let place = format!("vlans.{}", e.key);
            let mut vlan = NVlan {
                name: e.key.clone(),
                span: e.key_span.clone(),
                id: None,
                vni: None,
                prefix: None,
            };
            if matches!(e.value.value, Value::Null) {
                out.push(vlan);
                continue;
            }
            if !self.keys(&e.value, VLAN_KEYS, &place) {
                continue;
            }
            for v in e.value.entries().unwrap_or_default() {
                match v.key.as_str() {
                    "id" => vlan.id = self.int(&v.value, &format!("{place}.id"), 1, 4094),
                    "vni" => vlan.vni = self.int(&v.value, &format!("{place}.vni"), 1, 16_777_215),
                    "prefix" | "ipv4" => {
                        vlan.prefix = self.prefix(&v.value, &format!("{place}.{}", v.key))
                    }
                    "mode" => {
                        if self
                            .string(&v.value, &format!("{place}.mode"))
                            .is_some_and(|m| m != "bridge")
                        {
                            self.error(v.value.span.clone(), format!("{place}.mode: pi-lab does not route between segments"), "write mode: bridge; for leaf addresses without routing, set mode = \"irb\" on the segment in the converted lab file");
                        }
                    }
                    _ => {
                        // evpn.* per VLAN (route targets, EVI): not built.
                        self.error(
                            v.key_span.clone(),
                            format!("{place}.{} is not supported by pi-lab", v.key),
                            "pi-lab derives EVPN settings itself; remove it",
                        );
                    }
                }
            }
            out.push(vlan);
        }
        out
    }

    pub(super) fn vlan_settings(&mut self, node: &Node) {
        if !self.keys(node, &["mode"], "vlan") {
            return;
        }
        if let Some(m) = node.get("mode")
            && self.string(&m.value, "vlan.mode").is_some_and(|m| m != "bridge")
        {
            self.error(
                m.value.span.clone(),
                "vlan.mode: pi-lab does not route between segments",
                "write mode: bridge; for leaf addresses without routing, set mode = \"irb\" on the segments in the converted lab file",
            );
        }
    }

    pub(super) fn vxlan(&mut self, node: &Node, topo: &mut Topology) {
        if !self.keys(node, &["flooding", "vlans"], "vxlan") {
            return;
        }
        if let Some(f) = node.get("flooding") {
            topo.vxlan_flooding = match self.string(&f.value, "vxlan.flooding").as_deref() {
                Some("static") => Some(FloodingMode::Static),
                Some("evpn") => Some(FloodingMode::Evpn),
                Some(other) => {
                    self.error(
                        f.value.span.clone(),
                        format!("vxlan.flooding {other} is not supported"),
                        "write static or evpn",
                    );
                    None
                }
                None => None,
            };
        }
        if let Some(v) = node.get("vlans") {
            topo.vxlan_vlans = Some(self.names(&v.value, "vxlan.vlans"));
        }
    }

    pub(super) fn evpn(&mut self, node: &Node, topo: &mut Topology) {
        if !self.keys(node, &["vlans", "session"], "evpn") {
            return;
        }
        if let Some(v) = node.get("vlans") {
            topo.evpn_vlans = Some(self.names(&v.value, "evpn.vlans"));
        }
        if let Some(s) = node.get("session") {
            for (session, span) in self.names(&s.value, "evpn.session") {
                if session != "ibgp" && session != "ebgp" {
                    self.error(
                        span,
                        format!("evpn.session {session} is not a session type"),
                        "write ibgp or ebgp",
                    );
                }
            }
        }
    }
}
