//! Ticks: what makes the host look for due checks. Sources (the host's own
//! timer here; the bus elsewhere) send [`Tick`]s into one channel.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

/// One heartbeat tick.
#[derive(Debug)]
pub struct Tick {
    /// The bus event's `event_id`, or `timer-<n>` for the host's own timer.
    pub id: String,
    /// When the host took the tick (ms since epoch): scheduling uses the
    /// host's clock, never the sender's.
    pub time_ms: u64,
    /// The envelope as received (`{}` for timer ticks).
    pub envelope: serde_json::Value,
    /// Told when the tick has been fully handled and its state recorded.
    pub done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sends a tick at once, then one every `interval`, until the receiver is
/// dropped. A tick that would have fallen while the host was busy is
/// skipped, not sent late in a burst.
pub async fn run_timer(interval: Duration, ticks: mpsc::Sender<Tick>) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    loop {
        timer.tick().await;
        n += 1;
        let tick = Tick {
            id: format!("timer-{n}"),
            time_ms: now_ms(),
            envelope: serde_json::json!({}),
            done: None,
        };
        if ticks.send(tick).await.is_err() {
            return;
        }
    }
}
