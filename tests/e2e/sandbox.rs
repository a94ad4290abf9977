//! The sandbox against handlers that misbehave on purpose (built from
//! `tests/handlers/hostile` on first use, see
//! [`crate::support::test_handler`]): each is stopped with a plain reason
//! within its limit, and a well-behaved handler runs right after on the
//! same runtime. Also grants, namespaces, refusals and the
//! built-in `quarterly_compaction` through a real directory grant.

use std::path::Path;
use std::time::{Duration, Instant};

use heartbeat_host::core::model::RunStatus;
use heartbeat_host::{
    self as registry, LoadedHandler, RunReport, RunRequest, Runtime, RuntimeOptions,
};

use crate::support::runtime::{TICK_MS, check_request, hostile, runtime};
use crate::support::test_handler;

const AGENT: &str = "sandbox";

/// A request of this module's agent for its check `probe`, written as JSON
/// (see [`check_request`]).
fn request(check_json: &str, dir: &Path, tick_ms: u64) -> RunRequest {
    check_request(AGENT, "probe", check_json, dir, tick_ms)
}

async fn run(rt: &Runtime, handler: &LoadedHandler, check_json: &str) -> (RunReport, Duration) {
    let started = Instant::now();
    let report = rt
        .run(handler, &request(check_json, Path::new("."), TICK_MS))
        .await;
    (report, started.elapsed())
}

fn assert_failed(report: &RunReport, reason: &str) {
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let error = report.error.as_deref().unwrap_or_default();
    assert!(error.contains(reason), "expected {reason:?} in {error:?}");
}

async fn assert_default_still_runs(rt: &Runtime) {
    let default = registry::load_builtin(rt, "default")
        .expect("built-in")
        .expect("loads");
    let (report, _) = run(rt, &default, "{}").await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
}

/// One `#[tokio::test]` per row, named by the row: run the hostile handler
/// once with the row's check JSON on a fresh runtime; the run fails with
/// every one of the reason fragments, within the bound where the row gives
/// one, and passes the row's further assertion on the report where it
/// gives one; then a well-behaved handler still runs on the same runtime.
macro_rules! hostile_cases {
    ($(
        $(#[$doc:meta])*
        $name:ident: $check:expr => fails with [$($reason:expr),+ $(,)?]
            $(, within $bound:expr)?
            $(, and |$report:ident| $more:block)?;
    )+) => {$(
        $(#[$doc])*
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            let rt = runtime();
            let (report, took) = run(&rt, &hostile(&rt), &$check).await;
            $(assert_failed(&report, $reason);)+
            let bound: Option<Duration> = None $(.or(Some($bound)))?;
            if let Some(bound) = bound {
                assert!(took < bound, "took {took:?}, over {bound:?}");
            }
            $({
                let $report: &RunReport = &report;
                $more
            })?
            assert_default_still_runs(&rt).await;
        }
    )+};
}

hostile_cases! {
    an_infinite_loop_is_stopped_at_its_timeout:
        r#"{"timeoutMs": 200, "meta": {"mode": "loop"}}"#
        => fails with ["timeout after 200 ms"], within Duration::from_millis(1500);
    a_sleep_inside_a_host_call_is_stopped_at_its_timeout:
        r#"{"timeoutMs": 200, "meta": {"mode": "sleep"}}"#
        => fails with ["timeout after 200 ms"], within Duration::from_millis(1500);
    a_memory_bomb_is_stopped_at_its_memory_limit:
        r#"{"memoryMb": 16, "meta": {"mode": "memory"}}"#
        => fails with ["memory limit 16 MiB exceeded"], within Duration::from_secs(5);
    /// The guest's allocation is refused, it carries on and says success:
    /// the run was over its memory limit all the same, as the README says.
    a_growth_bomb_that_survives_the_refusal_still_fails:
        r#"{"memoryMb": 16, "meta": {"mode": "grow_refused"}}"#
        => fails with ["memory limit 16 MiB exceeded"];
    deeply_nested_details_fail_to_parse_without_harm:
        r#"{"meta": {"mode": "deep_details", "depth": 100000}}"#
        => fails with ["handler returned details that are not JSON: recursion limit exceeded"];
    /// The panic message, from the handler's stderr, is in the reason.
    a_panic_is_a_trap_reported_as_failed:
        r#"{"meta": {"mode": "trap"}}"#
        => fails with [
            "unreachable",
            "stderr: thread '<unnamed>' (1) panicked at",
            "deliberate panic in a hostile handler",
        ];
    unbounded_recursion_is_a_trap_reported_as_failed:
        r#"{"meta": {"mode": "recursion"}}"#
        => fails with ["wasm trap"];
    a_log_flood_stops_at_the_log_cap:
        r#"{"maxLogLines": 50, "meta": {"mode": "log_flood"}}"#
        => fails with ["log cap reached: at most 50 log records per run"],
        and |report| { assert_eq!(report.logs.len(), 50); };
    an_event_flood_stops_at_the_event_cap:
        format!(r#"{{"maxEvents": 7, "meta": {{"mode": "event_flood", "agent": "{AGENT}"}}}}"#)
        => fails with ["event cap reached: at most 7 events per run"],
        and |report| { assert_eq!(report.events.len(), 7); };
    output_bytes_are_capped:
        r#"{"maxOutputBytes": 100, "meta": {"mode": "log_flood"}}"#
        => fails with ["output cap reached: at most 100 bytes"];
}

#[tokio::test(flavor = "multi_thread")]
async fn details_past_the_output_cap_are_refused_with_a_plain_reason() {
    let rt = runtime();
    let (report, _) = run(
        &rt,
        &hostile(&rt),
        r#"{"maxOutputBytes": 65536, "meta": {"mode": "big_details", "bytes": 100000}}"#,
    )
    .await;
    assert_failed(
        &report,
        "details of 100011 bytes refused: over the output cap (maxOutputBytes 65536, 0 used by logs and events)",
    );
    assert_eq!(report.details, serde_json::json!({}));
    // Within the cap they pass whole.
    let (report, _) = run(
        &rt,
        &hostile(&rt),
        r#"{"maxOutputBytes": 65536, "meta": {"mode": "big_details", "bytes": 1000}}"#,
    )
    .await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.details["blob"].as_str().map(str::len), Some(1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_error_reason_is_truncated_with_a_marker() {
    let rt = runtime();
    let (report, _) = run(
        &rt,
        &hostile(&rt),
        r#"{"meta": {"mode": "big_error", "bytes": 4000000}}"#,
    )
    .await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let error = report.error.as_deref().unwrap_or_default();
    assert!(
        error.ends_with("… [reason truncated: 4096 of 4000000 bytes kept]"),
        "{} … {}",
        &error[..error.len().min(200)],
        &error[error.len().saturating_sub(80)..]
    );
    assert!(error.len() < 4200, "{} bytes", error.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overlong_or_reserved_event_type_is_refused_at_the_emit() {
    let rt = runtime();
    let long = format!("agent.{AGENT}.{}", "k".repeat(300));
    for (event, grants, reason) in [
        (long.as_str(), "", "a routing key holds at most 255"),
        (
            "agent.sandbox.check.completed",
            r##", "grants": {"emit": ["#"]}"##,
            "reserved for the host",
        ),
        (
            "agent.sandbox.control.pause",
            r##", "grants": {"emit": ["#"]}"##,
            "reserved for the host",
        ),
    ] {
        let check = format!(r#"{{"meta": {{"mode": "emit", "event": "{event}"}}{grants}}}"#);
        let (report, _) = run(&rt, &hostile(&rt), &check).await;
        assert_failed(&report, reason);
        assert!(report.events.is_empty(), "{report:?}");
    }
}

/// No grant lets a handler speak for another agent: not `#`, not
/// `agent.#`, not a prefix the bus publishes results under. Agent names may
/// hold dots, so `agent.sandbox.sub.…` is another agent's (`sandbox.sub`),
/// not a part of this one's namespace where results and control go.
#[tokio::test(flavor = "multi_thread")]
async fn no_grant_lets_a_handler_emit_another_agents_results_state_changes_or_control() {
    let rt = runtime();
    for (event, grant) in [
        ("agent.other.check.completed", "agent.#"),
        ("agent.other.check.state_changed", "#"),
        ("agent.other.control.pause", "agent.#"),
        ("agent.other.control", "#"),
        ("agent.sandbox.sub.check.completed", "#"),
        ("agent.sandbox.sub.control.pause", "#"),
        ("results.sandbox.check.completed", "results.#"),
        ("results.other.check.state_changed", "#"),
    ] {
        let check = format!(
            r#"{{"meta": {{"mode": "emit", "event": "{event}"}}, "grants": {{"emit": ["{grant}"]}}}}"#
        );
        let (report, _) = run(&rt, &hostile(&rt), &check).await;
        assert_failed(&report, "reserved for the host");
        assert!(report.events.is_empty(), "{event}: {report:?}");
    }
    // What only resembles them is still the handler's to emit.
    let check = r##"{"meta": {"mode": "emit", "event": "agent.other.check.done"}, "grants": {"emit": ["#"]}}"##;
    let (report, _) = run(&rt, &hostile(&rt), check).await;
    assert_eq!(report.events.len(), 1, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_file_socket_or_environment_without_a_grant() {
    let rt = runtime();
    let h = hostile(&rt);
    let (report, _) = run(
        &rt,
        &h,
        r#"{"meta": {"mode": "read_file", "path": "/etc/passwd"}}"#,
    )
    .await;
    assert_failed(&report, "cannot read /etc/passwd");
    let (report, _) = run(
        &rt,
        &h,
        r#"{"meta": {"mode": "socket", "addr": "127.0.0.1:5672"}}"#,
    )
    .await;
    assert_failed(&report, "cannot connect to 127.0.0.1:5672");
    let (report, _) = run(&rt, &h, r#"{"meta": {"mode": "env"}}"#).await;
    assert_failed(&report, "no environment variables or arguments visible");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_env_grant_shows_the_named_variables_only_under_their_granted_names() {
    // PATH and HOME are set in every test process; nothing sets them here.
    let rt = runtime();
    let h = hostile(&rt);
    let vars = |report: &RunReport| -> Vec<String> {
        report.details["vars"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (report, _) = run(
        &rt,
        &h,
        r#"{"meta": {"mode": "env"}, "grants": {"env": ["PATH"]}}"#,
    )
    .await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(vars(&report), ["PATH"]);
    let (report, _) = run(
        &rt,
        &h,
        r#"{"meta": {"mode": "env"}, "grants": {"env": {"WHERE": "HOME"}}}"#,
    )
    .await;
    assert_eq!(
        vars(&report),
        ["WHERE"],
        "renamed: HOME itself stays hidden"
    );
    // A granted name the host does not have is simply absent.
    let (report, _) = run(
        &rt,
        &h,
        r#"{"meta": {"mode": "env"}, "grants": {"env": ["HEARTBEAT_SURELY_UNSET_VAR"]}}"#,
    )
    .await;
    assert_failed(&report, "no environment variables or arguments visible");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_reaches_the_handler_and_is_redacted_wherever_it_repeats_it() {
    let rt = runtime();
    let h = hostile(&rt);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("db"), "s3cr3t-Pa55\n").expect("secret file");
    let check = |fail: bool| {
        format!(
            r#"{{"meta": {{"mode": "leak", "var": "DB_PASSWORD", "agent": "{AGENT}", "fail": {fail}}},
                "grants": {{"secrets": {{"DB_PASSWORD": {{"file": "db"}}}}}}}}"#
        )
    };
    let report = rt.run(&h, &request(&check(false), dir.path(), 0)).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    let shown = format!("{report:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert_eq!(report.details["v"], "[redacted]");
    assert_eq!(report.details["[redacted]"], 1);
    assert_eq!(report.logs[0].message, "the value is [redacted]");
    assert_eq!(
        report.events[0].payload,
        serde_json::json!({"v": "[redacted]"})
    );
    let report = rt.run(&h, &request(&check(true), dir.path(), 0)).await;
    assert_eq!(report.error.as_deref(), Some("failed holding [redacted]"));

    // Not granted: the handler does not see it.
    let ungranted =
        format!(r#"{{"meta": {{"mode": "leak", "var": "DB_PASSWORD", "agent": "{AGENT}"}}}}"#);
    let report = rt.run(&h, &request(&ungranted, dir.path(), 0)).await;
    assert_failed(&report, "DB_PASSWORD: environment variable not found");
    // Granted but unreadable: the run does not start, and says which.
    std::fs::remove_file(dir.path().join("db")).expect("remove");
    let report = rt.run(&h, &request(&check(false), dir.path(), 0)).await;
    assert_failed(&report, "secret DB_PASSWORD: cannot read");
    assert_failed(&report, "/db: No such file or directory");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_net_grant_lets_the_handler_reach_that_peer_only() {
    // Two real listeners on loopback; the check is granted the first.
    let granted = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let granted = granted.local_addr().expect("addr");
    let other = other.local_addr().expect("addr");
    let rt = runtime();
    let h = hostile(&rt);
    let connect = |addr: std::net::SocketAddr, grants: &str| {
        format!(r#"{{"meta": {{"mode": "socket", "addr": "{addr}"}}{grants}}}"#)
    };
    let grant = format!(r#", "grants": {{"net": ["{granted}"]}}"#);
    let (report, _) = run(&rt, &h, &connect(granted, &grant)).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.details, serde_json::json!({"connected": true}));
    let (report, _) = run(&rt, &h, &connect(other, &grant)).await;
    assert_failed(&report, &format!("cannot connect to {other}"));
    // The whole block, any port: both.
    let block = r#", "grants": {"net": ["127.0.0.0/8:*"]}"#;
    let (report, _) = run(&rt, &h, &connect(other, block)).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    // No grant: nothing.
    let (report, _) = run(&rt, &h, &connect(granted, "")).await;
    assert_failed(&report, &format!("cannot connect to {granted}"));
    // A name is resolved by the host for the run.
    let (report, _) = run(
        &rt,
        &h,
        &connect(
            granted,
            &format!(r#", "grants": {{"net": ["localhost:{}"]}}"#, granted.port()),
        ),
    )
    .await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
}

#[test]
fn a_granted_value_never_shows_in_a_printed_request() {
    let request = request(r#"{"grants": {"env": ["PATH"]}}"#, Path::new("."), 0);
    let path = std::env::var("PATH").expect("PATH");
    let shown = format!("{request:?}");
    assert!(!shown.contains(&path), "{shown}");
    assert!(
        shown.contains(&format!("<{} bytes>", path.len())),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_grant_opens_that_directory_only() {
    let rt = runtime();
    let h = hostile(&rt);
    let dir = tempfile::tempdir().expect("tempdir");
    let granted = dir.path().join("granted");
    std::fs::create_dir(&granted).expect("mkdir");
    std::fs::write(dir.path().join("secret.txt"), "outside").expect("write");
    let grant = format!(
        r#""grants": {{"dirs": {{"/data": {{"path": "{}"}}}}}}"#,
        granted.display()
    );

    let (report, _) = run(
        &rt,
        &h,
        &format!(r#"{{{grant}, "meta": {{"mode": "write_file", "path": "/data/out.txt"}}}}"#),
    )
    .await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(
        std::fs::read_to_string(granted.join("out.txt")).expect("written"),
        "written by a handler\n"
    );

    let escape =
        format!(r#"{{{grant}, "meta": {{"mode": "read_file", "path": "/data/../secret.txt"}}}}"#);
    let (report, _) = run(&rt, &h, &escape).await;
    assert_failed(&report, "cannot read /data/../secret.txt");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_grant_refuses_writes() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let grant = format!(
        r#""grants": {{"dirs": {{"/data": {{"path": "{}", "readOnly": true}}}}}}"#,
        dir.path().display()
    );
    let (report, _) = run(
        &rt,
        &hostile(&rt),
        &format!(r#"{{{grant}, "meta": {{"mode": "write_file", "path": "/data/out.txt"}}}}"#),
    )
    .await;
    assert_failed(&report, "cannot write /data/out.txt");
    assert!(!dir.path().join("out.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stay_in_the_agents_namespace_unless_granted() {
    let rt = runtime();
    let h = hostile(&rt);
    let (report, _) = run(
        &rt,
        &h,
        r#"{"meta": {"mode": "emit", "event": "agent.other.alert"}}"#,
    )
    .await;
    assert_failed(&report, "is not allowed");
    let own = format!(r#"{{"meta": {{"mode": "emit", "event": "agent.{AGENT}.alert"}}}}"#);
    let (report, _) = run(&rt, &h, &own).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.events[0].event_type, format!("agent.{AGENT}.alert"));
    assert_eq!(
        report.events[0].payload,
        serde_json::json!({"from": "hostile"})
    );
    let granted = r#"{"grants": {"emit": ["alerts.#"]}, "meta": {"mode": "emit", "event": "alerts.disk.full"}}"#;
    let (report, _) = run(&rt, &h, granted).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
}

#[test]
fn files_that_are_not_handler_components_are_refused_with_a_reason() {
    let rt = runtime();
    let refuse = |bytes: &[u8]| {
        rt.load("bad", "bad.wasm", bytes)
            .expect_err("refused")
            .to_string()
    };
    assert!(refuse(b"hello").contains("not a WebAssembly binary"));
    // An empty core module, not a component.
    assert!(refuse(b"\0asm\x01\0\0\0").contains("bad.wasm: not a valid WebAssembly component"));
    // An empty component: valid, but it exports no `run`.
    let err = refuse(b"\0asm\x0d\0\x01\0");
    assert!(
        err.contains("does not implement heartbeat:handler/handler@0.1.1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_instances_share_no_state_between_runs() {
    // The memory bomb leaves its instance full; the next run starts clean.
    let rt = runtime();
    let h = hostile(&rt);
    let (first, _) = run(&rt, &h, r#"{"memoryMb": 16, "meta": {"mode": "memory"}}"#).await;
    assert_failed(&first, "memory limit");
    let (second, _) = run(&rt, &h, r#"{"memoryMb": 16, "meta": {"mode": "ok"}}"#).await;
    assert_eq!(second.status, RunStatus::Success, "{second:?}");
}

fn count_lines(dir: &Path) -> usize {
    let mut n = 0;
    for sub in [dir.to_path_buf(), dir.join("archive")] {
        for entry in std::fs::read_dir(&sub).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "jsonl") {
                n += std::fs::read_to_string(entry.path())
                    .expect("read")
                    .lines()
                    .count();
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn quarterly_compaction_archives_through_its_grant_and_is_idempotent() {
    let rt = runtime();
    let handler = registry::load_builtin(&rt, "quarterly_compaction")
        .expect("built-in")
        .expect("loads");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("memory.jsonl"),
        "{\"timestamp\": \"2025-12-31T23:59:59Z\", \"m\": 1}\n{\"timestamp\": 1775001600000, \"m\": 2}\nnot json\n",
    )
    .expect("write");
    let check = format!(
        r#"{{"handler": "quarterly_compaction", "grants": {{"dirs": {{"/data": {{"path": "{}"}}}}}}}}"#,
        dir.path().display()
    );
    let before = count_lines(dir.path());
    let (report, _) = run(&rt, &handler, &check).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(
        report.details,
        serde_json::json!({"files": 1, "recordsMoved": 1, "recordsKept": 1, "unparsableLines": 1, "archives": ["archive/2025-Q4.jsonl"]})
    );
    assert_eq!(count_lines(dir.path()), before);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("archive/2025-Q4.jsonl")).expect("archive"),
        "{\"timestamp\": \"2025-12-31T23:59:59Z\", \"m\": 1}\n"
    );
    let (again, _) = run(&rt, &handler, &check).await;
    assert_eq!(again.details["recordsMoved"], 0, "{again:?}");
    assert_eq!(count_lines(dir.path()), before);
}

/// The consumer's example config names `quarterly_compaction` with no
/// directory granted: nothing to compact is `skipped`
/// with the reason, not a failure that backs the check off.
#[tokio::test(flavor = "multi_thread")]
async fn quarterly_compaction_without_a_directory_grant_is_skipped_with_the_reason() {
    let rt = runtime();
    let handler = registry::load_builtin(&rt, "quarterly_compaction")
        .expect("built-in")
        .expect("loads");
    let (report, _) = run(&rt, &handler, r#"{"handler": "quarterly_compaction"}"#).await;
    assert_eq!(report.status, RunStatus::Skipped, "{report:?}");
    assert_eq!(
        report.details["reason"],
        "no directory granted at /data: nothing to compact"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quarterly_compaction_with_a_read_only_grant_fails_and_changes_nothing() {
    let rt = runtime();
    let handler = registry::load_builtin(&rt, "quarterly_compaction")
        .expect("built-in")
        .expect("loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let live = "{\"timestamp\": \"2020-01-01T00:00:00Z\"}\n";
    std::fs::write(dir.path().join("m.jsonl"), live).expect("write");
    let check = format!(
        r#"{{"grants": {{"dirs": {{"/data": {{"path": "{}", "readOnly": true}}}}}}}}"#,
        dir.path().display()
    );
    let (report, _) = run(&rt, &handler, &check).await;
    assert_failed(&report, "cannot create /data/archive");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("m.jsonl")).expect("live"),
        live
    );
    assert!(!dir.path().join("archive").exists());
}

fn process(
    name: &str,
    status: heartbeat_host::core::model::ProcessState,
) -> heartbeat_host::core::model::ProcessInfo {
    heartbeat_host::core::model::ProcessInfo {
        name: name.into(),
        status,
        last_message: "beat/5".into(),
        last_seen_ms: 1_000,
        expected_by_ms: Some(8_500),
    }
}

async fn sub_health(
    rt: &Runtime,
    table: Vec<heartbeat_host::core::model::ProcessInfo>,
    meta: &str,
) -> RunReport {
    let handler = registry::load_builtin(rt, "sub_health")
        .expect("built-in")
        .expect("loads");
    let mut request = request(
        &format!(r#"{{"handler": "sub_health", "meta": {meta}}}"#),
        Path::new("."),
        2_000,
    );
    request.processes = std::sync::Arc::new(table);
    rt.run(&handler, &request).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_health_reports_the_table_and_fails_on_a_dead_or_missing_process() {
    use heartbeat_host::core::model::ProcessState::{Alive, Dead, Late};
    let rt = runtime();
    let report = sub_health(&rt, vec![process("a", Alive), process("b", Late)], "{}").await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.events.len(), 1);
    assert_eq!(
        report.events[0].event_type,
        format!("agent.{AGENT}.sub_health")
    );
    let payload = &report.events[0].payload;
    assert_eq!(payload["overall"], "degraded");
    assert_eq!(payload["processes"][1]["name"], "b");
    assert_eq!(payload["processes"][1]["status"], "late");
    assert_eq!(payload["processes"][0]["expectedByMs"], 8_500);

    let report = sub_health(&rt, vec![process("a", Alive), process("b", Dead)], "{}").await;
    assert_failed(&report, "unhealthy");
    assert_eq!(report.events[0].payload["overall"], "unhealthy");

    let report = sub_health(
        &rt,
        vec![process("a", Alive)],
        r#"{"required": ["a", "indexer"]}"#,
    )
    .await;
    assert_failed(&report, "indexer");
    assert_eq!(
        report.events[0].payload["missing"],
        serde_json::json!(["indexer"])
    );

    let report = sub_health(&rt, vec![], "{}").await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.events[0].payload["overall"], "healthy");
}

#[test]
fn compiled_code_is_cached_by_content_and_a_broken_entry_is_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::new(&RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        pooling: true,
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let cache = rt.cache().expect("cache");
    let bytes = std::fs::read(test_handler("test_handler_hostile.wasm")).expect("read");
    let (_, hit) = cache.get_or_compile(rt.engine(), &bytes).expect("compile");
    assert!(!hit, "first load compiles");
    let (_, hit) = cache.get_or_compile(rt.engine(), &bytes).expect("load");
    assert!(hit, "second load comes from the cache");
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries.len(), 1);
    std::fs::write(&entries[0], b"garbage").expect("corrupt");
    let (_, hit) = cache
        .get_or_compile(rt.engine(), &bytes)
        .expect("recompile");
    assert!(!hit, "a broken entry is recompiled");
    let (_, hit) = cache.get_or_compile(rt.engine(), &bytes).expect("load");
    assert!(hit, "and rewritten");
}

#[test]
fn invoke_grant_flags_grant_for_one_run_and_are_validated_like_a_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = test_handler("test_handler_hostile.wasm");
    let hostile = hostile.to_str().expect("utf-8");
    let cache = dir.path().join("cache");
    let env = crate::support::languages::invoke(
        &[
            hostile,
            "--meta",
            r#"{"mode": "env"}"#,
            "--grant-env",
            "WHERE=HOME",
        ],
        &cache,
    );
    assert_eq!(
        env.json["details"]["vars"],
        serde_json::json!(["WHERE"]),
        "{}",
        env.json
    );
    let secret = dir.path().join("token");
    std::fs::write(&secret, "tok-123456\n").expect("secret");
    let leak = crate::support::languages::invoke(
        &[
            hostile,
            "--meta",
            r#"{"mode": "leak", "var": "TOKEN", "agent": "local"}"#,
            "--grant-secret",
            &format!("TOKEN={}", secret.display()),
        ],
        &cache,
    );
    assert!(leak.finished.status.success(), "{}", leak.finished.log());
    assert!(
        !leak.finished.stdout.contains("tok-123456"),
        "{}",
        leak.finished.stdout
    );
    assert_eq!(leak.json["details"]["v"], "[redacted]");
    let mut bad = std::process::Command::new(crate::support::host_bin());
    bad.args(["invoke", hostile, "--grant-env", "NOT-A-NAME"]);
    let refused =
        crate::support::languages::run_bounded(&mut bad, "invoke", Duration::from_secs(60));
    assert_eq!(refused.status.code(), Some(2), "{}", refused.log());
    assert!(
        refused
            .stderr
            .contains("checks.invoke.grants.env.NOT-A-NAME")
            && refused
                .stderr
                .contains("expected an environment variable name"),
        "{}",
        refused.log()
    );
}

/// `--max-runs-in-flight`: with one slot, a second run waits for it
/// (its wait counts toward its time) and then runs; a run whose
/// `timeoutMs` passes while it waits fails without starting, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_beyond_the_slots_wait_for_one_within_their_timeout() {
    let rt = std::sync::Arc::new(
        Runtime::new(&RuntimeOptions {
            cache_dir: None,
            pooling: true,
            max_runs_in_flight: 1,
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    let handler = std::sync::Arc::new(hostile(&rt));
    let spawn = |check: &'static str| {
        let (rt, handler) = (std::sync::Arc::clone(&rt), std::sync::Arc::clone(&handler));
        tokio::spawn(async move { run(&rt, &handler, check).await })
    };
    let first = spawn(r#"{"timeoutMs": 10000, "meta": {"mode": "busy", "ms": 1500}}"#);
    // The first holds the only slot before the others ask for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = spawn(r#"{"timeoutMs": 10000, "meta": {"mode": "busy", "ms": 100}}"#);
    let impatient = spawn(r#"{"timeoutMs": 300, "meta": {"mode": "busy", "ms": 100}}"#);
    let (first, _) = first.await.expect("joined");
    let (waited, waited_for) = waiting.await.expect("joined");
    let (refused, refused_after) = impatient.await.expect("joined");
    assert_eq!(first.status, RunStatus::Success, "{first:?}");
    assert_eq!(waited.status, RunStatus::Success, "{waited:?}");
    assert!(
        waited_for >= Duration::from_millis(1_100),
        "the second run did not wait for the slot: {waited_for:?}"
    );
    assert_failed(
        &refused,
        "no run slot free within its timeoutMs (300 ms): this host runs at most 1 at once",
    );
    assert!(
        refused_after < Duration::from_millis(1_000),
        "refused at its timeout, not when the slot came free: {refused_after:?}"
    );
    // The slot is free again afterwards.
    let (after, _) = run(&rt, &handler, r#"{"meta": {"mode": "busy", "ms": 10}}"#).await;
    assert_eq!(after.status, RunStatus::Success, "{after:?}");
}
