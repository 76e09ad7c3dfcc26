//! The lab file's impairments (netem on what a port sends), reconciled
//! like the rest of the network: the config's, the kernel's, a pure
//! [`plan`], every change printed as the `tc` command it runs.
//!
//! netlink-packet-route has no netem options (only fq_codel and ingress),
//! so the agent runs `tc`, as it runs `vtysh` for FRR: iproute2 is on every
//! image, and one command per change is what the plan prints anyway.
//!
//! Run time wins over the file until the file changes: a port whose netem
//! was set by hand (`pi-lab lab impair`) keeps it, and is reported
//! [`ImpairmentState::ByHand`]; the file's value is put back only when it
//! changes (a new config), or when the port has no netem at all (after a
//! reboot, or a port created again). An agent that restarts takes what
//! runs as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::process::Command;

use lab_spec::NodeConfig;
use lab_spec::health::{ImpairmentState, PortImpairment};
use lab_spec::impairment::{self, Netem};

/// Each port's netem as the kernel has it. Absent: its root qdisc is not
/// netem; `Some(None)`: netem that sets nothing.
pub type Observed = BTreeMap<String, Option<Netem>>;

/// The impairment each port of `cfg` gets from the lab file.
pub fn wanted(cfg: &NodeConfig) -> BTreeMap<String, Netem> {
    let ports = cfg.interfaces.iter();
    ports.filter_map(|i| i.tc.clone().map(|tc| (i.name.clone(), tc))).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set { port: String, netem: Netem },
    Remove { port: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv().join(" "))
    }
}

impl Change {
    pub fn argv(&self) -> Vec<String> {
        match self {
            Change::Set { port, netem } => netem.tc_replace(port),
            Change::Remove { port } => {
                ["tc", "qdisc", "del", "dev", port, "root"].map(String::from).to_vec()
            }
        }
    }
}

/// What to change. `previous`: what the config in force before this one
/// wanted; `None` when the agent has just started (it takes what runs).
pub fn plan(
    wanted: &BTreeMap<String, Netem>,
    previous: Option<&BTreeMap<String, Netem>>,
    observed: &Observed,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (port, netem) in wanted {
        let file_changed = previous.is_some_and(|p| p.get(port) != Some(netem));
        if !observed.contains_key(port) || file_changed {
            changes.push(Change::Set { port: port.clone(), netem: netem.clone() });
        }
    }
    // A port the file impaired before and no longer does: the file's
    // netem goes. A netem the file never asked for was set by hand: stays.
    let dropped = previous.into_iter().flat_map(|p| p.keys()).filter(|p| !wanted.contains_key(*p));
    for port in dropped.filter(|p| observed.contains_key(*p)) {
        changes.push(Change::Remove { port: port.clone() });
    }
    changes
}

/// The ports worth reporting: wanted by the file, or running netem.
pub fn states(wanted: &BTreeMap<String, Netem>, observed: &Observed) -> Vec<PortImpairment> {
    let mut ports: Vec<&String> = wanted.keys().chain(observed.keys()).collect();
    ports.sort();
    ports.dedup();
    ports
        .into_iter()
        .map(|port| {
            let want = wanted.get(port).cloned();
            let running = observed.get(port).cloned().flatten();
            let state = match (&want, observed.get(port)) {
                (Some(_), None) => ImpairmentState::NotApplied,
                _ if running == want => ImpairmentState::AsLabFile,
                _ => ImpairmentState::ByHand,
            };
            PortImpairment { port: port.clone(), wanted: want, running, state }
        })
        .collect()
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct Done {
    pub applied: Vec<String>,
    /// `(command, why it failed)`.
    pub failed: Vec<(String, String)>,
    pub states: Vec<PortImpairment>,
}

/// Read, plan and (unless `dry_run`) apply; `planned` gets every change.
pub fn reconcile(
    cfg: &NodeConfig,
    previous: Option<&NodeConfig>,
    dry_run: bool,
    planned: &mut Vec<String>,
) -> Done {
    let want = wanted(cfg);
    let before = previous.map(wanted);
    let ports = cfg.interfaces.iter().map(|i| i.name.as_str());
    let ports: Vec<&str> =
        ports.chain(before.iter().flat_map(|b| b.keys().map(String::as_str))).collect();
    let mut observed = observe(&ports);
    let changes = plan(&want, before.as_ref(), &observed);
    planned.extend(changes.iter().map(ToString::to_string));
    let mut done = Done::default();
    if !dry_run && !changes.is_empty() {
        for change in &changes {
            match run(&change.argv()) {
                Ok(()) => done.applied.push(change.to_string()),
                Err(why) => done.failed.push((change.to_string(), why)),
            }
        }
        observed = observe(&ports);
    }
    done.states = states(&want, &observed);
    done
}

/// Each of `ports`' root netem, from one `tc qdisc show` of every device:
/// one process a pass, however many ports (this runs on every pass).
fn observe(ports: &[&str]) -> Observed {
    let Ok(shown) = Command::new("tc").args(["qdisc", "show"]).output() else {
        return Observed::new();
    };
    root_netems(&String::from_utf8_lossy(&shown.stdout), ports)
}

/// The root netems of `ports` in `tc qdisc show` output, whose lines name
/// their device (`qdisc netem 8001: dev eth1 root refcnt 2 ... delay 20ms`).
fn root_netems(shown: &str, ports: &[&str]) -> Observed {
    let mut out = Observed::new();
    for line in shown.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let dev = words.iter().position(|w| *w == "dev").and_then(|at| words.get(at + 1));
        let Some(dev) = dev.filter(|d| ports.contains(d) && words.contains(&"root")) else {
            continue;
        };
        if let Some(netem) = Netem::from_tc_show(line) {
            out.insert((*dev).to_string(), netem);
        }
    }
    out
}

fn run(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if impairment::kind_unknown(&stderr) {
        return Err(format!(
            "this kernel has no {} module (the netem qdisc): the lab file's impairment is not \
             applied; Debian's kernel on the boards and emulated boards has it",
            impairment::MODULE
        ));
    }
    Err(stderr)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_listing_gives_each_ports_root_netem() {
        let shown = "qdisc noqueue 0: dev lo root refcnt 2 \n\
                     qdisc netem 8001: dev eth0.101 root refcnt 2 limit 1000 delay 20ms  5ms loss 1%\n\
                     qdisc noqueue 0: dev eth0.201 root refcnt 2 \n\
                     qdisc netem 10: dev eth2 parent 1:1 limit 1000 delay 50ms\n\
                     qdisc netem 8002: dev eth9 root refcnt 2 limit 1000 delay 5ms\n";
        let found = root_netems(shown, &["eth0.101", "eth0.201", "eth2"]);
        let netem = found["eth0.101"].clone().unwrap();
        assert_eq!(netem.to_string(), "delay 20ms, jitter 5ms, loss 1%");
        // Not netem, not the root qdisc, or not one of the ports: absent.
        assert_eq!(found.len(), 1, "{found:?}");
    }

    fn delay(ms: u64) -> Netem {
        Netem::new(Some(Duration::from_millis(ms)), None, None, None).unwrap()
    }

    fn ports(list: &[(&str, Netem)]) -> BTreeMap<String, Netem> {
        list.iter().map(|(p, n)| (p.to_string(), n.clone())).collect()
    }

    fn running(list: &[(&str, Option<Netem>)]) -> Observed {
        list.iter().map(|(p, n)| (p.to_string(), n.clone())).collect()
    }

    #[test]
    fn a_port_without_netem_gets_the_lab_files() {
        let want = ports(&[("eth1", delay(20))]);
        let changes = plan(&want, None, &Observed::new());
        assert_eq!(changes, [Change::Set { port: "eth1".into(), netem: delay(20) }]);
        assert_eq!(changes[0].to_string(), "tc qdisc replace dev eth1 root netem delay 20ms");
        // Applied: nothing more to do, on the next pass or after a restart.
        let now = running(&[("eth1", Some(delay(20)))]);
        assert_eq!(plan(&want, Some(&want), &now), []);
        assert_eq!(plan(&want, None, &now), []);
    }

    #[test]
    fn a_hand_change_is_left_until_the_lab_file_changes() {
        let want = ports(&[("eth1", delay(20))]);
        let by_hand = running(&[("eth1", Some(delay(50)))]);
        assert_eq!(plan(&want, Some(&want), &by_hand), []);
        assert_eq!(plan(&want, None, &by_hand), [], "a restarted agent takes what runs");
        let state = &states(&want, &by_hand)[0];
        assert_eq!(state.state, ImpairmentState::ByHand);
        assert_eq!(state.summary(), "delay 50ms (by hand; lab file: delay 20ms)");
        // The file now says 30ms: that is put in place.
        let new = ports(&[("eth1", delay(30))]);
        assert_eq!(
            plan(&new, Some(&want), &by_hand),
            [Change::Set { port: "eth1".into(), netem: delay(30) }]
        );
    }

    #[test]
    fn only_the_lab_files_netem_is_removed() {
        let before = ports(&[("eth1", delay(20))]);
        let now = running(&[("eth1", Some(delay(20))), ("eth2", Some(delay(5)))]);
        let changes = plan(&BTreeMap::new(), Some(&before), &now);
        assert_eq!(changes, [Change::Remove { port: "eth1".into() }]);
        assert_eq!(changes[0].to_string(), "tc qdisc del dev eth1 root");
        let eth2 = &states(&BTreeMap::new(), &now)[1];
        assert_eq!((eth2.port.as_str(), eth2.state), ("eth2", ImpairmentState::ByHand));
    }

    #[test]
    fn wanted_and_not_running_is_not_applied() {
        let want = ports(&[("eth1", delay(20))]);
        let state = &states(&want, &Observed::new())[0];
        assert_eq!(state.state, ImpairmentState::NotApplied);
        assert_eq!(state.summary(), "NOT APPLIED: delay 20ms");
        let cleared = states(&want, &running(&[("eth1", None)]));
        assert_eq!(cleared[0].state, ImpairmentState::ByHand);
    }
}
