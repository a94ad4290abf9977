//! The host's own timer: the tick source without a broker, and the bus's
//! fallback with one. One loop serves both; a [`Gate`] decides on each
//! beat of the timer whether a tick goes out, and says why when it is a
//! fallback tick (the broker is unreachable, or its tick source is silent).

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::info;

use super::{Clock, Tick};

/// Whether one beat of the timer becomes a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// A tick, as the only tick source (no log line of its own).
    Tick,
    /// A tick standing in for the bus's, logged with the reason.
    Fallback {
        /// Machine-readable cause (`broker_unreachable`, `tick_source_silent`).
        cause: &'static str,
        /// What the log line says.
        why: &'static str,
    },
    /// No tick: the bus's ticks rule.
    Skip,
}

/// Decides, on each beat of the timer, whether a tick goes out.
pub trait Gate: Send {
    /// Asked once per beat, at `now_ms`.
    fn admit(&mut self, now_ms: u64) -> Admit;
}

/// The timer as the only tick source: every beat is a tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct Always;

impl Gate for Always {
    fn admit(&mut self, _now_ms: u64) -> Admit {
        Admit::Tick
    }
}

/// Sends a tick at once, then one every `interval` that `gate` admits,
/// until the receiver is dropped. Ticks are numbered `timer-<n>` over the
/// ones sent. A beat that would have fallen while the host was busy is
/// skipped, not sent late in a burst.
pub async fn run(
    interval: Duration,
    ticks: mpsc::Sender<Tick>,
    clock: std::sync::Arc<dyn Clock>,
    mut gate: impl Gate,
) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    loop {
        timer.tick().await;
        let admitted = gate.admit(clock.now_ms());
        if admitted == Admit::Skip {
            continue;
        }
        n += 1;
        let id = format!("timer-{n}");
        if let Admit::Fallback { cause, why } = admitted {
            info!(event = "fallback_tick", cause, tick = %id, "{why}");
        }
        let tick = Tick {
            id,
            time_ms: clock.now_ms(),
            envelope: serde_json::json!({}),
            done: None,
        };
        if ticks.send(tick).await.is_err() {
            return;
        }
    }
}
