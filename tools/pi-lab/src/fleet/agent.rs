//! The real node-agent, one per node namespace.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "no node-agent binary: looked for {looked}; build it with `cargo build -p node-agent` \
         or pass --agent PATH (env PI_LAB_AGENT)"
    )]
    NotFound { looked: String },
    #[error("cannot start node-agent in {netns}: {source}")]
    Spawn { netns: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// `--agent`, else `node-agent` next to this executable, else on `PATH`.
pub fn find(given: Option<&Path>) -> Result<PathBuf, AgentError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let mut looked = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let path = dir.join("node-agent");
        if crate::programs::executable(&path) {
            return Ok(path);
        }
        looked.push(path.display().to_string());
    }
    if let Some(path) = crate::programs::find("node-agent") {
        return Ok(path);
    }
    looked.push("$PATH".into());
    Err(AgentError::NotFound { looked: looked.join(", ") })
}

/// Where one agent's files live inside the fleet directory.
#[derive(Debug, Clone)]
pub struct AgentFiles {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    /// The host's read slots, shared by every agent of the fleet (see
    /// `node-agent run --read-slots`).
    pub read_slots: PathBuf,
}

impl AgentFiles {
    pub fn new(fleet_dir: &Path, node: &str) -> Self {
        AgentFiles {
            config: fleet_dir.join("nodes").join(format!("{node}.toml")),
            state_dir: fleet_dir.join("agents").join(node),
            log: fleet_dir.join("logs").join(format!("{node}.log")),
            read_slots: fleet_dir.join("read-slots"),
        }
    }
}

/// Start `node-agent run` inside `netns`, with its own hostname, detached
/// from pi-lab (its own process group) so it outlives `lab up`. Nodes with
/// FRR get its pathspace (the namespace's name); hosts run without FRR.
pub fn spawn(
    agent: &Path,
    netns: &str,
    hostname: &str,
    with_frr: bool,
    files: &AgentFiles,
) -> Result<Child, AgentError> {
    let spawn_err = |source| AgentError::Spawn { netns: netns.into(), source };
    for dir in [files.state_dir.as_path(), files.log.parent().unwrap_or(Path::new("."))] {
        fs::create_dir_all(dir)
            .map_err(|source| AgentError::Write { path: dir.to_path_buf(), source })?;
    }
    let log = File::create(&files.log)
        .map_err(|source| AgentError::Write { path: files.log.clone(), source })?;
    let log2 = log.try_clone().map_err(spawn_err)?;
    Command::new("ip")
        .args(["netns", "exec", netns, "unshare", "--uts", "--", "sh", "-c"])
        .arg("hostname \"$0\" && exec \"$@\"")
        .arg(hostname)
        .arg(agent)
        .arg("run")
        .arg("--config")
        .arg(&files.config)
        .args(if with_frr { vec!["--frr-pathspace", netns] } else { vec!["--no-frr"] })
        .arg("--read-slots")
        .arg(&files.read_slots)
        .arg("--state-dir")
        .arg(&files.state_dir)
        .env("RUST_LOG", std::env::var("PI_LAB_AGENT_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(spawn_err)
}

/// One read slot per core of this host: the fleet's agents together never
/// read FRR's routing state more often at once than the host can run.
pub fn make_read_slots(fleet_dir: &Path) -> Result<(), AgentError> {
    let dir = fleet_dir.join("read-slots");
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    for i in 0..cores {
        let path = dir.join(format!("slot-{i}"));
        fs::create_dir_all(&dir)
            .and_then(|()| File::create(&path).map(drop))
            .map_err(|source| AgentError::Write { path, source })?;
    }
    Ok(())
}

/// The last lines of an agent's log, to show why it stopped.
pub fn log_tail(files: &AgentFiles, lines: usize) -> String {
    let text = fs::read_to_string(&files.log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
