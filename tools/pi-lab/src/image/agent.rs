//! node-agent for the board: a static aarch64 binary, built with cargo and
//! linked by rust-lld (`.cargo/config.toml`), no cross C toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::progress::Step;
use super::{ImageError, outputs};

pub const TARGET: &str = "aarch64-unknown-linux-musl";

#[derive(Debug, Clone)]
pub struct Agent {
    pub path: PathBuf,
    pub sha256: String,
}

/// Uses `given` when set, else builds node-agent in the project at `root`.
/// cargo decides whether anything needs compiling; an up-to-date binary is
/// reported as cached.
pub fn provide(given: Option<&Path>, root: &Path, step: &Step) -> Result<Agent, ImageError> {
    let path = match given {
        Some(p) => {
            step.set_cached();
            p.to_path_buf()
        }
        None => build(root, step)?,
    };
    check_elf(&path)?;
    let sha256 = outputs::sha256_file(&path, &step.cancel)?;
    Ok(Agent { path, sha256 })
}

fn build(root: &Path, step: &Step) -> Result<PathBuf, ImageError> {
    if !root.join("node-agent/Cargo.toml").is_file() {
        return Err(ImageError::Step {
            step: "node-agent",
            message: format!(
                "no node-agent sources at {}: run from the pi-lab checkout (the profile's images/ folder is inside it) or pass --agent PATH",
                root.join("node-agent").display()
            ),
        });
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target_dir.join(TARGET).join("release/node-agent");
    let before = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "node-agent",
        "--target",
        TARGET,
    ]);
    let log = step.log("node-agent-build.log");
    step.command("cargo build node-agent", &mut cmd, &log).map_err(|e| match e {
        ImageError::Step { message, .. } if message.contains("target may not be installed") => {
            ImageError::Prerequisite {
                what: format!("the Rust target {TARGET} is not installed"),
                fix: format!("rustup target add {TARGET}"),
            }
        }
        other => other,
    })?;
    let after = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if before.is_some() && before == after {
        step.set_cached();
    }
    Ok(bin)
}

/// The board runs it with no loader and no libc: it must be a static
/// AArch64 ELF executable (no PT_INTERP).
pub fn check_elf(path: &Path) -> Result<(), ImageError> {
    let data = std::fs::read(path)
        .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
    let bad = |why: &str| ImageError::Step {
        step: "node-agent",
        message: format!("{} is not usable on the board: {why}", path.display()),
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(bad("not a 64-bit little-endian ELF file"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[o..o + 8]);
        u64::from_le_bytes(b)
    };
    if u16_at(18) != 183 {
        return Err(bad("built for another CPU (not AArch64)"));
    }
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56) as usize);
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > data.len() {
            return Err(bad("truncated program headers"));
        }
        if u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]) == 3 {
            return Err(bad(
                "dynamically linked (has an interpreter); build it static with rust-lld",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_binary_is_rejected_with_reason() {
        let exe = std::env::current_exe().unwrap();
        let err = check_elf(&exe).unwrap_err().to_string();
        #[cfg(target_arch = "x86_64")]
        assert!(err.contains("another CPU"), "{err}");
        assert!(err.contains("not usable"), "{err}");
    }

    #[test]
    fn text_file_is_not_elf() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("pi-lab-elf");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        assert!(check_elf(&p).unwrap_err().to_string().contains("ELF"));
        std::fs::remove_file(&p).unwrap();
    }
}
