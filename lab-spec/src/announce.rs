//! `Announcement`: what an unprovisioned node-agent broadcasts so that
//! `pi-lab provision` can find it and match it to a lab node (zero-touch).
//!
//! One JSON object per UDP datagram to port [`ANNOUNCE_PORT`], sent to the
//! management subnet's broadcast address and to the controller named in
//! `/boot/firmware/pi-lab/controller`, every few seconds until provisioned.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// UDP port pi-lab listens on for announcements.
pub const ANNOUNCE_PORT: u16 = 9181;

/// Version of the announcement format.
pub const ANNOUNCE_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Always [`ANNOUNCE_SCHEMA`].
    pub schema: u32,
    /// Board serial number from the device tree, if known.
    pub serial: Option<String>,
    /// MAC of the management port, lower-case.
    pub mac: Option<String>,
    pub model: Option<String>,
    pub hostname: String,
    /// The address the agent believes it has; the datagram's source
    /// address is the better witness and wins when they differ.
    pub address: Option<Ipv4Addr>,
    /// TCP port of the management API.
    pub api_port: u16,
    pub agent_version: String,
    /// True once the agent has a config (it keeps quiet then; kept for
    /// controllers that want to list the fleet).
    pub provisioned: bool,
}

/// Serial numbers compare without case and leading zeros: the device tree
/// says `00000000a1b2c3d4`, people write `a1b2c3d4`.
pub fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_lowercase();
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn serials_match_without_leading_zeros_or_case() {
        assert!(super::same_serial("00000000A1B2C3D4", "a1b2c3d4"));
        assert!(!super::same_serial("a1b2c3d5", "a1b2c3d4"));
    }
}
