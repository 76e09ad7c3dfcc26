//! Property: any set of 0..=200 interfaces gives datagrams of at most 1400
//! bytes, in which every sample (and every host adapter) appears exactly
//! once, as decoded by sflow-parser and flowparser-sflow.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use node_agent::sflow::datagram::{MAX_DATAGRAM, Packer, SampleSequences, counter_samples};
use node_agent::sflow::records::{
    CounterRecord, HostAdapter, HostCpu, HostDescr, HostDiskIo, HostMemory, HostNetIo, IfCounters,
    InterfaceRecords, MachineType, OS_LINUX,
};
use proptest::prelude::*;
use sflow_parser::models::{Address, CounterData, SampleData};

fn interfaces() -> impl Strategy<Value = Vec<(u32, InterfaceRecords, [u8; 6])>> {
    // Unique ifIndexes, each with random counters, a name of up to 15 bytes
    // (IFNAMSIZ) and a MAC.
    prop::collection::btree_map(
        1u32..100_000,
        (any::<u64>(), any::<u32>(), "[a-z0-9.@_-]{0,15}", any::<[u8; 6]>()),
        0..=200,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(idx, (octets, pkts, name, mac))| {
                let counters = IfCounters {
                    if_index: idx,
                    if_type: 6,
                    if_in_octets: octets,
                    if_in_ucast_pkts: pkts,
                    if_out_octets: octets / 3,
                    ..IfCounters::default()
                };
                (idx, InterfaceRecords { counters, name }, mac)
            })
            .collect()
    })
}

fn host_records(hostname: String, release: String) -> Vec<CounterRecord> {
    vec![
        CounterRecord::HostDescr(HostDescr {
            hostname,
            uuid: [7; 16],
            machine_type: MachineType::Arm,
            os_name: OS_LINUX,
            os_release: release,
        }),
        CounterRecord::HostCpu(HostCpu::default()),
        CounterRecord::HostMemory(HostMemory::default()),
        CounterRecord::HostDiskIo(HostDiskIo::default()),
        CounterRecord::HostNetIo(HostNetIo::default()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_sample_fits_and_appears_once(
        ifs in interfaces(),
        v6 in any::<bool>(),
        hostname in "[a-z0-9-]{0,80}",
        release in "[a-z0-9.+-]{0,40}",
    ) {
        let agent = if v6 { IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)) } else { IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)) };
        let counters: Vec<InterfaceRecords> = ifs.iter().map(|(_, c, _)| c.clone()).collect();
        let adapters: Vec<HostAdapter> = ifs.iter().map(|(i, _, m)| HostAdapter { if_index: *i, macs: vec![*m] }).collect();
        let mut seqs = SampleSequences::default();
        let samples = counter_samples(agent, counters, host_records(hostname, release), adapters, &mut seqs);
        let mut packer = Packer::new(agent, 0);
        let mut datagrams = packer.pack(&samples.interfaces, 1).expect("every sample fits");
        datagrams.extend(packer.pack(&samples.host, 1).expect("every sample fits"));

        let mut if_seen: BTreeMap<u32, u32> = BTreeMap::new();
        let mut adapter_seen: BTreeMap<u32, u32> = BTreeMap::new();
        let mut host_records_seen: BTreeMap<&'static str, u32> = BTreeMap::new();
        let mut host_sample_seqs = Vec::new();
        let mut total_samples = 0;
        for (n, d) in datagrams.iter().enumerate() {
            prop_assert!(d.len() <= MAX_DATAGRAM, "datagram of {} bytes", d.len());
            let fp = flowparser_sflow::SflowParser::default().parse_bytes(d);
            prop_assert!(fp.error.is_none(), "flowparser-sflow: {:?}", fp.error);
            let parsed = sflow_parser::parse_datagram(d).expect("sflow-parser decodes");
            prop_assert_eq!(parsed.sequence_number as usize, n + 1);
            match (parsed.agent_address, agent) {
                (Address::IPv4(a), IpAddr::V4(b)) => prop_assert_eq!(a, b),
                (Address::IPv6(a), IpAddr::V6(b)) => prop_assert_eq!(a, b),
                (other, _) => prop_assert!(false, "agent {:?}", other),
            }
            for s in &parsed.samples {
                total_samples += 1;
                let SampleData::CountersSampleExpanded(c) = &s.sample_data else {
                    prop_assert!(false, "unexpected sample {:?}", s);
                    continue;
                };
                if c.source_id.source_id_type == 0 {
                    prop_assert_eq!(c.sequence_number, 1);
                    *if_seen.entry(c.source_id.source_id_index).or_default() += 1;
                    // Counters, then the port name, as hsflowd sends them.
                    let sent = &ifs.iter().find(|(i, _, _)| *i == c.source_id.source_id_index).expect("sent").1;
                    prop_assert_eq!(c.counters.len(), 2);
                    let CounterData::GenericInterface(g) = &c.counters[0].counter_data else {
                        prop_assert!(false, "first record {:?}", c.counters[0]);
                        continue;
                    };
                    prop_assert_eq!(g.if_in_octets, sent.counters.if_in_octets);
                    let CounterData::OpenFlowPortName(p) = &c.counters[1].counter_data else {
                        prop_assert!(false, "second record {:?}", c.counters[1]);
                        continue;
                    };
                    prop_assert_eq!(&p.port_name, &sent.name);
                    continue;
                }
                prop_assert_eq!((c.source_id.source_id_type, c.source_id.source_id_index), (2, 1));
                host_sample_seqs.push(c.sequence_number);
                for r in &c.counters {
                    let name = match &r.counter_data {
                        CounterData::HostAdapters(a) => {
                            for ad in &a.adapters {
                                *adapter_seen.entry(ad.if_index).or_default() += 1;
                            }
                            continue;
                        }
                        CounterData::HostDescription(_) => "descr",
                        CounterData::HostCpu(_) => "cpu",
                        CounterData::HostMemory(_) => "memory",
                        CounterData::HostDiskIo(_) => "disk",
                        CounterData::HostNetIo(_) => "net",
                        other => { prop_assert!(false, "unexpected record {:?}", other); continue; }
                    };
                    *host_records_seen.entry(name).or_default() += 1;
                }
            }
        }
        prop_assert_eq!(total_samples, samples.len());
        let want: BTreeMap<u32, u32> = ifs.iter().map(|(i, _, _)| (*i, 1)).collect();
        prop_assert_eq!(&if_seen, &want);
        prop_assert_eq!(&adapter_seen, &want);
        for name in ["descr", "cpu", "memory", "disk", "net"] {
            prop_assert_eq!(host_records_seen.get(name), Some(&1), "{}", name);
        }
        let expected_seqs: Vec<u32> = (1..=host_sample_seqs.len() as u32).collect();
        prop_assert_eq!(host_sample_seqs, expected_seqs);
    }
}
