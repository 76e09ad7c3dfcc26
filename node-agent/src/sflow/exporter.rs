//! The running exporter: a polling thread for counter samples (it also owns
//! the sampling rules) and, while sampling is on, an NFLOG reader thread for
//! flow samples. Both send through one datagram stream (one sequence).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lab_spec::health::SflowState;
use lab_spec::node_config::Sflow;

use super::datagram::{
    CounterSamples, DataSource, FlowSample, Packer, SampleSequences, counter_samples,
};
use super::host::{self, HostInfo};
use super::links::{self, Link};
use super::nflog::{NflogGroup, SampledPacket};
use super::records::CounterRecord;
use super::{SflowError, nft};

/// Knobs that are not in the NodeConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExporterOptions {
    /// NFLOG group the sampling rules log to (per network namespace).
    pub nflog_group: u16,
    /// `sub_agent_id` in every datagram.
    pub sub_agent_id: u32,
}

impl Default for ExporterOptions {
    fn default() -> Self {
        // 6343 is the sFlow port: easy to recognise in `nft list ruleset`.
        ExporterOptions { nflog_group: 6343, sub_agent_id: 0 }
    }
}

/// Starts exporters; see the module documentation.
#[derive(Debug)]
pub struct Exporter;

impl Exporter {
    /// Starts exporting per `cfg` in the calling thread's network namespace.
    /// Fails if the settings are invalid, the sockets cannot be opened, or
    /// sampling is on and the rules or the NFLOG group cannot be set up.
    pub fn start(cfg: &Sflow, host: HostInfo) -> Result<ExporterHandle, SflowError> {
        Self::start_with(cfg, host, ExporterOptions::default())
    }

    pub fn start_with(
        cfg: &Sflow,
        host: HostInfo,
        opts: ExporterOptions,
    ) -> Result<ExporterHandle, SflowError> {
        validate(cfg)?;
        let shared = Arc::new(Shared {
            out: Mutex::new(Output::new(cfg, opts.sub_agent_id)?),
            stats: Mutex::new(SflowState::default()),
            rate: AtomicU32::new(0),
            started: Instant::now(),
        });
        let mut worker =
            Worker { cfg: cfg.clone(), host, opts, shared: shared.clone(), sampling: None };
        worker.set_state();
        // Rules left by an agent that was killed are ours: clear them. Best
        // effort: counters work without nftables installed.
        if !sampling_wanted(cfg)
            && let Err(e) = nft::remove()
        {
            tracing::debug!("sFlow: clearing old sampling rules: {e}");
        }
        let links = links::read_links().map_err(SflowError::Links)?;
        worker.update_sampling(&links)?;
        let (control, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sflow-poll".into())
            .spawn(move || worker.run(rx))
            .map_err(SflowError::Socket)?;
        Ok(ExporterHandle { shared, control, thread: Some(thread) })
    }
}

/// A running exporter. Dropping it stops it too.
#[derive(Debug)]
pub struct ExporterHandle {
    shared: Arc<Shared>,
    control: Sender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl ExporterHandle {
    /// Counters for the health report.
    pub fn stats(&self) -> SflowState {
        lock(&self.shared.stats).clone()
    }

    /// Applies new settings (collectors, interval, rate, agent address,
    /// interfaces) without losing the datagram sequence unless the agent
    /// address changes. On error the old settings stay in force.
    pub fn reconfigure(&self, cfg: &Sflow) -> Result<(), SflowError> {
        validate(cfg)?;
        let (reply, answer) = mpsc::channel();
        self.control
            .send(Control::Reconfigure(cfg.clone(), reply))
            .map_err(|_| SflowError::Stopped)?;
        answer.recv().map_err(|_| SflowError::Stopped)?
    }

    /// Stops both threads and deletes the sampling table.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ExporterHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Control {
    Reconfigure(Sflow, Sender<Result<(), SflowError>>),
    Stop,
}

fn validate(cfg: &Sflow) -> Result<(), SflowError> {
    if cfg.polling_interval == 0 {
        return Err(SflowError::Config(
            "sflow.polling_interval is 0; give seconds between counter samples, e.g. 20".into(),
        ));
    }
    if cfg.agent_address.is_unspecified() {
        return Err(SflowError::Config(format!(
            "sflow.agent_address {} is unspecified; use the loopback or management address",
            cfg.agent_address
        )));
    }
    if let Some(c) = cfg.collectors.iter().find(|c| c.port() == 0) {
        return Err(SflowError::Config(format!(
            "sflow collector {c} has port 0; sFlow collectors listen on 6343"
        )));
    }
    Ok(())
}

fn sampling_wanted(cfg: &Sflow) -> bool {
    cfg.sampling_rate > 0 && !cfg.collectors.is_empty()
}

#[derive(Debug)]
struct Shared {
    out: Mutex<Output>,
    stats: Mutex<SflowState>,
    /// Current sampling rate, for the reader's flow samples.
    rate: AtomicU32,
    started: Instant,
}

impl Shared {
    /// sysUpTime of the agent, in ms (as hsflowd: since the agent started).
    fn uptime_ms(&self) -> u32 {
        self.started.elapsed().as_millis() as u32
    }

    fn send(&self, samples: &[Vec<u8>], counter_samples: u64, flow_samples: u64) {
        let uptime = self.uptime_ms();
        let (sent, errors) = lock(&self.out).send(samples, uptime);
        let mut s = lock(&self.stats);
        s.datagrams_sent += sent;
        s.send_errors += errors;
        s.counter_samples_sent += counter_samples;
        s.flow_samples_sent += flow_samples;
    }
}

/// A poisoned lock only means another exporter thread panicked; the data
/// (counters, sequence numbers) is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The datagram stream: sockets, collectors, sequence numbers.
#[derive(Debug)]
struct Output {
    packer: Packer,
    sequences: SampleSequences,
    collectors: Vec<SocketAddr>,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Output {
    fn new(cfg: &Sflow, sub_agent_id: u32) -> Result<Self, SflowError> {
        let mut out = Output {
            packer: Packer::new(cfg.agent_address, sub_agent_id),
            sequences: SampleSequences::default(),
            collectors: Vec::new(),
            v4: None,
            v6: None,
        };
        out.set_collectors(&cfg.collectors)?;
        Ok(out)
    }

    fn set_collectors(&mut self, collectors: &[SocketAddr]) -> Result<(), SflowError> {
        if collectors.iter().any(SocketAddr::is_ipv4) && self.v4.is_none() {
            self.v4 =
                Some(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(SflowError::Socket)?);
        }
        if collectors.iter().any(SocketAddr::is_ipv6) && self.v6.is_none() {
            self.v6 =
                Some(UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).map_err(SflowError::Socket)?);
        }
        self.collectors = collectors.to_vec();
        Ok(())
    }

    /// Packs and sends to every collector: (datagrams sent, send errors).
    fn send(&mut self, samples: &[Vec<u8>], uptime_ms: u32) -> (u64, u64) {
        if self.collectors.is_empty() || samples.is_empty() {
            return (0, 0);
        }
        let datagrams = match self.packer.pack(samples, uptime_ms) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("sFlow: {e}");
                return (0, 1);
            }
        };
        let (mut sent, mut errors) = (0, 0);
        for d in &datagrams {
            for c in &self.collectors {
                let sock = if c.is_ipv4() { self.v4.as_ref() } else { self.v6.as_ref() };
                match sock.map(|s| s.send_to(d, c)) {
                    Some(Ok(_)) => sent += 1,
                    Some(Err(e)) => {
                        tracing::debug!("sFlow: sending to {c}: {e}");
                        errors += 1;
                    }
                    None => errors += 1,
                }
            }
        }
        (sent, errors)
    }
}

/// What the sampling rules currently cover.
struct Sampling {
    rate: u32,
    devices: Vec<String>,
    reader_stop: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

struct Worker {
    cfg: Sflow,
    host: HostInfo,
    opts: ExporterOptions,
    shared: Arc<Shared>,
    sampling: Option<Sampling>,
}

impl Worker {
    fn run(mut self, control: Receiver<Control>) {
        let mut next_poll = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_poll {
                self.poll();
                let interval = Duration::from_secs(u64::from(self.cfg.polling_interval));
                next_poll += interval;
                if next_poll <= now {
                    next_poll = now + interval;
                }
            }
            match control.recv_timeout(next_poll.saturating_duration_since(Instant::now())) {
                Ok(Control::Reconfigure(cfg, reply)) => {
                    let _ = reply.send(self.apply(cfg));
                }
                Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.stop_sampling();
    }

    fn apply(&mut self, cfg: Sflow) -> Result<(), SflowError> {
        {
            let mut out = lock(&self.shared.out);
            out.set_collectors(&cfg.collectors)?;
            if out.packer.agent() != cfg.agent_address {
                // A new agent address is a new datagram stream.
                out.packer = Packer::new(cfg.agent_address, self.opts.sub_agent_id);
            }
        }
        self.cfg = cfg;
        self.set_state();
        let links = links::read_links().map_err(SflowError::Links)?;
        self.update_sampling(&links)
    }

    fn set_state(&self) {
        let mut s = lock(&self.shared.stats);
        s.enabled = !self.cfg.collectors.is_empty();
        s.collectors = self.cfg.collectors.iter().map(ToString::to_string).collect();
        s.sampling_rate = self.cfg.sampling_rate;
    }

    /// One counter poll: interface samples and host samples, sent.
    fn poll(&mut self) {
        let links = match links::read_links() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("sFlow: cannot read interface counters: {e}");
                return;
            }
        };
        if let Err(e) = self.update_sampling(&links) {
            tracing::warn!("sFlow: packet sampling: {e}");
        }
        if self.cfg.collectors.is_empty() {
            return;
        }
        let samples = self.counter_samples(&links);
        self.shared.send(&samples.interfaces, samples.interfaces.len() as u64, 0);
        self.shared.send(&samples.host, samples.host.len() as u64, 0);
    }

    fn counter_samples(&self, links: &[Link]) -> CounterSamples {
        let base = vec![
            CounterRecord::HostDescr(self.host.descr()),
            CounterRecord::HostCpu(host::read_cpu()),
            CounterRecord::HostMemory(host::read_memory()),
            CounterRecord::HostDiskIo(host::read_disk_io()),
            CounterRecord::HostNetIo(links::host_net_io(links)),
        ];
        let adapters = links.iter().filter(|l| !l.is_loopback()).map(Link::adapter).collect();
        let interfaces =
            selected(links, &self.cfg.interfaces).map(Link::interface_records).collect();
        let mut out = lock(&self.shared.out);
        counter_samples(self.cfg.agent_address, interfaces, base, adapters, &mut out.sequences)
    }

    /// Brings the rules and the NFLOG reader in line with the settings and
    /// the interfaces that exist now (lab interfaces may come up later).
    fn update_sampling(&mut self, links: &[Link]) -> Result<(), SflowError> {
        let devices: Vec<String> =
            selected(links, &self.cfg.interfaces).map(|l| l.name.clone()).collect();
        if !sampling_wanted(&self.cfg) || devices.is_empty() {
            self.stop_sampling();
            return Ok(());
        }
        let rate = self.cfg.sampling_rate;
        self.shared.rate.store(rate, Ordering::Relaxed);
        if let Some(s) = &mut self.sampling {
            if s.rate != rate || s.devices != devices {
                nft::install(&devices, rate, self.opts.nflog_group)?;
                s.rate = rate;
                s.devices = devices;
                lock(&self.shared.stats).sampling_interfaces = s.devices.clone();
            }
            return Ok(());
        }
        // Listen first, so no sampled packet is logged to nobody.
        let group = self.opts.nflog_group;
        let nflog =
            NflogGroup::bind(group).map_err(|source| SflowError::Nflog { group, source })?;
        nft::install(&devices, rate, group)?;
        let reader_stop = Arc::new(AtomicBool::new(false));
        let (stop, shared) = (reader_stop.clone(), self.shared.clone());
        let reader = std::thread::Builder::new()
            .name("sflow-nflog".into())
            .spawn(move || read_samples(nflog, &shared, &stop))
            .map_err(SflowError::Socket)?;
        lock(&self.shared.stats).sampling_interfaces = devices.clone();
        self.sampling = Some(Sampling { rate, devices, reader_stop, reader });
        Ok(())
    }

    fn stop_sampling(&mut self) {
        lock(&self.shared.stats).sampling_interfaces.clear();
        if let Some(s) = self.sampling.take() {
            if let Err(e) = nft::remove() {
                tracing::warn!("sFlow: removing the sampling rules: {e}");
            }
            s.reader_stop.store(true, Ordering::Relaxed);
            let _ = s.reader.join();
        }
        self.shared.rate.store(0, Ordering::Relaxed);
    }
}

/// The interfaces named in the settings; all but loopback when none are.
fn selected<'a>(links: &'a [Link], names: &'a [String]) -> impl Iterator<Item = &'a Link> + 'a {
    links
        .iter()
        .filter(move |l| if names.is_empty() { !l.is_loopback() } else { names.contains(&l.name) })
}

/// The NFLOG reader thread: sampled packets to flow samples, until stopped.
fn read_samples(mut nflog: NflogGroup, shared: &Shared, stop: &AtomicBool) {
    // sample_pool per input interface: packets that could have been sampled.
    let mut pools: HashMap<u32, u32> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let packets = match nflog.read() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("sFlow: reading NFLOG: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        if packets.is_empty() {
            continue;
        }
        let rate = shared.rate.load(Ordering::Relaxed).max(1);
        let samples: Vec<Vec<u8>> = {
            let mut out = lock(&shared.out);
            packets
                .into_iter()
                .map(|p| flow_sample(p, rate, nflog.drops, &mut pools, &mut out.sequences).encode())
                .collect()
        };
        let n = samples.len() as u64;
        shared.send(&samples, 0, n);
    }
}

fn flow_sample(
    p: SampledPacket,
    rate: u32,
    drops: u32,
    pools: &mut HashMap<u32, u32>,
    sequences: &mut SampleSequences,
) -> FlowSample {
    let source = DataSource::interface(p.in_ifindex);
    let pool = pools.entry(p.in_ifindex).or_insert(0);
    *pool = pool.wrapping_add(rate);
    FlowSample {
        sequence: sequences.next_flow(source),
        source,
        sampling_rate: rate,
        sample_pool: *pool,
        drops,
        input: p.in_ifindex,
        output: p.out_ifindex,
        header: p.header,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn cfg() -> Sflow {
        Sflow {
            collectors: vec!["127.0.0.1:6343".parse().expect("addr")],
            polling_interval: 20,
            sampling_rate: 0,
            agent_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            interfaces: vec![],
        }
    }

    #[test]
    fn bad_settings_are_explained() {
        let mut c = cfg();
        c.polling_interval = 0;
        assert!(validate(&c).unwrap_err().to_string().contains("polling_interval is 0"));
        let mut c = cfg();
        c.agent_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert!(validate(&c).unwrap_err().to_string().contains("unspecified"));
        let mut c = cfg();
        c.collectors = vec!["10.0.0.9:0".parse().expect("addr")];
        assert!(validate(&c).unwrap_err().to_string().contains("port 0"));
        assert!(validate(&cfg()).is_ok());
    }

    #[test]
    fn sample_pool_grows_by_the_rate() {
        let mut pools = HashMap::new();
        let mut seqs = SampleSequences::default();
        let p = SampledPacket {
            in_ifindex: 3,
            out_ifindex: 0,
            header: super::super::records::SampledHeader {
                header_protocol: 1,
                frame_length: 64,
                stripped: 4,
                header: vec![0; 60],
            },
            seq: None,
        };
        let a = flow_sample(p.clone(), 100, 0, &mut pools, &mut seqs);
        let b = flow_sample(p, 100, 2, &mut pools, &mut seqs);
        assert_eq!((a.sequence, a.sample_pool), (1, 100));
        assert_eq!((b.sequence, b.sample_pool, b.drops), (2, 200, 2));
    }
}
