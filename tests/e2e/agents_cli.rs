//! End to end: the read-only commands against a directory of agents, as
//! `run --agents DIR` serves it: `check --agents`, `explain --agents`
//! (`--agent`, `--state-dir`, `--json`) and `status --url` / `status
//! --liveness-dir` (`--agent`) against a running many-agent host. The real
//! binary runs against files in a temporary directory; exit codes, stdout
//! and stderr are what is checked.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{T0, WAIT, host, path_str, stderr, stdout};
use crate::support::{RunningHost, field, records};

/// Ten minutes after [`T0`], the instant explained.
const AT: &str = "2026-01-01T00:10:00Z";

/// Both outputs, for a failing assertion.
fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).expect("json"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `dir/agents` with the two valid agents: `a` (check `ping`) and `b`
/// (checks `disk`, hourly, and `db`); the directory.
fn two_agents(dir: &Path) -> PathBuf {
    let agents = dir.join("agents");
    std::fs::create_dir_all(&agents).expect("mkdir agents");
    write_json(
        &agents.join("a.json"),
        &json!({"$schema": "heartbeat.v1", "agent": "a", "checks": {"ping": {"cadenceMs": 60000}}}),
    );
    write_json(
        &agents.join("b.json"),
        &json!({"$schema": "heartbeat.v1", "agent": "b",
                "checks": {"disk": {"cadenceMs": 3_600_000}, "db": {"cadenceMs": 60000}}}),
    );
    agents
}

/// [`two_agents`] plus a file that names no agent (`nameless.json`, check
/// `lonely`) and one that names `b` again (`twin.json`, check `shadow`).
fn agents_with_broken(dir: &Path) -> PathBuf {
    let agents = two_agents(dir);
    write_json(
        &agents.join("nameless.json"),
        &json!({"checks": {"lonely": {"cadenceMs": 60000}}}),
    );
    write_json(
        &agents.join("twin.json"),
        &json!({"agent": "b", "checks": {"shadow": {"cadenceMs": 60000}}}),
    );
    agents
}

/// The check names of a table of `explain` (the first column of the rows
/// after each `NAME` header).
fn table_checks(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("NAME ") {
            in_table = true;
        } else if line.is_empty() || line.starts_with("agent ") {
            in_table = false;
        } else if in_table && let Some(name) = line.split_whitespace().next() {
            names.push(name.to_string());
        }
    }
    names
}

#[test]
fn check_agents_reports_every_file_and_fails_on_a_nameless_or_a_second_file_for_one_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = agents_with_broken(dir.path());
    let file = |name: &str| agents.join(name).display().to_string();
    let out = host(&["check", "--agents", path_str(&agents)]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let text = stdout(&out);
    for expected in [
        format!("{}: valid: 1 check, maxPerTick 1, 0 errors, 0 warnings\n", file("a.json")),
        format!("{}: valid: 2 checks, maxPerTick 1, 0 errors, 0 warnings\n", file("b.json")),
        "error: agent: required in a file served beside others (each file is one agent), found none\n".to_string(),
        format!("{}: NOT valid: 1 error, 0 warnings\n", file("nameless.json")),
        format!(
            "error: agent: \"b\" is already named by {}; two files cannot serve one agent (run serves the first and refuses this one)\n",
            file("b.json")
        ),
        format!("{}: NOT valid: 1 error, 0 warnings\n", file("twin.json")),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{}", shown(&out));
    }
    assert!(
        text.ends_with(&format!("{}: 2 of 4 agent files valid\n", agents.display())),
        "{}",
        shown(&out)
    );

    // Without the broken files: exit 0, and each file's report is
    // `check --config`'s, byte for byte.
    std::fs::remove_file(agents.join("nameless.json")).expect("rm");
    std::fs::remove_file(agents.join("twin.json")).expect("rm");
    let out = host(&["check", "--agents", path_str(&agents)]);
    assert!(out.status.success(), "{}", shown(&out));
    let single = |name: &str| {
        let one = host(&["check", "--config", &file(name)]);
        assert!(one.status.success(), "{}", shown(&one));
        stdout(&one)
    };
    assert_eq!(
        stdout(&out),
        format!(
            "{}\n{}{}: 2 of 2 agent files valid\n",
            single("a.json"),
            single("b.json"),
            agents.display()
        )
    );
}

#[test]
fn check_agents_with_agent_checks_that_file_alone_and_an_unknown_name_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = agents_with_broken(dir.path());
    let out = host(&["check", "--agents", path_str(&agents), "--agent", "a"]);
    assert!(out.status.success(), "{}", shown(&out));
    let text = stdout(&out);
    assert!(text.contains("a.json: valid: 1 check"), "{text}");
    assert!(
        !text.contains("b.json") && !text.contains("nameless"),
        "{text}"
    );

    // b is named twice: both files shown, the second refused.
    let out = host(&["check", "--agents", path_str(&agents), "--agent", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(
        stdout(&out).contains("b.json: valid") && stdout(&out).contains("twin.json: NOT valid"),
        "{}",
        shown(&out)
    );

    let out = host(&["check", "--agents", path_str(&agents), "--agent", "zz"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        stderr(&out).contains(&format!(
            "--agents {}: no agent file there names agent \"zz\"",
            agents.display()
        )),
        "{}",
        shown(&out)
    );
    // The file that names no agent may be the one meant: it is said.
    assert!(
        stderr(&out).contains("nameless.json: agent: required"),
        "{}",
        shown(&out)
    );

    // An empty directory validates nothing: exit 1.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = host(&["check", "--agents", path_str(&empty)]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(
        stdout(&out).contains("no agent files (*.json) there"),
        "{}",
        shown(&out)
    );
}

#[test]
fn explain_agents_shows_every_agent_and_reports_the_files_that_serve_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = agents_with_broken(dir.path());
    let out = host(&["explain", "--agents", path_str(&agents), "--at", AT]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("agent a ({})\n", agents.join("a.json").display())),
        "{}",
        shown(&out)
    );
    assert!(
        text.contains(&format!(
            "\n\nagent b ({})\n",
            agents.join("b.json").display()
        )),
        "{}",
        shown(&out)
    );
    assert_eq!(
        table_checks(&text),
        ["ping", "disk", "db"],
        "{}",
        shown(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: agent: required in a file served beside others",
            agents.join("nameless.json").display()
        )),
        "{}",
        shown(&out)
    );
    assert!(
        err.contains(&format!(
            "{}: agent: \"b\" is already named by {}",
            agents.join("twin.json").display(),
            agents.join("b.json").display()
        )),
        "{}",
        shown(&out)
    );

    // --json: one object per agent shown, with its name and file.
    let out = host(&[
        "explain",
        "--agents",
        path_str(&agents),
        "--at",
        AT,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    let shown_agents: Vec<(&str, &str)> = got
        .as_array()
        .expect("an array")
        .iter()
        .map(|o| {
            (
                o["agent"].as_str().unwrap_or(""),
                o["file"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let a_file = agents.join("a.json").display().to_string();
    let b_file = agents.join("b.json").display().to_string();
    assert_eq!(
        shown_agents,
        [("a", a_file.as_str()), ("b", b_file.as_str())]
    );
    assert_eq!(got[0]["at"], AT);
    assert_eq!(got[0]["selected"], json!(["ping"]));

    // --agent b: b's checks only.
    let out = host(&[
        "explain",
        "--agents",
        path_str(&agents),
        "--agent",
        "b",
        "--at",
        AT,
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("agent b ("), "{}", shown(&out));
    assert_eq!(table_checks(&text), ["disk", "db"], "{}", shown(&out));
    // twin.json names b too: said, and the exit says so.
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(
        stderr(&out).contains("twin.json: agent: \"b\" is already named"),
        "{}",
        shown(&out)
    );
}

#[test]
fn explain_agents_reads_each_agents_state_file_from_the_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = two_agents(dir.path());
    std::fs::create_dir(agents.join("state")).expect("mkdir state");
    // b's disk ran at T0: at T0 + 10 min it is not due (ratio 1/6).
    write_json(
        &agents.join("state/b.state.json"),
        &json!({"version": 1, "checks": {"disk": {"lastRun": T0}}}),
    );
    let out = host(&[
        "explain",
        "--agents",
        path_str(&agents),
        "--agent",
        "b",
        "--at",
        AT,
        "--json",
    ]);
    assert!(out.status.success(), "{}", shown(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(got["agent"], "b", "{got}");
    assert_eq!(got["file"], path_str(&agents.join("b.json")), "{got}");
    assert_eq!(got["selected"], json!(["db"]), "{got}");
    let disk = &got["checks"][0];
    assert_eq!(
        (&disk["name"], &disk["due"]),
        (&json!("disk"), &json!(false)),
        "{got}"
    );
    assert_eq!(disk["ratio"], json!(600_000.0 / 3_600_000.0), "{got}");
    assert!(
        disk["reason"].as_str().is_some_and(
            |r| r.starts_with("not due: ratio 0.17") && r.contains("2026-01-01T01:00:00Z")
        ),
        "{got}"
    );
    // db never ran: due, its ratio counted from the epoch.
    assert_eq!(
        (&got["checks"][1]["name"], &got["checks"][1]["due"]),
        (&json!("db"), &json!(true)),
        "{got}"
    );

    // Another --state-dir: b's state is looked for there (none: never ran).
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let out = host(&[
        "explain",
        "--agents",
        path_str(&agents),
        "--state-dir",
        path_str(&elsewhere),
        "--agent",
        "b",
        "--at",
        AT,
        "--json",
    ]);
    assert!(out.status.success(), "{}", shown(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(
        (&got["checks"][0]["name"], &got["checks"][0]["due"]),
        (&json!("disk"), &json!(true)),
        "{got}"
    );
    write_json(
        &elsewhere.join("b.state.json"),
        &json!({"version": 1, "checks": {"disk": {"lastRun": T0}}}),
    );
    let out = host(&[
        "explain",
        "--agents",
        path_str(&agents),
        "--state-dir",
        path_str(&elsewhere),
        "--agent",
        "b",
        "--at",
        AT,
        "--json",
    ]);
    let got: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(got["checks"][0]["due"], json!(false), "{got}");

    // A corrupt state file of the one agent asked for: exit 2 naming it.
    std::fs::write(elsewhere.join("b.state.json"), "{not json").expect("write");
    let out = host(&[
        "explain",
        "--agents",
        path_str(&agents),
        "--state-dir",
        path_str(&elsewhere),
        "--agent",
        "b",
        "--at",
        AT,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(stderr(&out).contains("b.state.json"), "{}", shown(&out));
    // Without --agent: the others still shown, exit 1.
    let out = host(&[
        "explain",
        "--agents",
        path_str(&agents),
        "--state-dir",
        path_str(&elsewhere),
        "--at",
        AT,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert_eq!(table_checks(&stdout(&out)), ["ping"], "{}", shown(&out));
    assert!(stderr(&out).contains("b.state.json"), "{}", shown(&out));
}

#[test]
fn explain_agents_names_the_directory_when_no_file_names_the_agent_and_refuses_config_and_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = two_agents(dir.path());
    let out = host(&["explain", "--agents", path_str(&agents), "--agent", "zz"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        stderr(&out).contains(&format!(
            "--agents {}: no agent file there names agent \"zz\"",
            agents.display()
        )),
        "{}",
        shown(&out)
    );
    let a = agents.join("a.json");
    for args in [
        vec![
            "explain",
            "--agents",
            path_str(&agents),
            "--config",
            path_str(&a),
        ],
        vec![
            "explain",
            "--agents",
            path_str(&agents),
            "--state",
            "x.state.json",
        ],
        vec![
            "check",
            "--agents",
            path_str(&agents),
            "--config",
            path_str(&a),
        ],
    ] {
        let out = host(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", shown(&out));
        assert!(
            stderr(&out).contains("cannot be used with"),
            "{args:?}: {}",
            shown(&out)
        );
    }
    // --agent names one of a directory's agents; one --config is one already.
    let out = host(&["explain", "--config", path_str(&a), "--agent", "a"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        stderr(&out).contains("--agent is for --agents DIR"),
        "{}",
        shown(&out)
    );
    let out = host(&["explain", "--agents", path_str(&dir.path().join("nope"))]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        stderr(&out).contains("nope: cannot list it"),
        "{}",
        shown(&out)
    );
}

#[test]
fn status_shows_a_many_agent_hosts_agents_by_url_and_by_liveness_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).expect("mkdir");
    for agent in ["a", "b"] {
        write_json(
            &agents.join(format!("{agent}.json")),
            &json!({"agent": agent, "checks": {format!("probe_{agent}"): {"cadenceMs": 0}}}),
        );
    }
    let liveness = dir.path().join("live");
    std::fs::create_dir(&liveness).expect("mkdir live");
    let mut running = RunningHost::start(
        &[
            "run",
            "--agents",
            path_str(&agents),
            "--tick-interval",
            "200ms",
            "--metrics-addr",
            "127.0.0.1:0",
            "--liveness-dir",
            path_str(&liveness),
            "--liveness-period",
            "1s",
        ],
        &[("HEARTBEAT_CACHE_DIR", path_str(&dir.path().join("cache")))],
    );
    let lines = running.wait_for_event("endpoint_listening", &[], WAIT);
    let addr = lines
        .iter()
        .find_map(|l| field(l, "addr"))
        .expect("the bound address")
        .to_string();
    running.wait_for("both agents' checks ran", WAIT, |l| {
        ["probe_a", "probe_b"]
            .iter()
            .all(|check| !records(l, "run_finished", &[("check", *check)]).is_empty())
    });
    let url = format!("http://{addr}");

    let out = host(&["status", "--url", &url, "--agent", "a"]);
    assert!(out.status.success(), "{}", shown(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("heartbeat-host for a: "),
        "{}",
        shown(&out)
    );
    assert!(
        text.lines().any(|l| l.starts_with("probe_a ")),
        "{}",
        shown(&out)
    );
    assert!(
        !text.contains("probe_b") && !text.contains("for b:"),
        "{}",
        shown(&out)
    );

    let out = host(&["status", "--url", &url]);
    assert!(out.status.success(), "{}", shown(&out));
    let text = stdout(&out);
    let a_at = text.find("heartbeat-host for a: ").expect("a shown");
    let b_at = text
        .find("\nheartbeat-host for b: ")
        .expect("b shown, after a");
    assert!(a_at < b_at, "{text}");
    assert!(
        text.contains("probe_a") && text.contains("probe_b"),
        "{text}"
    );

    let out = host(&["status", "--url", &url, "--agent", "zz"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        stderr(&out).contains("serves no agent \"zz\""),
        "{}",
        shown(&out)
    );

    // One liveness file per agent: --agent's, or all of them.
    let deadline = Instant::now() + WAIT;
    while !(liveness.join("a.json").exists() && liveness.join("b.json").exists()) {
        assert!(
            Instant::now() < deadline,
            "no liveness files in {}",
            liveness.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = host(&[
        "status",
        "--liveness-dir",
        path_str(&liveness),
        "--agent",
        "b",
    ]);
    assert!(out.status.success(), "{}", shown(&out));
    assert!(stdout(&out).starts_with("agent b (pid "), "{}", shown(&out));
    assert!(!stdout(&out).contains("agent a "), "{}", shown(&out));
    let out = host(&["status", "--liveness-dir", path_str(&liveness)]);
    assert!(out.status.success(), "{}", shown(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("agent a (pid ") && text.contains("\n\nagent b (pid "),
        "{}",
        shown(&out)
    );
    let out = host(&[
        "status",
        "--liveness-dir",
        path_str(&liveness),
        "--agent",
        "zz",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(stderr(&out).contains("zz.json"), "{}", shown(&out));

    assert!(running.terminate(WAIT).success(), "{}", running.log());
}
