//! End-to-end tests. They drive the real `pi-lab` and `node-agent` binaries,
//! real FRR and the kernel's network namespaces, so most need root. Under
//! `CI=true` a missing prerequisite fails the test loudly; elsewhere it is
//! skipped with a message.

mod browser;
mod common;
mod dashboard;
mod durability;
mod emulated;
mod emulator;
mod faults;
mod flash;
mod fleet;
mod fleet_ops;
mod graph;
mod hand_changes;
mod image;
mod in_the_lab;
mod lab_cli;
mod lab_tests;
mod netlab;
/// pi-lab's own helpers for tests of its HTTP server (promtool, the
/// dashboard's address).
#[path = "../../tools/pi-lab/tests/common/mod.rs"]
mod pi_lab_tests;
mod scale;
mod sflow_fleet;
mod underlay;
mod unnumbered;
