//! Writes seed inputs for the fuzz-sflow target: real datagrams from the
//! encoder (interface counters, host structures, flow samples), each behind
//! a 2-byte big-endian length.
//!
//! `cargo run -p node-agent --example sflow_corpus -- fuzz-sflow/corpus/sflow_collector`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use node_agent::sflow::datagram::{
    DataSource, FlowSample, Packer, SampleSequences, counter_samples,
};
use node_agent::sflow::host::{self, HostInfo};
use node_agent::sflow::links;
use node_agent::sflow::records::{CounterRecord, SampledHeader};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: sflow_corpus DIR"))?;
    std::fs::create_dir_all(&dir)?;
    let links = links::read_links()?;
    let agents = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    for (n, agent) in agents.into_iter().enumerate() {
        let mut seqs = SampleSequences::default();
        let host_records = vec![
            CounterRecord::HostDescr(HostInfo::detect().descr()),
            CounterRecord::HostCpu(host::read_cpu()),
            CounterRecord::HostMemory(host::read_memory()),
            CounterRecord::HostDiskIo(host::read_disk_io()),
            CounterRecord::HostNetIo(links::host_net_io(&links)),
        ];
        let ifs = links.iter().map(|l| l.interface_records()).collect();
        let adapters = links.iter().map(|l| l.adapter()).collect();
        let samples = counter_samples(agent, ifs, host_records, adapters, &mut seqs);
        let flow = FlowSample {
            sequence: 1,
            source: DataSource::interface(2),
            sampling_rate: 100,
            sample_pool: 100,
            drops: 0,
            input: 2,
            output: 0,
            header: SampledHeader {
                header_protocol: 1,
                frame_length: 102,
                stripped: 4,
                header: [
                    &[0x02u8, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00][..],
                    &[0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1][..],
                ]
                .concat(),
            },
        };
        let mut packer = Packer::new(agent, 0);
        let mut stream = Vec::new();
        for d in packer
            .pack(&samples.interfaces, 1000)?
            .into_iter()
            .chain(packer.pack(&samples.host, 1000)?)
            .chain(packer.pack(&[flow.encode()], 1500)?)
        {
            stream.extend_from_slice(&(d.len() as u16).to_be_bytes());
            stream.extend_from_slice(&d);
        }
        std::fs::write(format!("{dir}/seed-{n}"), stream)?;
    }
    Ok(())
}
