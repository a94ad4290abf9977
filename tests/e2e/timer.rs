//! End to end on the host's own timer: the real binary, a temporary
//! config, real files; which checks ran, in which order, is read from the
//! logs (`event` and fields of the JSON records) and the state file.

use std::time::Duration;

use serde_json::Value;

use crate::support::{self, RunningHost, field, read_json, records, render, values};

const WAIT: Duration = Duration::from_secs(60);

fn selected_checks(lines: &[Value]) -> Vec<String> {
    values(lines, "selected", "check")
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn runs_the_most_overdue_check_first_and_records_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    // All never ran: the shortest cadence has the highest ratio, so the
    // order is b, a, c, one per tick (maxPerTick defaults to 1).
    std::fs::write(
        &config,
        r#"{"$schema": "heartbeat.v1", "agent": "e2e", "checks": {
            "a": {"cadenceMs": 200000, "handler": "default"},
            "b": {"cadenceMs": 100000},
            "c": {"cadenceMs": 300000, "handler": "default", "priority": 1}
        }}"#,
    )
    .expect("write config");
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--tick-interval",
            "150ms",
        ],
        &[],
    );
    let lines = host.wait_for("three runs", WAIT, |l| {
        records(l, "run_finished", &[("status", "success")]).len() >= 3
    });
    assert_eq!(selected_checks(&lines)[..3], ["b", "a", "c"]);
    // A fourth tick finds nothing due.
    host.wait_for("an idle tick", WAIT, |l| {
        !records(l, "no_check_due", &[]).is_empty()
    });
    assert!(host.terminate(WAIT).success());

    let state = read_json(&dir.path().join("heartbeat.state.json"));
    for name in ["a", "b", "c"] {
        let check = &state["checks"][name];
        assert_eq!(check["lastStatus"], "success", "{state}");
        assert!(
            check["lastRun"]
                .as_u64()
                .is_some_and(|t| t > 1_700_000_000_000),
            "{state}"
        );
        assert_eq!(check["consecutiveFailures"], 0);
    }
    let (a, b, c) = (
        state["checks"]["a"]["lastRun"].as_u64(),
        state["checks"]["b"]["lastRun"].as_u64(),
        state["checks"]["c"]["lastRun"].as_u64(),
    );
    assert!(b < a && a < c, "lastRun order b < a < c: {state}");
    // The config file itself is never written.
    assert!(
        std::fs::read_to_string(&config)
            .expect("config")
            .contains("\"cadenceMs\": 200000")
    );
}

#[test]
fn a_missing_handler_is_named_at_startup_fails_its_check_and_others_keep_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.json");
    std::fs::write(
        &config,
        r#"{"checks": {
            "ghost": {"cadenceMs": 1000, "handler": "no_such_handler"},
            "alive": {"cadenceMs": 50000}
        }}"#,
    )
    .expect("write config");
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--tick-interval",
            "150ms",
        ],
        &[("AGENT_NAME", "e2e")],
    );
    let lines = host.wait_for("the healthy check to run", WAIT, |l| {
        !records(
            l,
            "run_finished",
            &[("check", "alive"), ("status", "success")],
        )
        .is_empty()
    });
    let startup = records(&lines, "missing_handler", &[]);
    assert_eq!(startup.len(), 1, "{}", render(&lines));
    assert_eq!(field(startup[0], "check"), Some("ghost"), "{}", startup[0]);
    assert_eq!(
        field(startup[0], "handler"),
        Some("no_such_handler"),
        "{}",
        startup[0]
    );
    let failed = records(
        &lines,
        "run_finished",
        &[("check", "ghost"), ("status", "failed")],
    );
    assert_eq!(failed.len(), 1, "{}", render(&lines));
    assert!(
        field(failed[0], "error").is_some_and(|e| e.contains("not found")),
        "{}",
        failed[0]
    );
    assert!(host.terminate(WAIT).success());

    let state = read_json(&dir.path().join("agent.state.json"));
    assert_eq!(state["checks"]["ghost"]["lastStatus"], "failed");
    assert_eq!(state["checks"]["ghost"]["consecutiveFailures"], 1);
    assert!(
        state["checks"]["ghost"]["lastRun"].is_null(),
        "a failure does not move lastRun"
    );
    assert!(
        state["checks"]["ghost"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("no_such_handler"))
    );
    assert_eq!(state["checks"]["alive"]["lastStatus"], "success");
}

#[test]
fn an_invalid_config_at_startup_is_refused_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        "{\n  \"checks\": {\n    \"a\": {\"cadenceMs\": \"15m\"}\n  }\n}\n",
    )
    .expect("write");
    let output = std::process::Command::new(support::host_bin())
        .args([
            "run",
            "--agent",
            "e2e",
            "--config",
            config.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("heartbeat.json:3:24: checks.a.cadenceMs: expected a non-negative integer, found \"15m\""),
        "{stderr}"
    );
    assert!(!dir.path().join("heartbeat.state.json").exists());
}

/// heartbeat-consumer's unit file starts it as `ExecStart=heartbeat-host`
/// with the environment alone.
#[test]
fn exec_start_with_no_arguments_runs_the_host_from_the_consumers_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"agent": "from-file", "checks": {"keepalive": {"cadenceMs": 0}}}"#,
    )
    .expect("write config");
    let mut host = RunningHost::start(
        &[],
        &[
            ("HEARTBEAT_PATH", config.to_str().expect("utf-8")),
            ("AGENT_NAME", "consumer-agent"),
            ("LOG_LEVEL", "INFO"),
        ],
    );
    let lines = host.wait_for("a run from the environment's config", WAIT, |lines| {
        !records(
            lines,
            "run_finished",
            &[("check", "keepalive"), ("status", "success")],
        )
        .is_empty()
    });
    let started = records(&lines, "started", &[]);
    assert_eq!(
        started.first().and_then(|l| field(l, "agent")),
        Some("consumer-agent"),
        "{}",
        render(&lines)
    );
    assert!(host.terminate(WAIT).success());
    assert!(dir.path().join("heartbeat.state.json").exists());
}

/// Without a subcommand and without `HEARTBEAT_PATH` there is nothing to
/// run: the help, and exit 2.
#[test]
fn no_arguments_and_no_heartbeat_path_prints_the_help_and_exits_2() {
    let out = std::process::Command::new(support::host_bin())
        .env_remove("HEARTBEAT_PATH")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run heartbeat-host");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Usage: heartbeat-host"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
