//! The sFlow v5 records pi-lab exports, and their XDR encoding.
//!
//! Field names and order follow sflow_version_5.txt (generic interface
//! counters, sampled header) and sflow_host.txt (host structures).

use super::xdr::{Xdr, data_format};

/// "Unknown" for a 32-bit counter the kernel does not keep (sFlow v5: a
/// counter that is not available is reported as 2^32-1).
pub const UNKNOWN_U32: u32 = u32::MAX;

/// `counter_data` formats (enterprise 0).
pub mod format {
    pub const GENERIC_INTERFACE: u32 = 1;
    pub const HOST_DESCR: u32 = 2000;
    pub const HOST_ADAPTERS: u32 = 2001;
    pub const HOST_CPU: u32 = 2003;
    pub const HOST_MEMORY: u32 = 2004;
    pub const HOST_DISK_IO: u32 = 2005;
    pub const HOST_NET_IO: u32 = 2006;
    /// `port_name` (0:1005): the interface's name, as hsflowd sends it.
    pub const PORT_NAME: u32 = 1005;
    /// `flow_data` format of a raw packet header.
    pub const SAMPLED_HEADER: u32 = 1;
    /// `sample_data` formats.
    pub const FLOW_SAMPLE: u32 = 1;
    pub const COUNTERS_SAMPLE_EXPANDED: u32 = 4;
}

/// Generic interface counters (0:1), struct `if_counters`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfCounters {
    pub if_index: u32,
    /// IANA ifType: 6 ethernetCsmacd, 24 softwareLoopback, 1 other.
    pub if_type: u32,
    /// Bits per second, 0 when unknown.
    pub if_speed: u64,
    /// 0 unknown, 1 full-duplex, 2 half-duplex, 3 in, 4 out.
    pub if_direction: u32,
    /// Bit 0: admin up; bit 1: operationally up.
    pub if_status: u32,
    pub if_in_octets: u64,
    pub if_in_ucast_pkts: u32,
    pub if_in_multicast_pkts: u32,
    pub if_in_broadcast_pkts: u32,
    pub if_in_discards: u32,
    pub if_in_errors: u32,
    pub if_in_unknown_protos: u32,
    pub if_out_octets: u64,
    pub if_out_ucast_pkts: u32,
    pub if_out_multicast_pkts: u32,
    pub if_out_broadcast_pkts: u32,
    pub if_out_discards: u32,
    pub if_out_errors: u32,
    /// 1 promiscuous, 2 not (ifPromiscuousMode: TruthValue).
    pub if_promiscuous_mode: u32,
}

/// Longest `port_name` (`string name<255>`).
pub const PORT_NAME_MAX: usize = 255;

/// What one interface's counter sample carries, as hsflowd sends it: the
/// generic counters and the port name (0:1005), so that collectors can
/// show `eth1` rather than ifIndex 3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceRecords {
    pub counters: IfCounters,
    /// At most [`PORT_NAME_MAX`] bytes are sent.
    pub name: String,
}

impl InterfaceRecords {
    pub fn records(self) -> Vec<CounterRecord> {
        vec![CounterRecord::Interface(self.counters), CounterRecord::PortName(self.name)]
    }
}

/// `machine_type` of host_descr (sflow_host.txt). There is no separate
/// 64-bit ARM value: hsflowd reports aarch64 as `arm`, and so do we.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MachineType {
    Unknown = 0,
    Other = 1,
    X86 = 2,
    X86_64 = 3,
    Ia64 = 4,
    Sparc = 5,
    Alpha = 6,
    PowerPc = 7,
    M68k = 8,
    Mips = 9,
    Arm = 10,
    Hppa = 11,
    S390 = 12,
}

impl MachineType {
    /// From `uname -m`.
    pub fn from_uname(machine: &str) -> Self {
        match machine {
            "" => MachineType::Unknown,
            "x86_64" => MachineType::X86_64,
            "i386" | "i486" | "i586" | "i686" => MachineType::X86,
            "ia64" => MachineType::Ia64,
            "alpha" => MachineType::Alpha,
            "m68k" => MachineType::M68k,
            m if m.starts_with("arm") || m == "aarch64" => MachineType::Arm,
            m if m.starts_with("sparc") => MachineType::Sparc,
            m if m.starts_with("ppc") || m.starts_with("powerpc") => MachineType::PowerPc,
            m if m.starts_with("mips") => MachineType::Mips,
            m if m.starts_with("parisc") => MachineType::Hppa,
            m if m.starts_with("s390") => MachineType::S390,
            _ => MachineType::Other,
        }
    }
}

/// `os_name` value for Linux.
pub const OS_LINUX: u32 = 2;

/// host_descr (0:2000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDescr {
    /// At most 64 bytes are sent.
    pub hostname: String,
    /// Binary UUID (from /etc/machine-id); all zeros when unknown.
    pub uuid: [u8; 16],
    pub machine_type: MachineType,
    pub os_name: u32,
    /// Kernel release; at most 32 bytes are sent.
    pub os_release: String,
}

/// One entry of host_adapters (0:2001).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAdapter {
    pub if_index: u32,
    pub macs: Vec<[u8; 6]>,
}

impl HostAdapter {
    /// Bytes this adapter takes on the wire.
    pub fn encoded_len(&self) -> usize {
        8 + 8 * self.macs.len()
    }
}

/// host_cpu (0:2003), with the cpu_steal/cpu_guest/cpu_guest_nice fields
/// hsflowd sends after the original seventeen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostCpu {
    pub load_one: f32,
    pub load_five: f32,
    pub load_fifteen: f32,
    pub proc_run: u32,
    pub proc_total: u32,
    pub cpu_num: u32,
    /// MHz.
    pub cpu_speed: u32,
    /// Seconds since boot.
    pub uptime: u32,
    /// The times are milliseconds summed over all CPUs.
    pub cpu_user: u32,
    pub cpu_nice: u32,
    pub cpu_system: u32,
    pub cpu_idle: u32,
    pub cpu_wio: u32,
    pub cpu_intr: u32,
    pub cpu_sintr: u32,
    pub interrupts: u32,
    pub contexts: u32,
    pub cpu_steal: u32,
    pub cpu_guest: u32,
    pub cpu_guest_nice: u32,
}

/// host_memory (0:2004), bytes and page counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMemory {
    pub mem_total: u64,
    pub mem_free: u64,
    pub mem_shared: u64,
    pub mem_buffers: u64,
    pub mem_cached: u64,
    pub swap_total: u64,
    pub swap_free: u64,
    pub page_in: u32,
    pub page_out: u32,
    pub swap_in: u32,
    pub swap_out: u32,
}

/// host_disk_io (0:2005).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDiskIo {
    pub disk_total: u64,
    pub disk_free: u64,
    /// Fullest partition, percent × 100.
    pub part_max_used: i32,
    pub reads: u32,
    pub bytes_read: u64,
    /// Milliseconds.
    pub read_time: u32,
    pub writes: u32,
    pub bytes_written: u64,
    pub write_time: u32,
}

/// host_net_io (0:2006).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNetIo {
    pub bytes_in: u64,
    pub pkts_in: u32,
    pub errs_in: u32,
    pub drops_in: u32,
    pub bytes_out: u64,
    pub pkts_out: u32,
    pub errs_out: u32,
    pub drops_out: u32,
}

/// `header_protocol` of a sampled header.
pub const HEADER_ETHERNET: u32 = 1;
pub const HEADER_IPV4: u32 = 11;
pub const HEADER_IPV6: u32 = 12;

/// Raw packet header (flow_data 0:1), struct `sampled_header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledHeader {
    pub header_protocol: u32,
    /// Length of the packet on the wire (for Ethernet including the FCS).
    pub frame_length: u32,
    /// Bytes removed before sampling (the 4-byte FCS on Ethernet).
    pub stripped: u32,
    /// The first bytes of the packet (at most 128 from NFLOG).
    pub header: Vec<u8>,
}

/// A counter record of an expanded counter sample.
#[derive(Debug, Clone, PartialEq)]
pub enum CounterRecord {
    Interface(IfCounters),
    HostDescr(HostDescr),
    HostAdapters(Vec<HostAdapter>),
    HostCpu(HostCpu),
    HostMemory(HostMemory),
    HostDiskIo(HostDiskIo),
    HostNetIo(HostNetIo),
    /// port_name (0:1005).
    PortName(String),
}

impl CounterRecord {
    pub fn format(&self) -> u32 {
        match self {
            CounterRecord::Interface(_) => format::GENERIC_INTERFACE,
            CounterRecord::HostDescr(_) => format::HOST_DESCR,
            CounterRecord::HostAdapters(_) => format::HOST_ADAPTERS,
            CounterRecord::HostCpu(_) => format::HOST_CPU,
            CounterRecord::HostMemory(_) => format::HOST_MEMORY,
            CounterRecord::HostDiskIo(_) => format::HOST_DISK_IO,
            CounterRecord::HostNetIo(_) => format::HOST_NET_IO,
            CounterRecord::PortName(_) => format::PORT_NAME,
        }
    }

    /// Writes `data_format`, the length and the record itself.
    pub fn encode(&self, x: &mut Xdr) {
        x.u32(data_format(0, self.format()));
        let at = x.begin_block();
        match self {
            CounterRecord::Interface(c) => encode_if_counters(c, x),
            CounterRecord::HostDescr(d) => encode_host_descr(d, x),
            CounterRecord::HostAdapters(a) => encode_host_adapters(a, x),
            CounterRecord::HostCpu(c) => encode_host_cpu(c, x),
            CounterRecord::HostMemory(m) => encode_host_memory(m, x),
            CounterRecord::HostDiskIo(d) => encode_host_disk_io(d, x),
            CounterRecord::HostNetIo(n) => encode_host_net_io(n, x),
            CounterRecord::PortName(name) => {
                x.string(name, PORT_NAME_MAX);
            }
        }
        x.end_block(at);
    }

    /// Bytes the record takes on the wire, header included.
    pub fn encoded_len(&self) -> usize {
        let mut x = Xdr::new();
        self.encode(&mut x);
        x.len()
    }
}

fn encode_if_counters(c: &IfCounters, x: &mut Xdr) {
    x.u32(c.if_index).u32(c.if_type).u64(c.if_speed).u32(c.if_direction).u32(c.if_status);
    x.u64(c.if_in_octets)
        .u32(c.if_in_ucast_pkts)
        .u32(c.if_in_multicast_pkts)
        .u32(c.if_in_broadcast_pkts)
        .u32(c.if_in_discards)
        .u32(c.if_in_errors)
        .u32(c.if_in_unknown_protos);
    x.u64(c.if_out_octets)
        .u32(c.if_out_ucast_pkts)
        .u32(c.if_out_multicast_pkts)
        .u32(c.if_out_broadcast_pkts)
        .u32(c.if_out_discards)
        .u32(c.if_out_errors);
    x.u32(c.if_promiscuous_mode);
}

fn encode_host_descr(d: &HostDescr, x: &mut Xdr) {
    x.string(&d.hostname, 64);
    // sflow_host.txt erratum: the UUID is a fixed 16 bytes, not opaque<16>.
    x.opaque_fixed(&d.uuid);
    x.u32(d.machine_type as u32).u32(d.os_name);
    x.string(&d.os_release, 32);
}

fn encode_host_adapters(adapters: &[HostAdapter], x: &mut Xdr) {
    x.u32(u32::try_from(adapters.len()).unwrap_or(u32::MAX));
    for a in adapters {
        x.u32(a.if_index).u32(u32::try_from(a.macs.len()).unwrap_or(u32::MAX));
        for mac in &a.macs {
            // `opaque mac_address[6]`: padded to eight bytes.
            x.opaque_fixed(mac);
        }
    }
}

fn encode_host_cpu(c: &HostCpu, x: &mut Xdr) {
    x.f32(c.load_one).f32(c.load_five).f32(c.load_fifteen);
    x.u32(c.proc_run).u32(c.proc_total).u32(c.cpu_num).u32(c.cpu_speed).u32(c.uptime);
    x.u32(c.cpu_user)
        .u32(c.cpu_nice)
        .u32(c.cpu_system)
        .u32(c.cpu_idle)
        .u32(c.cpu_wio)
        .u32(c.cpu_intr)
        .u32(c.cpu_sintr)
        .u32(c.interrupts)
        .u32(c.contexts);
    x.u32(c.cpu_steal).u32(c.cpu_guest).u32(c.cpu_guest_nice);
}

fn encode_host_memory(m: &HostMemory, x: &mut Xdr) {
    x.u64(m.mem_total)
        .u64(m.mem_free)
        .u64(m.mem_shared)
        .u64(m.mem_buffers)
        .u64(m.mem_cached)
        .u64(m.swap_total)
        .u64(m.swap_free);
    x.u32(m.page_in).u32(m.page_out).u32(m.swap_in).u32(m.swap_out);
}

fn encode_host_disk_io(d: &HostDiskIo, x: &mut Xdr) {
    x.u64(d.disk_total).u64(d.disk_free).i32(d.part_max_used);
    x.u32(d.reads).u64(d.bytes_read).u32(d.read_time);
    x.u32(d.writes).u64(d.bytes_written).u32(d.write_time);
}

fn encode_host_net_io(n: &HostNetIo, x: &mut Xdr) {
    x.u64(n.bytes_in).u32(n.pkts_in).u32(n.errs_in).u32(n.drops_in);
    x.u64(n.bytes_out).u32(n.pkts_out).u32(n.errs_out).u32(n.drops_out);
}

/// Writes a raw packet header flow record (format, length, record).
pub fn encode_sampled_header(h: &SampledHeader, x: &mut Xdr) {
    x.u32(data_format(0, format::SAMPLED_HEADER));
    let at = x.begin_block();
    x.u32(h.header_protocol).u32(h.frame_length).u32(h.stripped);
    x.opaque(&h.header);
    x.end_block(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch64_is_reported_as_arm() {
        assert_eq!(MachineType::from_uname("aarch64"), MachineType::Arm);
        assert_eq!(MachineType::from_uname("armv7l"), MachineType::Arm);
        assert_eq!(MachineType::from_uname("x86_64"), MachineType::X86_64);
        assert_eq!(MachineType::from_uname("riscv64"), MachineType::Other);
    }

    #[test]
    fn record_lengths_match_the_specification() {
        // Fixed-size structures: sizes from the XDR definitions, plus the
        // 8-byte data_format/length header.
        assert_eq!(CounterRecord::Interface(IfCounters::default()).encoded_len(), 8 + 88);
        assert_eq!(CounterRecord::HostCpu(HostCpu::default()).encoded_len(), 8 + 80);
        assert_eq!(CounterRecord::HostMemory(HostMemory::default()).encoded_len(), 8 + 72);
        assert_eq!(CounterRecord::HostDiskIo(HostDiskIo::default()).encoded_len(), 8 + 52);
        assert_eq!(CounterRecord::HostNetIo(HostNetIo::default()).encoded_len(), 8 + 40);
        let adapters = vec![HostAdapter { if_index: 2, macs: vec![[1, 2, 3, 4, 5, 6]] }];
        assert_eq!(CounterRecord::HostAdapters(adapters).encoded_len(), 8 + 4 + 16);
        // string<255>: length, bytes, padding to four.
        assert_eq!(CounterRecord::PortName("eth1".into()).encoded_len(), 8 + 4 + 4);
        assert_eq!(CounterRecord::PortName("eth0.101".into()).encoded_len(), 8 + 4 + 8);
        assert_eq!(CounterRecord::PortName("x".repeat(300)).encoded_len(), 8 + 4 + 256);
    }
}
