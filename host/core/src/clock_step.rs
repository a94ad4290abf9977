//! Steps of the wall clock (an NTP step, an operator's `date -s`), told
//! apart from time passing: between two readings, the wall clock should
//! move as far as the monotonic clock did. When it moves more than
//! [`STEP_TOLERANCE_MS`] further, or back, the difference is a step. The
//! host then moves the instants the schedule counts from by the same
//! amount, so that a step in either direction costs no check its cadence:
//! a step back does not leave every `lastRun` in the future (no check due
//! for an hour), a step forward does not make every check overdue at once.
//! No clock here: both readings are passed in.

use crate::config::HeartbeatConfig;
use crate::state::State;

/// How far the wall clock may drift from the monotonic one between two
/// readings before it counts as a step (slewing by NTP is far slower).
pub const STEP_TOLERANCE_MS: i64 = 2_000;

/// The last pair of readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepDetector {
    last: Option<(u64, u64)>,
}

impl StepDetector {
    /// A detector that has seen nothing yet.
    pub fn new() -> StepDetector {
        StepDetector::default()
    }

    /// Takes a reading of the wall clock (ms since the epoch) and the
    /// monotonic clock (ms since any fixed origin); the step since the
    /// last reading, in ms (negative: back), when there was one.
    pub fn observe(&mut self, wall_ms: u64, monotonic_ms: u64) -> Option<i64> {
        let previous = self.last.replace((wall_ms, monotonic_ms));
        let (last_wall, last_mono) = previous?;
        let wall = i128::from(wall_ms) - i128::from(last_wall);
        let mono = i128::from(monotonic_ms) - i128::from(last_mono);
        let step =
            i64::try_from(wall - mono).unwrap_or(if wall < mono { i64::MIN } else { i64::MAX });
        (step.unsigned_abs() > STEP_TOLERANCE_MS.unsigned_abs()).then_some(step)
    }
}

/// Moves every instant of `state` the schedule counts from (`lastRun`,
/// `lastAttempt`, `retryAfter`) by `step_ms`, as if they had been read
/// from the clock as it is now. A check of `config` that has run only by
/// its file's `lastRun` (heartbeat-consumer's field) gets a record holding
/// it, moved too: the file itself is never written.
pub fn shift_schedule(state: &mut State, config: &HeartbeatConfig, step_ms: i64) {
    for check in &config.checks {
        if check.last_run_ms > 0 {
            let record = state.checks.entry(check.name.clone()).or_default();
            record.last_run.get_or_insert(check.last_run_ms);
        }
    }
    let shift = |ms: &mut u64| {
        *ms = if step_ms >= 0 {
            ms.saturating_add(step_ms.unsigned_abs())
        } else {
            ms.saturating_sub(step_ms.unsigned_abs())
        };
    };
    for check in state.checks.values_mut() {
        check.last_run.as_mut().map(shift);
        check.last_attempt.as_mut().map(shift);
        check.retry_after.as_mut().map(shift);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::CheckState;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn time_passing_is_not_a_step_and_the_first_reading_has_nothing_to_compare() {
        let mut d = StepDetector::new();
        assert_eq!(d.observe(1_000_000, 50), None);
        assert_eq!(d.observe(1_001_000, 1_050), None);
        // Drift within the tolerance (a slow tick, slewing).
        assert_eq!(d.observe(1_003_500, 2_050), None);
    }

    #[test]
    fn a_step_back_or_forward_is_measured_against_the_monotonic_clock() {
        let mut d = StepDetector::new();
        d.observe(10 * HOUR, 0);
        assert_eq!(d.observe(9 * HOUR + 1_000, 1_000), Some(-(HOUR as i64)));
        assert_eq!(d.observe(11 * HOUR + 2_000, 2_000), Some(2 * HOUR as i64));
        // Once measured, the new clock is the reference.
        assert_eq!(d.observe(11 * HOUR + 3_000, 3_000), None);
    }

    #[test]
    fn a_wall_clock_before_the_epoch_or_far_ahead_does_not_overflow() {
        let mut d = StepDetector::new();
        d.observe(u64::MAX, 0);
        assert_eq!(d.observe(0, u64::MAX), Some(i64::MIN));
    }

    #[test]
    fn the_schedules_instants_move_with_the_step_and_nothing_else_does() {
        let mut state = State::default();
        state.checks.insert(
            "a".into(),
            CheckState {
                last_run: Some(10 * HOUR),
                last_attempt: Some(10 * HOUR + 5),
                retry_after: Some(10 * HOUR + 60_000),
                state_since: Some(HOUR),
                ..CheckState::default()
            },
        );
        let config = crate::config::parse(
            r#"{"checks": {"a": {}, "from_file": {"lastRun": 36000000}, "never": {}}}"#,
            "heartbeat.json",
        )
        .expect("valid")
        .config;
        shift_schedule(&mut state, &config, -(HOUR as i64));
        let a = &state.checks["a"];
        assert_eq!(a.last_run, Some(9 * HOUR));
        assert_eq!(a.last_attempt, Some(9 * HOUR + 5));
        assert_eq!(a.retry_after, Some(9 * HOUR + 60_000));
        assert_eq!(a.state_since, Some(HOUR), "history is not rescheduled");
        assert_eq!(state.checks["from_file"].last_run, Some(9 * HOUR));
        assert!(
            !state.checks.contains_key("never"),
            "never run stays never run"
        );
        shift_schedule(&mut state, &config, i64::MIN);
        assert_eq!(state.checks["a"].last_run, Some(0));
    }
}
