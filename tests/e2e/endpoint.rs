//! The operations endpoint (`--metrics-addr`) of a live host, read over
//! real HTTP: `/metrics` in the Prometheus text format with the families
//! operators alert on, `/healthz`, and `/readyz` with its reasons.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{RunningHost, field};

const WAIT: Duration = Duration::from_secs(60);

/// `GET path` on `addr`: the status code, the content type and the body.
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (status, content_type, body.to_string())
}

/// The value of the sample `name{labels}` in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
    })
}

#[test]
fn metrics_healthz_and_readyz_tell_what_the_host_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    std::fs::write(
        &config,
        format!(
            r#"{{"agent": "ops", "maxPerTick": 2, "checks": {{
            "a": {{"cadenceMs": 0}},
            "b": {{"cadenceMs": 0, "handler": "nowhere"}},
            "later": {{"cadenceMs": 3600000, "lastRun": {now_ms}}}}}}}"#
        ),
    )
    .expect("config");
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--tick-interval",
            "100ms",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        &[(
            "HEARTBEAT_CACHE_DIR",
            dir.path().join("cache").to_str().expect("utf-8"),
        )],
    );
    let lines = host.wait_for_event("endpoint_listening", &[], WAIT);
    let addr = lines
        .iter()
        .find_map(|l| field(l, "addr"))
        .expect("the bound address")
        .to_string();
    host.wait_for("a few runs", WAIT, |l| {
        crate::support::records(l, "run_finished", &[("check", "a")]).len() >= 3
    });

    let (status, content_type, scrape) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let runs = sample(
        &scrape,
        r#"heartbeat_check_runs_total{check="a",handler="default",status="success"}"#,
    );
    assert!(runs.is_some_and(|n| n >= 3.0), "{scrape}");
    assert!(
        sample(
            &scrape,
            r#"heartbeat_check_runs_total{check="b",handler="nowhere",status="failed"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{scrape}"
    );
    assert!(sample(&scrape, r#"heartbeat_ticks_total{source="timer"}"#).is_some_and(|n| n >= 3.0));
    assert!(
        sample(
            &scrape,
            r#"heartbeat_checks_skipped_total{reason="not_due"}"#
        )
        .is_some_and(|n| n >= 3.0)
    );
    assert_eq!(
        sample(&scrape, r#"heartbeat_check_overdue_ratio{check="a"}"#),
        Some(f64::INFINITY)
    );
    let later = sample(&scrape, r#"heartbeat_check_overdue_ratio{check="later"}"#).expect("ratio");
    assert!((0.0..0.1).contains(&later), "later ran just now: {later}");
    assert!(
        sample(
            &scrape,
            r#"heartbeat_check_consecutive_failures{check="b"}"#
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert!(
        scrape.contains("heartbeat_check_run_duration_seconds_bucket{"),
        "{scrape}"
    );
    assert!(
        sample(&scrape, "heartbeat_host_healthy").is_some(),
        "{scrape}"
    );
    assert!(!scrape.contains("tick="), "no tick ids as labels");

    assert_eq!(get(&addr, "/healthz").0, 200);
    let (status, _, body) = get(&addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["ready"], false);
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("check b") && reasons.contains("nowhere"),
        "{reasons}"
    );

    // Fixed, the host is ready.
    std::fs::write(
        &config,
        r#"{"agent": "ops", "checks": {"a": {"cadenceMs": 0}}}"#,
    )
    .expect("config");
    host.wait_for_event("config_reloaded", &[], WAIT);
    let (status, _, body) = get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    // The removed checks are gone from the per-check gauges.
    let (_, _, scrape) = get(&addr, "/metrics");
    assert!(
        !scrape.contains(r#"heartbeat_check_overdue_ratio{check="b"}"#),
        "{scrape}"
    );
    assert!(host.terminate(WAIT).success());
}
