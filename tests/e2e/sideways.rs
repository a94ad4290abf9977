//! What a hostile handler can reach beyond its own output: a secret it
//! hides where string redaction does not look (a routing key, a JSON
//! number, an origin or a name the host refuses and logs), and the host's
//! descriptors (connections and sockets past the run's bound, and past
//! what the host keeps for itself). Run through the real binary, so that
//! the host's own log is part of what is checked.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::languages::{Invoked, invoke, run_bounded};
use crate::support::{self, RunningHost, test_handler};

/// A 16-digit PIN: what a secret file may hold, and what a handler can
/// write as a JSON number.
const PIN: &str = "4716203958172634";

fn hostile() -> String {
    test_handler("test_handler_hostile.wasm")
        .to_str()
        .expect("utf-8")
        .to_string()
}

#[test]
fn a_secret_never_reaches_a_routing_key_a_number_or_the_hosts_refusal_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("pin");
    std::fs::write(&secret, format!("{PIN}\n")).expect("write the secret");
    let grant = format!("PIN={}", secret.display());
    let meta = r#"{"mode": "leak_sideways", "var": "PIN", "agent": "local"}"#;
    let run = invoke(
        &[
            &hostile(),
            "--meta",
            meta,
            "--grant-secret",
            &grant,
            // Any HTTP grant turns name lookups on, so the refused name
            // is the host's to log.
            "--grant-http",
            "http://127.0.0.1:9",
        ],
        &dir.path().join("cache"),
    );
    let everything = format!("{}\n{}", run.finished.stdout, run.finished.stderr);
    assert!(!everything.contains(PIN), "the PIN leaked:\n{everything}");
    // The handler did put it in each of those places.
    let events = crate::support::languages::events(&run.json);
    assert_eq!(
        events
            .first()
            .map(|(key, payload)| (key.as_str(), payload["pin"].as_str())),
        Some(("agent.local.leak.[redacted]", Some("[redacted]"))),
        "the key, and the number in the payload: {}",
        run.json
    );
    assert!(
        run.finished
            .stderr
            .contains("http request refused: origin not in grants.http")
            && run
                .finished
                .stderr
                .contains("name lookup refused: no grant names it"),
        "the refusals were logged: {}",
        run.finished.stderr
    );
    let error = run.json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(r#"{"pin":[redacted]}"#)
            && error.contains("http origin http://[redacted].invalid:80 is not in grants.http")
            && error.contains(r#"name lookup of "[redacted].example.org" is not granted"#),
        "{error}"
    );
}

/// A TCP server on 127.0.0.1 that accepts connections and never answers,
/// counting how many it accepted; they are held until the test ends.
fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, accepted)
}

fn flood(
    mode: &str,
    addr: &str,
    count: u32,
    max_connections: Option<u32>,
    cache: &Path,
) -> Invoked {
    let key = if mode == "http_flood" {
        "authority"
    } else {
        "addr"
    };
    let limit = max_connections.map_or(String::new(), |n| format!(r#", "maxConnections": {n}"#));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"agent": "flood", "checks": {{"flood": {{"timeoutMs": 5000{limit},
                "meta": {{"mode": "{mode}", "{key}": "{addr}", "count": {count}}}}}}}}}"#
        ),
    )
    .expect("write config");
    let origin = format!("http://{addr}");
    invoke(
        &[
            &hostile(),
            "--config",
            config.to_str().expect("utf-8"),
            "--check",
            "flood",
            "--grant-http",
            &origin,
            "--grant-net",
            addr,
        ],
        cache,
    )
}

#[test]
fn a_run_holds_at_most_max_connections_http_connections_and_fails_past_it() {
    let (addr, accepted) = silent_server();
    let cache = tempfile::tempdir().expect("cache");
    let run = flood("http_flood", &addr, 2000, None, cache.path());
    assert_eq!(run.json["status"], "failed", "{}", run.json);
    let error = run.json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ConnectionLimitReached")
            && error.contains("over maxConnections (16 open at once per run)"),
        "{error}"
    );
    assert!(
        accepted.load(Ordering::SeqCst) <= 16,
        "the server saw {} connections",
        accepted.load(Ordering::SeqCst)
    );
}

#[test]
fn a_run_creates_at_most_max_connections_sockets_and_the_bound_is_the_checks_to_set() {
    let (addr, _) = silent_server();
    let cache = tempfile::tempdir().expect("cache");
    let run = flood("socket_flood", &addr, 200, Some(5), cache.path());
    assert_eq!(run.json["status"], "failed", "{}", run.json);
    let error = run.json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("connection 6:")
            && error.contains("over maxConnections (5 open at once per run)"),
        "{error}"
    );
    // Within the bound the same handler succeeds.
    let run = flood("socket_flood", &addr, 20, Some(40), cache.path());
    assert_eq!(run.json["status"], "success", "{}", run.json);
    assert_eq!(run.json["details"]["open"], 20, "{}", run.json);
}

/// A host whose descriptor limit is low (`prlimit --nofile=300`): a check
/// that tries to open a thousand sockets gets only what the host can
/// spare, and a check beside it keeps running and its state is saved.
#[test]
fn a_guest_cannot_take_the_descriptors_the_host_needs_to_save_state() {
    let (addr, _) = silent_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = support::handlers_with(dir.path(), "test_handler_hostile.wasm", "hostile");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"agent": "starved", "maxPerTick": 2, "checks": {{
                "flood": {{"handler": "hostile", "cadenceMs": 0, "timeoutMs": 3000,
                    "maxConnections": 5000, "grants": {{"net": ["{addr}"]}},
                    "meta": {{"mode": "socket_flood", "addr": "{addr}", "count": 1000}}}},
                "steady": {{"cadenceMs": 0}}}}}}"#
        ),
    )
    .expect("write config");
    let mut version = Command::new("prlimit");
    version.arg("--version");
    let found = run_bounded(&mut version, "prlimit --version", Duration::from_secs(10));
    assert!(
        found.status.success(),
        "prlimit (util-linux) is needed: {}",
        found.log()
    );
    let mut host = RunningHost::start_program(
        "prlimit",
        &[
            "--nofile=300",
            support::host_bin(),
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
    let lines = host.wait_for(
        "three floods and three steady runs",
        Duration::from_secs(240),
        |lines| {
            support::records(lines, "run_finished", &[("check", "flood")]).len() >= 3
                && support::records(lines, "run_finished", &[("check", "steady")]).len() >= 3
        },
    );
    let floods = support::records(&lines, "run_finished", &[("check", "flood")]);
    let reason = support::field(floods[0], "error").unwrap_or_default();
    assert!(
        reason.contains("connection 45:")
            && reason
                .contains("all 44 descriptors it gives them (the rest are kept for its own files)"),
        "{reason}"
    );
    let log = support::render(&lines);
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("state not saved"), "{log}");
    let state = support::read_json(&dir.path().join("heartbeat.state.json"));
    assert_eq!(
        state["checks"]["steady"]["lastStatus"], "success",
        "{state}"
    );
}
