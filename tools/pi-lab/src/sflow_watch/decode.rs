//! Datagrams to observations: flowparser-sflow does the XDR; this module
//! keeps what the watch table needs and reads flow keys from sampled headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use flowparser_sflow::{CounterRecord, FlowRecord, SflowParser, SflowSample};
use serde::Serialize;

/// Datagrams larger than a jumbo frame are not sFlow we want to read.
pub const MAX_ACCEPTED: usize = 9216;
/// More samples than fit a jumbo frame means a corrupt sample count.
const MAX_SAMPLES: u32 = 1024;
/// "Unknown" 32-bit counter (2^32-1).
const UNKNOWN: u32 = u32::MAX;

/// Why a datagram was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Ends before its own lengths say it should.
    Truncated,
    /// Not sFlow v5, or fields that cannot be right.
    Malformed,
    /// Larger than [`MAX_ACCEPTED`].
    Oversized,
}

/// One decoded datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    pub agent: IpAddr,
    pub sub_agent: u32,
    pub sequence: u32,
    pub uptime_ms: u32,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Interface(IfSample),
    Host { hostname: String },
    Flow(FlowObservation),
}

/// Generic interface counters, as needed for rates, and the interface's
/// name when the agent sends it (port name, 0:1005, as hsflowd does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfSample {
    pub if_index: u32,
    pub name: Option<String>,
    pub speed: u64,
    pub oper_up: bool,
    pub in_octets: u64,
    pub out_octets: u64,
    pub in_packets: u32,
    pub out_packets: u32,
    pub in_errors: u32,
    pub out_errors: u32,
    pub in_discards: u32,
    pub out_discards: u32,
}

/// What one flow sample says about the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowObservation {
    pub input: u32,
    pub sampling_rate: u32,
    pub frame_length: u32,
    pub key: FlowKey,
}

/// Who talks to whom, from the sampled header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FlowKey {
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
}

pub fn decode(bytes: &[u8]) -> Result<Datagram, Bad> {
    if bytes.len() > MAX_ACCEPTED {
        return Err(Bad::Oversized);
    }
    match bytes.get(..4) {
        None => return Err(Bad::Truncated),
        Some(v) if v != [0, 0, 0, 5] => return Err(Bad::Malformed),
        Some(_) => {}
    }
    let parsed = SflowParser::builder().with_max_samples(MAX_SAMPLES).build().parse_bytes(bytes);
    if parsed.error.is_some() {
        return Err(if runs_past_end(bytes) { Bad::Truncated } else { Bad::Malformed });
    }
    // One UDP payload carries exactly one datagram.
    let [d] = <[_; 1]>::try_from(parsed.datagrams).map_err(|_| Bad::Malformed)?;
    if d.version != 5 {
        return Err(Bad::Malformed);
    }
    let agent = match d.agent_address {
        flowparser_sflow::AddressType::IPv4(a) => IpAddr::V4(a),
        flowparser_sflow::AddressType::IPv6(a) => IpAddr::V6(a),
    };
    let mut samples = Vec::new();
    for s in d.samples {
        match s {
            SflowSample::Counter(c) => samples.extend(counters(&c.records)),
            SflowSample::ExpandedCounter(c) => samples.extend(counters(&c.records)),
            SflowSample::Flow(f) => samples.extend(flow(f.input, f.sampling_rate, &f.records)),
            SflowSample::ExpandedFlow(f) => {
                samples.extend(flow(f.input_value, f.sampling_rate, &f.records))
            }
            _ => {}
        }
    }
    Ok(Datagram {
        agent,
        sub_agent: d.sub_agent_id,
        sequence: d.sequence_number,
        uptime_ms: d.uptime,
        samples,
    })
}

/// True when the datagram's own header and sample lengths point past its
/// end: it was cut short (rather than filled with nonsense).
fn runs_past_end(b: &[u8]) -> bool {
    let word = |at: usize| b.get(at..at + 4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    let addr_len = match word(4) {
        None => return true,
        Some(1) => 4,
        Some(2) => 16,
        Some(_) => return false,
    };
    let mut at = 8 + addr_len + 12; // address, sub-agent, sequence, uptime
    let Some(count) = word(at) else { return true };
    at += 4;
    for _ in 0..count.min(MAX_SAMPLES) {
        let Some(len) = word(at + 4) else { return true };
        at = at.saturating_add(8).saturating_add(len as usize);
        if at > b.len() {
            return true;
        }
    }
    false
}

fn known(v: u32) -> u32 {
    if v == UNKNOWN { 0 } else { v }
}

/// The records of one counter sample: a port name belongs to the interface
/// counters it came with.
fn counters(records: &[CounterRecord]) -> impl Iterator<Item = Sample> + '_ {
    let name = records.iter().find_map(|r| match r {
        CounterRecord::PortName(p) => Some(p.name.clone()),
        _ => None,
    });
    records.iter().filter_map(move |r| counter(r, &name))
}

fn counter(r: &CounterRecord, name: &Option<String>) -> Option<Sample> {
    match r {
        CounterRecord::GenericInterface(g) => Some(Sample::Interface(IfSample {
            if_index: g.if_index,
            name: name.clone(),
            speed: g.if_speed,
            oper_up: g.if_status & 2 != 0,
            in_octets: g.if_in_octets,
            out_octets: g.if_out_octets,
            in_packets: known(g.if_in_ucast_pkts)
                .wrapping_add(known(g.if_in_multicast_pkts))
                .wrapping_add(known(g.if_in_broadcast_pkts)),
            out_packets: known(g.if_out_ucast_pkts)
                .wrapping_add(known(g.if_out_multicast_pkts))
                .wrapping_add(known(g.if_out_broadcast_pkts)),
            in_errors: known(g.if_in_errors),
            out_errors: known(g.if_out_errors),
            in_discards: known(g.if_in_discards),
            out_discards: known(g.if_out_discards),
        })),
        CounterRecord::HostDescr(h) => Some(Sample::Host { hostname: h.hostname.clone() }),
        _ => None,
    }
}

fn flow(input: u32, rate: u32, records: &[FlowRecord]) -> Option<Sample> {
    records.iter().find_map(|r| match r {
        FlowRecord::RawPacketHeader(h) => Some(Sample::Flow(FlowObservation {
            input: input & 0x3fff_ffff,
            sampling_rate: rate,
            frame_length: h.frame_length,
            key: flow_key(h.header_protocol, &h.header),
        })),
        _ => None,
    })
}

/// The flow key of a sampled header (Ethernet with VLAN tags, IPv4, IPv6).
pub fn flow_key(header_protocol: u32, h: &[u8]) -> FlowKey {
    match header_protocol {
        1 => ethernet_key(h),
        11 => ipv4_key(h),
        12 => ipv6_key(h),
        p => unknown_key(format!("header-protocol-{p}")),
    }
}

fn unknown_key(proto: String) -> FlowKey {
    FlowKey { src: "?".into(), dst: "?".into(), proto, src_port: None, dst_port: None }
}

fn be16(h: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(h.get(at..at + 2)?.try_into().ok()?))
}

fn mac(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn ethernet_key(h: &[u8]) -> FlowKey {
    let mut at = 12;
    let mut ethertype = be16(h, at);
    // 802.1Q / 802.1ad tags.
    while matches!(ethertype, Some(0x8100 | 0x88a8)) {
        at += 4;
        ethertype = be16(h, at);
    }
    let payload = h.get(at + 2..).unwrap_or_default();
    match ethertype {
        Some(0x0800) => ipv4_key(payload),
        Some(0x86dd) => ipv6_key(payload),
        Some(t) if h.len() >= 12 => FlowKey {
            src: mac(&h[6..12]),
            dst: mac(&h[0..6]),
            proto: if t == 0x0806 { "arp".into() } else { format!("ethertype-0x{t:04x}") },
            src_port: None,
            dst_port: None,
        },
        _ => unknown_key("truncated".into()),
    }
}

fn ip_proto(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        89 => "ospf".into(),
        132 => "sctp".into(),
        p => format!("ip-{p}"),
    }
}

fn ports(proto: u8, l4: &[u8]) -> (Option<u16>, Option<u16>) {
    if matches!(proto, 6 | 17 | 132) { (be16(l4, 0), be16(l4, 2)) } else { (None, None) }
}

fn ipv4_key(h: &[u8]) -> FlowKey {
    let (Some(src), Some(dst), Some(&proto), Some(&vihl)) =
        (h.get(12..16), h.get(16..20), h.get(9), h.first())
    else {
        return unknown_key("ipv4-truncated".into());
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let first_fragment = be16(h, 6).is_some_and(|f| f & 0x1fff == 0);
    let (src_port, dst_port) =
        if first_fragment { ports(proto, h.get(ihl..).unwrap_or_default()) } else { (None, None) };
    let v4 = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string();
    FlowKey { src: v4(src), dst: v4(dst), proto: ip_proto(proto), src_port, dst_port }
}

fn ipv6_key(h: &[u8]) -> FlowKey {
    let (Some(src), Some(dst), Some(&next)) = (h.get(8..24), h.get(24..40), h.get(6)) else {
        return unknown_key("ipv6-truncated".into());
    };
    let v6 = |b: &[u8]| {
        <[u8; 16]>::try_from(b).map(|a| Ipv6Addr::from(a).to_string()).unwrap_or_default()
    };
    let (src_port, dst_port) = ports(next, h.get(40..).unwrap_or_default());
    FlowKey { src: v6(src), dst: v6(dst), proto: ip_proto(next), src_port, dst_port }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_vlan_udp_flow_key() {
        let mut h = vec![0u8; 12];
        h.extend_from_slice(&[0x81, 0x00, 0x00, 0x65, 0x08, 0x00]); // VLAN 101, IPv4
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 1, 0, 2];
        ip.extend_from_slice(&[0x12, 0x34, 0x00, 0x35, 0, 8, 0, 0]); // 4660 -> 53
        h.extend_from_slice(&ip);
        let k = flow_key(1, &h);
        assert_eq!(
            (k.src.as_str(), k.dst.as_str(), k.proto.as_str()),
            ("10.1.0.1", "10.1.0.2", "udp")
        );
        assert_eq!((k.src_port, k.dst_port), (Some(4660), Some(53)));
    }

    #[test]
    fn short_headers_do_not_panic() {
        for len in 0..60 {
            let h = vec![0x08u8; len];
            for p in [1, 11, 12, 99] {
                let _ = flow_key(p, &h);
            }
        }
    }

    #[test]
    fn bad_input_is_classified() {
        assert_eq!(decode(&[]), Err(Bad::Truncated));
        assert_eq!(decode(&[0, 0, 0, 5, 0, 0, 0, 1, 10]), Err(Bad::Truncated));
        assert_eq!(decode(&[0, 0, 0, 4, 0, 0, 0, 1, 10, 0, 0, 1]), Err(Bad::Malformed));
        assert_eq!(decode(&vec![0; MAX_ACCEPTED + 1]), Err(Bad::Oversized));
        // Header promises one sample of 100 bytes; only 8 follow.
        let mut cut = vec![
            0, 0, 0, 5, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1,
        ];
        cut.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 100]);
        assert_eq!(decode(&cut), Err(Bad::Truncated));
        // Same, with an address type that does not exist.
        cut[7] = 7;
        assert_eq!(decode(&cut), Err(Bad::Malformed));
    }
}
