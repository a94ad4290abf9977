//! Time from a write of heartbeat.json to its application (target: ≤ 200 ms).
//!
//! Drives the real [`ConfigWatcher`] (inotify, the directory watch, the
//! default debounce, parse, validate, diff) on files in a temporary
//! directory. "Applied" is the moment the watcher hands the new config to
//! `apply`, which is where the host swaps it in for the next tick. The
//! clock starts before the write begins.
//!
//! `cargo bench -p heartbeat-host --bench reload_latency`
//! (under `cargo test --benches` it runs a few rounds as a smoke test).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use heartbeat_host::core::config::{self, HeartbeatConfig};
use heartbeat_host::reload::{ConfigWatcher, WatchOptions};

/// Waiting longer than this for one reload is a failure, not a figure.
const BOUND: Duration = Duration::from_secs(10);

/// A config of `checks` checks whose first check has cadence `cadence`.
fn config_text(checks: usize, cadence: u64) -> String {
    let mut map = serde_json::Map::new();
    for i in 0..checks {
        map.insert(
            format!("check_{i:05}"),
            serde_json::json!({
                "cadenceMs": if i == 0 { cadence } else { 60_000 + i as u64 },
                "handler": "default",
                "window": {"start": "08:00", "end": "20:00", "tz": "Europe/Berlin"},
            }),
        );
    }
    serde_json::json!({"$schema": "heartbeat.v1", "checks": map}).to_string()
}

#[derive(Clone, Copy, Debug)]
enum Save {
    /// Truncate and write the file in place.
    InPlace,
    /// Write a temporary file beside it and rename it over the config.
    RenameReplace,
}

fn save(path: &Path, text: &str, how: Save) {
    match how {
        Save::InPlace => std::fs::write(path, text).expect("write config"),
        Save::RenameReplace => {
            let tmp = path.with_file_name(".heartbeat.json.tmp");
            std::fs::write(&tmp, text).expect("write temp");
            std::fs::rename(&tmp, path).expect("rename");
        }
    }
}

/// Latencies of `rounds` saves of a `checks`-check config.
fn measure(checks: usize, how: Save, rounds: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("heartbeat.json");
    let first = config_text(checks, 1_000);
    std::fs::write(&path, &first).expect("write config");
    let initial: HeartbeatConfig = config::parse(&first, "heartbeat.json")
        .expect("valid")
        .config;
    let (tx, rx) = mpsc::channel::<(Instant, u64)>();
    let _watcher = ConfigWatcher::start(
        &path,
        Arc::new(initial),
        WatchOptions::default(),
        move |config: Arc<HeartbeatConfig>, _: &_| {
            let _ = tx.send((Instant::now(), config.checks[0].cadence_ms));
        },
    )
    .expect("start watcher");
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let cadence = 2_000 + round as u64;
        let text = config_text(checks, cadence);
        // Let the previous burst settle so that each save is its own reload.
        std::thread::sleep(Duration::from_millis(120));
        let start = Instant::now();
        save(&path, &text, how);
        loop {
            let (applied_at, got) = rx
                .recv_timeout(BOUND)
                .unwrap_or_else(|_| panic!("round {round}: not applied within {BOUND:?}"));
            if got == cadence {
                latencies.push(applied_at.duration_since(start));
                break;
            }
        }
    }
    latencies
}

fn report(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<44} n={:<3} min {:>6.1} ms  median {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms",
        latencies.len(),
        ms(latencies[0]),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(latencies[latencies.len() - 1]),
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = if benching { 40 } else { 3 };
    println!(
        "config write → applied (debounce {:?}, {rounds} saves each)",
        WatchOptions::default().debounce
    );
    for checks in [20, 1_000, 10_000] {
        for how in [Save::InPlace, Save::RenameReplace] {
            let label = format!("{checks} checks, {how:?}");
            report(&label, measure(checks, how, rounds));
        }
    }
}
