//! The state file: what the host has learned at run time (last runs,
//! failures, backoff, pauses and run requests from control messages).
//!
//! The host never writes `heartbeat.json`; everything it records goes here,
//! beside the config by default (`<stem>.state.json`). Writes are atomic:
//! a temporary file in the same directory, fsync, rename, fsync of the
//! directory. Recording an outcome is a pure function ([`record_outcome`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Pause;
use crate::schedule::backoff_ms;

/// The state file's format version.
pub const STATE_VERSION: u32 = 1;

/// Everything the state file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// The status of a run, as recorded and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The check ran and its subject is fine.
    Success,
    /// The check failed (or its handler trapped, timed out, was missing).
    Failed,
    /// The handler decided there was nothing to do.
    Skipped,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        })
    }
}

/// Applies one run's outcome to a check's record (rule 6): success or
/// skipped moves `lastRun` to the tick's time and clears failures; failed
/// keeps `lastRun`, counts the failure and sets the backoff.
pub fn record_outcome(
    record: &mut CheckState,
    tick_ms: u64,
    cadence_ms: u64,
    status: RunStatus,
    duration_us: u64,
    error: Option<String>,
) {
    record.last_status = Some(status);
    record.last_duration_us = Some(duration_us);
    record.last_attempt = Some(tick_ms);
    match status {
        RunStatus::Success | RunStatus::Skipped => {
            record.last_run = Some(tick_ms);
            record.consecutive_failures = 0;
            record.last_error = None;
            record.retry_after = None;
        }
        RunStatus::Failed => {
            record.consecutive_failures = record.consecutive_failures.saturating_add(1);
            record.last_error = error;
            record.retry_after =
                Some(tick_ms.saturating_add(backoff_ms(cadence_ms, record.consecutive_failures)));
        }
    }
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists but is not a state file this host can read.
    #[error(
        "state file {path}:{line}:{column}: {message} (move it aside to start afresh; the host will not overwrite it)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// The default state file for a config: `<dir>/<stem>.state.json`.
pub fn default_path(config_path: &Path) -> PathBuf {
    let stem = config_path
        .file_stem()
        .map_or_else(|| "heartbeat".into(), |s| s.to_string_lossy().into_owned());
    config_path.with_file_name(format!("{stem}.state.json"))
}

/// Reads the state file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<State, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let state: State = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if state.version > STATE_VERSION {
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
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

/// Writes the state file atomically.
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomically(path, &bytes).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `bytes` so that readers see the old or the new
/// content, never a mix, and the new content survives a crash once this
/// returns: temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_moves_last_run_and_clears_failures() {
        let mut r = CheckState {
            last_run: Some(1),
            consecutive_failures: 3,
            last_error: Some("boom".into()),
            retry_after: Some(99),
            ..CheckState::default()
        };
        record_outcome(&mut r, 5000, 1000, RunStatus::Success, 12, None);
        assert_eq!(r.last_run, Some(5000));
        assert_eq!(r.consecutive_failures, 0);
        assert_eq!(r.last_error, None);
        assert_eq!(r.retry_after, None);
        assert_eq!(r.last_duration_us, Some(12));
    }

    #[test]
    fn skipped_counts_as_a_run() {
        let mut r = CheckState::default();
        record_outcome(&mut r, 7000, 1000, RunStatus::Skipped, 1, None);
        assert_eq!(r.last_run, Some(7000));
        assert_eq!(r.last_status, Some(RunStatus::Skipped));
    }

    #[test]
    fn failure_keeps_last_run_and_backs_off() {
        let mut r = CheckState {
            last_run: Some(1000),
            ..CheckState::default()
        };
        record_outcome(
            &mut r,
            100_000,
            900_000,
            RunStatus::Failed,
            5,
            Some("timeout".into()),
        );
        assert_eq!(r.last_run, Some(1000));
        assert_eq!(r.consecutive_failures, 1);
        assert_eq!(r.retry_after, Some(130_000));
        record_outcome(
            &mut r,
            130_000,
            900_000,
            RunStatus::Failed,
            5,
            Some("timeout".into()),
        );
        assert_eq!(r.consecutive_failures, 2);
        assert_eq!(r.retry_after, Some(190_000));
        assert_eq!(r.last_error.as_deref(), Some("timeout"));
    }

    #[test]
    fn default_path_sits_beside_the_config() {
        assert_eq!(
            default_path(Path::new("/etc/agent/heartbeat.json")),
            Path::new("/etc/agent/heartbeat.state.json")
        );
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.state.json");
        let mut state = State::default();
        record_outcome(
            state.checks.entry("a".into()).or_default(),
            42,
            10,
            RunStatus::Success,
            3,
            None,
        );
        state.paused.insert("b".into(), Pause::Flag(true));
        save(&path, &state).expect("save");
        assert_eq!(load(&path).expect("load"), state);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("h.state.json")]);
    }

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
    fn missing_file_is_empty_and_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.json");
        assert_eq!(load(&path).expect("missing is fine"), State::default());
        std::fs::write(&path, "{\"checks\": [").expect("write");
        let err = load(&path).expect_err("corrupt").to_string();
        assert!(err.contains("s.json:1:"), "{err}");
    }
}
