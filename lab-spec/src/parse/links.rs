//! `[[links]]` and `[[segments]]`, and the `node:interface` endpoints they
//! name.

use super::values::{flooding, interface_ok, name_ok, network, network6, segment_mode};
use super::{Reader, Table, VNI_RANGE};
use crate::diagnostics::Span;
use crate::lab::{
    Endpoint, EndpointSpans, FloodingMode, Link, LinkSpans, SegmentMode, SegmentSpans, SegmentSpec,
};

const LINK_KEYS: &[&str] =
    &["a", "b", "mtu", "subnet", "subnet6", "unnumbered", "tc", "tc_a", "tc_b"];
const SEGMENT_KEYS: &[&str] =
    &["name", "vni", "flooding", "mode", "leaves", "access", "subnet", "subnet6"];

impl Reader {
    pub(super) fn links(&mut self, doc: &Table) -> Vec<Link> {
        let mut links = Vec::new();
        for (t, header) in self.array_of_tables(doc, "links") {
            let place = "[[links]]";
            self.keys(t, LINK_KEYS, place);
            let a = self.endpoint_field(t, "a", place, &header);
            let b = self.endpoint_field(t, "b", place, &header);
            let mtu = self.integer(t, "mtu", place, 68..=65535);
            let subnet = self.converted(t, "subnet", place, |s| network(s, "link subnet", 30..=31));
            let subnet6 =
                self.converted(t, "subnet6", place, |s| network6(s, "link subnet6", 64..=127));
            let unnumbered = self.boolean(t, "unnumbered", place);
            let (tc_a, tc_b) = self.link_tc(t);
            if let (Some(a), Some(b)) = (a, b) {
                links.push(Link {
                    a,
                    b,
                    mtu: mtu.map(|m| m.0 as u32),
                    tc_a,
                    tc_b,
                    subnet: subnet.as_ref().map(|s| s.0),
                    subnet6: subnet6.as_ref().map(|s| s.0),
                    unnumbered: unnumbered.as_ref().map(|u| u.0),
                    spans: LinkSpans {
                        header,
                        subnet: subnet.map(|s| s.1),
                        subnet6: subnet6.map(|s| s.1),
                        unnumbered: unnumbered.map(|u| u.1),
                    },
                });
            }
        }
        links
    }

    pub(super) fn endpoint_field(
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
    pub(super) fn inner(&self, span: &Span, text: &str, offset: usize, len: usize) -> Span {
        let raw = self.diags.source.slice(span).unwrap_or("");
        if raw.len() == text.len() + 2 && raw.get(1..raw.len() - 1) == Some(text) {
            span.start + 1 + offset..span.start + 1 + offset + len
        } else {
            span.clone()
        }
    }

    pub(super) fn segments(&mut self, doc: &Table) -> Vec<SegmentSpec> {
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
            let subnet6 =
                self.converted(t, "subnet6", place, |s| network6(s, "segment subnet6", 64..=120));
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
                subnet6: subnet6.as_ref().map(|s| s.0),
                spans: SegmentSpans {
                    header,
                    name: Some(name_span),
                    vni: Some(vni_span),
                    leaves: leaves.into_iter().map(|l| l.1).collect(),
                    subnet: subnet.map(|s| s.1),
                    subnet6: subnet6.map(|s| s.1),
                },
            });
        }
        segments
    }
}
