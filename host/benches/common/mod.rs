//! Helpers shared by the bench harnesses that time handler runs.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use heartbeat_host::runtime::{RunRequest, TickInfo};

/// The sample at quantile `p` of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// (median, p99) of unsorted samples.
pub fn median_p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Microseconds.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The request of a no-op check (`cadenceMs` 0) running `handler`, as the
/// host builds it.
pub fn noop_request(handler: &str) -> RunRequest {
    let text = format!(r#"{{"checks": {{"noop": {{"cadenceMs": 0, "handler": "{handler}"}}}}}}"#);
    let loaded = heartbeat_host::config::parse(&text, "bench.json").expect("bench config");
    RunRequest::for_check(
        "bench",
        TickInfo {
            id: "bench".into(),
            time_ms: 1_777_593_600_000,
            envelope: "{}".into(),
        },
        &loaded.config.checks[0],
        0,
        Path::new("."),
    )
}
