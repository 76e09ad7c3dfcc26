//! DHCP on the emulated management network, for zero-touch cards: a board
//! whose card names no node gets its planned management address by a
//! reservation for its MAC, as a lab's DHCP server would hand it out, then
//! announces itself for `pi-lab provision --discover`. dnsmasq (Debian
//! package dnsmasq-base) serves DHCP only: no DNS, no default route.

use std::path::{Path, PathBuf};

use lab_spec::NodeConfig;

pub const PROGRAM: &str = "dnsmasq";
pub const PACKAGE: &str = "dnsmasq-base";

/// The dnsmasq command line: on `bridge` only, one reservation per node.
pub fn args(bridge: &str, configs: &[NodeConfig], leases: &Path) -> Vec<String> {
    let mut a = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--no-hosts".into(),
        "--no-resolv".into(),
        "--port=0".into(),
        format!("--interface={bridge}"),
        "--bind-interfaces".into(),
        "--dhcp-authoritative".into(),
        // No router and no DNS server: the lab's management network is an
        // island, and the boards' own config says where to route.
        "--dhcp-option=3".into(),
        "--dhcp-option=6".into(),
        format!("--dhcp-leasefile={}", leases.display()),
        "--user=root".into(),
        "--group=root".into(),
        "--log-dhcp".into(),
    ];
    if let Some(first) = configs.first() {
        let net = first.management.address.trunc();
        a.push(format!("--dhcp-range={},static,{},1h", net.network(), net.netmask()));
    }
    for c in configs {
        if let Some(mac) = &c.identity.mac {
            a.push(format!("--dhcp-host={mac},{},{}", c.management.address.addr(), c.hostname));
        }
    }
    a
}

/// `dnsmasq` where Debian puts it, or on PATH.
pub fn find() -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin").join(PROGRAM);
    crate::programs::find(PROGRAM).or_else(|| crate::programs::executable(&sbin).then_some(sbin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_planned_address_by_its_mac() {
        let mut a = crate::fleet_client::tests::node("leaf1", "leaf", 65001, 11, None);
        a.identity.mac = Some("b8:27:eb:00:00:01".into());
        let b = crate::fleet_client::tests::node("leaf2", "leaf", 65002, 12, None);
        let args = args("lab-br", &[a.clone(), b], Path::new("/s/leases"));
        let line = args.join(" ");
        assert!(line.contains("--interface=lab-br --bind-interfaces"), "{line}");
        assert!(line.contains("--port=0"), "no DNS: {line}");
        let host = format!("--dhcp-host=b8:27:eb:00:00:01,{},leaf1", a.management.address.addr());
        assert!(args.contains(&host), "{line}");
        assert_eq!(args.iter().filter(|x| x.starts_with("--dhcp-host")).count(), 1, "{line}");
        assert!(line.contains(",static,255.255.255.0,1h"), "{line}");
    }
}
