//! Shared helpers for the end-to-end tests.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path to a workspace binary (`pi-lab`, `node-agent`), built on demand.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/NAME
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--bin", name])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// Where a test leaves files worth a look (screenshots):
/// `target/e2e-artifacts/NAME/`, made empty.
pub fn artifacts(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-HASH -> target/
    let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
    let dir = target.join("e2e-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifact directory");
    dir
}

/// True when the test may run; false (after saying why) when it must be
/// skipped. Under `CI=true` a missing prerequisite is a failure, not a skip.
pub fn prerequisites(test: &str, needs_root: bool, commands: &[&str]) -> bool {
    let mut missing = Vec::new();
    if needs_root && !is_root() {
        missing.push("root".to_string());
    }
    for cmd in commands {
        if !has_command(cmd) {
            missing.push(format!("command `{cmd}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: missing {}; run scripts/setup.sh as root", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIP {msg}");
    false
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

pub fn has_command(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A test lab's scratch directory from [`fresh_lab_dir`], removed on drop
/// unless kept.
#[derive(Debug)]
pub struct LabDir {
    /// `$TMPDIR/{family}RANDOM/{dir}`.
    pub path: PathBuf,
    tmp: tempfile::TempDir,
}

impl LabDir {
    /// Leave it: for a look after a failed test, or for the next run to
    /// take down a lab that did not go down.
    pub fn keep(&mut self) {
        self.tmp.disable_cleanup(true);
    }
}

/// A per-run scratch directory `$TMPDIR/{family}RANDOM/{dir}` for a test
/// lab, the outer one marked with our pid. `dir` keeps its name: a netlab
/// topology takes its lab's name from its folder.
///
/// A run that was killed (SIGKILL, a lost machine) leaves its lab up: its
/// bridge still holds the management subnet this test family owns, and
/// the next run could not come up. So labs of the same family whose owner
/// is gone are taken down first, through their own state directory.
pub fn fresh_lab_dir(family: &str, dir: &str) -> LabDir {
    let tmp = std::env::temp_dir();
    for stale in stale_lab_dirs(&tmp, family) {
        take_down(&stale);
    }
    // Readable by all, as before: lab daemons that drop root read in it.
    let outer = tempfile::Builder::new()
        .prefix(family)
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir_in(&tmp)
        .expect("create the test's lab directory");
    std::fs::write(outer.path().join("owner.pid"), std::process::id().to_string())
        .expect("write owner.pid");
    let path = outer.path().join(dir);
    std::fs::create_dir(&path).expect("create the test's lab directory");
    LabDir { path, tmp: outer }
}

/// `{family}*` directories whose owner is not alive.
fn stale_lab_dirs(tmp: &std::path::Path, family: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(tmp) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(family))
        .map(|e| e.path())
        .filter(|dir| !owner_alive(dir))
        .collect()
}

fn owner_alive(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("owner.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| PathBuf::from(format!("/proc/{pid}")).exists())
}

/// `lab down` every lab recorded under `dir/*/state` (or `dir/state`, as
/// runs before [`LabDir`] left them), then remove `dir`.
fn take_down(dir: &std::path::Path) {
    take_down_labs(&dir.join("state"));
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        take_down_labs(&sub.path().join("state"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `lab down` every lab recorded in the state directory `state`.
pub fn take_down_labs(state: &std::path::Path) {
    let labs = std::fs::read_dir(state).into_iter().flatten().flatten();
    // A lab is a folder; a test may keep its lab file beside them.
    for lab in labs.filter(|e| e.path().is_dir()) {
        let name = lab.file_name().to_string_lossy().into_owned();
        let out = Command::new(bin("pi-lab"))
            .env("PI_LAB_STATE_DIR", state)
            .args(["lab", "down", "--name", &name])
            .output();
        match out {
            Ok(o) if o.status.success() => eprintln!("took down stale lab {name}"),
            Ok(o) => eprintln!(
                "stale lab {name} in {}: lab down failed: {}",
                state.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("stale lab {name}: {e}"),
        }
    }
}

/// A test's lab file in a folder of its own (see [`fresh_lab_dir`]) with
/// its own state directory; the lab taken down and the folder removed
/// however the test ends.
pub struct LabFiles {
    pub dir: PathBuf,
    pub file: PathBuf,
    /// Whether `up` was tried, so the drop takes the lab down.
    pub up: bool,
    /// Removes `dir` after `drop` has taken the lab down.
    _scratch: LabDir,
}

impl LabFiles {
    /// `text` written as `{name}.toml`, after taking down what a crashed
    /// run of the same lab left (it would make `up` refuse).
    pub fn new(name: &str, family: &str, text: &str) -> Self {
        let scratch = fresh_lab_dir(family, &format!("{family}{}", std::process::id()));
        let dir = scratch.path.clone();
        std::fs::create_dir_all(dir.join("state")).expect("state directory");
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).expect("write lab file");
        let lab = LabFiles { dir, file, up: false, _scratch: scratch };
        let _ = lab.pi_lab(&["lab", "down"]);
        lab
    }

    /// `pi-lab ARGS...` with the lab file right after the subcommand, this
    /// lab's state directory, the agent just built, and nothing from the
    /// caller's environment that would point elsewhere.
    pub fn command(&self, args: &[&str]) -> Command {
        let split = if args.first() == Some(&"lab") { 2 } else { 1 };
        let mut c = Command::new(bin("pi-lab"));
        c.args(&args[..split.min(args.len())])
            .arg(&self.file)
            .args(args.get(split..).unwrap_or_default())
            .env("PI_LAB_STATE_DIR", self.dir.join("state"))
            .env("PI_LAB_AGENT", bin("node-agent"))
            .env_remove("PI_LAB_TOKEN")
            .env_remove("PI_LAB_FILE")
            .env_remove("PI_LAB_SSH_USER");
        c
    }

    pub fn pi_lab(&self, args: &[&str]) -> std::process::Output {
        self.command(args).stdin(std::process::Stdio::null()).output().expect("run pi-lab")
    }

    pub fn up(&mut self) {
        let out = self.pi_lab(&["lab", "up", "--timeout", "180"]);
        self.up = true;
        assert!(out.status.success(), "lab up failed:\n{}", said(&out));
    }
}

impl Drop for LabFiles {
    fn drop(&mut self) {
        if self.up {
            let out = self.pi_lab(&["lab", "down"]);
            if !out.status.success() {
                eprintln!("lab down failed:\n{}", said(&out));
            }
        }
    }
}

/// A test's own `$ty { lab: LabFiles, .. }` used as the [`LabFiles`] it
/// holds (`fleet.pi_lab(...)`, `fleet.up()`).
macro_rules! lab_files_inside {
    ($ty:ty) => {
        impl std::ops::Deref for $ty {
            type Target = $crate::common::LabFiles;
            fn deref(&self) -> &Self::Target {
                &self.lab
            }
        }

        impl std::ops::DerefMut for $ty {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.lab
            }
        }
    };
}
pub(crate) use lab_files_inside;

/// A command's exit code and both its outputs, for assertion messages.
pub fn said(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
