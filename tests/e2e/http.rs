//! `grants.http` from a Rust handler (`handler_sdk::http`, through the
//! hostile test handler's `http_get`/`http_post` modes) against real
//! servers on 127.0.0.1: what is granted goes through, everything else is
//! refused by the host's send hook with the WASI HTTP error in the guest and
//! the origin named in the run's reason; bodies are capped; a server that
//! never answers is cut off at the run's deadline; TLS trusts a grant's own
//! CA bundle.

use std::path::Path;
use std::time::{Duration, Instant};

use heartbeat_host::core::model::RunStatus;
use heartbeat_host::{LoadedHandler, RunReport, Runtime};

use crate::support::http_server::TestServer;
use crate::support::runtime::{TICK_MS, check_request, hostile, runtime};
use crate::support::test_handler;

/// Runs the hostile handler once for a check written as JSON.
async fn run(rt: &Runtime, h: &LoadedHandler, check_json: &str, dir: &Path) -> RunReport {
    rt.run(h, &check_request("http", "probe", check_json, dir, TICK_MS))
        .await
}

fn get(url: &str, grants: &str) -> String {
    format!(
        r#"{{"meta": {{"mode": "http_get", "url": "{url}"}}, "grants": {{"http": [{grants}]}}}}"#
    )
}

fn reason(report: &RunReport) -> &str {
    report.error.as_deref().unwrap_or_default()
}

/// GETs `path` of `server`, the check granted the server's origin.
async fn get_granted(
    rt: &Runtime,
    h: &LoadedHandler,
    server: &TestServer,
    path: &str,
) -> RunReport {
    let grant = format!("{:?}", server.origin());
    run(rt, h, &get(&server.url(path), &grant), Path::new(".")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_origin_is_reached_and_its_body_reaches_the_outcome() {
    let server = TestServer::start();
    let (rt, dir) = (runtime(), Path::new("."));
    let h = hostile(&rt);
    let report = get_granted(&rt, &h, &server, "/ok").await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.details["status"], 200);
    assert_eq!(report.details["body"], "hello from the test server");
    assert_eq!(server.requests(), ["GET /ok"]);
    // A status the handler treats as failure is still a response.
    let report = get_granted(&rt, &h, &server, "/status/503").await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert_eq!(report.details["status"], 503);
    // `http://localhost:*` covers the server by name, any port.
    let by_name = server.url("/ok").replace("127.0.0.1", "localhost");
    let report = run(&rt, &h, &get(&by_name, r#""http://localhost:*""#), dir).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_not_granted_is_refused_in_the_guest_and_named_in_the_reason() {
    let granted = TestServer::start();
    let other = TestServer::start();
    let rt = runtime();
    let h = hostile(&rt);
    let dir = Path::new(".");
    for grants in [format!("{:?}", granted.origin()), String::new()] {
        let report = run(&rt, &h, &get(&other.url("/ok"), &grants), dir).await;
        assert_eq!(report.status, RunStatus::Failed, "{report:?}");
        // The guest's own error (from handler_sdk) and the host's naming.
        assert!(
            reason(&report).contains("request denied by the host"),
            "{report:?}"
        );
        assert!(
            reason(&report).contains(&format!(
                "refused by the host: http origin {} is not in grants.http",
                other.origin()
            )),
            "{report:?}"
        );
    }
    // https to the same host:port is another origin.
    let tls = format!("https://{}", other.origin().trim_start_matches("http://"));
    let report = run(
        &rt,
        &h,
        &get(&format!("{tls}/ok"), &format!("{:?}", other.origin())),
        dir,
    )
    .await;
    assert!(
        reason(&report).contains("is not in grants.http"),
        "{report:?}"
    );
    assert!(other.requests().is_empty(), "{:?}", other.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_an_origin_not_granted_is_refused() {
    let granted = TestServer::start();
    let other = TestServer::start();
    let rt = runtime();
    let h = hostile(&rt);
    let dir = Path::new(".");
    let grant = format!("{:?}", granted.origin());
    let away = granted.url(&format!("/redirect?to={}", other.url("/ok")));
    let report = run(&rt, &h, &get(&away, &grant), dir).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(
        reason(&report).contains(&format!(
            "http origin {} is not in grants.http",
            other.origin()
        )),
        "{report:?}"
    );
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    // A redirect that stays within the grant is followed.
    let home = granted.url(&format!("/redirect?to={}", granted.url("/ok")));
    let report = run(&rt, &h, &get(&home, &grant), dir).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.details["url"], granted.url("/ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_is_cut_off_at_the_runs_deadline() {
    let server = TestServer::start();
    let rt = runtime();
    let h = hostile(&rt);
    let dir = Path::new(".");
    let hang = format!(
        r#"{{"timeoutMs": 400, "meta": {{"mode": "http_get", "url": "{}"}}, "grants": {{"http": ["{}"]}}}}"#,
        server.url("/hang"),
        server.origin()
    );
    let started = Instant::now();
    let report = run(&rt, &h, &hang, dir).await;
    let took = started.elapsed();
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(
        reason(&report).contains("timeout after 400 ms"),
        "{report:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The handler's own request timeout (wasi:http request options) is
    // honoured within the run's time: a 300 ms wait in a 5 s run.
    let wait = format!(
        r#"{{"timeoutMs": 5000, "meta": {{"mode": "http_get", "url": "{}", "waitMs": 300}}, "grants": {{"http": ["{}"]}}}}"#,
        server.url("/hang"),
        server.origin()
    );
    let started = Instant::now();
    let report = run(&rt, &h, &wait, dir).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(
        reason(&report).contains("ConnectionReadTimeout"),
        "{report:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The runtime is fine: the next request goes through.
    let report = get_granted(&rt, &h, &server, "/ok").await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_max_http_bytes_are_cut_off_both_ways() {
    let server = TestServer::start();
    let rt = runtime();
    let h = hostile(&rt);
    let dir = Path::new(".");
    let with_cap = |mode: &str, path: &str, bytes: u64| {
        format!(
            r#"{{"maxHttpBytes": 1000, "meta": {{"mode": "{mode}", "url": "{}", "bytes": {bytes}}}, "grants": {{"http": ["{}"]}}}}"#,
            server.url(path),
            server.origin()
        )
    };
    let report = run(&rt, &h, &with_cap("http_get", "/big/1000", 0), dir).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.details["bytes"], 1000);
    let report = run(&rt, &h, &with_cap("http_get", "/big/5000", 0), dir).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(
        reason(&report).contains("maxHttpBytes (1000 bytes)")
            && reason(&report)
                .contains("refused by the host: response body over maxHttpBytes (1000 bytes)"),
        "{report:?}"
    );
    // The default cap (10 MiB) lets a 2 MB body through.
    let report = get_granted(&rt, &h, &server, "/big/2000000").await;
    assert_eq!(report.details["bytes"], 2_000_000, "{report:?}");
    // A request body over the cap never reaches the server whole.
    let report = run(&rt, &h, &with_cap("http_post", "/echo", 900), dir).await;
    assert_eq!(report.details["body"], "received 900 bytes", "{report:?}");
    let report = run(&rt, &h, &with_cap("http_post", "/echo", 5000), dir).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    // The server records a request once its whole body is in: only the first.
    let posts = server
        .requests()
        .iter()
        .filter(|r| *r == "POST /echo")
        .count();
    assert_eq!(posts, 1, "{:?}", server.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_peer_not_granted_is_named_in_the_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = listener.local_addr().expect("addr");
    let rt = runtime();
    let h = hostile(&rt);
    let check = format!(r#"{{"meta": {{"mode": "socket", "addr": "{addr}"}}}}"#);
    let report = run(&rt, &h, &check, Path::new(".")).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(
        reason(&report).contains(&format!("socket peer {addr} is not in grants.net")),
        "{report:?}"
    );
}

#[test]
fn invoke_grant_http_and_grant_net_grant_for_one_run() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = test_handler("test_handler_hostile.wasm");
    let hostile = hostile.to_str().expect("utf-8");
    let cache = dir.path().join("cache");
    let meta = format!(
        r#"{{"mode": "http_get", "url": "{}"}}"#,
        server.url("/json")
    );
    let granted = crate::support::languages::invoke(
        &[hostile, "--meta", &meta, "--grant-http", &server.origin()],
        &cache,
    );
    assert!(
        granted.finished.status.success(),
        "{}",
        granted.finished.log()
    );
    assert_eq!(granted.json["details"]["status"], 200, "{}", granted.json);
    let refused = crate::support::languages::invoke(&[hostile, "--meta", &meta], &cache);
    assert!(
        !refused.finished.status.success(),
        "{}",
        refused.finished.log()
    );
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is not in grants.http"),
        "{}",
        refused.json
    );
    let addr = server.origin().trim_start_matches("http://").to_string();
    let socket = format!(r#"{{"mode": "socket", "addr": "{addr}"}}"#);
    let connected = crate::support::languages::invoke(
        &[hostile, "--meta", &socket, "--grant-net", &addr],
        &cache,
    );
    assert_eq!(
        connected.json["details"]["connected"], true,
        "{}",
        connected.json
    );
    let mut bad = std::process::Command::new(crate::support::host_bin());
    bad.args(["invoke", hostile, "--grant-http", "example.com"]);
    let refused =
        crate::support::languages::run_bounded(&mut bad, "invoke", Duration::from_secs(60));
    assert_eq!(refused.status.code(), Some(2), "{}", refused.log());
    assert!(
        refused.stderr.contains("checks.invoke.grants.http[0]")
            && refused.stderr.contains("expected an origin"),
        "{}",
        refused.log()
    );
}

#[test]
fn check_warns_when_a_handler_imports_http_or_sockets_its_check_is_not_granted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = dir.path().join("handlers");
    std::fs::create_dir(&handlers).expect("mkdir");
    // The hostile handler makes requests and connections (its http_get and
    // socket modes), so it imports wasi:http and wasi:sockets.
    std::fs::copy(
        test_handler("test_handler_hostile.wasm"),
        handlers.join("probe.wasm"),
    )
    .expect("copy");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"checks": {
            "bare": {"handler": "probe"},
            "granted": {"handler": "probe", "grants": {
                "http": ["https://api.example.com"], "net": ["db.internal:5432"]}}}}"#,
    )
    .expect("config");
    let mut check = std::process::Command::new(crate::support::host_bin());
    check
        .args(["check", "--config"])
        .arg(&config)
        .arg("--handlers")
        .arg(&handlers);
    let out = crate::support::languages::run_bounded(&mut check, "check", Duration::from_secs(120));
    assert!(out.status.success(), "{}", out.log());
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("checks.bare.grants.http")
            && text.contains("imports wasi:http but this check grants no origin"),
        "{text}"
    );
    assert!(
        text.contains("checks.bare.grants.net")
            && text.contains("imports wasi:sockets but this check grants no peer"),
        "{text}"
    );
    assert!(!text.contains("checks.granted.grants"), "{text}");
    assert!(text.contains("http https://api.example.com"), "{text}");
}

/// A TLS server on 127.0.0.1 whose certificate (for `localhost`) is signed
/// by a CA of its own, written as PEM to `ca_file`; it answers every request
/// with `hello over tls`. Returns the port.
fn tls_server(ca_file: &Path) -> u16 {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "heartbeat-host test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    std::fs::write(ca_file, ca.pem()).expect("write CA");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf");
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .expect("server config");
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = std::sync::Arc::clone(&config);
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let body = b"hello over tls";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(body);
                let _ = tls.flush();
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn https_trusts_a_grants_own_ca_bundle_and_only_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let port = tls_server(&ca);
    let rt = runtime();
    let h = hostile(&rt);
    let url = format!("https://localhost:{port}/ok");
    let with_ca = format!(
        r#"{{"origin": "https://localhost:{port}", "caFile": "{}"}}"#,
        ca.display()
    );
    let report = run(&rt, &h, &get(&url, &with_ca), dir.path()).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.details["body"], "hello over tls");
    // The same origin without the bundle: the web and system roots do not
    // know this CA, so the handshake fails.
    let bare = format!(r#""https://localhost:{port}""#);
    let report = run(&rt, &h, &get(&url, &bare), dir.path()).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(reason(&report).to_lowercase().contains("tls"), "{report:?}");
    // A CA file that is not there fails the request with its name.
    let gone = format!(
        r#"{{"origin": "https://localhost:{port}", "caFile": "{}"}}"#,
        dir.path().join("missing.pem").display()
    );
    let report = run(&rt, &h, &get(&url, &gone), dir.path()).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_may_look_up_only_the_names_its_grants_name() {
    let rt = runtime();
    let h = hostile(&rt);
    let dir = Path::new(".");
    let lookup = |name: &str, grants: &str| {
        format!(r#"{{"meta": {{"mode": "lookup", "name": "{name}"}}, "grants": {grants}}}"#)
    };
    let net = r#"{"net": ["localhost:5432"]}"#;
    let report = run(&rt, &h, &lookup("localhost", net), dir).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert!(
        report.details["addrs"]
            .as_array()
            .is_some_and(|a| a.iter().any(|ip| ip == "127.0.0.1" || ip == "::1")),
        "{report:?}"
    );
    // An http origin's name may be looked up too.
    let http = r#"{"http": ["http://localhost:*"]}"#;
    let report = run(&rt, &h, &lookup("localhost", http), dir).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    // Any other name is refused before a query leaves the host, with or
    // without other grants.
    for grants in [net, "{}"] {
        let report = run(&rt, &h, &lookup("exfiltrate.example", grants), dir).await;
        assert_eq!(report.status, RunStatus::Failed, "{report:?}");
        assert!(
            reason(&report).contains(r#"name lookup of "exfiltrate.example" is not granted"#),
            "{report:?}"
        );
    }
}
