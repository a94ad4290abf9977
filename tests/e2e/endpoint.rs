//! The operations endpoint (`--metrics-addr`) of a live host, read over
//! real HTTP: `/metrics` in the Prometheus text format with the families
//! operators alert on, `/healthz`, and `/readyz` with its reasons.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{RunningHost, field, start_on_timer};

const WAIT: Duration = Duration::from_secs(60);

/// `GET path` on `addr`: the status code, the content type and the body.
pub(crate) fn get(addr: &str, path: &str) -> (u16, String, String) {
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
pub(crate) fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
    })
}

/// A host on its own timer ticking every `tick`, with the endpoint on a
/// free port; and that port's address, from its `endpoint_listening` log.
fn start_with_endpoint(
    config: &std::path::Path,
    dir: &std::path::Path,
    tick: &str,
) -> (RunningHost, String) {
    let cache = dir.join("cache");
    let mut host = start_on_timer(
        config,
        tick,
        &["--metrics-addr", "127.0.0.1:0"],
        &[("HEARTBEAT_CACHE_DIR", cache.to_str().expect("utf-8"))],
    );
    let lines = host.wait_for_event("endpoint_listening", &[], WAIT);
    let addr = lines
        .iter()
        .find_map(|l| field(l, "addr"))
        .expect("the bound address")
        .to_string();
    (host, addr)
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
    let (mut host, addr) = start_with_endpoint(&config, dir.path(), "100ms");
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
        r#"heartbeat_check_runs_total{agent="ops",check="a",handler="default",status="success"}"#,
    );
    assert!(runs.is_some_and(|n| n >= 3.0), "{scrape}");
    assert!(
        sample(
            &scrape,
            r#"heartbeat_check_runs_total{agent="ops",check="b",handler="nowhere",status="failed"}"#
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
        sample(
            &scrape,
            r#"heartbeat_check_overdue_ratio{agent="ops",check="a"}"#
        ),
        Some(f64::INFINITY)
    );
    let later = sample(
        &scrape,
        r#"heartbeat_check_overdue_ratio{agent="ops",check="later"}"#,
    )
    .expect("ratio");
    assert!((0.0..0.1).contains(&later), "later ran just now: {later}");
    assert!(
        sample(
            &scrape,
            r#"heartbeat_check_consecutive_failures{agent="ops",check="b"}"#
        )
        .is_some_and(|n| n >= 1.0)
    );
    // b fails every run: hard (maxAttempts 1), one state change published.
    assert_eq!(
        sample(
            &scrape,
            r#"heartbeat_check_state{agent="ops",check="b",state="hard"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"heartbeat_check_state{agent="ops",check="b",state="ok"}"#
        ),
        Some(0.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"heartbeat_check_state{agent="ops",check="a",state="ok"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"heartbeat_check_state_changes_total{agent="ops",check="b",change="transition"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, r#"heartbeat_check_attempt{agent="ops",check="b"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            r#"heartbeat_check_flapping{agent="ops",check="b"}"#
        ),
        Some(0.0)
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
    assert!(
        sample(&scrape, "heartbeat_pool_memories").is_some(),
        "{scrape}"
    );
    assert!(
        sample(&scrape, "heartbeat_pool_warm_memories").is_some(),
        "{scrape}"
    );

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
        !scrape.contains(r#"heartbeat_check_overdue_ratio{agent="ops",check="b"}"#),
        "{scrape}"
    );
    assert!(host.terminate(WAIT).success());
}

/// Chromium, as Debian installs it (`tests/run.sh` installs it when missing).
const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium headless on `url` with `extra` (`--dump-dom`, `--screenshot=…`);
/// its stdout. The flags keep it off this machine's closed network.
fn chromium(url: &str, extra: &[&str], profile: &std::path::Path) -> String {
    let mut cmd = std::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    let done =
        crate::support::languages::run_bounded(&mut cmd, "chromium", Duration::from_secs(90));
    assert!(done.status.success(), "{}", done.log());
    done.stdout
}

#[test]
fn the_status_page_shows_in_a_real_browser_what_an_operator_needs() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: tests/run.sh installs Debian's chromium"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // A window that excludes the current hour (UTC).
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 3600)
        % 24;
    let (start, end) = ((hour + 2) % 24, (hour + 3) % 24);
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"agent": "page", "maxPerTick": 3, "checks": {{
                "keepalive": {{"cadenceMs": 0}},
                "broken": {{"cadenceMs": 0, "handler": "nowhere"}},
                "resting": {{"cadenceMs": 0}},
                "nightly": {{"cadenceMs": 0, "window": {{"start": "{start:02}:00", "end": "{end:02}:00", "tz": "UTC"}}}}
            }}, "paused": {{"resting": {{"until": 4102444800000, "reason": "disk swap in progress"}}}}}}"#
        ),
    )
    .expect("config");
    let (mut host, addr) = start_with_endpoint(&config, dir.path(), "200ms");
    host.wait_for_event("run_finished", &[("check", "broken")], WAIT);
    host.wait_for_event("run_finished", &[("check", "keepalive")], WAIT);

    let url = format!("http://{addr}/");
    let dom = chromium(&url, &["--dump-dom"], &dir.path().join("profile"));
    for name in ["keepalive", "broken", "resting", "nightly"] {
        assert!(
            dom.contains(&format!("data-check=\"{name}\"")),
            "no {name} in:\n{dom}"
        );
    }
    let row = |name: &str| {
        dom.split(&format!("data-check=\"{name}\""))
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("broken").contains("handler \"nowhere\" not found"),
        "{}",
        row("broken")
    );
    assert!(row("broken").contains("failed"), "{}", row("broken"));
    // Its alerting state, as the page shows it: hard at the first failure
    // (maxAttempts 1), marked for the eye.
    assert!(
        row("broken").contains("data-state=\"hard\"") && row("broken").contains("hard 1/1"),
        "{}",
        row("broken")
    );
    assert!(
        row("keepalive").contains("data-state=\"ok\""),
        "{}",
        row("keepalive")
    );
    assert!(
        row("resting").contains("disk swap in progress"),
        "{}",
        row("resting")
    );
    assert!(
        row("nightly").contains("outside its window"),
        "{}",
        row("nightly")
    );
    assert!(row("keepalive").contains("success"), "{}", row("keepalive"));
    assert!(dom.contains("id=\"runs\""), "the recent runs");

    // For people to look at: target/status-page.png.
    let shot = crate::support::languages::repo_root().join("target/status-page.png");
    chromium(
        &url,
        &[&format!("--screenshot={}", shot.display())],
        &dir.path().join("profile2"),
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "no screenshot"
    );

    // /status is the same picture as JSON.
    let (status, _, body) = get(&addr, "/status");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["agent"], "page");
    assert!(
        json["checks"].as_array().is_some_and(|c| c.len() == 4),
        "{json}"
    );
    let broken = json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "broken"))
        .expect("broken in /status");
    assert_eq!(
        (&broken["state"], &broken["attempt"], &broken["maxAttempts"]),
        (&"hard".into(), &1.into(), &1.into()),
        "{broken}"
    );
    // And `status --url` prints it for a terminal.
    let printed = std::process::Command::new(crate::support::host_bin())
        .args(["status", "--url", &format!("http://{addr}")])
        .output()
        .expect("status --url");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert!(text.starts_with("heartbeat-host for page: "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("broken ") && l.contains("not found") && l.contains("hard 1/1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("resting ") && l.contains("disk swap")),
        "{text}"
    );
    assert!(host.terminate(WAIT).success());
}
