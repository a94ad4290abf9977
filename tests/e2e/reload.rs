//! End to end: the real binary on its own timer while heartbeat.json is
//! changed under it the ways people and editors change it. What the host
//! did is read from its log: the `config_reloaded` record with its diff,
//! then which checks the following ticks selected.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{RunningHost, event, field, message, records};

/// Bound of every wait; ticks come every 100 ms, reloads within ~50 ms.
const WAIT: Duration = Duration::from_secs(60);

/// `a` runs on every tick (cadence 0).
const ONLY_A: &str = r#"{"$schema": "heartbeat.v1", "agent": "e2e", "checks": {
    "a": {"cadenceMs": 0}
}}"#;

/// `a` turned off, `b` runs on every tick.
const ONLY_B: &str = r#"{"$schema": "heartbeat.v1", "agent": "e2e", "checks": {
    "a": {"cadenceMs": 0, "enabled": false},
    "b": {"cadenceMs": 0}
}}"#;

fn start(config: &Path) -> RunningHost {
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--tick-interval",
            "100ms",
        ],
        &[],
    );
    host.wait_for("the first config's check to run", WAIT, |l| {
        selected_after(l, 0).contains(&"a".to_string())
    });
    host
}

/// The checks selected by the log lines from `from` on.
fn selected_after(lines: &[Value], from: usize) -> Vec<String> {
    lines[from.min(lines.len())..]
        .iter()
        .filter(|l| event(l) == Some("selected"))
        .filter_map(|l| field(l, "check").map(str::to_string))
        .collect()
}

/// Index of the first record of event `name`, if any.
fn position(lines: &[Value], name: &str) -> Option<usize> {
    lines.iter().position(|l| event(l) == Some(name))
}

/// Waits for the reload to `ONLY_B` and for a tick after it to select `b`
/// and none after it to select `a`.
fn expect_switch_to_b(host: &mut RunningHost) {
    let lines = host.wait_for("the reload to be logged with its diff", WAIT, |l| {
        position(l, "config_reloaded").is_some()
    });
    let at = position(&lines, "config_reloaded").expect("reload record");
    // The diff is in the message only.
    let said = message(&lines[at]);
    assert!(
        said.contains("added: b") && said.contains("changed: a.enabled true → false"),
        "diff in the reload record: {}",
        lines[at]
    );
    let lines = host.wait_for("two ticks to select b after the reload", WAIT, |l| {
        selected_after(l, at).iter().filter(|c| *c == "b").count() >= 2
    });
    // A tick already planned when the file changed may still pick `a`, but
    // none after `b`'s first selection.
    let selected = selected_after(&lines, at);
    let first_b = selected.iter().position(|c| c == "b").expect("b selected");
    assert!(
        selected[first_b..].iter().all(|c| c == "b"),
        "after the reload only b runs: {selected:?}"
    );
}

#[test]
fn an_in_place_write_applies_from_the_next_tick_with_its_diff_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, ONLY_A).expect("write config");
    let mut host = start(&config);

    // Truncate and write the same inode, as `echo > file` or most programs do.
    std::fs::write(&config, ONLY_B).expect("rewrite config");
    expect_switch_to_b(&mut host);
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_rename_replace_save_is_seen_through_the_directory_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, ONLY_A).expect("write config");
    let mut host = start(&config);

    // As editors save: a new file beside it, renamed over the old one.
    let tmp = dir.path().join(".heartbeat.json.swp");
    std::fs::write(&tmp, ONLY_B).expect("write temp file");
    std::fs::rename(&tmp, &config).expect("rename over config");
    expect_switch_to_b(&mut host);
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_broken_file_is_refused_and_the_last_good_config_runs_until_it_is_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, ONLY_A).expect("write config");
    let mut host = start(&config);

    std::fs::write(
        &config,
        "{\"checks\": {\n  \"a\": {\"cadenceMs\": \"soon\"},\n  \"b\": {\"cadenceMs\": 0}\n}}",
    )
    .expect("write broken config");
    let lines = host.wait_for("the broken file to be refused", WAIT, |l| {
        position(l, "config_refused").is_some()
    });
    let at = position(&lines, "config_refused").expect("refusal record");
    // The error is in the message only.
    let said = message(&lines[at]);
    assert!(
        said.contains("last good config stays in force")
            && said.contains(
                "heartbeat.json:2:22: checks.a.cadenceMs: expected a non-negative integer, found \"soon\""
            ),
        "refusal names file, line, column, field: {}",
        lines[at]
    );
    let lines = host.wait_for("ticks to keep running the last good config", WAIT, |l| {
        selected_after(l, at).len() >= 3
    });
    assert!(
        selected_after(&lines, at).iter().all(|c| c == "a"),
        "{:?}",
        selected_after(&lines, at)
    );
    assert!(
        position(&lines, "config_reloaded").is_none(),
        "nothing was applied"
    );

    std::fs::write(&config, ONLY_B).expect("write fixed config");
    expect_switch_to_b(&mut host);
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_deleted_file_keeps_the_last_good_config_until_it_is_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, ONLY_A).expect("write config");
    let mut host = start(&config);

    std::fs::remove_file(&config).expect("delete config");
    let lines = host.wait_for("the deletion to be noticed", WAIT, |l| {
        position(l, "config_missing").is_some()
    });
    let at = position(&lines, "config_missing").expect("deletion record");
    let lines = host.wait_for("ticks to keep running without the file", WAIT, |l| {
        selected_after(l, at).len() >= 3
    });
    assert!(
        selected_after(&lines, at).iter().all(|c| c == "a"),
        "{:?}",
        selected_after(&lines, at)
    );
    assert_eq!(
        records(&lines, "config_missing", &[]).len(),
        1,
        "the deletion is reported once"
    );

    std::fs::write(&config, ONLY_B).expect("recreate config");
    expect_switch_to_b(&mut host);
    assert!(host.terminate(WAIT).success());
}

#[test]
fn sighup_reads_a_config_and_a_handler_that_no_watch_event_announced() {
    // Both paths are links into a directory the host does not watch (as a
    // Kubernetes ConfigMap mounts them): editing the targets in place sends
    // the watchers nothing. SIGHUP makes the host read them anyway.
    let dir = tempfile::tempdir().expect("tempdir");
    let elsewhere = dir.path().join("elsewhere");
    let live = dir.path().join("live");
    let handlers = live.join("handlers");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::create_dir_all(&handlers).expect("mkdir");
    std::fs::write(elsewhere.join("heartbeat.json"), ONLY_A).expect("config");
    let config = live.join("heartbeat.json");
    std::os::unix::fs::symlink(elsewhere.join("heartbeat.json"), &config).expect("link");
    // The handler `late` is a link to a file that is not a component yet.
    std::fs::write(elsewhere.join("late.wasm"), b"not yet")
        .expect("write a file that is not a component");
    std::os::unix::fs::symlink(elsewhere.join("late.wasm"), handlers.join("late.wasm"))
        .expect("link");
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
        &[(
            "HEARTBEAT_CACHE_DIR",
            dir.path().join("cache").to_str().expect("utf-8"),
        )],
    );
    host.wait_for("a runs", WAIT, |l| {
        !records(l, "run_finished", &[("check", "a")]).is_empty()
    });
    let b_late = r#"{"$schema": "heartbeat.v1", "agent": "e2e", "checks": {
        "a": {"cadenceMs": 0, "enabled": false},
        "b": {"cadenceMs": 0, "handler": "late"}
    }}"#;
    std::fs::write(elsewhere.join("heartbeat.json"), b_late).expect("edit in place");
    std::fs::copy(
        crate::support::test_handler("handler_default.wasm"),
        elsewhere.join("late.wasm"),
    )
    .expect("deploy in place");
    std::thread::sleep(Duration::from_millis(1000));
    let unseen = host.lines();
    assert!(
        records(&unseen, "config_reloaded", &[]).is_empty()
            && records(&unseen, "handler_loaded", &[("handler", "late")]).is_empty(),
        "the watchers saw the edits after all, so this test proves nothing:\n{}",
        crate::support::render(&unseen)
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &host.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    host.wait_for("b runs on the handler read at SIGHUP", WAIT, |l| {
        !records(l, "run_finished", &[("check", "b"), ("status", "success")]).is_empty()
    });
    let lines = host.lines();
    for name in [
        "sighup",
        "reload_requested",
        "rescan_requested",
        "config_reloaded",
    ] {
        assert!(
            lines.iter().any(|l| event(l) == Some(name)),
            "no {name}:\n{}",
            crate::support::render(&lines)
        );
    }
    assert!(host.terminate(WAIT).success());
}

/// `b` with a directory grant whose host path is `dir`.
fn b_granted(dir: &Path) -> String {
    format!(
        r#"{{"$schema": "heartbeat.v1", "agent": "e2e", "checks": {{
    "a": {{"cadenceMs": 0, "enabled": false}},
    "b": {{"cadenceMs": 0, "grants": {{"dirs": {{"/data": {{"path": "{}"}}}}}}}}
}}}}"#,
        dir.display()
    )
}

#[test]
fn a_directory_grant_to_no_directory_is_refused_by_check_run_and_a_reload_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    let data = dir.path().join("data");
    std::fs::write(&config, b_granted(&data)).expect("write");
    let grant_field = "checks.b.grants.dirs./data.path";
    // `check` lists it as an error.
    let out = crate::cli::host(&["check", "--config", config.to_str().expect("utf-8")]);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && said.contains(grant_field),
        "{said}"
    );
    // `run` does not start on it.
    let mut refused = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--tick-interval",
            "100ms",
        ],
        &[],
    );
    let status = refused.wait(WAIT);
    assert!(
        !status.success() && refused.log().contains(grant_field),
        "{}",
        refused.log()
    );
    // A running host refuses it as a reload, and keeps running `a`.
    std::fs::write(&config, ONLY_A).expect("write");
    let mut host = start(&config);
    std::fs::write(&config, b_granted(&data)).expect("write");
    let lines = host.wait_for_event("config_refused", &[], WAIT);
    let at = position(&lines, "config_refused").expect("refused");
    assert!(
        message(&lines[at]).contains(grant_field),
        "{}",
        message(&lines[at])
    );
    assert!(
        position(&lines, "config_reloaded").is_none(),
        "applied anyway"
    );
    host.wait_for("a to run after the refusal", WAIT, |l| {
        selected_after(l, at + 1).contains(&"a".to_string())
    });
    // Once the directory exists, SIGHUP reads the same file again: applied.
    std::fs::create_dir(&data).expect("mkdir");
    let pid = host.pid().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    host.wait_for_event("config_reloaded", &[], WAIT);
    host.wait_for("b to run", WAIT, |l| {
        selected_after(l, at + 1).contains(&"b".to_string())
    });
}
