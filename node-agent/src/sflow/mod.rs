//! sFlow v5 export (sflow.org: sflow_version_5.txt, sflow_host.txt).
//!
//! Every polling interval the exporter reads the kernel's interface counters
//! and the host's CPU, memory, disk and network figures and sends them as
//! expanded counter samples; with a sampling rate it also installs nftables
//! rules that send 1-in-N packets of the lab interfaces to an NFLOG group and
//! exports those as flow samples with the first 128 bytes of each packet.
//! Datagrams never exceed 1400 bytes and go to every collector.
//!
//! ```no_run
//! # fn main() -> Result<(), node_agent::sflow::SflowError> {
//! # let cfg: lab_spec::node_config::Sflow = todo!();
//! use node_agent::sflow::{Exporter, HostInfo};
//! let handle = Exporter::start(&cfg, HostInfo::detect())?;
//! let state = handle.stats(); // lab_spec::health::SflowState for /v1/health
//! handle.reconfigure(&cfg)?;  // a new NodeConfig arrived
//! handle.stop();              // removes the nftables table
//! # Ok(()) }
//! ```
//!
//! The exporter runs in the network namespace of the thread that starts it.

pub mod datagram;
mod exporter;
pub mod host;
pub mod links;
pub mod nflog;
pub mod nft;
pub mod records;
mod service;
pub mod xdr;

pub use exporter::{Exporter, ExporterHandle, ExporterOptions};
pub use host::HostInfo;
pub use service::SflowService;

/// What can go wrong starting or reconfiguring the exporter.
#[derive(Debug, thiserror::Error)]
pub enum SflowError {
    #[error("invalid sFlow settings: {0}")]
    Config(String),
    #[error("cannot open the UDP socket for sFlow datagrams: {0}")]
    Socket(#[source] std::io::Error),
    #[error(
        "cannot listen on NFLOG group {group} for packet sampling: {source}{}",
        nflog_hint(source)
    )]
    Nflog {
        group: u16,
        #[source]
        source: crate::netlink::NetlinkError,
    },
    #[error("nftables: {0}")]
    Nft(String),
    #[error("cannot read interfaces from the kernel: {0}")]
    Links(#[source] crate::netlink::NetlinkError),
    #[error("the sFlow exporter thread has stopped")]
    Stopped,
    /// The agent fell back to counter samples.
    #[error("packet sampling 1-in-{rate} is off, exporting counters only: {source}")]
    CountersOnly {
        rate: u32,
        #[source]
        source: Box<SflowError>,
    },
}

/// What to check when the NFLOG group cannot be bound.
fn nflog_hint(e: &crate::netlink::NetlinkError) -> &'static str {
    let errno = match e {
        crate::netlink::NetlinkError::Socket(io) => io.raw_os_error(),
        other => other.errno(),
    };
    match errno {
        Some(libc::EPERM) => {
            " (another program such as hsflowd or ulogd listens on that group, or the agent lacks CAP_NET_ADMIN)"
        }
        Some(libc::EPROTONOSUPPORT) | Some(libc::ENOENT) => {
            " (the kernel lacks nfnetlink_log: modprobe nfnetlink_log, or set sampling_rate = 0)"
        }
        _ => "",
    }
}
