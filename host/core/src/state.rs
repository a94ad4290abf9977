//! The state file's contents: what the host has learned at run time (last
//! runs, failures, backoff, pauses and run requests from control
//! messages), as values; reading and writing the file is the host's
//! `store`. The host never writes `heartbeat.json`: everything it records
//! goes here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{CheckHealth, Pause, RunStatus};

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
    /// Where the check stands for alerting: `ok`, `soft` or `hard`.
    #[serde(default, skip_serializing_if = "is_ok")]
    pub state: CheckHealth,
    /// Failures in a row counted toward `maxAttempts` (never above it);
    /// 0 while ok.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// When the check last changed between ok and hard (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_since: Option<u64>,
    /// The last results (at most [`crate::model::FLAP_WINDOW`]), oldest
    /// first: `+` a success, `-` a failure (skips are not results here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recent: String,
    /// Whether the check is flapping (see `flapThreshold`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
}

impl CheckState {
    /// Makes a record read from a file consistent: a check failing in a
    /// file written before states existed is `hard` (its first failure
    /// was, with maxAttempts 1), and `recent` keeps only `+` and `-`, at
    /// most [`crate::model::FLAP_WINDOW`] of them.
    pub(crate) fn settle(&mut self) {
        if self.state == CheckHealth::Ok
            && self.consecutive_failures > 0
            && self.last_status == Some(RunStatus::Failed)
        {
            self.state = CheckHealth::Hard;
            self.attempt = 1;
        }
        if self.recent.chars().any(|c| c != '+' && c != '-')
            || self.recent.len() > crate::model::FLAP_WINDOW
        {
            let kept: Vec<char> = self
                .recent
                .chars()
                .filter(|c| matches!(c, '+' | '-'))
                .collect();
            let from = kept.len().saturating_sub(crate::model::FLAP_WINDOW);
            self.recent = kept[from..].iter().collect();
        }
    }
}

fn is_ok(health: &CheckHealth) -> bool {
    *health == CheckHealth::Ok
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
        let mut state: State = serde_json::from_str(text).map_err(|e| Unreadable {
            line: e.line(),
            // serde_json gives column 0 at the very start of a line (an
            // empty file, the end of input after a newline).
            column: e.column().max(1),
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
        for record in state.checks.values_mut() {
            record.settle();
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

/// How far in the future a recorded `lastRun` or `retryAfter` may lie
/// before it is taken for damage (a hand edit, a clock that was far ahead):
/// one day, beyond any clock skew. (A backoff the host sets is at most the
/// check's cadence, so a check with a cadence over a day loses a longer
/// backoff to this, once, after a restart.)
pub const FUTURE_HORIZON_MS: u64 = 24 * 3600 * 1000;

impl State {
    /// Brings `lastRun` and `retryAfter` values more than
    /// [`FUTURE_HORIZON_MS`] after `now_ms` back to `now_ms`, and says
    /// which: such a value (`u64::MAX`, say) would stop its check for
    /// good without a word. `lastRun` at now waits one cadence; a
    /// `retryAfter` at now retries at once.
    pub fn clamp_future(&mut self, now_ms: u64) -> Vec<String> {
        let limit = now_ms.saturating_add(FUTURE_HORIZON_MS);
        let mut said = Vec::new();
        let mut names: Vec<&String> = self.checks.keys().collect();
        names.sort();
        let names: Vec<String> = names.into_iter().cloned().collect();
        for name in names {
            let Some(check) = self.checks.get_mut(&name) else {
                continue;
            };
            for (field, value) in [
                ("lastRun", &mut check.last_run),
                ("retryAfter", &mut check.retry_after),
            ] {
                if let Some(v) = *value
                    && v > limit
                {
                    said.push(format!(
                        "checks.{name}.{field}: {v} is more than a day in the future; using now ({now_ms})"
                    ));
                    *value = Some(now_ms);
                }
            }
        }
        said
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
    fn an_error_at_the_start_of_a_line_is_at_column_1_not_0() {
        for (text, line) in [("", 1), ("{\n", 2), ("{\n  \"checks\": {\n", 3)] {
            let e = State::parse(text).expect_err("not a state");
            assert_eq!((e.line, e.column), (line, 1), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_version_0_state_file_still_reads() {
        let state = State::parse(r#"{"version": 0, "checks": {"a": {"lastRun": 5}}}"#)
            .expect("version 0 reads");
        assert_eq!(state.checks["a"].last_run, Some(5));
        assert!(State::parse(r#"{"version": 2, "checks": {}}"#).is_err());
    }

    #[test]
    fn hardening_7_a_last_run_or_retry_after_far_in_the_future_is_clamped_and_said() {
        let now = 1_767_225_600_000;
        let mut state = State::parse(&format!(
            r#"{{"checks": {{"b": {{"lastRun": {max}, "retryAfter": {soon}}}, "a": {{"retryAfter": {max}}}}}}}"#,
            max = u64::MAX,
            soon = now + 60_000
        ))
        .expect("parses");
        let said = state.clamp_future(now);
        assert_eq!(
            said,
            [
                format!(
                    "checks.a.retryAfter: {} is more than a day in the future; using now ({now})",
                    u64::MAX
                ),
                format!(
                    "checks.b.lastRun: {} is more than a day in the future; using now ({now})",
                    u64::MAX
                ),
            ]
        );
        assert_eq!(state.checks["a"].retry_after, Some(now));
        assert_eq!(state.checks["b"].last_run, Some(now));
        // A backoff a minute away is left as it is.
        assert_eq!(state.checks["b"].retry_after, Some(now + 60_000));
        assert!(state.clamp_future(now).is_empty());
    }
}
