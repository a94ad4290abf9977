//! Tracking the agent's sub-processes by their beats (the beatit
//! convention): pure bookkeeping, time passed in.
//!
//! A process publishes on `heartbeat.<process>` bodies `start/<warmup>`,
//! `beat/<period>`, `degraded/<period>` and `stop` (seconds). After
//! `start/W` it is starting and a beat is expected within W; after
//! `beat/P` it is alive and after `degraded/P` degraded, each expecting the
//! next message within P × report-by buffer (1.5, as jobmon's
//! `report_by_buffer`); past that it is late, and past a number of periods
//! (3) with nothing it is dead. `stop` means stopped.

use std::collections::BTreeMap;

use crate::model::{ProcessInfo, ProcessState};

/// One message of the convention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Beat {
    /// `start/<warmup seconds>`.
    Start(f64),
    /// `beat/<period seconds>`.
    Beat(f64),
    /// `degraded/<period seconds>`.
    Degraded(f64),
    /// `stop`.
    Stop,
}

/// Parses a message body.
pub fn parse_beat(body: &[u8]) -> Result<Beat, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "body is not UTF-8".to_string())?
        .trim();
    if text == "stop" {
        return Ok(Beat::Stop);
    }
    let (kind, seconds) = text.split_once('/').ok_or_else(|| {
        format!("expected start/<s>, beat/<s>, degraded/<s> or stop, found {text:?}")
    })?;
    let seconds: f64 = seconds
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| format!("expected a number of seconds after {kind:?}, found {seconds:?}"))?;
    match kind {
        "start" => Ok(Beat::Start(seconds)),
        "beat" => Ok(Beat::Beat(seconds)),
        "degraded" => Ok(Beat::Degraded(seconds)),
        other => Err(format!(
            "expected start, beat, degraded or stop, found {other:?}"
        )),
    }
}

/// The tracker's tunables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// A beat/degraded period is stretched by this before the process is late.
    pub report_by_buffer: f64,
    /// Periods of silence after which the process is dead.
    pub dead_after_periods: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            report_by_buffer: 1.5,
            dead_after_periods: 3.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    last: Beat,
    last_message: String,
    last_seen_ms: u64,
}

/// The table of watched processes.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    config: TrackerConfig,
    entries: BTreeMap<String, Entry>,
    malformed: u64,
}

impl Tracker {
    /// An empty table.
    pub fn new(config: TrackerConfig) -> Tracker {
        Tracker {
            config,
            entries: BTreeMap::new(),
            malformed: 0,
        }
    }

    /// Records a message from `process`; a malformed body is counted and ignored.
    pub fn observe(&mut self, process: &str, body: &[u8], now_ms: u64) -> Result<Beat, String> {
        match parse_beat(body) {
            Ok(beat) => {
                self.entries.insert(
                    process.to_string(),
                    Entry {
                        last: beat,
                        last_message: String::from_utf8_lossy(body).trim().to_string(),
                        last_seen_ms: now_ms,
                    },
                );
                Ok(beat)
            }
            Err(e) => {
                self.malformed += 1;
                Err(e)
            }
        }
    }

    /// Malformed messages seen so far.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Every process's standing at `now_ms`, sorted by name.
    pub fn snapshot(&self, now_ms: u64) -> Vec<ProcessInfo> {
        self.entries
            .iter()
            .map(|(name, entry)| {
                let (status, expected_by_ms) = self.standing(entry, now_ms);
                ProcessInfo {
                    name: name.clone(),
                    status,
                    last_message: entry.last_message.clone(),
                    last_seen_ms: entry.last_seen_ms,
                    expected_by_ms,
                }
            })
            .collect()
    }

    fn standing(&self, entry: &Entry, now_ms: u64) -> (ProcessState, Option<u64>) {
        let after = |seconds: f64| {
            entry
                .last_seen_ms
                .saturating_add((seconds * 1000.0).round() as u64)
        };
        let (on_time, period, expected_by) = match entry.last {
            Beat::Stop => return (ProcessState::Stopped, None),
            Beat::Start(w) => (ProcessState::Starting, w, after(w)),
            Beat::Beat(p) => (
                ProcessState::Alive,
                p,
                after(p * self.config.report_by_buffer),
            ),
            Beat::Degraded(p) => (
                ProcessState::Degraded,
                p,
                after(p * self.config.report_by_buffer),
            ),
        };
        let status = if now_ms > after(period * self.config.dead_after_periods).max(expected_by) {
            ProcessState::Dead
        } else if now_ms > expected_by {
            ProcessState::Late
        } else {
            on_time
        };
        (status, Some(expected_by))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(t: &Tracker, name: &str, now: u64) -> ProcessState {
        t.snapshot(now)
            .into_iter()
            .find(|p| p.name == name)
            .expect("tracked")
            .status
    }

    #[test]
    fn bodies_parse_as_the_convention_writes_them() {
        assert_eq!(parse_beat(b"start/60"), Ok(Beat::Start(60.0)));
        assert_eq!(parse_beat(b"beat/5"), Ok(Beat::Beat(5.0)));
        assert_eq!(parse_beat(b"degraded/2.5"), Ok(Beat::Degraded(2.5)));
        assert_eq!(parse_beat(b"stop"), Ok(Beat::Stop));
        assert!(parse_beat(b"beat").is_err());
        assert!(parse_beat(b"beat/soon").is_err());
        assert!(parse_beat(b"pulse/5").is_err());
        assert!(parse_beat(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn a_process_goes_starting_alive_degraded_late_dead_and_stopped() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.observe("w", b"start/10", 0).expect("start");
        assert_eq!(status(&t, "w", 10_000), ProcessState::Starting);
        assert_eq!(status(&t, "w", 10_001), ProcessState::Late);
        t.observe("w", b"beat/2", 11_000).expect("beat");
        assert_eq!(status(&t, "w", 14_000), ProcessState::Alive); // 2 s × 1.5
        assert_eq!(status(&t, "w", 14_001), ProcessState::Late);
        assert_eq!(status(&t, "w", 17_000), ProcessState::Late); // 3 × 2 s
        assert_eq!(status(&t, "w", 17_001), ProcessState::Dead);
        t.observe("w", b"degraded/2", 20_000).expect("degraded");
        assert_eq!(status(&t, "w", 21_000), ProcessState::Degraded);
        t.observe("w", b"stop", 22_000).expect("stop");
        assert_eq!(status(&t, "w", 999_999), ProcessState::Stopped);
        assert_eq!(t.snapshot(999_999)[0].expected_by_ms, None);
    }

    #[test]
    fn malformed_bodies_are_counted_and_change_nothing() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.observe("w", b"beat/5", 0).expect("beat");
        assert!(t.observe("w", b"garbage", 1).is_err());
        assert_eq!(t.malformed(), 1);
        assert_eq!(t.snapshot(2)[0].last_message, "beat/5");
    }
}
