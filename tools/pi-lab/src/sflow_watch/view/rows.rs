//! The rows of a snapshot: per interface, per flow, and the summary (each
//! also a `--json` line).

use std::net::IpAddr;

use serde::Serialize;

use crate::sflow_watch::decode::FlowKey;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BadCounts {
    pub truncated: u64,
    pub malformed: u64,
    pub oversized: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub in_bps: f64,
    pub out_bps: f64,
    pub in_pps: f64,
    pub out_pps: f64,
}

/// One line of the interface table (also a `--json` line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfaceRow {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub node: String,
    pub agent: IpAddr,
    pub if_index: u32,
    /// The name the agent sends (port name); `None` from agents that do
    /// not send one.
    pub ifname: Option<String>,
    /// The other end of the lab link, `node:interface`, when the lab is known.
    pub peer: Option<String>,
    /// The link's index in the lab's plan.
    #[serde(skip)]
    pub link: Option<usize>,
    pub speed: u64,
    pub oper_up: bool,
    /// `None` until two counter samples have arrived.
    pub rates: Option<Rates>,
    /// Seconds since the last counter sample.
    pub age_secs: f64,
    pub in_octets: u64,
    pub out_octets: u64,
    pub in_packets: u32,
    pub out_packets: u32,
    pub in_errors: u32,
    pub out_errors: u32,
    pub in_discards: u32,
    pub out_discards: u32,
}

impl InterfaceRow {
    /// `node:name`, or `node:#ifIndex` when the agent sends no name.
    pub fn label(&self) -> String {
        match &self.ifname {
            Some(name) => format!("{}:{name}", self.node),
            None => format!("{}:#{}", self.node, self.if_index),
        }
    }
}

/// One line of the top-flows table (also a `--json` line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRow {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub node: String,
    pub agent: IpAddr,
    /// The interface the last sample came in on (its name, else ifIndex).
    pub input: String,
    #[serde(flatten)]
    pub key: FlowKey,
    /// Estimated from samples × sampling rate.
    pub bps: f64,
    pub pps: f64,
    pub samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub datagrams: u64,
    pub agents: usize,
    pub lost: u64,
    pub skipped: BadCounts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub summary: Summary,
    pub interfaces: Vec<InterfaceRow>,
    pub flows: Vec<FlowRow>,
}
