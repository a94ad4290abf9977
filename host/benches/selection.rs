//! Selection over 10,000 checks: one call of `schedule::plan`, the work the
//! host does on every tick before it runs anything (target: ≤ 1 ms).
//!
//! `cargo bench -p heartbeat-host --bench selection`

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

use heartbeat_host::core::config::{self, HeartbeatConfig};
use heartbeat_host::core::schedule;
use heartbeat_host::core::state::{CheckState, State};

/// 2026-04-01T12:00:00Z, a Wednesday in Q2.
const NOW: u64 = 1_775_044_800_000;
const CHECKS: usize = 10_000;
const ZONES: [&str; 4] = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo"];

/// A config like a large agent's: cadences from 1 s to a day; a quarter of
/// the checks with a window in one of four zones, some with quarters, some
/// disabled or paused; the state has a lastRun for most and a few failures.
/// `due_every_tick` makes every check due (cadence 0) to stress the sort.
fn scenario(max_per_tick: usize, due_every_tick: bool) -> (HeartbeatConfig, State) {
    let mut checks = serde_json::Map::new();
    let mut paused = serde_json::Map::new();
    let mut state = State::default();
    for i in 0..CHECKS {
        let name = format!("check_{i:05}");
        let cadence = if due_every_tick {
            0
        } else {
            [1_000u64, 60_000, 900_000, 3_600_000, 86_400_000][i % 5]
        };
        let mut check = json!({
            "cadenceMs": cadence,
            "handler": if i % 3 == 0 { "default" } else { "sub_health" },
            "priority": (i % 7) as i64 - 3,
            "enabled": i % 50 != 0,
        });
        if i % 4 == 0 {
            check["window"] =
                json!({"start": "08:00", "end": "20:00", "tz": ZONES[i % ZONES.len()]});
        }
        if i % 10 == 1 {
            check["triggerOnQuarters"] = json!(["Q2", "Q3"]);
        }
        checks.insert(name.clone(), check);
        if i % 100 == 7 {
            paused.insert(
                name.clone(),
                json!({"until": NOW + 60_000, "reason": "bench"}),
            );
        }
        if i % 10 != 9 {
            state.checks.insert(
                name,
                CheckState {
                    last_run: Some(NOW - (i as u64 * 7_919) % 7_200_000),
                    consecutive_failures: u32::from(i % 97 == 0),
                    retry_after: (i % 97 == 0).then_some(NOW + 30_000),
                    ..CheckState::default()
                },
            );
        }
    }
    let text = json!({
        "$schema": "heartbeat.v1",
        "maxPerTick": max_per_tick,
        "checks": checks,
        "paused": paused,
    })
    .to_string();
    let config = config::parse(&text, "bench.json")
        .expect("the bench config is valid")
        .config;
    (config, state)
}

/// CPU time of the calling thread. The machine is shared (builds run beside
/// the bench), so wall time includes time spent waiting for a core; CPU time
/// is what one tick costs.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(CHECKS as u64));
    for (label, max_per_tick, all_due) in [
        ("mixed, maxPerTick 1", 1, false),
        ("mixed, maxPerTick 100", 100, false),
        ("all due, maxPerTick 10000", CHECKS, true),
    ] {
        let (config, state) = scenario(max_per_tick, all_due);
        let running: HashSet<String> = (0..CHECKS)
            .step_by(1_000)
            .map(|i| format!("check_{i:05}"))
            .collect();
        let plan = schedule::plan(&config, &state, &running, NOW);
        assert!(!plan.selected.is_empty(), "{label}: something is due");
        let inputs = (config, state, running);
        group.bench_with_input(
            BenchmarkId::new("10000 checks, wall time", label),
            &inputs,
            |b, (config, state, running)| {
                b.iter(|| {
                    schedule::plan(black_box(config), black_box(state), running, black_box(NOW))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("10000 checks, thread CPU time", label),
            &inputs,
            |b, (config, state, running)| {
                b.iter_custom(|iters| {
                    let start = thread_cpu_time();
                    for _ in 0..iters {
                        black_box(schedule::plan(
                            black_box(config),
                            black_box(state),
                            running,
                            black_box(NOW),
                        ));
                    }
                    thread_cpu_time().saturating_sub(start)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);
