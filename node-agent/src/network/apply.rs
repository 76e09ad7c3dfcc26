//! Carry out a plan over netlink, one change at a time. A failing change is
//! recorded and the next one is tried: a missing port must not keep the
//! VXLAN devices of other segments from coming up.

use std::collections::BTreeMap;

use netlink_packet_route::{RouteNetlinkMessage, link::LinkAttribute};
use serde::Serialize;

use super::messages::{self, Request};
use super::{Change, Create, Observed};
use crate::netlink::{Netlink, NetlinkError};

/// A change the kernel refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub object: String,
    pub change: String,
    pub error: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub applied: Vec<String>,
    pub failed: Vec<Failure>,
    /// Conflicts the plan left alone (see [`super::Plan::problems`]).
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
enum ChangeError {
    #[error("no interface named {0:?}")]
    NoSuchLink(String),
    #[error("cannot write {path}: {source}")]
    Sysctl { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Apply `changes` in order; indexes come from `observed` and are looked up
/// again for devices created during the pass.
pub fn apply(nl: &mut Netlink, observed: &Observed, changes: &[Change]) -> Report {
    let mut index: BTreeMap<String, u32> =
        observed.links.values().map(|l| (l.name.clone(), l.index)).collect();
    let mut report = Report::default();
    for change in changes {
        match apply_one(nl, &mut index, change) {
            Ok(()) => {
                tracing::info!(change = %change, "applied");
                report.applied.push(change.to_string());
            }
            Err(e) => {
                tracing::warn!(change = %change, error = %e, "failed");
                report.failed.push(Failure {
                    object: change.object(),
                    change: change.to_string(),
                    error: e.to_string(),
                });
            }
        }
    }
    report
}

fn apply_one(
    nl: &mut Netlink,
    index: &mut BTreeMap<String, u32>,
    change: &Change,
) -> Result<(), ChangeError> {
    match change {
        Change::DeleteLink { name, .. } => {
            let i = lookup(nl, index, name)?;
            send(nl, messages::del_link(i))?;
            index.remove(name);
        }
        Change::CreateLink { name, create, mtu } => {
            let req = match create {
                Create::Bridge => messages::new_bridge(name, *mtu),
                Create::Vxlan(p) => messages::new_vxlan(name, *mtu, p),
                Create::Vlan { parent, vlan_id } => {
                    messages::new_vlan(name, *mtu, lookup(nl, index, parent)?, *vlan_id)
                }
            };
            send(nl, req)?;
            index.remove(name);
            let i = lookup(nl, index, name)?;
            send(nl, messages::set_owner(i))?;
        }
        Change::SetLink { name, up, mtu, master } => {
            let i = lookup(nl, index, name)?;
            let master = master.as_ref().map(|m| lookup(nl, index, m)).transpose()?;
            send(nl, messages::set_link(i, *up, *mtu, master))?;
        }
        Change::ReleaseLink { name } => {
            let i = lookup(nl, index, name)?;
            send(nl, messages::set_link(i, false, None, Some(0)))?; // IFLA_MASTER 0
        }
        Change::AddAddress { interface, address } => {
            let i = lookup(nl, index, interface)?;
            send(nl, messages::add_address(i, *address))?;
        }
        Change::RemoveAddress { interface, address } => {
            let i = lookup(nl, index, interface)?;
            send(nl, messages::del_address(i, *address))?;
        }
        Change::AddFlood { device, vtep } => {
            let i = lookup(nl, index, device)?;
            send(nl, messages::add_flood(i, *vtep))?;
        }
        Change::RemoveFlood { device, vtep } => {
            let i = lookup(nl, index, device)?;
            send(nl, messages::del_flood(i, *vtep))?;
        }
        Change::AddRoute { route } => send(nl, messages::add_route(route))?,
        Change::RemoveRoute { route } => send(nl, messages::del_route(route))?,
        Change::EnableIpv6 { interface } => {
            let path = super::ipv6::disable_path(interface);
            std::fs::write(&path, b"0").map_err(|source| ChangeError::Sysctl { path, source })?;
        }
        Change::AddAddress6 { interface, address } => {
            let i = lookup(nl, index, interface)?;
            send(nl, messages::add_address6(i, *address))?;
        }
        Change::RemoveAddress6 { interface, address } => {
            let i = lookup(nl, index, interface)?;
            send(nl, messages::del_address6(i, *address))?;
        }
    }
    Ok(())
}

fn send(nl: &mut Netlink, (msg, flags): Request) -> Result<(), NetlinkError> {
    nl.change(msg, flags)
}

/// Interface index by name, asking the kernel when the pass created it.
fn lookup(
    nl: &mut Netlink,
    index: &mut BTreeMap<String, u32>,
    name: &str,
) -> Result<u32, ChangeError> {
    if let Some(i) = index.get(name) {
        return Ok(*i);
    }
    let found = match nl.get(messages::get_link(name)) {
        Ok(replies) => replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        }),
        Err(NetlinkError::Kernel { errno: 19, .. }) => None, // ENODEV
        Err(e) => return Err(e.into()),
    };
    let link = found
        .filter(|l| l.attributes.iter().any(|a| matches!(a, LinkAttribute::IfName(n) if n == name)))
        .ok_or_else(|| ChangeError::NoSuchLink(name.into()))?;
    index.insert(name.into(), link.header.index);
    Ok(link.header.index)
}
