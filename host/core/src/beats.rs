//! The host's own beats, in the beatit convention: pure naming and body
//! formatting (the daemon publishes them while the bus is connected).
//!
//! On `heartbeat.<process>`: `start/<warmup>` at start-up, `beat/<period>`
//! every period while healthy, `degraded/<period>` while degraded, `stop`
//! on a graceful shutdown; periods in seconds.

use std::time::Duration;

use crate::health::HealthStatus;

/// The shortest beat period: the convention publishes at most one beat
/// (and one degraded) per second.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// The default beat period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);

/// The default warm-up announced by `start`.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(30);

/// How the host beats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeatOptions {
    /// The process name; beats go to `heartbeat.<process>`.
    pub process: String,
    /// Time between beats.
    pub period: Duration,
    /// The warm-up announced at start-up (a first beat is due within it).
    pub warmup: Duration,
}

impl BeatOptions {
    /// The defaults for `agent`: process `heartbeat-host.<agent>`.
    pub fn for_agent(agent: &str) -> BeatOptions {
        BeatOptions {
            process: default_process(agent),
            period: DEFAULT_PERIOD,
            warmup: DEFAULT_WARMUP,
        }
    }

    /// The routing key of every beat: `heartbeat.<process>`.
    pub fn routing_key(&self) -> String {
        format!("heartbeat.{}", self.process)
    }
}

/// The default process name of the host serving `agent`.
pub fn default_process(agent: &str) -> String {
    format!("heartbeat-host.{agent}")
}

/// A duration in seconds as the convention writes it: `5`, or `0.5`.
pub fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// `start/<warmup>`.
pub fn start_body(warmup: Duration) -> String {
    format!("start/{}", seconds(warmup))
}

/// `beat/<period>` while healthy, `degraded/<period>` while degraded.
pub fn periodic_body(health: &HealthStatus, period: Duration) -> String {
    match health {
        HealthStatus::Healthy => format!("beat/{}", seconds(period)),
        HealthStatus::Degraded(_) => format!("degraded/{}", seconds(period)),
    }
}

/// `stop`.
pub const STOP_BODY: &str = "stop";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_exactly_the_conventions() {
        assert_eq!(start_body(Duration::from_secs(60)), "start/60");
        assert_eq!(
            periodic_body(&HealthStatus::Healthy, Duration::from_secs(5)),
            "beat/5"
        );
        assert_eq!(
            periodic_body(
                &HealthStatus::Degraded(vec!["x".into()]),
                Duration::from_millis(1500)
            ),
            "degraded/1.5"
        );
        assert_eq!(STOP_BODY, "stop");
    }

    #[test]
    fn the_process_defaults_to_the_agents_host() {
        let options = BeatOptions::for_agent("cack");
        assert_eq!(options.process, "heartbeat-host.cack");
        assert_eq!(options.routing_key(), "heartbeat.heartbeat-host.cack");
    }
}
