//! Every structure the exporter encodes, decoded by two independent sFlow
//! decoders (`sflow-parser`, `flowparser-sflow`): each field must come back
//! as it was written.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use flowparser_sflow::{
    CounterRecord as FpCounter, FlowRecord as FpFlow, SflowParser, SflowSample,
};
use node_agent::sflow::datagram::{CounterSample, DataSource, FlowSample, HOST_SOURCE, Packer};
use node_agent::sflow::records::{
    CounterRecord, HostAdapter, HostCpu, HostDescr, HostDiskIo, HostMemory, HostNetIo, IfCounters,
    InterfaceRecords, MachineType, OS_LINUX, SampledHeader,
};
use sflow_parser::models::{Address, CounterData, FlowData, SampleData};

fn if_counters() -> IfCounters {
    // Distinct values everywhere, 64-bit counters above 2^32.
    IfCounters {
        if_index: 7,
        if_type: 6,
        if_speed: 100_000_000,
        if_direction: 1,
        if_status: 3,
        if_in_octets: 0x1_2345_6789,
        if_in_ucast_pkts: 11,
        if_in_multicast_pkts: 12,
        if_in_broadcast_pkts: u32::MAX,
        if_in_discards: 14,
        if_in_errors: 15,
        if_in_unknown_protos: 16,
        if_out_octets: 0x2_0000_0001,
        if_out_ucast_pkts: 21,
        if_out_multicast_pkts: 22,
        if_out_broadcast_pkts: 23,
        if_out_discards: 24,
        if_out_errors: 25,
        if_promiscuous_mode: 2,
    }
}

fn descr() -> HostDescr {
    HostDescr {
        hostname: "leaf1".into(),
        uuid: [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8],
        machine_type: MachineType::Arm,
        os_name: OS_LINUX,
        os_release: "6.12.48+deb13-arm64".into(),
    }
}

fn adapters() -> Vec<HostAdapter> {
    vec![
        HostAdapter { if_index: 2, macs: vec![[0xb8, 0x27, 0xeb, 1, 2, 3]] },
        HostAdapter { if_index: 3, macs: vec![[0x02, 0, 0, 0, 0, 9], [0x02, 0, 0, 0, 0, 10]] },
        HostAdapter { if_index: 4, macs: vec![] },
    ]
}

fn cpu() -> HostCpu {
    HostCpu {
        load_one: 0.25,
        load_five: 1.5,
        load_fifteen: 3.75,
        proc_run: 2,
        proc_total: 143,
        cpu_num: 4,
        cpu_speed: 1200,
        uptime: 86_400,
        cpu_user: 101,
        cpu_nice: 102,
        cpu_system: 103,
        cpu_idle: 104,
        cpu_wio: 105,
        cpu_intr: 106,
        cpu_sintr: 107,
        interrupts: 108,
        contexts: 109,
        cpu_steal: 110,
        cpu_guest: 111,
        cpu_guest_nice: 112,
    }
}

fn memory() -> HostMemory {
    HostMemory {
        mem_total: 1 << 30,
        mem_free: 1 << 29,
        mem_shared: 3,
        mem_buffers: 4,
        mem_cached: 5,
        swap_total: 6,
        swap_free: 7,
        page_in: 8,
        page_out: 9,
        swap_in: 10,
        swap_out: 11,
    }
}

fn disk() -> HostDiskIo {
    HostDiskIo {
        disk_total: 32 << 30,
        disk_free: 20 << 30,
        part_max_used: 3750,
        reads: 1,
        bytes_read: 2 << 32,
        read_time: 3,
        writes: 4,
        bytes_written: 5 << 32,
        write_time: 6,
    }
}

fn net() -> HostNetIo {
    HostNetIo {
        bytes_in: 1 << 33,
        pkts_in: 2,
        errs_in: 3,
        drops_in: 4,
        bytes_out: 5 << 33,
        pkts_out: 6,
        errs_out: 7,
        drops_out: 8,
    }
}

fn host_sample() -> CounterSample {
    CounterSample {
        sequence: 42,
        source: HOST_SOURCE,
        records: vec![
            CounterRecord::HostDescr(descr()),
            CounterRecord::HostAdapters(adapters()),
            CounterRecord::HostCpu(cpu()),
            CounterRecord::HostMemory(memory()),
            CounterRecord::HostDiskIo(disk()),
            CounterRecord::HostNetIo(net()),
        ],
    }
}

fn flow_sample() -> FlowSample {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0, 0, 84];
    frame.resize(98, 0x5a); // 98 bytes: the opaque needs 2 bytes of padding
    FlowSample {
        sequence: 9,
        source: DataSource::interface(7),
        sampling_rate: 100,
        sample_pool: 12_300,
        drops: 5,
        input: 7,
        output: 0,
        header: SampledHeader { header_protocol: 1, frame_length: 102, stripped: 4, header: frame },
    }
}

fn datagram(agent: IpAddr, samples: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Packer::new(agent, 3);
    let mut d = p.pack(samples, 123_456).expect("samples fit");
    assert_eq!(d.len(), 1, "one datagram expected");
    d.remove(0)
}

const AGENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11));

#[test]
fn header_round_trips_through_sflow_parser_v4_and_v6() {
    for agent in [AGENT, IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 11))] {
        let bytes = datagram(agent, &[host_sample().encode()]);
        let d = sflow_parser::parse_datagram(&bytes).expect("sflow-parser decodes");
        match (d.agent_address, agent) {
            (Address::IPv4(a), IpAddr::V4(b)) => assert_eq!(a, b),
            (Address::IPv6(a), IpAddr::V6(b)) => assert_eq!(a, b),
            (other, _) => panic!("agent address decoded as {other:?}"),
        }
        assert_eq!((d.sub_agent_id, d.sequence_number, d.uptime), (3, 1, 123_456));
        assert_eq!(d.samples.len(), 1);
    }
}

#[test]
fn interface_counters_round_trip_through_both_decoders() {
    let c = if_counters();
    let sample = CounterSample {
        sequence: 5,
        source: DataSource::interface(7),
        records: vec![CounterRecord::Interface(c.clone())],
    };
    let bytes = datagram(AGENT, &[sample.encode()]);

    let d = sflow_parser::parse_datagram(&bytes).expect("sflow-parser decodes");
    let SampleData::CountersSampleExpanded(s) = &d.samples[0].sample_data else {
        panic!("{:?}", d.samples[0])
    };
    assert_eq!(
        (s.sequence_number, s.source_id.source_id_type, s.source_id.source_id_index),
        (5, 0, 7)
    );
    let CounterData::GenericInterface(g) = &s.counters[0].counter_data else {
        panic!("{:?}", s.counters[0])
    };
    assert_eq!(
        (g.if_index, g.if_type, g.if_speed, g.if_direction, g.if_status),
        (c.if_index, c.if_type, c.if_speed, c.if_direction, c.if_status)
    );
    assert_eq!(
        (g.if_in_octets, g.if_in_ucast_pkts, g.if_in_multicast_pkts, g.if_in_broadcast_pkts),
        (c.if_in_octets, c.if_in_ucast_pkts, c.if_in_multicast_pkts, c.if_in_broadcast_pkts)
    );
    assert_eq!(
        (g.if_in_discards, g.if_in_errors, g.if_in_unknown_protos),
        (c.if_in_discards, c.if_in_errors, c.if_in_unknown_protos)
    );
    assert_eq!(
        (g.if_out_octets, g.if_out_ucast_pkts, g.if_out_multicast_pkts, g.if_out_broadcast_pkts),
        (c.if_out_octets, c.if_out_ucast_pkts, c.if_out_multicast_pkts, c.if_out_broadcast_pkts)
    );
    assert_eq!(
        (g.if_out_discards, g.if_out_errors, g.if_promiscuous_mode),
        (c.if_out_discards, c.if_out_errors, c.if_promiscuous_mode)
    );

    let r = SflowParser::default().parse_bytes(&bytes);
    assert!(r.error.is_none(), "{:?}", r.error);
    let SflowSample::ExpandedCounter(s) = &r.datagrams[0].samples[0] else {
        panic!("{:?}", r.datagrams[0])
    };
    assert_eq!((s.sequence_number, s.source_id_type, s.source_id_index), (5, 0, 7));
    let FpCounter::GenericInterface(g) = &s.records[0] else { panic!("{:?}", s.records[0]) };
    assert_eq!((g.if_index, g.if_speed, g.if_status), (c.if_index, c.if_speed, c.if_status));
    assert_eq!((g.if_in_octets, g.if_out_octets), (c.if_in_octets, c.if_out_octets));
    assert_eq!(
        (g.if_in_ucast_pkts, g.if_in_unknown_protos, g.if_out_errors, g.if_promiscuous_mode),
        (c.if_in_ucast_pkts, c.if_in_unknown_protos, c.if_out_errors, c.if_promiscuous_mode)
    );
}

#[test]
fn host_structures_round_trip_through_sflow_parser() {
    let bytes = datagram(AGENT, &[host_sample().encode()]);
    let d = sflow_parser::parse_datagram(&bytes).expect("sflow-parser decodes");
    let SampleData::CountersSampleExpanded(s) = &d.samples[0].sample_data else {
        panic!("{:?}", d.samples[0])
    };
    assert_eq!(
        (s.sequence_number, s.source_id.source_id_type, s.source_id.source_id_index),
        (42, 2, 1)
    );
    assert_eq!(s.counters.len(), 6);
    let (h, c, m, k, n) = (descr(), cpu(), memory(), disk(), net());
    for rec in &s.counters {
        match &rec.counter_data {
            CounterData::HostDescription(d) => {
                assert_eq!(
                    (d.hostname.as_str(), d.uuid, d.os_release.as_str()),
                    (h.hostname.as_str(), h.uuid, h.os_release.as_str())
                );
                assert_eq!(d.machine_type, sflow_parser::models::record_counters::MachineType::Arm);
                assert_eq!(d.os_name, sflow_parser::models::record_counters::OsName::Linux);
            }
            CounterData::HostAdapters(a) => {
                let got: Vec<(u32, Vec<[u8; 6]>)> = a
                    .adapters
                    .iter()
                    .map(|x| (x.if_index, x.mac_addresses.iter().map(|m| m.0).collect()))
                    .collect();
                let want: Vec<(u32, Vec<[u8; 6]>)> =
                    adapters().into_iter().map(|x| (x.if_index, x.macs)).collect();
                assert_eq!(got, want);
            }
            CounterData::HostCpu(d) => {
                // sflow-parser keeps the XDR floats as raw u32 bits.
                assert_eq!(
                    (d.load_one, d.load_five, d.load_fifteen),
                    (c.load_one.to_bits(), c.load_five.to_bits(), c.load_fifteen.to_bits())
                );
                assert_eq!(
                    (d.proc_run, d.proc_total, d.cpu_num, d.cpu_speed, d.uptime),
                    (c.proc_run, c.proc_total, c.cpu_num, c.cpu_speed, c.uptime)
                );
                assert_eq!(
                    (d.cpu_user, d.cpu_nice, d.cpu_system, d.cpu_idle),
                    (c.cpu_user, c.cpu_nice, c.cpu_system, c.cpu_idle)
                );
                assert_eq!(
                    (d.cpu_wio, d.cpu_intr, d.cpu_sintr, d.interrupts, d.contexts),
                    (c.cpu_wio, c.cpu_intr, c.cpu_sintr, c.interrupts, c.contexts)
                );
            }
            CounterData::HostMemory(d) => {
                assert_eq!(
                    (d.mem_total, d.mem_free, d.mem_shared, d.mem_buffers, d.mem_cached),
                    (m.mem_total, m.mem_free, m.mem_shared, m.mem_buffers, m.mem_cached)
                );
                assert_eq!(
                    (d.swap_total, d.swap_free, d.page_in, d.page_out, d.swap_in, d.swap_out),
                    (m.swap_total, m.swap_free, m.page_in, m.page_out, m.swap_in, m.swap_out)
                );
            }
            CounterData::HostDiskIo(d) => {
                assert_eq!(
                    (d.disk_total, d.disk_free, d.part_max_used),
                    (k.disk_total, k.disk_free, k.part_max_used)
                );
                assert_eq!(
                    (d.reads, d.bytes_read, d.read_time, d.writes, d.bytes_written, d.write_time),
                    (k.reads, k.bytes_read, k.read_time, k.writes, k.bytes_written, k.write_time)
                );
            }
            CounterData::HostNetIo(d) => {
                assert_eq!(
                    (d.bytes_in, d.pkts_in, d.errs_in, d.drops_in),
                    (n.bytes_in, n.pkts_in, n.errs_in, n.drops_in)
                );
                assert_eq!(
                    (d.bytes_out, d.packets_out, d.errs_out, d.drops_out),
                    (n.bytes_out, n.pkts_out, n.errs_out, n.drops_out)
                );
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
}

#[test]
fn host_structures_round_trip_through_flowparser_sflow() {
    let bytes = datagram(AGENT, &[host_sample().encode()]);
    let r = SflowParser::default().parse_bytes(&bytes);
    assert!(r.error.is_none(), "{:?}", r.error);
    let SflowSample::ExpandedCounter(s) = &r.datagrams[0].samples[0] else {
        panic!("{:?}", r.datagrams[0])
    };
    assert_eq!(
        (s.sequence_number, s.source_id_type, s.source_id_index, s.records.len()),
        (42, 2, 1, 6)
    );
    let (h, c, m, k, n) = (descr(), cpu(), memory(), disk(), net());
    for rec in &s.records {
        match rec {
            FpCounter::HostDescr(d) => {
                assert_eq!(
                    (d.hostname.as_str(), d.uuid.as_bytes(), d.os_release.as_str()),
                    (h.hostname.as_str(), &h.uuid, h.os_release.as_str())
                );
                assert_eq!(
                    d.machine_type,
                    flowparser_sflow::counter_records::host_descr::MachineType::Arm
                );
                assert_eq!(d.os_name, flowparser_sflow::counter_records::host_descr::OsName::Linux);
            }
            FpCounter::HostAdapters(a) => {
                let got: Vec<(u32, Vec<[u8; 6]>)> = a
                    .adapters
                    .iter()
                    .map(|x| (x.if_index, x.mac_addresses.iter().map(|m| m.bytes()).collect()))
                    .collect();
                let want: Vec<(u32, Vec<[u8; 6]>)> =
                    adapters().into_iter().map(|x| (x.if_index, x.macs)).collect();
                assert_eq!(got, want);
            }
            FpCounter::HostCpu(d) => {
                assert_eq!(
                    (d.load_one, d.load_five, d.load_fifteen),
                    (c.load_one, c.load_five, c.load_fifteen)
                );
                assert_eq!(
                    (d.proc_run, d.proc_total, d.cpu_num, d.cpu_speed, d.uptime),
                    (c.proc_run, c.proc_total, c.cpu_num, c.cpu_speed, c.uptime)
                );
                assert_eq!(
                    (d.cpu_user, d.cpu_nice, d.cpu_system, d.cpu_idle),
                    (c.cpu_user, c.cpu_nice, c.cpu_system, c.cpu_idle)
                );
                assert_eq!(
                    (d.cpu_wio, d.cpu_intr, d.cpu_sintr, d.interrupts, d.contexts),
                    (c.cpu_wio, c.cpu_intr, c.cpu_sintr, c.interrupts, c.contexts)
                );
            }
            FpCounter::HostMemory(d) => {
                assert_eq!(
                    (d.mem_total, d.mem_free, d.mem_shared, d.mem_buffers, d.mem_cached),
                    (m.mem_total, m.mem_free, m.mem_shared, m.mem_buffers, m.mem_cached)
                );
                assert_eq!(
                    (d.swap_total, d.swap_free, d.page_in, d.page_out, d.swap_in, d.swap_out),
                    (m.swap_total, m.swap_free, m.page_in, m.page_out, m.swap_in, m.swap_out)
                );
            }
            FpCounter::HostDiskIo(d) => {
                assert_eq!(
                    (d.disk_total, d.disk_free, d.part_max_used),
                    (k.disk_total, k.disk_free, k.part_max_used as u32)
                );
                assert_eq!(
                    (d.reads, d.bytes_read, d.read_time, d.writes, d.bytes_written, d.write_time),
                    (k.reads, k.bytes_read, k.read_time, k.writes, k.bytes_written, k.write_time)
                );
            }
            FpCounter::HostNetIo(d) => {
                assert_eq!(
                    (d.bytes_in, d.packets_in, d.errs_in, d.drops_in),
                    (n.bytes_in, n.pkts_in, n.errs_in, n.drops_in)
                );
                assert_eq!(
                    (d.bytes_out, d.packets_out, d.errs_out, d.drops_out),
                    (n.bytes_out, n.pkts_out, n.errs_out, n.drops_out)
                );
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
}

#[test]
fn flow_sample_round_trips_through_both_decoders() {
    let f = flow_sample();
    let bytes = datagram(AGENT, &[f.encode()]);

    let d = sflow_parser::parse_datagram(&bytes).expect("sflow-parser decodes");
    let SampleData::FlowSample(s) = &d.samples[0].sample_data else { panic!("{:?}", d.samples[0]) };
    assert_eq!((s.sequence_number, s.source_id.source_type(), s.source_id.index()), (9, 0, 7));
    assert_eq!((s.sampling_rate, s.sample_pool, s.drops), (100, 12_300, 5));
    assert_eq!((s.input.format(), s.input.value(), s.output.value()), (0, 7, 0));
    let FlowData::SampledHeader(h) = &s.flow_records[0].flow_data else {
        panic!("{:?}", s.flow_records[0])
    };
    assert_eq!(h.protocol as u32, f.header.header_protocol);
    assert_eq!(
        (h.frame_length, h.stripped, &h.header),
        (f.header.frame_length, f.header.stripped, &f.header.header)
    );

    let r = SflowParser::default().parse_bytes(&bytes);
    assert!(r.error.is_none(), "{:?}", r.error);
    let SflowSample::Flow(s) = &r.datagrams[0].samples[0] else { panic!("{:?}", r.datagrams[0]) };
    assert_eq!((s.sequence_number, s.source_id_type, s.source_id_index), (9, 0, 7));
    assert_eq!(
        (s.sampling_rate, s.sample_pool, s.drops, s.input, s.output),
        (100, 12_300, 5, 7, 0)
    );
    let FpFlow::RawPacketHeader(h) = &s.records[0] else { panic!("{:?}", s.records[0]) };
    assert_eq!((h.header_protocol, h.frame_length, h.stripped), (1, 102, 4));
    assert_eq!((h.header_length as usize, &h.header), (f.header.header.len(), &f.header.header));
}

#[test]
fn port_names_round_trip_through_both_decoders() {
    // Padding 0 to 3 bytes, a VLAN name, a name longer than the limit.
    let long = "p".repeat(300);
    for name in ["eth1", "eth0.101", "usb0", "lab1x", "x", "", long.as_str()] {
        let interface = InterfaceRecords { counters: if_counters(), name: name.to_string() };
        let sample = CounterSample {
            sequence: 1,
            source: DataSource::interface(7),
            records: interface.records(),
        };
        let bytes = datagram(AGENT, &[sample.encode()]);
        let sent = &name[..name.len().min(255)];

        let d = sflow_parser::parse_datagram(&bytes).expect("sflow-parser decodes");
        let SampleData::CountersSampleExpanded(s) = &d.samples[0].sample_data else {
            panic!("{:?}", d.samples[0])
        };
        assert_eq!(s.counters.len(), 2);
        assert!(matches!(s.counters[0].counter_data, CounterData::GenericInterface(_)));
        let CounterData::OpenFlowPortName(p) = &s.counters[1].counter_data else {
            panic!("{:?}", s.counters[1])
        };
        assert_eq!(p.port_name, sent);

        let r = SflowParser::default().parse_bytes(&bytes);
        assert!(r.error.is_none(), "{:?}", r.error);
        let SflowSample::ExpandedCounter(s) = &r.datagrams[0].samples[0] else {
            panic!("{:?}", r.datagrams[0])
        };
        let FpCounter::PortName(p) = &s.records[1] else { panic!("{:?}", s.records[1]) };
        assert_eq!(p.name, sent);
    }
}
