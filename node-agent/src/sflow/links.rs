//! Interfaces and their counters, read from the kernel over rtnetlink
//! (RTM_GETLINK with IFLA_STATS64) and ethtool, in the network namespace of
//! the calling thread. No sysfs: /sys shows the namespace that mounted it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State, Stats64};

use super::records::{HostAdapter, HostNetIo, IfCounters, InterfaceRecords, UNKNOWN_U32};
use crate::netlink::{Netlink, NetlinkError};

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// `struct rtnl_link_stats64`, the fields we use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub multicast: u64,
    pub rx_nohandler: u64,
}

/// One network interface as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// ARPHRD_* link type.
    pub link_type: u16,
    /// IFF_* flags.
    pub flags: u32,
    pub oper_up: bool,
    pub mac: Option<[u8; 6]>,
    pub stats: LinkStats,
    /// Bits per second, 0 if unknown.
    pub speed: u64,
    /// sFlow ifDirection: 0 unknown, 1 full, 2 half duplex.
    pub direction: u32,
}

/// Every link of the current network namespace, with counters and speed.
pub fn read_links() -> Result<Vec<Link>, NetlinkError> {
    let mut nl = Netlink::open()?;
    let mut links: Vec<Link> = nl
        .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(link(l)),
            _ => None,
        })
        .collect();
    let ethtool = EthtoolSocket::open().ok();
    for link in &mut links {
        if let Some((speed, direction)) = ethtool.as_ref().and_then(|e| e.speed_duplex(&link.name))
        {
            link.speed = speed;
            link.direction = direction;
        }
    }
    Ok(links)
}

/// One `RTM_NEWLINK` answer as the exporter sees it.
pub fn link(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        link_type: u16::from(l.header.link_layer_type),
        flags: l.header.flags.bits(),
        ..Link::default()
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(mac) => link.mac = mac.as_slice().try_into().ok(),
            LinkAttribute::OperState(state) => link.oper_up = *state == State::Up,
            LinkAttribute::Stats64(stats) => link.stats = stats64(stats),
            _ => {}
        }
    }
    link
}

fn stats64(s: &Stats64) -> LinkStats {
    LinkStats {
        rx_packets: s.rx_packets,
        tx_packets: s.tx_packets,
        rx_bytes: s.rx_bytes,
        tx_bytes: s.tx_bytes,
        rx_errors: s.rx_errors,
        tx_errors: s.tx_errors,
        rx_dropped: s.rx_dropped,
        tx_dropped: s.tx_dropped,
        multicast: s.multicast,
        // Older kernels end the struct before it: the decoder fills in 0.
        rx_nohandler: s.rx_nohandler,
    }
}

/// Counters wrap like the 32-bit MIB-II counters they stand for.
fn c32(v: u64) -> u32 {
    v as u32
}

impl Link {
    /// Generic interface counters (0:1). Linux keeps no per-direction
    /// broadcast counts nor outbound multicast: those are "unknown".
    pub fn if_counters(&self) -> IfCounters {
        let s = &self.stats;
        let admin_up = self.flags & LinkFlags::Up.bits() != 0;
        let oper_up = self.oper_up || (admin_up && self.flags & LinkFlags::Running.bits() != 0);
        IfCounters {
            if_index: self.index,
            if_type: match self.link_type {
                ARPHRD_ETHER => 6,
                ARPHRD_LOOPBACK => 24,
                _ => 1,
            },
            if_speed: self.speed,
            if_direction: self.direction,
            if_status: u32::from(admin_up) | (u32::from(oper_up) << 1),
            if_in_octets: s.rx_bytes,
            if_in_ucast_pkts: c32(s.rx_packets.saturating_sub(s.multicast)),
            if_in_multicast_pkts: c32(s.multicast),
            if_in_broadcast_pkts: UNKNOWN_U32,
            if_in_discards: c32(s.rx_dropped),
            if_in_errors: c32(s.rx_errors),
            if_in_unknown_protos: c32(s.rx_nohandler),
            if_out_octets: s.tx_bytes,
            if_out_ucast_pkts: c32(s.tx_packets),
            if_out_multicast_pkts: UNKNOWN_U32,
            if_out_broadcast_pkts: UNKNOWN_U32,
            if_out_discards: c32(s.tx_dropped),
            if_out_errors: c32(s.tx_errors),
            if_promiscuous_mode: if self.flags & LinkFlags::Promisc.bits() != 0 { 1 } else { 2 },
        }
    }

    /// The interface's counter sample records: counters and name.
    pub fn interface_records(&self) -> InterfaceRecords {
        InterfaceRecords { counters: self.if_counters(), name: self.name.clone() }
    }

    pub fn adapter(&self) -> HostAdapter {
        HostAdapter {
            if_index: self.index,
            macs: self.mac.into_iter().filter(|m| *m != [0; 6]).collect(),
        }
    }

    pub fn is_loopback(&self) -> bool {
        self.link_type == ARPHRD_LOOPBACK
    }
}

/// host_net_io: the sum over every interface but loopback, as hsflowd does.
pub fn host_net_io(links: &[Link]) -> HostNetIo {
    let mut n = HostNetIo::default();
    for l in links.iter().filter(|l| !l.is_loopback()) {
        let s = &l.stats;
        n.bytes_in += s.rx_bytes;
        n.pkts_in = n.pkts_in.wrapping_add(c32(s.rx_packets));
        n.errs_in = n.errs_in.wrapping_add(c32(s.rx_errors));
        n.drops_in = n.drops_in.wrapping_add(c32(s.rx_dropped));
        n.bytes_out += s.tx_bytes;
        n.pkts_out = n.pkts_out.wrapping_add(c32(s.tx_packets));
        n.errs_out = n.errs_out.wrapping_add(c32(s.tx_errors));
        n.drops_out = n.drops_out.wrapping_add(c32(s.tx_dropped));
    }
    n
}

/// An AF_INET socket for SIOCETHTOOL requests.
struct EthtoolSocket {
    fd: OwnedFd,
}

/// `struct ethtool_cmd` (ETHTOOL_GSET): 44 bytes.
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

/// `struct ifreq` with the `ifr_data` member of the union.
#[repr(C)]
struct IfReqData {
    name: [u8; 16],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSET: u32 = 1;

impl EthtoolSocket {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call, checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor we own.
        Ok(EthtoolSocket { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Speed in bit/s and sFlow ifDirection, if the driver says.
    fn speed_duplex(&self, name: &str) -> Option<(u64, u32)> {
        if name.len() >= 16 {
            return None;
        }
        let mut cmd = EthtoolCmd { cmd: ETHTOOL_GSET, ..EthtoolCmd::default() };
        let mut req =
            IfReqData { name: [0; 16], data: (&mut cmd as *mut EthtoolCmd).cast(), _pad: [0; 16] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: req is a valid ifreq whose data points to a live ethtool_cmd.
        let rc = unsafe {
            libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReqData)
        };
        if rc < 0 {
            return None;
        }
        let mbps = u32::from(cmd.speed) | (u32::from(cmd.speed_hi) << 16);
        let speed = if mbps == 0 || mbps == u32::MAX || mbps == 0xffff {
            0
        } else {
            u64::from(mbps) * 1_000_000
        };
        let direction = match cmd.duplex {
            0 => 2,
            1 => 1,
            _ => 0,
        };
        Some((speed, direction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_counters_come_from_the_kernel() {
        let links = read_links().expect("RTM_GETLINK dump");
        let lo = links.iter().find(|l| l.name == "lo").expect("lo in the dump");
        assert!(lo.is_loopback());
        assert_eq!(lo.if_counters().if_type, 24);
        assert!(lo.index >= 1);
    }

    #[test]
    fn counters_map_to_if_counters() {
        let link = Link {
            index: 4,
            link_type: ARPHRD_ETHER,
            flags: (LinkFlags::Up | LinkFlags::Running | LinkFlags::Promisc).bits(),
            stats: LinkStats {
                rx_packets: 10,
                multicast: 3,
                rx_bytes: 1 << 40,
                ..LinkStats::default()
            },
            speed: 100_000_000,
            direction: 1,
            ..Link::default()
        };
        let c = link.if_counters();
        assert_eq!((c.if_index, c.if_type, c.if_status, c.if_promiscuous_mode), (4, 6, 3, 1));
        assert_eq!((c.if_in_ucast_pkts, c.if_in_multicast_pkts, c.if_in_octets), (7, 3, 1 << 40));
        assert_eq!(c.if_in_broadcast_pkts, UNKNOWN_U32);
    }
}
