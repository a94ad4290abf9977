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
    /// A bus tick's answer to its source: [`TickDone::handled`] once the
    /// tick has been fully handled and its state recorded. `None` for
    /// timer ticks.
    pub done: Option<TickDone>,
}

/// Tells a tick's source that the tick was handled, or, when dropped
/// unanswered (the host stopped first), that it was not: a bus tick then
/// goes back to its queue.
pub struct TickDone(Option<Box<dyn FnOnce(bool) + Send + Sync>>);

impl TickDone {
    /// `answer(true)` once handled, `answer(false)` if dropped before.
    pub fn new(answer: impl FnOnce(bool) + Send + Sync + 'static) -> TickDone {
        TickDone(Some(Box::new(answer)))
    }

    /// The tick was handled and its state recorded.
    pub fn handled(mut self) {
        if let Some(answer) = self.0.take() {
            answer(true);
        }
    }
}

impl Drop for TickDone {
    fn drop(&mut self) {
        if let Some(answer) = self.0.take() {
            answer(false);
        }
    }
}

impl std::fmt::Debug for TickDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TickDone")
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn recording() -> (TickDone, Arc<Mutex<Vec<bool>>>) {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&answers);
        let done = TickDone::new(move |handled| seen.lock().unwrap().push(handled));
        (done, answers)
    }

    #[test]
    fn a_handled_tick_is_answered_once_as_handled() {
        let (done, answers) = recording();
        done.handled();
        assert_eq!(*answers.lock().unwrap(), [true]);
    }

    #[test]
    fn a_tick_dropped_unanswered_is_answered_as_not_handled() {
        let (done, answers) = recording();
        drop(done);
        assert_eq!(*answers.lock().unwrap(), [false]);
    }
}
