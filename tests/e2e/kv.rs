//! The checks' key-value stores (`heartbeat:handler/kv`, WIT 0.1.1) with
//! the real host: values kept from one run to the next and across a
//! restart, never torn by `kill -9` in the middle of writes, the cap as an
//! error to the guest, one check's keys out of another's reach, a corrupt
//! store failing the run by name; and a handler built against the 0.1.0
//! WIT, from before the store, still loading and running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use heartbeat_host::core::model::RunStatus;
use heartbeat_host::{KvLocation, RunRequest};

use crate::support::runtime::{TICK_MS, check_request, runtime};
use crate::support::{self, RunningHost, test_handler};

const WAIT: Duration = Duration::from_secs(60);

fn kv_handler() -> PathBuf {
    test_handler("test_handler_kv.wasm")
}

/// `invoke` of the kv test handler with `meta`, plus `args`.
fn invoke(meta: &str, args: &[&str], cache: &Path) -> serde_json::Value {
    let handler = kv_handler();
    let mut all = vec![handler.to_str().expect("utf-8"), "--meta", meta];
    all.extend_from_slice(args);
    crate::support::languages::invoke(&all, cache).json
}

/// A `heartbeat.json` in `dir` with `checks` (JSON object text).
fn config(dir: &Path, checks: &str) -> PathBuf {
    let path = dir.join("heartbeat.json");
    std::fs::write(&path, format!(r#"{{"checks": {checks}}}"#)).expect("config");
    path
}

/// The store file of `check` under `kv_dir`, parsed.
fn store_file(kv_dir: &Path, check: &str) -> serde_json::Value {
    support::read_json(&KvLocation::new(kv_dir).file_of(check))
}

#[test]
fn a_value_set_by_one_invoke_is_read_by_the_next_with_kv_dir_and_not_without() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let kv_dir = dir.path().join("kv");
    let kv = kv_dir.to_str().expect("utf-8");
    let counter = r#"{"mode": "counter"}"#;
    for expected in 1..=3 {
        let run = invoke(counter, &["--kv-dir", kv], &cache);
        assert_eq!(run["status"], "success", "{run}");
        assert_eq!(run["details"]["count"], expected, "{run}");
    }
    // On disk as documented: the check's name, its entries.
    let file = store_file(&kv_dir, "invoke");
    assert_eq!(
        file,
        serde_json::json!({"format": "heartbeat-kv/1", "check": "invoke", "entries": {"count": "3"}})
    );
    // Without --kv-dir each invocation starts from an empty store, and the
    // store given with --kv-dir is left alone.
    for _ in 0..2 {
        let run = invoke(counter, &[], &cache);
        assert_eq!(run["details"]["count"], 1, "{run}");
    }
    assert_eq!(store_file(&kv_dir, "invoke")["entries"]["count"], "3");
}

#[test]
fn invoke_help_says_where_the_store_is_by_default() {
    let mut cmd = std::process::Command::new(support::host_bin());
    cmd.args(["invoke", "--help"]);
    let out = crate::support::languages::run_bounded(&mut cmd, "invoke --help", WAIT);
    assert!(out.status.success(), "{}", out.log());
    assert!(
        out.stdout.contains("--kv-dir <DIR>")
            && out
                .stdout
                .contains("fresh, empty store that is removed afterwards"),
        "{}",
        out.stdout
    );
}

#[test]
fn one_checks_keys_are_out_of_another_checks_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let kv_dir = dir.path().join("kv");
    let kv = kv_dir.to_str().expect("utf-8");
    let cfg = config(
        dir.path(),
        r#"{"a": {"handler": "kv"}, "b": {"handler": "kv"}, "a/b": {"handler": "kv"}}"#,
    );
    let cfg = cfg.to_str().expect("utf-8");
    let as_check = |check: &str, meta: &str| {
        invoke(
            meta,
            &["--config", cfg, "--check", check, "--kv-dir", kv],
            &cache,
        )
    };
    let wrote = as_check("a", r#"{"mode": "write", "key": "secret", "bytes": 5}"#);
    assert_eq!(wrote["details"]["written"], 5, "{wrote}");
    for other in ["b", "a/b"] {
        let dump = as_check(other, r#"{"mode": "dump"}"#);
        assert_eq!(
            dump["details"]["entries"],
            serde_json::json!({}),
            "{other}: {dump}"
        );
        let get = as_check(other, r#"{"mode": "get", "key": "secret"}"#);
        assert_eq!(
            get["details"]["value"],
            serde_json::Value::Null,
            "{other}: {get}"
        );
    }
    // b's own write lands in b's store; a's is intact.
    as_check("b", r#"{"mode": "write", "key": "secret", "bytes": 2}"#);
    let dump = as_check("a", r#"{"mode": "dump"}"#);
    assert_eq!(
        dump["details"]["entries"],
        serde_json::json!({"secret": "xxxxx"}),
        "{dump}"
    );
    let mut files: Vec<String> = std::fs::read_dir(&kv_dir)
        .expect("kv dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["a.json", "b.json"]);
}

#[test]
fn a_set_over_max_kv_bytes_is_an_error_to_the_guest_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let kv_dir = dir.path().join("kv");
    let kv = kv_dir.to_str().expect("utf-8");
    let cfg = config(
        dir.path(),
        r#"{"small": {"handler": "kv", "maxKvBytes": 1000}}"#,
    );
    let cfg = cfg.to_str().expect("utf-8");
    let write = |key: &str, bytes: u64| {
        let meta = format!(r#"{{"mode": "write", "key": "{key}", "bytes": {bytes}}}"#);
        invoke(
            &meta,
            &["--config", cfg, "--check", "small", "--kv-dir", kv],
            &cache,
        )
    };
    let first = write("a", 600);
    assert_eq!(first["details"]["written"], 600, "{first}");
    let file = KvLocation::new(&kv_dir).file_of("small");
    let before = std::fs::read(&file).expect("store");
    // 1 + 600 + 1 + 600 bytes would be over 1000: refused, the run goes on.
    let over = write("b", 600);
    assert_eq!(over["status"], "success", "{over}");
    let refused = over["details"]["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("key-value cap reached")
            && refused.contains("would hold 1202 bytes")
            && refused.contains("the cap is 1000 bytes (maxKvBytes)"),
        "{over}"
    );
    assert_eq!(std::fs::read(&file).expect("store"), before);
    // Replacing `a` with a value that fits counts only the difference.
    let replaced = write("a", 999);
    assert_eq!(replaced["details"]["written"], 999, "{replaced}");
    assert_eq!(
        store_file(&kv_dir, "small")["entries"]["a"]
            .as_str()
            .map(str::len),
        Some(999)
    );
}

#[test]
fn invalid_keys_are_errors_to_the_guest_with_their_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = invoke(r#"{"mode": "errors"}"#, &[], &dir.path().join("cache"));
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["details"]["get"], "a key may not be empty", "{run}");
    assert_eq!(run["details"]["set"], "a key may not contain NUL", "{run}");
    assert_eq!(
        run["details"]["delete"], "a key of 513 bytes is refused: at most 512",
        "{run}"
    );
}

#[test]
fn a_corrupt_store_fails_the_run_naming_the_file_and_is_left_as_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv_dir = dir.path().join("kv");
    std::fs::create_dir(&kv_dir).expect("mkdir");
    let file = KvLocation::new(&kv_dir).file_of("invoke");
    std::fs::write(
        &file,
        r#"{"format": "heartbeat-kv/1", "check": "invoke", "entries": {"count": "#,
    )
    .expect("corrupt");
    let run = invoke(
        r#"{"mode": "counter"}"#,
        &["--kv-dir", kv_dir.to_str().expect("utf-8")],
        &dir.path().join("cache"),
    );
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "the key-value store {} is corrupt",
            file.display()
        )) && error.contains("repair or remove the file"),
        "{run}"
    );
    assert!(
        std::fs::read_to_string(&file)
            .expect("kept")
            .ends_with(r#""count": "#)
    );
}

/// The host on its own timer (50 ms ticks) as agent `kv`, with `checks`
/// and the kv test handler as handler `kv`, its state (and so its stores)
/// in `dir`.
fn start_with_kv_handler(dir: &Path, checks: &str) -> RunningHost {
    let handlers = dir.join("handlers");
    if !handlers.exists() {
        std::fs::create_dir(&handlers).expect("mkdir");
        std::fs::copy(kv_handler(), handlers.join("kv.wasm")).expect("copy");
    }
    let cfg = config(dir, checks);
    let cache = dir.join("cache");
    support::start_on_timer(
        &cfg,
        "50ms",
        &["--handlers", handlers.to_str().expect("utf-8")],
        &[
            ("AGENT_NAME", "kv"),
            ("HEARTBEAT_CACHE_DIR", cache.to_str().expect("utf-8")),
        ],
    )
}

/// The counts the `counter` runs reported so far.
fn counts(lines: &[serde_json::Value]) -> Vec<u64> {
    support::records(lines, "run_finished", &[("check", "counter")])
        .iter()
        .filter_map(|line| support::details(line)?["count"].as_u64())
        .collect()
}

#[test]
fn the_counter_continues_across_a_host_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checks = r#"{"counter": {"handler": "kv", "cadenceMs": 0, "meta": {"mode": "counter"}}}"#;
    let mut host = start_with_kv_handler(dir.path(), checks);
    let lines = host.wait_for("three counter runs", WAIT, |l| counts(l).len() >= 3);
    let first = counts(&lines);
    assert_eq!(&first[..3], &[1, 2, 3], "{}", host.log());
    assert!(host.terminate(WAIT).success(), "{}", host.log());
    let stored: u64 = store_file(&dir.path().join("heartbeat.kv"), "counter")["entries"]["count"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("a count on disk");
    assert!(stored >= 3, "{stored}");

    let mut host = start_with_kv_handler(dir.path(), checks);
    let lines = host.wait_for("a counter run after the restart", WAIT, |l| {
        !counts(l).is_empty()
    });
    assert_eq!(counts(&lines)[0], stored + 1, "{}", host.log());
}

#[test]
fn kill_9_in_the_middle_of_writes_never_leaves_a_torn_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pad = 4_000;
    let keys = 8;
    // Rewrites 8 values of 4 kB again and again, each set a whole-store
    // write (32 kB written and fsynced): most of a set's time is spent with
    // the temp file written and not yet renamed, where a kill is likeliest
    // to tear something if anything could.
    let checks = format!(
        r#"{{"writer": {{"handler": "kv", "cadenceMs": 0, "timeoutMs": 600000,
            "meta": {{"mode": "slow_writer", "keys": {keys}, "bytes": {pad}}}}}}}"#
    );
    let kv_dir = dir.path().join("heartbeat.kv");
    let file = KvLocation::new(&kv_dir).file_of("writer");
    let mut killed = Vec::new();
    // Kills that left a temp file: the write was cut between create and rename.
    let mut mid_writes = 0u32;
    for round in 0..12u64 {
        let mut host = start_with_kv_handler(dir.path(), &checks);
        host.wait_for_event("selected", &[("check", "writer")], WAIT);
        // Let it write for a while, a different while each time.
        std::thread::sleep(Duration::from_millis(150 + (round * 37) % 200));
        killed.push(host.pid());
        drop(host); // SIGKILL
        let mid_write = std::fs::read_dir(&kv_dir)
            .expect("kv dir")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".tmp."));
        mid_writes += u32::from(mid_write);
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("round {round}: no store after writing ({e})"));
        let store: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("round {round}: torn store ({e}), {} bytes", text.len()));
        // The host's own reader takes it too (format, check name, keys).
        if let Err(e) = KvLocation::new(&kv_dir).load("writer") {
            panic!("round {round}: the host would refuse the store: {e}");
        }
        let entries = store["entries"].as_object().expect("entries");
        assert!(
            !entries.is_empty() && entries.len() <= keys,
            "round {round}: {} keys",
            entries.len()
        );
        for (key, value) in entries {
            let value: serde_json::Value = serde_json::from_str(value.as_str().expect("text"))
                .unwrap_or_else(|e| panic!("round {round}: {key} is torn ({e})"));
            assert_eq!(format!("v{}", value["key"]), *key, "round {round}");
            assert_eq!(
                value["pad"].as_str().map(str::len),
                Some(pad),
                "round {round}: {key}"
            );
        }
    }
    // Stale temp files of the killed hosts go at the next start.
    let mut host = start_with_kv_handler(dir.path(), &checks);
    host.wait_for_event("started", &[], WAIT);
    drop(host);
    let leftovers: Vec<String> = std::fs::read_dir(&kv_dir)
        .expect("kv dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            killed
                .iter()
                .any(|pid| name.ends_with(&format!(".tmp.{pid}")))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!(
        "kv kill -9: {mid_writes} of 12 kills cut a write between its temp file and the rename"
    );
}

/// The request of agent `kv`'s check `check` with `meta`, given the store
/// `kv` (or none).
fn request(check: &str, meta: &str, kv: Option<KvLocation>) -> RunRequest {
    let check_json = format!(r#"{{"meta": {meta}}}"#);
    let mut request = check_request("kv", check, &check_json, Path::new("."), TICK_MS);
    request.kv = kv;
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_given_no_store_gets_an_error_from_every_call_not_a_trap() {
    let rt = runtime();
    let handler = heartbeat_host::load_file(&rt, &kv_handler()).expect("loads");
    let report = rt
        .run(&handler, &request("probe", r#"{"mode": "counter"}"#, None))
        .await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("this run has no key-value store"), "{error}");
    assert!(!error.contains("trap"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_using_kv_runs_in_process_with_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let handler = heartbeat_host::load_file(&rt, &kv_handler()).expect("loads");
    let kv = Some(KvLocation::new(dir.path()));
    for expected in 1..=2 {
        let report = rt
            .run(
                &handler,
                &request("probe", r#"{"mode": "counter"}"#, kv.clone()),
            )
            .await;
        assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
        assert_eq!(report.details["count"], expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_built_against_wit_0_1_0_loads_and_runs_on_this_0_1_1_host() {
    let wasm = test_handler("test_handler_wit_0_1_0.wasm");
    let bytes = std::fs::read(&wasm).expect("built");
    // It really is a 0.1.0 component: its imports name that version.
    let names = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(names("heartbeat:handler/host@0.1.0"));
    assert!(!names("heartbeat:handler/host@0.1.1") && !names("heartbeat:handler/kv"));
    let rt = runtime();
    let handler = heartbeat_host::load_file(&rt, &wasm).expect("a 0.1.0 handler loads");
    let report = rt
        .run(&handler, &request("old", r#"{"emit": true}"#, None))
        .await;
    assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
    assert_eq!(report.details["wit"], "0.1.0");
    assert_eq!(report.details["check"], "old");
    assert_eq!(report.logs.len(), 1, "{:?}", report.logs);
    assert_eq!(report.events.len(), 1, "{:?}", report.events);
    assert_eq!(report.events[0].event_type, "agent.kv.compat");
    // And through the CLI, as an author would try it.
    let dir = tempfile::tempdir().expect("tempdir");
    let invoked = crate::support::languages::invoke(
        &[wasm.to_str().expect("utf-8")],
        &dir.path().join("cache"),
    );
    assert_eq!(invoked.json["status"], "success", "{}", invoked.json);
}
