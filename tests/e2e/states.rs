//! Soft and hard states through the real binary on its own timer: the
//! state changes go into the events log (the same events the bus gets,
//! `tests/e2e/amqp.rs` pins those), an alternating handler is reported
//! flapping once and then stays quiet, and `explain` and the state file
//! show where each check stands.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, RunningHost};

const WAIT: Duration = Duration::from_secs(60);

/// The host on its own timer (50 ms ticks) as agent `states`, with the kv
/// test handler as handler `scripted` and `checks` (JSON object text); its
/// config, state and events log in `dir`.
fn start_scripted(dir: &Path, checks: &str) -> RunningHost {
    let handlers = support::handlers_with(dir, "test_handler_kv.wasm", "scripted");
    let checks: Value = serde_json::from_str(checks).expect("checks are JSON");
    let config = support::write_config(dir, "states", checks);
    let events_log = dir.join("events.jsonl");
    let cache = dir.join("cache");
    support::start_on_timer(
        &config,
        "50ms",
        &[
            "--handlers",
            handlers.to_str().expect("utf-8"),
            "--events-log",
            events_log.to_str().expect("utf-8"),
        ],
        &[("HEARTBEAT_CACHE_DIR", cache.to_str().expect("utf-8"))],
    )
}

/// The state changes in the events log: (change, previous, state).
fn state_changes(dir: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["routingKey"] == "agent.states.check.state_changed")
        .map(|e| {
            let p = &e["payload"];
            let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
            (s("change"), s("previous"), s("state"))
        })
        .collect()
}

fn runs(lines: &[Value]) -> usize {
    support::records(lines, "run_finished", &[("check", "flaky")]).len()
}

#[test]
fn an_alternating_check_is_reported_flapping_once_and_then_its_blips_are_not_published() {
    let dir = tempfile::tempdir().expect("tempdir");
    // cadenceMs 0 and maxAttempts 1: a run on every tick, each failure hard
    // at once, each success ok; flapping after more than 3 changes.
    let mut host = start_scripted(
        dir.path(),
        r#"{"flaky": {"handler": "scripted", "cadenceMs": 0, "flapThreshold": 3,
            "meta": {"mode": "script", "results": "-+", "cycle": true}}}"#,
    );
    host.wait_for("12 runs", WAIT, |lines| runs(lines) >= 12);
    assert!(host.terminate(WAIT).success(), "{}", host.log());
    let lines = host.lines();
    let n = runs(&lines);
    let expected: Vec<(String, String, String)> = [
        ("transition", "ok", "hard"),
        ("transition", "hard", "ok"),
        ("transition", "ok", "hard"),
        ("transition", "hard", "ok"),
        ("flapping_started", "ok", "hard"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(
        state_changes(dir.path()),
        expected,
        "{n} runs, yet the changes after the 5th were published:\n{}",
        host.log()
    );
    // Each change was logged once too, and the result events say the state.
    assert_eq!(
        support::records(&lines, "state_changed", &[("check", "flaky")]).len(),
        5
    );
    let state = support::read_json(&dir.path().join("heartbeat.state.json"));
    assert_eq!(state["checks"]["flaky"]["flapping"], true, "{state}");
    let recent = state["checks"]["flaky"]["recent"].as_str().unwrap_or("");
    assert!(recent.len() >= 12 && recent.len() <= 20, "{recent}");
    assert!(!recent.contains("++") && !recent.contains("--"), "{recent}");
}

#[test]
fn explain_and_the_state_file_show_a_soft_check_and_its_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Fails for good: after the first failure it is soft 1/3, retried in
    // an hour, so it stays soft while `explain` looks.
    let checks = r#"{"api": {"handler": "scripted", "cadenceMs": 86400000, "maxAttempts": 3,
        "retryIntervalMs": 3600000, "meta": {"mode": "script", "results": "-", "cycle": true}}}"#;
    let mut host = start_scripted(dir.path(), checks);
    host.wait_for("one run", WAIT, |lines| {
        !support::records(lines, "run_finished", &[("check", "api")]).is_empty()
    });
    assert!(host.terminate(WAIT).success(), "{}", host.log());
    let state = support::read_json(&dir.path().join("heartbeat.state.json"));
    let api = &state["checks"]["api"];
    assert_eq!(
        (&api["state"], &api["attempt"]),
        (&"soft".into(), &1.into()),
        "{state}"
    );
    assert!(
        state_changes(dir.path()).is_empty(),
        "soft is not a state change"
    );

    let out = std::process::Command::new(support::host_bin())
        .args([
            "explain",
            "--config",
            dir.path().join("heartbeat.json").to_str().expect("utf-8"),
            "--json",
        ])
        .output()
        .expect("run explain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    let check = &json["checks"][0];
    assert_eq!(check["state"], "soft");
    assert_eq!(check["attempt"], 1);
    assert!(
        check["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("soft failure 1/3: retried after ")),
        "{json}"
    );
}
