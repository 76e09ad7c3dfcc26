//! `AgentHandle`: the API the health server uses to apply configs, run
//! in-process against a namespace (root only).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use node_agent::agent::{ApplyError, Rollback};

#[test]
fn handle_applies_refuses_and_rolls_back() {
    if !prerequisites("handle_applies", &["ip", "bridge"]) {
        return;
    }
    let ns = leaf_netns("handle");
    let (handle, thread) = start_in(&ns, None);

    let report = handle.apply(leaf()).unwrap();
    assert!(report.ok() && !report.applied.is_empty(), "{report:?}");
    assert!(ns.has_link("vxlan10010"));
    let saved = std::fs::read_to_string(ns.dir.join("state/last-good.toml")).unwrap();
    assert_eq!(lab_spec::NodeConfig::from_toml(&saved).unwrap(), leaf());

    let status = handle.status().read().unwrap().clone();
    assert_eq!(status.config, Some(leaf()));
    assert!(status.reconcile.ok && status.reconcile.passes >= 1);
    let vni = &status.vxlan[0];
    assert_eq!((vni.vni, vni.ok, vni.flooding.as_str()), (10010, true, "static"));
    assert_eq!(vni.remote_vteps, vni.expected_vteps);
    assert_eq!(vni.remote_vteps.len(), 2);

    // Invalid: refused before anything is touched.
    let mut bad = leaf();
    bad.hostname = "no spaces allowed".into();
    let err = handle.apply(bad).unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("hostname"), "{err}");

    // Fails to apply (a missing port): previous config back in place.
    let mut failing = leaf();
    failing.vxlan[1].device = "vxlan10030".into();
    failing.interfaces[1].name = "eth9".into();
    failing.vxlan[0].access_ports = vec!["eth9".into()];
    let err = handle.apply(failing).unwrap_err();
    assert!(
        matches!(&err, ApplyError::Failed { rollback: Rollback::Done(to), .. } if *to == leaf().content_version()),
        "{err}"
    );
    assert!(err.to_string().contains("eth9"), "{err}");
    assert!(!ns.has_link("vxlan10030") && ns.has_link("vxlan10020"));
    assert_eq!(ns.ip_json(&["link", "show", "eth3"])[0]["master"], "br10010");
    assert_eq!(handle.status().read().unwrap().config, Some(leaf()));

    handle.shutdown();
    thread.join().unwrap();
}
