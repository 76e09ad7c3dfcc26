//! The IPv6 half of a dual-stack plan: loopbacks (/128) from
//! `pools.loopback6`, numbered router links (/64) from `pools.p2p6`,
//! segments (/64) from `pools.segments6` and the addresses in them.
//!
//! Each IPv6 address is allocated by name like its IPv4 twin, and its home
//! is the twin's host number (or block): 10.0.0.101 is the loopback pool's
//! host 101, so the IPv6 loopback is host 101 (0x65) of `loopback6` when
//! that is free. Unnumbered links get no IPv6 address of their own (their
//! link-local one does).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::blocks::{BlockPool, BlockSpace};
use super::{Blocks, Hosts, Planner};
use crate::alloc::{Space, Want};
use crate::diagnostics::Span;
use crate::lab::{Node, defaults};

/// At most this many slots in an IPv6 space: more than any lab needs, and
/// addresses stay short enough to read.
const MAX_SLOTS: u64 = 1 << 32;

/// What the IPv6 pools hand out; empty in an IPv4-only lab.
#[derive(Debug, Default)]
pub(super) struct Addresses6 {
    pub loopbacks: BTreeMap<String, Ipv6Addr>,
    /// Numbered router links by link key.
    pub links: BTreeMap<String, Ipv6Net>,
    /// Segments by name.
    pub segments: BTreeMap<String, Ipv6Net>,
    /// Per segment, the addresses keyed as the IPv4 ones.
    pub hosts: BTreeMap<String, BTreeMap<String, Ipv6Net>>,
}

/// Addresses of a prefix: all but the first (the subnet-router anycast
/// address, RFC 4291) unless it is a /127 or /128.
#[derive(Debug, Clone, Copy)]
struct Hosts6 {
    net: Ipv6Net,
    first: u128,
    count: u64,
}

impl Hosts6 {
    fn new(net: Ipv6Net) -> Self {
        let bits = 128 - u32::from(net.prefix_len());
        let first = if net.prefix_len() >= 127 { 0 } else { 1 };
        let size = if bits >= 64 { u128::from(u64::MAX) } else { 1u128 << bits };
        let count = u64::try_from(size - first).unwrap_or(u64::MAX).min(MAX_SLOTS);
        Hosts6 { net, first, count }
    }

    fn addr(&self, slot: u64) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.net.network()) + self.first + u128::from(slot))
    }

    fn slot_of(&self, addr: Ipv6Addr) -> Option<u64> {
        if !self.net.contains(&addr) {
            return None;
        }
        let offset = (u128::from(addr) - u128::from(self.net.network())).checked_sub(self.first)?;
        u64::try_from(offset).ok().filter(|s| *s < self.count)
    }
}

/// Equal /64s (or longer) of an IPv6 pool.
#[derive(Debug, Clone, Copy)]
struct Blocks6 {
    pool: Ipv6Net,
    prefix: u8,
}

impl Blocks6 {
    fn new(pool: Ipv6Net) -> Self {
        Blocks6 { pool, prefix: defaults::SUBNET6_PREFIX.max(pool.prefix_len()) }
    }

    fn shift(&self) -> u32 {
        128 - u32::from(self.prefix)
    }
}

impl BlockPool for Blocks6 {
    type Net = Ipv6Net;

    fn pool(&self) -> Ipv6Net {
        self.pool
    }

    fn contains(&self, net: &Ipv6Net) -> bool {
        self.pool.contains(net)
    }

    fn count(&self) -> u64 {
        let bits = u32::from(self.prefix - self.pool.prefix_len());
        if bits >= 32 { MAX_SLOTS } else { 1 << bits }
    }

    fn block(&self, slot: u64) -> Ipv6Net {
        let start = u128::from(self.pool.network()) + (u128::from(slot) << self.shift());
        Ipv6Net::new(Ipv6Addr::from(start), self.prefix).unwrap_or(self.pool)
    }

    /// The slots a fixed subnet inside the pool covers.
    fn slots_of(&self, net: Ipv6Net) -> Range<u64> {
        let base = u128::from(self.pool.network());
        let slot =
            |a: Ipv6Addr| u64::try_from((u128::from(a) - base) >> self.shift()).unwrap_or(u64::MAX);
        let first = slot(net.network());
        first..slot(net.broadcast()).saturating_add(1)
    }
}

/// Address `i` (0 or 1) of a link's IPv6 subnet: `::1` and `::2` of a /64,
/// both addresses of a /127.
pub(super) fn link_end(net: Ipv6Net, i: u32) -> Option<Ipv6Net> {
    let hosts = Hosts6::new(net);
    Ipv6Net::new(hosts.addr(u64::from(i)), net.prefix_len()).ok()
}

/// An IPv4 subnet's block number in its pool, as the IPv6 twin's home.
fn block_of(pool: Ipv4Net, prefix: u8, net: &Ipv4Net) -> u64 {
    Blocks { pool, prefix: prefix.max(pool.prefix_len()) }.slots_of(*net).start
}

impl Planner<'_> {
    /// Every IPv6 address of a dual-stack lab, homed on the IPv4 plan.
    pub(super) fn ipv6(
        &mut self,
        loopbacks: &BTreeMap<String, Ipv4Addr>,
        p2p: &BTreeMap<String, Ipv4Net>,
        segment_nets: &BTreeMap<String, Ipv4Net>,
        hosts: &BTreeMap<String, BTreeMap<String, Ipv4Net>>,
    ) -> Addresses6 {
        let mut out = Addresses6::default();
        if !self.lab.pools.dual_stack() {
            return out;
        }
        self.pools6_disjoint();
        out.loopbacks = self.loopbacks6(loopbacks);
        out.links = self.links6(p2p);
        out.segments = self.segments6(segment_nets);
        out.hosts = self.hosts6(&out.segments, hosts);
        out
    }

    fn pools6_disjoint(&mut self) {
        let p = &self.lab.pools;
        let pools: Vec<(&str, IpNet, Option<Span>)> = [
            ("pools.loopback6", p.loopback6, &p.spans.loopback6),
            ("pools.p2p6", p.p2p6, &p.spans.p2p6),
            ("pools.segments6", p.segments6, &p.spans.segments6),
        ]
        .into_iter()
        .filter_map(|(name, net, span)| Some((name, net?.into(), span.clone())))
        .collect();
        self.disjoint(&pools);
    }

    fn loopbacks6(&mut self, loopbacks: &BTreeMap<String, Ipv4Addr>) -> BTreeMap<String, Ipv6Addr> {
        let Some(pool) = self.lab.pools.loopback6 else { return BTreeMap::new() };
        let hosts = Hosts6::new(pool);
        let place = format!("pools.loopback6 {pool}");
        let v4 = Hosts::new(self.lab.pools.loopback);
        let routers: Vec<&Node> = self.lab.nodes.values().filter(|n| n.is_router()).collect();
        let mut wants = Vec::new();
        for n in &routers {
            let pin = match (n.loopback6, n.spans.loopback6.clone()) {
                (Some(addr), Some(span)) => match hosts.slot_of(addr) {
                    Some(s) => Some((s..s + 1, span)),
                    None => {
                        let problem =
                            if pool.contains(&addr) { "not a host address of" } else { "outside" };
                        self.error(
                            span,
                            format!("IPv6 loopback {addr} of {} is {problem} {place}", n.name),
                            format!(
                                "pick an address in {pool}, or remove it to have one allocated"
                            ),
                        );
                        continue;
                    }
                },
                _ => None,
            };
            wants.push(Want {
                key: n.name.clone(),
                owner: n.name.clone(),
                span: n.spans.name.clone(),
                pin,
            });
        }
        let mut space = Space::new(
            "IPv6 loopback",
            place,
            self.lab.pools.spans.loopback6.clone(),
            hosts.count,
            move |s| hosts.addr(s).to_string(),
        );
        space.grow_help = "give pools.loopback6 a shorter prefix (more addresses)".to_string();
        space.homes = loopbacks
            .iter()
            .filter_map(|(name, addr)| Some((name.clone(), v4.slot_of(*addr)?)))
            .collect();
        let slots = space.allocate(&wants, &mut self.found);
        slots
            .into_iter()
            .map(|(name, slot)| {
                let fixed = self.lab.nodes.get(&name).and_then(|n| n.loopback6);
                (name, fixed.unwrap_or_else(|| hosts.addr(slot)))
            })
            .collect()
    }

    /// A /64 per numbered router link, homed on its /31.
    fn links6(&mut self, p2p: &BTreeMap<String, Ipv4Net>) -> BTreeMap<String, Ipv6Net> {
        let Some(pool) = self.lab.pools.p2p6 else { return BTreeMap::new() };
        let v4 = self.lab.pools.p2p;
        let mut how = BlockSpace::new(
            ("IPv6 link subnet", "pools.p2p6"),
            ("subnet6", "a /64"),
            self.lab.pools.spans.p2p6.clone(),
        );
        how.homes = p2p
            .iter()
            .map(|(key, net)| (key.clone(), block_of(v4, defaults::P2P_PREFIX, net)))
            .collect();
        let wants = self.link_wants(|l| Some((l.subnet6?, l.spans.subnet6.clone()?)));
        self.blocks(Blocks6::new(pool), how, wants)
    }

    /// A /64 per segment, homed on its /24.
    fn segments6(&mut self, segment_nets: &BTreeMap<String, Ipv4Net>) -> BTreeMap<String, Ipv6Net> {
        let Some(pool) = self.lab.pools.segments6 else { return BTreeMap::new() };
        let v4 = self.lab.pools.segments;
        let mut how = BlockSpace::new(
            ("IPv6 segment subnet", "pools.segments6"),
            ("subnet6", "a /64"),
            self.lab.pools.spans.segments6.clone(),
        );
        how.homes = segment_nets
            .iter()
            .map(|(name, net)| (name.clone(), block_of(v4, defaults::SEGMENT_PREFIX, net)))
            .collect();
        let wants = self.segment_wants(|s| Some((s.subnet6?, s.spans.subnet6.clone()?)));
        self.blocks(Blocks6::new(pool), how, wants)
    }

    /// The IPv6 twin of every segment address, each homed on the IPv4
    /// one's host number.
    fn hosts6(
        &mut self,
        nets: &BTreeMap<String, Ipv6Net>,
        hosts: &BTreeMap<String, BTreeMap<String, Ipv4Net>>,
    ) -> BTreeMap<String, BTreeMap<String, Ipv6Net>> {
        let mut out = BTreeMap::new();
        for (segment, v4) in hosts {
            let Some(net) = nets.get(segment).copied() else { continue };
            let spec = self.lab.segments.iter().find(|s| &s.name == segment);
            let wants: Vec<Want> = v4
                .keys()
                .map(|key| Want {
                    key: key.clone(),
                    owner: key.clone(),
                    span: spec.map(|s| s.spans.header.clone()).unwrap_or(0..0),
                    pin: None,
                })
                .collect();
            let h6 = Hosts6::new(net);
            let mut space = Space::new(
                "IPv6 host address",
                format!("subnet6 {net} of segment {segment}"),
                spec.and_then(|s| s.spans.subnet6.clone()),
                h6.count,
                move |s| h6.addr(s).to_string(),
            );
            space.homes = v4
                .iter()
                .filter_map(|(k, a)| Some((k.clone(), Hosts::new(a.trunc()).slot_of(a.addr())?)))
                .collect();
            let slots = space.allocate(&wants, &mut self.found);
            let addrs = slots
                .into_iter()
                .filter_map(|(k, s)| Some((k, Ipv6Net::new(h6.addr(s), net.prefix_len()).ok()?)))
                .collect();
            out.insert(segment.clone(), addrs);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_skip_the_anycast_address_and_stay_readable() {
        let h = Hosts6::new("2001:db8::/64".parse().unwrap());
        assert_eq!(h.count, MAX_SLOTS);
        assert_eq!(h.addr(0), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(h.slot_of("2001:db8::65".parse().unwrap()), Some(100));
        assert_eq!(h.slot_of("2001:db8::".parse().unwrap()), None);
        let one = Hosts6::new("2001:db8::7/128".parse().unwrap());
        assert_eq!((one.count, one.addr(0)), (1, "2001:db8::7".parse().unwrap()));
    }

    #[test]
    fn blocks_are_64s_and_link_ends_are_1_and_2() {
        let b = Blocks6::new("2001:db8:1::/48".parse().unwrap());
        assert_eq!(b.count(), 65536);
        assert_eq!(b.block(3), "2001:db8:1:3::/64".parse().unwrap());
        assert_eq!(b.slots_of("2001:db8:1:3::/64".parse().unwrap()), 3..4);
        let net: Ipv6Net = "2001:db8:1:3::/64".parse().unwrap();
        assert_eq!(link_end(net, 0), Some("2001:db8:1:3::1/64".parse().unwrap()));
        assert_eq!(link_end(net, 1), Some("2001:db8:1:3::2/64".parse().unwrap()));
        let p127: Ipv6Net = "2001:db8:1:3::/127".parse().unwrap();
        assert_eq!(link_end(p127, 1), Some("2001:db8:1:3::1/127".parse().unwrap()));
    }
}
