//! What the runners need to know about netem beyond its settings (which,
//! with their ranges and the `tc` command, live in
//! [`lab_spec::impairment`], shared with the lab file and node-agent):
//! whether a node's kernel has it.

pub use lab_spec::impairment::{Netem, NetemError, is_netem, kind_unknown};

use super::RunnerError;

/// The exit code of [`probe_line`] when the kernel has no netem.
pub const PROBE_MISSING: i32 = 3;

/// A shell line that exits 0 when the kernel has netem (loaded, built in,
/// or a module modprobe would load) and [`PROBE_MISSING`] when not.
pub fn probe_line() -> String {
    format!(
        "PATH=$PATH:/usr/sbin:/sbin; test -d /sys/module/sch_netem && exit 0; \
         grep -qs /sch_netem.ko \"/lib/modules/$(uname -r)/modules.builtin\" && exit 0; \
         modprobe -nq sch_netem 2>/dev/null && exit 0; exit {PROBE_MISSING}"
    )
}

/// Whether this machine's kernel has netem: the virtual fleet's nodes
/// share it, so a lab that impairs ports is refused before anything starts.
pub fn host_has_netem() -> bool {
    let probe = std::process::Command::new("sh").args(["-c", &probe_line()]).output();
    probe.is_ok_and(|out| out.status.code() != Some(PROBE_MISSING))
}

pub fn missing(node: &str) -> RunnerError {
    RunnerError::MissingModule {
        node: node.to_string(),
        module: lab_spec::impairment::MODULE,
        what: "the netem qdisc for delay, loss and rate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_says_missing_on_a_kernel_without_netem() {
        let out = std::process::Command::new("sh").args(["-c", &probe_line()]).output().unwrap();
        let here = std::path::Path::new("/sys/module/sch_netem").exists();
        assert_eq!(host_has_netem(), out.status.code() == Some(0));
        if !here && out.status.code() == Some(PROBE_MISSING) {
            return; // this machine's kernel: no netem, as DESIGN.md says
        }
        assert!(matches!(out.status.code(), Some(0 | PROBE_MISSING)), "{out:?}");
    }
}
