//! `pi-lab inventory`: the lab as an Ansible inventory (YAML or INI, a group
//! per role, host variables from the compiled configs), as Prometheus
//! `file_sd` targets for every agent's `/metrics`, or as the topology
//! sFlow-RT takes (`PUT /topology/json`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lab_spec::{NodeConfig, Plan};
use serde_json::json;

use crate::fleet_client::FleetClient;
use crate::lab_file::{CompiledLab, LabFileError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Ansible inventory in YAML.
    Ansible,
    /// Ansible inventory in INI.
    AnsibleIni,
    /// Prometheus file_sd JSON targets.
    Prometheus,
    /// sFlow-RT's topology JSON: nodes with their sFlow agent address,
    /// links by port name.
    SflowRtTopology,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  pi-lab inventory lab.toml --format ansible > inventory.yml
  ansible -i inventory.yml leaf -m ping
  pi-lab inventory lab.toml --format prometheus --out /etc/prometheus/file_sd/pi-lab.json
  pi-lab inventory lab.toml --format sflow-rt-topology > topology.json
  curl -X PUT -H 'Content-Type: application/json' -d @topology.json http://COLLECTOR:8008/topology/json

With --out the file is replaced atomically, as Prometheus' file_sd wants.")]
pub struct InventoryArgs {
    #[command(flatten)]
    pub lab: crate::lab_arg::LabFileArg,
    #[arg(long, value_enum, default_value = "ansible")]
    pub format: Format,
    /// Write here (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    LabFile(#[from] LabFileError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub fn run(args: &InventoryArgs) -> Result<ExitCode, InventoryError> {
    let lab = CompiledLab::load(&args.lab.file)?;
    // No request is made: the client only says where each agent listens.
    let fleet = FleetClient::open(&lab, std::time::Duration::from_secs(5));
    let text = render(&fleet, &lab.plan, args.format);
    match &args.out {
        Some(path) => write_atomic(path, &text)
            .map_err(|source| InventoryError::Write { path: path.clone(), source })?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn render(fleet: &FleetClient, plan: &Plan, format: Format) -> String {
    match format {
        Format::Ansible => ansible_yaml(fleet),
        Format::AnsibleIni => ansible_ini(fleet),
        Format::Prometheus => prometheus(fleet),
        Format::SflowRtTopology => sflow_rt_topology(fleet, plan),
    }
}

/// Host variables of one node, in a fixed order.
fn host_vars(fleet: &FleetClient, config: &NodeConfig) -> Vec<(&'static str, serde_json::Value)> {
    let mut vars = vec![
        ("ansible_host", json!(config.management.address.addr().to_string())),
        ("pilab_role", json!(config.role.to_string())),
    ];
    if let Some(bgp) = &config.bgp {
        vars.push(("pilab_asn", json!(bgp.asn)));
    }
    if let Some(lo) = config.loopback {
        vars.push(("pilab_loopback", json!(lo.to_string())));
    }
    vars.push(("pilab_api", json!(format!("http://{}", fleet.api(config)))));
    if let Some(serial) = &config.identity.serial {
        vars.push(("pilab_serial", json!(serial)));
    }
    if let Some(mac) = &config.identity.mac {
        vars.push(("pilab_mac", json!(mac)));
    }
    let vnis: Vec<u32> = config.vxlan.iter().map(|s| s.vni).collect();
    if !vnis.is_empty() {
        vars.push(("pilab_vnis", json!(vnis)));
    }
    vars
}

/// Roles in a stable order, each with its nodes.
fn groups(fleet: &FleetClient) -> Vec<(String, Vec<&NodeConfig>)> {
    let mut groups: std::collections::BTreeMap<String, Vec<&NodeConfig>> = Default::default();
    for config in fleet.nodes.values() {
        groups.entry(config.role.to_string()).or_default().push(config);
    }
    groups.into_iter().collect()
}

fn ansible_yaml(fleet: &FleetClient) -> String {
    // JSON scalars are valid YAML scalars, so quoting is serde_json's job.
    let mut out = format!(
        "# Ansible inventory of lab {} (pi-lab inventory {})\nall:\n  vars:\n    pilab_lab: {}\n  children:\n",
        fleet.lab,
        fleet.path.display(),
        json!(fleet.lab)
    );
    for (role, nodes) in groups(fleet) {
        out.push_str(&format!("    {role}:\n      hosts:\n"));
        for config in nodes {
            out.push_str(&format!("        {}:\n", json!(config.hostname)));
            for (key, value) in host_vars(fleet, config) {
                out.push_str(&format!("          {key}: {value}\n"));
            }
        }
    }
    out
}

fn ansible_ini(fleet: &FleetClient) -> String {
    let mut out =
        format!("# Ansible inventory of lab {}\n[all:vars]\npilab_lab={}\n", fleet.lab, fleet.lab);
    for (role, nodes) in groups(fleet) {
        out.push_str(&format!("\n[{role}]\n"));
        for config in nodes {
            out.push_str(&config.hostname);
            for (key, value) in host_vars(fleet, config) {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Array(items) => {
                        items.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
                    }
                    other => other.to_string(),
                };
                out.push_str(&format!(" {key}={value}"));
            }
            out.push('\n');
        }
    }
    out
}

/// One target group per node, so each carries its own labels.
fn prometheus(fleet: &FleetClient) -> String {
    let groups: Vec<serde_json::Value> = fleet
        .nodes
        .values()
        .map(|c| {
            json!({
                "targets": [fleet.api(c).to_string()],
                "labels": {
                    "lab": fleet.lab,
                    "node": c.hostname,
                    "role": c.role.to_string(),
                    "__metrics_path__": "/metrics",
                },
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&groups).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// Every node with the agent address its datagrams carry, and every lab
/// link by node and port name. Ports carry no ifIndex: sFlow-RT learns it
/// from the port name structures the agents send, as it does from hsflowd.
fn sflow_rt_topology(fleet: &FleetClient, plan: &Plan) -> String {
    let nodes: serde_json::Map<String, serde_json::Value> = fleet
        .nodes
        .values()
        .map(|c| (c.hostname.clone(), json!({ "agent": c.sflow.agent_address.to_string() })))
        .collect();
    let links: serde_json::Map<String, serde_json::Value> = plan
        .links
        .iter()
        .map(|l| {
            let name = format!("{}:{}-{}:{}", l.a.node, l.a.interface, l.b.node, l.b.interface);
            let ends = json!({
                "node1": l.a.node, "port1": l.a.interface,
                "node2": l.b.node, "port2": l.b.interface,
            });
            (name, ends)
        })
        .collect();
    let topology = json!({ "nodes": nodes, "links": links });
    let mut text = serde_json::to_string_pretty(&topology).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    lab_spec::replace_file::replace(
        path,
        text.as_bytes(),
        lab_spec::replace_file::Access::mode(0o644),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::fleet_client::tests::two_node_client;
    use crate::lab_file::CompiledLab;

    fn example(name: &str) -> CompiledLab {
        let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        CompiledLab::load(Path::new(&path)).expect("example loads")
    }

    /// For the formats that read no links.
    fn no_links() -> Plan {
        let mut plan = example("two-router.toml").plan;
        plan.links.clear();
        plan
    }

    #[test]
    fn sflow_rt_topology_has_every_agent_and_every_link_by_port() {
        let lab = example("fabric.toml");
        let fleet = FleetClient::with_runs_on(
            &lab,
            crate::lab_host::RunsOn::Boards,
            std::time::Duration::from_secs(1),
        );
        let text = render(&fleet, &lab.plan, Format::SflowRtTopology);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let nodes = doc["nodes"].as_object().unwrap();
        assert_eq!(nodes.len(), lab.lab.nodes.len());
        // Routers send from their loopback, hosts from their management address.
        let leaf1 = lab.configs["leaf1"].loopback.unwrap().to_string();
        assert_eq!(doc["nodes"]["leaf1"], json!({ "agent": leaf1 }));
        let h1 = lab.configs["h1"].management.address.addr().to_string();
        assert_eq!(doc["nodes"]["h1"]["agent"], h1);
        let links = doc["links"].as_object().unwrap();
        assert_eq!(links.len(), lab.plan.links.len());
        assert_eq!(
            links["spine1:eth1-leaf1:eth1"],
            json!({ "node1": "spine1", "port1": "eth1", "node2": "leaf1", "port2": "eth1" })
        );
        // Every end names a node of the topology.
        for l in links.values() {
            for end in ["node1", "node2"] {
                assert!(nodes.contains_key(l[end].as_str().unwrap()), "{l}");
            }
        }
    }

    #[test]
    fn prometheus_targets_carry_lab_node_and_role() {
        let fleet = two_node_client();
        let text = render(&fleet, &no_links(), Format::Prometheus);
        let groups: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(groups.len(), 2);
        let leaf = groups.iter().find(|g| g["labels"]["node"] == "leaf1").unwrap();
        assert_eq!(leaf["targets"], json!(["192.168.200.11:9180"]));
        assert_eq!(leaf["labels"]["lab"], "t5");
        assert_eq!(leaf["labels"]["role"], "leaf");
    }

    #[test]
    fn ansible_yaml_parses_and_groups_by_role() {
        let fleet = two_node_client();
        let text = render(&fleet, &no_links(), Format::Ansible);
        // An independent YAML parser (PyYAML) reads it back, when present.
        let parsed = std::process::Command::new("python3")
            .args(["-c", "import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin)))"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().map(|mut s| s.write_all(text.as_bytes()));
                child.wait_with_output()
            });
        match parsed {
            Ok(out) if out.status.success() => {
                let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let leaf1 = &doc["all"]["children"]["leaf"]["hosts"]["leaf1"];
                assert_eq!(leaf1["ansible_host"], "192.168.200.11", "{text}");
                assert_eq!(leaf1["pilab_asn"], 65001);
                assert_eq!(leaf1["pilab_vnis"], json!([10010]));
                assert_eq!(
                    doc["all"]["children"]["spine"]["hosts"]["spine1"]["pilab_role"],
                    "spine"
                );
                assert_eq!(doc["all"]["vars"]["pilab_lab"], "t5");
            }
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("python3 with PyYAML missing; run scripts/setup.sh")
            }
            _ => eprintln!("SKIP YAML round trip: python3 with PyYAML missing"),
        }
        assert!(text.contains("    leaf:\n      hosts:\n        \"leaf1\":\n"), "{text}");
    }

    #[test]
    fn ansible_ini_has_a_section_per_role() {
        let text = render(&two_node_client(), &no_links(), Format::AnsibleIni);
        assert!(
            text.contains(
                "[leaf]\nleaf1 ansible_host=192.168.200.11 pilab_role=leaf pilab_asn=65001"
            ),
            "{text}"
        );
        assert!(text.contains("[spine]\nspine1 ansible_host=192.168.200.12"), "{text}");
    }

    #[test]
    fn out_file_is_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("targets.json");
        write_atomic(&path, "[]\n").unwrap();
        write_atomic(&path, "[1]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1]\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
