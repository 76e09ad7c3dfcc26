//! Making the lab's emulated hardware: SSH key, switch, DHCP for zero-touch
//! boards, a card per board, and the emulators powered on.

use super::*;

/// The lab's SSH key; its files are journaled when this `up` made them,
/// and the boards' host keys always (new cards, new host keys).
pub(super) fn ssh_key(
    lab: &str,
    journal: &mut Journal,
) -> Result<crate::secrets::SshKey, EmulatedError> {
    let made = crate::secrets::SshKey::existing(lab).is_none();
    let key = crate::secrets::lab_ssh_key(lab)?;
    if made {
        // The folder first: `down` undoes newest first, files before it.
        if let Some(dir) = key.private.parent() {
            journal.record(&Entry::Path { path: dir.to_path_buf() })?;
        }
        for path in [&key.private, &key.public] {
            journal.record(&Entry::Path { path: path.clone() })?;
        }
    }
    journal.record(&Entry::Path { path: key.known_hosts.clone() })?;
    let _ = fs::remove_file(&key.known_hosts);
    Ok(key)
}

/// The bridge with the controller address, the switch's VLAN rules and a
/// tap per board.
pub(super) fn switch_up(p: &Prepared, journal: &mut Journal) -> Result<(), EmulatedError> {
    let Some(first) = p.configs.first() else { return Ok(()) };
    let bridge = names::bridge(&p.lab);
    let controller = first.management.controller.to_string();
    let occupied = |what: String| {
        EmulatedError::Fleet(format!(
            "{what} already exists but lab {:?} is not up; remove it or rename the lab",
            p.lab
        ))
    };
    if ip::link_exists(None, &bridge) {
        return Err(occupied(format!("device {bridge}")));
    }
    if let Some(dev) = ip::holders_of(None, &controller)?.first() {
        return Err(occupied(format!("the controller address {controller} (on {dev})")));
    }
    journal.record(&Entry::RootLink { name: bridge.clone() })?;
    ip::bridge_add(&bridge)?;
    ip::addr_add(
        None,
        &bridge,
        &format!("{controller}/{}", first.management.address.prefix_len()),
    )?;
    ip::link_up(None, &bridge)?;
    let table = wiring::table(&names::tag(&p.lab));
    journal.record(&Entry::NftTable { family: "bridge".into(), name: table.clone() })?;
    let index_of = |board: &str| p.configs.iter().position(|c| c.hostname == board).unwrap_or(0);
    wiring::nft_load(&wiring::rules(&table, &p.switch, &|b| tap(&p.lab, index_of(b))))?;
    for index in 0..p.configs.len() {
        let tap = tap(&p.lab, index);
        journal.record(&Entry::RootLink { name: tap.clone() })?;
        ip::tap_add(&tap)?;
        ip::set_master(&tap, &bridge)?;
        // See the wiring module's docs for why the switch learns nothing.
        ip::no_learning(&tap)?;
        ip::link_up(None, &tap)?;
    }
    Ok(())
}

/// DHCP with a reservation per board on the switch (zero-touch only).
pub(super) fn dhcp_up(
    p: &Prepared,
    layout: &Layout,
    journal: &mut Journal,
) -> Result<(), EmulatedError> {
    let Some(program) = &p.dhcp else { return Ok(()) };
    let leases = layout.dir.join("dhcp.leases");
    let args = dhcp::args(&names::bridge(&p.lab), &p.configs, &leases);
    let log = layout.dir.join("dhcp.log");
    fs::create_dir_all(&layout.dir)
        .map_err(|source| EmulatedError::Write { path: layout.dir.clone(), source })?;
    let pid = spawn_detached(program, &args, &log).map_err(|source| EmulatedError::Spawn {
        program: program.display().to_string(),
        node: "the management network".into(),
        source,
    })?;
    journal.record(&Entry::Process {
        netns: String::new(),
        pid,
        what: leases.display().to_string(),
    })?;
    Ok(())
}

/// One card file per node, written by flash's code path with the node's
/// identity and the lab's SSH key.
pub(super) fn cards(
    configs: &[NodeConfig],
    opts: &UpOptions,
    layout: &Layout,
    key: &crate::secrets::SshKey,
) -> Result<(), EmulatedError> {
    let keys = fs::read_to_string(&key.public)
        .map_err(|source| EmulatedError::Write { path: key.public.clone(), source })?;
    let mut cards = Vec::new();
    for config in configs {
        let dir = layout.node(&config.hostname);
        fs::create_dir_all(&dir).map_err(|source| EmulatedError::Write { path: dir, source })?;
        let identity = Identity {
            config: config.clone(),
            authorized_keys: keys.clone(),
            zero_touch: opts.zero_touch,
        };
        cards.push((layout.card(&config.hostname), identity));
    }
    let report = crate::flash::write_card_files(&opts.image, &cards, opts.json)?;
    if let Some(failed) = report.targets.iter().find(|t| !t.ok) {
        return Err(EmulatedError::Card {
            card: failed.target.clone(),
            message: failed.error.clone().unwrap_or_else(|| failed.state.clone()),
        });
    }
    Ok(())
}

/// Kernel, initrd, device tree and command line, as the Pi's firmware
/// would take them from the card; the device tree less what qemu cannot
/// emulate well (see [`devicetree`]).
pub(super) struct BootFiles {
    kernel: PathBuf,
    initrd: PathBuf,
    dtb: PathBuf,
    cmdline: String,
}

pub(super) const DTB: &str = "bcm2837-rpi-3-b.dtb";

pub(super) fn boot_files(
    layout: &Layout,
    configs: &[NodeConfig],
) -> Result<BootFiles, EmulatedError> {
    let Some(first) = configs.first() else {
        return Err(EmulatedError::Fleet("the lab has no nodes".into()));
    };
    let card = layout.card(&first.hostname);
    let fail = |message: String| EmulatedError::Card { card: card.clone(), message };
    let file = fs::File::open(&card).map_err(|e| fail(e.to_string()))?;
    let size = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    let names = crate::flash::identity::root_files(&file, size).map_err(|e| fail(e.to_string()))?;
    let newest = |prefix: &str| -> Result<String, EmulatedError> {
        names.iter().filter(|n| n.starts_with(prefix)).max().cloned().ok_or_else(|| {
            fail(format!("no {prefix}* in the firmware partition: is this a pi-lab image?"))
        })
    };
    let dir = layout.boot();
    fs::create_dir_all(&dir)
        .map_err(|source| EmulatedError::Write { path: dir.clone(), source })?;
    let read = |name: &str| {
        crate::flash::identity::read(&file, size, name).map_err(|e| fail(format!("{name}: {e}")))
    };
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, data)
            .map_err(|source| EmulatedError::Write { path: path.clone(), source })?;
        Ok::<_, EmulatedError>(path)
    };
    let (kernel, initrd) = (newest("vmlinuz-")?, newest("initrd.img-")?);
    let kernel = write(&kernel, &read(&kernel)?)?;
    let initrd = write(&initrd, &read(&initrd)?)?;
    let tree = devicetree::for_emulator(&read(DTB)?).map_err(|e| fail(format!("{DTB}: {e}")))?;
    let dtb = write(DTB, &tree)?;
    let cmdline = String::from_utf8_lossy(&read("cmdline.txt")?).trim().to_string();
    Ok(BootFiles { kernel, initrd, dtb, cmdline })
}

/// Power every board on; each emulator is journaled with its pid.
pub(super) fn start(
    p: &Prepared,
    layout: &Layout,
    boot: &BootFiles,
    journal: &mut Journal,
) -> Result<Vec<BoardState>, EmulatedError> {
    let sockets = layout.socket_dir();
    journal.record(&Entry::Tree { path: sockets.clone() })?;
    let mut boards = Vec::new();
    for (index, config) in p.configs.iter().enumerate() {
        let node = &config.hostname;
        let mac = qemu::mac_for(&p.lab, node, config.identity.mac.as_deref());
        debug_assert_eq!(config.identity.mac.as_deref(), Some(mac.as_str()));
        let socket = layout.console_socket(node);
        if let Some(dir) = socket.parent() {
            fs::create_dir_all(dir)
                .map_err(|source| EmulatedError::Write { path: dir.to_path_buf(), source })?;
        }
        let board = qemu::Board {
            card: layout.card(node),
            kernel: boot.kernel.clone(),
            initrd: boot.initrd.clone(),
            dtb: boot.dtb.clone(),
            cmdline: boot.cmdline.clone(),
            mac,
            tap: tap(&p.lab, index),
            console_socket: socket,
            console_log: layout.console_log(node),
        };
        let pid = power_on(&p.qemu, &board, layout, node, journal)?;
        boards.push(BoardState::new(config, pid, board));
    }
    Ok(boards)
}

/// Start one board's emulator, journaled with its pid before anything else.
pub(super) fn power_on(
    program: &Path,
    board: &qemu::Board,
    layout: &Layout,
    node: &str,
    journal: &mut Journal,
) -> Result<u32, EmulatedError> {
    let pid =
        spawn_detached(program, qemu::args(board), &layout.qemu_log(node)).map_err(|source| {
            EmulatedError::Spawn {
                program: program.display().to_string(),
                node: node.to_string(),
                source,
            }
        })?;
    journal.record(&Entry::Process {
        netns: String::new(),
        pid,
        what: layout.card(node).display().to_string(),
    })?;
    Ok(pid)
}

/// Start `program` in its own process group (Ctrl-C in the terminal of
/// `lab up` must not stop the boards or their DHCP server), its output in
/// `log`. Returns the pid; the journal, not a handle, keeps track of it.
pub(super) fn spawn_detached<I, S>(program: &Path, args: I, log: &Path) -> std::io::Result<u32>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::os::unix::process::CommandExt;
    let out = fs::File::create(log)?;
    let err = out.try_clone()?;
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}
