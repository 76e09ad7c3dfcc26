//! The emulated managed switch: a bridge in the root namespace with the
//! controller address on it (management, untagged) and one tap per board.
//!
//! Tagged frames pass a plain Linux bridge untouched, so VLAN membership
//! is enforced as a managed switch does it: an nftables `bridge` table
//! drops a frame tagged with a VLAN on a port that does not carry that VLAN
//! (`lab switch` prints the same membership for a real switch). This
//! machine's bridge has no VLAN filtering of its own.
//!
//! Nor has it an address table per VLAN: it would learn a host's MAC from
//! the VLAN its own port carries and then send that MAC's frames of every
//! other VLAN (a leaf's reply into a VXLAN segment) to that port, where the
//! rules drop them. So the ports learn nothing: frames go to every port
//! and the rules let them out only where their VLAN is carried, which is
//! what a switch with an address table per VLAN delivers.

use std::process::Command;

use crate::switch::SwitchPlan;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run nft (Debian package nftables): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the switch's VLAN rules: {0}")]
    Failed(String),
}

/// The nftables table of a lab's switch (family `bridge`).
pub fn table(tag: &str) -> String {
    format!("pi_lab_{}", tag.replace('-', "_"))
}

/// The rules: per board tap, frames tagged with a VLAN the port does not
/// carry are dropped coming in and going out. Untagged frames (the
/// management network) pass everywhere.
pub fn rules(table: &str, plan: &SwitchPlan, tap_of: &dyn Fn(&str) -> String) -> String {
    let mut out = format!(
        "table bridge {table} {{\n  chain ports {{\n    type filter hook forward priority 0; policy accept;\n"
    );
    for port in plan.ports.iter().filter(|p| p.management) {
        let tap = tap_of(&port.board);
        let allowed = if port.tagged.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = port.tagged.iter().map(u16::to_string).collect();
            format!(" vlan id != {{ {} }}", ids.join(", "))
        };
        for dir in ["iifname", "oifname"] {
            out.push_str(&format!("    {dir} \"{tap}\" ether type 8021q{allowed} drop\n"));
            // Stacked tags (802.1ad) are not part of any lab.
            out.push_str(&format!("    {dir} \"{tap}\" ether type 8021ad drop\n"));
        }
    }
    out.push_str("  }\n}\n");
    out
}

/// Load `text` with `nft -f -`.
pub fn nft_load(text: &str) -> Result<(), NftError> {
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"]);
    let out = lab_spec::program_input::run_with_input(&mut cmd, text.as_bytes())
        .map_err(NftError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Failed(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::SwitchPort;

    #[test]
    fn ports_carry_only_their_vlans() {
        let port = |n, board: &str, tagged: Vec<u16>| SwitchPort {
            number: n,
            board: board.into(),
            board_port: "eth0".into(),
            management: true,
            tagged,
        };
        let plan = SwitchPlan {
            lab: "l".into(),
            ports: vec![port(1, "r1", vec![101, 201]), port(2, "h1", vec![])],
            vlans: vec![],
            direct: vec![],
        };
        let text = rules("pi_lab_l", &plan, &|b| format!("l-{b}"));
        assert!(text.starts_with("table bridge pi_lab_l {"), "{text}");
        assert!(text.contains("iifname \"l-r1\" ether type 8021q vlan id != { 101, 201 } drop"));
        assert!(text.contains("oifname \"l-r1\" ether type 8021q vlan id != { 101, 201 } drop"));
        assert!(text.contains("iifname \"l-h1\" ether type 8021q drop"), "{text}");
        assert_eq!(table("two-rtr"), "pi_lab_two_rtr");
    }
}
