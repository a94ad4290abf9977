//! Which checks run on a tick, and why: pure functions of the config, the
//! recorded state and the tick's time. No clock, no files.
//!
//! The rules are heartbeat-consumer's (a check is due when
//! `(now − lastRun) / cadenceMs > 1.0`; the most overdue runs, lower
//! `priority` breaking ties) with its gaps closed: windows, quarters, pauses,
//! failure backoff and checks still running are all honoured here, and the
//! host and `heartbeat-host explain` share this one implementation.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::config::{CheckConfig, HeartbeatConfig};
use crate::model::{CheckHealth, Pause, Quarter, RetryPolicy, RunStatus, Window};
use crate::soft_hard::Verdict;
use crate::state::{CheckState, State};

/// The longest failure backoff step before the cadence caps it: 30 s × 2^(n−1).
pub const BACKOFF_BASE_MS: u64 = 30_000;

/// How far a check is past its cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ratio {
    /// `(now − lastRun) / cadenceMs`.
    Finite(f64),
    /// `cadenceMs` is 0: always overdue.
    Infinite,
}

impl Ratio {
    /// The ratio as a number (`f64::INFINITY` for [`Ratio::Infinite`]).
    pub fn value(self) -> f64 {
        match self {
            Ratio::Finite(r) => r,
            Ratio::Infinite => f64::INFINITY,
        }
    }

    /// Whether the check is due: the ratio is strictly above 1.0.
    pub fn is_due(self) -> bool {
        self.value() > 1.0
    }
}

/// Why a check will not run on this tick.
#[derive(Debug, Clone, PartialEq)]
pub enum NotRunning {
    /// `enabled` is false.
    Disabled,
    /// Paused in the file or at run time.
    Paused {
        /// Until when (ms since epoch), or `None` until resumed.
        until_ms: Option<u64>,
        /// Why, when someone said.
        reason: Option<String>,
    },
    /// Outside its time-of-day window.
    OutsideWindow,
    /// The current quarter is not in `triggerOnQuarters`.
    WrongQuarter(Quarter),
    /// A run from an earlier tick has not finished.
    StillRunning,
    /// Failed recently; eligible again at this time.
    Backoff {
        /// ms since epoch.
        retry_after_ms: u64,
        /// Failures in a row so far.
        failures: u32,
    },
    /// Eligible, but its ratio is not above 1.0.
    NotDue,
    /// Due, but `maxPerTick` more overdue checks took this tick.
    TickFull,
}

impl std::fmt::Display for NotRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRunning::Disabled => f.write_str("disabled"),
            NotRunning::Paused { until_ms, reason } => {
                f.write_str("paused")?;
                if let Some(until) = until_ms {
                    write!(f, " until {}", format_ms(*until))?;
                }
                if let Some(reason) = reason {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
            NotRunning::OutsideWindow => f.write_str("outside its window"),
            NotRunning::WrongQuarter(q) => write!(f, "not triggered in {q}"),
            NotRunning::StillRunning => f.write_str("still running from an earlier tick"),
            NotRunning::Backoff {
                retry_after_ms,
                failures,
            } => write!(
                f,
                "backing off after {failures} failure{} until {}",
                if *failures == 1 { "" } else { "s" },
                format_ms(*retry_after_ms)
            ),
            NotRunning::NotDue => f.write_str("not due"),
            NotRunning::TickFull => f.write_str("due, but maxPerTick reached"),
        }
    }
}

pub use crate::time::format_ms;

/// One check's standing on one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Index of the check in the config's `checks` (file order).
    pub index: usize,
    /// Whether rules 1 (enabled, pause, window, quarter, running, backoff) allow it.
    pub eligible: bool,
    /// How overdue it is.
    pub ratio: Ratio,
    /// The `lastRun` the ratio was computed from (ms since epoch).
    pub last_run_ms: u64,
    /// When the ratio passes 1.0 (ms since epoch); `None` when always due.
    pub next_due_ms: Option<u64>,
    /// Whether someone asked for it to run now (control message).
    pub run_requested: bool,
    /// `None` when it runs on this tick.
    pub not_running: Option<NotRunning>,
}

impl Evaluation {
    /// Whether the check is due (eligible and overdue, or asked to run).
    pub fn is_due(&self) -> bool {
        self.eligible && (self.run_requested || self.ratio.is_due())
    }
}

/// The outcome of evaluating every check on one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The tick's time (ms since epoch).
    pub now_ms: u64,
    /// Every check, in file order.
    pub checks: Vec<Evaluation>,
    /// Indices into `checks` (and the config's `checks`) that run, in run order.
    pub selected: Vec<usize>,
}

/// Evaluates every check of `config` at `now_ms` and picks up to
/// `maxPerTick` to run: checks asked to run now first, then higher ratio,
/// then lower `priority`, then file order.
pub fn plan(
    config: &HeartbeatConfig,
    state: &State,
    running: &HashSet<String>,
    now_ms: u64,
) -> Plan {
    let mut tick = TickView::new(config, state, running, now_ms);
    let mut checks: Vec<Evaluation> = config
        .checks
        .iter()
        .enumerate()
        .map(|(index, check)| evaluate(index, check, &mut tick))
        .collect();

    let mut due: Vec<RunKey> = checks
        .iter()
        .filter(|e| e.is_due())
        .map(|e| RunKey {
            run_requested: e.run_requested,
            ratio: e.ratio.value(),
            priority: config.checks[e.index].priority,
            index: e.index,
        })
        .collect();
    // Only the first maxPerTick need ordering: partition them off first, in
    // linear time (the order is total, so the result does not depend on how).
    let late = if due.len() > config.max_per_tick {
        due.select_nth_unstable_by(config.max_per_tick, RunKey::run_order);
        due.split_off(config.max_per_tick)
    } else {
        Vec::new()
    };
    due.sort_by(RunKey::run_order);
    for key in late {
        checks[key.index].not_running = Some(NotRunning::TickFull);
    }
    Plan {
        now_ms,
        checks,
        selected: due.iter().map(|key| key.index).collect(),
    }
}

/// What orders due checks, copied out of the evaluations so that sorting
/// touches one small array.
#[derive(Debug, Clone, Copy)]
struct RunKey {
    run_requested: bool,
    ratio: f64,
    priority: i64,
    index: usize,
}

impl RunKey {
    /// The order among due checks (rule 2): asked to run first, then higher
    /// ratio, then lower `priority`, then file order.
    fn run_order(a: &RunKey, b: &RunKey) -> Ordering {
        b.run_requested
            .cmp(&a.run_requested)
            .then_with(|| b.ratio.total_cmp(&a.ratio))
            .then_with(|| a.priority.cmp(&b.priority))
            .then_with(|| a.index.cmp(&b.index))
    }
}

/// What every check of one tick is evaluated against, with the lookups
/// made once per tick rather than once per check (pauses by name, the local
/// minute of each zone): selection over 10,000 checks stays well under a
/// millisecond (`benches/selection.rs`).
struct TickView<'a> {
    state: &'a State,
    running: foldhash::HashSet<&'a str>,
    now_ms: u64,
    quarter: Quarter,
    /// The file's pauses, then the run-time ones, by check name.
    pauses: foldhash::HashMap<&'a str, [Option<&'a Pause>; 2]>,
    /// Local minute of the day at `now_ms`, by zone name.
    local_minutes: Vec<(&'a str, Option<u16>)>,
}

impl<'a> TickView<'a> {
    fn new(
        config: &'a HeartbeatConfig,
        state: &'a State,
        running: &'a HashSet<String>,
        now_ms: u64,
    ) -> TickView<'a> {
        let mut pauses: foldhash::HashMap<&str, [Option<&Pause>; 2]> = foldhash::HashMap::default();
        for (name, pause) in &config.paused {
            pauses.entry(name.as_str()).or_default()[0] = Some(pause);
        }
        for (name, pause) in &state.paused {
            pauses.entry(name.as_str()).or_default()[1] = Some(pause);
        }
        TickView {
            state,
            running: running.iter().map(String::as_str).collect(),
            now_ms,
            quarter: quarter_at(now_ms),
            pauses,
            local_minutes: Vec::new(),
        }
    }

    /// The pause in force for a check, if any: the file's `paused` and
    /// pauses set at run time (kept in the state file) both count (rule 5).
    fn active_pause(&self, name: &str) -> Option<NotRunning> {
        if self.pauses.is_empty() {
            return None;
        }
        self.pauses
            .get(name)?
            .iter()
            .flatten()
            .find(|p| p.is_active(self.now_ms))
            .map(|pause| match pause {
                Pause::Flag(_) => NotRunning::Paused {
                    until_ms: None,
                    reason: None,
                },
                Pause::Until { until, reason } => NotRunning::Paused {
                    until_ms: Some(*until),
                    reason: reason.clone(),
                },
            })
    }

    /// Whether the tick falls inside the window (rule 3), converting the
    /// tick's time to each zone once.
    fn in_window(&mut self, window: &'a Window) -> bool {
        let minute = match self
            .local_minutes
            .iter()
            .find(|(zone, _)| *zone == window.tz_name)
        {
            Some((_, minute)) => *minute,
            None => {
                let minute = local_minute(window, self.now_ms);
                self.local_minutes.push((&window.tz_name, minute));
                minute
            }
        };
        minute.is_some_and(|m| minute_in_window(m, window.start_minute, window.end_minute))
    }
}

fn evaluate<'a>(index: usize, check: &'a CheckConfig, tick: &mut TickView<'a>) -> Evaluation {
    let now_ms = tick.now_ms;
    let recorded = tick.state.checks.get(&check.name);
    // The state file holds whole ms the host wrote; a `lastRun` from the
    // file may carry a fraction, kept for the ratio (drop-in item 6).
    let (last_run_ms, fraction_ms) = match recorded.and_then(|s| s.last_run) {
        Some(ms) => (ms, 0.0),
        None => (check.last_run_ms, check.last_run_fraction_ms),
    };
    // A `lastRun` well after now was written by a clock that has stepped
    // back since (while no host watched it step: a live host moves its
    // instants with the step, see `clock_step`). It is no time to count
    // from: the check reads as never run, so it runs once (within
    // `maxPerTick`) and counts from then, instead of waiting for the
    // clock to catch up. A little ahead (clocks of two hosts apart) counts.
    let (last_run_ms, fraction_ms) =
        if last_run_ms > now_ms.saturating_add(crate::clock_step::STEP_TOLERANCE_MS as u64) {
            (0, 0.0)
        } else {
            (last_run_ms, fraction_ms)
        };
    let ratio = exact_ratio(now_ms, last_run_ms as f64 + fraction_ms, check.cadence_ms);
    let next_due_ms = (check.cadence_ms > 0).then(|| last_run_ms.saturating_add(check.cadence_ms));
    let run_requested =
        !tick.state.run_requests.is_empty() && tick.state.run_requests.contains(&check.name);

    let blocked = if !check.enabled {
        Some(NotRunning::Disabled)
    } else if let Some(pause) = tick.active_pause(&check.name) {
        Some(pause)
    } else if check.window.as_ref().is_some_and(|w| !tick.in_window(w)) {
        Some(NotRunning::OutsideWindow)
    } else if check
        .trigger_on_quarters
        .as_ref()
        .is_some_and(|qs| !qs.contains(&tick.quarter))
    {
        Some(NotRunning::WrongQuarter(tick.quarter))
    } else if !tick.running.is_empty() && tick.running.contains(check.name.as_str()) {
        Some(NotRunning::StillRunning)
    } else {
        recorded
            .and_then(|s| s.retry_after)
            .filter(|&r| now_ms < r)
            .map(|retry_after_ms| NotRunning::Backoff {
                retry_after_ms,
                failures: recorded.map_or(0, |s| s.consecutive_failures),
            })
    };
    let eligible = blocked.is_none();
    let not_running =
        blocked.or_else(|| (!run_requested && !ratio.is_due()).then_some(NotRunning::NotDue));
    Evaluation {
        index,
        eligible,
        ratio,
        last_run_ms,
        next_due_ms,
        run_requested,
        not_running,
    }
}

/// `(now − lastRun) / cadenceMs` (rule 2); a cadence of 0 is always overdue.
pub fn ratio(now_ms: u64, last_run_ms: u64, cadence_ms: u64) -> Ratio {
    exact_ratio(now_ms, last_run_ms as f64, cadence_ms)
}

/// [`ratio`] with a `lastRun` that may hold a fraction of a millisecond.
fn exact_ratio(now_ms: u64, last_run_ms: f64, cadence_ms: u64) -> Ratio {
    if cadence_ms == 0 {
        Ratio::Infinite
    } else {
        Ratio::Finite((now_ms as f64 - last_run_ms) / cadence_ms as f64)
    }
}

/// Whether `now_ms` falls inside the window, compared at minute resolution
/// in the window's zone (rule 3). Both ends are inclusive; `end < start`
/// wraps past midnight.
pub fn in_window(window: &Window, now_ms: u64) -> bool {
    local_minute(window, now_ms)
        .is_some_and(|minute| minute_in_window(minute, window.start_minute, window.end_minute))
}

/// Minutes after local midnight in the window's zone at `now_ms`; `None`
/// for an instant jiff cannot represent.
fn local_minute(window: &Window, now_ms: u64) -> Option<u16> {
    let local = crate::time::timestamp(now_ms)?.to_zoned(window.tz.clone());
    u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).ok()
}

/// The window test on minutes after local midnight.
pub fn minute_in_window(minute: u16, start: u16, end: u16) -> bool {
    if start <= end {
        start <= minute && minute <= end
    } else {
        minute >= start || minute <= end
    }
}

/// The calendar quarter (UTC) of an instant (rule 4).
pub fn quarter_at(now_ms: u64) -> Quarter {
    let month =
        crate::time::timestamp(now_ms).map_or(1, |t| t.to_zoned(jiff::tz::TimeZone::UTC).month());
    Quarter::of_month(month)
}

/// How long a check waits after its `failures`-th failure in a row (rule 6):
/// `min(cadenceMs, 30 s × 2^(failures − 1))`.
pub fn backoff_ms(cadence_ms: u64, failures: u32) -> u64 {
    let step = BACKOFF_BASE_MS.saturating_mul(
        1u64.checked_shl(failures.saturating_sub(1))
            .unwrap_or(u64::MAX),
    );
    step.min(cadence_ms)
}

/// Applies one run's outcome to a check's record (rule 6) and says what it
/// did to the check's state ([`crate::soft_hard::advance`]): success or
/// skipped moves `lastRun` to the tick's time and clears the failures;
/// failed keeps `lastRun`, counts the failure and sets when the check may
/// run again:
///
/// - soft (fewer than `maxAttempts` failures in a row): after
///   `retryIntervalMs`, or the failure backoff when it is not set;
/// - hard: after the failure backoff `min(cadenceMs, 30 s × 2^(n−1))`
///   with `maxAttempts` 1 (the default, today's rule), else after
///   `cadenceMs` (a hard check is back on its cadence, as in Nagios).
pub fn record_outcome(
    record: &mut CheckState,
    tick_ms: u64,
    cadence_ms: u64,
    policy: &RetryPolicy,
    status: RunStatus,
    duration_us: u64,
    error: Option<String>,
) -> Verdict {
    record.last_status = Some(status);
    record.last_duration_us = Some(duration_us);
    record.last_attempt = Some(tick_ms);
    let verdict = crate::soft_hard::advance(record, status, policy, tick_ms);
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
            let backoff = backoff_ms(cadence_ms, record.consecutive_failures);
            let wait = match verdict.state {
                CheckHealth::Soft => policy.retry_interval_ms.unwrap_or(backoff),
                _ if policy.max_attempts > 1 => cadence_ms,
                _ => backoff,
            };
            record.retry_after = Some(tick_ms.saturating_add(wait));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a Thursday in Q1.

    fn config(json: &str) -> HeartbeatConfig {
        parse(json, "test.json").expect("valid").config
    }

    fn names(config: &HeartbeatConfig, plan: &Plan) -> Vec<String> {
        plan.selected
            .iter()
            .map(|&i| config.checks[i].name.clone())
            .collect()
    }

    fn select(json: &str, state: &State, now: u64) -> Vec<String> {
        let c = config(json);
        names(&c, &plan(&c, state, &HashSet::new(), now))
    }

    #[test]
    fn ratio_exactly_one_is_not_due() {
        let json = r#"{"checks": {"a": {"cadenceMs": 1000, "lastRun": 5000}}}"#;
        assert!(select(json, &State::default(), 6000).is_empty());
        assert_eq!(select(json, &State::default(), 6001), ["a"]);
    }

    #[test]
    fn highest_ratio_wins_over_priority() {
        let json = r#"{"checks": {
            "urgent": {"cadenceMs": 1000, "lastRun": 0, "priority": 1},
            "late": {"cadenceMs": 100, "lastRun": 0, "priority": 9}}}"#;
        assert_eq!(select(json, &State::default(), 2000), ["late"]);
    }

    #[test]
    fn equal_ratios_break_on_priority_then_file_order() {
        let json = r#"{"maxPerTick": 3, "checks": {
            "b": {"cadenceMs": 1000, "priority": 2},
            "a": {"cadenceMs": 1000, "priority": 1},
            "c": {"cadenceMs": 1000, "priority": 2}}}"#;
        assert_eq!(select(json, &State::default(), 5000), ["a", "b", "c"]);
    }

    #[test]
    fn max_per_tick_defaults_to_one_and_marks_the_rest() {
        let c = config(r#"{"checks": {"a": {"cadenceMs": 10}, "b": {"cadenceMs": 20}}}"#);
        let p = plan(&c, &State::default(), &HashSet::new(), 1000);
        assert_eq!(names(&c, &p), ["a"]);
        assert_eq!(p.checks[1].not_running, Some(NotRunning::TickFull));
    }

    #[test]
    fn zero_cadence_is_always_due_and_beats_any_ratio() {
        let json =
            r#"{"checks": {"slow": {"cadenceMs": 1, "lastRun": 0}, "every": {"cadenceMs": 0}}}"#;
        assert_eq!(select(json, &State::default(), T0), ["every"]);
    }

    #[test]
    fn drop_in_6_fractional_last_run_is_kept_for_the_ratio() {
        // Truncated, both would be 1767261480000: a tie that priority breaks
        // in favour of `a`. As written, `b` is half a ms more overdue.
        let c = config(
            r#"{"checks": {
            "a": {"cadenceMs": 1000, "lastRun": 1767261480000.75, "priority": 1},
            "b": {"cadenceMs": 1000, "lastRun": 1767261480000.25, "priority": 9}}}"#,
        );
        let p = plan(&c, &State::default(), &HashSet::new(), 1_767_261_490_000);
        assert_eq!(names(&c, &p), ["b"]);
        // What is shown stays in whole milliseconds.
        assert_eq!(p.checks[1].last_run_ms, 1_767_261_480_000);
    }

    #[test]
    fn state_last_run_overrides_the_files() {
        let json = r#"{"checks": {"a": {"cadenceMs": 1000, "lastRun": 0}}}"#;
        let mut state = State::default();
        state.checks.insert(
            "a".into(),
            CheckState {
                last_run: Some(T0),
                ..CheckState::default()
            },
        );
        assert!(select(json, &state, T0 + 1000).is_empty());
        assert_eq!(select(json, &state, T0 + 1001), ["a"]);
    }

    #[test]
    fn a_last_run_well_in_the_future_reads_as_never_run_and_a_little_ahead_counts() {
        let json = r#"{"checks": {"a": {"cadenceMs": 1000}}}"#;
        let at = |last_run: u64| {
            let mut state = State::default();
            state.checks.insert(
                "a".into(),
                CheckState {
                    last_run: Some(last_run),
                    ..CheckState::default()
                },
            );
            state
        };
        // Written an hour ahead: the clock stepped back since.
        assert_eq!(select(json, &at(T0 + 3_600_000), T0), ["a"]);
        // A second ahead (another host's clock): not due for 2 s.
        assert!(select(json, &at(T0 + 1_000), T0).is_empty());
        assert!(select(json, &at(T0 + 1_000), T0 + 2_000).is_empty());
        assert_eq!(select(json, &at(T0 + 1_000), T0 + 2_001), ["a"]);
    }

    #[test]
    fn disabled_paused_and_running_checks_are_skipped() {
        let c = config(
            r#"{"checks": {
            "off": {"cadenceMs": 1, "enabled": false},
            "held": {"cadenceMs": 1},
            "busy": {"cadenceMs": 1},
            "free": {"cadenceMs": 1000}},
            "paused": {"held": {"until": 99999999999999, "reason": "maintenance"}}}"#,
        );
        let running = HashSet::from(["busy".to_string()]);
        let p = plan(&c, &State::default(), &running, T0);
        assert_eq!(names(&c, &p), ["free"]);
        assert_eq!(p.checks[0].not_running, Some(NotRunning::Disabled));
        assert!(matches!(
            p.checks[1].not_running,
            Some(NotRunning::Paused { .. })
        ));
        assert_eq!(p.checks[2].not_running, Some(NotRunning::StillRunning));
    }

    #[test]
    fn a_past_pause_no_longer_holds_and_state_pauses_count() {
        let json = r#"{"checks": {"a": {"cadenceMs": 1}}, "paused": {"a": {"until": 10}}}"#;
        assert_eq!(select(json, &State::default(), T0), ["a"]);
        let mut state = State::default();
        state.paused.insert("a".into(), Pause::Flag(true));
        assert!(select(json, &state, T0).is_empty());
    }

    #[test]
    fn windows_are_inclusive_and_wrap_midnight() {
        assert!(minute_in_window(0, 0, 1439));
        assert!(minute_in_window(1439, 0, 1439));
        assert!(minute_in_window(22 * 60, 22 * 60, 2 * 60));
        assert!(minute_in_window(60, 22 * 60, 2 * 60));
        assert!(minute_in_window(120, 22 * 60, 2 * 60));
        assert!(!minute_in_window(121, 22 * 60, 2 * 60));
        assert!(!minute_in_window(21 * 60 + 59, 22 * 60, 2 * 60));
        assert!(minute_in_window(600, 600, 600));
        assert!(!minute_in_window(601, 600, 600));
    }

    #[test]
    fn window_is_read_in_its_zone_across_daylight_saving() {
        // 09:00–09:00 in New York is 14:00Z in winter and 13:00Z in summer.
        let json = |_: ()| r#"{"checks": {"a": {"cadenceMs": 1, "window": {"start": "09:00", "end": "09:00", "tz": "America/New_York"}}}}"#;
        let winter_14z = 1_768_226_400_000; // 2026-01-12T14:00:00Z
        let summer_13z = 1_783_861_200_000; // 2026-07-12T13:00:00Z
        assert_eq!(select(json(()), &State::default(), winter_14z), ["a"]);
        assert!(select(json(()), &State::default(), winter_14z - 60_000).is_empty());
        assert_eq!(select(json(()), &State::default(), summer_13z), ["a"]);
        assert!(select(json(()), &State::default(), summer_13z + 3_600_000).is_empty());
    }

    #[test]
    fn quarters_are_calendar_quarters_in_utc() {
        assert_eq!(quarter_at(T0), Quarter::Q1);
        assert_eq!(quarter_at(T0 - 1), Quarter::Q4); // 2025-12-31T23:59:59.999Z
        let json = r#"{"checks": {"a": {"cadenceMs": 1, "triggerOnQuarters": ["Q2", "Q3"]}}}"#;
        assert!(select(json, &State::default(), T0).is_empty());
        let may = 1_777_593_600_000; // 2026-05-01T00:00:00Z
        assert_eq!(select(json, &State::default(), may), ["a"]);
    }

    #[test]
    fn backoff_doubles_from_30s_and_is_capped_by_cadence() {
        assert_eq!(backoff_ms(900_000, 1), 30_000);
        assert_eq!(backoff_ms(900_000, 2), 60_000);
        assert_eq!(backoff_ms(900_000, 3), 120_000);
        assert_eq!(backoff_ms(900_000, 6), 900_000);
        assert_eq!(backoff_ms(900_000, 200), 900_000);
        assert_eq!(backoff_ms(10_000, 1), 10_000);
        assert_eq!(backoff_ms(0, 1), 0);
    }

    #[test]
    fn a_check_in_backoff_lets_the_next_one_run() {
        let json = r#"{"checks": {"flaky": {"cadenceMs": 10}, "steady": {"cadenceMs": 1000}}}"#;
        let mut state = State::default();
        state.checks.insert(
            "flaky".into(),
            CheckState {
                consecutive_failures: 1,
                retry_after: Some(T0 + 30_000),
                ..CheckState::default()
            },
        );
        assert_eq!(select(json, &state, T0 + 29_999), ["steady"]);
        assert_eq!(select(json, &state, T0 + 30_000), ["flaky"]);
    }

    #[test]
    fn a_run_request_goes_first_whatever_its_ratio() {
        let json = r#"{"checks": {"late": {"cadenceMs": 10}, "fresh": {"cadenceMs": 1000000000, "lastRun": 1}}}"#;
        let mut state = State::default();
        state.run_requests.insert("fresh".into());
        assert_eq!(select(json, &state, T0), ["fresh"]);
    }

    #[test]
    fn success_moves_last_run_and_clears_failures() {
        let mut r = CheckState {
            last_run: Some(1),
            consecutive_failures: 3,
            last_error: Some("boom".into()),
            retry_after: Some(99),
            ..CheckState::default()
        };
        record_outcome(
            &mut r,
            5000,
            1000,
            &RetryPolicy::default(),
            RunStatus::Success,
            12,
            None,
        );
        assert_eq!(r.last_run, Some(5000));
        assert_eq!(r.consecutive_failures, 0);
        assert_eq!(r.last_error, None);
        assert_eq!(r.retry_after, None);
        assert_eq!(r.last_duration_us, Some(12));
    }

    #[test]
    fn skipped_counts_as_a_run() {
        let mut r = CheckState::default();
        record_outcome(
            &mut r,
            7000,
            1000,
            &RetryPolicy::default(),
            RunStatus::Skipped,
            1,
            None,
        );
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
            &RetryPolicy::default(),
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
            &RetryPolicy::default(),
            RunStatus::Failed,
            5,
            Some("timeout".into()),
        );
        assert_eq!(r.consecutive_failures, 2);
        assert_eq!(r.retry_after, Some(190_000));
        assert_eq!(r.last_error.as_deref(), Some("timeout"));
    }

    /// Ticks every second from T0 for `seconds`; the check's handler gives
    /// the next of `outcomes` each time it runs (then successes). Returns
    /// (seconds after T0, state/attempt, change) for each run.
    fn simulate(json: &str, outcomes: &[RunStatus], seconds: u64) -> Vec<(u64, String, String)> {
        let c = config(json);
        let mut state = State::default();
        let mut runs = Vec::new();
        let mut next = outcomes.iter();
        for second in 0..seconds {
            let now = T0 + second * 1000;
            let plan = plan(&c, &state, &HashSet::new(), now);
            for &i in &plan.selected {
                let check = &c.checks[i];
                let status = next.next().copied().unwrap_or(RunStatus::Success);
                let record = state.checks.entry(check.name.clone()).or_default();
                let verdict =
                    record_outcome(record, now, check.cadence_ms, &check.retry, status, 1, None);
                let change = verdict.change.map_or(String::new(), |c| {
                    format!("{} {}->{}", c.kind.as_str(), c.previous, c.state)
                });
                runs.push((
                    second,
                    format!("{}/{}", verdict.state, verdict.attempt),
                    change,
                ));
            }
        }
        runs
    }

    #[test]
    fn soft_failures_retry_on_the_retry_interval_then_hard_returns_to_the_cadence() {
        use RunStatus::{Failed, Success};
        // Cadence 60 s, retried every 5 s, hard at the 3rd failure; the
        // handler fails 4 times, then succeeds.
        let json = r#"{"checks": {"api": {"cadenceMs": 60000, "retryIntervalMs": 5000, "maxAttempts": 3}}}"#;
        let runs = simulate(json, &[Failed, Failed, Failed, Failed, Success], 200);
        let expected: Vec<(u64, &str, &str)> = vec![
            // Never ran: due on the first tick.
            (0, "soft/1", ""),
            (5, "soft/2", ""),
            (10, "hard/3", "transition ok->hard"),
            // Hard: back on its cadence, 60 s after the failure.
            (70, "hard/3", ""),
            (130, "ok/0", "transition hard->ok"),
        ];
        let got: Vec<(u64, &str, &str)> = runs
            .iter()
            .take(5)
            .map(|(t, s, c)| (*t, s.as_str(), c.as_str()))
            .collect();
        assert_eq!(got, expected);
        // Then on the cadence from the success (ratio strictly above 1.0).
        assert_eq!(runs.get(5).map(|r| r.0), Some(191));
    }

    #[test]
    fn without_max_attempts_a_failure_is_hard_at_once_and_backs_off_as_before() {
        use RunStatus::{Failed, Success};
        let json = r#"{"checks": {"api": {"cadenceMs": 600000}}}"#;
        let runs = simulate(json, &[Failed, Failed, Success], 200);
        let got: Vec<(u64, &str, &str)> = runs
            .iter()
            .map(|(t, s, c)| (*t, s.as_str(), c.as_str()))
            .collect();
        // Backoff 30 s, then 60 s (today's rule), whatever the cadence.
        assert_eq!(
            got,
            [
                (0, "hard/1", "transition ok->hard"),
                (30, "hard/1", ""),
                (90, "ok/0", "transition hard->ok"),
            ]
        );
    }

    #[test]
    fn without_a_retry_interval_soft_retries_use_the_failure_backoff() {
        use RunStatus::Failed;
        let json = r#"{"checks": {"api": {"cadenceMs": 600000, "maxAttempts": 3}}}"#;
        let runs = simulate(json, &[Failed, Failed, Failed], 200);
        let times: Vec<u64> = runs.iter().map(|r| r.0).collect();
        assert_eq!(&times[..3], [0, 30, 90]);
        assert_eq!(runs[2].1, "hard/3");
    }
}
