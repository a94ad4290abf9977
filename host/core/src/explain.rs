//! `heartbeat-host explain`: what would run at an instant, and why.
//!
//! The answer comes from [`schedule::plan`], the function the running host
//! selects with, so the two cannot disagree. Everything here is pure: the
//! caller loads the config and the state and picks the instant; this module
//! turns the plan into the JSON object scripts rely on ([`to_json`]) and a
//! table a person reads at a glance ([`render_table`]).

use std::collections::HashSet;

use serde::Serialize;

use crate::config::HeartbeatConfig;
use crate::model::CheckHealth;
use crate::schedule::{self, NotRunning, Ratio};
use crate::state::State;

/// Why `--at` was refused.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    /// Not an RFC 3339 timestamp.
    #[error("expected an RFC 3339 time such as 2026-01-01T09:30:00Z, found {text:?} ({reason})")]
    Syntax {
        /// What was given.
        text: String,
        /// The parser's reason.
        reason: String,
    },
    /// Before the Unix epoch.
    #[error("{0:?} is before 1970-01-01T00:00:00Z")]
    BeforeEpoch(String),
}

/// Parses an RFC 3339 instant (`2026-01-01T09:30:00Z`, `…+02:00`) into ms
/// since the epoch; fractions of a millisecond are dropped.
pub fn parse_at(text: &str) -> Result<u64, AtError> {
    let timestamp: jiff::Timestamp =
        text.trim()
            .parse()
            .map_err(|e: jiff::Error| AtError::Syntax {
                text: text.to_string(),
                reason: e.to_string(),
            })?;
    u64::try_from(timestamp.as_millisecond()).map_err(|_| AtError::BeforeEpoch(text.to_string()))
}

/// One check's standing at the instant.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckExplanation {
    /// The check's name.
    pub name: String,
    /// Its handler.
    pub handler: String,
    /// Rule 1 allows it (enabled, not paused, in window and quarter, not
    /// running, not backing off).
    pub eligible: bool,
    /// Eligible and overdue (ratio above 1.0), or asked to run.
    pub due: bool,
    /// Its place in the run order (0 first) when it runs at the instant.
    pub run_position: Option<usize>,
    /// How overdue it is.
    pub ratio: Ratio,
    /// The `lastRun` the ratio comes from (ms since epoch; 0: never ran).
    pub last_run_ms: u64,
    /// When the ratio passes 1.0 (due just after); `None` when always due.
    pub next_due_ms: Option<u64>,
    /// Why it is not eligible or not due; `None` when due.
    pub blocked: Option<NotRunning>,
    /// Whether it is due but more overdue checks took the tick (`maxPerTick`).
    pub tick_full: bool,
    /// Where it stands for alerting (ok, soft, hard).
    pub health: CheckHealth,
    /// Failures in a row counted toward `max_attempts`.
    pub attempt: u32,
    /// The check's `maxAttempts`.
    pub max_attempts: u32,
    /// Whether it is flapping.
    pub flapping: bool,
}

impl CheckExplanation {
    /// Why the check is not eligible or not due, for people; empty when it is due.
    pub fn reason(&self) -> String {
        match &self.blocked {
            None => String::new(),
            Some(NotRunning::Backoff { retry_after_ms, .. })
                if self.health == CheckHealth::Soft =>
            {
                format!(
                    "soft failure {}/{}: retried after {}",
                    self.attempt,
                    self.max_attempts,
                    schedule::format_ms(*retry_after_ms)
                )
            }
            Some(NotRunning::NotDue) => match self.next_due_ms {
                Some(next) => format!(
                    "not due: ratio {} ≤ 1.0, due after {}",
                    format_ratio(self.ratio),
                    schedule::format_ms(next)
                ),
                None => "not due".to_string(),
            },
            Some(other) => other.to_string(),
        }
    }

    /// The STATE column: `ok`, `soft 1/3`, `hard 3/3`, with `, flapping`.
    pub fn state(&self) -> String {
        let mut out = match self.health {
            CheckHealth::Ok => "ok".to_string(),
            other => format!("{other} {}/{}", self.attempt, self.max_attempts),
        };
        if self.flapping {
            out.push_str(", flapping");
        }
        out
    }

    /// One word or two for the STATUS column.
    pub fn status(&self) -> String {
        if let Some(position) = self.run_position {
            return format!("runs #{}", position + 1);
        }
        if self.tick_full {
            return "due, waits".to_string();
        }
        match &self.blocked {
            None => "due".to_string(),
            Some(NotRunning::Disabled) => "disabled".to_string(),
            Some(NotRunning::Paused { .. }) => "paused".to_string(),
            Some(NotRunning::OutsideWindow) => "off-window".to_string(),
            Some(NotRunning::WrongQuarter(_)) => "off-quarter".to_string(),
            Some(NotRunning::StillRunning) => "running".to_string(),
            Some(NotRunning::Backoff { .. }) => "backoff".to_string(),
            Some(NotRunning::NotDue) => "waiting".to_string(),
            Some(NotRunning::TickFull) => "due, waits".to_string(),
        }
    }
}

/// What would happen on a tick at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The instant (ms since epoch).
    pub at_ms: u64,
    /// `maxPerTick` in force.
    pub max_per_tick: usize,
    /// The names of the checks that would run, in run order.
    pub selected: Vec<String>,
    /// Every check, in file order.
    pub checks: Vec<CheckExplanation>,
}

/// Explains a tick at `at_ms` with `config` and `state`. No run is taken to
/// be in flight: a live host's runs in progress are not in the state file.
pub fn explain(config: &HeartbeatConfig, state: &State, at_ms: u64) -> Explanation {
    explain_live(config, state, &HashSet::new(), at_ms)
}

/// [`explain`] as a live host sees it, with the checks in `running` in
/// flight (they read "running", not due again).
pub fn explain_live(
    config: &HeartbeatConfig,
    state: &State,
    running: &HashSet<String>,
    at_ms: u64,
) -> Explanation {
    let plan = schedule::plan(config, state, running, at_ms);
    let checks = plan
        .checks
        .iter()
        .map(|evaluation| {
            let check = &config.checks[evaluation.index];
            let tick_full = evaluation.not_running == Some(NotRunning::TickFull);
            let record = state.checks.get(&check.name);
            CheckExplanation {
                name: check.name.clone(),
                handler: check.handler.clone(),
                eligible: evaluation.eligible,
                due: evaluation.is_due(),
                run_position: plan.selected.iter().position(|&i| i == evaluation.index),
                ratio: evaluation.ratio,
                last_run_ms: evaluation.last_run_ms,
                next_due_ms: evaluation.next_due_ms,
                blocked: evaluation.not_running.clone().filter(|_| !tick_full),
                tick_full,
                health: record.map_or(CheckHealth::Ok, |r| r.state),
                attempt: record.map_or(0, |r| r.attempt),
                max_attempts: check.retry.max_attempts,
                flapping: record.is_some_and(|r| r.flapping),
            }
        })
        .collect();
    Explanation {
        at_ms,
        max_per_tick: config.max_per_tick,
        selected: plan
            .selected
            .iter()
            .map(|&i| config.checks[i].name.clone())
            .collect(),
        checks,
    }
}

/// The `--json` object. Its shape is a contract with scripts:
/// `{"at", "selected", "checks": [{"name", "handler", "eligible", "due", "ratio", "reason",
/// "state", "attempt", "flapping"}]}`, `ratio` null when infinite, `reason`
/// empty when the check is due.
#[derive(Debug, Serialize)]
pub struct JsonExplanation<'a> {
    /// The instant, RFC 3339 in UTC.
    pub at: String,
    /// Names in run order.
    pub selected: &'a [String],
    /// Every check, in file order.
    pub checks: Vec<JsonCheck<'a>>,
}

/// One check in the `--json` object.
#[derive(Debug, Serialize)]
pub struct JsonCheck<'a> {
    /// The check's name.
    pub name: &'a str,
    /// Its handler.
    pub handler: &'a str,
    /// Rule 1 allows it.
    pub eligible: bool,
    /// Eligible and overdue.
    pub due: bool,
    /// `(now − lastRun) / cadenceMs`; `None` (null) when infinite.
    pub ratio: Option<f64>,
    /// Why not eligible or not due; empty otherwise.
    pub reason: String,
    /// `ok`, `soft` or `hard`.
    pub state: CheckHealth,
    /// Failures in a row counted toward `maxAttempts`.
    pub attempt: u32,
    /// Whether the check is flapping.
    pub flapping: bool,
}

/// The explanation as the `--json` object.
pub fn to_json(explanation: &Explanation) -> JsonExplanation<'_> {
    JsonExplanation {
        at: schedule::format_ms(explanation.at_ms),
        selected: &explanation.selected,
        checks: explanation
            .checks
            .iter()
            .map(|c| JsonCheck {
                name: &c.name,
                handler: &c.handler,
                eligible: c.eligible,
                due: c.due,
                ratio: match c.ratio {
                    Ratio::Finite(r) => Some(r),
                    Ratio::Infinite => None,
                },
                reason: c.reason(),
                state: c.health,
                attempt: c.attempt,
                flapping: c.flapping,
            })
            .collect(),
    }
}

/// The explanation as a table, headed by a line that says what runs:
/// NAME, HANDLER, LAST RUN, NEXT DUE, RATIO, STATUS, STATE, REASON.
pub fn render_table(explanation: &Explanation) -> String {
    let at = explanation.at_ms;
    let header = [
        "NAME", "HANDLER", "LAST RUN", "NEXT DUE", "RATIO", "STATUS", "STATE", "REASON",
    ];
    let mut rows: Vec<[String; 8]> = vec![header.map(str::to_string)];
    for c in &explanation.checks {
        let last_run = if c.last_run_ms == 0 {
            "never".to_string()
        } else {
            format_when(c.last_run_ms, at)
        };
        let next_due = match c.next_due_ms {
            None => "every tick".to_string(),
            Some(_) if c.last_run_ms == 0 => "now (never ran)".to_string(),
            Some(next) => format_when(next, at),
        };
        let reason = if c.tick_full {
            format!(
                "more overdue checks fill maxPerTick ({})",
                explanation.max_per_tick
            )
        } else {
            c.reason()
        };
        rows.push([
            c.name.clone(),
            c.handler.clone(),
            last_run,
            next_due,
            format_ratio(c.ratio),
            c.status(),
            c.state(),
            reason,
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "At {}: {}\n\n",
        schedule::format_ms(at),
        if explanation.selected.is_empty() {
            "nothing runs".to_string()
        } else {
            format!(
                "runs {} (maxPerTick {})",
                explanation.selected.join(", "),
                explanation.max_per_tick
            )
        }
    ));
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i == row.len() - 1 {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if explanation.checks.is_empty() {
        out.push_str("(no checks)\n");
    }
    out
}

/// A ratio for people: two decimals, `1.8e12` from a million up (a check
/// that never ran), `inf` when always due.
pub fn format_ratio(ratio: Ratio) -> String {
    match ratio {
        Ratio::Infinite => "inf".to_string(),
        Ratio::Finite(r) if r.abs() >= 1e6 => format!("{r:.1e}"),
        Ratio::Finite(r) => format!("{r:.2}"),
    }
}

/// `2026-01-01 09:30:00 UTC (5m ago)`, relative to `at_ms`.
pub fn format_when(ms: u64, at_ms: u64) -> String {
    let absolute = crate::time::timestamp(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    let relative = if ms > at_ms {
        format!("in {}", format_span(ms - at_ms))
    } else if ms < at_ms {
        format!("{} ago", format_span(at_ms - ms))
    } else {
        "now".to_string()
    };
    format!("{absolute} ({relative})")
}

/// A duration in its largest whole unit: `450ms`, `12s`, `5m`, `3h`, `2d`, `4y`.
pub fn format_span(ms: u64) -> String {
    const UNITS: [(u64, &str); 6] = [
        (365 * 86_400_000, "y"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    for (size, unit) in UNITS {
        if ms >= size {
            return format!("{}{unit}", ms / size);
        }
    }
    "0ms".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::state::CheckState;

    const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn config(json: &str) -> HeartbeatConfig {
        parse(json, "test.json").expect("valid").config
    }

    const MIXED: &str = r#"{"maxPerTick": 1, "checks": {
        "every": {"cadenceMs": 0},
        "late": {"cadenceMs": 1000, "lastRun": 1767225590000, "handler": "h"},
        "fresh": {"cadenceMs": 60000, "lastRun": 1767225570000},
        "off": {"enabled": false}
    }}"#;

    #[test]
    fn explanation_follows_the_plan() {
        let c = config(MIXED);
        let e = explain(&c, &State::default(), T0);
        assert_eq!(e.selected, ["every"]);
        let by_name = |n: &str| e.checks.iter().find(|c| c.name == n).expect("check");
        assert_eq!(by_name("every").run_position, Some(0));
        assert!(by_name("late").due && by_name("late").tick_full);
        assert!(by_name("fresh").eligible && !by_name("fresh").due);
        assert!(!by_name("off").eligible && !by_name("off").due);
    }

    #[test]
    fn json_has_the_documented_shape() {
        let c = config(MIXED);
        let json =
            serde_json::to_value(to_json(&explain(&c, &State::default(), T0))).expect("serialises");
        assert_eq!(json["at"], "2026-01-01T00:00:00Z");
        assert_eq!(json["selected"], serde_json::json!(["every"]));
        let checks = json["checks"].as_array().expect("array");
        let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["every", "late", "fresh", "off"], "file order");
        for check in checks {
            let keys: Vec<&String> = check.as_object().expect("object").keys().collect();
            assert_eq!(
                keys,
                [
                    "name", "handler", "eligible", "due", "ratio", "reason", "state", "attempt",
                    "flapping"
                ]
            );
        }
        assert_eq!(
            checks[0]["ratio"],
            serde_json::Value::Null,
            "infinite is null"
        );
        assert_eq!(checks[0]["reason"], "");
        assert_eq!(checks[1]["handler"], "h");
        assert_eq!(checks[1]["ratio"], 10.0);
        assert_eq!(
            checks[1]["reason"], "",
            "due: no reason, though the tick is full"
        );
        assert_eq!(checks[2]["ratio"], 0.5);
        assert_eq!(
            checks[2]["reason"],
            "not due: ratio 0.50 ≤ 1.0, due after 2026-01-01T00:00:30Z"
        );
        assert_eq!(checks[3]["reason"], "disabled");
        assert_eq!(checks[3]["eligible"], false);
    }

    #[test]
    fn backoff_and_pause_reasons_are_spelled_out() {
        let c = config(
            r#"{"checks": {"flaky": {"cadenceMs": 10}, "held": {}},
            "paused": {"held": {"until": 1767229200000, "reason": "migration"}}}"#,
        );
        let mut state = State::default();
        state.checks.insert(
            "flaky".into(),
            CheckState {
                consecutive_failures: 2,
                retry_after: Some(T0 + 60_000),
                ..CheckState::default()
            },
        );
        let e = explain(&c, &state, T0);
        assert_eq!(
            e.checks[0].reason(),
            "backing off after 2 failures until 2026-01-01T00:01:00Z"
        );
        assert_eq!(e.checks[0].status(), "backoff");
        assert_eq!(
            e.checks[1].reason(),
            "paused until 2026-01-01T01:00:00Z: migration"
        );
    }

    #[test]
    fn table_has_a_header_a_row_per_check_and_aligned_columns() {
        let c = config(MIXED);
        let table = render_table(&explain(&c, &State::default(), T0));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "At 2026-01-01T00:00:00Z: runs every (maxPerTick 1)"
        );
        assert!(lines[2].starts_with("NAME "), "{table}");
        let status_col = lines[2].find("STATUS").expect("STATUS column");
        assert_eq!(lines.len(), 3 + 4, "{table}");
        for (line, status) in
            lines[3..]
                .iter()
                .zip(["runs #1", "due, waits", "waiting", "disabled"])
        {
            assert_eq!(
                &line[status_col..status_col + status.len()],
                status,
                "{table}"
            );
        }
        assert!(
            lines[3].contains("never") && lines[3].contains("every tick"),
            "{table}"
        );
        assert!(lines[6].contains("now (never ran)"), "{table}");
        assert!(
            lines[4].contains("2025-12-31 23:59:50 UTC (10s ago)"),
            "{table}"
        );
        assert!(lines[4].contains("more overdue checks fill maxPerTick (1)"));
    }

    #[test]
    fn at_takes_rfc3339_with_any_offset() {
        assert_eq!(parse_at("2026-01-01T00:00:00Z").expect("utc"), T0);
        assert_eq!(parse_at("2026-01-01T01:00:00+01:00").expect("offset"), T0);
        assert_eq!(parse_at("2026-01-01T00:00:00.250Z").expect("ms"), T0 + 250);
        assert!(parse_at("tomorrow").is_err());
        assert!(parse_at("1960-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn spans_use_the_largest_whole_unit() {
        assert_eq!(format_span(450), "450ms");
        assert_eq!(format_span(12_345), "12s");
        assert_eq!(format_span(5 * 60_000 + 1), "5m");
        assert_eq!(format_span(0), "0ms");
        assert_eq!(format_ratio(Ratio::Finite(1_767_226_200_000.0)), "1.8e12");
        assert_eq!(format_ratio(Ratio::Finite(0.166)), "0.17");
        assert_eq!(format_ratio(Ratio::Infinite), "inf");
        assert_eq!(format_when(T0, T0), "2026-01-01 00:00:00 UTC (now)");
        assert_eq!(
            format_when(T0 + 90_000, T0),
            "2026-01-01 00:01:30 UTC (in 1m)"
        );
    }

    #[test]
    fn a_soft_check_says_its_attempt_and_when_it_is_retried() {
        let c = config(
            r#"{"checks": {"api": {"cadenceMs": 60000, "maxAttempts": 3, "retryIntervalMs": 5000}}}"#,
        );
        let mut state = State::default();
        let record = state.checks.entry("api".into()).or_default();
        crate::schedule::record_outcome(
            record,
            T0,
            60_000,
            &c.checks[0].retry,
            crate::model::RunStatus::Failed,
            1,
            Some("status 500".into()),
        );
        let e = explain(&c, &state, T0 + 1_000);
        let api = &e.checks[0];
        assert_eq!(api.state(), "soft 1/3");
        assert_eq!(
            api.reason(),
            "soft failure 1/3: retried after 2026-01-01T00:00:05Z"
        );
        let table = render_table(&e);
        assert!(
            table.lines().nth(2).is_some_and(|h| h.contains("STATE")),
            "{table}"
        );
        assert!(table.contains("soft 1/3"), "{table}");
        let json = serde_json::to_value(to_json(&e)).expect("serialises");
        assert_eq!(json["checks"][0]["state"], "soft");
        assert_eq!(json["checks"][0]["attempt"], 1);
    }
}
