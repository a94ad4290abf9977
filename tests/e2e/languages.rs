//! Handlers in every language, end to end: each example of
//! `examples/handlers/` is built from source by its build script, run once
//! with `heartbeat-host invoke`, then dropped into the handler directory of
//! a running host, whose next tick runs it.
//!
//! The toolchains come from `toolchains/install.sh` (tests/run.sh runs it);
//! a missing one fails the test with the build script's message naming it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::support::languages::{self, build_example, deploy, events, invoke, run_bounded};
use crate::support::{details, number, records, render, start_on_timer, write_config_as};

/// Bound on every wait for the running host: it may have to compile the
/// component if the cache was missed.
const WAIT: Duration = Duration::from_secs(240);

/// Writes `dir/file`, a config for agent `e2e` with the one check `name`;
/// its path, as the commands take it.
fn write_one_check_config(dir: &Path, file: &str, name: &str, check: serde_json::Value) -> String {
    let path = write_config_as(&dir.join(file), "e2e", json!({ name: check }));
    path.to_str().expect("utf-8 path").to_string()
}

/// What the running host did with a dropped-in handler: the first
/// successful `run_finished` record of the check, and the events of that
/// check in the host's events log (`--events-log`).
struct HostRun {
    line: serde_json::Value,
    events: Vec<serde_json::Value>,
}

/// Starts a host on `config` with an empty handler directory, drops `wasm`
/// in as handler `name`, and waits for the first successful run of `check`
/// after that.
fn run_in_host(work: &Path, config: &str, check: &str, name: &str, wasm: &Path) -> HostRun {
    let handlers = work.join("handlers");
    std::fs::create_dir_all(&handlers).expect("handlers dir");
    let cache = work.join("cache");
    let events_log = work.join("events.jsonl");
    let mut host = start_on_timer(
        Path::new(config),
        "200ms",
        &[
            "--handlers",
            handlers.to_str().expect("utf-8"),
            "--events-log",
            events_log.to_str().expect("utf-8"),
        ],
        &[("XDG_CACHE_HOME", cache.to_str().expect("utf-8"))],
    );
    host.wait_for_event("started", &[], WAIT);
    deploy(wasm, &handlers, name);
    let succeeded = [("check", check), ("status", "success")];
    let lines = host.wait_for(
        &format!("a successful run of {name} after it was dropped in"),
        WAIT,
        |l| !records(l, "run_finished", &succeeded).is_empty(),
    );
    assert!(host.terminate(WAIT).success(), "{}", render(&lines));
    let line = records(&lines, "run_finished", &succeeded)[0].clone();
    let events = std::fs::read_to_string(&events_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["check"] == check)
        // The host's own state changes go there too: the runs before the
        // handler was dropped in failed (hard), the first success is ok.
        .filter(|e| {
            e["routingKey"]
                .as_str()
                .is_some_and(|key| !key.ends_with(".check.state_changed"))
        })
        .collect();
    HostRun { line, events }
}

fn utc_date_in_days(days: i64) -> String {
    let now = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    now.checked_add(jiff::Span::new().days(days))
        .expect("date in range")
        .to_string()
}

#[test]
fn python_deadlines_warns_of_what_is_due() {
    let work = tempfile::tempdir().expect("tempdir");
    let wasm = build_example("python", &work.path().join("out/deadlines.wasm"));
    let cache = work.path().join("cache");

    let soon = utc_date_in_days(5);
    let check = json!({
        "cadenceMs": 1000,
        "handler": "deadlines",
        "meta": {
            "deadlines": {"renewal": soon, "far away": utc_date_in_days(400), "missed": utc_date_in_days(-3)},
            "warnDays": 30
        }
    });
    let config = write_one_check_config(work.path(), "heartbeat.json", "deadlines", check);

    let invoked = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--config",
            &config,
            "--check",
            "deadlines",
        ],
        &cache,
    );
    let out = &invoked.json;
    assert_eq!(out["status"], "success", "{}", invoked.finished.log());
    assert_eq!(
        out["details"],
        json!({"checked": 3, "dueSoon": 1, "overdue": 1, "next": soon})
    );
    let events = events(out);
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0].0, "agent.e2e.deadlines.due");
    assert_eq!(events[0].1["dueSoon"][0]["name"], "renewal");
    // 5 and -3 days, or one less if UTC midnight passed since `soon` was computed.
    let left = |v: &serde_json::Value| v.as_i64().unwrap_or(i64::MIN);
    assert!(
        [5, 4].contains(&left(&events[0].1["dueSoon"][0]["daysLeft"])),
        "{}",
        events[0].1
    );
    assert!(
        [-3, -4].contains(&left(&events[0].1["overdue"][0]["daysLeft"])),
        "{}",
        events[0].1
    );
    assert_eq!(out["logs"].as_array().map(Vec::len), Some(2), "{out}");

    // Bad meta: an error naming the field.
    let invoked = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--meta",
            r#"{"deadlines": {"x": "next tuesday"}}"#,
        ],
        &cache,
    );
    assert_eq!(invoked.json["status"], "failed");
    assert!(
        invoked.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("meta.deadlines.x")),
        "{}",
        invoked.json
    );

    let run = run_in_host(work.path(), &config, "deadlines", "deadlines", &wasm);
    let line = &run.line;
    assert_eq!(number(line, "events"), Some(1), "{line}");
    assert_eq!(
        details(line),
        Some(json!({"checked": 3, "dueSoon": 1, "overdue": 1, "next": soon})),
        "{line}"
    );
    let event = run.events.first().expect("an event in the events log");
    assert_eq!(event["routingKey"], "agent.e2e.deadlines.due", "{event}");
    assert_eq!(event["payload"]["dueSoon"][0]["due"], soon, "{event}");
}

#[test]
fn javascript_error_budget_reports_the_burn() {
    let work = tempfile::tempdir().expect("tempdir");
    let wasm = build_example("javascript", &work.path().join("out/error_budget.wasm"));
    let cache = work.path().join("cache");
    // Whole seconds: the handler parses the time with JavaScript's Date.
    let hour_ago = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - 3600)
        .expect("a valid time");

    // 99.9 % over 30 days is a 43.2-minute budget; 60 minutes exhaust it.
    let exhausted = json!({
        "cadenceMs": 1000,
        "handler": "error_budget",
        "meta": {"objective": 99.9, "windowDays": 30,
                 "incidents": [{"start": hour_ago.to_string(), "minutes": 60}]}
    });
    let config = write_one_check_config(work.path(), "exhausted.json", "budget", exhausted);
    let invoked = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--config",
            &config,
            "--check",
            "budget",
        ],
        &cache,
    );
    let out = &invoked.json;
    assert_eq!(out["status"], "failed", "{}", invoked.finished.log());
    assert_eq!(
        invoked.finished.status.code(),
        Some(1),
        "a failed run exits 1"
    );
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.contains("error budget exhausted")),
        "{out}"
    );
    let events = events(out);
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0].0, "agent.e2e.error_budget");
    assert_eq!(events[0].1["state"], "exhausted");
    assert_eq!(events[0].1["budgetMinutes"].as_f64(), Some(43.2));
    assert_eq!(events[0].1["consumedMinutes"].as_f64(), Some(60.0));

    // Bad meta: a thrown string is the reason.
    let invoked = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--meta",
            r#"{"objective": 120}"#,
        ],
        &cache,
    );
    assert_eq!(invoked.json["status"], "failed");
    assert!(
        invoked.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("meta.objective")),
        "{}",
        invoked.json
    );

    // 12 minutes of 43.2: ok.
    let ok = json!({
        "cadenceMs": 1000,
        "handler": "error_budget",
        "meta": {"objective": 99.9, "windowDays": 30,
                 "incidents": [{"start": hour_ago.to_string(), "minutes": 12}]}
    });
    let config = write_one_check_config(work.path(), "heartbeat.json", "budget", ok);
    let run = run_in_host(work.path(), &config, "budget", "error_budget", &wasm);
    let line = &run.line;
    assert_eq!(number(line, "events"), Some(1), "{line}");
    let details = details(line).expect("details");
    assert_eq!(details["state"], "ok", "{line}");
    assert_eq!(details["consumedMinutes"].as_f64(), Some(12.0), "{line}");
    assert_eq!(details["remainingMinutes"].as_f64(), Some(31.2), "{line}");
    let event = run.events.first().expect("an event in the events log");
    assert_eq!(event["routingKey"], "agent.e2e.error_budget", "{event}");
    assert_eq!(event["payload"]["state"], "ok", "{event}");
    assert_eq!(
        event["payload"]["burnedPercent"].as_f64(),
        Some(27.78),
        "{event}"
    );
}

#[test]
fn c_disk_usage_adds_up_a_granted_directory() {
    let work = tempfile::tempdir().expect("tempdir");
    let wasm = build_example("c", &work.path().join("out/disk_usage.wasm"));
    let cache = work.path().join("cache");
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("sub/deeper")).expect("mkdir");
    std::fs::write(data.join("a.log"), vec![b'a'; 1000]).expect("write");
    std::fs::write(data.join("sub/b.log"), vec![b'b'; 2000]).expect("write");
    std::fs::write(data.join("sub/deeper/c.log"), vec![b'c'; 3000]).expect("write");
    let grant = json!({"/data": {"path": data.to_str().expect("utf-8"), "readOnly": true}});

    // 6000 bytes against a 0.005 MiB (5242-byte) limit: over.
    let over = json!({"cadenceMs": 1000, "handler": "disk_usage",
                      "meta": {"limitMb": 0.005}, "grants": {"dirs": grant}});
    let config = write_one_check_config(work.path(), "over.json", "disk", over);
    let invoked = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--config",
            &config,
            "--check",
            "disk",
        ],
        &cache,
    );
    let out = &invoked.json;
    assert_eq!(out["status"], "failed", "{}", invoked.finished.log());
    let events = events(out);
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0].0, "agent.e2e.disk_usage");
    assert_eq!(
        events[0].1,
        json!({"path": "/data", "bytes": 6000, "files": 3, "dirs": 3, "unreadable": 0,
               "limitBytes": 5242, "percent": 114.46, "state": "over"})
    );

    // Without the grant the directory is not there: an error, not a crash.
    let invoked = invoke(
        &[wasm.to_str().expect("utf-8"), "--meta", r#"{"limitMb": 1}"#],
        &cache,
    );
    assert_eq!(invoked.json["status"], "failed");
    assert!(
        invoked.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot read directory /data")),
        "{}",
        invoked.json
    );

    let ok = json!({"cadenceMs": 1000, "handler": "disk_usage",
                    "meta": {"limitMb": 1, "warnPercent": 80}, "grants": {"dirs": grant}});
    let config = write_one_check_config(work.path(), "heartbeat.json", "disk", ok);
    let run = run_in_host(work.path(), &config, "disk", "disk_usage", &wasm);
    let line = &run.line;
    assert_eq!(number(line, "events"), Some(1), "{line}");
    let details = details(line).expect("details");
    assert_eq!(details["bytes"], 6000, "{line}");
    assert_eq!(details["files"], 3, "{line}");
    assert_eq!(details["state"], "ok", "{line}");
    let event = run.events.first().expect("an event in the events log");
    assert_eq!(event["routingKey"], "agent.e2e.disk_usage", "{event}");
    assert_eq!(
        event["payload"], details,
        "the event carries the figures: {event}"
    );
}

#[test]
fn rust_backup_age_flags_a_stale_backup() {
    let work = tempfile::tempdir().expect("tempdir");
    let wasm = build_example("rust", &work.path().join("out/backup_age.wasm"));
    let cache = work.path().join("cache");

    let stale = work.path().join("stale");
    std::fs::create_dir_all(&stale).expect("mkdir");
    for (name, age) in [("mon.tar.gz", 72), ("sun.tar.gz", 96), ("notes.txt", 1)] {
        let file = std::fs::File::create(stale.join(name)).expect("create");
        file.set_modified(SystemTime::now() - Duration::from_secs(age * 3600))
            .expect("set mtime");
    }
    let check = |dir: &Path| {
        json!({"cadenceMs": 1000, "handler": "backup_age",
               "meta": {"path": "/backups", "suffix": ".tar.gz", "maxAgeHours": 26},
               "grants": {"dirs": {"/backups": {"path": dir.to_str().expect("utf-8"), "readOnly": true}}}})
    };
    let config = write_one_check_config(work.path(), "stale.json", "backups", check(&stale));
    let invoked = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--config",
            &config,
            "--check",
            "backups",
        ],
        &cache,
    );
    let out = &invoked.json;
    assert_eq!(out["status"], "failed", "{}", invoked.finished.log());
    assert_eq!(out["error"], "newest backup is 72 h old", "{out}");
    let events = events(out);
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0].0, "agent.e2e.backup_age");
    assert_eq!(events[0].1["newest"], "mon.tar.gz");
    assert_eq!(events[0].1["stale"], true);

    let fresh = work.path().join("fresh");
    std::fs::create_dir_all(&fresh).expect("mkdir");
    std::fs::write(fresh.join("today.tar.gz"), b"backup").expect("write");
    let config = write_one_check_config(work.path(), "heartbeat.json", "backups", check(&fresh));
    let run = run_in_host(work.path(), &config, "backups", "backup_age", &wasm);
    let line = &run.line;
    assert_eq!(number(line, "events"), Some(1), "{line}");
    let details = details(line).expect("details");
    assert_eq!(details["newest"], "today.tar.gz", "{line}");
    assert_eq!(details["stale"], false, "{line}");
    let event = run.events.first().expect("an event in the events log");
    assert_eq!(event["routingKey"], "agent.e2e.backup_age", "{event}");
    assert_eq!(event["payload"]["newest"], "today.tar.gz", "{event}");
}

/// Each build script stops with a message that names the missing tool and
/// how to install it, when it finds no toolchain.
#[test]
fn build_scripts_name_what_is_missing() {
    let work = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "python",
            "componentize-py 0.25.1 (PyPI) is missing",
            "install.sh python",
        ),
        ("javascript", "componentize-js", "install.sh js"),
        ("c", "wit-bindgen", "install.sh c"),
        (
            "rust",
            "cargo (Rust, from rustup) is missing",
            "install.sh rust",
        ),
    ];
    for (lang, missing, how) in cases {
        let script = languages::repo_root()
            .join("examples/handlers")
            .join(lang)
            .join("build.sh");
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&script)
            .arg(work.path().join(format!("{lang}.wasm")))
            // No toolchain directory, and a PATH with only the system's tools.
            .env("HEARTBEAT_TOOLCHAINS", work.path().join("no-toolchains"))
            .env("PATH", "/usr/bin:/bin")
            .env_remove("COMPONENTIZE_PY")
            .env_remove("COMPONENTIZE_JS")
            .env_remove("WIT_BINDGEN")
            .env_remove("WASM_TOOLS")
            .env_remove("WASI_ADAPTER");
        let finished = run_bounded(&mut cmd, lang, Duration::from_secs(60));
        assert_eq!(
            finished.status.code(),
            Some(1),
            "{lang}: {}",
            finished.log()
        );
        assert!(
            finished.stderr.contains(missing) && finished.stderr.contains(how),
            "{lang}: {}",
            finished.log()
        );
        assert!(!work.path().join(format!("{lang}.wasm")).exists());
    }
}
