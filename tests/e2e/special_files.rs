//! Files that are not what they claim to be, at every path the host reads:
//! a FIFO, a link to `/dev/zero`, a directory, a link loop and a file past
//! its size limit. Each is refused at once with a message naming it; none
//! hangs a thread, grows memory or blocks shutdown.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::languages::run_bounded;
use crate::support::{self, RunningHost, is, message};

const WAIT: Duration = Duration::from_secs(60);
/// How long a refusal may take: a hang shows as a timeout here.
const PROMPTLY: Duration = Duration::from_secs(20);

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Each kind of special file, made at `path`, with the words its refusal uses.
fn make_special(kind: &str, path: &Path) -> &'static str {
    match kind {
        "fifo" => {
            mkfifo(path);
            "a named pipe (FIFO), not a regular file"
        }
        "dev-zero" => {
            std::os::unix::fs::symlink("/dev/zero", path).expect("symlink");
            "a character device, not a regular file"
        }
        "directory" => {
            std::fs::create_dir(path).expect("mkdir");
            "a directory, not a regular file"
        }
        "link-loop" => {
            let other = path.with_extension("loop");
            std::os::unix::fs::symlink(&other, path).expect("symlink");
            std::os::unix::fs::symlink(path, &other).expect("symlink");
            "Too many levels of symbolic links"
        }
        "huge" => {
            // Sparse: past every limit without using the disk.
            let file = std::fs::File::create(path).expect("create");
            file.set_len(4 << 30).expect("set_len");
            "larger than"
        }
        other => panic!("unknown kind {other}"),
    }
}

const KINDS: [&str; 5] = ["fifo", "dev-zero", "directory", "link-loop", "huge"];

#[test]
fn special_files_as_config_or_state_are_refused_at_start_up() {
    for kind in KINDS {
        // As heartbeat.json: `check` and `run` both refuse it promptly.
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("heartbeat.json");
        let said = make_special(kind, &config);
        let mut check = Command::new(support::host_bin());
        check.args(["check", "--config"]).arg(&config);
        let checked = run_bounded(&mut check, "heartbeat-host check", PROMPTLY);
        assert_eq!(checked.status.code(), Some(1), "{kind}: {}", checked.log());
        assert!(
            checked.stdout.contains(said) && checked.stdout.contains("heartbeat.json"),
            "{kind}: {}",
            checked.log()
        );

        // As the state file, beside a valid config.
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("heartbeat.json");
        std::fs::write(&config, r#"{"agent": "special", "checks": {"a": {}}}"#).expect("config");
        let state = dir.path().join("heartbeat.state.json");
        let said = make_special(kind, &state);
        let mut run = Command::new(support::host_bin());
        run.args(["run", "--config"])
            .arg(&config)
            .env_remove("RABBIT_URL")
            .env_remove("HEARTBEAT_PATH")
            .env("HEARTBEAT_CACHE_DIR", dir.path().join("cache"));
        let ran = run_bounded(&mut run, "heartbeat-host run", PROMPTLY);
        assert!(!ran.status.success(), "{kind}: {}", ran.log());
        assert!(
            ran.stderr.contains(said) && ran.stderr.contains("heartbeat.state.json"),
            "{kind}: {}",
            ran.log()
        );
    }
}

#[test]
fn special_files_as_the_liveness_file_are_unreadable_not_a_hang() {
    for kind in KINDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("liveness.json");
        let said = make_special(kind, &file);
        for command in ["is-alive", "status"] {
            let mut probe = Command::new(support::host_bin());
            probe.arg(command).arg(&file);
            let probed = run_bounded(&mut probe, command, PROMPTLY);
            assert_eq!(
                probed.status.code(),
                Some(2),
                "{kind} {command}: {}",
                probed.log()
            );
            assert!(
                probed.log().contains(said),
                "{kind} {command}: {}",
                probed.log()
            );
        }
    }
}

#[test]
fn a_fifo_replacing_heartbeat_json_is_refused_and_reloads_and_shutdown_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, r#"{"checks": {"a": {"cadenceMs": 0}}}"#).expect("config");
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--tick-interval",
            "100ms",
        ],
        &[
            ("AGENT_NAME", "special"),
            (
                "HEARTBEAT_CACHE_DIR",
                dir.path().join("cache").to_str().expect("utf-8"),
            ),
        ],
    );
    host.wait_for_event("run_finished", &[("check", "a")], WAIT);
    std::fs::remove_file(&config).expect("remove");
    mkfifo(&config);
    host.wait_for("the FIFO refused", WAIT, |lines| {
        lines
            .iter()
            .any(|l| is(l, "config_refused", &[]) && message(l).contains("a named pipe (FIFO)"))
    });
    // Later edits still reload.
    std::fs::remove_file(&config).expect("remove the FIFO");
    std::fs::write(&config, r#"{"checks": {"b": {"cadenceMs": 0}}}"#).expect("config");
    host.wait_for_event("run_finished", &[("check", "b")], WAIT);
    // And SIGTERM ends the process (it used to log "stopped" and stay).
    assert!(host.terminate(WAIT).success());
}

#[test]
fn special_files_in_the_handler_dir_are_refused_and_later_deploys_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = dir.path().join("handlers");
    std::fs::create_dir(&handlers).expect("mkdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"checks": {"probe": {"cadenceMs": 0, "handler": "late"}}}"#,
    )
    .expect("config");
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--handlers",
            handlers.to_str().expect("utf-8"),
            "--tick-interval",
            "100ms",
        ],
        &[
            ("AGENT_NAME", "special"),
            (
                "HEARTBEAT_CACHE_DIR",
                dir.path().join("cache").to_str().expect("utf-8"),
            ),
        ],
    );
    host.wait_for_event("started", &[], WAIT);
    // Dropped into the live directory, one after the other.
    for kind in ["fifo", "dev-zero", "huge"] {
        let file = handlers.join(format!("{}.wasm", kind.replace('-', "_")));
        let said = make_special(kind, &file);
        let name = kind.replace('-', "_");
        host.wait_for(&format!("{kind} refused"), WAIT, |lines| {
            lines.iter().any(|l| {
                is(l, "handler_refused", &[("handler", name.as_str())]) && message(l).contains(said)
            })
        });
    }
    // The watcher is not stuck: a real component deployed now is loaded
    // and runs.
    std::fs::copy(
        support::test_handler("handler_default.wasm"),
        handlers.join("late.wasm"),
    )
    .expect("deploy");
    host.wait_for_event(
        "run_finished",
        &[("check", "probe"), ("status", "success")],
        WAIT,
    );
    assert!(host.terminate(WAIT).success());
}
