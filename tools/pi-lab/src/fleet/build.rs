//! Building a fleet: the names it needs checked free, then namespaces,
//! management bridge, cables, FRR and agents, each journaled before it is
//! made.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;

use lab_spec::node_config::InterfaceKind;
use lab_spec::{NodeConfig, Role};

use super::topology::FleetLab;
use super::{FleetError, agent, frr, neighbour_tables};
use crate::interrupt::Interrupt;
use crate::lab_host::journal::{Entry, Journal};
use crate::lab_host::progress::{NodeLine, Step};
use crate::lab_host::{ip, names, sysctl};

/// Refuse before making anything when a name the lab needs is taken.
pub(super) fn preflight(lab: &FleetLab) -> Result<(), FleetError> {
    let occupied = |what: String| FleetError::Occupied { lab: lab.name.clone(), what };
    for node in &lab.nodes {
        let ns = names::netns(&lab.name, &node.hostname);
        if ip::netns_exists(&ns) {
            return Err(occupied(format!("network namespace {ns}")));
        }
        if frr::run_dir(&ns).join("watchfrr.pid").exists() {
            return Err(occupied(format!("FRR pathspace {ns}")));
        }
    }
    let bridge = names::bridge(&lab.name);
    if ip::link_exists(None, &bridge) {
        return Err(occupied(format!("device {bridge}")));
    }
    if let Some(first) = lab.nodes.first() {
        let controller = first.management.controller.to_string();
        if let Some(dev) = ip::holders_of(None, &controller)?.first() {
            return Err(occupied(format!(
                "the controller address {controller} (on {dev}; another lab with the same \
                 management subnet?)"
            )));
        }
    }
    Ok(())
}

/// One router whose FRR is to start: its line, namespace, hostname and the
/// daemons that must run.
struct Router<'a> {
    index: usize,
    ns: String,
    host: &'a str,
    daemons: Vec<&'static str>,
}

/// FRR instances started at once: each start runs shell scripts, the
/// daemons and their first config; hundreds at once on a small host starve
/// each other until watchfrr gives up on some of them.
fn frr_starts_at_once() -> usize {
    4 * std::thread::available_parallelism().map_or(2, usize::from)
}

/// How long one instance's daemons get to come up.
const FRR_UP_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// Start every router's FRR, [`frr_starts_at_once`] at a time, each
/// waited for until its daemons run; results by line index.
fn start_frr(routers: &[Router<'_>]) -> Vec<(usize, Result<(), frr::FrrError>)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..frr_starts_at_once().min(routers.len()) {
            scope.spawn(|| {
                while let Some(r) =
                    routers.get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
                {
                    let result = frr::start_and_wait(&r.ns, r.host, &r.daemons, FRR_UP_WITHIN);
                    if let Ok(mut all) = results.lock() {
                        all.push((r.index, result));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(index, _)| *index);
    results
}

/// A fleet being built.
pub(super) struct Fleet<'a> {
    pub lab: &'a FleetLab,
    pub dir: PathBuf,
    pub journal: Journal,
    pub agent: PathBuf,
    /// Checked before every step: Ctrl-C stops the build there.
    pub interrupt: Interrupt,
}

impl Fleet<'_> {
    fn ns(&self, node: &str) -> String {
        names::netns(&self.lab.name, node)
    }

    fn go_on(&self) -> Result<(), FleetError> {
        self.interrupt.check().map_err(|_| FleetError::Interrupted { next: super::UNDONE })
    }

    /// Namespaces, management, links, FRR, agents — in that order, so each
    /// agent starts on a node whose cables are already plugged in.
    pub fn build(&mut self, lines: &mut [NodeLine]) -> Result<Vec<Child>, FleetError> {
        self.go_on()?;
        self.neighbour_room()?;
        self.management_bridge()?;
        for (index, node) in self.lab.nodes.iter().enumerate() {
            self.go_on()?;
            self.namespace(index, node)
                .inspect_err(|e| lines[index].failed(Step::Netns, &e.to_string()))?;
            lines[index].done(Step::Netns);
        }
        self.links()?;
        for line in lines.iter_mut() {
            line.done(Step::Links);
        }
        self.frr(lines)?;
        agent::make_read_slots(&self.dir)?;
        let mut children = Vec::new();
        for (index, node) in self.lab.nodes.iter().enumerate() {
            self.go_on()?;
            let child = self
                .agent(node)
                .inspect_err(|e| lines[index].failed(Step::Agent, &e.to_string()))?;
            lines[index].done(Step::Agent);
            children.push(child);
        }
        Ok(children)
    }

    /// Room for every node's neighbours in the host's shared tables (see
    /// [`super::neighbour_tables`]), journaled before it is made.
    fn neighbour_room(&mut self) -> Result<(), FleetError> {
        let entries = neighbour_tables::entries(self.lab.nodes.len(), self.lab.links.len());
        for raise in neighbour_tables::plan(entries, sysctl::read) {
            let neighbour_tables::Raise { key, was, set } = raise;
            self.journal.record(&Entry::Sysctl { key: key.clone(), was, set })?;
            sysctl::write(&key, set)
                .map_err(|source| FleetError::Write { path: sysctl::path(&key), source })?;
        }
        Ok(())
    }

    fn management_bridge(&mut self) -> Result<(), FleetError> {
        let Some(first) = self.lab.nodes.first() else { return Ok(()) };
        let bridge = names::bridge(&self.lab.name);
        let controller =
            format!("{}/{}", first.management.controller, first.management.address.prefix_len());
        self.journal.record(&Entry::RootLink { name: bridge.clone() })?;
        ip::bridge_add(&bridge)?;
        ip::addr_add(None, &bridge, &controller)?;
        ip::link_up(None, &bridge)?;
        Ok(())
    }

    /// The node's namespace, `lo` up, forwarding on routers, and `mgmt0`
    /// on the management bridge with the node's management address.
    fn namespace(&mut self, index: usize, node: &NodeConfig) -> Result<(), FleetError> {
        let ns = self.ns(&node.hostname);
        self.journal.record(&Entry::Netns { name: ns.clone() })?;
        ip::netns_add(&ns)?;
        ip::link_up(Some(&ns), "lo")?;
        let forward = if node.role == Role::Host { "0" } else { "1" };
        ip::sysctl(&ns, &format!("net.ipv4.ip_forward={forward}"))?;
        let root_end = names::mgmt_root_end(&self.lab.name, index);
        self.journal.record(&Entry::RootLink { name: root_end.clone() })?;
        ip::veth_from_root(&root_end, &ns, names::MGMT_PORT)?;
        ip::set_master(&root_end, &names::bridge(&self.lab.name))?;
        ip::link_up(None, &root_end)?;
        ip::addr_add(Some(&ns), names::MGMT_PORT, &node.management.address.to_string())?;
        ip::link_up(Some(&ns), names::MGMT_PORT)?;
        Ok(())
    }

    /// One veth pair per cable, born inside the two namespaces (nothing to
    /// journal: deleting a namespace deletes its ends). Ports come up like
    /// a plugged-in cable; addresses are the agent's job.
    fn links(&mut self) -> Result<(), FleetError> {
        for (a, b) in &self.lab.links {
            self.go_on()?;
            let (a_ns, b_ns) = (self.ns(&a.node), self.ns(&b.node));
            ip::veth_between(&a_ns, &a.interface, &b_ns, &b.interface)?;
            ip::link_up(Some(&a_ns), &a.interface)?;
            ip::link_up(Some(&b_ns), &b.interface)?;
        }
        Ok(())
    }

    /// FRR on every router: pathspaces written (and journaled) one by one,
    /// then all instances started at once (each start takes a while).
    fn frr(&mut self, lines: &mut [NodeLine]) -> Result<(), FleetError> {
        let mut routers = Vec::new();
        for (index, node) in self.lab.nodes.iter().enumerate() {
            if !node.runs_frr() {
                lines[index].skip(Step::Frr);
                continue;
            }
            self.go_on()?;
            let ns = self.ns(&node.hostname);
            self.journal.record(&Entry::Tree { path: frr::config_dir(&ns) })?;
            self.journal.record(&Entry::Tree { path: frr::run_dir(&ns) })?;
            self.journal.record(&Entry::Frr { netns: ns.clone() })?;
            frr::write_pathspace(&ns, &fleet_config(node))
                .inspect_err(|e| lines[index].failed(Step::Frr, &e.to_string()))?;
            let mut daemons = vec!["zebra", "staticd"];
            daemons.extend(node.frr_daemons());
            routers.push(Router { index, ns, host: node.hostname.as_str(), daemons });
        }
        let results = start_frr(&routers);
        for (index, result) in results {
            match result {
                Ok(()) => lines[index].done(Step::Frr),
                Err(err) => {
                    lines[index].failed(Step::Frr, &err.to_string());
                    return Err(err.into());
                }
            }
        }
        Ok(())
    }

    /// Write the node's NodeConfig (as a board gets it, with the management
    /// port named) and start its agent.
    fn agent(&mut self, node: &NodeConfig) -> Result<Child, FleetError> {
        let ns = self.ns(&node.hostname);
        let files = agent::AgentFiles::new(&self.dir, &node.hostname);
        let text = fleet_config(node).to_toml().map_err(|e| FleetError::Write {
            path: files.config.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&files.config, &text)?;
        let child = agent::spawn(&self.agent, &ns, &node.hostname, node.runs_frr(), &files)?;
        self.journal.record(&Entry::Process {
            netns: ns,
            pid: child.id(),
            what: "node-agent".into(),
        })?;
        Ok(child)
    }
}

/// The NodeConfig a board would get, with the management port named: a
/// namespace has no "first Ethernet port" to find by type.
///
/// A board's lab link on an 802.1Q VLAN (`eth0.101`) is here a veth port
/// of the same name: this host's kernel has no 8021q, and a namespace's
/// management port is not the board's `eth0` either. The lab keeps its
/// names, so FRR, sFlow, captures and tests read the same as on boards.
pub fn fleet_config(node: &NodeConfig) -> NodeConfig {
    let mut config = node.clone();
    config.management.interface = Some(names::MGMT_PORT.to_string());
    for iface in &mut config.interfaces {
        iface.kind = InterfaceKind::Port;
    }
    config.with_version()
}

fn write_atomic(path: &Path, text: &str) -> Result<(), FleetError> {
    let write_err = |source| FleetError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(write_err)?;
    }
    lab_spec::replace_file::replace(
        path,
        text.as_bytes(),
        lab_spec::replace_file::Access::mode(0o644),
    )
    .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use lab_spec::fixtures;

    use super::*;

    #[test]
    fn the_written_config_names_mgmt0_and_reads_back_the_same() {
        let node = fixtures::bgp_router();
        let config = fleet_config(&node);
        assert_eq!(config.management.interface.as_deref(), Some("mgmt0"));
        assert_eq!(config.version, config.content_version());
        assert_ne!(
            config.version,
            fleet_config(&NodeConfig { hostname: "r2".into(), ..node }).version
        );
        let back = NodeConfig::from_toml(&config.to_toml().unwrap()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn a_board_vlan_is_a_port_of_the_same_name() {
        let mut node = fixtures::router("r1", "192.168.200.11/24", "10.0.0.1", 100);
        let uplink = fixtures::vlan("eth0", 101, Some("10.1.0.0/31"), "to r2:eth0.101");
        fixtures::bgp_link(&mut node, uplink, "r2", 200);
        assert!(matches!(node.interfaces[0].kind, InterfaceKind::Vlan { vlan_id: 101, .. }));
        let config = fleet_config(&node);
        assert_eq!(config.interfaces[0].name, "eth0.101");
        assert_eq!(config.interfaces[0].kind, InterfaceKind::Port);
        assert_eq!(config.interfaces[0].address, node.interfaces[0].address);
    }
}
