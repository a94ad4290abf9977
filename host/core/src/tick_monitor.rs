//! The tick-source monitor (the Go monitor pattern), pure: while the bus
//! is connected, no bus tick within 2 × the expected tick interval means
//! the tick source has gone silent; the next bus tick means it is back.
//! Time is passed in; the caller logs, sets the health signal and lets the
//! host's own timer take over while silent.

/// A change the caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// No bus tick within the allowance while connected.
    Silent,
    /// A bus tick arrived after a silence.
    Back,
}

/// Watches the gaps between bus ticks.
#[derive(Debug, Clone)]
pub struct TickMonitor {
    allowance_ms: u64,
    /// The last bus tick, or when the bus (re)connected; `None` while not connected.
    since_ms: Option<u64>,
    silent: bool,
}

impl TickMonitor {
    /// A monitor expecting a tick every `interval_ms` (silent after twice that).
    pub fn new(interval_ms: u64) -> TickMonitor {
        TickMonitor {
            allowance_ms: interval_ms.saturating_mul(2),
            since_ms: None,
            silent: false,
        }
    }

    /// Whether the tick source is silent now.
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// A bus tick arrived at `now_ms`.
    pub fn bus_tick(&mut self, now_ms: u64) -> Option<Transition> {
        self.since_ms = Some(now_ms);
        if self.silent {
            self.silent = false;
            Some(Transition::Back)
        } else {
            None
        }
    }

    /// Looks at the clock: `connected` says whether the bus is connected
    /// now. Silence is counted only while connected, from the connection
    /// or the last bus tick, whichever is later.
    pub fn poll(&mut self, connected: bool, now_ms: u64) -> Option<Transition> {
        if !connected {
            self.since_ms = None;
            return None;
        }
        let since = *self.since_ms.get_or_insert(now_ms);
        if !self.silent && now_ms.saturating_sub(since) > self.allowance_ms {
            self.silent = true;
            return Some(Transition::Silent);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_after_twice_the_interval_without_a_bus_tick_while_connected() {
        let mut m = TickMonitor::new(1_000);
        assert_eq!(m.poll(false, 0), None);
        assert_eq!(
            m.poll(false, 10_000),
            None,
            "not counted while disconnected"
        );
        assert_eq!(m.poll(true, 10_000), None, "counted from the connection");
        assert_eq!(m.poll(true, 12_000), None);
        assert_eq!(m.bus_tick(11_500), None);
        assert_eq!(m.poll(true, 13_500), None);
        assert_eq!(m.poll(true, 13_501), Some(Transition::Silent));
        assert!(m.is_silent());
        assert_eq!(m.poll(true, 20_000), None, "reported once");
        assert_eq!(m.bus_tick(20_100), Some(Transition::Back));
        assert!(!m.is_silent());
        assert_eq!(m.poll(true, 21_000), None);
    }

    #[test]
    fn a_reconnection_restarts_the_count() {
        let mut m = TickMonitor::new(1_000);
        assert_eq!(m.poll(true, 0), None);
        assert_eq!(m.poll(false, 1_500), None);
        assert_eq!(m.poll(true, 5_000), None);
        assert_eq!(m.poll(true, 7_000), None);
        assert_eq!(m.poll(true, 7_001), Some(Transition::Silent));
    }
}
