//! Sampled packets from the kernel: an nfnetlink_log (NFLOG) group read over
//! NETLINK_NETFILTER, the way hsflowd's mod_nflog does it on Linux without
//! psample. The nftables rules that feed the group live in `nft.rs`.

use std::time::Duration;

use netlink_packet_core::Nla;
use netlink_packet_netfilter::nflog::{
    ConfigCmd, ConfigFlags, ConfigMode, ConfigNla, PacketNla, Timeout, ULogMessage,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::records::{HEADER_ETHERNET, HEADER_IPV4, HEADER_IPV6, SampledHeader};
use crate::netlink::{Netlink, NetlinkError};

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
    nl: Netlink<NetfilterMessage>,
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
        g.config(vec![ConfigCmd::Bind.into()])?;
        g.config(vec![
            ConfigMode::new_packet(HEADER_BYTES as u32).into(),
            ConfigFlags::SEQ.into(),
            // Batch up to 16 packets or 100 ms per netlink message.
            ConfigNla::QThresh(16),
            Timeout::new(10).into(),
        ])?;
        g.nl.set_timeout(READ_TIMEOUT)?;
        Ok(g)
    }

    fn config(&mut self, nlas: Vec<ConfigNla>) -> Result<(), NetlinkError> {
        let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, self.group);
        self.nl.change(NetfilterMessage::new(header, ULogMessage::Config(nlas)), 0)
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
            .filter_map(|m| match &m.inner {
                NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)) => parse_packet(nlas),
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
        let _ = self.config(vec![ConfigCmd::Unbind.into()]);
    }
}

/// A packet's attributes as a sampled header: the link-layer header NFLOG
/// reports in front of the network-layer payload.
pub fn parse_packet(nlas: &[PacketNla]) -> Option<SampledPacket> {
    let mut in_if = 0;
    let mut out_if = 0;
    let mut hw_protocol = None;
    let mut hw_type = 0;
    let mut hw_header: &[u8] = &[];
    let mut data: &[u8] = &[];
    let mut seq = None;
    for nla in nlas {
        match nla {
            PacketNla::PacketHdr(hdr) => {
                // nfulnl_msg_packet_hdr: hw_protocol (big endian), hook, pad.
                let mut raw = [0u8; 4];
                hdr.emit_value(&mut raw);
                hw_protocol = Some(u16::from_be_bytes([raw[0], raw[1]]));
            }
            PacketNla::IfIndexInDev(i) => in_if = *i,
            PacketNla::IfIndexOutDev(i) => out_if = *i,
            PacketNla::Payload(p) => data = p,
            PacketNla::Seq(s) => seq = Some(*s),
            PacketNla::HwType(t) => hw_type = *t,
            PacketNla::HwHeader(h) => hw_header = h,
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

    /// A packet as the kernel sends it: raw bytes, decoded by the typed stack.
    fn decode(attrs: &[(u16, Vec<u8>)]) -> Vec<PacketNla> {
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
        let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&bytes).expect("decodes");
        match msg.payload {
            NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)),
                ..
            }) => nlas,
            other => panic!("not a packet: {other:?}"),
        }
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
        let nlas = decode(&[(1, vec![0x86, 0xdd, 0, 0]), (9, ip6)]);
        let p = parse_packet(&nlas).expect("packet");
        assert_eq!(p.header.header_protocol, HEADER_IPV6);
        assert_eq!((p.header.frame_length, p.header.header.len()), (256 + 40, 90));
        assert!(parse_packet(&[PacketNla::Payload(vec![1, 2])]).is_none(), "no packet header");
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
