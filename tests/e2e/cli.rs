//! End to end: `heartbeat-host explain` and `heartbeat-host check`, run as
//! the real binary against files in a temporary directory; exit codes,
//! stdout and stderr are what is checked.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, RunningHost, field, records};

/// Bound of every command and wait.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// 2026-01-01T00:00:00Z, in ms.
pub(crate) const T0: u64 = 1_767_225_600_000;

/// Runs the binary with `args` and no inherited config variables; panics
/// if it takes longer than [`WAIT`].
pub(crate) fn host(args: &[&str]) -> Output {
    let mut child = Command::new(support::host_bin())
        .args(args)
        .env("LOG_LEVEL", "warn")
        .env_remove("HEARTBEAT_PATH")
        .env_remove("HANDLERS_DIR")
        .env_remove("AGENT_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start heartbeat-host");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("poll").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("heartbeat-host {args:?} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A config exercising every reason a check does not run, at T0 + 10 min
/// (a Thursday in Q1, 19:10 the evening before in New York).
const EVERY_REASON: &str = r#"{"$schema": "heartbeat.v1", "agent": "cli", "maxPerTick": 2, "checks": {
    "fresh":     {"cadenceMs": 3600000, "lastRun": 1767225600000},
    "overdue":   {"cadenceMs": 60000, "handler": "default", "priority": 5},
    "also_due":  {"cadenceMs": 60000, "priority": 1},
    "third_due": {"cadenceMs": 120000},
    "off":       {"cadenceMs": 1, "enabled": false},
    "held":      {"cadenceMs": 1},
    "daytime":   {"cadenceMs": 1, "window": {"start": "09:00", "end": "17:00", "tz": "America/New_York"}},
    "summer":    {"cadenceMs": 1, "triggerOnQuarters": ["Q3"]},
    "flaky":     {"cadenceMs": 1},
    "always":    {"cadenceMs": 0, "priority": 9}
}, "paused": {"held": {"until": 1767229200000, "reason": "migration"}}}"#;

/// State: `overdue` and `also_due` ran 5 min before T0 + 10 min (ratio 5,
/// a tie broken by priority); `flaky` failed and backs off.
fn every_reason_state() -> Value {
    json!({"version": 1, "checks": {
        "overdue": {"lastRun": T0 + 300_000},
        "also_due": {"lastRun": T0 + 300_000},
        "third_due": {"lastRun": T0},
        "flaky": {"consecutiveFailures": 2, "retryAfter": T0 + 660_000, "lastStatus": "failed"}
    }})
}

fn write_every_reason(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = dir.join("agent.json");
    std::fs::write(&config, EVERY_REASON).expect("write config");
    let state = dir.join("elsewhere.state.json");
    std::fs::write(&state, every_reason_state().to_string()).expect("write state");
    (config, state)
}

#[test]
fn explain_json_has_the_documented_shape_and_every_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, state) = write_every_reason(dir.path());
    let out = host(&[
        "explain",
        "--config",
        path_str(&config),
        "--state",
        path_str(&state),
        "--at",
        "2026-01-01T00:10:00Z",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON object");
    // A state file from before soft and hard states: the check that was
    // failing reads as hard (its first failure was, with maxAttempts 1).
    let expected = json!({
        "at": "2026-01-01T00:10:00Z",
        "selected": ["always", "also_due"],
        "checks": [
            {"name": "fresh", "handler": "default", "eligible": true, "due": false, "ratio": 600000.0 / 3600000.0,
             "reason": "not due: ratio 0.17 ≤ 1.0, due after 2026-01-01T01:00:00Z", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "overdue", "handler": "default", "eligible": true, "due": true, "ratio": 5.0, "reason": "", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "also_due", "handler": "default", "eligible": true, "due": true, "ratio": 5.0, "reason": "", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "third_due", "handler": "default", "eligible": true, "due": true, "ratio": 5.0, "reason": "", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "off", "handler": "default", "eligible": false, "due": false, "ratio": (T0 + 600_000) as f64, "reason": "disabled", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "held", "handler": "default", "eligible": false, "due": false, "ratio": (T0 + 600_000) as f64,
             "reason": "paused until 2026-01-01T01:00:00Z: migration", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "daytime", "handler": "default", "eligible": false, "due": false, "ratio": (T0 + 600_000) as f64,
             "reason": "outside its window", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "summer", "handler": "default", "eligible": false, "due": false, "ratio": (T0 + 600_000) as f64,
             "reason": "not triggered in Q1", "state": "ok", "attempt": 0, "flapping": false},
            {"name": "flaky", "handler": "default", "eligible": false, "due": false, "ratio": (T0 + 600_000) as f64,
             "reason": "backing off after 2 failures until 2026-01-01T00:11:00Z",
             "state": "hard", "attempt": 1, "flapping": false},
            {"name": "always", "handler": "default", "eligible": true, "due": true, "ratio": null, "reason": "", "state": "ok", "attempt": 0, "flapping": false}
        ]
    });
    assert_eq!(got, expected, "stdout: {}", stdout(&out));
}

#[test]
fn explain_table_reads_at_a_glance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, state) = write_every_reason(dir.path());
    let out = host(&[
        "explain",
        "--config",
        path_str(&config),
        "--state",
        path_str(&state),
        "--at",
        "2026-01-01T01:10:00+01:00",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "At 2026-01-01T00:10:00Z: runs always, also_due (maxPerTick 2)"
    );
    let header = lines[2];
    for column in [
        "NAME", "HANDLER", "LAST RUN", "NEXT DUE", "RATIO", "STATUS", "STATE", "REASON",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .to_string()
    };
    assert!(row("always").contains("runs #1"), "{text}");
    assert!(row("also_due").contains("runs #2"), "{text}");
    assert!(row("overdue").contains("due, waits"), "{text}");
    assert!(
        row("overdue").contains("2026-01-01 00:05:00 UTC (5m ago)"),
        "{text}"
    );
    assert!(
        row("fresh").contains("2026-01-01 01:00:00 UTC (in 50m)"),
        "{text}"
    );
    assert!(row("flaky").contains("backoff"), "{text}");
    // The STATE column: a check failing in a state file from before
    // states is hard; the others are ok.
    let state_at = header.find("STATE").expect("STATE");
    assert!(row("flaky")[state_at..].starts_with("hard 1/1"), "{text}");
    assert!(row("always")[state_at..].starts_with("ok"), "{text}");
    assert!(row("held").contains("paused until"), "{text}");
    // Columns line up: every row has STATUS where the header has it.
    let status_at = header.find("STATUS").expect("STATUS");
    let statuses: Vec<&str> = lines[3..]
        .iter()
        .map(|l| l[status_at..].split("  ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        [
            "waiting",
            "due, waits",
            "runs #2",
            "due, waits",
            "disabled",
            "paused",
            "off-window",
            "off-quarter",
            "backoff",
            "runs #1"
        ],
        "{text}"
    );
}

#[test]
fn explain_reads_the_default_state_file_and_warns_about_a_missing_tz() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"checks": {
            "a": {"cadenceMs": 60000, "window": {"start": "00:00", "end": "23:59"}},
            "b": {"cadenceMs": 60000}}}"#,
    )
    .expect("write config");
    // Beside the config, as `run` writes it: a ran just now, so b is chosen.
    std::fs::write(
        dir.path().join("heartbeat.state.json"),
        json!({"checks": {"a": {"lastRun": T0}, "b": {"lastRun": T0 - 600_000}}}).to_string(),
    )
    .expect("write state");
    let out = host(&[
        "explain",
        "--config",
        path_str(&config),
        "--at",
        "2026-01-01T00:00:30Z",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout only");
    assert_eq!(got["selected"], json!(["b"]));
    assert_eq!(got["checks"][0]["ratio"], 0.5);
    assert!(
        stderr(&out).contains(
            "warning: checks.a.window.tz: missing; the window is read in America/New_York"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_refuses_a_bad_instant_or_config_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, r#"{"checks": {"a": {}}}"#).expect("write");
    let out = host(&["explain", "--config", path_str(&config), "--at", "noon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected an RFC 3339 time"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&config, "{\n  \"maxPerTick\": 0\n}").expect("write");
    let out = host(&["explain", "--config", path_str(&config)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("heartbeat.json:2:17: maxPerTick: expected a positive integer, found 0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_predicts_what_the_running_host_selects_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    // Never run: the shortest cadence has the highest ratio whatever the
    // instant, so the prediction cannot go stale before the first tick.
    std::fs::write(
        &config,
        r#"{"agent": "cli", "maxPerTick": 2, "checks": {
            "slow": {"cadenceMs": 300000},
            "quick": {"cadenceMs": 100000, "priority": 9},
            "medium": {"cadenceMs": 200000}}}"#,
    )
    .expect("write config");
    let out = host(&["explain", "--config", path_str(&config), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let predicted: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(predicted["selected"], json!(["quick", "medium"]));

    let mut running = RunningHost::start(
        &[
            "run",
            "--config",
            path_str(&config),
            "--tick-interval",
            "10s",
        ],
        &[],
    );
    let lines = running.wait_for("the first tick's selection", WAIT, |l| {
        records(l, "selected", &[]).len() >= 2
    });
    let selected: Vec<&str> = records(&lines, "selected", &[("tick", "timer-1")])
        .iter()
        .filter_map(|l| field(l, "check"))
        .collect();
    assert_eq!(selected, ["quick", "medium"]);
    assert!(running.terminate(WAIT).success());
}

#[test]
fn check_accepts_a_valid_config_and_prints_its_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"$schema": "heartbeat.v1", "owner": "ops", "checks": {
            "a": {"cadenceMs": 60000, "window": {"start": "09:00", "end": "17:00"}}}}"#,
    )
    .expect("write config");
    let out = host(&["check", "--config", path_str(&config)]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("warning: owner: unknown field (kept, not used by the host)"),
        "{text}"
    );
    assert!(
        text.contains("warning: checks.a.window.tz: missing; the window is read in America/New_York, as heartbeat-consumer does"),
        "{text}"
    );
    assert!(
        text.contains("handler default: built-in (used by a)"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("valid: 1 check, maxPerTick 1, 0 errors, 2 warnings"),
        "{text}"
    );
}

#[test]
fn check_refuses_an_invalid_config_with_exit_1_and_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        "{\n  \"checks\": {\n    \"sub_health\": {\"cadenceMs\": \"15m\"}\n  }\n}\n",
    )
    .expect("write config");
    let out = host(&["check", "--config", path_str(&config)]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "heartbeat.json:3:33: checks.sub_health.cadenceMs: expected a non-negative integer, found \"15m\""
        ),
        "{text}"
    );
    assert!(text.contains("NOT valid: 1 error"), "{text}");

    let out = host(&[
        "check",
        "--config",
        path_str(&dir.path().join("missing.json")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("cannot read"), "{}", stdout(&out));
}

#[test]
fn check_resolves_handlers_from_the_directory_and_the_built_ins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = dir.path().join("handlers");
    std::fs::create_dir(&handlers).expect("mkdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"checks": {
            "a": {"handler": "default"},
            "b": {"handler": "mine"},
            "c": {"handler": "ghost"}}}"#,
    )
    .expect("write config");

    // No handler provides `ghost` (nor `mine`, without the file).
    let out = host(&[
        "check",
        "--config",
        path_str(&config),
        "--handlers",
        path_str(&handlers),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error: check b: handler \"mine\" not found")
            && text.contains("error: check c: handler \"ghost\" not found")
            && text.contains("no ghost.wasm in"),
        "{text}"
    );

    // A real component as mine.wasm resolves and compiles; a file that is
    // not one is refused even though its name matches.
    let component = heartbeat_host::builtin_bytes("default").expect("the default built-in");
    std::fs::write(handlers.join("mine.wasm"), component).expect("write component");
    std::fs::write(handlers.join("ghost.wasm"), b"not wasm").expect("write junk");
    let out = host(&[
        "check",
        "--config",
        path_str(&config),
        "--handlers",
        path_str(&handlers),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "handler mine: {} (used by b)",
            handlers.join("mine.wasm").display()
        )),
        "{text}"
    );
    assert!(!text.contains("handler \"mine\" not found"), "{text}");
    let ghost_errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("error: handler ghost:"))
        .collect();
    assert_eq!(ghost_errors.len(), 1, "{text}");

    std::fs::remove_file(handlers.join("ghost.wasm")).expect("rm");
    std::fs::write(
        &config,
        r#"{"checks": {"a": {"handler": "default"}, "b": {"handler": "mine"}}}"#,
    )
    .expect("rewrite config");
    let out = host(&[
        "check",
        "--config",
        path_str(&config),
        "--handlers",
        path_str(&handlers),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn every_run_flag_can_come_from_the_environment() {
    // A bare start, as a unit file's `Environment=` lines configure it.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"agent": "envy", "checks": {"a": {"cadenceMs": 0}}}"#,
    )
    .expect("config");
    let state = dir.path().join("elsewhere.state.json");
    let mut host = RunningHost::start(
        &[],
        &[
            ("HEARTBEAT_PATH", path_str(&config)),
            ("TICK_INTERVAL", "100ms"),
            ("STATE_PATH", path_str(&state)),
            ("HEARTBEAT_CACHE_DIR", path_str(&dir.path().join("cache"))),
        ],
    );
    // The first tick comes at start-up; two more mean TICK_INTERVAL held.
    host.wait_for("three runs", WAIT, |l| {
        records(l, "run_finished", &[("check", "a")]).len() >= 3
    });
    assert!(host.terminate(WAIT).success());
    assert!(state.exists(), "no state at STATE_PATH");
    assert!(!dir.path().join("heartbeat.state.json").exists());
}

#[test]
fn an_option_from_the_environment_does_not_read_as_required_in_the_usage_line() {
    let output = Command::new(support::host_bin())
        .arg("invoke")
        .env("HEARTBEAT_CACHE_DIR", "/tmp/some-cache")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(
        said.contains("Usage: heartbeat-host invoke [OPTIONS] <HANDLER>")
            && !said.contains("--cache-dir"),
        "{said}"
    );
}

#[test]
fn completions_for_bash_load_and_complete_the_run_flags() {
    let script = host(&["completions", "bash"]);
    assert!(script.status.success(), "{}", stderr(&script));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("heartbeat-host.bash");
    std::fs::write(&file, &script.stdout).expect("write");
    // Sourced in a real bash, then asked what follows `heartbeat-host run --tick`.
    let probe = format!(
        "source {}; COMP_WORDS=(heartbeat-host run --tick); COMP_CWORD=2; _heartbeat__host heartbeat-host --tick run; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "--tick-interval");
    for shell in ["zsh", "fish"] {
        let script = host(&["completions", shell]);
        assert!(script.status.success(), "{shell}: {}", stderr(&script));
        assert!(stdout(&script).contains("tick-interval"), "{shell}");
    }
}

#[test]
fn the_man_page_has_a_section_per_subcommand_and_renders_cleanly() {
    let page = host(&["man"]);
    assert!(page.status.success(), "{}", stderr(&page));
    let text = stdout(&page);
    for title in [
        ".TH heartbeat-host 1",
        ".TH heartbeat-host-run 1",
        ".TH heartbeat-host-invoke 1",
    ] {
        assert!(text.contains(title), "no {title:?}");
    }
    assert!(
        text.contains("HEARTBEAT_PATH"),
        "the environment is documented"
    );
    // groff with every warning on: a malformed page fails here.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("heartbeat-host.1");
    std::fs::write(&file, &page.stdout).expect("write");
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output();
    match groff {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        // tests/run.sh installs groff: without it the page is not checked,
        // and that is a failure, not a pass.
        Err(e) => {
            panic!("groff is needed to render the man page (apt-get install groff-base): {e}")
        }
    }
}
