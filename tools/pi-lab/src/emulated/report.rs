//! What `lab up --boards emulated` leaves to read: the state table (or
//! JSON) and, after a failed `up`, the boards' consoles.

use super::*;

/// Before a failed `up` takes the lab down: keep every board's serial
/// console and emulator log in `STATE/LAB/failed-up/`, for a look after.
pub fn keep_logs(lab: &str, fleet_dir: &Path) {
    let layout = Layout::new(fleet_dir);
    let keep = crate::secrets::state_root().join(lab).join("failed-up");
    let Ok(entries) = fs::read_dir(&layout.dir) else { return };
    let _ = fs::remove_dir_all(&keep);
    for entry in entries.flatten() {
        let node = entry.file_name().to_string_lossy().into_owned();
        for (from, to) in [
            (layout.console_log(&node), keep.join(format!("{node}-console.log"))),
            (layout.qemu_log(&node), keep.join(format!("{node}-qemu.log"))),
        ] {
            if from.is_file() && fs::create_dir_all(&keep).is_ok() {
                let _ = fs::copy(&from, &to);
            }
        }
    }
    if keep.is_dir() {
        eprintln!("serial consoles of the boards kept in {}", keep.display());
    }
}

/// Resident memory of a process, MiB.
pub(super) fn rss_mib(pid: u32) -> Option<u64> {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:").map(|kib| kib / 1024)
}

/// The state table after `lab up --boards emulated`.
pub fn print_state(lab: &str, boards: &[BoardState], seconds: f64, zero_touch: bool, json: bool) {
    if json {
        let doc = serde_json::json!({
            "lab": lab,
            "boards": "emulated",
            "zero_touch": zero_touch,
            "healthy": !zero_touch,
            "seconds": seconds,
            "nodes": boards,
        });
        println!("{doc:#}");
        return;
    }
    let state = if zero_touch { "waiting to be provisioned" } else { "healthy" };
    println!(
        "lab {lab} is up on {} emulated Pi 3B boards, {state}, in {seconds:.0} s\n",
        boards.len()
    );
    let at =
        |b: &BoardState, p: Phase| b.seconds.get(&p).map_or("-".into(), |s| format!("{s:.0}s"));
    let rows: Vec<Vec<String>> = boards
        .iter()
        .map(|b| {
            vec![
                b.node.clone(),
                b.role.clone(),
                b.management.clone(),
                b.mac.clone(),
                at(b, Phase::Kernel),
                at(b, Phase::Systemd),
                at(b, Phase::AgentUp),
                at(b, Phase::Healthy),
                b.emulator_rss_mib.map_or("-".into(), |m| format!("{m} MiB")),
            ]
        })
        .collect();
    let header =
        ["NODE", "ROLE", "MGMT", "MAC", "KERNEL", "SYSTEMD", "AGENT", "HEALTHY", "EMULATOR RSS"];
    print!("{}", crate::table::Table::new(header).with_rows(rows));
    if zero_touch {
        println!("\nzero-touch cards: find the boards and give them their configs with");
        println!("           pi-lab provision FILE --discover 60");
    }
    println!("\nconsole:   sudo pi-lab lab console FILE NODE        (Ctrl-] leaves)");
    println!("check:     pi-lab status FILE   pi-lab validate FILE");
    println!("tear down: sudo pi-lab lab down --name {lab}");
}
