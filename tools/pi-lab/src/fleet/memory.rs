//! Does the fleet fit in this machine's memory? Asked before anything is
//! made: a fleet that runs out of memory halfway thrashes, and the kernel's
//! OOM killer then picks FRR daemons or agents at random.
//!
//! What a node costs was measured with `scripts/bench-fleet-scale.sh`
//! (BENCHMARKS.md, "The fleet at scale"): MemAvailable before `lab up`
//! minus after, per node, at 32 to 256 nodes.

use lab_spec::NodeConfig;

/// A router: zebra, staticd, bgpd (or an IGP daemon too), watchfrr and its
/// agent, with their share of the kernel's namespace, veth and page-cache
/// cost. Measured at 33–37 MiB; rounded up.
pub const ROUTER_MIB: u64 = 40;
/// A host: its agent and namespace only.
pub const HOST_MIB: u64 = 8;
/// Room left for everything else on the machine (the kernel's own needs
/// grow with the number of namespaces, and pi-lab, the browser...).
const HEADROOM_PERCENT: u64 = 10;

/// What a lab would take, and what the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryNeed {
    pub routers: u64,
    pub hosts: u64,
    pub available_mib: u64,
}

impl MemoryNeed {
    pub fn of(nodes: &[NodeConfig], available_mib: u64) -> MemoryNeed {
        let routers = nodes.iter().filter(|n| n.runs_frr()).count() as u64;
        MemoryNeed { routers, hosts: nodes.len() as u64 - routers, available_mib }
    }

    pub fn mib(&self) -> u64 {
        self.routers * ROUTER_MIB + self.hosts * HOST_MIB
    }

    /// What may be used: the available memory less the headroom.
    fn usable_mib(&self) -> u64 {
        self.available_mib - self.available_mib * HEADROOM_PERCENT / 100
    }

    pub fn fits(&self) -> bool {
        self.mib() <= self.usable_mib()
    }

    /// How many nodes of this lab's mix fit (routers and hosts in the same
    /// proportion).
    pub fn nodes_that_fit(&self) -> u64 {
        let nodes = self.routers + self.hosts;
        if nodes == 0 || self.mib() == 0 {
            return 0;
        }
        self.usable_mib() * nodes / self.mib()
    }
}

/// MemAvailable from /proc/meminfo, in MiB.
pub fn available_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_available_mib(&text)
}

fn parse_available_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_fits_until_its_nodes_use_what_is_available_less_headroom() {
        let need = MemoryNeed { routers: 252, hosts: 4, available_mib: 20_000 };
        assert_eq!(need.mib(), 252 * ROUTER_MIB + 4 * HOST_MIB);
        assert!(need.fits());
        let small = MemoryNeed { available_mib: 4_000, ..need };
        assert!(!small.fits());
        // 3,600 MiB usable; 10,112 MiB needed for 256 nodes.
        assert_eq!(small.nodes_that_fit(), 3_600 * 256 / 10_112);
        assert!(MemoryNeed { routers: 0, hosts: 0, available_mib: 0 }.fits());
    }

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let meminfo = "MemTotal:       24683720 kB\nMemFree:        12960588 kB\n\
                       MemAvailable:   19439752 kB\nBuffers:           52276 kB\n";
        assert_eq!(parse_available_mib(meminfo), Some(19439752 / 1024));
        assert_eq!(parse_available_mib("MemTotal: 1 kB\n"), None);
    }
}
