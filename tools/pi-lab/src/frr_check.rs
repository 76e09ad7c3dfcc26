//! The nodes' `frr = """..."""` lines checked by FRR itself: each such
//! node's frr.conf is rendered and given to `vtysh --dryrun` (no daemons,
//! no privileges), and what FRR refuses is placed at its line in the lab
//! file (`lab_spec::frr_check`). Used by `lab check`, and by `provision`
//! before anything is applied.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lab_spec::frr_check::{self, Refused};
use lab_spec::{Diagnostics, Lab, NodeConfig};

use crate::fleet_client::FleetClient;

#[derive(Debug, thiserror::Error)]
pub enum FrrCheckError {
    #[error("cannot prepare FRR's check in a temporary directory: {0}")]
    Temp(std::io::Error),
    #[error("cannot run {vtysh}: {source}")]
    Run { vtysh: PathBuf, source: std::io::Error },
    #[error("vtysh --dryrun failed ({status}) without naming a line: {output}")]
    Failed { status: String, output: String },
}

/// The findings about the nodes' own FRR lines.
#[derive(Debug)]
pub struct Checked {
    /// Lines FRR refused, at their place in the lab file.
    pub diags: Diagnostics,
    /// Nodes whose lines nobody could check, and why.
    pub unchecked: Vec<(String, String)>,
}

/// The nodes of `configs` with their own FRR lines.
pub fn nodes_with_lines<'a>(configs: &[&'a NodeConfig]) -> Vec<&'a NodeConfig> {
    configs
        .iter()
        .copied()
        .filter(|c| c.frr.as_deref().is_some_and(|f| !f.trim().is_empty()))
        .collect()
}

/// Check the nodes' FRR lines with this host's vtysh; `None` when this
/// host has none.
pub fn check_here(lab: &Lab, configs: &[&NodeConfig]) -> Result<Option<Checked>, FrrCheckError> {
    let Some(vtysh) = crate::programs::find("vtysh") else { return Ok(None) };
    let mut diags = Diagnostics::new(lab.source.clone());
    for config in nodes_with_lines(configs) {
        let rendered = lab_spec::frr::render(config);
        let refused = dry_run(&vtysh, &rendered)?;
        diags.extend(frr_check::diagnostics(lab, &config.hostname, &rendered, &refused));
    }
    diags.sort();
    Ok(Some(Checked { diags, unchecked: Vec::new() }))
}

/// Check each node's FRR lines with the FRR on that node
/// (`POST /v1/frr/check`), all at once; nothing is applied.
pub fn check_on_nodes(fleet: &FleetClient, lab: &Lab, configs: &[&NodeConfig]) -> Checked {
    let nodes = nodes_with_lines(configs);
    let answers: Vec<_> = std::thread::scope(|scope| {
        let asks: Vec<_> = nodes
            .iter()
            .map(|c| {
                let rendered = lab_spec::frr::render(c);
                scope.spawn(move || {
                    let answer = fleet.frr_check(c, &rendered);
                    (rendered, answer)
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().ok()).collect()
    });
    let mut checked =
        Checked { diags: Diagnostics::new(lab.source.clone()), unchecked: Vec::new() };
    for (config, answer) in nodes.iter().zip(answers) {
        match answer {
            Some((rendered, Ok(check))) => checked.diags.extend(frr_check::diagnostics(
                lab,
                &config.hostname,
                &rendered,
                &check.refused,
            )),
            Some((_, Err(e))) => checked.unchecked.push((config.hostname.clone(), e.to_string())),
            None => checked.unchecked.push((config.hostname.clone(), "the check panicked".into())),
        }
    }
    checked.diags.sort();
    checked
}

/// `vtysh --config_dir TMP -C -f TMP/frr.conf`: the lines FRR refuses.
pub fn dry_run(vtysh: &Path, text: &str) -> Result<Vec<Refused>, FrrCheckError> {
    let dir = tempfile::tempdir().map_err(FrrCheckError::Temp)?;
    let conf = dir.path().join("frr.conf");
    // vtysh reads its own vtysh.conf from the config directory first.
    std::fs::write(dir.path().join("vtysh.conf"), "service integrated-vtysh-config\n")
        .and_then(|()| std::fs::write(&conf, text))
        .map_err(FrrCheckError::Temp)?;
    let out = Command::new(vtysh)
        .arg("--config_dir")
        .arg(dir.path())
        .arg("-C")
        .arg("-f")
        .arg(&conf)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| FrrCheckError::Run { vtysh: vtysh.to_path_buf(), source })?;
    if out.status.success() {
        return Ok(Vec::new());
    }
    let output =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let refused = frr_check::parse_dryrun(&output);
    if refused.is_empty() {
        return Err(FrrCheckError::Failed {
            status: out.status.to_string(),
            output: output.trim().to_string(),
        });
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab_file::LabFile;

    fn lab_file(frr: &str) -> (tempfile::TempDir, LabFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        let text = format!(
            "name = \"t\"\n\n[nodes.r1]\nrole = \"router\"\nasn = 100\nfrr = \"\"\"\n{frr}\"\"\"\n\n\
             [nodes.r2]\nrole = \"router\"\nasn = 200\n\n[[links]]\na = \"r1:eth1\"\nb = \"r2:eth1\"\n"
        );
        std::fs::write(&path, text).unwrap();
        let file = LabFile::load(&path).unwrap();
        (dir, file)
    }

    /// With FRR installed (the virtual fleet's hosts have it): a typo is
    /// placed at its line and column, good lines pass.
    #[test]
    fn frr_refuses_a_typo_at_its_place_in_the_lab_file() {
        if crate::programs::find("vtysh").is_none() {
            eprintln!("SKIP: no vtysh");
            return;
        }
        let (_dir, file) =
            lab_file("ip route 10.99.0.0/24 Null0\nrouter bgp 100\n  netwrk 10.9.0.0/24\nexit\n");
        let compiled = file.clone().compile_with("t".into());
        let configs: Vec<&NodeConfig> = compiled.configs.values().collect();
        let diags = check_here(&file.lab, &configs).unwrap().unwrap().diags;
        let found = diags.located();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].line, found[0].column), (Some(9), Some(3)), "{found:#?}");
        assert!(found[0].message.contains("unknown command `netwrk 10.9.0.0/24`"), "{found:#?}");

        let (_dir, good) =
            lab_file("router bgp 100\n neighbor 10.1.0.1 description by hand\nexit\n");
        let compiled = good.clone().compile_with("t".into());
        let configs: Vec<&NodeConfig> = compiled.configs.values().collect();
        let diags = check_here(&good.lab, &configs).unwrap().unwrap().diags;
        assert!(diags.is_empty(), "{diags}");
    }
}
