//! `grants.http` figures (issue 12), its own timing for medians and p99s:
//!
//! - one allowed HTTP GET to a local server from a Rust handler
//!   (`handler_sdk::http::get`, the hostile test handler's `http_get` mode),
//!   a fresh instance per run, against the same request made by a native
//!   Rust client (tokio + hyper, a new connection per request as the host
//!   makes) in the same run, interleaved round by round;
//! - one run of the built-in `http_probe` check (issue 13: the same GET,
//!   its body judged against `expectStatus` and `expectBody`, its details
//!   built), against the native GET of the same URL in the same rounds;
//! - the fresh-instance cost of the no-op `default` handler now that
//!   `wasi:http` and the `kv` interface are linked (the figure before them:
//!   9.47 µs, BENCHMARKS.md).
//!
//! `cargo bench -p heartbeat-host --bench http` (add `-- --quick` for a
//! short run). It builds the test handlers for wasm32-wasip2 first.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Instant;

use heartbeat_host::core::model::RunStatus;
use heartbeat_host::{self as registry, Runtime, RuntimeOptions, Tick};

mod common;

use common::{median_p99, noop_request, us};

const BODY: &[u8] = b"hello from the bench server";

/// A server on 127.0.0.1 answering every request with [`BODY`], one
/// thread per connection; its address.
fn server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    let mut empty_lines = 0;
                    // The request line and headers, up to the blank line.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            empty_lines += 1;
                            break;
                        }
                    }
                    if empty_lines == 0 {
                        return;
                    }
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", BODY.len());
                    if writer.write_all(head.as_bytes()).is_err() || writer.write_all(BODY).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Builds `tests/handlers/hostile` for wasm32-wasip2 as the tests do; its
/// component file.
fn hostile_component() -> PathBuf {
    let target_dir = PathBuf::from(env!("HEARTBEAT_WASM_TARGET_DIR"));
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--profile",
                "wasm-handlers",
                "--target",
                "wasm32-wasip2",
                "-p",
                "test-handler-hostile",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo build of the hostile handler");
    assert!(status.success(), "building the hostile handler failed");
    target_dir.join("wasm32-wasip2/wasm-handlers/test_handler_hostile.wasm")
}

/// One GET by the native client: connect, handshake, request, whole body.
async fn native_get(addr: std::net::SocketAddr) -> usize {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream))
            .await
            .expect("handshake");
    let driver = tokio::spawn(connection);
    let request = http::Request::get("/ok")
        .header("host", addr.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    drop(sender);
    let _ = driver.await;
    body.len()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick { (10, 50) } else { (20, 100) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let addr = server();
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let hostile = registry::load_file(&runtime, &hostile_component()).expect("hostile loads");
    let text = format!(
        r#"{{"checks": {{"probe": {{"meta": {{"mode": "http_get", "url": "http://{addr}/ok"}}, "grants": {{"http": ["http://{addr}"]}}}}}}}}"#
    );
    let loaded = heartbeat_host::core::config::parse(&text, "bench.json").expect("config");
    let tick = Tick {
        id: "bench".into(),
        time_ms: 1_777_593_600_000,
        envelope: serde_json::json!({}),
        done: None,
    };
    let request = heartbeat_host::run_request(
        "bench",
        &tick,
        &loaded.config.checks[0],
        0,
        std::path::Path::new("."),
    );
    let probe = registry::load_builtin(&runtime, "http_probe")
        .expect("built-in")
        .expect("http_probe loads");
    let probe_text = format!(
        r#"{{"checks": {{"probe": {{"handler": "http_probe", "meta": {{"url": "http://{addr}/ok", "expectStatus": 200, "expectBody": "hello"}}, "grants": {{"http": ["http://{addr}"]}}}}}}}}"#
    );
    let probe_loaded =
        heartbeat_host::core::config::parse(&probe_text, "bench.json").expect("probe config");
    let probe_req = heartbeat_host::run_request(
        "bench",
        &tick,
        &probe_loaded.config.checks[0],
        0,
        std::path::Path::new("."),
    );
    let noop = registry::load_builtin(&runtime, "default")
        .expect("built-in")
        .expect("loads");
    let noop_req = noop_request("default");

    let (mut guest, mut native, mut fresh) = (Vec::new(), Vec::new(), Vec::new());
    let mut probed = Vec::new();
    rt.block_on(async {
        // Warm-up: TLS roots are not involved (plain http), but the pool
        // and the server's threads are.
        for _ in 0..per_round {
            black_box(runtime.run(&hostile, &request).await);
            black_box(runtime.run(&probe, &probe_req).await);
            black_box(native_get(addr).await);
        }
        for _ in 0..rounds {
            for _ in 0..per_round {
                let start = Instant::now();
                let report = runtime.run(&hostile, &request).await;
                guest.push(start.elapsed());
                assert_eq!(report.status, RunStatus::Success, "{report:?}");
                assert_eq!(report.details["bytes"], BODY.len());
            }
            for _ in 0..per_round {
                let start = Instant::now();
                let report = runtime.run(&probe, &probe_req).await;
                probed.push(start.elapsed());
                assert_eq!(report.status, RunStatus::Success, "{report:?}");
                assert_eq!(report.details["bytes"], BODY.len());
            }
            for _ in 0..per_round {
                let start = Instant::now();
                let n = native_get(addr).await;
                native.push(start.elapsed());
                assert_eq!(n, BODY.len());
            }
            for _ in 0..per_round * 10 {
                let start = Instant::now();
                let report = runtime.run(&noop, &noop_req).await;
                fresh.push(start.elapsed());
                assert_eq!(report.status, RunStatus::Success);
            }
        }
    });
    let n = guest.len();
    let (g50, g99) = median_p99(guest);
    let (n50, n99) = median_p99(native);
    let (f50, f99) = median_p99(fresh);
    let (p50, p99) = median_p99(probed);
    println!("one allowed GET to 127.0.0.1 ({n} samples each, interleaved in {rounds} rounds):");
    println!(
        "  native Rust client (tokio + hyper)          median {:9.1} us  p99 {:9.1} us",
        us(n50),
        us(n99)
    );
    println!(
        "  Rust handler, fresh instance, via the host   median {:9.1} us  p99 {:9.1} us",
        us(g50),
        us(g99)
    );
    println!(
        "  ratio handler/native (medians) {:.2}x; the handler's extra per GET {:.1} us",
        g50.as_secs_f64() / n50.as_secs_f64(),
        us(g50.saturating_sub(n50))
    );
    println!(
        "  built-in http_probe run (GET + expectStatus + expectBody) median {:9.1} us  p99 {:9.1} us",
        us(p50),
        us(p99)
    );
    println!(
        "  ratio http_probe/native (medians) {:.2}x; the probe's extra per run {:.1} us; against the plain handler GET {:+.1} us",
        p50.as_secs_f64() / n50.as_secs_f64(),
        us(p50.saturating_sub(n50)),
        us(p50) - us(g50)
    );
    println!(
        "fresh instance of the no-op `default`, wasi:http and kv linked ({} samples): median {:.3} us  p99 {:.3} us",
        n * 10,
        us(f50),
        us(f99)
    );
}
