//! Golden bytes: one datagram of each kind the exporter sends, written out
//! by hand from sflow_version_5.txt and sflow_host.txt (XDR: big-endian
//! 32-bit words, opaque data padded to four bytes, data_format =
//! enterprise << 12 | format).

use std::net::{IpAddr, Ipv4Addr};

use node_agent::sflow::datagram::{
    CounterSample, DataSource, FlowSample, HOST_SOURCE, Packer, SampleSequences, counter_samples,
};
use node_agent::sflow::records::{
    CounterRecord, HostAdapter, HostCpu, HostDescr, HostNetIo, IfCounters, InterfaceRecords,
    MachineType, OS_LINUX, SampledHeader,
};

const AGENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11));

/// Datagram header for agent 10.0.0.11, sub-agent 0, sequence 1, uptime
/// 1000 ms, one sample.
const HEADER: [u8; 28] = [
    0x00, 0x00, 0x00, 0x05, // version 5
    0x00, 0x00, 0x00, 0x01, // agent address type: IPv4
    0x0a, 0x00, 0x00, 0x0b, // 10.0.0.11
    0x00, 0x00, 0x00, 0x00, // sub_agent_id 0
    0x00, 0x00, 0x00, 0x01, // datagram sequence 1
    0x00, 0x00, 0x03, 0xe8, // uptime 1000 ms
    0x00, 0x00, 0x00, 0x01, // one sample
];

fn one_datagram(sample: Vec<u8>) -> Vec<u8> {
    let mut p = Packer::new(AGENT, 0);
    let mut d = p.pack(&[sample], 1000).expect("fits");
    assert_eq!(d.len(), 1);
    d.remove(0)
}

fn with_header(body: &[u8]) -> Vec<u8> {
    let mut v = HEADER.to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn interface_counter_datagram_matches_hand_written_bytes() {
    let sample = CounterSample {
        sequence: 1,
        source: DataSource::interface(3),
        records: vec![CounterRecord::Interface(IfCounters {
            if_index: 3,
            if_type: 6,
            if_speed: 10_000_000_000,
            if_direction: 1,
            if_status: 3,
            if_in_octets: 1500,
            if_in_ucast_pkts: 10,
            if_in_multicast_pkts: 0,
            if_in_broadcast_pkts: u32::MAX,
            if_in_discards: 0,
            if_in_errors: 0,
            if_in_unknown_protos: 0,
            if_out_octets: 1 << 32,
            if_out_ucast_pkts: 20,
            if_out_multicast_pkts: u32::MAX,
            if_out_broadcast_pkts: u32::MAX,
            if_out_discards: 1,
            if_out_errors: 2,
            if_promiscuous_mode: 2,
        })],
    };
    #[rustfmt::skip]
    let body: [u8; 120] = [
        0x00, 0x00, 0x00, 0x04, // sample data_format (0:4) counters_sample_expanded
        0x00, 0x00, 0x00, 0x70, // sample length 112
        0x00, 0x00, 0x00, 0x01, // sample sequence 1
        0x00, 0x00, 0x00, 0x00, // source_id_type 0 (ifIndex)
        0x00, 0x00, 0x00, 0x03, // source_id_index 3
        0x00, 0x00, 0x00, 0x01, // one counter record
        0x00, 0x00, 0x00, 0x01, // record data_format (0:1) if_counters
        0x00, 0x00, 0x00, 0x58, // record length 88
        0x00, 0x00, 0x00, 0x03, // ifIndex 3
        0x00, 0x00, 0x00, 0x06, // ifType 6 ethernetCsmacd
        0x00, 0x00, 0x00, 0x02, 0x54, 0x0b, 0xe4, 0x00, // ifSpeed 10 Gbit/s
        0x00, 0x00, 0x00, 0x01, // ifDirection full-duplex
        0x00, 0x00, 0x00, 0x03, // ifStatus admin up | oper up
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0xdc, // ifInOctets 1500
        0x00, 0x00, 0x00, 0x0a, // ifInUcastPkts 10
        0x00, 0x00, 0x00, 0x00, // ifInMulticastPkts 0
        0xff, 0xff, 0xff, 0xff, // ifInBroadcastPkts unknown
        0x00, 0x00, 0x00, 0x00, // ifInDiscards
        0x00, 0x00, 0x00, 0x00, // ifInErrors
        0x00, 0x00, 0x00, 0x00, // ifInUnknownProtos
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // ifOutOctets 2^32
        0x00, 0x00, 0x00, 0x14, // ifOutUcastPkts 20
        0xff, 0xff, 0xff, 0xff, // ifOutMulticastPkts unknown
        0xff, 0xff, 0xff, 0xff, // ifOutBroadcastPkts unknown
        0x00, 0x00, 0x00, 0x01, // ifOutDiscards 1
        0x00, 0x00, 0x00, 0x02, // ifOutErrors 2
        0x00, 0x00, 0x00, 0x02, // ifPromiscuousMode false(2)
    ];
    assert_eq!(one_datagram(sample.encode()), with_header(&body));
}

/// What the exporter sends per interface, as hsflowd does: one counter
/// sample with the generic counters and then the port name (0:1005,
/// `struct port_name { string name<255>; }` in sflow_openflow.txt).
#[test]
fn interface_sample_carries_the_port_name_after_the_counters() {
    let interface = InterfaceRecords {
        counters: IfCounters { if_index: 7, if_type: 6, if_status: 3, ..IfCounters::default() },
        name: "eth0.7".into(),
    };
    let mut sequences = SampleSequences::default();
    let samples = counter_samples(AGENT, vec![interface], vec![], vec![], &mut sequences);
    assert_eq!(samples.interfaces.len(), 1);
    #[rustfmt::skip]
    let body: [u8; 140] = [
        0x00, 0x00, 0x00, 0x04, // sample data_format (0:4) counters_sample_expanded
        0x00, 0x00, 0x00, 0x84, // sample length 132
        0x00, 0x00, 0x00, 0x01, // sample sequence 1
        0x00, 0x00, 0x00, 0x00, // source_id_type 0 (ifIndex)
        0x00, 0x00, 0x00, 0x07, // source_id_index 7
        0x00, 0x00, 0x00, 0x02, // two counter records
        0x00, 0x00, 0x00, 0x01, // record data_format (0:1) if_counters
        0x00, 0x00, 0x00, 0x58, // record length 88
        0x00, 0x00, 0x00, 0x07, // ifIndex 7
        0x00, 0x00, 0x00, 0x06, // ifType 6
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ifSpeed unknown
        0x00, 0x00, 0x00, 0x00, // ifDirection unknown
        0x00, 0x00, 0x00, 0x03, // ifStatus admin up | oper up
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ifInOctets
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // in ucast, mcast, bcast
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // in discards, errors, unknown protos
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ifOutOctets
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // out ucast, mcast, bcast
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // out discards, errors
        0x00, 0x00, 0x00, 0x00, // ifPromiscuousMode
        0x00, 0x00, 0x03, 0xed, // record data_format (0:1005) port_name
        0x00, 0x00, 0x00, 0x0c, // record length 12
        0x00, 0x00, 0x00, 0x06, // name<255> length 6
        b'e', b't', b'h', b'0', b'.', b'7', 0x00, 0x00, // "eth0.7", 2 bytes padding
    ];
    assert_eq!(one_datagram(samples.interfaces[0].clone()), with_header(&body));
}

#[test]
fn host_counter_datagram_matches_hand_written_bytes() {
    let sample = CounterSample {
        sequence: 1,
        source: HOST_SOURCE,
        records: vec![
            CounterRecord::HostDescr(HostDescr {
                hostname: "leaf1".into(),
                uuid: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
                machine_type: MachineType::Arm,
                os_name: OS_LINUX,
                os_release: "6.1".into(),
            }),
            CounterRecord::HostAdapters(vec![HostAdapter {
                if_index: 2,
                macs: vec![[0xb8, 0x27, 0xeb, 1, 2, 3]],
            }]),
            CounterRecord::HostCpu(HostCpu {
                load_one: 0.5,
                load_five: 1.0,
                load_fifteen: 2.0,
                proc_run: 1,
                proc_total: 100,
                cpu_num: 4,
                cpu_speed: 1200,
                uptime: 3600,
                cpu_user: 1,
                cpu_nice: 2,
                cpu_system: 3,
                cpu_idle: 4,
                cpu_wio: 5,
                cpu_intr: 6,
                cpu_sintr: 7,
                interrupts: 8,
                contexts: 9,
                cpu_steal: 10,
                cpu_guest: 11,
                cpu_guest_nice: 12,
            }),
            CounterRecord::HostNetIo(HostNetIo {
                bytes_in: (1 << 32) + 2,
                pkts_in: 3,
                errs_in: 4,
                drops_in: 5,
                bytes_out: 6,
                pkts_out: 7,
                errs_out: 8,
                drops_out: 9,
            }),
        ],
    };
    #[rustfmt::skip]
    let body: [u8; 240] = [
        0x00, 0x00, 0x00, 0x04, // sample data_format (0:4) counters_sample_expanded
        0x00, 0x00, 0x00, 0xe8, // sample length 232
        0x00, 0x00, 0x00, 0x01, // sample sequence 1
        0x00, 0x00, 0x00, 0x02, // source_id_type 2 (physical entity)
        0x00, 0x00, 0x00, 0x01, // source_id_index 1 (the host)
        0x00, 0x00, 0x00, 0x04, // four counter records
        // host_descr
        0x00, 0x00, 0x07, 0xd0, // data_format (0:2000)
        0x00, 0x00, 0x00, 0x2c, // length 44
        0x00, 0x00, 0x00, 0x05, b'l', b'e', b'a', b'f', b'1', 0x00, 0x00, 0x00, // hostname<64> "leaf1", 3 bytes padding
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // uuid[16]
        0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x00, 0x00, 0x00, 0x0a, // machine_type arm (10)
        0x00, 0x00, 0x00, 0x02, // os_name linux (2)
        0x00, 0x00, 0x00, 0x03, b'6', b'.', b'1', 0x00, // os_release<32> "6.1", 1 byte padding
        // host_adapters
        0x00, 0x00, 0x07, 0xd1, // data_format (0:2001)
        0x00, 0x00, 0x00, 0x14, // length 20
        0x00, 0x00, 0x00, 0x01, // one adapter
        0x00, 0x00, 0x00, 0x02, // ifIndex 2
        0x00, 0x00, 0x00, 0x01, // one MAC address
        0xb8, 0x27, 0xeb, 0x01, 0x02, 0x03, 0x00, 0x00, // mac_address[6], 2 bytes padding
        // host_cpu
        0x00, 0x00, 0x07, 0xd3, // data_format (0:2003)
        0x00, 0x00, 0x00, 0x50, // length 80
        0x3f, 0x00, 0x00, 0x00, // load_one 0.5 (IEEE 754)
        0x3f, 0x80, 0x00, 0x00, // load_five 1.0
        0x40, 0x00, 0x00, 0x00, // load_fifteen 2.0
        0x00, 0x00, 0x00, 0x01, // proc_run 1
        0x00, 0x00, 0x00, 0x64, // proc_total 100
        0x00, 0x00, 0x00, 0x04, // cpu_num 4
        0x00, 0x00, 0x04, 0xb0, // cpu_speed 1200 MHz
        0x00, 0x00, 0x0e, 0x10, // uptime 3600 s
        0x00, 0x00, 0x00, 0x01, // cpu_user
        0x00, 0x00, 0x00, 0x02, // cpu_nice
        0x00, 0x00, 0x00, 0x03, // cpu_system
        0x00, 0x00, 0x00, 0x04, // cpu_idle
        0x00, 0x00, 0x00, 0x05, // cpu_wio
        0x00, 0x00, 0x00, 0x06, // cpu_intr
        0x00, 0x00, 0x00, 0x07, // cpu_sintr
        0x00, 0x00, 0x00, 0x08, // interrupts
        0x00, 0x00, 0x00, 0x09, // contexts
        0x00, 0x00, 0x00, 0x0a, // cpu_steal
        0x00, 0x00, 0x00, 0x0b, // cpu_guest
        0x00, 0x00, 0x00, 0x0c, // cpu_guest_nice
        // host_net_io
        0x00, 0x00, 0x07, 0xd6, // data_format (0:2006)
        0x00, 0x00, 0x00, 0x28, // length 40
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, // bytes_in 2^32 + 2
        0x00, 0x00, 0x00, 0x03, // pkts_in
        0x00, 0x00, 0x00, 0x04, // errs_in
        0x00, 0x00, 0x00, 0x05, // drops_in
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, // bytes_out 6
        0x00, 0x00, 0x00, 0x07, // pkts_out
        0x00, 0x00, 0x00, 0x08, // errs_out
        0x00, 0x00, 0x00, 0x09, // drops_out
    ];
    assert_eq!(one_datagram(sample.encode()), with_header(&body));
}

#[test]
fn flow_sample_datagram_matches_hand_written_bytes() {
    let arp_eth = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06];
    let sample = FlowSample {
        sequence: 1,
        source: DataSource::interface(3),
        sampling_rate: 100,
        sample_pool: 100,
        drops: 0,
        input: 3,
        output: 0,
        header: SampledHeader {
            header_protocol: 1,
            frame_length: 64,
            stripped: 4,
            header: arp_eth,
        },
    };
    #[rustfmt::skip]
    let body: [u8; 80] = [
        0x00, 0x00, 0x00, 0x01, // sample data_format (0:1) flow_sample
        0x00, 0x00, 0x00, 0x48, // sample length 72
        0x00, 0x00, 0x00, 0x01, // sample sequence 1
        0x00, 0x00, 0x00, 0x03, // source_id: type 0 (top byte), ifIndex 3
        0x00, 0x00, 0x00, 0x64, // sampling_rate 100
        0x00, 0x00, 0x00, 0x64, // sample_pool 100
        0x00, 0x00, 0x00, 0x00, // drops 0
        0x00, 0x00, 0x00, 0x03, // input: format 0, ifIndex 3
        0x00, 0x00, 0x00, 0x00, // output: unknown (0)
        0x00, 0x00, 0x00, 0x01, // one flow record
        0x00, 0x00, 0x00, 0x01, // record data_format (0:1) sampled_header
        0x00, 0x00, 0x00, 0x20, // record length 32
        0x00, 0x00, 0x00, 0x01, // header_protocol ETHERNET-ISO88023
        0x00, 0x00, 0x00, 0x40, // frame_length 64
        0x00, 0x00, 0x00, 0x04, // stripped 4 (FCS)
        0x00, 0x00, 0x00, 0x0e, // header<> length 14
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination MAC: broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x08, 0x06, 0x00, 0x00,             // EtherType ARP, 2 bytes padding
    ];
    assert_eq!(one_datagram(sample.encode()), with_header(&body));
}
