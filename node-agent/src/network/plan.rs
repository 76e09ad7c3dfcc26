//! The difference between the desired and the observed network, as an
//! ordered list of changes. Pure: no kernel access, fully unit-tested.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Change, Create, Desired, DesiredLink, LinkState, Management, Observed};

/// What a pass would do, and what it cannot do on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Conflicts the agent leaves to a person, e.g. a device of the right
    /// name that node-agent did not create.
    pub problems: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Order: delete stale devices, create missing ones, set link properties,
/// then addresses, flood entries and routes (which need the links).
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut p = Plan::default();
    delete_stale_links(desired, observed, &mut p);
    let mut set = Vec::new();
    for link in &desired.links {
        plan_link(link, observed, &mut p, &mut set);
    }
    p.changes.extend(set);
    plan_addresses(desired, observed, &mut p);
    plan_flood(desired, observed, &mut p);
    plan_routes(desired, observed, &mut p);
    p
}

fn delete_stale_links(desired: &Desired, observed: &Observed, p: &mut Plan) {
    let wanted: BTreeSet<&str> = desired.links.iter().map(|l| l.name.as_str()).collect();
    for link in observed.links.values() {
        if link.owned() && !wanted.contains(link.name.as_str()) {
            p.changes.push(Change::DeleteLink {
                name: link.name.clone(),
                reason: "created by node-agent, no longer in the config".into(),
            });
        }
    }
}

fn plan_link(link: &DesiredLink, observed: &Observed, p: &mut Plan, set: &mut Vec<Change>) {
    let seen = observed.links.get(&link.name);
    let recreate = match (&link.create, seen) {
        (Some(create), Some(seen)) => match mismatch(create, seen) {
            None => false,
            Some(why) if seen.owned() => {
                p.changes.push(Change::DeleteLink { name: link.name.clone(), reason: why });
                true
            }
            Some(why) => {
                p.problems.push(format!(
                    "{}: {why}, and node-agent did not create it; delete or rename it",
                    link.name
                ));
                return;
            }
        },
        _ => false,
    };
    if let (Some(create), true) = (&link.create, seen.is_none() || recreate) {
        p.changes.push(Change::CreateLink {
            name: link.name.clone(),
            create: create.clone(),
            mtu: link.mtu,
        });
        set.push(Change::SetLink {
            name: link.name.clone(),
            up: true,
            mtu: None,
            master: link.master.clone(),
        });
        return;
    }
    let Some(seen) = seen else {
        // A port that should exist but does not: applying reports it.
        set.push(Change::SetLink {
            name: link.name.clone(),
            up: true,
            mtu: link.mtu,
            master: link.master.clone(),
        });
        return;
    };
    let mtu = link.mtu.filter(|m| *m != seen.mtu);
    let master = link.master.clone().filter(|m| seen.master.as_ref() != Some(m));
    // A link held down by hand stays down; its other properties still count.
    let raise = !seen.up && !seen.held_down();
    if raise || mtu.is_some() || master.is_some() {
        set.push(Change::SetLink { name: link.name.clone(), up: raise, mtu, master });
    }
    // No longer an access port: leave the agent's bridge (a foreign
    // bridge keeps its ports).
    let in_our_bridge =
        seen.master.as_ref().and_then(|m| observed.links.get(m)).is_some_and(LinkState::owned);
    if link.master.is_none() && in_our_bridge {
        set.push(Change::ReleaseLink { name: link.name.clone() });
    }
}

/// Why an existing device is not what `create` would make.
fn mismatch(create: &Create, seen: &LinkState) -> Option<String> {
    let kind = match create {
        Create::Bridge => "bridge",
        Create::Vlan { .. } => "vlan",
        Create::Vxlan(_) => "vxlan",
    };
    if seen.kind != kind {
        let found = if seen.kind.is_empty() { "a plain device" } else { seen.kind.as_str() };
        return Some(format!("is {found}, should be {kind}"));
    }
    match create {
        Create::Vxlan(want) if seen.vxlan.as_ref() != Some(want) => {
            Some(format!("VXLAN parameters differ (have {:?}, want {want:?})", seen.vxlan))
        }
        Create::Vlan { parent, vlan_id }
            if seen.vlan.as_ref() != Some(&(parent.clone(), *vlan_id)) =>
        {
            Some(format!("VLAN differs (have {:?}, want {parent}.{vlan_id})", seen.vlan))
        }
        _ => None,
    }
}

fn plan_addresses(desired: &Desired, observed: &Observed, p: &mut Plan) {
    let none = BTreeSet::new();
    // Present anywhere (the virtual fleet puts it on a veth): nothing to do.
    let present = |m: &&Management| observed.addresses.values().any(|a| a.contains(&m.address));
    let management = desired.management.as_ref().filter(|m| !present(m)).and_then(|m| {
        let iface = management_interface(m, desired, observed);
        if iface.is_none() {
            p.problems.push(format!(
                "management: no wired Ethernet port for {}; set management.interface",
                m.address
            ));
        }
        Some((iface?, m.address))
    });
    if let Some((iface, address)) = &management
        && !observed.addresses.get(iface).is_some_and(|a| a.contains(address))
    {
        p.changes.push(Change::AddAddress { interface: iface.clone(), address: *address });
    }
    for (iface, want) in &desired.addresses {
        let have = observed.addresses.get(iface).unwrap_or(&none);
        for address in want.addresses.difference(have) {
            p.changes.push(Change::AddAddress { interface: iface.clone(), address: *address });
        }
        if !want.exclusive {
            continue;
        }
        for address in have.difference(&want.addresses) {
            let loopback_net = iface == "lo" && address.addr().is_loopback();
            let is_management = desired.management.as_ref().is_some_and(|m| m.address == *address);
            if !loopback_net && !is_management {
                p.changes
                    .push(Change::RemoveAddress { interface: iface.clone(), address: *address });
            }
        }
    }
}

/// The named management port, else the wired Ethernet port with the lowest
/// index (the built-in port before USB adapters) that the lab does not use.
fn management_interface(m: &Management, desired: &Desired, observed: &Observed) -> Option<String> {
    if m.interface.is_some() {
        return m.interface.clone();
    }
    let named: BTreeSet<&str> = desired.links.iter().map(|l| l.name.as_str()).collect();
    observed
        .links
        .values()
        .filter(|l| l.wired && !named.contains(l.name.as_str()))
        .min_by_key(|l| l.index)
        .map(|l| l.name.clone())
}

fn plan_flood(desired: &Desired, observed: &Observed, p: &mut Plan) {
    let none = BTreeSet::new();
    for (device, want) in &desired.flood {
        let have = observed.flood.get(device).unwrap_or(&none);
        for vtep in have.difference(want) {
            p.changes.push(Change::RemoveFlood { device: device.clone(), vtep: *vtep });
        }
        for vtep in want.difference(have) {
            p.changes.push(Change::AddFlood { device: device.clone(), vtep: *vtep });
        }
    }
}

fn plan_routes(desired: &Desired, observed: &Observed, p: &mut Plan) {
    for route in observed.routes.difference(&desired.routes) {
        p.changes.push(Change::RemoveRoute { route: *route });
    }
    for route in desired.routes.difference(&observed.routes) {
        p.changes.push(Change::AddRoute { route: *route });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::Ipv4Addr;

    use super::*;
    use crate::network::{OWNER_ALIAS, StaticRoute, VxlanParams, WantedAddresses};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn vx(vni: u32) -> VxlanParams {
        VxlanParams { vni, local: ip("10.0.0.3"), port: 4789, learning: false }
    }

    /// A leaf with one port `eth1` (10.1.0.1/31), an access port `eth3`,
    /// a static segment 10010 flooding to 10.0.0.6 and a route.
    fn desired() -> Desired {
        Desired {
            links: vec![
                DesiredLink { name: "eth1".into(), create: None, mtu: None, master: None },
                DesiredLink {
                    name: "eth3".into(),
                    create: None,
                    mtu: None,
                    master: Some("br10010".into()),
                },
                DesiredLink {
                    name: "br10010".into(),
                    create: Some(Create::Bridge),
                    mtu: None,
                    master: None,
                },
                DesiredLink {
                    name: "vxlan10010".into(),
                    create: Some(Create::Vxlan(vx(10010))),
                    mtu: Some(1450),
                    master: Some("br10010".into()),
                },
            ],
            addresses: BTreeMap::from([
                (
                    "eth1".into(),
                    WantedAddresses {
                        addresses: BTreeSet::from(["10.1.0.1/31".parse().unwrap()]),
                        exclusive: true,
                    },
                ),
                (
                    "lo".into(),
                    WantedAddresses {
                        addresses: BTreeSet::from(["10.0.0.3/32".parse().unwrap()]),
                        exclusive: true,
                    },
                ),
            ]),
            flood: BTreeMap::from([("vxlan10010".into(), BTreeSet::from([ip("10.0.0.6")]))]),
            routes: BTreeSet::from([StaticRoute {
                destination: "10.20.0.0/16".parse().unwrap(),
                gateway: ip("10.1.0.0"),
            }]),
            management: None,
        }
    }

    fn link(name: &str, kind: &str, master: Option<&str>) -> LinkState {
        LinkState {
            index: 0,
            name: name.into(),
            kind: kind.into(),
            up: true,
            mtu: 1500,
            master: master.map(Into::into),
            alias: None,
            vxlan: None,
            vlan: None,
            wired: false,
        }
    }

    /// The kernel after a successful pass over `desired()`.
    fn converged() -> Observed {
        let mut br = link("br10010", "bridge", None);
        br.alias = Some(OWNER_ALIAS.into());
        let mut vxlan = link("vxlan10010", "vxlan", Some("br10010"));
        vxlan.alias = Some(OWNER_ALIAS.into());
        vxlan.mtu = 1450;
        vxlan.vxlan = Some(vx(10010));
        let links = [
            link("lo", "", None),
            link("eth1", "veth", None),
            link("eth3", "veth", Some("br10010")),
            br,
            vxlan,
        ];
        Observed {
            links: links.into_iter().map(|l| (l.name.clone(), l)).collect(),
            addresses: BTreeMap::from([
                ("eth1".into(), BTreeSet::from(["10.1.0.1/31".parse().unwrap()])),
                (
                    "lo".into(),
                    BTreeSet::from([
                        "127.0.0.1/8".parse().unwrap(),
                        "10.0.0.3/32".parse().unwrap(),
                    ]),
                ),
            ]),
            flood: BTreeMap::from([("vxlan10010".into(), BTreeSet::from([ip("10.0.0.6")]))]),
            routes: desired().routes,
        }
    }

    #[test]
    fn converged_state_needs_nothing() {
        assert_eq!(plan(&desired(), &converged()), Plan::default());
    }

    #[test]
    fn empty_kernel_gets_everything_in_order() {
        let mut observed = Observed::default();
        for name in ["lo", "eth1", "eth3"] {
            observed.links.insert(name.into(), link(name, "", None));
        }
        let text: Vec<String> =
            plan(&desired(), &observed).changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "ip link add br10010 type bridge",
                "ip link add vxlan10010 mtu 1450 type vxlan id 10010 local 10.0.0.3 dstport 4789 nolearning",
                "ip link set eth3 master br10010",
                "ip link set br10010 up",
                "ip link set vxlan10010 master br10010 up",
                "ip addr add 10.1.0.1/31 dev eth1",
                "ip addr add 10.0.0.3/32 dev lo",
                "bridge fdb append 00:00:00:00:00:00 dev vxlan10010 dst 10.0.0.6",
                "ip route add 10.20.0.0/16 via 10.1.0.0 proto 200",
            ]
        );
    }

    #[test]
    fn deleted_vxlan_device_is_recreated_with_its_flood_list() {
        let mut observed = converged();
        observed.links.remove("vxlan10010");
        observed.flood.remove("vxlan10010");
        let changes = plan(&desired(), &observed).changes;
        assert!(matches!(&changes[0], Change::CreateLink { name, .. } if name == "vxlan10010"));
        assert!(
            changes
                .contains(&Change::AddFlood { device: "vxlan10010".into(), vtep: ip("10.0.0.6") })
        );
        assert_eq!(changes.len(), 3, "{changes:?}");
    }

    #[test]
    fn stale_flood_entries_and_addresses_are_removed_but_not_127() {
        let mut observed = converged();
        observed.flood.get_mut("vxlan10010").unwrap().insert(ip("10.0.0.9"));
        observed.addresses.get_mut("eth1").unwrap().insert("10.9.9.9/24".parse().unwrap());
        let changes = plan(&desired(), &observed).changes;
        assert_eq!(
            changes,
            [
                Change::RemoveAddress {
                    interface: "eth1".into(),
                    address: "10.9.9.9/24".parse().unwrap()
                },
                Change::RemoveFlood { device: "vxlan10010".into(), vtep: ip("10.0.0.9") },
            ]
        );
    }

    #[test]
    fn foreign_devices_are_left_alone_and_owned_ones_removed() {
        let mut observed = converged();
        observed.links.insert("br-other".into(), link("br-other", "bridge", None));
        let mut old = link("vxlan99", "vxlan", None);
        old.alias = Some(OWNER_ALIAS.into());
        observed.links.insert("vxlan99".into(), old);
        let p = plan(&desired(), &observed);
        assert_eq!(p.changes.len(), 1);
        assert!(matches!(&p.changes[0], Change::DeleteLink { name, .. } if name == "vxlan99"));
    }

    #[test]
    fn wrong_vni_recreates_owned_device_but_not_a_foreign_one() {
        let mut observed = converged();
        observed.links.get_mut("vxlan10010").unwrap().vxlan = Some(vx(42));
        let changes = plan(&desired(), &observed).changes;
        assert!(matches!(&changes[0], Change::DeleteLink { name, .. } if name == "vxlan10010"));
        assert!(matches!(&changes[1], Change::CreateLink { name, .. } if name == "vxlan10010"));

        observed.links.get_mut("vxlan10010").unwrap().alias = None;
        let p = plan(&desired(), &observed);
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert!(p.problems[0].contains("did not create it"), "{:?}", p.problems);
    }

    #[test]
    fn link_down_wrong_mtu_and_master_are_fixed_in_one_change() {
        let mut observed = converged();
        let vx = observed.links.get_mut("vxlan10010").unwrap();
        vx.up = false;
        vx.mtu = 1500;
        vx.master = None;
        assert_eq!(
            plan(&desired(), &observed).changes,
            [Change::SetLink {
                name: "vxlan10010".into(),
                up: true,
                mtu: Some(1450),
                master: Some("br10010".into())
            }]
        );
    }

    #[test]
    fn a_link_held_down_by_hand_stays_down_and_stays_ours() {
        let mut observed = converged();
        let eth1 = observed.links.get_mut("eth1").unwrap();
        eth1.up = false;
        eth1.alias = Some(crate::network::alias::HELD_DOWN.into());
        let vx = observed.links.get_mut("vxlan10010").unwrap();
        vx.up = false;
        vx.mtu = 1500;
        vx.alias = Some(crate::network::alias::OWNER_HELD_DOWN.into());
        assert_eq!(
            plan(&desired(), &observed).changes,
            [Change::SetLink {
                name: "vxlan10010".into(),
                up: false,
                mtu: Some(1450),
                master: None
            }],
            "the MTU is fixed, the admin state left alone, the device not re-created"
        );
        // Without the mark, a link that is down is brought up again.
        observed.links.get_mut("eth1").unwrap().alias = None;
        assert!(plan(&desired(), &observed).changes.contains(&Change::SetLink {
            name: "eth1".into(),
            up: true,
            mtu: None,
            master: None
        }));
    }

    #[test]
    fn management_address_goes_on_the_first_wired_port_and_stays_additive() {
        let mut d = desired();
        d.management =
            Some(Management { interface: None, address: "192.168.200.13/24".parse().unwrap() });
        let mut observed = converged();
        for (name, index, wired) in [("wlan0", 2, false), ("usb1", 9, true), ("usb0", 3, true)] {
            let mut l = link(name, "", None);
            (l.index, l.wired) = (index, wired);
            observed.links.insert(name.into(), l);
        }
        observed
            .addresses
            .insert("usb0".into(), BTreeSet::from(["169.254.1.1/16".parse().unwrap()]));
        assert_eq!(
            plan(&d, &observed).changes,
            [Change::AddAddress {
                interface: "usb0".into(),
                address: "192.168.200.13/24".parse().unwrap()
            }]
        );
        observed.links.retain(|_, l| !l.wired);
        assert!(plan(&d, &observed).problems[0].contains("no wired Ethernet port"));

        // Already present on some other port (a veth in the virtual fleet).
        observed
            .addresses
            .insert("veth-mgmt".into(), BTreeSet::from(["192.168.200.13/24".parse().unwrap()]));
        assert_eq!(plan(&d, &observed), Plan::default());
        observed.addresses.remove("veth-mgmt");

        // On a port the config names, the management address is kept.
        d.management = Some(Management {
            interface: Some("eth1".into()),
            address: "192.168.200.13/24".parse().unwrap(),
        });
        observed.addresses.get_mut("eth1").unwrap().insert("192.168.200.13/24".parse().unwrap());
        assert_eq!(plan(&d, &observed), Plan::default());
    }

    #[test]
    fn a_port_that_is_no_longer_an_access_port_leaves_our_bridge_only() {
        let mut d = desired();
        d.links[1].master = None;
        let mut observed = converged();
        assert_eq!(plan(&d, &observed).changes, [Change::ReleaseLink { name: "eth3".into() }]);
        observed.links.get_mut("br10010").unwrap().alias = None;
        assert!(plan(&d, &observed).changes.is_empty());
    }

    #[test]
    fn stale_agent_routes_are_removed() {
        let mut observed = converged();
        let old =
            StaticRoute { destination: "10.30.0.0/16".parse().unwrap(), gateway: ip("10.1.0.0") };
        observed.routes.insert(old);
        assert_eq!(plan(&desired(), &observed).changes, [Change::RemoveRoute { route: old }]);
    }
}
