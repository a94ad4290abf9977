//! The built-in checks `file_freshness`, `liveness_file` and
//! `rabbitmq_queue`, end to end: the real binary runs the built-in
//! components (built from `handlers/<name>/`) against real file trees in
//! temporary directories, real liveness files (written by kstlib's
//! `Heartbeat` and by a running `heartbeat-host run --liveness-file`) and
//! the real RabbitMQ's management API at 127.0.0.1:15672 (guest/guest;
//! `tests/run.sh` enables the plugin). Per built-in: a passing and a failing
//! run per expectation (mostly through `heartbeat-host invoke`, one on the
//! host's own timer, read from its `run_finished` records), a bad `meta`
//! refused by `heartbeat-host check` at its file:line:column, and a
//! directory or origin the check was not granted refused by the sandbox.
//! The JSON Schema fragments `schemas/checks/<name>.json` are checked
//! against the same good and bad metas, and against the core's own parser.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::support::{self, RunningHost, records};

const WAIT: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Runs `heartbeat-host ARGS` to completion, bounded by `timeout(1)`.
fn host(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg(support::host_bin())
        .args(args)
        .env_remove("HEARTBEAT_PATH")
        .env_remove("HANDLERS_DIR")
        .env_remove("AGENT_NAME")
        .env_remove("RABBIT_URL")
        .env("LOG_LEVEL", "warning")
        .output()
        .expect("run heartbeat-host")
}

/// What `invoke` printed (its JSON report) and its exit code.
struct Invoked {
    code: Option<i32>,
    report: Value,
    stdout: String,
}

impl Invoked {
    fn status(&self) -> &str {
        self.report["status"].as_str().unwrap_or("(none)")
    }

    fn details(&self) -> &Value {
        &self.report["details"]
    }

    fn error(&self) -> &str {
        self.report["error"].as_str().unwrap_or_default()
    }

    /// Asserts the run's status and, for a failed one, `details.failed`.
    fn expect(&self, status: &str, failed: Option<&str>) -> &Self {
        assert_eq!(self.status(), status, "{}", self.stdout);
        let code = if status == "failed" { 1 } else { 0 };
        assert_eq!(self.code, Some(code), "{}", self.stdout);
        if let Some(failed) = failed {
            assert_eq!(self.details()["failed"], failed, "{}", self.stdout);
        } else {
            assert!(self.details().get("failed").is_none(), "{}", self.stdout);
        }
        self
    }

    /// Asserts that `details.error` (and the run's reason) contains `words`.
    fn says(&self, words: &str) -> &Self {
        let error = self.details()["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{words:?} not in {}", self.stdout);
        assert!(
            self.error().contains(words),
            "{words:?} not in the reason: {}",
            self.stdout
        );
        self
    }
}

/// A `heartbeat.json` in its own temporary directory.
struct Config {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Config {
    fn new(checks: Value) -> Config {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("heartbeat.json");
        let config = Config { dir, path };
        config.write(checks);
        config
    }

    fn write(&self, checks: Value) {
        self.write_document(json!({"agent": "builtins", "checks": checks}));
    }

    fn write_document(&self, document: Value) {
        let text = serde_json::to_string_pretty(&document).expect("serialise");
        std::fs::write(&self.path, text).expect("write config");
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `heartbeat-host run` on this config, on its own timer every `interval`.
    fn run_on_timer(&self, interval: &str) -> RunningHost {
        support::start_on_timer(&self.path, interval, &[], &[])
    }

    /// [`Config::run_on_timer`], then waits until each of `checks` has run
    /// once; the host and its log lines so far.
    fn run_until_each_ran(&self, interval: &str, checks: &[&str]) -> (RunningHost, Vec<Value>) {
        let mut running = self.run_on_timer(interval);
        let lines = running.wait_for(&format!("runs of {checks:?}"), WAIT, |l| {
            checks
                .iter()
                .all(|c| !records(l, "run_finished", &[("check", c)]).is_empty())
        });
        (running, lines)
    }

    /// `heartbeat-host invoke HANDLER --config … --check CHECK`.
    fn invoke(&self, handler: &str, check: &str) -> Invoked {
        let out = host(&[
            "invoke",
            handler,
            "--config",
            utf8(&self.path),
            "--check",
            check,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "invoke printed no JSON ({e}): {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Invoked {
            code: out.status.code(),
            report,
            stdout,
        }
    }
}

/// Writes `bytes` bytes at `path` and stamps it `age` before now.
fn file_aged(path: &Path, bytes: usize, age: Duration) {
    std::fs::write(path, vec![b'x'; bytes]).expect("write file");
    let modified = SystemTime::now() - age;
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(modified))
        .expect("set mtime");
}

/// `checks.<check>.meta.<field>` refused by `heartbeat-host check`, with
/// the position of `needle` (the offending value) in the file: 1-based line
/// and column, as an editor counts them.
fn assert_check_refuses(config: &Path, needle: &str, field: &str, words: &str) {
    let text = std::fs::read_to_string(config).expect("read config");
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"));
    let line = text[..offset].matches('\n').count() + 1;
    let column = text[..offset]
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count())
        + 1;
    let out = host(&["check", "--config", utf8(config)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let expected = format!("heartbeat.json:{line}:{column}: {field}: {words}");
    assert!(stdout.contains(&expected), "{expected:?} not in:\n{stdout}");
}

// ---------------------------------------------------------------- file_freshness

/// A backup directory: two archives (2 h and 30 h old) and a text file.
fn backups(root: &Path) -> PathBuf {
    let dir = root.join("backups");
    std::fs::create_dir_all(dir.join("backup-nested.tar.gz")).expect("mkdir");
    file_aged(&dir.join("backup-2026-11-29.tar.gz"), 900, 30 * HOUR);
    file_aged(&dir.join("backup-2026-11-30.tar.gz"), 500, 2 * HOUR);
    file_aged(&dir.join("notes.txt"), 3, Duration::ZERO);
    dir
}

fn freshness(dir: &Path, meta: Value) -> Value {
    json!({
        "handler": "file_freshness",
        "cadenceMs": 60000,
        "meta": meta,
        "grants": {"dirs": {"/backups": {"path": utf8(dir), "readOnly": true}}}
    })
}

#[test]
fn file_freshness_passes_and_fails_per_expectation() {
    let config = Config::new(json!({}));
    let dir = backups(config.root());
    let archives = "backup-*.tar.gz";
    config.write(json!({
        "ok": freshness(&dir, json!({"dir": "/backups", "glob": archives, "maxAge": "26h", "minCount": 2, "minBytes": 100})),
        "stale": freshness(&dir, json!({"dir": "/backups", "glob": archives, "maxAge": "1h"})),
        "few": freshness(&dir, json!({"dir": "/backups", "glob": archives, "maxAge": "26h", "minCount": 3})),
        "small": freshness(&dir, json!({"dir": "/backups", "glob": archives, "maxAge": "26h", "minBytes": 501})),
        "big_enough": freshness(&dir, json!({"dir": "/backups", "glob": archives, "maxAge": "26h", "minBytes": 500})),
        "none": freshness(&dir, json!({"dir": "/backups", "glob": "*.sql", "maxAge": "26h"})),
        "any": freshness(&dir, json!({"dir": "/backups", "maxAge": "1m"})),
        "set": freshness(&dir, json!({"dir": "/backups", "glob": "backup-2026-11-2[0-9].tar.gz", "maxAge": "31h"})),
    }));

    let ok = config.invoke("file_freshness", "ok");
    ok.expect("success", None);
    let d = ok.details();
    assert_eq!(d["dir"], "/backups");
    assert_eq!(d["glob"], archives);
    // The directory named like an archive is not a file and does not count.
    assert_eq!(d["count"], 2, "{}", ok.stdout);
    assert_eq!(d["newest"], "backup-2026-11-30.tar.gz");
    assert_eq!(d["newestBytes"], 500);
    let age = d["newestAgeMs"].as_u64().expect("newestAgeMs");
    assert!((7_200_000..7_260_000).contains(&age), "{}", ok.stdout);

    config
        .invoke("file_freshness", "stale")
        .expect("failed", Some("maxAge"))
        .says("newest backup-2026-11-30.tar.gz is 2h old, more than maxAge 1h");
    config
        .invoke("file_freshness", "few")
        .expect("failed", Some("minCount"))
        .says("2 files in /backups match \"backup-*.tar.gz\", fewer than minCount 3");
    config
        .invoke("file_freshness", "small")
        .expect("failed", Some("minBytes"))
        .says("newest backup-2026-11-30.tar.gz has 500 bytes, fewer than minBytes 501");
    config
        .invoke("file_freshness", "big_enough")
        .expect("success", None);
    let none = config.invoke("file_freshness", "none");
    none.expect("failed", Some("minCount"))
        .says("0 files in /backups match \"*.sql\"");
    assert_eq!(none.details()["newest"], Value::Null);
    // Without a glob every file counts: the newest is the text file.
    let any = config.invoke("file_freshness", "any");
    any.expect("success", None);
    assert_eq!(any.details()["newest"], "notes.txt", "{}", any.stdout);
    assert_eq!(any.details()["count"], 3);
    // A set picks the older archive alone, 30 h old, within 31 h.
    let set = config.invoke("file_freshness", "set");
    set.expect("success", None);
    assert_eq!(set.details()["newest"], "backup-2026-11-29.tar.gz");
    assert_eq!(set.details()["count"], 1);
}

#[test]
fn file_freshness_refuses_a_directory_the_check_was_not_granted() {
    let config = Config::new(json!({}));
    let dir = backups(config.root());
    let outside = config.root().join("elsewhere");
    std::fs::create_dir_all(&outside).expect("mkdir");
    file_aged(&outside.join("backup-x.tar.gz"), 10, Duration::ZERO);
    config.write(json!({
        "other_dir": freshness(&dir, json!({"dir": "/elsewhere", "maxAge": "1h"})),
        "no_grants": {"handler": "file_freshness", "meta": {"dir": "/backups", "maxAge": "1h"}},
        "granted_but_absent": freshness(&dir, json!({"dir": "/backups/missing", "maxAge": "1h"})),
    }));
    config
        .invoke("file_freshness", "other_dir")
        .expect("failed", Some("dir"))
        .says("directory /elsewhere is not in a directory granted to this check (grants.dirs: /backups)");
    config
        .invoke("file_freshness", "no_grants")
        .expect("failed", Some("dir"))
        .says("directory /backups is not in a directory granted to this check (grants.dirs: none)");
    config
        .invoke("file_freshness", "granted_but_absent")
        .expect("failed", Some("dir"))
        .says("directory /backups/missing does not exist");
}

#[test]
fn file_freshness_runs_on_the_hosts_timer() {
    let config = Config::new(json!({}));
    let dir = backups(config.root());
    config.write(json!({
        "backup_fresh": freshness(&dir, json!({"dir": "/backups", "glob": "backup-*", "maxAge": "26h"})),
        "backup_stale": freshness(&dir, json!({"dir": "/backups", "glob": "backup-*", "maxAge": "90m"})),
    }));
    let (mut running, lines) =
        config.run_until_each_ran("200ms", &["backup_fresh", "backup_stale"]);
    let fresh = first_run(&lines, "backup_fresh");
    assert_eq!(support::field(&fresh, "status"), Some("success"), "{fresh}");
    let details = support::details(&fresh).expect("details");
    assert_eq!(details["newest"], "backup-2026-11-30.tar.gz");
    assert_eq!(details["count"], 2);
    // A failed run's record carries its reason, `details.error`.
    let stale = first_run(&lines, "backup_stale");
    assert_eq!(support::field(&stale, "status"), Some("failed"), "{stale}");
    assert_eq!(
        support::field(&stale, "error"),
        Some("newest backup-2026-11-30.tar.gz is 2h old, more than maxAge 90m")
    );
    assert!(running.terminate(WAIT).success());
}

/// A running host says at start-up, and again when a reload brings one,
/// that a built-in check's `meta` is bad and its runs will fail; a file of
/// the same name in the handler directory reads its `meta` its own way and
/// is not second-guessed.
#[test]
fn a_running_host_reports_a_bad_builtin_meta_at_start_and_on_reload() {
    let config = Config::new(json!({
        "fresh": {"handler": "file_freshness", "meta": {"dir": "/backups", "maxAge": "26 hours"}},
    }));
    let mut running = config.run_on_timer("200ms");
    let invalid = |lines: &[Value], needle: &str| {
        records(lines, "invalid_meta", &[("check", "fresh")])
            .iter()
            .any(|r| support::message(r).contains(needle))
    };
    running.wait_for("the bad maxAge reported", WAIT, |l| {
        invalid(l, "checks.fresh.meta.maxAge: expected a duration")
    });
    config.write(json!({
        "fresh": {"handler": "file_freshness", "meta": {"dir": "/backups", "maxAge": "1h", "minCount": "two"}},
    }));
    running.wait_for("the bad minCount reported", WAIT, |l| {
        invalid(
            l,
            "checks.fresh.meta.minCount: expected a non-negative integer",
        )
    });
    assert!(running.terminate(WAIT).success());
}

/// The first `run_finished` record of `check`.
fn first_run(lines: &[Value], check: &str) -> Value {
    records(lines, "run_finished", &[("check", check)])
        .first()
        .map(|r| (*r).clone())
        .unwrap_or_else(|| panic!("no run of {check}:\n{}", support::render(lines)))
}

// ---------------------------------------------------------------- bad metas

#[test]
fn check_refuses_a_bad_builtin_meta_at_its_position() {
    for (handler, meta, needle, field, words) in [
        (
            "file_freshness",
            r#"{"dir": "/backups", "maxAge": "26 hours"}"#,
            "\"26 hours\"",
            "meta.maxAge",
            "expected a duration such as",
        ),
        (
            "file_freshness",
            r#"{"dir": "/backups", "maxAge": "1h", "glob": "daily/*.gz"}"#,
            "\"daily/*.gz\"",
            "meta.glob",
            "expected a file-name pattern: a pattern matches names directly in the directory and cannot contain /",
        ),
        (
            "liveness_file",
            r#"{"path": "/run/bot.heartbeat", "maxAge": 30}"#,
            "30}",
            "meta.maxAge",
            "expected a duration such as",
        ),
        (
            "liveness_file",
            r#"{"path": "bot.heartbeat"}"#,
            "\"bot.heartbeat\"",
            "meta.path",
            "expected the absolute guest path of a file in grants.dirs",
        ),
        (
            "rabbitmq_queue",
            r#"{"url": "http://127.0.0.1:15672", "queue": "orders", "maxMessages": -1}"#,
            "-1}",
            "meta.maxMessages",
            "expected a non-negative integer, found -1",
        ),
        (
            "rabbitmq_queue",
            r#"{"url": "http://127.0.0.1:15672", "queue": "orders", "password": "hunter2"}"#,
            "\"hunter2\"",
            "meta.password",
            "a password is never written in the config",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("heartbeat.json");
        let text = format!(
            "{{\n  \"checks\": {{\n    \"x\": {{\n      \"handler\": \"{handler}\",\n      \"meta\": {meta}\n    }}\n  }}\n}}\n"
        );
        std::fs::write(&config, &text).expect("write config");
        assert_check_refuses(&config, needle, &format!("checks.x.{field}"), words);
        // The built-in itself, handed the same meta anyway, fails the run
        // with the same words.
        let out = host(&["invoke", handler, "--meta", meta]);
        let report: Value = serde_json::from_slice(&out.stdout).expect("invoke's JSON report");
        assert_eq!(out.status.code(), Some(1), "{report}");
        assert_eq!(report["status"], "failed", "{report}");
        let error = report["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(&format!("{field}: {words}")), "{report}");
        let out = host(&["check", "--config", utf8(&config)]);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("hunter2"),
            "a password written in the config is not echoed"
        );
    }
}

// ---------------------------------------------------------------- liveness_file

fn liveness(dir: &Path, meta: Value) -> Value {
    json!({
        "handler": "liveness_file",
        "cadenceMs": 0,
        "meta": meta,
        "grants": {"dirs": {"/run": {"path": utf8(dir), "readOnly": true}}}
    })
}

/// A file in kstlib's format with the given timestamp text.
fn beat_at(path: &Path, timestamp: &str) {
    let state =
        json!({"timestamp": timestamp, "pid": 4242, "hostname": "worker-1", "metadata": {}});
    std::fs::write(path, state.to_string()).expect("write liveness file");
}

#[test]
fn liveness_file_reads_kstlibs_file_and_judges_its_age() {
    let config = Config::new(json!({}));
    let run = config.root().join("run");
    std::fs::create_dir_all(&run).expect("mkdir");
    // The real kstlib writes one beat.
    crate::liveness::kstlib(
        "import asyncio, inspect, sys\n\
         from kstlib.resilience.heartbeat import Heartbeat\n\
         hb = Heartbeat(sys.argv[1], interval=1, metadata={'app': 'worker'})\n\
         r = hb.beat()\n\
         if inspect.isawaitable(r): asyncio.run(r)\n",
        &[utf8(&run.join("bot.heartbeat"))],
    );
    let two_minutes_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120);
    beat_at(
        &run.join("old.heartbeat"),
        &two_minutes_ago.to_string().replace('Z', "+00:00"),
    );
    // Python's naive `datetime.now().isoformat()`-style UTC stamp, no offset.
    let naive = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime()
        .to_string();
    beat_at(&run.join("naive.heartbeat"), &naive);
    std::fs::write(run.join("garbage.heartbeat"), "not json at all").expect("write");
    config.write(json!({
        "kstlib": liveness(&run, json!({"path": "/run/bot.heartbeat"})),
        "old_default": liveness(&run, json!({"path": "/run/old.heartbeat"})),
        "old_tolerant": liveness(&run, json!({"path": "/run/old.heartbeat", "maxAge": "5m"})),
        "naive": liveness(&run, json!({"path": "/run/naive.heartbeat", "maxAge": "1m"})),
        "missing": liveness(&run, json!({"path": "/run/gone.heartbeat"})),
        "garbage": liveness(&run, json!({"path": "/run/garbage.heartbeat"})),
        "ungranted": liveness(&run, json!({"path": "/var/run/bot.heartbeat"})),
    }));

    let alive = config.invoke("liveness_file", "kstlib");
    alive.expect("success", None);
    let d = alive.details();
    assert_eq!(d["path"], "/run/bot.heartbeat");
    assert!(
        d["ageMs"]
            .as_i64()
            .is_some_and(|a| (0..30_000).contains(&a)),
        "{}",
        alive.stdout
    );
    assert!(d["pid"].as_u64().is_some_and(|p| p > 0), "{}", alive.stdout);
    assert!(
        d["hostname"].as_str().is_some_and(|h| !h.is_empty()),
        "{}",
        alive.stdout
    );

    let stale = config.invoke("liveness_file", "old_default");
    stale
        .expect("failed", Some("stale"))
        .says("/run/old.heartbeat beat 2m")
        .says("(pid 4242 on worker-1), more than maxAge 30s");
    assert!(
        stale.details()["ageMs"]
            .as_i64()
            .is_some_and(|a| a >= 120_000)
    );
    config
        .invoke("liveness_file", "old_tolerant")
        .expect("success", None);
    config
        .invoke("liveness_file", "naive")
        .expect("success", None);
    config
        .invoke("liveness_file", "missing")
        .expect("failed", Some("missing"))
        .says("/run/gone.heartbeat does not exist");
    config
        .invoke("liveness_file", "garbage")
        .expect("failed", Some("unreadable"))
        .says("/run/garbage.heartbeat: not a liveness file");
    config
        .invoke("liveness_file", "ungranted")
        .expect("failed", Some("unreadable"))
        .says("/var/run/bot.heartbeat is not in a directory granted to this check (grants.dirs: /run)");
}

#[test]
fn liveness_file_watches_a_running_hosts_own_file_on_the_timer() {
    let config = Config::new(json!({}));
    let run = config.root().join("run");
    std::fs::create_dir_all(&run).expect("mkdir");
    let live = run.join("host.liveness.json");
    // The watcher reads the file a (second) host writes every 200 ms.
    let watched = Config::new(json!({"a": {"cadenceMs": 60000}}));
    let mut writer = support::start_on_timer(
        &watched.path,
        "1s",
        &["--liveness-file", utf8(&live), "--liveness-period", "200ms"],
        &[],
    );
    let deadline = Instant::now() + WAIT;
    while !live.exists() {
        assert!(
            Instant::now() < deadline,
            "no liveness file: {}",
            writer.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    config.write(json!({
        "host_alive": liveness(&run, json!({"path": "/run/host.liveness.json", "maxAge": "5s"})),
    }));
    let mut watcher = config.run_on_timer("200ms");
    let lines = watcher.wait_for_event("run_finished", &[("check", "host_alive")], WAIT);
    let first = first_run(&lines, "host_alive");
    assert_eq!(support::field(&first, "status"), Some("success"), "{first}");
    let details = support::details(&first).expect("details");
    assert_eq!(details["path"], "/run/host.liveness.json");
    assert_eq!(details["pid"], writer.pid());
    assert!(
        matches!(details["status"].as_str(), Some("healthy" | "degraded")),
        "the writer's own status is passed on: {details}"
    );

    // The writer stops: its last beat says `stopped`, is still fresh for a
    // few seconds, then ages past maxAge.
    assert!(writer.terminate(WAIT).success());
    let stopped = |l: &[Value]| {
        records(
            l,
            "run_finished",
            &[("check", "host_alive"), ("status", "success")],
        )
        .iter()
        .any(|r| support::details(r).is_some_and(|d| d["status"] == "stopped"))
    };
    watcher.wait_for("a run reading the stopped beat", WAIT, stopped);
    let lines = watcher.wait_for("the stale verdict", WAIT, |l| {
        !records(
            l,
            "run_finished",
            &[("check", "host_alive"), ("status", "failed")],
        )
        .is_empty()
    });
    let stale = records(
        &lines,
        "run_finished",
        &[("check", "host_alive"), ("status", "failed")],
    )[0]
    .clone();
    let error = support::field(&stale, "error").unwrap_or_default();
    assert!(
        error.starts_with("/run/host.liveness.json beat ")
            && error.ends_with(&format!(
                "(pid {} on {}), more than maxAge 5s",
                writer.pid(),
                details["hostname"].as_str().unwrap_or_default()
            )),
        "{stale}"
    );
    assert!(watcher.terminate(WAIT).success());
}

// ---------------------------------------------------------------- rabbitmq_queue

const MANAGEMENT: &str = "http://127.0.0.1:15672";

/// A queue name no other test (or earlier run) uses.
fn unique_queue(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "e2e-builtin-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `curl` against the management API as guest: (status, body).
fn management(method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "curl", "-s", "-u", "guest:guest", "-X", method])
        .args(["-H", "content-type: application/json"])
        .args(["-w", "\n%{http_code}"]);
    if let Some(body) = body {
        cmd.arg("--data-binary").arg(body.to_string());
    }
    let out = cmd
        .arg(format!("{MANAGEMENT}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A queue declared through the management API, deleted on drop.
struct Queue(String);

impl Queue {
    fn declare(what: &str) -> Queue {
        let name = unique_queue(what);
        let (code, body) = management(
            "PUT",
            &format!("/api/queues/%2F/{name}"),
            Some(&json!({"durable": false, "auto_delete": false})),
        );
        assert!(
            code == 201 || code == 204,
            "cannot declare {name} through the management API ({code}: {body}); is the plugin enabled (tests/run.sh)?"
        );
        Queue(name)
    }

    fn publish(&self, n: usize) {
        for i in 0..n {
            let (code, body) = management(
                "POST",
                "/api/exchanges/%2F/amq.default/publish",
                Some(
                    &json!({"properties": {}, "routing_key": self.0, "payload": format!("m{i}"), "payload_encoding": "string"}),
                ),
            );
            assert_eq!(code, 200, "{body}");
            assert!(body.contains("\"routed\":true"), "{body}");
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let _ = management("DELETE", &format!("/api/queues/%2F/{}", self.0), None);
    }
}

/// An AMQP consumer (lapin) with prefetch `prefetch` that never acks: the
/// messages it is sent stay unacknowledged while it is connected.
struct Consumer {
    rt: tokio::runtime::Runtime,
    connection: lapin::Connection,
    /// Kept open: dropping it would cancel the subscription.
    _consumer: lapin::Consumer,
}

impl Consumer {
    fn attach(queue: &str, prefetch: u16) -> Consumer {
        use lapin::options::{BasicConsumeOptions, BasicQosOptions};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (connection, consumer) = rt
            .block_on(async {
                let properties = lapin::ConnectionProperties::default()
                    .with_executor(tokio_executor_trait::Tokio::current())
                    .with_reactor(tokio_reactor_trait::Tokio::current());
                let connection =
                    lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", properties)
                        .await?;
                let channel = connection.create_channel().await?;
                channel
                    .basic_qos(prefetch, BasicQosOptions::default())
                    .await?;
                let consumer = channel
                    .basic_consume(
                        queue,
                        "e2e-builtin-consumer",
                        BasicConsumeOptions::default(),
                        lapin::types::FieldTable::default(),
                    )
                    .await?;
                Ok::<_, lapin::Error>((connection, consumer))
            })
            .expect("attach a consumer");
        Consumer {
            rt,
            connection,
            _consumer: consumer,
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.connection.close(200, "test done"));
    }
}

fn rabbit(queue: &str, meta: Value, secret: Option<&Path>) -> Value {
    let mut meta = meta;
    meta["url"] = json!(MANAGEMENT);
    meta["queue"] = json!(queue);
    let mut grants = json!({"http": [MANAGEMENT]});
    if let Some(file) = secret {
        grants["secrets"] = json!({"MQ_PASSWORD": {"file": utf8(file)}});
    }
    json!({"handler": "rabbitmq_queue", "cadenceMs": 0, "meta": meta, "grants": grants})
}

/// Invokes `check` until `done` holds for its details (the management API
/// refreshes queue statistics every few seconds), bounded by [`WAIT`].
fn invoke_until(config: &Config, check: &str, done: impl Fn(&Value) -> bool) -> Invoked {
    let deadline = Instant::now() + WAIT;
    loop {
        let invoked = config.invoke("rabbitmq_queue", check);
        if done(invoked.details()) {
            return invoked;
        }
        assert!(
            Instant::now() < deadline,
            "{check} never reached the expected numbers: {}",
            invoked.stdout
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn rabbitmq_queue_judges_depth_consumers_and_unacked() {
    // Not while tests/e2e/amqp.rs stops the broker.
    let _broker = crate::support::broker::shared_broker();
    let queue = Queue::declare("depth");
    queue.publish(5);
    let q = queue.0.as_str();
    let config = Config::new(json!({}));
    config.write(json!({
        "depth_ok": rabbit(q, json!({"maxMessages": 5}), None),
        "depth_over": rabbit(q, json!({"maxMessages": 4}), None),
        "consumers": rabbit(q, json!({"minConsumers": 1}), None),
        "unacked_ok": rabbit(q, json!({"maxUnacked": 2}), None),
        "unacked_over": rabbit(q, json!({"maxUnacked": 1}), None),
    }));

    let ok = invoke_until(&config, "depth_ok", |d| d["messages"] == 5);
    ok.expect("success", None);
    let d = ok.details();
    assert_eq!(
        (d["queue"].as_str(), d["vhost"].as_str()),
        (Some(q), Some("/"))
    );
    assert_eq!(
        (d["consumers"].clone(), d["unacked"].clone()),
        (json!(0), json!(0))
    );
    config
        .invoke("rabbitmq_queue", "depth_over")
        .expect("failed", Some("maxMessages"))
        .says(&format!(
            "queue {q:?} holds 5 messages, more than maxMessages 4"
        ));
    config
        .invoke("rabbitmq_queue", "consumers")
        .expect("failed", Some("minConsumers"))
        .says(&format!(
            "queue {q:?} has 0 consumers, fewer than minConsumers 1"
        ));
    config
        .invoke("rabbitmq_queue", "unacked_over")
        .expect("success", None);

    // A consumer that takes two messages and never acknowledges them.
    let consumer = Consumer::attach(q, 2);
    invoke_until(&config, "consumers", |d| d["consumers"] == 1).expect("success", None);
    let held = invoke_until(&config, "unacked_ok", |d| d["unacked"] == 2);
    held.expect("success", None);
    assert_eq!(held.details()["messages"], 5);
    config
        .invoke("rabbitmq_queue", "unacked_over")
        .expect("failed", Some("maxUnacked"))
        .says(&format!(
            "queue {q:?} has 2 unacknowledged messages, more than maxUnacked 1"
        ));
    drop(consumer);
    invoke_until(&config, "consumers", |d| d["consumers"] == 0)
        .expect("failed", Some("minConsumers"));
}

#[test]
fn rabbitmq_queue_names_a_missing_queue_refused_credentials_and_an_ungranted_origin() {
    // Not while tests/e2e/amqp.rs stops the broker.
    let _broker = crate::support::broker::shared_broker();
    let queue = Queue::declare("auth");
    let q = queue.0.as_str();
    let config = Config::new(json!({}));
    let right = config.root().join("right.secret");
    let wrong = config.root().join("wrong.secret");
    std::fs::write(&right, "guest\n").expect("write secret");
    std::fs::write(&wrong, "not-the-password-5f3a\n").expect("write secret");
    let as_guest = json!({"username": "guest", "password": {"secret": "MQ_PASSWORD"}});
    let mut ungranted = rabbit(q, json!({}), None);
    ungranted["grants"] = json!({"http": ["http://127.0.0.1:1"]});
    config.write(json!({
        "secret_ok": rabbit(q, as_guest.clone(), Some(&right)),
        "secret_wrong": rabbit(q, as_guest.clone(), Some(&wrong)),
        "secret_absent": rabbit(q, as_guest, None),
        "missing": rabbit("e2e-builtin-no-such-queue", json!({"maxMessages": 1}), None),
        "ungranted": ungranted,
    }));

    let ok = config.invoke("rabbitmq_queue", "secret_ok");
    ok.expect("success", None);
    assert_eq!(ok.details()["consumers"], 0);
    let wrong_run = config.invoke("rabbitmq_queue", "secret_wrong");
    wrong_run
        .expect("failed", Some("credentials"))
        .says("the management API refused the credentials of user \"guest\" (401)");
    assert!(
        !wrong_run.stdout.contains("not-the-password-5f3a"),
        "the password leaked: {}",
        wrong_run.stdout
    );
    let absent = config.invoke("rabbitmq_queue", "secret_absent");
    assert_eq!(absent.status(), "failed", "{}", absent.stdout);
    assert!(
        absent
            .error()
            .contains("meta.password: secret MQ_PASSWORD is not granted to this check"),
        "{}",
        absent.stdout
    );
    config
        .invoke("rabbitmq_queue", "missing")
        .expect("failed", Some("queue"))
        .says("queue \"e2e-builtin-no-such-queue\" does not exist in vhost \"/\"");
    let refused = config.invoke("rabbitmq_queue", "ungranted");
    refused.expect("failed", Some("api"));
    assert!(
        refused
            .error()
            .contains(&format!("http origin {MANAGEMENT} is not in grants.http")),
        "{}",
        refused.stdout
    );
}

#[test]
fn rabbitmq_queue_runs_on_the_hosts_timer() {
    // Not while tests/e2e/amqp.rs stops the broker.
    let _broker = crate::support::broker::shared_broker();
    let queue = Queue::declare("timer");
    queue.publish(3);
    let config = Config::new(json!({}));
    // Stats arrive every few seconds: wait until the API counts the three.
    config.write(json!({"probe": rabbit(&queue.0, json!({}), None)}));
    invoke_until(&config, "probe", |d| d["messages"] == 3);
    config.write_document(json!({
        "agent": "builtins",
        "maxPerTick": 2,
        "checks": {
            "queue_ok": rabbit(&queue.0, json!({"maxMessages": 3}), None),
            "queue_deep": rabbit(&queue.0, json!({"maxMessages": 2, "minConsumers": 1}), None),
        }
    }));
    let (mut running, lines) = config.run_until_each_ran("300ms", &["queue_ok", "queue_deep"]);
    let ok = first_run(&lines, "queue_ok");
    assert_eq!(support::field(&ok, "status"), Some("success"), "{ok}");
    assert_eq!(support::details(&ok).expect("details")["messages"], 3);
    let deep = first_run(&lines, "queue_deep");
    assert_eq!(support::field(&deep, "status"), Some("failed"), "{deep}");
    assert_eq!(
        support::field(&deep, "error").map(str::to_string),
        Some(format!(
            "queue {:?} holds 3 messages, more than maxMessages 2; queue {:?} has 0 consumers, fewer than minConsumers 1",
            queue.0, queue.0
        ))
    );
    assert!(running.terminate(WAIT).success());
}

/// What a test declared on the broker through the management API, deleted
/// on drop (also the inbox and dead-letter queue the host declares).
struct BrokerObjects {
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl Drop for BrokerObjects {
    fn drop(&mut self) {
        for queue in &self.queues {
            let _ = management("DELETE", &format!("/api/queues/%2F/{queue}"), None);
        }
        for exchange in &self.exchanges {
            let _ = management("DELETE", &format!("/api/exchanges/%2F/{exchange}"), None);
        }
    }
}

/// A host connected to the broker runs the check (on its fallback timer,
/// no bus ticks coming) and publishes the result as
/// `agent.{agent}.check.completed`, details included.
#[test]
fn rabbitmq_queue_result_goes_out_as_check_completed() {
    // Not while tests/e2e/amqp.rs stops the broker.
    let _broker = crate::support::broker::shared_broker();
    let queue = Queue::declare("bus");
    queue.publish(2);
    let agent = unique_queue("agent");
    let exchange = unique_queue("exchange");
    let observer = unique_queue("observer");
    let _cleanup = BrokerObjects {
        queues: vec![
            observer.clone(),
            format!("agent.{agent}.inbox"),
            format!("agent.{agent}.dlq"),
        ],
        exchanges: vec![exchange.clone()],
    };
    let (code, body) = management(
        "PUT",
        &format!("/api/exchanges/%2F/{exchange}"),
        Some(&json!({"type": "topic", "durable": true})),
    );
    assert!(code == 201 || code == 204, "{code}: {body}");
    let (code, body) = management(
        "PUT",
        &format!("/api/queues/%2F/{observer}"),
        Some(&json!({"durable": false})),
    );
    assert!(code == 201 || code == 204, "{code}: {body}");
    let (code, body) = management(
        "POST",
        &format!("/api/bindings/%2F/e/{exchange}/q/{observer}"),
        Some(&json!({"routing_key": format!("agent.{agent}.check.completed")})),
    );
    assert_eq!(code, 201, "{body}");

    let config = Config::new(json!({}));
    config.write_document(json!({
        "agent": agent,
        "checks": {"depth": rabbit(&queue.0, json!({"maxMessages": 1}), None)}
    }));
    let mut running = crate::support::broker::start_connected(
        &config.path,
        &exchange,
        &["--tick-interval", "300ms"],
    );
    // Until the API's statistics count the two messages the check fails
    // with `stats`; every run has its event, the one that counts is kept.
    let deadline = Instant::now() + WAIT;
    let completed = 'found: loop {
        let (code, body) = management(
            "POST",
            &format!("/api/queues/%2F/{observer}/get"),
            Some(&json!({"count": 50, "ackmode": "ack_requeue_false", "encoding": "auto"})),
        );
        assert_eq!(code, 200, "{body}");
        let messages: Vec<Value> = serde_json::from_str(&body).expect("a JSON list");
        for message in messages {
            let envelope: Value = message["payload"]
                .as_str()
                .and_then(|p| serde_json::from_str(p).ok())
                .expect("a JSON envelope");
            if envelope["payload"]["details"]["failed"] == "maxMessages" {
                break 'found envelope;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no check.completed with the queue's depth:\n{}",
            running.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        completed["event_type"],
        format!("agent.{agent}.check.completed")
    );
    let payload = &completed["payload"];
    assert_eq!(payload["check"], "depth");
    assert_eq!(payload["handler"], "rabbitmq_queue");
    assert_eq!(payload["status"], "failed");
    assert_eq!(payload["details"]["messages"], 2);
    assert_eq!(payload["details"]["queue"], queue.0.as_str());
    assert_eq!(
        payload["error"],
        format!(
            "queue {:?} holds 2 messages, more than maxMessages 1",
            queue.0
        )
    );
    assert!(running.terminate(WAIT).success());
}

// ---------------------------------------------------------------- schema fragments

#[test]
fn schema_fragments_agree_with_the_builtins_parsers() {
    use heartbeat_host::core::builtins::validate;
    let cases: &[(&str, Vec<Value>, Vec<Value>)] = &[
        (
            "file_freshness",
            vec![
                json!({"dir": "/backups", "maxAge": "26h"}),
                json!({"dir": "/backups", "glob": "backup-*.tar.gz", "maxAge": "1h30m", "minCount": 2, "minBytes": 100}),
                json!({"dir": "/", "glob": "[!.]*", "maxAge": "7d", "minCount": 0}),
            ],
            vec![
                json!({"maxAge": "26h"}),
                json!({"dir": "/backups"}),
                json!({"dir": "backups", "maxAge": "1h"}),
                json!({"dir": "/backups", "maxAge": "26 hours"}),
                json!({"dir": "/backups", "maxAge": 3600}),
                json!({"dir": "/backups", "maxAge": "1h", "glob": "daily/*.gz"}),
                json!({"dir": "/backups", "maxAge": "1h", "glob": ""}),
                json!({"dir": "/backups", "maxAge": "1h", "minCount": -1}),
                json!({"dir": "/backups", "maxAge": "1h", "minBytes": 1.5}),
                json!({"dir": "/backups", "maxAge": "1h", "max_age": "1h"}),
            ],
        ),
        (
            "liveness_file",
            vec![
                json!({"path": "/run/bot.heartbeat"}),
                json!({"path": "/run/host.liveness.json", "maxAge": "5s"}),
            ],
            vec![
                json!({}),
                json!({"path": "bot.heartbeat"}),
                json!({"path": "/run/"}),
                json!({"path": "/run/x", "maxAge": 30}),
                json!({"path": "/run/x", "maxAge": "30 seconds"}),
                json!({"path": "/run/x", "maxAgeSeconds": 30}),
            ],
        ),
        (
            "rabbitmq_queue",
            vec![
                json!({"url": MANAGEMENT, "queue": "orders"}),
                json!({"url": "https://mq.example/rabbit/", "vhost": "prod", "queue": "orders",
                    "maxMessages": 1000, "minConsumers": 1, "maxUnacked": 50,
                    "username": {"secret": "MQ_USER"}, "password": {"secret": "MQ_PASSWORD"}}),
                json!({"url": MANAGEMENT, "queue": "q", "username": "ops", "password": {"secret": "P"}}),
                json!({"url": MANAGEMENT, "queue": "q", "username": "guest"}),
            ],
            vec![
                json!({"queue": "orders"}),
                json!({"url": MANAGEMENT}),
                json!({"url": "127.0.0.1:15672", "queue": "q"}),
                json!({"url": "http://guest:guest@127.0.0.1:15672", "queue": "q"}),
                json!({"url": MANAGEMENT, "queue": ""}),
                json!({"url": MANAGEMENT, "queue": "q", "vhost": ""}),
                json!({"url": MANAGEMENT, "queue": "q", "maxMessages": -1}),
                json!({"url": MANAGEMENT, "queue": "q", "minConsumers": "1"}),
                json!({"url": MANAGEMENT, "queue": "q", "password": "hunter2"}),
                json!({"url": MANAGEMENT, "queue": "q", "username": "ops"}),
                json!({"url": MANAGEMENT, "queue": "q", "password": {"secret": "bad name"}}),
                json!({"url": MANAGEMENT, "queue": "q", "password": {"secret": "P", "file": "/x"}}),
                json!({"url": MANAGEMENT, "queue": "q", "maxMessage": 5}),
            ],
        ),
    ];
    for (name, good, bad) in cases {
        let validator = crate::schema::fragment(name);
        for meta in good {
            let errors: Vec<String> = validator.iter_errors(meta).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{name}: the schema refuses {meta}: {errors:?}"
            );
            let parsed = validate(name, meta.as_object().expect("object"));
            assert_eq!(parsed, Some(Ok(())), "{name}: the built-in refuses {meta}");
        }
        for meta in bad {
            assert!(
                !validator.is_valid(meta),
                "{name}: the schema accepts {meta}"
            );
            let parsed = validate(name, meta.as_object().expect("object"));
            assert!(
                matches!(parsed, Some(Err(_))),
                "{name}: the built-in accepts {meta}"
            );
        }
    }
}
