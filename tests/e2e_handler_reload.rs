//! Hot reload of the handler directory, end to end: the real binary, a
//! real directory, handler components built from source by the host's
//! build. A file dropped, replaced (by rename or in place), corrupted or
//! deleted takes effect without a restart; a run in flight finishes on the
//! version it started with.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{RunningHost, matching};

const WAIT: Duration = Duration::from_secs(60);

fn built(file: &str) -> Vec<u8> {
    let path = Path::new(env!("HEARTBEAT_TEST_HANDLERS")).join(file);
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
    let host = RunningHost::start(
        &[
            "run",
            "--config",
            config_path.to_str().expect("utf-8"),
            "--handlers",
            handlers.to_str().expect("utf-8"),
            "--tick-interval",
            "100ms",
        ],
        &[
            ("AGENT_NAME", "reload"),
            (
                "HEARTBEAT_CACHE_DIR",
                dir.join("cache").to_str().expect("utf-8"),
            ),
        ],
    );
    (host, handlers)
}

/// Waits for a line with all of `first` after line `from`, then for a line
/// with all of `then` after that one; returns the index of the latter.
fn wait_after(host: &mut RunningHost, from: usize, first: &[&str], then: &[&str]) -> usize {
    let what = format!("{first:?} then {then:?} after line {from}");
    let find = |lines: &[String]| -> Option<usize> {
        let a = (from..lines.len()).find(|&i| first.iter().all(|n| lines[i].contains(n)))?;
        (a + 1..lines.len()).find(|&i| then.iter().all(|n| lines[i].contains(n)))
    };
    let lines = host.wait_for(&what, WAIT, |l| find(l).is_some());
    find(&lines).unwrap_or(0)
}

const PROBE: &str =
    r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "probe", "meta": {"mode": "ok"}}}}"#;
const HOSTILE_RUN: &[&str] = &[
    "run finished",
    "check=probe",
    r#"details={"handler":"hostile"}"#,
];
const DEFAULT_RUN: &[&str] = &["run finished", "check=probe", "details={}"];

#[test]
fn drop_replace_by_rename_replace_in_place_corrupt_and_delete_take_effect_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut host, handlers) = start(dir.path(), PROBE);
    let probe = handlers.join("probe.wasm");

    // No file yet: the check fails, naming the missing handler.
    let at = wait_after(
        &mut host,
        0,
        &["heartbeat-host started"],
        &["check=probe", "status=failed", "not found"],
    );

    // Dropped in (written in place, as cp does).
    std::fs::write(&probe, hostile()).expect("drop");
    let at = wait_after(
        &mut host,
        at,
        &["handler loaded", "handler=probe"],
        HOSTILE_RUN,
    );

    // Replaced by rename, as deploy tools do.
    let staged = handlers.join(".probe.wasm.partial");
    std::fs::write(&staged, default()).expect("stage");
    std::fs::rename(&staged, &probe).expect("rename");
    let at = wait_after(
        &mut host,
        at,
        &["handler replaced", "handler=probe"],
        DEFAULT_RUN,
    );

    // Replaced in place.
    std::fs::write(&probe, hostile()).expect("overwrite");
    let at = wait_after(
        &mut host,
        at,
        &["handler replaced", "handler=probe"],
        HOSTILE_RUN,
    );

    // Corrupted: refused, and the previous version stays in service.
    std::fs::write(&probe, b"\0asm but not really").expect("corrupt");
    let at = wait_after(
        &mut host,
        at,
        &["handler refused, previous version", "stays in service"],
        HOSTILE_RUN,
    );

    // Deleted: the handler is gone and the check fails again.
    std::fs::remove_file(&probe).expect("delete");
    wait_after(
        &mut host,
        at,
        &["handler file deleted; handler removed"],
        &["check=probe", "status=failed", "not found"],
    );

    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_handler_file_overrides_the_built_in_until_it_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "default", "meta": {"mode": "ok"}}}}"#;
    let (mut host, handlers) = start(dir.path(), config);
    let at = wait_after(&mut host, 0, &["heartbeat-host started"], DEFAULT_RUN);
    let file = handlers.join("default.wasm");
    std::fs::write(&file, hostile()).expect("drop");
    let at = wait_after(
        &mut host,
        at,
        &["overrides the built-in", "handler=default"],
        HOSTILE_RUN,
    );
    std::fs::remove_file(&file).expect("delete");
    wait_after(
        &mut host,
        at,
        &["the built-in is back in service"],
        DEFAULT_RUN,
    );
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
        &["handler loaded", "handler=probe"],
        &["selected", "check=probe"],
    );

    // Replace while the first run is busy for 1.5 s.
    let staged = handlers.join(".probe.wasm.partial");
    std::fs::write(&staged, default()).expect("stage");
    std::fs::rename(&staged, handlers.join("probe.wasm")).expect("rename");

    let first_finish = wait_after(
        &mut host,
        started,
        &["handler replaced", "handler=probe"],
        &["run finished", "check=probe"],
    );
    let lines = host.lines();
    assert!(
        lines[first_finish].contains(r#"details={"busy":true,"handler":"hostile"}"#)
            || lines[first_finish].contains(r#"details={"handler":"hostile","busy":true}"#),
        "the run in flight finished on the old version: {}",
        lines[first_finish]
    );
    // The next run, started after the swap, uses the new version.
    host.wait_for("a run on the new version", WAIT, |l| {
        !matching(&l[first_finish + 1..], DEFAULT_RUN).is_empty()
    });
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
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config_path.to_str().expect("utf-8"),
            "--handlers",
            handlers.to_str().expect("utf-8"),
            "--tick-interval",
            "100ms",
            "--events-log",
            events.to_str().expect("utf-8"),
        ],
        &[
            ("AGENT_NAME", "reload"),
            (
                "HEARTBEAT_CACHE_DIR",
                dir.path().join("cache").to_str().expect("utf-8"),
            ),
        ],
    );
    // Each hostile check has failed at least twice and the good one kept succeeding.
    let lines = host.wait_for("hostile failures and good runs", WAIT, |l| {
        matching(l, &["check=spin", "status=failed", "timeout after 200 ms"]).len() >= 2
            && matching(
                l,
                &["check=hog", "status=failed", "memory limit 16 MiB exceeded"],
            )
            .len()
                >= 2
            && matching(l, &["check=crash", "status=failed", "unreachable"]).len() >= 2
            && matching(l, &["check=good", "status=success"]).len() >= 3
    });
    assert!(
        matching(&lines, &["check=good", "status=failed"]).is_empty(),
        "{lines:?}"
    );
    assert!(host.terminate(WAIT).success());
    let logged = std::fs::read_to_string(&events).expect("events log");
    let first: serde_json::Value =
        serde_json::from_str(logged.lines().next().expect("an event")).expect("json");
    assert_eq!(first["routingKey"], "agent.reload.ok");
    assert_eq!(first["check"], "good");
    assert_eq!(first["payload"], serde_json::json!({"from": "hostile"}));
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
        &["handler loaded", "handler=probe"],
        &["selected", "check=probe"],
    );
    let pid = host.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    // The first signal waits for the 20 s run in flight ...
    host.wait_for("graceful shutdown to start", WAIT, |l| {
        !matching(l, &["shutting down; letting runs in flight finish"]).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matching(&host.lines(), &["heartbeat-host stopped"]).is_empty(),
        "it did not wait for the run"
    );
    // ... the second exits at once.
    let started = std::time::Instant::now();
    let status = host.terminate(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(5));
}
