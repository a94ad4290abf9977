//! The host when the wall clock steps (an NTP step, `date -s`), under
//! Debian's libfaketime: the wall clock of the host process is moved while
//! it runs (`FAKETIME_TIMESTAMP_FILE`, re-read on every call), its
//! monotonic clock is left alone, as a real step leaves it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{self, RunningHost, records};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const WAIT: Duration = Duration::from_secs(120);
const HOUR_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The host on its own timer (100 ms ticks) on `checks`, with its wall
/// clock offset by what `offset` holds (`+0`, `-1h`, `+1h`).
fn host_on_a_clock(dir: &Path, checks: &str, offset: &Path) -> RunningHost {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: tests/run.sh installs Debian's faketime"
    );
    std::fs::write(offset, "+0").expect("write the offset");
    let config = dir.join("heartbeat.json");
    std::fs::write(
        &config,
        format!(r#"{{"agent": "clock", "maxPerTick": 1, "checks": {checks}}}"#),
    )
    .expect("write config");
    support::start_on_timer(
        &config,
        "100ms",
        &[],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", offset.to_str().expect("utf-8")),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            (
                "HEARTBEAT_CACHE_DIR",
                dir.join("cache").to_str().expect("utf-8"),
            ),
        ],
    )
}

fn runs_of(lines: &[serde_json::Value], check: &str) -> usize {
    records(lines, "run_finished", &[("check", check)]).len()
}

/// The index just past the one `clock_stepped` record, and its `by_ms`.
fn the_step(host: &mut RunningHost) -> (usize, i64) {
    let lines = host.wait_for_event("clock_stepped", &[], WAIT);
    let at = lines
        .iter()
        .position(|l| support::event(l) == Some("clock_stepped"))
        .expect("the step");
    let by = lines[at]["by_ms"].as_i64().expect("by_ms");
    (at + 1, by)
}

#[test]
fn a_wall_clock_stepped_back_an_hour_costs_a_check_at_most_one_cadence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offset: PathBuf = dir.path().join("offset");
    let mut host = host_on_a_clock(
        dir.path(),
        r#"{"every_second": {"cadenceMs": 1000}}"#,
        &offset,
    );
    host.wait_for("two runs", WAIT, |l| runs_of(l, "every_second") >= 2);
    std::fs::write(&offset, "-1h").expect("step the clock back");
    let (after, by) = the_step(&mut host);
    assert!(
        (by + HOUR_MS as i64).abs() < 2_000,
        "measured a step of {by} ms"
    );
    // Before the fix: no run for an hour (every lastRun in the future).
    let lines = host.wait_for("four runs after the step", Duration::from_secs(15), |l| {
        l.len() > after && runs_of(&l[after..], "every_second") >= 4
    });
    assert_eq!(
        records(&lines, "clock_stepped", &[]).len(),
        1,
        "logged once:\n{}",
        support::render(&lines)
    );
}

#[test]
fn a_wall_clock_stepped_forward_an_hour_makes_no_check_due_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offset = dir.path().join("offset");
    let now = now_ms();
    let checks: Vec<String> = (0..5)
        .map(|n| format!(r#""c{n}": {{"cadenceMs": 600000, "lastRun": {now}}}"#))
        .collect();
    let mut host = host_on_a_clock(dir.path(), &format!("{{{}}}", checks.join(",")), &offset);
    host.wait_for_event("no_check_due", &[], WAIT);
    std::fs::write(&offset, "+1h").expect("step the clock forward");
    let (after, by) = the_step(&mut host);
    assert!(
        (by - HOUR_MS as i64).abs() < 2_000,
        "measured a step of {by} ms"
    );
    // Twenty ticks after the step: none ran a check (before the fix, every
    // tick ran one: each was six cadences overdue).
    let lines = host.wait_for("twenty ticks after the step", WAIT, |l| {
        l.len() > after && records(&l[after..], "no_check_due", &[]).len() >= 20
    });
    let ran: Vec<_> = records(&lines[after..], "run_finished", &[]);
    assert!(ran.is_empty(), "{}", support::render(&lines[after..]));
}

#[test]
fn a_last_run_written_an_hour_ahead_runs_the_check_once_at_start_and_then_on_cadence() {
    // What a host started after the clock stepped back finds in its files.
    let dir = tempfile::tempdir().expect("tempdir");
    let ahead = now_ms() + HOUR_MS;
    let config = support::write_config(
        dir.path(),
        "clock",
        serde_json::json!({"ahead": {"cadenceMs": 600000, "lastRun": ahead}}),
    );
    let mut host = support::start_on_timer(
        &config,
        "100ms",
        &[],
        &[(
            "HEARTBEAT_CACHE_DIR",
            dir.path().join("cache").to_str().expect("utf-8"),
        )],
    );
    let lines = host.wait_for("a run and ten ticks after it", WAIT, |l| {
        l.iter()
            .position(|r| support::is(r, "run_finished", &[("check", "ahead")]))
            .is_some_and(|at| records(&l[at..], "no_check_due", &[]).len() >= 10)
    });
    assert_eq!(runs_of(&lines, "ahead"), 1, "{}", support::render(&lines));
    let state = support::read_json(&dir.path().join("heartbeat.state.json"));
    let last_run = state["checks"]["ahead"]["lastRun"].as_u64().unwrap_or(0);
    assert!(last_run < ahead && last_run >= now_ms() - 60_000, "{state}");
}
