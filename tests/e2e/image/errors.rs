//! `pi-lab image build` refusing what it cannot build: a missing tool, an
//! unknown package, an unreachable mirror, a full disk. Each names what is
//! wrong and leaves nothing behind.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{TOOLS, built, cache_dir, target_dir};
use crate::common::{bin, prerequisites, workspace};

/// A project folder holding a changed copy of the profile, for error cases.
pub(super) fn error_project(tag: &str, edit: impl Fn(String) -> String) -> (PathBuf, PathBuf) {
    let proj = target_dir(&format!("pi-lab-image-test/err-{tag}"));
    let _ = std::fs::remove_dir_all(&proj);
    std::fs::create_dir_all(proj.join("images")).unwrap();
    std::os::unix::fs::symlink(workspace().join("overlays"), proj.join("overlays")).unwrap();
    let text = std::fs::read_to_string(workspace().join("images/pi3b-trixie.toml")).unwrap();
    std::fs::write(proj.join("images/p.toml"), edit(text)).unwrap();
    let out = proj.join("out");
    std::fs::create_dir_all(&out).unwrap();
    (proj, out)
}

/// `pi-lab image build` for a project copy, with the agent already built.
pub(super) fn pi_lab_build(profile: &Path, out: &Path) -> Command {
    let agent = workspace().join("target/aarch64-unknown-linux-musl/release/node-agent");
    let mut cmd = Command::new(bin("pi-lab"));
    cmd.args(["image", "build", "--profile"])
        .arg(profile)
        .arg("--out")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache_dir())
        .arg("--agent")
        .arg(agent);
    cmd
}

fn build_error(proj: &Path, out: &Path, path_env: Option<&str>) -> String {
    let mut cmd = pi_lab_build(&proj.join("images/p.toml"), out);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    let result = cmd.output().unwrap();
    assert!(!result.status.success(), "the build must fail");
    let entries: Vec<_> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(entries.is_empty(), "partial outputs left in {}: {entries:?}", out.display());
    String::from_utf8_lossy(&result.stderr).into_owned()
}

/// A profile with `from` replaced by `to` must fail naming every `expect`.
fn assert_profile_error(tag: &str, from: &str, to: &str, expect: &[&str]) {
    let (proj, out) = error_project(tag, |t| {
        assert!(t.contains(from), "the shipped profile has no {from}");
        t.replace(from, to)
    });
    let err = build_error(&proj, &out, None);
    for e in expect {
        assert!(err.contains(e), "error does not say {e:?}:\n{err}");
    }
}

#[test]
fn image_error_missing_prerequisite_names_the_package() {
    if !prerequisites("image_error_missing_prerequisite_names_the_package", false, &[]) {
        return;
    }
    let (proj, out) = error_project("prereq", |t| t);
    let empty = proj.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let err = build_error(&proj, &out, Some(empty.to_str().unwrap()));
    assert!(err.contains("mmdebstrap") && err.contains("apt-get install mmdebstrap"), "{err}");
}

/// The profile layer is built on the cached lab layer, so apt names the
/// unknown package within a minute.
#[test]
fn image_error_unknown_package_is_named() {
    if !prerequisites("image_error_unknown_package_is_named", true, TOOLS) {
        return;
    }
    let bad = "\"ethtool\", \"pi-lab-no-such-package\",";
    assert_profile_error(
        "package",
        "\"ethtool\",",
        bad,
        &["pi-lab-no-such-package", "rootfs.packages"],
    );
}

#[test]
fn image_error_unreachable_mirror_is_named() {
    if !prerequisites("image_error_unreachable_mirror_is_named", true, TOOLS) {
        return;
    }
    let bad = "http://127.0.0.1:9/debian";
    let with_mirror = format!("[rootfs]\nmirror = \"{bad}\"\n");
    assert_profile_error("mirror", "[rootfs]\n", &with_mirror, &[bad, "unreachable"]);
}

/// `--out` on a small tmpfs in a private mount namespace (invisible to the
/// rest of the machine): the build runs out of space and must say so and
/// leave nothing behind.
#[test]
fn image_error_full_disk_leaves_nothing() {
    if !prerequisites("image_error_full_disk_leaves_nothing", true, &["unshare", "mount"]) {
        return;
    }
    let _ = built(); // warm cache: the failure is about space, not downloads
    let (proj, out) = error_project("full", |t| t);
    let agent = workspace().join("target/aarch64-unknown-linux-musl/release/node-agent");
    let script = format!(
        "mount -t tmpfs -o size=400m pi-lab-test '{out}' && '{bin}' image build --profile '{profile}' --out '{out}' --cache-dir '{cache}' --agent '{agent}'; rc=$?; echo \"entries: $(ls -A '{out}' | wc -l)\"; exit $rc",
        out = out.display(),
        bin = bin("pi-lab").display(),
        profile = proj.join("images/p.toml").display(),
        cache = cache_dir().display(),
        agent = agent.display(),
    );
    let result = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "the build must fail on a full disk:\n{stderr}");
    assert!(
        stderr.contains("No space left on device") || stderr.contains("disk is full"),
        "{stderr}"
    );
    assert!(stdout.contains("entries: 0"), "partial outputs left: {stdout}\n{stderr}");
}
