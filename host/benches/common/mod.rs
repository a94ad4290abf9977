//! Helpers shared by the bench harnesses: timing figures, the no-op run
//! request, stopping a host process.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use heartbeat_host::{RunRequest, Tick};

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

/// Stops a host process as an operator would: SIGTERM, up to 30 s for a
/// clean stop, then SIGKILL.
pub fn terminate(host: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = host.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = host.kill();
    let _ = host.wait();
}

/// The request of a no-op check (`cadenceMs` 0) running `handler`, as the
/// host builds it.
pub fn noop_request(handler: &str) -> RunRequest {
    let text = format!(r#"{{"checks": {{"noop": {{"cadenceMs": 0, "handler": "{handler}"}}}}}}"#);
    let loaded = heartbeat_host::core::config::parse(&text, "bench.json").expect("bench config");
    let tick = Tick {
        id: "bench".into(),
        time_ms: 1_777_593_600_000,
        envelope: serde_json::json!({}),
        done: None,
    };
    heartbeat_host::run_request("bench", &tick, &loaded.config.checks[0], 0, Path::new("."))
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`).
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// utime + stime of a `stat` line of `/proc`, in seconds.
pub fn stat_cpu(stat: &str) -> f64 {
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    (ticks(11) + ticks(12)) / hz
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`, `RssAnon:`), 0 when absent.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
