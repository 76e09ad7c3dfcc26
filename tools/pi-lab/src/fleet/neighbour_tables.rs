//! Room in the kernel's neighbour tables (ARP and IPv6 ND) for the whole
//! fleet. The tables are shared by every network namespace on the host, and
//! their hard limit (`gc_thresh3`, 1,024 entries by default) is global:
//! a fleet of 128 nodes holds about 900 ARP entries (one per cable end and
//! two per management port), and past the limit the kernel refuses new ones
//! ("neighbour: arp_cache: neighbor table overflow!"), so BGP sessions
//! stay in Connect and pings fail with "No buffer space available".
//!
//! `lab up` raises the limits before it makes anything, journaled with the
//! values they had; `lab down` puts a value back if it still reads what
//! `lab up` set (a lab started later may have raised it further).

/// The sysctls raised, for IPv4 and IPv6.
const FAMILIES: [&str; 2] = ["ipv4", "ipv6"];

/// One limit to raise: its file under /proc/sys, what it is, what it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    pub key: String,
    pub was: u64,
    pub set: u64,
}

/// Neighbour entries a fleet holds at most: both ends of every cable, the
/// management bridge's entry for every node and every node's for the
/// controller, and room for hosts and VTEPs in the segments.
pub fn entries(nodes: usize, links: usize) -> u64 {
    (2 * links + 2 * nodes + 256) as u64
}

/// The limits to raise for `entries`, given what they read now (`read`):
/// gc_thresh3 (the hard limit) to twice the entries, gc_thresh2 (where
/// the kernel starts evicting early) to the entries. Limits already that
/// high stay as they are.
pub fn plan(entries: u64, read: impl Fn(&str) -> Option<u64>) -> Vec<Raise> {
    let mut raises = Vec::new();
    for family in FAMILIES {
        for (name, wanted) in [("gc_thresh3", 2 * entries), ("gc_thresh2", entries)] {
            let key = format!("net/{family}/neigh/default/{name}");
            match read(&key) {
                Some(was) if was < wanted => raises.push(Raise { key, was, set: wanted }),
                _ => {}
            }
        }
    }
    raises
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_rise_to_twice_the_entries_and_never_fall() {
        // The 256-node scale lab: 992 cables.
        let need = entries(256, 992);
        assert_eq!(need, 2 * 992 + 2 * 256 + 256);
        let defaults = |key: &str| Some(if key.ends_with("thresh3") { 1024 } else { 512 });
        let raises = plan(need, defaults);
        assert_eq!(raises.len(), 4, "{raises:?}");
        assert!(raises.contains(&Raise {
            key: "net/ipv4/neigh/default/gc_thresh3".into(),
            was: 1024,
            set: 2 * need
        }));
        assert!(raises.contains(&Raise {
            key: "net/ipv6/neigh/default/gc_thresh2".into(),
            was: 512,
            set: need
        }));
        // Already large enough (another lab raised them): nothing to do.
        assert!(plan(need, |_| Some(1 << 20)).is_empty());
        // A kernel without the file: nothing to do either.
        assert!(plan(need, |_| None).is_empty());
    }
}
