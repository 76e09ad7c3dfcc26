//! From the user's lab file to what every command works with, the same way
//! for all of them: read and validated once ([`LabFile::load`]: the lab and
//! its address plan, or every finding with file:line:column), then compiled
//! once with the lab's token ([`LabFile::compile`]: one NodeConfig per node,
//! exactly what a board gets).
//!
//! `lab check` and `lab plan` stop at [`LabFile`] (they need no token and
//! make none); everything that talks to nodes or writes cards takes a
//! [`CompiledLab`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lab_spec::diagnostics::{did_you_mean, list};
use lab_spec::{Diagnostics, Lab, LabError, NodeConfig, Plan};

#[derive(Debug, thiserror::Error)]
pub enum LabFileError {
    /// Not readable as a lab file at all; lab-spec says why.
    #[error(transparent)]
    Read(LabError),
    /// Read, but not a valid lab: every finding, with its position.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// `lab down FILE` reads only the name, and found none.
    #[error("{}: {why}", .path.display())]
    NoName { path: PathBuf, why: String },
    #[error(transparent)]
    Token(#[from] crate::secrets::SecretError),
    #[error("{}: no node named {node:?} in lab {lab}; {hint}", .path.display())]
    UnknownNode { node: String, lab: String, path: PathBuf, hint: String },
}

impl LabFileError {
    /// The findings when the file is not a valid lab.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            LabFileError::Invalid(diags) => Some(diags),
            _ => None,
        }
    }
}

/// A lab file, validated and planned.
#[derive(Debug, Clone)]
pub struct LabFile {
    pub path: PathBuf,
    pub lab: Lab,
    pub plan: Plan,
}

impl LabFile {
    /// Read, validate and plan `path`. Makes nothing (no token, no state).
    pub fn load(path: &Path) -> Result<LabFile, LabFileError> {
        let lab = match lab_spec::load(path) {
            Ok(lab) => lab,
            Err(LabError::Invalid(diags)) => return Err(LabFileError::Invalid(diags)),
            Err(other) => return Err(LabFileError::Read(other)),
        };
        let plan = Plan::new(&lab).map_err(LabFileError::Invalid)?;
        // A netlab topology's runtime settings, left to netlab: said once.
        if !lab.notes.is_empty() {
            eprintln!("{}", lab.notes);
        }
        Ok(LabFile { path: path.to_path_buf(), lab, plan })
    }

    pub fn name(&self) -> &str {
        &self.lab.name
    }

    /// What is worth saying about a valid lab (names that had to move off
    /// their home address).
    pub fn warnings(&self) -> &Diagnostics {
        &self.plan.warnings
    }

    /// Every node's NodeConfig, with the SHA-256 of the lab's token (from
    /// `PI_LAB_TOKEN`, else the lab's state directory, made on first use).
    pub fn compile(self) -> Result<CompiledLab, LabFileError> {
        let token = crate::secrets::lab_token(&self.lab.name)?;
        Ok(self.compile_with(token))
    }

    /// [`LabFile::compile`] with a given token.
    pub fn compile_with(self, token: String) -> CompiledLab {
        let configs = lab_spec::compile::compile(&self.lab, &self.plan, &token);
        CompiledLab { path: self.path, lab: self.lab, plan: self.plan, token, configs }
    }

    /// An error for a node name the lab does not have, with a did-you-mean.
    pub fn unknown_node(&self, node: &str) -> LabFileError {
        unknown_node(&self.path, &self.lab.name, self.lab.nodes.keys(), node)
    }
}

/// A lab with every node's NodeConfig, as boards get them.
#[derive(Debug, Clone)]
pub struct CompiledLab {
    pub path: PathBuf,
    pub lab: Lab,
    pub plan: Plan,
    /// The lab's bearer token (only its hash is in the configs).
    pub token: String,
    /// Node name to its NodeConfig, in name order.
    pub configs: BTreeMap<String, NodeConfig>,
}

impl CompiledLab {
    /// [`LabFile::load`] then [`LabFile::compile`].
    pub fn load(path: &Path) -> Result<CompiledLab, LabFileError> {
        LabFile::load(path)?.compile()
    }

    pub fn name(&self) -> &str {
        &self.lab.name
    }

    /// The NodeConfig of `node`, or an error naming the lab's nodes.
    pub fn config(&self, node: &str) -> Result<&NodeConfig, LabFileError> {
        self.configs.get(node).ok_or_else(|| self.unknown_node(node))
    }

    /// An error for a node name the lab does not have, with a did-you-mean.
    pub fn unknown_node(&self, node: &str) -> LabFileError {
        unknown_node(&self.path, &self.lab.name, self.lab.nodes.keys(), node)
    }

    /// The nodes named (all when none are), in name order without repeats.
    pub fn select(&self, names: &[String]) -> Result<Vec<&NodeConfig>, LabFileError> {
        select(&self.configs, names, |node| self.unknown_node(node))
    }
}

/// The configs of `names` (all when none are), in name order without
/// repeats; `unknown` makes the error for a name that is not there.
pub fn select<'a>(
    configs: &'a BTreeMap<String, NodeConfig>,
    names: &[String],
    unknown: impl Fn(&str) -> LabFileError,
) -> Result<Vec<&'a NodeConfig>, LabFileError> {
    if names.is_empty() {
        return Ok(configs.values().collect());
    }
    let mut picked = names
        .iter()
        .map(|name| configs.get(name).ok_or_else(|| unknown(name)))
        .collect::<Result<Vec<_>, _>>()?;
    picked.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    picked.dedup_by(|a, b| a.hostname == b.hostname);
    Ok(picked)
}

/// The error for `node`, which lab `lab` (with nodes `names`) does not have.
pub fn unknown_node<'a>(
    path: &Path,
    lab: &str,
    names: impl IntoIterator<Item = &'a String>,
    node: &str,
) -> LabFileError {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    let hint = match did_you_mean(node, &names) {
        Some(n) => format!("did you mean {n:?}? nodes are: {}", list(&names)),
        None => format!("nodes are: {}", list(&names)),
    };
    LabFileError::UnknownNode {
        node: node.to_string(),
        lab: lab.to_string(),
        path: path.to_path_buf(),
        hint,
    }
}

/// Only the lab's `name`, for `lab down FILE`, which must work when the
/// rest of the file has changed or no longer validates.
pub fn name_only(path: &Path) -> Result<String, LabFileError> {
    let no_name = |why: String| LabFileError::NoName { path: path.to_path_buf(), why };
    let text = std::fs::read_to_string(path)
        .map_err(|e| no_name(format!("cannot read the lab file: {e}")))?;
    if lab_spec::is_netlab(path) {
        return Ok(lab_spec::netlab::lab_name(&text, path));
    }
    let doc: toml::Table =
        text.parse().map_err(|e| no_name(format!("not a lab file (no TOML): {e}")))?;
    match doc.get("name").and_then(|v| v.as_str()) {
        Some(name) => Ok(name.to_string()),
        None => Err(no_name("no `name = \"...\"` at the top of the lab file".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    /// `text` as file `name` in a private folder, removed with the folder.
    fn scratch(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_valid_lab_loads_with_its_plan_and_compiles_with_the_token() {
        let file = LabFile::load(&examples().join("two-router.toml")).unwrap();
        assert_eq!(file.name(), "two-router");
        assert_eq!(file.plan.nodes.len(), 2);
        let lab = file.compile_with("unit-token".into());
        assert_eq!(lab.token, "unit-token");
        let r1 = lab.config("r1").unwrap();
        assert_eq!(r1.hostname, "r1");
        assert_eq!(lab.select(&[]).unwrap().len(), 2);
        let picked = lab.select(&["r2".into(), "r1".into(), "r2".into()]).unwrap();
        let names: Vec<&str> = picked.iter().map(|c| c.hostname.as_str()).collect();
        assert_eq!(names, ["r1", "r2"]);
        let err = lab.config("r3").unwrap_err().to_string();
        assert!(err.contains("did you mean \"r1\"") && err.contains("r1, r2"), "{err}");
    }

    #[test]
    fn an_invalid_lab_gives_its_findings_with_positions() {
        let (_dir, path) = scratch(
            "broken.toml",
            "name = \"broken\"\n[nodes.r1]\nrole = \"router\"\nasn = 100\n\
             [[links]]\na = \"r1:eth1\"\nb = \"r9:eth1\"\n",
        );
        let err = LabFile::load(&path).unwrap_err();
        let diags = err.diagnostics().expect("findings");
        assert!(diags.has_errors());
        assert!(err.to_string().contains(":7:6: error: unknown node \"r9\""), "{err}");
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let err = LabFile::load(Path::new("/nonexistent/lab.toml")).unwrap_err();
        assert!(matches!(err, LabFileError::Read(_)), "{err:?}");
        assert!(err.diagnostics().is_none());
    }

    #[test]
    fn name_only_reads_a_file_that_does_not_validate() {
        let (_dir, path) =
            scratch("name.toml", "name = \"still-here\"\n[nodes.r1]\nrole = \"nonsense\"\n");
        assert_eq!(name_only(&path).unwrap(), "still-here");
        let (_dir, path) = scratch("noname.toml", "[nodes]\n");
        assert!(name_only(&path).unwrap_err().to_string().contains("no `name"));
    }
}
