//! The built-in probes, `http_probe` and `tcp_probe`, against real servers
//! on 127.0.0.1 started by each test: the HTTP [`TestServer`] and a
//! `std::net::TcpListener` thread that answers `+PONG\r\n` to `PING\r\n`.
//!
//! Most cases run one check through `heartbeat-host invoke --config
//! --check` (one process, one run, JSON out); one test per probe runs the
//! host on its own timer and reads the `run_finished` result records of
//! its JSON log. A bad `meta` is refused by `heartbeat-host check` at the
//! line and column of the bad value. The last tests hold the schema
//! fragments `schemas/checks/{http_probe,tcp_probe}.json` against the same
//! good and bad metas as the host's parser.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::http_server::{BEARER_TOKEN, HEALTH_JSON, TestServer};
use crate::support::languages::{Finished, run_bounded};
use crate::support::{self, RunningHost, details, records, render, write_config};

/// The agent of every config here.
const AGENT: &str = "e2e";

/// Bound on every command and wait: the first run of a built-in compiles
/// it (into the shared cache), on 2 busy cores.
const WAIT: Duration = Duration::from_secs(180);

/// The compiled-code cache all the probes' commands share, so that each
/// built-in is compiled once per test run.
fn cache_home() -> &'static Path {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE
        .get_or_init(|| tempfile::tempdir().expect("cache dir"))
        .path()
}

/// The host on `config`, ticking every 200 ms, with the shared cache.
fn start_with_shared_cache(config: &Path) -> RunningHost {
    support::start_on_timer(
        config,
        "200ms",
        &[],
        &[("XDG_CACHE_HOME", path_str(cache_home()))],
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// What one `invoke` printed, parsed, and the command's output.
struct Invoked {
    json: Value,
    finished: Finished,
}

impl Invoked {
    fn status(&self) -> &str {
        self.json["status"].as_str().unwrap_or_default()
    }

    fn details(&self) -> &Value {
        &self.json["details"]
    }

    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }
}

/// Runs check `check` of `config` once with `heartbeat-host invoke`.
fn invoke(handler: &str, config: &Path, check: &str) -> Invoked {
    let mut cmd = Command::new(crate::support::host_bin());
    cmd.args([
        "invoke",
        handler,
        "--config",
        path_str(config),
        "--check",
        check,
    ])
    .env("XDG_CACHE_HOME", cache_home())
    .env_remove("HEARTBEAT_CACHE_DIR")
    .env_remove("HANDLERS_DIR")
    .env_remove("AGENT_NAME")
    .env("LOG_LEVEL", "warn");
    let finished = run_bounded(&mut cmd, "heartbeat-host invoke", WAIT);
    let json = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("invoke printed no JSON ({e}):\n{}", finished.log()));
    Invoked { json, finished }
}

/// Runs `heartbeat-host check` on `config`.
fn check(config: &Path) -> Finished {
    let mut cmd = Command::new(crate::support::host_bin());
    cmd.args(["check", "--config", path_str(config)])
        .env("LOG_LEVEL", "warn")
        .env_remove("HANDLERS_DIR");
    run_bounded(&mut cmd, "heartbeat-host check", WAIT)
}

/// What a case expects: success, or failure of this expectation with an
/// error that starts with this text.
type Expected = Result<(), (&'static str, &'static str)>;

/// Runs each `(name, check)` as its own check of one config through
/// `invoke` with `handler`, and holds each run to its expectation; the
/// runs, by name.
fn run_cases(
    handler: &str,
    checks: Vec<(&'static str, Value, Expected)>,
) -> Vec<(&'static str, Invoked)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let all: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, check, _)| (name.to_string(), check.clone()))
        .collect();
    let config = write_config(dir.path(), AGENT, Value::Object(all));
    let mut runs = Vec::new();
    let mut wrong = Vec::new();
    for (name, _, expected) in checks {
        let run = invoke(handler, &config, name);
        let details = run.details();
        let got_ok = run.status() == "success" && details.get("failed").is_none();
        let agrees = match expected {
            Ok(()) => got_ok,
            Err((failed, error)) => {
                run.status() == "failed"
                    && details["failed"] == failed
                    && details["error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with(error))
                    && run.error().starts_with(error)
            }
        };
        if !agrees {
            wrong.push(format!(
                "{name}: expected {expected:?}, got {}\n{}",
                run.json, run.finished.stderr
            ));
        }
        runs.push((name, run));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    runs
}

/// An `http_probe` check of `server`, its origin granted.
fn http_check(server: &TestServer, meta: Value) -> Value {
    json!({
        "handler": "http_probe",
        "timeoutMs": 10000,
        "grants": {"http": [server.origin()]},
        "meta": meta,
    })
}

#[test]
fn http_probe_judges_the_status_exactly_by_list_and_by_class() {
    let server = TestServer::start();
    let url = |path: &str| server.url(path);
    let runs = run_cases(
        "http_probe",
        vec![
            (
                "exact_ok",
                http_check(
                    &server,
                    json!({"url": url("/status/204"), "expectStatus": 204}),
                ),
                Ok(()),
            ),
            (
                "exact_bad",
                http_check(&server, json!({"url": url("/ok"), "expectStatus": 204})),
                Err(("expectStatus", "status 200 is not in 204")),
            ),
            (
                "list_ok",
                http_check(
                    &server,
                    json!({"url": url("/status/204"), "expectStatus": [200, 204]}),
                ),
                Ok(()),
            ),
            (
                "list_bad",
                http_check(
                    &server,
                    json!({"url": url("/status/500"), "expectStatus": [200, 204, "3xx"]}),
                ),
                Err(("expectStatus", "status 500 is not in [200, 204, 3xx]")),
            ),
            (
                "class_default_ok",
                http_check(&server, json!({"url": url("/ok")})),
                Ok(()),
            ),
            (
                "class_default_bad",
                http_check(&server, json!({"url": url("/status/503")})),
                Err(("expectStatus", "status 503 is not in 2xx")),
            ),
            (
                "class_4xx_ok",
                http_check(
                    &server,
                    json!({"url": url("/status/404"), "expectStatus": "4xx"}),
                ),
                Ok(()),
            ),
        ],
    );
    let (_, ok) = &runs[0];
    let d = ok.details();
    assert_eq!(d["url"], url("/status/204"), "{d}");
    assert_eq!(d["method"], "GET", "{d}");
    assert_eq!(d["status"], 204, "{d}");
    // A 204 has no body, whatever the server wrote after its head.
    assert_eq!(d["bytes"], 0, "{d}");
    assert!(d["latencyMs"].is_u64(), "{d}");
    let d = runs[1].1.details();
    assert_eq!(
        (&d["status"], &d["bytes"]),
        (&json!(200), &json!(26)),
        "{d}"
    );
    assert_eq!(server.requests().len(), 7, "{:?}", server.requests());
}

#[test]
fn http_probe_looks_for_a_substring_or_a_regex_in_the_body() {
    let server = TestServer::start();
    let ok = server.url("/ok");
    let runs = run_cases(
        "http_probe",
        vec![
            (
                "substring_ok",
                http_check(&server, json!({"url": ok, "expectBody": "from the test"})),
                Ok(()),
            ),
            (
                "substring_bad",
                http_check(&server, json!({"url": ok, "expectBody": "goodbye"})),
                Err(("expectBody", "body does not contain \"goodbye\"")),
            ),
            (
                "regex_ok",
                http_check(
                    &server,
                    json!({"url": ok, "expectBody": {"regex": "^hello .+ server$"}}),
                ),
                Ok(()),
            ),
            (
                "regex_bad",
                http_check(
                    &server,
                    json!({"url": ok, "expectBody": {"regex": "^goodbye"}}),
                ),
                Err(("expectBody", "body does not match \"^goodbye\"")),
            ),
        ],
    );
    // A failed body expectation quotes the start of the body.
    assert_eq!(
        runs[1].1.details()["bodyStart"],
        "hello from the test server",
        "{}",
        runs[1].1.json
    );
}

#[test]
fn http_probe_holds_json_pointer_conditions_for_every_operator() {
    let server = TestServer::start();
    let url = server.url("/health.json");
    let case = |name, conditions: Value, expected| {
        (
            name,
            http_check(&server, json!({"url": url, "expectJson": conditions})),
            expected,
        )
    };
    let runs = run_cases(
        "http_probe",
        vec![
            case(
                "plain_eq_ok",
                json!({"/status": "ok", "/tags": ["a", "b"]}),
                Ok(()),
            ),
            case(
                "plain_eq_bad",
                json!({"/status": "degraded"}),
                Err(("expectJson", "/status is \"ok\", expected \"degraded\"")),
            ),
            case("eq_ok", json!({"/queue/max": {"eq": 1000.0}}), Ok(())),
            case(
                "eq_bad",
                json!({"/queue/max": {"eq": 500}}),
                Err(("expectJson", "/queue/max is 1000, expected 500")),
            ),
            case("ne_ok", json!({"/status": {"ne": "down"}}), Ok(())),
            case(
                "ne_bad",
                json!({"/status": {"ne": "ok"}}),
                Err((
                    "expectJson",
                    "/status is \"ok\", expected anything but \"ok\"",
                )),
            ),
            case("lt_ok", json!({"/queue/depth": {"lt": 1000}}), Ok(())),
            case(
                "lt_bad",
                json!({"/queue/depth": {"lt": 2}}),
                Err(("expectJson", "/queue/depth is 3, expected < 2")),
            ),
            case("le_ok", json!({"/queue/depth": {"le": 3}}), Ok(())),
            case(
                "le_bad",
                json!({"/queue/depth": {"le": 2.5}}),
                Err(("expectJson", "/queue/depth is 3, expected <= 2.5")),
            ),
            case("gt_ok", json!({"/uptime": {"gt": 12}}), Ok(())),
            case(
                "gt_bad",
                json!({"/uptime": {"gt": 12.5}}),
                Err(("expectJson", "/uptime is 12.5, expected > 12.5")),
            ),
            case("ge_ok", json!({"/uptime": {"ge": 12.5}}), Ok(())),
            case(
                "ge_bad",
                json!({"/status": {"ge": 1}}),
                Err(("expectJson", "/status is \"ok\", expected a number >= 1")),
            ),
            case(
                "exists_ok",
                json!({"/queue": {"exists": true}, "/gone": {"exists": false}}),
                Ok(()),
            ),
            case(
                "exists_bad",
                json!({"/queue/lag": {"exists": true}}),
                Err(("expectJson", "/queue/lag is missing, expected it to exist")),
            ),
            case(
                "matches_ok",
                json!({"/version": {"matches": "^2\\.\\d+\\.\\d+$"}}),
                Ok(()),
            ),
            case(
                "matches_bad",
                json!({"/version": {"matches": "^3\\."}}),
                Err((
                    "expectJson",
                    "/version is \"2.4.1\", expected a match of \"^3\\\\.\"",
                )),
            ),
            (
                "not_json",
                http_check(
                    &server,
                    json!({"url": server.url("/ok"), "expectJson": {"/status": "ok"}}),
                ),
                Err(("expectJson", "body is not JSON: ")),
            ),
        ],
    );
    let (_, bad) = &runs[7];
    assert_eq!(bad.details()["bodyStart"], HEALTH_JSON, "{}", bad.json);
}

#[test]
fn http_probe_fails_a_slow_answer_and_cuts_off_one_that_never_comes() {
    let server = TestServer::start();
    let runs = run_cases(
        "http_probe",
        vec![
            (
                "fast_enough",
                http_check(
                    &server,
                    json!({"url": server.url("/ok"), "maxLatencyMs": 5000}),
                ),
                Ok(()),
            ),
            (
                "too_slow",
                http_check(
                    &server,
                    json!({"url": server.url("/slow/400"), "maxLatencyMs": 100}),
                ),
                Err(("maxLatencyMs", "latency ")),
            ),
            (
                "never_answers",
                http_check(
                    &server,
                    json!({"url": server.url("/hang"), "timeoutMs": 300}),
                ),
                Err(("request", "")),
            ),
        ],
    );
    let slow = runs[1].1.details();
    let latency = slow["latencyMs"].as_u64().expect("latencyMs");
    assert!(latency >= 400, "{slow}");
    assert_eq!(
        slow["error"],
        format!("latency {latency} ms over maxLatencyMs 100"),
        "{slow}"
    );
    let hang = runs[2].1.details();
    assert!(
        hang["error"]
            .as_str()
            .is_some_and(|e| e.contains("ConnectionReadTimeout") || e.contains("timeout")),
        "{hang}"
    );
    let took = hang["latencyMs"].as_u64().expect("latencyMs");
    assert!((300..5000).contains(&took), "{hang}");
}

#[test]
fn http_probe_sends_its_method_and_body_and_follows_redirects_only_when_told() {
    let server = TestServer::start();
    let home = server.url(&format!("/redirect?to={}", server.url("/ok")));
    run_cases(
        "http_probe",
        vec![
            (
                "post",
                http_check(
                    &server,
                    json!({"url": server.url("/echo"), "method": "POST", "body": "ping!",
                           "expectBody": "received 5 bytes"}),
                ),
                Ok(()),
            ),
            (
                "redirect_not_followed",
                http_check(&server, json!({"url": home})),
                Err(("expectStatus", "status 302 is not in 2xx")),
            ),
            (
                "redirect_followed",
                http_check(
                    &server,
                    json!({"url": home, "followRedirects": true, "expectBody": "hello"}),
                ),
                Ok(()),
            ),
        ],
    );
    let requests = server.requests();
    assert_eq!(
        requests.iter().filter(|r| *r == "POST /echo").count(),
        1,
        "{requests:?}"
    );
    assert_eq!(
        requests.iter().filter(|r| *r == "GET /ok").count(),
        1,
        "{requests:?}"
    );
}

#[test]
fn http_probe_to_an_origin_not_granted_is_refused_and_the_server_sees_nothing() {
    let granted = TestServer::start();
    let other = TestServer::start();
    let runs = run_cases(
        "http_probe",
        vec![(
            "elsewhere",
            http_check(&granted, json!({"url": other.url("/ok")})),
            Err(("request", "")),
        )],
    );
    let run = &runs[0].1;
    assert!(
        run.details()["error"]
            .as_str()
            .is_some_and(|e| e.contains("request denied by the host")),
        "{}",
        run.json
    );
    assert!(
        run.error().ends_with(&format!(
            "refused by the host: http origin {} is not in grants.http",
            other.origin()
        )),
        "{}",
        run.json
    );
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert!(granted.requests().is_empty(), "{:?}", granted.requests());
}

/// A bad `meta` of `handler`, written on line 5 of the config as
/// `      "meta": <meta>`, is refused by `check` at `column` of that line,
/// with `message`; `invoke` fails the run with the same words.
fn assert_refused_at(handler: &str, meta: &str, column: usize, field: &str, message: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    let text = format!(
        "{{\n  \"checks\": {{\n    \"probe\": {{\n      \"handler\": \"{handler}\",\n      \"meta\": {meta}\n    }}\n  }}\n}}\n"
    );
    std::fs::write(&config, &text).expect("write config");
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1), "{}", out.log());
    let want = format!(
        "{}:5:{column}: checks.probe.meta.{field}: {message}",
        config.display()
    );
    assert!(out.stdout.contains(&want), "want {want}\n{}", out.log());
    let run = invoke(handler, &config, "probe");
    assert_eq!(run.status(), "failed", "{}", run.json);
    assert_eq!(
        run.error(),
        format!("meta.{field}: {message}"),
        "{}",
        run.json
    );
}

#[test]
fn http_probe_bad_meta_is_refused_by_check_at_its_line_and_column() {
    // `      "meta": ` is 14 characters: the object starts at column 15.
    let meta = r#"{"url": "http://127.0.0.1:9/", "expectStatus": [200, 700]}"#;
    let column = 15 + meta.find("700").expect("700");
    assert_eq!(column, 68);
    assert_refused_at(
        "http_probe",
        meta,
        column,
        "expectStatus[1]",
        "expected a status code (100–599) or a class such as \"2xx\", found 700",
    );
    let meta = r#"{"url": "http://127.0.0.1:9/", "expectJson": {"/queue/depth": {"lt": "1000"}}}"#;
    assert_refused_at(
        "http_probe",
        meta,
        15 + meta.find(r#""1000""#).expect("1000"),
        "expectJson./queue/depth.lt",
        "expected a number, found \"1000\"",
    );
}

#[test]
fn http_probe_header_from_a_secret_reaches_the_server_and_never_the_logs() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), format!("{BEARER_TOKEN}\n")).expect("secret");
    let auth = |secret: &str| {
        json!({
            "handler": "http_probe",
            "cadenceMs": 3_600_000,
            "timeoutMs": 10000,
            "grants": {"http": [server.origin()], "secrets": {"API_TOKEN": {"file": "token"}}},
            "meta": {"url": server.url("/auth"), "expectStatus": 200, "expectBody": "authorized",
                     "headers": {"Authorization": {"secret": secret, "prefix": "Bearer "}}},
        })
    };
    let config = write_config(
        dir.path(),
        AGENT,
        json!({"authorized": auth("API_TOKEN"), "ungranted": auth("OTHER_TOKEN")}),
    );
    let mut host = start_with_shared_cache(&config);
    let lines = host.wait_for("both checks' runs", WAIT, |l| {
        ["authorized", "ungranted"]
            .iter()
            .all(|c| !records(l, "run_finished", &[("check", c)]).is_empty())
    });
    assert!(host.terminate(WAIT).success(), "{}", render(&lines));
    let finished = |check: &str| records(&lines, "run_finished", &[("check", check)])[0].clone();
    let authorized = finished("authorized");
    assert_eq!(authorized["status"], "success", "{}", render(&lines));
    let d = details(&authorized).expect("details");
    assert_eq!(d["status"], 200, "{d}");
    assert_eq!(d["url"], server.url("/auth"), "{d}");
    let ungranted = finished("ungranted");
    assert_eq!(ungranted["status"], "failed", "{}", render(&lines));
    let log = render(&lines);
    assert!(
        log.contains(
            "meta.headers.Authorization: secret \\\"OTHER_TOKEN\\\" is not granted to this check (grants.secrets)"
        ) || log.contains(
            "meta.headers.Authorization: secret \"OTHER_TOKEN\" is not granted to this check (grants.secrets)"
        ),
        "{log}"
    );
    // The server saw the token (it answered 200 once), no log line did.
    assert_eq!(server.requests(), ["GET /auth"]);
    assert!(!log.contains(BEARER_TOKEN), "{log}");
    let state = std::fs::read_to_string(dir.path().join("heartbeat.state.json")).expect("state");
    assert!(!state.contains(BEARER_TOKEN), "{state}");
    // invoke prints the same run without the token too.
    let run = invoke("http_probe", &config, "authorized");
    assert_eq!(run.status(), "success", "{}", run.json);
    assert!(
        !run.finished.stdout.contains(BEARER_TOKEN) && !run.finished.stderr.contains(BEARER_TOKEN),
        "{}",
        run.finished.log()
    );
}

/// A TCP server on 127.0.0.1 for `tcp_probe`: it writes `banner` (if any)
/// on accepting, then answers line by line: `PING` → `+PONG`, `SLOW` →
/// `+PONG` after 400 ms, anything else `-ERR unknown command`; with
/// `close_after_banner` it closes right after the banner.
struct TcpServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl TcpServer {
    fn start(banner: Option<&'static str>, close_after_banner: bool) -> TcpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut writer = match stream.try_clone() {
                        Ok(w) => w,
                        Err(_) => return,
                    };
                    if let Some(banner) = banner
                        && writer.write_all(banner.as_bytes()).is_err()
                    {
                        return;
                    }
                    if close_after_banner {
                        return;
                    }
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let answer = match line.trim_end() {
                            "PING" => "+PONG\r\n",
                            "SLOW" => {
                                std::thread::sleep(Duration::from_millis(400));
                                "+PONG\r\n"
                            }
                            _ => "-ERR unknown command\r\n",
                        };
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TcpServer { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A `tcp_probe` check of `address`, `grant` in its `grants.net`.
fn tcp_check(grant: &str, meta: Value) -> Value {
    json!({
        "handler": "tcp_probe",
        "timeoutMs": 10000,
        "grants": {"net": [grant]},
        "meta": meta,
    })
}

#[test]
fn tcp_probe_connects_sends_and_finds_the_answer_or_says_what_it_read() {
    let server = TcpServer::start(None, false);
    let banner = TcpServer::start(Some("+OK ready\r\n"), false);
    let closing = TcpServer::start(Some("-ERR busy\r\n"), true);
    let (a, b, c) = (
        server.addr.to_string(),
        banner.addr.to_string(),
        closing.addr.to_string(),
    );
    let runs = run_cases(
        "tcp_probe",
        vec![
            ("connect", tcp_check(&a, json!({"address": a})), Ok(())),
            (
                "ping",
                tcp_check(
                    &a,
                    json!({"address": a, "send": "PING\r\n", "expect": "+PONG"}),
                ),
                Ok(()),
            ),
            (
                "banner",
                tcp_check(
                    &b,
                    json!({"address": b, "expect": "+OK", "timeoutMs": 2000}),
                ),
                Ok(()),
            ),
            (
                "mismatch_open",
                tcp_check(
                    &a,
                    json!({"address": a, "send": "HELLO\r\n", "expect": "+PONG", "timeoutMs": 500}),
                ),
                Err((
                    "expect",
                    "expected \"+PONG\" before the read timed out; read 22 bytes",
                )),
            ),
            (
                "mismatch_closed",
                tcp_check(&c, json!({"address": c, "expect": "+OK"})),
                Err((
                    "expect",
                    "expected \"+OK\" before the connection closed; read 11 bytes",
                )),
            ),
            (
                "too_slow",
                tcp_check(
                    &a,
                    json!({"address": a, "send": "SLOW\r\n", "expect": "+PONG", "maxLatencyMs": 100}),
                ),
                Err(("maxLatencyMs", "latency ")),
            ),
        ],
    );
    let ping = runs[1].1.details();
    assert_eq!(ping["address"], a, "{ping}");
    assert_eq!(ping["bytesRead"], 7, "{ping}");
    assert!(
        ping["connectMs"].is_u64() && ping["latencyMs"].is_u64(),
        "{ping}"
    );
    assert_eq!(runs[0].1.details()["bytesRead"], 0);
    let open = runs[3].1.details();
    assert_eq!(open["readStart"], "-ERR unknown command\r\n", "{open}");
    // The read was bounded by timeoutMs (500 ms), not by the run's 10 s.
    let waited = open["latencyMs"].as_u64().expect("latencyMs");
    assert!((500..5000).contains(&waited), "{open}");
    let slow = runs[5].1.details();
    let latency = slow["latencyMs"].as_u64().expect("latencyMs");
    assert!(latency >= 400, "{slow}");
    assert_eq!(
        slow["error"],
        format!("latency {latency} ms over maxLatencyMs 100")
    );
    assert_eq!(server.accepted(), 4);
    assert_eq!(banner.accepted(), 1);
}

#[test]
fn tcp_probe_fails_on_a_closed_port_and_is_refused_an_address_not_granted() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    let server = TcpServer::start(None, false);
    let open = server.addr.to_string();
    let runs = run_cases(
        "tcp_probe",
        vec![
            (
                "closed",
                tcp_check(&closed, json!({"address": closed, "timeoutMs": 2000})),
                Err(("connect", "cannot connect to ")),
            ),
            (
                "not_granted",
                tcp_check(&closed, json!({"address": open, "send": "PING\r\n"})),
                Err(("connect", "cannot connect to ")),
            ),
        ],
    );
    let refused = &runs[0].1;
    assert!(
        refused.details()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with(&format!("cannot connect to {closed}: "))),
        "{}",
        refused.json
    );
    let denied = &runs[1].1;
    assert!(
        denied.error().ends_with(&format!(
            "refused by the host: socket peer {open} is not in grants.net"
        )),
        "{}",
        denied.json
    );
    assert_eq!(server.accepted(), 0, "the server saw a connection");
}

#[test]
fn tcp_probe_bad_meta_is_refused_by_check_at_its_line_and_column() {
    let meta = r#"{"address": "::1:6379", "expect": "+PONG"}"#;
    assert_refused_at(
        "tcp_probe",
        meta,
        15 + meta.find(r#""::1"#).expect("address"),
        "address",
        "expected an address host:port (a name, an IPv4 address, or an IPv6 address in brackets as [::1]:6379; port 1–65535), found \"::1:6379\"",
    );
    let meta = r#"{"address": "127.0.0.1:6379", "timeoutMs": "2s"}"#;
    assert_refused_at(
        "tcp_probe",
        meta,
        15 + meta.find(r#""2s""#).expect("2s"),
        "timeoutMs",
        "expected a non-negative integer, found \"2s\"",
    );
}

#[test]
fn tcp_probe_on_the_hosts_timer_reports_its_result() {
    let server = TcpServer::start(None, false);
    let addr = server.addr.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut check = tcp_check(
        &addr,
        json!({"address": addr, "send": "PING\r\n", "expect": "+PONG"}),
    );
    check["cadenceMs"] = json!(3_600_000);
    let config = write_config(dir.path(), AGENT, json!({"redis": check}));
    let mut host = start_with_shared_cache(&config);
    let lines = host.wait_for("the probe's run", WAIT, |l| {
        !records(l, "run_finished", &[("check", "redis")]).is_empty()
    });
    assert!(host.terminate(WAIT).success(), "{}", render(&lines));
    let run = records(&lines, "run_finished", &[("check", "redis")])[0].clone();
    assert_eq!(run["status"], "success", "{}", render(&lines));
    assert_eq!(run["handler"], "tcp_probe", "{run}");
    let d = details(&run).expect("details");
    assert_eq!(d["address"], addr, "{d}");
    assert_eq!(d["bytesRead"], 7, "{d}");
    assert_eq!(server.accepted(), 1);
}

// --- The schema fragments against the host's parser.

/// Good `meta`s of `http_probe`.
fn good_http_metas() -> Vec<Value> {
    vec![
        json!({"url": "http://127.0.0.1:8080/ok"}),
        json!({"url": "https://api.example.com/health?x=1", "method": "head"}),
        json!({"url": "http://h/", "method": "POST", "body": "{}", "expectStatus": [200, "3xx"],
               "headers": {"X-Trace": "1", "Authorization": {"secret": "API_TOKEN", "prefix": "Bearer "},
                           "X-Key": {"secret": "KEY"}}}),
        json!({"url": "http://h/", "expectStatus": 204, "expectBody": "ok", "maxLatencyMs": 500,
               "timeoutMs": 2000, "followRedirects": true}),
        json!({"url": "http://h/", "expectStatus": "5XX", "expectBody": {"regex": "^v\\d"}}),
        json!({"url": "http://h/", "expectJson": {"/status": "ok", "/queue/depth": {"lt": 1000, "ge": 0},
               "/a~1b": {"exists": false}, "/v": {"matches": "^2"}, "/o": {"eq": {}}, "/n": null,
               "/x": {"ne": [1]}, "/y": {"le": 1.5, "gt": -2}}}),
    ]
}

/// Bad `meta`s of `http_probe` and the field the host blames.
fn bad_http_metas() -> Vec<(Value, &'static str)> {
    let url = "http://h/";
    vec![
        (json!({}), "url"),
        (json!({"url": ""}), "url"),
        (json!({"url": "ftp://h/"}), "url"),
        (json!({"url": "http://"}), "url"),
        (json!({"url": "http://user@h/"}), "url"),
        (json!({"url": url, "method": "FETCH"}), "method"),
        (
            json!({"url": url, "expectStatus": [200, 700]}),
            "expectStatus[1]",
        ),
        (json!({"url": url, "expectStatus": "2xy"}), "expectStatus"),
        (json!({"url": url, "expectStatus": 99}), "expectStatus"),
        (json!({"url": url, "expectStatus": []}), "expectStatus"),
        (json!({"url": url, "expectBody": ""}), "expectBody"),
        (json!({"url": url, "expectBody": 3}), "expectBody"),
        (
            json!({"url": url, "expectBody": {"regex": "x", "flags": "i"}}),
            "expectBody.flags",
        ),
        (json!({"url": url, "expectJson": {}}), "expectJson"),
        (
            json!({"url": url, "expectJson": {"status": "ok"}}),
            "expectJson.status",
        ),
        (
            json!({"url": url, "expectJson": {"/a~2": 1}}),
            "expectJson./a~2",
        ),
        (
            json!({"url": url, "expectJson": {"/q": {"lt": "1000"}}}),
            "expectJson./q.lt",
        ),
        (
            json!({"url": url, "expectJson": {"/q": {"below": 1}}}),
            "expectJson./q.below",
        ),
        (
            json!({"url": url, "expectJson": {"/q": {"exists": 1}}}),
            "expectJson./q.exists",
        ),
        (
            json!({"url": url, "expectJson": {"/q": {}}}),
            "expectJson./q",
        ),
        (json!({"url": url, "headers": {"X": 1}}), "headers.X"),
        (
            json!({"url": url, "headers": {"Bad Name": "x"}}),
            "headers.Bad Name",
        ),
        (
            json!({"url": url, "headers": {"Host": "x"}}),
            "headers.Host",
        ),
        (json!({"url": url, "headers": {"A": "x\r\ny"}}), "headers.A"),
        (
            json!({"url": url, "headers": {"A": {"secret": ""}}}),
            "headers.A.secret",
        ),
        (
            json!({"url": url, "headers": {"A": {"prefix": "Bearer "}}}),
            "headers.A.secret",
        ),
        (
            json!({"url": url, "headers": {"A": {"secret": "T", "suffix": "x"}}}),
            "headers.A.suffix",
        ),
        (json!({"url": url, "maxLatencyMs": 0}), "maxLatencyMs"),
        (json!({"url": url, "timeoutMs": "2s"}), "timeoutMs"),
        (
            json!({"url": url, "followRedirects": "yes"}),
            "followRedirects",
        ),
        (json!({"url": url, "maxLatncyMs": 5}), "maxLatncyMs"),
    ]
}

/// Good `meta`s of `tcp_probe`.
fn good_tcp_metas() -> Vec<Value> {
    vec![
        json!({"address": "127.0.0.1:6379"}),
        json!({"address": "db.internal:5432", "timeoutMs": 1000, "maxLatencyMs": 50}),
        json!({"address": "[::1]:6379", "send": "PING\r\n", "expect": "+PONG"}),
        json!({"address": "localhost:65535", "expect": "220 "}),
    ]
}

/// Bad `meta`s of `tcp_probe` and the field the host blames.
fn bad_tcp_metas() -> Vec<(Value, &'static str)> {
    vec![
        (json!({}), "address"),
        (json!({"address": 6379}), "address"),
        (json!({"address": "localhost"}), "address"),
        (json!({"address": "::1:6379"}), "address"),
        (json!({"address": "host:0"}), "address"),
        (json!({"address": "host:65536"}), "address"),
        (json!({"address": "-bad.example:80"}), "address"),
        (json!({"address": "[::1]6379"}), "address"),
        (json!({"address": "h:1", "send": ""}), "send"),
        (json!({"address": "h:1", "expect": 5}), "expect"),
        (json!({"address": "h:1", "timeoutMs": 0}), "timeoutMs"),
        (
            json!({"address": "h:1", "maxLatencyMs": -1}),
            "maxLatencyMs",
        ),
        (json!({"address": "h:1", "expected": "x"}), "expected"),
    ]
}

/// The fragment and the host's parser accept the good metas and refuse
/// the bad ones; for a bad one, the schema points at the field the host
/// blames, or at an object above it.
fn assert_fragment_agrees(name: &str, good: Vec<Value>, bad: Vec<(Value, &'static str)>) {
    let validator = crate::schema::fragment(name);
    let host = |meta: &Value| {
        let object = meta.as_object().expect("an object");
        heartbeat_host::core::builtins::validate(name, object).expect("a validated built-in")
    };
    let mut wrong = Vec::new();
    for meta in &good {
        let errors: Vec<String> = validator.iter_errors(meta).map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            wrong.push(format!("{meta}: the schema refuses it: {errors:?}"));
        }
        if let Err(e) = host(meta) {
            wrong.push(format!("{meta}: the host refuses it: {e}"));
        }
    }
    for (meta, field) in &bad {
        let pointers: Vec<String> = validator
            .iter_errors(meta)
            .map(|e| e.instance_path().as_str().to_string())
            .collect();
        match host(meta) {
            Ok(()) => wrong.push(format!("{meta}: the host accepts it")),
            Err(e) if e.path != *field => {
                wrong.push(format!(
                    "{meta}: the host blames {:?}, not {field:?}",
                    e.path
                ));
            }
            Err(_) => {}
        }
        // `expectStatus[1]` → /expectStatus/1; keys with a `/` (JSON
        // pointers of expectJson) are escaped as `~1` by the schema.
        let top = field.split(['.', '[']).next().unwrap_or_default();
        if pointers.is_empty() {
            wrong.push(format!("{meta}: the schema accepts it"));
        } else if !pointers
            .iter()
            .any(|p| p.is_empty() || p.starts_with(&format!("/{top}")))
        {
            wrong.push(format!(
                "{meta}: the schema points at {pointers:?}, the host at {field}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_http_probe_fragment_agrees_with_the_host_on_good_and_bad_metas() {
    assert_fragment_agrees("http_probe", good_http_metas(), bad_http_metas());
}

#[test]
fn the_tcp_probe_fragment_agrees_with_the_host_on_good_and_bad_metas() {
    assert_fragment_agrees("tcp_probe", good_tcp_metas(), bad_tcp_metas());
}

#[test]
fn a_regex_that_does_not_compile_is_refused_by_the_host_only() {
    // Pinned: JSON Schema cannot say whether a pattern compiles (and
    // ECMA-262 regexes are not Rust's), so here the host is stricter.
    let validator = crate::schema::fragment("http_probe");
    let meta = json!({"url": "http://h/", "expectBody": {"regex": "("}});
    assert!(validator.is_valid(&meta));
    let e =
        heartbeat_host::core::builtins::validate("http_probe", meta.as_object().expect("object"))
            .expect("validated")
            .expect_err("bad regex");
    assert_eq!(e.path, "expectBody.regex");
    assert!(
        e.message
            .starts_with("expected a regular expression, found \"(\""),
        "{e}"
    );
}
