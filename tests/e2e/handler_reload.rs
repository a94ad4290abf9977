//! Hot reload of the handler directory, end to end: the real binary, a
//! real directory, handler components built from source by the host's
//! build. A file dropped, replaced (by rename or in place), corrupted or
//! deleted takes effect without a restart; a run in flight finishes on the
//! version it started with.
//!
//! `handler_loaded` and `handler_removed` each stand for several outcomes
//! that only their message tells apart (loaded, replaced, overriding the
//! built-in; removed, the built-in back in service), as does
//! `handler_refused` (the previous version stays in service, or none was
//! there): those waits read the message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    RunningHost, details, field, is, message, records, render_line, start_on_timer,
};

const WAIT: Duration = Duration::from_secs(60);

fn built(file: &str) -> Vec<u8> {
    let path = crate::support::test_handler(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hostile() -> Vec<u8> {
    built("test_handler_hostile.wasm")
}

fn default() -> Vec<u8> {
    built("handler_default.wasm")
}

/// Starts a host on `config` with handler directory `handlers`, ticking every 100 ms.
fn start(dir: &Path, config: &str) -> (RunningHost, PathBuf) {
    let handlers = dir.join("handlers");
    std::fs::create_dir_all(&handlers).expect("mkdir");
    let config_path = dir.join("heartbeat.json");
    std::fs::write(&config_path, config).expect("config");
    let host = start_on_reload_timer(dir, &config_path, &handlers, &[]);
    (host, handlers)
}

/// The host on `config` and `handlers` as agent `reload`, ticking every
/// 100 ms, its cache in `dir`, with `extra` arguments.
fn start_on_reload_timer(
    dir: &Path,
    config: &Path,
    handlers: &Path,
    extra: &[&str],
) -> RunningHost {
    let mut args = vec!["--handlers", handlers.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let cache = dir.join("cache");
    start_on_timer(
        config,
        "100ms",
        &args,
        &[
            ("AGENT_NAME", "reload"),
            ("HEARTBEAT_CACHE_DIR", cache.to_str().expect("utf-8")),
        ],
    )
}

/// A test on one log line, and what it looks for (for the timeout message).
struct Want {
    what: String,
    test: Box<dyn Fn(&Value) -> bool>,
}

impl Want {
    fn new(what: impl Into<String>, test: impl Fn(&Value) -> bool + 'static) -> Want {
        Want {
            what: what.into(),
            test: Box::new(test),
        }
    }
}

/// Waits for a line matching `first` after line `from`, then for a line
/// matching `then` after that one; returns the index of the latter.
fn wait_after(host: &mut RunningHost, from: usize, first: Want, then: Want) -> usize {
    let what = format!("{} then {} after line {from}", first.what, then.what);
    let find = |lines: &[Value]| -> Option<usize> {
        let a = (from..lines.len()).find(|&i| (first.test)(&lines[i]))?;
        (a + 1..lines.len()).find(|&i| (then.test)(&lines[i]))
    };
    let lines = host.wait_for(&what, WAIT, |l| find(l).is_some());
    find(&lines).unwrap_or(0)
}

/// The host's start-up record.
fn started() -> Want {
    Want::new("started", |l| is(l, "started", &[]))
}

/// A `handler_loaded` of `handler` whose message is `said` (loaded,
/// replaced, or overriding the built-in).
fn loaded(handler: &'static str, said: &'static str) -> Want {
    Want::new(format!("handler_loaded {handler}: {said:?}"), move |l| {
        is(l, "handler_loaded", &[("handler", handler)]) && message(l) == said
    })
}

/// A `selected` of the check `probe`.
fn probe_selected() -> Want {
    Want::new("selected probe", |l| {
        is(l, "selected", &[("check", "probe")])
    })
}

/// A failed run of `probe` whose error says its handler is not found.
fn probe_not_found() -> Want {
    Want::new("run_finished probe failed: not found", |l| {
        is(
            l,
            "run_finished",
            &[("check", "probe"), ("status", "failed")],
        ) && field(l, "error").is_some_and(|e| e.contains("not found"))
    })
}

/// A run of `probe` whose details are `want`.
fn probe_run(want: Value) -> Want {
    Want::new(
        format!("run_finished probe with details {want}"),
        move |l| is(l, "run_finished", &[("check", "probe")]) && details(l).as_ref() == Some(&want),
    )
}

/// A run of `probe` on the hostile handler (`mode` ok).
fn hostile_run() -> Want {
    probe_run(json!({"handler": "hostile"}))
}

/// A run of `probe` on the default handler.
fn default_run() -> Want {
    probe_run(json!({}))
}

const PROBE: &str =
    r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "probe", "meta": {"mode": "ok"}}}}"#;

#[test]
fn drop_replace_by_rename_replace_in_place_corrupt_and_delete_take_effect_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut host, handlers) = start(dir.path(), PROBE);
    let probe = handlers.join("probe.wasm");

    // No file yet: the check fails, naming the missing handler.
    let at = wait_after(&mut host, 0, started(), probe_not_found());

    // Dropped in (written in place, as cp does).
    std::fs::write(&probe, hostile()).expect("drop");
    let at = wait_after(
        &mut host,
        at,
        loaded("probe", "handler loaded"),
        hostile_run(),
    );

    // Replaced by rename, as deploy tools do.
    let staged = handlers.join(".probe.wasm.partial");
    std::fs::write(&staged, default()).expect("stage");
    std::fs::rename(&staged, &probe).expect("rename");
    let at = wait_after(
        &mut host,
        at,
        loaded("probe", "handler replaced"),
        default_run(),
    );

    // Replaced in place.
    std::fs::write(&probe, hostile()).expect("overwrite");
    let at = wait_after(
        &mut host,
        at,
        loaded("probe", "handler replaced"),
        hostile_run(),
    );

    // Corrupted: refused, and the previous version stays in service.
    std::fs::write(&probe, b"\0asm but not really").expect("corrupt");
    let refused = Want::new("handler_refused probe, previous version in service", |l| {
        let said = message(l);
        is(l, "handler_refused", &[("handler", "probe")])
            && said.contains("handler refused, previous version")
            && said.contains("stays in service")
    });
    let at = wait_after(&mut host, at, refused, hostile_run());

    // Deleted: the handler is gone and the check fails again.
    std::fs::remove_file(&probe).expect("delete");
    let removed = Want::new("handler_removed probe: handler removed", |l| {
        is(l, "handler_removed", &[("handler", "probe")])
            && message(l).contains("handler file deleted; handler removed")
    });
    wait_after(&mut host, at, removed, probe_not_found());

    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_relative_handlers_dir_is_hot_reloaded_from_another_working_directory() {
    // `cd dir && heartbeat-host run --config heartbeat.json --handlers h`:
    // a file copied into `h/` afterwards used to be ignored for good.
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = dir.path().join("h");
    std::fs::create_dir(&handlers).expect("mkdir");
    std::fs::write(
        dir.path().join("heartbeat.json"),
        r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "default", "meta": {"mode": "ok"}}}}"#,
    )
    .expect("config");
    let cache = dir.path().join("cache");
    let mut host = RunningHost::start_in(
        dir.path(),
        &[
            "run",
            "--config",
            "heartbeat.json",
            "--handlers",
            "h",
            "--tick-interval",
            "100ms",
        ],
        &[
            ("AGENT_NAME", "relative"),
            ("HEARTBEAT_CACHE_DIR", cache.to_str().expect("utf-8")),
        ],
    );
    let at = wait_after(&mut host, 0, started(), default_run());
    std::fs::write(handlers.join("default.wasm"), hostile()).expect("drop");
    wait_after(
        &mut host,
        at,
        loaded(
            "default",
            "handler file overrides the built-in of the same name",
        ),
        hostile_run(),
    );
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_handler_file_overrides_the_built_in_until_it_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "default", "meta": {"mode": "ok"}}}}"#;
    let (mut host, handlers) = start(dir.path(), config);
    let at = wait_after(&mut host, 0, started(), default_run());
    let file = handlers.join("default.wasm");
    std::fs::write(&file, hostile()).expect("drop");
    let at = wait_after(
        &mut host,
        at,
        loaded(
            "default",
            "handler file overrides the built-in of the same name",
        ),
        hostile_run(),
    );
    std::fs::remove_file(&file).expect("delete");
    let back = Want::new("handler_removed default: the built-in is back", |l| {
        is(l, "handler_removed", &[("handler", "default")])
            && message(l).contains("the built-in is back in service")
    });
    wait_after(&mut host, at, back, default_run());
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_run_in_flight_finishes_on_the_version_it_started_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "probe", "timeoutMs": 5000, "meta": {"mode": "busy", "ms": 1500}}}}"#;
    let handlers = dir.path().join("handlers");
    std::fs::create_dir_all(&handlers).expect("mkdir");
    std::fs::write(handlers.join("probe.wasm"), hostile()).expect("drop");
    let (mut host, handlers) = start(dir.path(), config);
    let started = wait_after(
        &mut host,
        0,
        loaded("probe", "handler loaded"),
        probe_selected(),
    );

    // Replace while the first run is busy for 1.5 s.
    let staged = handlers.join(".probe.wasm.partial");
    std::fs::write(&staged, default()).expect("stage");
    std::fs::rename(&staged, handlers.join("probe.wasm")).expect("rename");

    let first_finish = wait_after(
        &mut host,
        started,
        loaded("probe", "handler replaced"),
        Want::new("run_finished probe", |l| {
            is(l, "run_finished", &[("check", "probe")])
        }),
    );
    let lines = host.lines();
    assert_eq!(
        details(&lines[first_finish]),
        Some(json!({"busy": true, "handler": "hostile"})),
        "the run in flight finished on the old version: {}",
        render_line(&lines[first_finish])
    );
    // The next run, started after the swap, uses the new version.
    let new_version = default_run();
    host.wait_for("a run on the new version", WAIT, |l| {
        l[first_finish + 1..].iter().any(|r| (new_version.test)(r))
    });
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_slow_run_does_not_hold_up_a_fast_one_selected_beside_it() {
    // `maxPerTick` 2: a check that runs into its 1 s timeout beside one of
    // a fraction of a millisecond. The fast one used to wait for the slow
    // one's end (log line, state, release) and ran on 3 ticks of 16.
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = dir.path().join("handlers");
    std::fs::create_dir_all(&handlers).expect("mkdir");
    std::fs::write(handlers.join("hostile.wasm"), hostile()).expect("drop");
    let config = r#"{"maxPerTick": 2, "checks": {
        "slow": {"cadenceMs": 0, "handler": "hostile", "timeoutMs": 1000, "meta": {"mode": "sleep"}},
        "fast": {"cadenceMs": 0, "handler": "default"}
    }}"#;
    let (mut host, _) = start(dir.path(), config);
    let lines = host.wait_for("the slow check's first timeout", WAIT, |l| {
        !records(l, "run_finished", &[("check", "slow")]).is_empty()
    });
    let slow_at = lines
        .iter()
        .position(|l| is(l, "run_finished", &[("check", "slow")]))
        .expect("slow finished");
    let fast_before = records(&lines[..slow_at], "run_finished", &[("check", "fast")]).len();
    // About ten ticks pass during the slow run; allow for a slow machine.
    assert!(
        fast_before >= 4,
        "the fast check ran {fast_before} times during the slow run:\n{}",
        crate::support::render(&lines)
    );
    assert!(host.terminate(WAIT).success());
}

#[test]
fn hostile_checks_fail_with_reasons_while_a_well_behaved_check_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = dir.path().join("handlers");
    std::fs::create_dir_all(&handlers).expect("mkdir");
    std::fs::write(handlers.join("hostile.wasm"), hostile()).expect("drop");
    let events = dir.path().join("events.jsonl");
    let config = r#"{"maxPerTick": 4, "checks": {
        "spin": {"cadenceMs": 0, "handler": "hostile", "timeoutMs": 200, "meta": {"mode": "loop"}},
        "hog": {"cadenceMs": 0, "handler": "hostile", "memoryMb": 16, "meta": {"mode": "memory"}},
        "crash": {"cadenceMs": 0, "handler": "hostile", "meta": {"mode": "trap"}},
        "good": {"cadenceMs": 0, "handler": "hostile", "meta": {"mode": "emit", "event": "agent.reload.ok"}}
    }}"#;
    let config_path = dir.path().join("heartbeat.json");
    std::fs::write(&config_path, config).expect("config");
    let mut host = start_on_reload_timer(
        dir.path(),
        &config_path,
        &handlers,
        &["--events-log", events.to_str().expect("utf-8")],
    );
    // Each hostile check has failed at least twice and the good one kept succeeding.
    // The reasons are in each failed run's `error`.
    let failed = |l: &[Value], check: &str, reason: &str| {
        records(l, "run_finished", &[("check", check), ("status", "failed")])
            .iter()
            .filter(|r| field(r, "error").is_some_and(|e| e.contains(reason)))
            .count()
    };
    let lines = host.wait_for("hostile failures and good runs", WAIT, |l| {
        failed(l, "spin", "timeout after 200 ms") >= 2
            && failed(l, "hog", "memory limit 16 MiB exceeded") >= 2
            && failed(l, "crash", "unreachable") >= 2
            && records(
                l,
                "run_finished",
                &[("check", "good"), ("status", "success")],
            )
            .len()
                >= 3
    });
    assert!(
        records(
            &lines,
            "run_finished",
            &[("check", "good"), ("status", "failed")]
        )
        .is_empty(),
        "{}",
        crate::support::render(&lines)
    );
    assert!(host.terminate(WAIT).success());
    // The log also holds the host's own `state_changed` events (the hostile checks go
    // hard-failed), in whatever order the runs finished; the handler's event is among them.
    let logged = std::fs::read_to_string(&events).expect("events log");
    let logged: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let emitted = logged
        .iter()
        .find(|e| e["routingKey"] == "agent.reload.ok")
        .unwrap_or_else(|| panic!("no agent.reload.ok event in {logged:#?}"));
    assert_eq!(emitted["check"], "good");
    assert_eq!(emitted["payload"], serde_json::json!({"from": "hostile"}));
    assert!(
        logged.iter().all(|e| e["routingKey"] == "agent.reload.ok"
            || e["routingKey"] == "agent.reload.check.state_changed"),
        "only the handler's and the host's state events: {logged:#?}"
    );
}

#[test]
fn sigterm_lets_a_run_in_flight_finish_and_a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "probe", "timeoutMs": 30000, "meta": {"mode": "busy", "ms": 20000}}}}"#;
    let handlers = dir.path().join("handlers");
    std::fs::create_dir_all(&handlers).expect("mkdir");
    std::fs::write(handlers.join("probe.wasm"), hostile()).expect("drop");
    let (mut host, _) = start(dir.path(), config);
    wait_after(
        &mut host,
        0,
        loaded("probe", "handler loaded"),
        probe_selected(),
    );
    let pid = host.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    // The first signal waits for the 20 s run in flight ...
    host.wait_for_event("shutting_down", &[], WAIT);
    // (no `stopped` while it does).
    host.assert_no_event_for(Duration::from_millis(300), "stopped", &[]);
    // ... the second exits at once.
    let started = std::time::Instant::now();
    let status = host.terminate(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(5));
}
