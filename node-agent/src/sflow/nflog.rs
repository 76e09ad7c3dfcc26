//! Sampled packets from the kernel: an nfnetlink_log (NFLOG) group read over
//! NETLINK_NETFILTER, the way hsflowd's mod_nflog does it on Linux without
//! psample. The nftables rules that feed the group live in `nft.rs`.

use std::io;
use std::time::Duration;

use super::netlink::{
    self, MessageBuilder, NLM_F_ACK, NLM_F_REQUEST, NetlinkSocket, read_u16_be, read_u32_be,
};
use super::records::{HEADER_ETHERNET, HEADER_IPV4, HEADER_IPV6, SampledHeader};

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
const ARPHRD_ETHER: u16 = 1;
const ETH_HEADER: usize = 14;
const ETH_FCS: u32 = 4;

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
    sock: NetlinkSocket,
    group: u16,
    seq: u32,
    last_packet_seq: Option<u32>,
    /// Packets lost between the kernel and us (sequence gaps, ENOBUFS).
    pub drops: u32,
    buf: Vec<u8>,
}

impl NflogGroup {
    /// Binds `group` in the caller's network namespace. Fails with EBUSY if
    /// another process (ulogd, hsflowd) already listens on it.
    pub fn bind(group: u16) -> io::Result<Self> {
        let sock = NetlinkSocket::open(libc::NETLINK_NETFILTER)?;
        sock.set_recv_buffer(1 << 20)?;
        sock.set_recv_timeout(Duration::from_millis(200))?;
        let mut g = NflogGroup {
            sock,
            group,
            seq: 0,
            last_packet_seq: None,
            drops: 0,
            buf: vec![0; 64 * 1024],
        };
        g.config(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])?;
        let mut mode = (HEADER_BYTES as u32).to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        g.config(NFULA_CFG_MODE, &mode)?;
        g.config(NFULA_CFG_FLAGS, &NFULNL_CFG_F_SEQ.to_be_bytes())?;
        // Batch up to 16 packets or 100 ms per netlink message.
        g.config(NFULA_CFG_QTHRESH, &16u32.to_be_bytes())?;
        g.config(NFULA_CFG_TIMEOUT, &10u32.to_be_bytes())?;
        Ok(g)
    }

    fn config(&mut self, attr: u16, payload: &[u8]) -> io::Result<()> {
        self.seq += 1;
        let msg = MessageBuilder::new(
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            self.seq,
        )
        .bytes(&nfgenmsg(self.group))
        .attr(attr, payload)
        .finish();
        self.sock.send(&msg)?;
        self.wait_ack()
    }

    fn wait_ack(&mut self) -> io::Result<()> {
        loop {
            let n = self.sock.recv(&mut self.buf)?;
            for msg in netlink::messages(&self.buf[..n]) {
                if let Some(code) = msg.error_code() {
                    if msg.seq != self.seq {
                        continue;
                    }
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
            }
        }
    }

    /// Waits up to 200 ms for packets; an empty list on timeout.
    pub fn read(&mut self) -> io::Result<Vec<SampledPacket>> {
        let n = match self.sock.recv(&mut self.buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(Vec::new());
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // The socket overflowed: packets were lost, go on.
                self.drops = self.drops.wrapping_add(1);
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for msg in netlink::messages(&self.buf[..n]) {
            if msg.msg_type != (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
                continue;
            }
            if let Some(p) = parse_packet(msg.payload) {
                out.push(p);
            }
        }
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
        let _ = self.config(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_UNBIND]);
    }
}

/// `struct nfgenmsg`: family AF_UNSPEC, version 0, resource id = group (BE).
fn nfgenmsg(group: u16) -> [u8; 4] {
    let g = group.to_be_bytes();
    [0, 0, g[0], g[1]]
}

/// An NFULNL_MSG_PACKET payload (nfgenmsg + attributes) as a sampled header:
/// the link-layer header NFLOG reports in front of the network-layer payload.
pub fn parse_packet(payload: &[u8]) -> Option<SampledPacket> {
    let mut in_if = 0;
    let mut out_if = 0;
    let mut hw_protocol = 0;
    let mut hw_type = 0;
    let mut hw_header: &[u8] = &[];
    let mut data: &[u8] = &[];
    let mut seq = None;
    for (kind, v) in netlink::attributes(payload.get(4..)?) {
        match kind {
            NFULA_PACKET_HDR => hw_protocol = read_u16_be(v, 0)?,
            NFULA_IFINDEX_INDEV => in_if = read_u32_be(v, 0)?,
            NFULA_IFINDEX_OUTDEV => out_if = read_u32_be(v, 0)?,
            NFULA_PAYLOAD => data = v,
            NFULA_SEQ => seq = read_u32_be(v, 0),
            NFULA_HWTYPE => hw_type = read_u16_be(v, 0)?,
            NFULA_HWHEADER => hw_header = v,
            _ => {}
        }
    }
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
    let from_header = match hw_protocol {
        0x0800 => read_u16_be(data, 2).map(u32::from),
        0x86dd => read_u16_be(data, 4).map(|l| u32::from(l) + 40),
        _ => None,
    };
    from_header.unwrap_or(data.len() as u32).max(data.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(v);
        while !a.len().is_multiple_of(4) {
            a.push(0);
        }
        a
    }

    #[test]
    fn ethernet_header_is_put_back_in_front() {
        let mut ip = vec![0x45, 0, 0x05, 0xdc]; // IPv4, total length 1500
        ip.resize(200, 0xaa);
        let mac: Vec<u8> = (0u8..12).chain([0x08, 0x00]).collect();
        let mut payload = nfgenmsg(5).to_vec();
        payload.extend(attr(NFULA_PACKET_HDR, &[0x08, 0x00, 0, 0]));
        payload.extend(attr(NFULA_IFINDEX_INDEV, &7u32.to_be_bytes()));
        payload.extend(attr(NFULA_HWTYPE, &1u16.to_be_bytes()));
        payload.extend(attr(NFULA_HWHEADER, &mac));
        payload.extend(attr(NFULA_SEQ, &42u32.to_be_bytes()));
        payload.extend(attr(NFULA_PAYLOAD, &ip[..114]));
        let p = parse_packet(&payload).expect("packet");
        assert_eq!((p.in_ifindex, p.out_ifindex, p.seq), (7, 0, Some(42)));
        assert_eq!(p.header.header_protocol, HEADER_ETHERNET);
        assert_eq!(p.header.frame_length, 14 + 1500 + 4);
        assert_eq!(p.header.header.len(), 128);
        assert_eq!(&p.header.header[..14], &mac[..]);
        assert_eq!(p.header.header[14], 0x45);
    }

    #[test]
    fn sequence_gaps_count_as_drops() {
        let mut g = NflogGroup {
            sock: NetlinkSocket::open(libc::NETLINK_ROUTE).expect("socket"),
            group: 0,
            seq: 0,
            last_packet_seq: None,
            drops: 0,
            buf: Vec::new(),
        };
        g.note_seq(Some(1));
        g.note_seq(Some(2));
        g.note_seq(Some(5));
        assert_eq!(g.drops, 2);
        std::mem::forget(g); // not a real NFLOG socket: skip the unbind
    }
}
