//! The value types every room shares: a check's pauses, limits, window and
//! quarters, the status of a run and what it came to (its report, the log
//! records and events of its handler), and a watched process as handlers
//! see it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest `memoryMb` a check may ask for: a 32-bit linear memory's 4 GiB.
pub const MAX_MEMORY_MB: u64 = 4096;

/// A time-of-day window, `HH:MM` to `HH:MM` (both inclusive) in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// First minute of the window, in minutes after local midnight.
    pub start_minute: u16,
    /// Last minute of the window, in minutes after local midnight.
    pub end_minute: u16,
    /// The IANA zone name the window is read in.
    pub tz_name: String,
    /// The zone itself.
    pub tz: jiff::tz::TimeZone,
    /// Whether `tz` was left out and the default zone applied.
    pub tz_defaulted: bool,
}

/// A calendar quarter of the year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Quarter {
    /// January to March.
    Q1,
    /// April to June.
    Q2,
    /// July to September.
    Q3,
    /// October to December.
    Q4,
}

impl Quarter {
    /// The quarter a month (1–12) falls in.
    pub fn of_month(month: i8) -> Quarter {
        match month {
            1..=3 => Quarter::Q1,
            4..=6 => Quarter::Q2,
            7..=9 => Quarter::Q3,
            _ => Quarter::Q4,
        }
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match self {
            Quarter::Q1 => 1,
            Quarter::Q2 => 2,
            Quarter::Q3 => 3,
            Quarter::Q4 => 4,
        };
        write!(f, "Q{n}")
    }
}

/// A pause of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pause {
    /// `true`: paused until resumed (`false` means not paused).
    Flag(bool),
    /// Paused until a time.
    Until {
        /// Milliseconds since the epoch; a past value means not paused.
        until: u64,
        /// Why, for people.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Pause {
    /// Whether the pause holds at `now_ms`.
    pub fn is_active(&self, now_ms: u64) -> bool {
        match self {
            Pause::Flag(paused) => *paused,
            Pause::Until { until, .. } => now_ms < *until,
        }
    }
}

/// Per-run limits of a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one run, in milliseconds.
    pub timeout_ms: u64,
    /// Linear-memory budget of one run, in MiB.
    pub memory_mb: u64,
    /// Log records a run may write.
    pub max_log_lines: u32,
    /// Events a run may emit.
    pub max_events: u32,
    /// Bytes a run may send through log records and events together.
    pub max_output_bytes: u64,
    /// Bytes of one HTTP request body, and of one response body, a run may
    /// send or receive (`grants.http`); a body over it is cut off with the
    /// WASI HTTP body-size error.
    pub max_http_bytes: u64,
    /// Bytes the check's key-value store may hold (keys and values
    /// together); a write over it is an error to the guest, not a trap.
    pub max_kv_bytes: u64,
    /// Connections a run may hold open at once: the HTTP connections the
    /// host makes for it and the sockets it creates (a socket counts until
    /// the run ends). One more is refused to the guest and fails the run.
    pub max_connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 10_000,
            memory_mb: 64,
            max_log_lines: 1_000,
            max_events: 100,
            max_output_bytes: 1 << 20,
            max_http_bytes: 10 << 20,
            max_kv_bytes: 1 << 20,
            max_connections: 16,
        }
    }
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

/// Where a check stands for alerting, Nagios' way: a failure first makes
/// it `soft` (retried, not yet worth a page), `maxAttempts` failures in a
/// row make it `hard`, one success makes it `ok` again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckHealth {
    /// The last result was a success (or the check never failed).
    #[default]
    Ok,
    /// Failing, with fewer than `maxAttempts` failures in a row: retried
    /// every `retryIntervalMs`.
    Soft,
    /// `maxAttempts` failures in a row: back on its cadence.
    Hard,
}

impl CheckHealth {
    /// Every state, in the order a failing check goes through them.
    pub const ALL: [CheckHealth; 3] = [CheckHealth::Ok, CheckHealth::Soft, CheckHealth::Hard];

    /// The name events, the state file and the metrics use (serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckHealth::Ok => "ok",
            CheckHealth::Soft => "soft",
            CheckHealth::Hard => "hard",
        }
    }
}

impl fmt::Display for CheckHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a check's failures turn into states (`retryIntervalMs`,
/// `maxAttempts`, `flapThreshold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failures in a row that make the check hard (Nagios'
    /// `max_check_attempts`); 1, the default, makes the first failure hard.
    pub max_attempts: u32,
    /// The wait between soft retries (Nagios' `retry_interval`); `None`
    /// retries on the failure backoff.
    pub retry_interval_ms: Option<u64>,
    /// More pass/fail changes than this among the last
    /// [`FLAP_WINDOW`] results mark the check flapping; 19 or more never does.
    pub flap_threshold: u32,
}

/// How many recent results flapping is judged over.
pub const FLAP_WINDOW: usize = 20;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            retry_interval_ms: None,
            flap_threshold: 10,
        }
    }
}

/// A watched process, as handed to handlers through `host.processes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    /// The process identifier (routing key after `heartbeat.`).
    pub name: String,
    /// Where it stands.
    pub status: ProcessState,
    /// Its last message body, e.g. `beat/5`.
    pub last_message: String,
    /// When that arrived (ms since epoch).
    pub last_seen_ms: u64,
    /// When the next is due (ms since epoch); `None` once stopped.
    pub expected_by_ms: Option<u64>,
}

/// The liveness states of a watched process (beatit convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Sent `start/W`; a beat is expected within W.
    Starting,
    /// Beating on time.
    Alive,
    /// Sent `degraded/P` and is on time.
    Degraded,
    /// Overdue.
    Late,
    /// Silent for several periods.
    Dead,
    /// Stopped gracefully.
    Stopped,
}

impl ProcessState {
    /// Every state, in the order a process goes through them.
    pub const ALL: [ProcessState; 6] = [
        ProcessState::Starting,
        ProcessState::Alive,
        ProcessState::Degraded,
        ProcessState::Late,
        ProcessState::Dead,
        ProcessState::Stopped,
    ];

    /// The name the liveness file, `/status` and the metrics use (serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Alive => "alive",
            ProcessState::Degraded => "degraded",
            ProcessState::Late => "late",
            ProcessState::Dead => "dead",
            ProcessState::Stopped => "stopped",
        }
    }
}

/// What a run came to: the handler's status, details and reason, and what
/// it wrote through the host functions (already redacted and bounded by the
/// runtime when it leaves it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// success, failed or skipped.
    pub status: RunStatus,
    /// The handler's details (JSON), `{}` when it gave none.
    pub details: serde_json::Value,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall-clock time of the run, instantiation included.
    #[serde(rename = "durationUs")]
    pub duration_us: u64,
    /// Log records the handler wrote.
    pub logs: Vec<LogRecord>,
    /// Events the handler emitted.
    pub events: Vec<EmittedEvent>,
    /// Log records dropped over the run's caps.
    #[serde(rename = "droppedLogs")]
    pub dropped_logs: u32,
}

impl RunReport {
    /// A failed run that never reached a handler (e.g. the handler is missing).
    pub fn failed_before_start(reason: String) -> RunReport {
        RunReport {
            status: RunStatus::Failed,
            details: serde_json::json!({}),
            error: Some(reason),
            duration_us: 0,
            logs: Vec::new(),
            events: Vec::new(),
            dropped_logs: 0,
        }
    }
}

/// A log record a handler wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogRecord {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message.
    pub message: String,
    /// Structured fields, in the order given.
    pub fields: Vec<(String, String)>,
}

/// An event a handler emitted (and the emit rules let through).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EmittedEvent {
    /// The event type, also its routing key.
    pub event_type: String,
    /// The payload.
    pub payload: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_healths_name_is_the_one_serde_writes() {
        for health in CheckHealth::ALL {
            assert_eq!(
                serde_json::to_value(health).expect("serializes"),
                serde_json::json!(health.as_str())
            );
        }
    }

    #[test]
    fn a_process_states_name_is_the_one_serde_writes() {
        for state in ProcessState::ALL {
            assert_eq!(
                serde_json::to_value(state).expect("serializes"),
                serde_json::json!(state.as_str())
            );
        }
    }
}
