//! Sampled packets from the kernel: an nfnetlink_log (NFLOG) group read over
//! NETLINK_NETFILTER, the way hsflowd's mod_nflog does it on Linux without
//! psample. The nftables rules that feed the group live in `nft.rs`.

use std::time::Duration;

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, Nla,
    NlasIterator,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::records::{HEADER_ETHERNET, HEADER_IPV4, HEADER_IPV6, SampledHeader};
use crate::netlink::{Netlink, NetlinkError};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULA_CFG_FLAGS: u16 = 6;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_CFG_CMD_UNBIND: u8 = 2;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULNL_CFG_F_SEQ: u16 = 0x0001;
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_SEQ: u16 = 12;
const NFULA_HWTYPE: u16 = 15;
const NFULA_HWHEADER: u16 = 16;

/// One attribute of an nfnetlink_log message, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub kind: u16,
    pub value: Vec<u8>,
}

impl Nla for Attribute {
    fn value_len(&self) -> usize {
        self.value.len()
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.value);
    }
}

/// The nfnetlink_log (NFLOG) messages the agent sends and reads, typed just
/// enough for the agent's netlink socket ([`Netlink`]): a config request to
/// a group, or a logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NflogMessage {
    /// NFULNL_MSG_CONFIG for `group` (nfgenmsg's resource id).
    Config { group: u16, attributes: Vec<Attribute> },
    /// NFULNL_MSG_PACKET: one logged packet.
    Packet(Vec<Attribute>),
    /// Any other nfnetlink message (its type).
    Other(u16),
}

impl NetlinkSerializable for NflogMessage {
    fn message_type(&self) -> u16 {
        match self {
            NflogMessage::Config { .. } => (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
            NflogMessage::Packet(_) => (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET,
            NflogMessage::Other(t) => *t,
        }
    }

    fn buffer_len(&self) -> usize {
        4 + self.attributes().buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        // struct nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id (BE).
        let group = match self {
            NflogMessage::Config { group, .. } => *group,
            _ => 0,
        };
        let [hi, lo] = group.to_be_bytes();
        buffer[..4].copy_from_slice(&[0, 0, hi, lo]);
        self.attributes().emit(&mut buffer[4..]);
    }
}

impl NetlinkDeserializable for NflogMessage {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        if header.message_type != (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
            return Ok(NflogMessage::Other(header.message_type));
        }
        let attributes = payload.get(4..).ok_or_else(|| {
            DecodeError::from(format!("NFLOG packet of {} bytes has no nfgenmsg", payload.len()))
        })?;
        let attributes = NlasIterator::new(attributes)
            .map(|nla| {
                let nla = nla?;
                Ok(Attribute { kind: nla.kind(), value: nla.value().to_vec() })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(NflogMessage::Packet(attributes))
    }
}

impl NflogMessage {
    fn attributes(&self) -> &[Attribute] {
        match self {
            NflogMessage::Config { attributes, .. } | NflogMessage::Packet(attributes) => {
                attributes
            }
            NflogMessage::Other(_) => &[],
        }
    }
}

fn attribute(kind: u16, value: &[u8]) -> Attribute {
    Attribute { kind, value: value.to_vec() }
}

const ARPHRD_ETHER: u16 = 1;
const ETH_HEADER: usize = 14;
const ETH_FCS: u32 = 4;
/// How long one read waits for sampled packets.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// Bytes of each sampled packet we keep, as hsflowd.
pub const HEADER_BYTES: usize = 128;

/// One packet the kernel sampled for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledPacket {
    pub in_ifindex: u32,
    pub out_ifindex: u32,
    pub header: SampledHeader,
    /// NFULA_SEQ: the group's own packet sequence, to spot losses.
    pub seq: Option<u32>,
}

/// A socket bound to one NFLOG group.
#[derive(Debug)]
pub struct NflogGroup {
    nl: Netlink<NflogMessage>,
    group: u16,
    last_packet_seq: Option<u32>,
    /// Packets lost between the kernel and us (sequence gaps, ENOBUFS).
    pub drops: u32,
}

impl NflogGroup {
    /// Binds `group` in the caller's network namespace. Fails with EBUSY if
    /// another process (ulogd, hsflowd) already listens on it.
    pub fn bind(group: u16) -> Result<Self, NetlinkError> {
        let nl = Netlink::open_protocol(NETLINK_NETFILTER)?;
        let mut g = NflogGroup { nl, group, last_packet_seq: None, drops: 0 };
        g.config(vec![attribute(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])])?;
        // The first 128 bytes of each packet, numbered; batches of up to
        // 16 packets or 100 ms per netlink message.
        let mut mode = (HEADER_BYTES as u32).to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        g.config(vec![
            attribute(NFULA_CFG_MODE, &mode),
            attribute(NFULA_CFG_FLAGS, &NFULNL_CFG_F_SEQ.to_be_bytes()),
            attribute(NFULA_CFG_QTHRESH, &16u32.to_be_bytes()),
            attribute(NFULA_CFG_TIMEOUT, &10u32.to_be_bytes()),
        ])?;
        g.nl.set_timeout(READ_TIMEOUT)?;
        Ok(g)
    }

    fn config(&mut self, attributes: Vec<Attribute>) -> Result<(), NetlinkError> {
        self.nl.change(NflogMessage::Config { group: self.group, attributes }, 0)
    }

    /// Waits up to 200 ms for packets; an empty list on timeout.
    pub fn read(&mut self) -> Result<Vec<SampledPacket>, NetlinkError> {
        let messages = match self.nl.receive() {
            Ok(m) => m,
            Err(NetlinkError::Overrun) => {
                // The socket overflowed: packets were lost, go on.
                self.drops = self.drops.wrapping_add(1);
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let out: Vec<SampledPacket> = messages
            .iter()
            .filter_map(|m| match m {
                NflogMessage::Packet(attributes) => parse_packet(attributes),
                _ => None,
            })
            .collect();
        for p in &out {
            self.note_seq(p.seq);
        }
        Ok(out)
    }

    fn note_seq(&mut self, seq: Option<u32>) {
        let Some(seq) = seq else { return };
        if let Some(last) = self.last_packet_seq {
            let gap = seq.wrapping_sub(last).wrapping_sub(1);
            if gap < u32::MAX / 2 {
                self.drops = self.drops.wrapping_add(gap);
            }
        }
        self.last_packet_seq = Some(seq);
    }
}

impl Drop for NflogGroup {
    fn drop(&mut self) {
        // Unbinding lets another listener take the group at once; closing
        // the socket would do it too, a little later.
        let _ = self.nl.set_timeout(crate::netlink::REPLY_TIMEOUT);
        let _ = self.config(vec![attribute(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_UNBIND])]);
    }
}

/// A packet's attributes as a sampled header: the link-layer header NFLOG
/// reports in front of the network-layer payload. `None` without the
/// packet header (or with a malformed one).
pub fn parse_packet(attributes: &[Attribute]) -> Option<SampledPacket> {
    let mut in_if = 0;
    let mut out_if = 0;
    let mut hw_protocol = None;
    let mut hw_type = 0;
    let mut hw_header: &[u8] = &[];
    let mut data: &[u8] = &[];
    let mut seq = None;
    for a in attributes {
        let v = &a.value[..];
        match a.kind {
            // nfulnl_msg_packet_hdr: hw_protocol (big endian), hook, pad.
            NFULA_PACKET_HDR => hw_protocol = Some(be16(v, 0)?),
            NFULA_IFINDEX_INDEV => in_if = be32(v)?,
            NFULA_IFINDEX_OUTDEV => out_if = be32(v)?,
            NFULA_PAYLOAD => data = v,
            NFULA_SEQ => seq = be32(v),
            NFULA_HWTYPE => hw_type = be16(v, 0)?,
            NFULA_HWHEADER => hw_header = v,
            _ => {}
        }
    }
    let hw_protocol = hw_protocol?;
    let l3_len = network_length(hw_protocol, data);
    let header = if hw_type == ARPHRD_ETHER && hw_header.len() == ETH_HEADER {
        let mut bytes = hw_header.to_vec();
        bytes.extend_from_slice(&data[..data.len().min(HEADER_BYTES - ETH_HEADER)]);
        SampledHeader {
            header_protocol: HEADER_ETHERNET,
            frame_length: ETH_HEADER as u32 + l3_len + ETH_FCS,
            stripped: ETH_FCS,
            header: bytes,
        }
    } else {
        SampledHeader {
            header_protocol: if hw_protocol == 0x86dd { HEADER_IPV6 } else { HEADER_IPV4 },
            frame_length: l3_len,
            stripped: 0,
            header: data[..data.len().min(HEADER_BYTES)].to_vec(),
        }
    };
    Some(SampledPacket { in_ifindex: in_if, out_ifindex: out_if, header, seq })
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Length of the whole network-layer packet, from its own header (NFLOG
/// only hands us the first bytes).
fn network_length(hw_protocol: u16, data: &[u8]) -> u32 {
    let be16 =
        |at: usize| data.get(at..at + 2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])));
    let from_header = match hw_protocol {
        0x0800 => be16(2),
        0x86dd => be16(4).map(|l| l + 40),
        _ => None,
    };
    from_header.unwrap_or(data.len() as u32).max(data.len() as u32)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};

    use super::*;

    /// A packet as the kernel sends it: raw bytes, decoded by the socket's
    /// message type.
    fn decode(attrs: &[(u16, Vec<u8>)]) -> Vec<Attribute> {
        let mut payload = vec![0, 0, 0, 5]; // nfgenmsg: AF_UNSPEC, v0, group 5
        for (kind, v) in attrs {
            payload.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            payload.extend_from_slice(&kind.to_ne_bytes());
            payload.extend_from_slice(v);
            while !payload.len().is_multiple_of(4) {
                payload.push(0);
            }
        }
        let mut bytes = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
        // Subsystem ULOG (4), message NFULNL_MSG_PACKET (0).
        bytes.extend_from_slice(&(4u16 << 8).to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.extend_from_slice(&payload);
        let msg = NetlinkMessage::<NflogMessage>::deserialize(&bytes).expect("decodes");
        match msg.payload {
            NetlinkPayload::InnerMessage(NflogMessage::Packet(attributes)) => attributes,
            other => panic!("not a packet: {other:?}"),
        }
    }

    #[test]
    fn a_config_request_is_what_the_kernel_expects() {
        let msg = NflogMessage::Config {
            group: 6343,
            attributes: vec![attribute(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])],
        };
        assert_eq!(msg.message_type(), 0x0401);
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        // nfgenmsg (group 6343 big endian), then one padded attribute.
        assert_eq!(buf, [0, 0, 0x18, 0xc7, 5, 0, 1, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn ethernet_header_is_put_back_in_front() {
        let mut ip = vec![0x45, 0, 0x05, 0xdc]; // IPv4, total length 1500
        ip.resize(200, 0xaa);
        let mac: Vec<u8> = (0u8..12).chain([0x08, 0x00]).collect();
        let nlas = decode(&[
            (1, vec![0x08, 0x00, 0, 0]),        // NFULA_PACKET_HDR
            (4, 7u32.to_be_bytes().to_vec()),   // NFULA_IFINDEX_INDEV
            (15, 1u16.to_be_bytes().to_vec()),  // NFULA_HWTYPE
            (16, mac.clone()),                  // NFULA_HWHEADER
            (12, 42u32.to_be_bytes().to_vec()), // NFULA_SEQ
            (9, ip[..114].to_vec()),            // NFULA_PAYLOAD
        ]);
        let p = parse_packet(&nlas).expect("packet");
        assert_eq!((p.in_ifindex, p.out_ifindex, p.seq), (7, 0, Some(42)));
        assert_eq!(p.header.header_protocol, HEADER_ETHERNET);
        assert_eq!(p.header.frame_length, 14 + 1500 + 4);
        assert_eq!(p.header.header.len(), 128);
        assert_eq!(&p.header.header[..14], &mac[..]);
        assert_eq!(p.header.header[14], 0x45);
    }

    #[test]
    fn ipv6_without_a_link_header_keeps_its_own_length() {
        let mut ip6 = vec![0x60, 0, 0, 0, 0x01, 0x00]; // payload length 256
        ip6.resize(90, 0);
        let nlas = decode(&[(NFULA_PACKET_HDR, vec![0x86, 0xdd, 0, 0]), (NFULA_PAYLOAD, ip6)]);
        let p = parse_packet(&nlas).expect("packet");
        assert_eq!(p.header.header_protocol, HEADER_IPV6);
        assert_eq!((p.header.frame_length, p.header.header.len()), (256 + 40, 90));
        assert!(parse_packet(&[attribute(NFULA_PAYLOAD, &[1, 2])]).is_none(), "no packet header");
    }

    #[test]
    fn sequence_gaps_count_as_drops() {
        let mut g = NflogGroup {
            nl: Netlink::open_protocol(NETLINK_NETFILTER).expect("socket"),
            group: 0,
            last_packet_seq: None,
            drops: 0,
        };
        g.note_seq(Some(1));
        g.note_seq(Some(2));
        g.note_seq(Some(5));
        assert_eq!(g.drops, 2);
        std::mem::forget(g); // not bound to a group: skip the unbind
    }
}
