//! The host's liveness file (kstlib's format) and the `is-alive` probe, end
//! to end: written every period with the host's health, degraded while the
//! config on disk is invalid, `stopped` after a graceful shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{host_bin, read_json, start_on_timer, start_run};

const WAIT: Duration = Duration::from_secs(60);

fn is_alive(file: &std::path::Path, max_age: &str) -> (i32, String) {
    let out = Command::new(host_bin())
        .args([
            "is-alive",
            file.to_str().expect("utf-8"),
            "--max-age",
            max_age,
        ])
        .output()
        .expect("is-alive");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// Waits until the liveness file's metadata.status is `status`.
fn wait_status(file: &std::path::Path, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if file.exists() {
            let state = read_json(file);
            if state["metadata"]["status"] == status {
                return state;
            }
        }
        assert!(
            Instant::now() < deadline,
            "liveness status never became {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn liveness_file_tracks_health_and_ends_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, r#"{"checks": {"a": {"cadenceMs": 60000}}}"#).expect("config");
    let live = dir.path().join("run/host.liveness.json");
    let live_file = live.to_str().expect("utf-8");
    let mut host = start_on_timer(
        &config,
        "100ms",
        &["--liveness-file", live_file, "--liveness-period", "100ms"],
        &[("AGENT_NAME", "live")],
    );
    let state = wait_status(&live, "healthy");
    assert_eq!(state["pid"], host.pid());
    assert_eq!(state["metadata"]["agent"], "live");
    assert!(
        state["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00"))
    );
    let (code, reason) = is_alive(&live, "30");
    assert_eq!(code, 0, "{reason}");
    assert!(reason.starts_with("alive:"), "{reason}");

    // A broken config on disk: degraded (running on the last good one), then healthy again.
    std::fs::write(&config, "{ not json").expect("break");
    let state = wait_status(&live, "degraded");
    assert!(
        state["metadata"]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("config")),
        "{state}"
    );
    std::fs::write(&config, r#"{"checks": {"a": {"cadenceMs": 60000}}}"#).expect("fix");
    wait_status(&live, "healthy");

    assert!(host.terminate(WAIT).success());
    let state = read_json(&live);
    assert_eq!(state["metadata"]["status"], "stopped");
    // Stale once older than max-age.
    std::thread::sleep(Duration::from_millis(1100));
    let (code, reason) = is_alive(&live, "1");
    assert_eq!(code, 1, "{reason}");
    assert!(reason.starts_with("stale:"), "{reason}");
}

#[test]
fn is_alive_exit_codes_for_missing_and_unreadable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing");
    assert_eq!(is_alive(&missing, "30").0, 1);
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "beat").expect("write");
    let (code, reason) = is_alive(&garbage, "30");
    assert_eq!(code, 2, "{reason}");
    assert!(reason.starts_with("unreadable:"), "{reason}");
}

/// Runs Python with the real kstlib (PyPI; tests/run.sh installs it), for
/// at most 60 s; its stdout. `builtin_checks.rs` writes kstlib's files with it.
pub(crate) fn kstlib(code: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "kstlib script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Interop with kstlib's `Heartbeat`: `is-alive` reads the file kstlib
/// writes, and kstlib's `Heartbeat.is_alive` reads the host's file.
#[test]
fn kstlib_and_the_host_read_each_others_liveness_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = dir.path().join("kstlib.heartbeat.json");
    kstlib(
        "import asyncio, inspect, sys\n\
         from kstlib.resilience.heartbeat import Heartbeat\n\
         hb = Heartbeat(sys.argv[1], interval=1, metadata={'app': 'worker'})\n\
         r = hb.beat()\n\
         if inspect.isawaitable(r): asyncio.run(r)\n",
        &[theirs.to_str().expect("utf-8")],
    );
    let (code, reason) = is_alive(&theirs, "30");
    assert_eq!(code, 0, "{reason}");
    assert!(reason.starts_with("alive:"), "{reason}");

    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, r#"{"checks": {"a": {"cadenceMs": 60000}}}"#).expect("config");
    let ours = dir.path().join("host.liveness.json");
    let ours_file = ours.to_str().expect("utf-8");
    let mut host = start_run(
        &config,
        &["--liveness-file", ours_file, "--liveness-period", "100ms"],
        &[("AGENT_NAME", "kst")],
    );
    wait_status(&ours, "healthy");
    let is_alive_py = "import sys\n\
         from kstlib.resilience.heartbeat import Heartbeat\n\
         print(Heartbeat.is_alive(sys.argv[1], float(sys.argv[2])))\n";
    assert_eq!(
        kstlib(is_alive_py, &[ours.to_str().expect("utf-8"), "30"]),
        "True"
    );
    assert!(host.terminate(WAIT).success());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        kstlib(is_alive_py, &[ours.to_str().expect("utf-8"), "1"]),
        "False"
    );
}
