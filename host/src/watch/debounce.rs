//! One debouncer for both watchers (the config file and the handler
//! directory): a burst of file events becomes one reload, once events have
//! been quiet for a while or a bound after the first, whichever is sooner.
//! Pure: the caller passes the time in.

use std::time::{Duration, Instant};

/// A burst of events longer than this is acted on anyway, so that a file
/// written without pause cannot postpone its reload for ever.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(500);

/// Collapses a burst of file events into one reload: it fires once events
/// have been quiet for `quiet`, or `max_delay` after the first of the burst.
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    /// A debouncer with nothing pending.
    pub fn new(quiet: Duration, max_delay: Duration) -> Debounce {
        Debounce {
            quiet,
            max_delay,
            first: None,
            last: None,
        }
    }

    /// Notes an event at `now`.
    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending burst is to be acted on; `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + self.max_delay))
    }

    /// Whether the burst is to be acted on at `now`; if so, it is cleared.
    pub fn fire(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                self.first = None;
                self.last = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debounce_waits_for_quiet_and_is_capped_by_max_delay() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debounce::new(ms(50), ms(200));
        assert_eq!(d.deadline(), None);
        assert!(!d.fire(t0));
        d.event(t0);
        assert_eq!(d.deadline(), Some(t0 + ms(50)));
        d.event(t0 + ms(30));
        assert!(!d.fire(t0 + ms(79)));
        assert!(d.fire(t0 + ms(80)));
        assert_eq!(d.deadline(), None, "firing clears the burst");
        // A burst that never goes quiet fires at max_delay.
        let t1 = t0 + ms(1000);
        for i in 0..10 {
            d.event(t1 + ms(i * 40));
        }
        assert_eq!(d.deadline(), Some(t1 + ms(200)));
    }
}
