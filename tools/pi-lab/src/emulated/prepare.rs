//! What `lab up --boards emulated` checks before it makes anything (image,
//! qemu, memory, ports a Pi 3B can have), and the config a board runs.

use super::*;

/// Everything known before anything is made.
pub(super) struct Prepared {
    pub(super) lab: String,
    pub(super) configs: Vec<NodeConfig>,
    pub(super) switch: SwitchPlan,
    pub(super) qemu: PathBuf,
    /// dnsmasq, for zero-touch boards.
    pub(super) dhcp: Option<PathBuf>,
}

/// Refusals that need no change to the machine: image, qemu, memory, and
/// lab ports an emulated Pi 3B cannot have.
pub(super) fn prepare(file: LabFile, opts: &UpOptions) -> Result<Prepared, EmulatedError> {
    if !opts.image.is_file() {
        let dir = opts.image.parent().map_or("out".into(), |d| d.display().to_string());
        return Err(EmulatedError::NoImage { path: opts.image.clone(), dir });
    }
    let qemu = qemu::find().ok_or(EmulatedError::Missing {
        program: qemu::PROGRAM,
        package: qemu::PACKAGE,
        why: "emulated boards run in it",
    })?;
    let dhcp = match opts.zero_touch {
        false => None,
        true => Some(dhcp::find().ok_or(EmulatedError::Missing {
            program: dhcp::PROGRAM,
            package: dhcp::PACKAGE,
            why: "zero-touch boards get their management address over DHCP",
        })?),
    };
    let lab = file.compile()?;
    let switch = switch::for_lab(&lab);
    let configs: Vec<NodeConfig> = lab.configs.values().map(board_config).collect();
    for config in &configs {
        one_nic(config)?;
    }
    fits_in_memory(configs.len(), available_memory())?;
    Ok(Prepared { lab: lab.lab.name, configs, switch, qemu, dhcp })
}

/// The config of an emulated board: the board's, with the emulated NIC's
/// MAC as its identity when the lab gives none, so `provision --discover`
/// can tell the boards apart as it tells real ones.
pub fn board_config(board: &NodeConfig) -> NodeConfig {
    if board.identity.mac.is_some() {
        return board.clone();
    }
    let mut config = board.clone();
    config.identity.mac = Some(qemu::mac_for(&config.lab, &config.hostname, None));
    config.with_version()
}

/// An emulated Pi 3B has one Ethernet port: lab links must be VLANs on it.
pub(super) fn one_nic(config: &NodeConfig) -> Result<(), EmulatedError> {
    let port = switch::management_port(config);
    for iface in &config.interfaces {
        let parent = match &iface.kind {
            InterfaceKind::Vlan { parent, .. } => parent.as_str(),
            InterfaceKind::Port => iface.name.as_str(),
        };
        if parent == port && matches!(iface.kind, InterfaceKind::Vlan { .. }) {
            continue;
        }
        let message = if parent == port {
            format!(
                "{port} carries the management network untagged; a lab link on it must be a \
                 VLAN: write \"{}:{port}.N\" at both ends of the link (see `pi-lab lab switch`)",
                config.hostname
            )
        } else {
            format!(
                "an emulated Pi 3B has one Ethernet port, {port}, and no USB adapter for \
                 {parent}: carry the link as a VLAN on {port}, e.g. \"{}:{port}.101\" with the \
                 same VLAN id at the other end (see `pi-lab lab switch`)",
                config.hostname
            )
        };
        return Err(EmulatedError::OneNic {
            node: config.hostname.clone(),
            interface: iface.name.clone(),
            message,
        });
    }
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, in bytes (0 when unreadable).
pub(super) fn available_memory() -> u64 {
    proc_kib("/proc/meminfo", "MemAvailable:").map_or(0, |kib| kib * 1024)
}

/// A `KEY: N kB` line of a /proc file, in KiB.
pub(super) fn proc_kib(path: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

/// Refuse before starting when `boards` boards would not fit in `available`.
pub(super) fn fits_in_memory(boards: usize, available: u64) -> Result<(), EmulatedError> {
    let per = qemu::BOARD_MEMORY + EMULATOR_OVERHEAD;
    let need = per * boards as u64;
    if need <= available {
        return Ok(());
    }
    Err(EmulatedError::Memory {
        boards,
        need: need >> 20,
        per: per >> 20,
        have: available >> 20,
        fit: available / per,
    })
}

#[cfg(test)]
pub(in crate::emulated) mod tests {
    use super::*;

    pub(in crate::emulated) fn config(
        name: &str,
        ifaces: &[(&str, Option<(&str, u16)>)],
    ) -> NodeConfig {
        let mut c = crate::fleet_client::tests::node(name, "leaf", 65001, 11, None);
        c.management.interface = None;
        c.interfaces = ifaces
            .iter()
            .map(|(n, vlan)| lab_spec::node_config::Interface {
                name: n.to_string(),
                kind: match vlan {
                    Some((parent, id)) => {
                        InterfaceKind::Vlan { parent: parent.to_string(), vlan_id: *id }
                    }
                    None => InterfaceKind::Port,
                },
                mtu: None,
                address: None,
                address6: None,
                description: String::new(),
                tc: None,
            })
            .collect();
        c
    }

    #[test]
    fn an_emulated_board_takes_vlans_on_eth0_and_nothing_else() {
        assert!(one_nic(&config("r1", &[("eth0.101", Some(("eth0", 101)))])).is_ok());
        let usb = one_nic(&config("r1", &[("eth1", None)])).unwrap_err().to_string();
        assert!(usb.starts_with("r1:eth1: an emulated Pi 3B has one Ethernet port, eth0"), "{usb}");
        assert!(usb.contains("r1:eth0.101") && usb.contains("lab switch"), "{usb}");
        let bare = one_nic(&config("r1", &[("eth0", None)])).unwrap_err().to_string();
        assert!(bare.contains("management network untagged"), "{bare}");
        let other = one_nic(&config("r1", &[("eth1.5", Some(("eth1", 5)))])).unwrap_err();
        assert!(other.to_string().contains("no USB adapter for eth1"), "{other}");
    }

    #[test]
    fn memory_is_checked_before_anything_starts() {
        let gib = 1u64 << 30;
        assert!(fits_in_memory(2, 4 * gib).is_ok());
        let err = fits_in_memory(8, 5 * gib).unwrap_err().to_string();
        assert!(err.contains("8 emulated boards need about 11264 MiB"), "{err}");
        assert!(err.contains("3 would fit"), "{err}");
    }
}
