//! The state file's contents: what the host has learned at run time (last
//! runs, failures, backoff, pauses and run requests from control
//! messages), as values; reading and writing the file is the host's
//! `store`. The host never writes `heartbeat.json`: everything it records
//! goes here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{Pause, RunStatus};

/// The state file's format version.
pub const STATE_VERSION: u32 = 1;

/// Everything the state file holds. A new state is at [`STATE_VERSION`];
/// files without a version, or at version 0 (what hosts before it wrote),
/// read the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Format version ([`STATE_VERSION`]).
    #[serde(default = "state_version")]
    pub version: u32,
    /// Per-check records, by check name. A hash map with a fast hasher:
    /// selection looks every check up on every tick (see
    /// `benches/selection.rs`); the file is still written sorted by name.
    #[serde(default, serialize_with = "sorted_by_name")]
    pub checks: foldhash::HashMap<String, CheckState>,
    /// Pauses set at run time, by check name (combined with the file's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paused: BTreeMap<String, Pause>,
    /// Checks asked to run on the next tick whatever their ratio.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub run_requests: BTreeSet<String>,
}

fn state_version() -> u32 {
    STATE_VERSION
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            checks: foldhash::HashMap::default(),
            paused: BTreeMap::new(),
            run_requests: BTreeSet::new(),
        }
    }
}

fn sorted_by_name<S: serde::Serializer>(
    checks: &foldhash::HashMap<String, CheckState>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let sorted: BTreeMap<&String, &CheckState> = checks.iter().collect();
    sorted.serialize(serializer)
}

/// What the host recorded about one check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckState {
    /// Time (ms since epoch) of the tick of the last success or skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<u64>,
    /// Status of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<RunStatus>,
    /// How long the last run took, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_us: Option<u64>,
    /// Time (ms since epoch) of the tick of the last attempt, whatever its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<u64>,
    /// Failed runs in a row.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Reason of the last failure, while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Not eligible before this time (ms since epoch), while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Why a state file's text is not a state this host can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct Unreadable {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl State {
    /// Reads a state file's text; a version newer than [`STATE_VERSION`] is
    /// refused rather than misread.
    pub fn parse(text: &str) -> Result<State, Unreadable> {
        let state: State = serde_json::from_str(text).map_err(|e| Unreadable {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if state.version > STATE_VERSION {
            return Err(Unreadable {
                line: 1,
                column: 1,
                message: format!(
                    "version {} is newer than this host's {STATE_VERSION}",
                    state.version
                ),
            });
        }
        Ok(state)
    }

    /// The file's text: pretty JSON, checks sorted by name, a final newline.
    pub fn to_text(&self) -> Vec<u8> {
        // A map of strings and numbers always serialises.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_written_sorted_by_name() {
        let mut state = State::default();
        for name in ["zeta", "alpha", "mid"] {
            state.checks.insert(name.into(), CheckState::default());
        }
        let text = serde_json::to_string(&state).expect("serialise");
        let at = |n: &str| text.find(&format!("\"{n}\"")).expect("written");
        assert!(at("alpha") < at("mid") && at("mid") < at("zeta"), "{text}");
    }

    #[test]
    fn the_state_file_is_written_with_version_1() {
        let text = String::from_utf8(State::default().to_text()).expect("utf-8");
        let written: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(written["version"], 1, "{text}");
    }

    #[test]
    fn a_version_0_state_file_still_reads() {
        let state = State::parse(r#"{"version": 0, "checks": {"a": {"lastRun": 5}}}"#)
            .expect("version 0 reads");
        assert_eq!(state.checks["a"].last_run, Some(5));
        assert!(State::parse(r#"{"version": 2, "checks": {}}"#).is_err());
    }
}
