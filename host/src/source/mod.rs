//! Where ticks come from: the seam every transport plugs into. A source
//! sends [`Tick`]s into the daemon's one channel; a tick that must be
//! answered (a bus delivery to acknowledge) carries a [`TickDone`], which
//! the pipeline answers once the tick's runs are recorded and their events
//! are safe. [`timer`] is the host's own timer, which also serves as the
//! bus's fallback; `crate::amqp` is the other source. The clock is a seam
//! too ([`Clock`]), so that the pipeline is tested on a fake one.

pub mod timer;

use std::time::{SystemTime, UNIX_EPOCH};

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

/// What tells the host the time: the one place the pipeline reads a clock.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch, now.
    fn now_ms(&self) -> u64;

    /// Milliseconds since a fixed origin, by a clock that never steps:
    /// what the wall clock is compared with to tell a step from time
    /// passing (`heartbeat_core::clock_step`).
    fn monotonic_ms(&self) -> u64;
}

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let since = ORIGIN.get_or_init(std::time::Instant::now).elapsed();
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Milliseconds since the Unix epoch, now, by the machine's wall clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
