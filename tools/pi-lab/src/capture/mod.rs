//! `pi-lab capture`: packets of several ports of a running lab, wherever
//! their nodes run, in one pcapng file with one interface per `NODE:PORT`
//! (named so, as Wireshark shows it). Each port's `tcpdump -U -w -` runs
//! on its node through the lab's runner; its pcap stream is read here
//! ([`pcap`]) and its packets written as they come ([`crate::pcapng`]).
//! Ctrl-C, `--count` or `--duration` end it, and every tcpdump with it.

pub mod pcap;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::interrupt::Interrupt;
use crate::pcapng::{self, Interface, Packet};
use crate::runner::{Remote, Runner, RunnerError};
use crate::running_lab::{RunningLab, RunningLabError};

#[derive(Debug, clap::Args)]
#[command(after_help = "Runs tcpdump on each port's node (in its namespace, or over SSH on
boards) and writes one pcapng file with an interface per NODE:PORT, named so:
Wireshark's interface column tells the ports apart. Ctrl-C, --count or
--duration ends the capture and every tcpdump on the nodes.

Without -w, the capture goes to stdout when it is a pipe, else to LAB.pcapng.

Examples:
  sudo pi-lab capture examples/fabric.toml leaf1:eth1 spine1:eth1 --filter 'port 179' -w bgp.pcapng
  sudo pi-lab capture examples/fabric.toml h1:eth1 h2:eth1 --count 20 -w ping.pcapng
  sudo pi-lab capture examples/fabric.toml leaf1:eth1 -w - | wireshark -k -i -
  tshark -r bgp.pcapng -T fields -e frame.interface_name -e bgp.type

Exit status: 0 when every port was captured until the end, 1 when a port's
tcpdump stopped early, 2 when no capture ran.")]
pub struct CaptureArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    /// The ports to capture: NODE:PORT, any interface the lab gives the node.
    #[arg(value_name = "NODE:PORT", required = true, num_args = 1..)]
    pub ports: Vec<String>,
    /// Write the pcapng here; `-` for stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Only packets matching this tcpdump (BPF) filter: 'icmp or arp'.
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Stop after this many packets in all.
    #[arg(short = 'c', long, value_name = "N", conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Stop after this long: 30, 30s, 1m30s.
    #[arg(long, value_name = "D", value_parser = lab_spec::duration::parse_positive)]
    pub duration: Option<Duration>,
    /// Boards: SSH as USER (default: root with the lab's own key).
    #[arg(long, value_name = "USER", env = "PI_LAB_SSH_USER")]
    pub ssh: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Lab(#[from] RunningLabError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error("{0} is named twice")]
    Twice(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("{port}: tcpdump did not start: {why}")]
    NotStarted { port: String, why: String },
    #[error("no capture had started after {0} s: {1}")]
    Slow(u64, String),
    #[error("cannot catch Ctrl-C: {0}")]
    Signals(io::Error),
    #[error("interrupted before the capture started")]
    Interrupted,
}

/// How long tcpdump may take to start on every node: SSH to an emulated
/// board under load takes seconds.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the per-port readers report.
#[derive(Debug)]
enum Event {
    Started(usize, pcap::Header),
    Packet(usize, pcap::Record),
    /// The stream ended; with why when it was not clean.
    Ended(usize, Option<String>),
}

/// One port's tcpdump and the threads reading it.
#[derive(Debug)]
struct Port {
    label: String,
    remote: Remote,
    stderr: Option<JoinHandle<String>>,
}

impl Port {
    /// What tcpdump said on stderr, once it has ended: its last line that
    /// is not the usual start and statistics.
    fn complaint(&mut self) -> String {
        let text = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let said = text
            .lines()
            .rfind(|l| !l.starts_with("listening on") && !l.contains("packets "))
            .unwrap_or("")
            .trim()
            .to_string();
        if said.contains("not found") {
            format!("{said} (install tcpdump on the node)")
        } else {
            said
        }
    }
}

pub fn run(args: &CaptureArgs) -> Result<ExitCode, CaptureError> {
    let lab = RunningLab::open(&args.lab.file, args.ssh.as_deref())?;
    let ends = checked_ports(&lab, &args.ports)?;
    let runner = lab.runner()?;
    let interrupt = Interrupt::install().map_err(CaptureError::Signals)?;
    let (out, shown) = destination(args.write.as_deref(), lab.name())?;
    let (tx, rx) = mpsc::channel();
    let mut ports = Vec::with_capacity(ends.len());
    for (i, (node, port)) in ends.iter().enumerate() {
        ports.push(start(runner, i, node, port, args.filter.as_deref(), tx.clone())?);
    }
    drop(tx);
    let headers = wait_for_starts(&mut ports, &rx, &interrupt)?;
    let mut recorder = Recorder::new(out, &shown, &ports, &headers, args.count)?;
    let labels: Vec<String> = ports.iter().map(|p| p.label.clone()).collect();
    eprintln!("capturing on {} to {shown}; Ctrl-C ends it", labels.join(", "));
    let until = args.duration.map(|d| Instant::now() + d);
    let early = recorder.record(&rx, &interrupt, until);
    for port in &mut ports {
        if let Err(e) = port.remote.stop() {
            eprintln!("warning: {}: cannot stop tcpdump: {e}", port.label);
        }
    }
    recorder.drain(&rx);
    recorder.finish(&labels);
    let mut failed = false;
    for i in early {
        failed = true;
        let said = ports[i].complaint();
        eprintln!("warning: {}: tcpdump stopped early: {said}", labels[i]);
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Every argument a port of its node, none twice.
fn checked_ports(lab: &RunningLab, args: &[String]) -> Result<Vec<(String, String)>, CaptureError> {
    let mut ends: Vec<(String, String)> = Vec::new();
    for arg in args {
        let end = lab.interface(arg)?;
        if ends.contains(&end) {
            return Err(CaptureError::Twice(arg.clone()));
        }
        ends.push(end);
    }
    Ok(ends)
}

/// Where the pcapng goes, and its name for messages.
fn destination(write: Option<&Path>, lab: &str) -> Result<(Box<dyn Write>, String), CaptureError> {
    let stdout = || -> (Box<dyn Write>, String) {
        (Box::new(BufWriter::new(io::stdout())), "stdout".to_string())
    };
    let path = match write {
        Some(path) if path == Path::new("-") => return Ok(stdout()),
        Some(path) => path.to_path_buf(),
        None if !io::stdout().is_terminal() => return Ok(stdout()),
        None => PathBuf::from(format!("{lab}.pcapng")),
    };
    let shown = path.display().to_string();
    let file = File::create(&path)
        .map_err(|source| CaptureError::Write { path: shown.clone(), source })?;
    Ok((Box::new(BufWriter::new(file)), shown))
}

/// tcpdump on `port` of `node`, its stream read by a thread of its own.
fn start(
    runner: &dyn Runner,
    index: usize,
    node: &str,
    port: &str,
    filter: Option<&str>,
    events: Sender<Event>,
) -> Result<Port, CaptureError> {
    let argv = tcpdump_argv(port, filter);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut remote = runner.spawn(node, &argv)?;
    let stdout = remote.take_stdout();
    let stderr = remote.take_stderr().map(|mut e| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = e.read_to_string(&mut text);
            text
        })
    });
    if let Some(stdout) = stdout {
        std::thread::spawn(move || forward(index, stdout, &events));
    }
    Ok(Port { label: format!("{node}:{port}"), remote, stderr })
}

/// `tcpdump -U -w -`: every packet written out when it is seen, in
/// immediate mode (not when a kernel buffer block fills).
fn tcpdump_argv(port: &str, filter: Option<&str>) -> Vec<String> {
    let mut argv: Vec<String> =
        ["tcpdump", "-U", "--immediate-mode", "-w", "-", "-i", port].map(String::from).to_vec();
    argv.extend(filter.map(str::to_string));
    argv
}

/// Read one port's pcap stream and pass on what it holds.
fn forward(index: usize, stdout: impl Read, events: &Sender<Event>) {
    let mut reader = BufReader::new(stdout);
    let header = match pcap::read_header(&mut reader) {
        Ok(header) => header,
        Err(e) => {
            let _ = events.send(Event::Ended(index, Some(e.to_string())));
            return;
        }
    };
    if events.send(Event::Started(index, header)).is_err() {
        return;
    }
    loop {
        let event = match pcap::read_record(&mut reader, &header) {
            Ok(Some(record)) => Event::Packet(index, record),
            Ok(None) => Event::Ended(index, None),
            Err(e) => Event::Ended(index, Some(e.to_string())),
        };
        let last = matches!(event, Event::Ended(..));
        if events.send(event).is_err() || last {
            return;
        }
    }
}

/// Every port's pcap header: tcpdump is capturing there. A port whose
/// tcpdump ends first fails the capture, with what it said.
fn wait_for_starts(
    ports: &mut [Port],
    events: &Receiver<Event>,
    interrupt: &Interrupt,
) -> Result<Vec<pcap::Header>, CaptureError> {
    let mut headers: Vec<Option<pcap::Header>> = vec![None; ports.len()];
    let until = Instant::now() + START_TIMEOUT;
    while headers.iter().any(Option::is_none) {
        if interrupt.is_set() {
            return Err(CaptureError::Interrupted);
        }
        if Instant::now() >= until {
            let waiting: Vec<&str> = (0..ports.len())
                .filter(|i| headers[*i].is_none())
                .map(|i| ports[i].label.as_str())
                .collect();
            let why = format!("still waiting for {}", waiting.join(", "));
            return Err(CaptureError::Slow(START_TIMEOUT.as_secs(), why));
        }
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Started(i, header)) => headers[i] = Some(header),
            Ok(Event::Ended(i, why)) => {
                let port = &mut ports[i];
                let _ = port.remote.stop();
                let said = port.complaint();
                let why = if said.is_empty() { why.unwrap_or_default() } else { said };
                return Err(CaptureError::NotStarted { port: port.label.clone(), why });
            }
            Ok(Event::Packet(..)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(headers.into_iter().flatten().collect())
}

/// Writes the pcapng as packets come.
struct Recorder {
    writer: pcapng::Writer<Box<dyn Write>>,
    shown: String,
    counts: Vec<u64>,
    limit: Option<u64>,
    /// Ports whose stream ended while the capture ran.
    ended: Vec<bool>,
    /// Set once a write failed; nothing more is written.
    broken: bool,
}

impl Recorder {
    /// The section and one interface per port, in argument order.
    fn new(
        out: Box<dyn Write>,
        shown: &str,
        ports: &[Port],
        headers: &[pcap::Header],
        limit: Option<u64>,
    ) -> Result<Recorder, CaptureError> {
        let failed = |source| CaptureError::Write { path: shown.to_string(), source };
        let mut writer = pcapng::Writer::new(out, "pi-lab capture").map_err(failed)?;
        for (port, header) in ports.iter().zip(headers) {
            let interface = Interface {
                name: port.label.clone(),
                linktype: header.linktype,
                snaplen: header.snaplen,
                tsresol: header.tsresol(),
            };
            writer.add_interface(&interface).map_err(failed)?;
        }
        writer.flush().map_err(failed)?;
        Ok(Recorder {
            writer,
            shown: shown.to_string(),
            counts: vec![0; ports.len()],
            limit,
            ended: vec![false; ports.len()],
            broken: false,
        })
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn full(&self) -> bool {
        self.broken || self.limit.is_some_and(|n| self.total() >= n)
    }

    /// Until Ctrl-C, the deadline, the count, or every stream's end; the
    /// ports that ended by themselves.
    fn record(
        &mut self,
        events: &Receiver<Event>,
        interrupt: &Interrupt,
        until: Option<Instant>,
    ) -> Vec<usize> {
        let mut early = Vec::new();
        loop {
            let over = until.is_some_and(|t| Instant::now() >= t);
            if interrupt.is_set() || over || self.full() || self.ended.iter().all(|e| *e) {
                return early;
            }
            let event = match events.recv_timeout(Duration::from_millis(100)) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return early,
            };
            if let Event::Ended(i, _) = event {
                self.ended[i] = true;
                early.push(i);
                continue;
            }
            self.take(event);
            // Flush once the queue is empty: a reader (Wireshark) sees
            // each burst at once without a write per packet.
            loop {
                match events.try_recv() {
                    Ok(Event::Ended(i, _)) => {
                        self.ended[i] = true;
                        early.push(i);
                    }
                    Ok(event) => self.take(event),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.flush();
        }
    }

    /// What the readers still pass on after tcpdump was stopped.
    fn drain(&mut self, events: &Receiver<Event>) {
        for event in events.iter() {
            if !matches!(event, Event::Ended(..)) {
                self.take(event);
            }
        }
        self.flush();
    }

    fn take(&mut self, event: Event) {
        let Event::Packet(i, record) = event else { return };
        if self.full() {
            return;
        }
        let packet = Packet {
            interface: i as u32,
            timestamp: record.timestamp,
            original_len: record.original_len,
            data: record.data,
        };
        match self.writer.write_packet(&packet) {
            Ok(()) => self.counts[i] += 1,
            Err(e) => self.fail(&e),
        }
    }

    fn flush(&mut self) {
        if !self.broken
            && let Err(e) = self.writer.flush()
        {
            self.fail(&e);
        }
    }

    /// A closed pipe is the reader's choice to stop; anything else is said.
    fn fail(&mut self, e: &io::Error) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write {}: {e}", self.shown);
        }
        self.broken = true;
    }

    fn finish(&mut self, labels: &[String]) {
        let per_port: Vec<String> =
            labels.iter().zip(&self.counts).map(|(l, n)| format!("{l} {n}")).collect();
        eprintln!("captured {} packets ({}) to {}", self.total(), per_port.join(", "), self.shown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_streams_every_packet_at_once() {
        assert_eq!(
            tcpdump_argv("eth1", Some("icmp or arp")),
            ["tcpdump", "-U", "--immediate-mode", "-w", "-", "-i", "eth1", "icmp or arp"]
        );
        assert_eq!(tcpdump_argv("eth1", None).last().unwrap(), "eth1");
    }

    /// A tcpdump stream through the reader thread into the recorder: the
    /// pcapng holds the packet under its port's name.
    #[test]
    fn a_stream_becomes_an_interface_of_the_file() {
        let mut stream = Vec::new();
        stream.extend(0xA1B2_C3D4u32.to_le_bytes());
        stream.extend([2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        stream.extend(65_535u32.to_le_bytes());
        stream.extend(1u32.to_le_bytes());
        for v in [100u32, 7, 3, 3] {
            stream.extend(v.to_le_bytes());
        }
        stream.extend(b"abc");
        let (tx, rx) = mpsc::channel();
        forward(0, &stream[..], &tx);
        drop(tx);
        let Ok(Event::Started(0, header)) = rx.recv() else { panic!("no header") };

        let file = tempfile_path();
        let out: Box<dyn Write> = Box::new(File::create(&file).unwrap());
        let mut recorder = Recorder {
            writer: pcapng::Writer::new(out, "t").unwrap(),
            shown: "t".into(),
            counts: vec![0],
            limit: Some(1),
            ended: vec![false],
            broken: false,
        };
        let interface = Interface {
            name: "h1:eth1".into(),
            linktype: 1,
            snaplen: 65_535,
            tsresol: header.tsresol(),
        };
        recorder.writer.add_interface(&interface).unwrap();
        let early = recorder.record(&rx, &Interrupt::never(), None);
        assert_eq!(early, [0], "the stream ended by itself");
        recorder.drain(&rx);
        drop(recorder);
        let capture = pcapng::read(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(capture.interfaces, [interface]);
        assert_eq!(capture.packets.len(), 1);
        assert_eq!(capture.packets[0].timestamp, 100_000_007);
        assert_eq!(capture.packets[0].data, b"abc");
    }

    fn tempfile_path() -> tempfile::TempPath {
        tempfile::NamedTempFile::new().unwrap().into_temp_path()
    }
}
