//! Encoding cost of sFlow datagrams, in release mode:
//!
//! `cargo run --release -p node-agent --example sflow_encode_bench`
//!
//! Prints the median (and p10/p90) over many runs of: one counter poll of
//! 20 interfaces plus the host structures encoded and packed; one datagram
//! of flow samples; and a whole poll including the kernel and /proc reads.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use node_agent::sflow::datagram::{
    DataSource, FlowSample, Packer, SampleSequences, counter_samples,
};
use node_agent::sflow::host::{self, HostInfo};
use node_agent::sflow::links;
use node_agent::sflow::records::{
    CounterRecord, HostAdapter, HostCpu, HostDiskIo, HostMemory, HostNetIo, IfCounters,
    InterfaceRecords, SampledHeader,
};

const RUNS: usize = 2001;

/// Median, p10, p90 of `RUNS` timings of `f`, in nanoseconds.
fn measure(mut f: impl FnMut() -> usize) -> (f64, f64, f64, usize) {
    let mut t = Vec::with_capacity(RUNS);
    let mut units = 0;
    for _ in 0..RUNS {
        let s = Instant::now();
        units = black_box(f());
        t.push(s.elapsed().as_nanos() as f64);
    }
    t.sort_by(f64::total_cmp);
    (t[RUNS / 2], t[RUNS / 10], t[RUNS * 9 / 10], units)
}

fn report(name: &str, (median, p10, p90, datagrams): (f64, f64, f64, usize)) {
    println!(
        "{name:<44} median {:>9.0} ns  p10 {:>9.0}  p90 {:>9.0}  datagrams {datagrams}  per datagram {:>8.0} ns",
        median,
        p10,
        p90,
        median / datagrams.max(1) as f64
    );
}

fn main() {
    let agent = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let host = HostInfo::detect();
    let base = vec![
        CounterRecord::HostDescr(host.descr()),
        CounterRecord::HostCpu(HostCpu::default()),
        CounterRecord::HostMemory(HostMemory::default()),
        CounterRecord::HostDiskIo(HostDiskIo::default()),
        CounterRecord::HostNetIo(HostNetIo::default()),
    ];
    let ifs: Vec<InterfaceRecords> = (1..=20)
        .map(|i| InterfaceRecords {
            counters: IfCounters {
                if_index: i,
                if_in_octets: u64::from(i) << 20,
                ..IfCounters::default()
            },
            name: format!("eth{i}"),
        })
        .collect();
    let adapters: Vec<HostAdapter> = (1..=20)
        .map(|i| HostAdapter { if_index: i, macs: vec![[2, 0, 0, 0, 0, i as u8]] })
        .collect();
    let mut seqs = SampleSequences::default();
    let mut packer = Packer::new(agent, 0);

    report(
        "counter poll, 20 interfaces + host (encode+pack)",
        measure(|| {
            let s = counter_samples(agent, ifs.clone(), base.clone(), adapters.clone(), &mut seqs);
            let a = packer.pack(&s.interfaces, 1).map(|d| d.len()).unwrap_or(0);
            a + packer.pack(&s.host, 1).map(|d| d.len()).unwrap_or(0)
        }),
    );

    let flow = FlowSample {
        sequence: 1,
        source: DataSource::interface(3),
        sampling_rate: 100,
        sample_pool: 100,
        drops: 0,
        input: 3,
        output: 0,
        header: SampledHeader {
            header_protocol: 1,
            frame_length: 1518,
            stripped: 4,
            header: vec![0x5a; 128],
        },
    };
    report(
        "flow datagram, 7 samples of 128-byte headers",
        measure(|| {
            let samples: Vec<Vec<u8>> = (0..7).map(|_| flow.encode()).collect();
            packer.pack(&samples, 1).map(|d| d.len()).unwrap_or(0)
        }),
    );

    report(
        "whole poll: netlink + /proc + encode + pack",
        measure(|| {
            let links = links::read_links().unwrap_or_default();
            let base = vec![
                CounterRecord::HostDescr(host.descr()),
                CounterRecord::HostCpu(host::read_cpu()),
                CounterRecord::HostMemory(host::read_memory()),
                CounterRecord::HostDiskIo(host::read_disk_io()),
                CounterRecord::HostNetIo(links::host_net_io(&links)),
            ];
            let ifs =
                links.iter().filter(|l| !l.is_loopback()).map(|l| l.interface_records()).collect();
            let adapters = links.iter().filter(|l| !l.is_loopback()).map(|l| l.adapter()).collect();
            let s = counter_samples(agent, ifs, base, adapters, &mut seqs);
            let a = packer.pack(&s.interfaces, 1).map(|d| d.len()).unwrap_or(0);
            a + packer.pack(&s.host, 1).map(|d| d.len()).unwrap_or(0)
        }),
    );
}
