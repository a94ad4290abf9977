//! Soft and hard states: what a run's result means for alerting, as a pure
//! function of the check's record, the result and its retry policy.
//!
//! The model is Nagios': a failure makes an ok check `soft` and it is
//! retried every `retryIntervalMs`; `maxAttempts` failures in a row make it
//! `hard`; one success makes it `ok`. Only changes of the *hard* state
//! (ok → hard, hard → ok) are worth an alert, and each is reported once as
//! a [`StateChange`], the host's `agent.{agent}.check.state_changed` event.
//!
//! Flapping: when the last [`FLAP_WINDOW`] results changed between success
//! and failure more than `flapThreshold` times, the check is flapping; that
//! is reported once, and while it lasts its ok ↔ hard changes are not
//! reported one by one (an alert per blip is what flap detection exists to
//! stop). It ends when the changes fall to half the threshold or fewer
//! (hysteresis, so a check on the edge does not flap in and out), and
//! that is reported once too, with the state the check is in by then.
//!
//! A skipped run is not a result here: it leaves the state, the attempt
//! count and the recent results as they were.

use crate::model::{CheckHealth, FLAP_WINDOW, RetryPolicy, RunStatus};
use crate::state::CheckState;

/// What a result did to a check's state, for its result event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The state after the result.
    pub state: CheckHealth,
    /// Failures in a row counted toward `maxAttempts` (0 while ok).
    pub attempt: u32,
    /// The change to report, when there is one.
    pub change: Option<StateChange>,
}

/// A change worth one event (`agent.{agent}.check.state_changed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// What changed.
    pub kind: ChangeKind,
    /// The hard state before: `ok` or `hard` for a transition; for a
    /// flapping change, the state before this result (`soft` included).
    pub previous: CheckHealth,
    /// The state now.
    pub state: CheckHealth,
    /// Pass/fail changes among the recent results.
    pub changes: u32,
    /// How many recent results `changes` was counted over.
    pub window: u32,
}

/// The kinds of [`StateChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// ok → hard or hard → ok.
    Transition,
    /// The check began flapping.
    FlappingStarted,
    /// The check stopped flapping.
    FlappingStopped,
}

impl ChangeKind {
    /// The name the event's `change` field carries.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Transition => "transition",
            ChangeKind::FlappingStarted => "flapping_started",
            ChangeKind::FlappingStopped => "flapping_stopped",
        }
    }
}

/// Where a failure leaves a check: soft while fewer than `maxAttempts`
/// failures in a row, hard from then on.
pub fn after_failure(attempt_before: u32, policy: &RetryPolicy) -> (CheckHealth, u32) {
    let max = policy.max_attempts.max(1);
    let attempt = attempt_before.saturating_add(1).min(max);
    let state = if attempt >= max {
        CheckHealth::Hard
    } else {
        CheckHealth::Soft
    };
    (state, attempt)
}

/// Pass/fail changes between neighbours in `recent` (`+`/`-`).
pub fn flips(recent: &str) -> u32 {
    let bytes = recent.as_bytes();
    let flips = bytes.windows(2).filter(|pair| pair[0] != pair[1]).count();
    u32::try_from(flips).unwrap_or(u32::MAX)
}

/// Applies one result to `record`'s state, attempt count, recent results
/// and flapping flag, and says what changed. Scheduling (`lastRun`, the
/// retry time) is [`crate::schedule::record_outcome`]'s.
pub fn advance(
    record: &mut CheckState,
    status: RunStatus,
    policy: &RetryPolicy,
    tick_ms: u64,
) -> Verdict {
    let before = record.state;
    let passed = match status {
        RunStatus::Skipped => {
            return Verdict {
                state: record.state,
                attempt: record.attempt,
                change: None,
            };
        }
        RunStatus::Success => true,
        RunStatus::Failed => false,
    };
    if passed {
        record.state = CheckHealth::Ok;
        record.attempt = 0;
    } else {
        let (state, attempt) = after_failure(record.attempt, policy);
        record.state = state;
        record.attempt = attempt;
    }
    record.recent.push(if passed { '+' } else { '-' });
    if record.recent.len() > FLAP_WINDOW {
        let cut = record.recent.len() - FLAP_WINDOW;
        record.recent.drain(..cut);
    }
    let changes = flips(&record.recent);
    let window = u32::try_from(record.recent.len()).unwrap_or(u32::MAX);
    let change = |kind, previous| StateChange {
        kind,
        previous,
        state: record.state,
        changes,
        window,
    };

    // The hard state is what alerts follow: soft is a failure not yet
    // confirmed, so ok → soft → ok reports nothing and ok → soft → hard
    // reports ok → hard.
    let hard_before = if before == CheckHealth::Hard {
        CheckHealth::Hard
    } else {
        CheckHealth::Ok
    };
    let hard_now = match record.state {
        CheckHealth::Hard => CheckHealth::Hard,
        CheckHealth::Ok => CheckHealth::Ok,
        CheckHealth::Soft => hard_before,
    };
    if hard_now != hard_before {
        record.state_since = Some(tick_ms);
    }

    let starts = !record.flapping && changes > policy.flap_threshold;
    let stops = record.flapping && changes <= policy.flap_threshold / 2;
    let reported = if starts {
        record.flapping = true;
        Some(change(ChangeKind::FlappingStarted, before))
    } else if stops {
        record.flapping = false;
        Some(change(ChangeKind::FlappingStopped, before))
    } else if hard_now != hard_before && !record.flapping {
        Some(change(ChangeKind::Transition, hard_before))
    } else {
        None
    };
    Verdict {
        state: record.state,
        attempt: record.attempt,
        change: reported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, flap_threshold: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            retry_interval_ms: Some(1_000),
            flap_threshold,
        }
    }

    /// The verdicts of a sequence of results (`+` success, `-` failure,
    /// `s` skipped), as `state/attempt` with the change after a colon.
    fn run(results: &str, policy: &RetryPolicy) -> Vec<String> {
        let mut record = CheckState::default();
        results
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let status = match c {
                    '+' => RunStatus::Success,
                    '-' => RunStatus::Failed,
                    _ => RunStatus::Skipped,
                };
                let v = advance(&mut record, status, policy, i as u64);
                let mut out = format!("{}/{}", v.state, v.attempt);
                if let Some(c) = v.change {
                    out.push_str(&format!(":{}:{}->{}", c.kind.as_str(), c.previous, c.state));
                }
                out
            })
            .collect()
    }

    #[test]
    fn three_attempts_go_soft_soft_hard_then_one_success_is_ok() {
        assert_eq!(
            run("---+", &policy(3, 19)),
            [
                "soft/1",
                "soft/2",
                "hard/3:transition:ok->hard",
                "ok/0:transition:hard->ok"
            ]
        );
    }

    #[test]
    fn a_soft_failure_that_recovers_reports_nothing() {
        assert_eq!(run("--+", &policy(3, 19)), ["soft/1", "soft/2", "ok/0"]);
    }

    #[test]
    fn a_hard_check_failing_on_reports_nothing_more() {
        assert_eq!(
            run("-----", &policy(2, 19)),
            [
                "soft/1",
                "hard/2:transition:ok->hard",
                "hard/2",
                "hard/2",
                "hard/2"
            ]
        );
    }

    #[test]
    fn with_the_default_policy_the_first_failure_is_hard() {
        assert_eq!(
            run("-+", &RetryPolicy::default()),
            ["hard/1:transition:ok->hard", "ok/0:transition:hard->ok"]
        );
    }

    #[test]
    fn a_skip_changes_nothing() {
        assert_eq!(
            run("-s-s+", &policy(2, 19)),
            [
                "soft/1",
                "soft/1",
                "hard/2:transition:ok->hard",
                "hard/2",
                "ok/0:transition:hard->ok"
            ]
        );
    }

    #[test]
    fn an_alternating_check_is_reported_flapping_once_then_quiet() {
        // maxAttempts 1: every result is a transition until flapping
        // starts, after more than 3 changes (the 5th result).
        let verdicts = run("-+-+-+-+", &policy(1, 3));
        assert_eq!(
            verdicts,
            [
                "hard/1:transition:ok->hard",
                "ok/0:transition:hard->ok",
                "hard/1:transition:ok->hard",
                "ok/0:transition:hard->ok",
                "hard/1:flapping_started:ok->hard",
                "ok/0",
                "hard/1",
                "ok/0"
            ]
        );
    }

    #[test]
    fn flapping_stops_once_the_changes_fall_to_half_the_threshold() {
        // 5 alternations start it (threshold 3); then steady successes
        // push the changes out of the 20-result window.
        let mut results = String::from("-+-+-+");
        results.push_str(&"+".repeat(FLAP_WINDOW));
        let verdicts = run(&results, &policy(1, 3));
        let changes: Vec<(usize, &String)> = verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| v.contains(':'))
            .collect();
        let last = changes.last().map(|(_, v)| v.as_str());
        assert_eq!(last, Some("ok/0:flapping_stopped:ok->ok"));
        // Stopped when the window held 1 change (≤ 3 / 2): the 5 changes
        // of "-+-+-+" leave the window one by one, and result 23's window
        // (results 4 to 23) holds only the change from result 4 to 5.
        let stopped_at = changes.last().map(|(i, _)| *i);
        assert_eq!(stopped_at, Some(23));
    }

    #[test]
    fn recent_results_keep_the_last_twenty() {
        let mut record = CheckState::default();
        for i in 0..50 {
            advance(&mut record, RunStatus::Failed, &policy(1, 19), i);
        }
        assert_eq!(record.recent, "-".repeat(FLAP_WINDOW));
        assert_eq!(flips("+-+"), 2);
        assert_eq!(flips(""), 0);
    }

    #[test]
    fn state_since_moves_only_with_the_hard_state() {
        let mut record = CheckState::default();
        let p = policy(2, 19);
        advance(&mut record, RunStatus::Failed, &p, 10);
        assert_eq!(record.state_since, None, "soft is not a hard change");
        advance(&mut record, RunStatus::Failed, &p, 20);
        assert_eq!(record.state_since, Some(20));
        advance(&mut record, RunStatus::Failed, &p, 30);
        assert_eq!(record.state_since, Some(20));
        advance(&mut record, RunStatus::Success, &p, 40);
        assert_eq!(record.state_since, Some(40));
    }
}
