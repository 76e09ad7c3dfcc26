//! The nftables rules that feed sampled packets to NFLOG. They live in one
//! table the agent owns (`netdev node_agent_sflow`); the agent replaces or
//! deletes that table as a whole and never touches any other.
//!
//! Rules are applied by piping a script to `nft -f -` (nftables is in the
//! image, and its netlink protocol is not worth reimplementing): the script
//! is one transaction, so a table is either fully replaced or left as it was.

use std::process::Command;

use super::SflowError;

/// Family and name of the table the agent owns.
pub const TABLE: &str = "netdev node_agent_sflow";

/// The ruleset: every packet arriving on `devices` is sampled 1-in-`rate`
/// (random, as sFlow asks) into NFLOG `group`, the first 128 bytes.
pub fn ruleset(devices: &[String], rate: u32, group: u16) -> String {
    let devs: Vec<String> = devices.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "table {TABLE} {{}}\n\
         delete table {TABLE}\n\
         table {TABLE} {{\n\
         \tcomment \"sFlow packet sampling, managed by node-agent\"\n\
         \tchain ingress {{\n\
         \t\ttype filter hook ingress devices = {{ {} }} priority -500; policy accept;\n\
         \t\tnumgen random mod {rate} 0 log group {group} snaplen 128\n\
         \t}}\n\
         }}\n",
        devs.join(", ")
    )
}

/// Installs (or replaces) the sampling table.
pub fn install(devices: &[String], rate: u32, group: u16) -> Result<(), SflowError> {
    if let Some(bad) = devices.iter().find(|d| !valid_ifname(d)) {
        return Err(SflowError::Config(format!(
            "interface name {bad:?} cannot be sampled: names are 1-15 characters of letters, digits, '.', '-', '_'"
        )));
    }
    nft(&ruleset(devices, rate, group))
}

/// Deletes the sampling table if it exists.
pub fn remove() -> Result<(), SflowError> {
    nft(&format!("table {TABLE} {{}}\ndelete table {TABLE}\n"))
}

/// Kernel interface names: keeps quotes and braces out of the script.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
}

fn nft(script: &str) -> Result<(), SflowError> {
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"]);
    let out =
        lab_spec::program_input::run_with_input(&mut cmd, script.as_bytes()).map_err(|e| {
            SflowError::Nft(format!("cannot run `nft -f -` ({e}); install the nftables package"))
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SflowError::Nft(format!(
            "nft -f - failed: {}\nscript was:\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_samples_the_given_devices() {
        let r = ruleset(&["eth1".into(), "eth2".into()], 100, 6343);
        assert!(r.contains("devices = { \"eth1\", \"eth2\" }"), "{r}");
        assert!(r.contains("numgen random mod 100 0 log group 6343 snaplen 128"), "{r}");
        assert!(r.starts_with(
            "table netdev node_agent_sflow {}\ndelete table netdev node_agent_sflow\n"
        ));
    }

    #[test]
    fn odd_interface_names_are_refused() {
        let err = install(&["eth1\"; flush ruleset".into()], 10, 1).unwrap_err();
        assert!(err.to_string().contains("cannot be sampled"), "{err}");
    }
}
