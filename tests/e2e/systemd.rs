//! `Type=notify`: the host speaks systemd's notify protocol to the socket
//! `NOTIFY_SOCKET` names: `READY=1` with its status, `WATCHDOG=1` while the
//! tick loop turns, `STOPPING=1` on SIGTERM. The socket here is a real
//! datagram socket, bound by the test as systemd binds its own.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::RunningHost;

const WAIT: Duration = Duration::from_secs(60);

/// Every datagram that arrives within `within`, or until `until` is seen.
fn receive(socket: &UnixDatagram, within: Duration, until: &str) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = message.contains(until);
            got.push(message);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn notify_ready_watchdog_while_ticking_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, r#"{"agent": "unit", "checks": {"a": {}}}"#).expect("config");
    let mut host = RunningHost::start(
        &["run", "--config", config.to_str().expect("utf-8")],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8")),
            // A ping every 200 ms.
            ("WATCHDOG_USEC", "400000"),
            (
                "HEARTBEAT_CACHE_DIR",
                dir.path().join("cache").to_str().expect("utf-8"),
            ),
        ],
    );
    let first = receive(&socket, WAIT, "READY=1");
    assert_eq!(
        first.last().map(String::as_str),
        Some("READY=1\nSTATUS=healthy"),
        "{first:?}"
    );
    let pings = receive(&socket, Duration::from_millis(1500), "never");
    let watchdogs = pings.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(watchdogs >= 4, "{pings:?}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &host.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let last = receive(&socket, WAIT, "STOPPING=1");
    assert!(
        last.iter().any(|m| m.starts_with("STOPPING=1\n")),
        "{last:?}"
    );
    assert!(host.wait(WAIT).success());
}

#[test]
fn the_template_unit_is_type_notify_with_the_consumers_environment() {
    let unit = std::fs::read_to_string(
        crate::support::languages::repo_root().join("examples/systemd/heartbeat-host@.service"),
    )
    .expect("examples/systemd/heartbeat-host@.service");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Environment=AGENT_NAME=%i",
        "Environment=HEARTBEAT_PATH=",
        "Environment=RABBIT_URL=",
        "Environment=EXCHANGE_NAME=",
        "Environment=LOG_LEVEL=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "no {line:?} in:\n{unit}"
        );
    }
}
