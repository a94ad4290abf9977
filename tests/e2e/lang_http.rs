//! `grants.http` and `grants.env` from handlers in every language: the
//! cookbook's `http_get` recipe (`examples/cookbook/<lang>/`, built by its
//! build script: Python over `heartbeat_http.py`, JavaScript over
//! `fetch()`, C over `heartbeat_http.c`, Rust over `handler_sdk::http`)
//! against a real HTTP server on 127.0.0.1.
//!
//! Per language: a granted request succeeds and its body reaches the
//! details; a granted variable is visible and an ungranted one is not; an
//! origin not granted fails inside the guest and the run's reason names
//! it; a redirect from a granted origin to another is refused at the hop; a
//! body over `maxHttpBytes` is cut off; a server that never answers is cut
//! off at `timeoutMs`, in `invoke` and in a running host that goes on
//! running the next check.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::http_server::TestServer;
use crate::support::languages::{cookbook_recipe, invoke_with_env};
use crate::support::{is, records, render, start_on_timer, write_json};

/// What each language's guest says for a refused origin and for a body
/// over the cap (the host adds the refused origin to the reason itself),
/// and, for the clients with a deadline of their own (the recipe gives
/// 5000 ms), when it passes.
struct Said {
    lang: &'static str,
    denied: &'static str,
    too_big: &'static str,
    own_timeout: Option<&'static str>,
}

const PYTHON: Said = Said {
    lang: "python",
    denied: "HTTP-request-denied",
    too_big: "HTTP-response-body-size",
    own_timeout: Some("HTTP-response-timeout"),
};
const JAVASCRIPT: Said = Said {
    lang: "javascript",
    // componentize-js 0.23's fetch() rejects with a TypeError that keeps
    // no WASI code.
    denied: "NetworkError when attempting to fetch resource",
    too_big: "IO error reading from incoming response body",
    own_timeout: None,
};
const C: Said = Said {
    lang: "c",
    denied: "HTTP-request-denied",
    too_big: "HTTP-response-body-size",
    own_timeout: Some("HTTP-response-timeout"),
};
const RUST: Said = Said {
    lang: "rust",
    denied: "request denied by the host",
    too_big: "over the check's maxHttpBytes (1000 bytes)",
    own_timeout: None,
};

/// Bound on the running host's waits (it loads the component from the
/// cache `invoke` filled, or compiles it again).
const WAIT: Duration = Duration::from_secs(240);

/// The `maxHttpBytes` of the checks here.
const MAX_HTTP_BYTES: u64 = 1000;

/// `dir/heartbeat.json`, a whole document of its own (defaults with the
/// cap and a timeout): five checks that all run `http_get`, each granted
/// `origin` and `API_TOKEN` or not as its name says (`slow` and `patient`
/// with a short and a long timeout); its path.
fn write_http_get_grant_checks(dir: &Path, origin: &str) -> String {
    let granted = json!({"http": [origin], "env": ["API_TOKEN"]});
    let config = json!({
        "$schema": "heartbeat.v1",
        "agent": "e2e",
        "defaults": {"timeoutMs": 3000, "maxHttpBytes": MAX_HTTP_BYTES},
        "checks": {
            "granted": {"handler": "http_get", "grants": granted},
            "no_env": {"handler": "http_get", "grants": {"http": [origin]}},
            "ungranted": {"handler": "http_get"},
            "slow": {"handler": "http_get", "timeoutMs": 1500, "grants": granted},
            "patient": {"handler": "http_get", "timeoutMs": 30000, "grants": granted},
        },
    });
    let path = dir.join("heartbeat.json");
    write_json(&path, &config);
    path.to_str().expect("utf-8").to_string()
}

fn error_of(out: &Value) -> &str {
    out["error"].as_str().unwrap_or_default()
}

/// Runs the recipe as `check` of `config` on `url`, with API_TOKEN set in
/// the host's environment.
fn get(wasm: &Path, config: &str, check: &str, url: &str, cache: &Path) -> Value {
    let meta = json!({ "url": url }).to_string();
    let invoked = invoke_with_env(
        &[
            wasm.to_str().expect("utf-8"),
            "--config",
            config,
            "--check",
            check,
            "--meta",
            &meta,
        ],
        cache,
        &[("API_TOKEN", "e2e-token")],
    );
    let out = invoked.json;
    let expected_exit = if out["status"] == "success" { 0 } else { 1 };
    assert_eq!(
        invoked.finished.status.code(),
        Some(expected_exit),
        "{}",
        invoked.finished.log()
    );
    out
}

fn http_grants_hold_in(said: &Said) {
    let lang = said.lang;
    let work = tempfile::tempdir().expect("tempdir");
    let cache = work.path().join("cache");
    let server = TestServer::start();
    let origin = server.origin();
    let config = write_http_get_grant_checks(work.path(), &origin);
    let wasm = cookbook_recipe(lang, "http_get");

    // Granted: the body reaches the details, and so does the granted token.
    let out = get(&wasm, &config, "granted", &server.url("/ok"), &cache);
    assert_eq!(out["status"], "success", "{lang}: {out}");
    assert_eq!(out["details"]["status"], 200, "{lang}: {out}");
    assert_eq!(
        out["details"]["excerpt"], "hello from the test server",
        "{lang}: {out}"
    );
    assert_eq!(out["details"]["tokenSent"], true, "{lang}: {out}");
    assert!(
        server.requests().contains(&"GET /ok".to_string()),
        "{lang}: {:?}",
        server.requests()
    );

    // The same variable in the host's environment, not granted: not seen.
    let out = get(&wasm, &config, "no_env", &server.url("/ok"), &cache);
    assert_eq!(out["status"], "success", "{lang}: {out}");
    assert_eq!(out["details"]["tokenSent"], false, "{lang}: {out}");

    // No grant: refused in the guest, the origin named in the reason, and
    // nothing reaches the server.
    let before = server.requests().len();
    let out = get(&wasm, &config, "ungranted", &server.url("/ok"), &cache);
    assert_eq!(out["status"], "failed", "{lang}: {out}");
    let refused = format!("refused by the host: http origin {origin} is not in grants.http");
    assert!(error_of(&out).contains(said.denied), "{lang}: {out}");
    assert!(error_of(&out).contains(&refused), "{lang}: {out}");
    assert_eq!(
        server.requests().len(),
        before,
        "{lang}: {:?}",
        server.requests()
    );

    // A redirect from the granted origin to another (the same server under
    // another name): the first hop is answered, the second refused.
    let port = origin.rsplit(':').next().expect("a port");
    let elsewhere = format!("http://localhost:{port}");
    let before = server.requests().len();
    let url = server.url(&format!("/redirect?to={elsewhere}/ok"));
    let out = get(&wasm, &config, "granted", &url, &cache);
    assert_eq!(out["status"], "failed", "{lang}: {out}");
    assert!(error_of(&out).contains(said.denied), "{lang}: {out}");
    assert!(
        error_of(&out).contains(&format!(
            "refused by the host: http origin {elsewhere} is not in grants.http"
        )),
        "{lang}: {out}"
    );
    assert_eq!(
        server.requests()[before..],
        [format!("GET /redirect?to={elsewhere}/ok")],
        "{lang}: only the first hop reaches a server"
    );

    // Bodies: under maxHttpBytes whole, over it cut off.
    let out = get(&wasm, &config, "granted", &server.url("/big/900"), &cache);
    assert_eq!(out["status"], "success", "{lang}: {out}");
    assert_eq!(
        out["details"]["excerpt"].as_str().map(str::len),
        Some(200),
        "{lang}: {out}"
    );
    let out = get(&wasm, &config, "granted", &server.url("/big/5000"), &cache);
    assert_eq!(out["status"], "failed", "{lang}: {out}");
    assert!(error_of(&out).contains(said.too_big), "{lang}: {out}");
    assert!(out["details"].get("excerpt").is_none(), "{lang}: {out}");

    // A server that never answers: cut off at timeoutMs.
    let out = get(&wasm, &config, "slow", &server.url("/hang"), &cache);
    assert_eq!(out["status"], "failed", "{lang}: {out}");
    assert_eq!(error_of(&out), "timeout after 1500 ms", "{lang}: {out}");
    let took = out["durationUs"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (1_400_000..5_000_000).contains(&took),
        "{lang}: ran {took} µs: {out}"
    );

    // With more time than the client's own deadline, the client gives up
    // first: a failed outcome naming the timeout, not a stopped run.
    if let Some(own_timeout) = said.own_timeout {
        let out = get(&wasm, &config, "patient", &server.url("/hang"), &cache);
        assert_eq!(out["status"], "failed", "{lang}: {out}");
        assert!(error_of(&out).contains(own_timeout), "{lang}: {out}");
        let took = out["durationUs"].as_u64().unwrap_or(u64::MAX);
        assert!(
            (4_900_000..20_000_000).contains(&took),
            "{lang}: ran {took} µs: {out}"
        );
    }

    a_running_host_cuts_off_a_hung_request_and_runs_on(lang, &wasm, &server, &cache);
}

/// A host with two checks on the recipe, one on a server that never
/// answers: that run is stopped at its timeout and the other check keeps
/// succeeding after it.
fn a_running_host_cuts_off_a_hung_request_and_runs_on(
    lang: &str,
    wasm: &Path,
    server: &TestServer,
    cache: &Path,
) {
    let work = tempfile::tempdir().expect("tempdir");
    let handlers = work.path().join("handlers");
    std::fs::create_dir_all(&handlers).expect("handlers dir");
    std::fs::copy(wasm, handlers.join("http_get.wasm")).expect("deploy");
    let grants = json!({"http": [server.origin()]});
    let config = json!({
        "$schema": "heartbeat.v1",
        "agent": "e2e",
        "maxPerTick": 2,
        "checks": {
            "hang": {"handler": "http_get", "cadenceMs": 60000, "timeoutMs": 1000,
                     "grants": grants, "meta": {"url": server.url("/hang")}},
            "ok": {"handler": "http_get", "cadenceMs": 500, "grants": grants,
                   "meta": {"url": server.url("/ok")}},
        },
    });
    let config_path = work.path().join("heartbeat.json");
    write_json(&config_path, &config);
    let mut host = start_on_timer(
        &config_path,
        "200ms",
        &["--handlers", handlers.to_str().expect("utf-8")],
        &[("XDG_CACHE_HOME", cache.to_str().expect("utf-8"))],
    );
    let after_the_cut = |lines: &[Value]| {
        let cut = lines
            .iter()
            .position(|l| is(l, "run_finished", &[("check", "hang")]));
        cut.is_some_and(|at| {
            !records(
                &lines[at + 1..],
                "run_finished",
                &[("check", "ok"), ("status", "success")],
            )
            .is_empty()
        })
    };
    let lines = host.wait_for(
        "the hung run's end, then a successful run of the other check",
        WAIT,
        after_the_cut,
    );
    let hang = records(&lines, "run_finished", &[("check", "hang")])[0];
    assert_eq!(hang["status"], "failed", "{lang}: {}", render(&lines));
    assert_eq!(
        hang["error"],
        "timeout after 1000 ms",
        "{lang}: {}",
        render(&lines)
    );
    assert!(host.terminate(WAIT).success(), "{lang}: {}", render(&lines));
}

#[test]
fn python_http_and_env_grants_hold() {
    http_grants_hold_in(&PYTHON);
}

#[test]
fn javascript_http_and_env_grants_hold() {
    http_grants_hold_in(&JAVASCRIPT);
}

#[test]
fn c_http_and_env_grants_hold() {
    http_grants_hold_in(&C);
}

#[test]
fn rust_http_and_env_grants_hold() {
    http_grants_hold_in(&RUST);
}
