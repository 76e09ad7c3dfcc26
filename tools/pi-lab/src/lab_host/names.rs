//! Every name the fleet gives to a kernel object, derived from the lab name
//! so two labs can run side by side.
//!
//! - network namespace and FRR pathspace of a node: `{lab}-{node}`;
//! - root-namespace devices (kernel limit: 15 bytes) start with a short lab
//!   tag: the lab name itself when it has at most 8 bytes, else its first 4
//!   bytes and 4 hex digits of a hash of the whole name. The management
//!   bridge is `{tag}-br`, the bridge end of node N's management veth is
//!   `{tag}-m{N}` (N: the node's index in name order).
//! - inside a namespace the management port is `mgmt0` and lab ports keep
//!   the names the lab file gives them.

/// Name of the management port inside every node namespace; written into
/// each node's NodeConfig as `management.interface`.
pub const MGMT_PORT: &str = lab_spec::lab::defaults::FLEET_MANAGEMENT_PORT;

/// Longest interface name the kernel takes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("lab name {0:?} cannot name namespaces: use letters, digits and '-' (e.g. \"fabric\")")]
    BadLab(String),
    #[error("node name {0:?} cannot name a namespace: use letters, digits and '-'")]
    BadNode(String),
    #[error(
        "interface name {0:?} is not a valid kernel interface name (1-15 bytes, no '/', ':' or spaces)"
    )]
    BadInterface(String),
}

fn plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn check_lab(lab: &str) -> Result<(), NameError> {
    if plain(lab) { Ok(()) } else { Err(NameError::BadLab(lab.to_string())) }
}

pub fn check_node(node: &str) -> Result<(), NameError> {
    if plain(node) { Ok(()) } else { Err(NameError::BadNode(node.to_string())) }
}

pub fn check_interface(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok { Ok(()) } else { Err(NameError::BadInterface(name.to_string())) }
}

/// Network namespace, FRR pathspace and `/etc/frr/` directory of a node.
pub fn netns(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The short prefix of every root-namespace device of a lab.
pub fn tag(lab: &str) -> String {
    if lab.len() <= 8 {
        return lab.to_string();
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash =
        lab.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{}{:04x}", &lab[..4], hash & 0xffff)
}

pub fn bridge(lab: &str) -> String {
    format!("{}-br", tag(lab))
}

/// Root-namespace end of node `index`'s management veth.
pub fn mgmt_root_end(lab: &str, index: usize) -> String {
    format!("{}-m{index}", tag(lab))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_names_fit_the_kernel_limit_and_differ_per_lab() {
        for lab in ["fabric", "t3fab", "a-very-long-lab-name-indeed", "two-router"] {
            assert!(bridge(lab).len() <= IFNAME_MAX, "{}", bridge(lab));
            assert!(mgmt_root_end(lab, 999).len() <= IFNAME_MAX);
            check_interface(&mgmt_root_end(lab, 999)).unwrap();
        }
        assert_eq!(bridge("fabric"), "fabric-br");
        assert_ne!(tag("two-router-a"), tag("two-router-b"));
        assert!(tag("two-router-a").starts_with("two-"));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_lab("my lab").is_err());
        assert!(check_lab("").is_err());
        assert!(check_node("leaf/1").is_err());
        assert!(check_interface("averyveryverylongname").is_err());
        assert!(check_interface("eth1").is_ok());
    }
}
