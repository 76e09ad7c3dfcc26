//! End-to-end tests. They drive the real `pi-lab` and `node-agent` binaries,
//! real FRR and the kernel's network namespaces, so most need root. Under
//! `CI=true` a missing prerequisite fails the test loudly; elsewhere it is
//! skipped with a message.

mod common;
mod durability;
mod flash;
mod fleet;
mod fleet_ops;
mod graph;
mod image;
mod lab_cli;
mod lab_tests;
mod netlab;
mod sflow_fleet;
mod underlay;
