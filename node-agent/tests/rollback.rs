//! A config that FRR rejects, pushed through the real API to the real run
//! loop (in a namespace, with FRR): the answer says what became of the
//! previous config — there was none, or going back to it failed too
//! (issue 14, items 2 and 3; root, FRR installed).
#![allow(clippy::unwrap_used)]

mod api;
mod common;

use std::path::PathBuf;
use std::sync::Arc;

use api::{Answer, put};
use common::*;
use lab_spec::node_config::Auth;
use lab_spec::{ConfigAnswer, NodeConfig};
use node_agent::board::BoardReader;
use node_agent::frr::Frr;
use node_agent::health::agent_backend::AgentBackend;
use node_agent::health::{Backend, Server, ServerConfig};

const TOKEN: &str = "t3a";

fn prerequisites_met(test: &str) -> bool {
    prerequisites(
        test,
        &["ip", "bridge", "vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/frr-reload.py"],
    )
}

/// The agent in `ns` with FRR in pathspace = namespace name, its API on
/// loopback in this namespace; a fresh node accepts the lab token.
fn agent_with_api(
    ns: &Netns,
) -> (node_agent::agent::AgentHandle, std::thread::JoinHandle<()>, Server) {
    let frr = Frr::new(Some(ns.name.clone()), None, "vtysh".into());
    let (handle, thread) = start_in(ns, Some(frr));
    let bootstrap = ns.dir.join("bootstrap.sha256");
    std::fs::write(&bootstrap, Auth::from_token(TOKEN).token_sha256).unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.bootstrap_files = vec![PathBuf::from(&bootstrap)];
    let backend = AgentBackend::new(handle.clone(), BoardReader::system_root(None));
    let server = Server::start(config, Arc::new(backend) as Arc<dyn Backend>).unwrap();
    (handle, thread, server)
}

fn push(server: &Server, config: &NodeConfig) -> (Answer, ConfigAnswer) {
    let answer =
        put(server.local_addr(), Some(TOKEN), "application/toml", &config.to_toml().unwrap());
    let typed = ConfigAnswer::from_http(answer.status, &answer.body)
        .unwrap_or_else(|e| panic!("{e}: {}", answer.body));
    (answer, typed)
}

/// Well-formed, but FRR refuses it: "Can not configure the local system
/// as neighbor" (the neighbour is eth1's own address).
fn rejected_by_frr(mut config: NodeConfig) -> NodeConfig {
    let bgp = config.bgp.as_mut().unwrap();
    bgp.neighbors[0].address = "10.1.0.1".parse().unwrap();
    config
}

#[test]
fn a_rejected_first_config_has_no_previous_config_to_go_back_to() {
    if !prerequisites_met("a_rejected_first_config") {
        return;
    }
    let ns = leaf_netns("rb-first");
    let _frr = FrrInstance::start(&ns);
    let (handle, thread, server) = agent_with_api(&ns);

    let (answer, typed) = push(&server, &rejected_by_frr(leaf()));
    assert_eq!(answer.status, 409, "{}", answer.body);
    let ConfigAnswer::NoPreviousConfig { error } = typed else {
        panic!("not 'no previous config': {}", answer.body)
    };
    assert!(error.contains("frr"), "{error}");
    // The node keeps trying the only config it has.
    assert!(handle.status().read().unwrap().config.is_some());

    handle.shutdown();
    thread.join().unwrap();
}

#[test]
fn a_rejected_config_whose_last_good_cannot_be_restored_is_a_failed_rollback() {
    if !prerequisites_met("a_failed_rollback") {
        return;
    }
    let ns = leaf_netns("rb-fail");
    let _frr = FrrInstance::start(&ns);
    let (handle, thread, server) = agent_with_api(&ns);

    let good = leaf().with_version();
    let (answer, typed) = push(&server, &good);
    assert!(
        matches!(&typed, ConfigAnswer::Applied { version, .. } if *version == good.version),
        "{}",
        answer.body
    );
    assert!(ns.dir.join("state/last-good.toml").exists());

    // The last good config needs eth4; it is gone, so it cannot come back.
    ns.ip(&["link", "del", "eth4"]);
    let mut next = leaf();
    next.vxlan.retain(|s| !s.access_ports.iter().any(|p| p == "eth4"));
    next.interfaces.retain(|i| i.name != "eth4");
    let (answer, typed) = push(&server, &rejected_by_frr(next));
    assert_eq!(answer.status, 500, "{}", answer.body);
    let ConfigAnswer::RollbackFailed { error, rolled_back_to, rollback_error } = typed else {
        panic!("not a failed rollback: {}", answer.body)
    };
    assert!(error.contains("frr"), "{error}");
    assert_eq!(rolled_back_to, good.version);
    assert!(rollback_error.contains("eth4"), "{rollback_error}");

    handle.shutdown();
    thread.join().unwrap();
}
