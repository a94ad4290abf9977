//! The host's own health: healthy, or degraded and why. Fed by the parts
//! that notice trouble (config watcher, tick-source monitor, run outcomes)
//! and read by the liveness file writer and the beat publisher.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many recent runs the failure ratio is taken over.
pub const RECENT_RUNS: usize = 10;

/// Healthy, or degraded with reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    /// Nothing wrong.
    Healthy,
    /// Working, but not as it should; the reasons, for people.
    Degraded(Vec<String>),
}

impl HealthStatus {
    /// `healthy` or `degraded`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded(_) => "degraded",
        }
    }

    /// The reasons (empty when healthy).
    pub fn reasons(&self) -> &[String] {
        match self {
            HealthStatus::Healthy => &[],
            HealthStatus::Degraded(reasons) => reasons,
        }
    }
}

/// The degraded rules, pure: the config on disk is invalid (the host runs
/// on the last good one), the tick source has gone silent, or more than
/// half of the recent runs failed.
pub fn assess(
    config_invalid: bool,
    tick_source_silent: bool,
    recent_failed: &[bool],
) -> HealthStatus {
    let mut reasons = Vec::new();
    if config_invalid {
        reasons.push("the config on disk is invalid; running on the last good one".to_string());
    }
    if tick_source_silent {
        reasons.push("the tick source is silent; the host's own timer has taken over".to_string());
    }
    let failed = recent_failed.iter().filter(|f| **f).count();
    if failed * 2 > recent_failed.len() {
        reasons.push(format!(
            "{failed} of the last {} runs failed",
            recent_failed.len()
        ));
    }
    if reasons.is_empty() {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded(reasons)
    }
}

/// The live signals, shared between the parts that set and read them.
#[derive(Debug, Default)]
pub struct Health {
    config_invalid: AtomicBool,
    tick_source_silent: AtomicBool,
    recent_failed: Mutex<VecDeque<bool>>,
}

impl Health {
    /// Whether the config on disk failed validation.
    pub fn set_config_invalid(&self, invalid: bool) {
        self.config_invalid.store(invalid, Ordering::Relaxed);
    }

    /// Whether the tick source has gone silent.
    pub fn set_tick_source_silent(&self, silent: bool) {
        self.tick_source_silent.store(silent, Ordering::Relaxed);
    }

    /// Whether the config on disk failed validation (the host runs on the
    /// last good one).
    pub fn config_invalid(&self) -> bool {
        self.config_invalid.load(Ordering::Relaxed)
    }

    /// Whether the tick source has gone silent.
    pub fn tick_source_silent(&self) -> bool {
        self.tick_source_silent.load(Ordering::Relaxed)
    }

    /// Records a run's outcome.
    pub fn record_run(&self, failed: bool) {
        let mut recent = self.recent_failed.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_RUNS {
            recent.pop_front();
        }
        recent.push_back(failed);
    }

    /// The health now.
    pub fn status(&self) -> HealthStatus {
        let recent: Vec<bool> = self
            .recent_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        assess(
            self.config_invalid.load(Ordering::Relaxed),
            self.tick_source_silent.load(Ordering::Relaxed),
            &recent,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_until_something_is_wrong() {
        assert_eq!(assess(false, false, &[]), HealthStatus::Healthy);
        assert_eq!(assess(false, false, &[true, false]), HealthStatus::Healthy);
        assert!(
            matches!(assess(true, false, &[]), HealthStatus::Degraded(r) if r[0].contains("config"))
        );
        assert!(
            matches!(assess(false, true, &[]), HealthStatus::Degraded(r) if r[0].contains("tick source"))
        );
    }

    #[test]
    fn more_than_half_of_recent_runs_failing_is_degraded() {
        assert_eq!(
            assess(false, false, &[true, false, true, false]),
            HealthStatus::Healthy
        );
        let status = assess(false, false, &[true, true, false]);
        assert_eq!(status.reasons(), ["2 of the last 3 runs failed"]);
    }

    #[test]
    fn only_the_last_runs_count() {
        let health = Health::default();
        for _ in 0..RECENT_RUNS {
            health.record_run(true);
        }
        assert_eq!(health.status().as_str(), "degraded");
        for _ in 0..RECENT_RUNS {
            health.record_run(false);
        }
        assert_eq!(health.status(), HealthStatus::Healthy);
    }
}
