//! `ConfigAnswer`: what `PUT /v1/config` returns. node-agent writes it and
//! `pi-lab provision` reads it, so an answer the agent did not give (a
//! garbled 200, another server's JSON) is an error on the client, never
//! "applied".

use serde::{Deserialize, Serialize};

/// The agent's verdict on a pushed config, one variant per outcome, as
/// JSON tagged by `result` (`{"result": "applied", "version": ..., ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ConfigAnswer {
    /// Applied, reconciled and saved as last-good (HTTP 200).
    Applied { version: String, changes: u32 },
    /// Refused before anything changed (HTTP 400).
    Invalid { reasons: Vec<String> },
    /// Applying failed; the previous config is applied again (HTTP 409).
    RolledBack { error: String, rolled_back_to: String },
    /// Applying failed and there was no previous config to go back to; the
    /// node keeps trying this one (HTTP 409).
    NoPreviousConfig { error: String },
    /// Applying failed, and so did going back to the previous config: the
    /// node runs neither cleanly and keeps trying the previous one (HTTP 500).
    RollbackFailed { error: String, rolled_back_to: String, rollback_error: String },
    /// The agent could not try: it is stopping, cannot read the kernel's
    /// state, or applied the config but could not save it (HTTP 500).
    NotApplied { error: String },
}

/// Why an answer to `PUT /v1/config` is not one the agent gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("HTTP {status} with a body that is not a config answer: {reason}")]
    Garbled { status: u16, reason: String },
    #[error("HTTP {status} does not go with the answer {result:?}")]
    Mismatch { status: u16, result: &'static str },
    #[error("the answer says applied but names no config version")]
    NoVersion,
}

impl ConfigAnswer {
    /// The HTTP status that carries this answer.
    pub fn status(&self) -> u16 {
        match self {
            ConfigAnswer::Applied { .. } => 200,
            ConfigAnswer::Invalid { .. } => 400,
            ConfigAnswer::RolledBack { .. } | ConfigAnswer::NoPreviousConfig { .. } => 409,
            ConfigAnswer::RollbackFailed { .. } | ConfigAnswer::NotApplied { .. } => 500,
        }
    }

    /// The `result` tag, for messages.
    pub fn result(&self) -> &'static str {
        match self {
            ConfigAnswer::Applied { .. } => "applied",
            ConfigAnswer::Invalid { .. } => "invalid",
            ConfigAnswer::RolledBack { .. } => "rolled_back",
            ConfigAnswer::NoPreviousConfig { .. } => "no_previous_config",
            ConfigAnswer::RollbackFailed { .. } => "rollback_failed",
            ConfigAnswer::NotApplied { .. } => "not_applied",
        }
    }

    /// Whether a status can carry a config answer at all (others are plain
    /// HTTP errors: 401, 413, ...).
    pub fn carried_by(status: u16) -> bool {
        matches!(status, 200 | 400 | 409 | 500)
    }

    /// Read an answer the way a client must: the body is a `ConfigAnswer`
    /// and the status line agrees with it.
    pub fn from_http(status: u16, body: &str) -> Result<ConfigAnswer, AnswerError> {
        let answer: ConfigAnswer = serde_json::from_str(body)
            .map_err(|e| AnswerError::Garbled { status, reason: e.to_string() })?;
        if answer.status() != status {
            return Err(AnswerError::Mismatch { status, result: answer.result() });
        }
        if matches!(&answer, ConfigAnswer::Applied { version, .. } if version.is_empty()) {
            return Err(AnswerError::NoVersion);
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_with_their_status() {
        let answers = [
            ConfigAnswer::Applied { version: "v1".into(), changes: 3 },
            ConfigAnswer::Invalid { reasons: vec!["VNI 0".into()] },
            ConfigAnswer::RolledBack { error: "frr".into(), rolled_back_to: "v0".into() },
            ConfigAnswer::NoPreviousConfig { error: "frr".into() },
            ConfigAnswer::RollbackFailed {
                error: "frr".into(),
                rolled_back_to: "v0".into(),
                rollback_error: "eth4 missing".into(),
            },
            ConfigAnswer::NotApplied { error: "stopping".into() },
        ];
        for answer in answers {
            let json = serde_json::to_string(&answer).unwrap_or_default();
            assert!(json.contains(&format!("\"result\":\"{}\"", answer.result())), "{json}");
            assert_eq!(ConfigAnswer::from_http(answer.status(), &json), Ok(answer));
        }
    }

    #[test]
    fn garbled_or_mismatched_answers_are_errors() {
        let garbled = ["", "{}", "OK", r#"{"applied": true}"#, r#"{"result": "applied"}"#];
        for body in garbled {
            assert!(
                matches!(ConfigAnswer::from_http(200, body), Err(AnswerError::Garbled { .. })),
                "{body:?}"
            );
        }
        let rolled_back = r#"{"result": "rolled_back", "error": "x", "rolled_back_to": "v0"}"#;
        assert_eq!(
            ConfigAnswer::from_http(200, rolled_back),
            Err(AnswerError::Mismatch { status: 200, result: "rolled_back" })
        );
        let no_version = r#"{"result": "applied", "version": "", "changes": 0}"#;
        assert_eq!(ConfigAnswer::from_http(200, no_version), Err(AnswerError::NoVersion));
    }
}
