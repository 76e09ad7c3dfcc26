//! The lab-wide sections: `[management]`, `[pools]`, `[underlay]`, `[bgp]`
//! and `[sflow]`, each with pi-lab's defaults where it says nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::fields::split;
use super::values::{collector, ipv4, isis_area, network, network6, ospf_area, protocol};
use super::{ASN_RANGE, Field, Reader, Table};
use crate::lab::{
    BgpSpec, ManagementSpans, ManagementSpec, PoolSpans, Pools, SflowSpec, UnderlayProtocol,
    UnderlaySpans, UnderlaySpec, defaults,
};
use crate::node_config::IgpTimers;

const UNDERLAY_KEYS: &[&str] = &["protocol", "area", "hello", "dead", "unnumbered"];
const MANAGEMENT_KEYS: &[&str] = &["subnet", "controller", "gateway"];
const POOL_KEYS: &[&str] = &["loopback", "p2p", "segments", "loopback6", "p2p6", "segments6"];
const BGP_KEYS: &[&str] = &["asn", "keepalive", "hold", "connect_retry", "multipath"];
const SFLOW_KEYS: &[&str] = &["collectors", "polling_interval", "sampling_rate"];

impl Reader {
    pub(super) fn management(&mut self, doc: &Table) -> ManagementSpec {
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

    pub(super) fn pools(&mut self, doc: &Table, management: &ManagementSpec) -> Pools {
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
        let subnet6 = defaults::SUBNET6_PREFIX;
        let loopback6 =
            self.converted(t, "loopback6", place, |s| network6(s, "pools.loopback6", 0..=128));
        let p2p6 = self.converted(t, "p2p6", place, |s| network6(s, "pools.p2p6", 0..=subnet6));
        let segments6 =
            self.converted(t, "segments6", place, |s| network6(s, "pools.segments6", 0..=subnet6));
        Pools {
            loopback,
            p2p,
            segments,
            loopback6: loopback6.as_ref().map(|p| p.0),
            p2p6: p2p6.as_ref().map(|p| p.0),
            segments6: segments6.as_ref().map(|p| p.0),
            spans: PoolSpans {
                loopback: loopback_span,
                p2p: p2p_span,
                segments: segments_span,
                management: management.spans.subnet.clone(),
                loopback6: loopback6.map(|p| p.1),
                p2p6: p2p6.map(|p| p.1),
                segments6: segments6.map(|p| p.1),
            },
        }
    }

    /// `[underlay]`: protocol, area and IGP timers (checked against each
    /// other: an IS-IS area is not an OSPF area).
    pub(super) fn underlay(&mut self, doc: &Table) -> UnderlaySpec {
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
        let unnumbered = self.boolean(t, "unnumbered", place);
        UnderlaySpec {
            protocol,
            area,
            timers: IgpTimers {
                hello: int(&hello, defaults.hello),
                dead: int(&dead, defaults.dead),
            },
            unnumbered: unnumbered.as_ref().is_some_and(|u| u.0),
            spans: UnderlaySpans {
                protocol: protocol_span,
                area: area_span,
                hello: hello.map(|h| h.1),
                dead: dead.map(|d| d.1),
                unnumbered: unnumbered.map(|u| u.1),
            },
        }
    }

    pub(super) fn bgp(&mut self, doc: &Table) -> BgpSpec {
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

    pub(super) fn sflow(&mut self, doc: &Table, management: &ManagementSpec) -> SflowSpec {
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
}
