//! The operations endpoint's cost: a `/metrics` scrape of a host with 1,000
//! checks (median and p99 time, bytes), and the host's idle RSS with the
//! endpoint on against off, measured in the same run, alternately.
//!
//! ```sh
//! cargo bench -p heartbeat-host --bench endpoint -- [--checks 1000] [--scrapes 500] [--rounds 3]
//! ```
//!
//! Starts the `heartbeat-host` built with this bench (release) on its own
//! timer (no broker), with a config of `--checks` checks whose cadence is an
//! hour (each runs once, at start-up, then waits), so the scrape reads a
//! full state.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the host; with `endpoint`, waits for and returns its address.
fn start(
    config: &std::path::Path,
    cache: &std::path::Path,
    endpoint: bool,
) -> (Child, Option<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heartbeat-host"));
    cmd.args(["run", "--config"])
        .arg(config)
        .args(["--tick-interval", "100ms"])
        .env("LOG_LEVEL", "info")
        .env("HEARTBEAT_CACHE_DIR", cache)
        .env_remove("RABBIT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if endpoint {
        cmd.args(["--metrics-addr", "127.0.0.1:0"]);
    }
    let mut host = cmd.spawn().expect("start heartbeat-host");
    let stderr = host.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        // Drained to the end, so the host never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // "serving /metrics, /healthz and /readyz on http://ADDR"
            if let Some(addr) = line.split("on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.split_whitespace().next().map(str::to_string));
            }
        }
    });
    let addr = if endpoint {
        Some(
            rx.recv_timeout(Duration::from_secs(60))
                .ok()
                .flatten()
                .expect("the endpoint's address within 60 s"),
        )
    } else {
        None
    };
    (host, addr)
}

/// One `GET /metrics`: its time (connect to last byte) and body.
fn scrape(addr: &str) -> (Duration, String) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let took = started.elapsed();
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    (took, body)
}

fn main() {
    let checks = arg("--checks", 1000);
    let scrapes = arg("--scrapes", 500);
    let rounds = arg("--rounds", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    let body: Vec<String> = (0..checks)
        .map(|i| format!(r#""check-{i:04}": {{"cadenceMs": 3600000, "handler": "default"}}"#))
        .collect();
    std::fs::write(
        &config,
        format!(
            r#"{{"agent": "bench-endpoint", "maxPerTick": 64, "checks": {{{}}}}}"#,
            body.join(",")
        ),
    )
    .expect("config");
    let cache = dir.path().join("cache");

    // The scrape.
    let (mut host, addr) = start(&config, &cache, true);
    let addr = addr.expect("address");
    // Until every check has run once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, text) = scrape(&addr);
        let ran = text
            .lines()
            .filter(|l| l.starts_with("heartbeat_check_runs_total{"))
            .count();
        if ran >= checks || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..20 {
        scrape(&addr);
    }
    let mut times = Vec::with_capacity(scrapes);
    let mut bytes = 0;
    for _ in 0..scrapes {
        let (took, body) = scrape(&addr);
        times.push(took);
        bytes = body.len();
    }
    common::terminate(&mut host);
    let (median, p99) = common::median_p99(times);
    println!(
        "/metrics with {checks} checks, {scrapes} scrapes: median {:.3} ms, p99 {:.3} ms, {bytes} bytes",
        common::ms(median),
        common::ms(p99)
    );

    // Idle RSS, endpoint off and on, alternately; 10 s after start (every
    // check has run once), the endpoint scraped once when on.
    for round in 1..=rounds {
        for endpoint in [false, true] {
            let (mut host, addr) = start(&config, &cache, endpoint);
            std::thread::sleep(Duration::from_secs(10));
            if let Some(addr) = &addr {
                scrape(addr);
            }
            let rss = common::status_kib(host.id(), "VmRSS:");
            common::terminate(&mut host);
            println!(
                "round {round}: endpoint {}: idle RSS {:.1} MiB",
                if endpoint { "on " } else { "off" },
                rss as f64 / 1024.0
            );
        }
    }
}
