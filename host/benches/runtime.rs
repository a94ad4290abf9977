//! Sandbox runtime figures (issue 4), as a bench binary with its own
//! timing so that it can report medians and p99s:
//!
//! - per-run overhead of the no-op `default` handler with a fresh instance
//!   each run (the host's real path: store, WASI context, instantiate, call),
//!   with the pooling allocator and without;
//! - baselines in the same run: one instance reused, and a native call;
//! - time from a handler file written to its first possible run;
//! - host start-up with 50 cached handlers;
//! - with `-- --kv` only: the key-value store (issue 12), one durable
//!   `kv-set` of a 100-byte value and one `kv-get`, timed by the guest
//!   around its own calls (the kv test handler, built here when missing)
//!   and, on the host alone, the write and the read at a run's start.
//!
//! `cargo bench -p heartbeat-host --bench runtime` (add `-- --quick` for a
//! short run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heartbeat_host::{self as registry, Registry, Runtime, RuntimeOptions};

mod common;

use common::{median_p99, noop_request, us};

struct Stats {
    median: Duration,
    p99: Duration,
}

fn stats(samples: Vec<Duration>) -> Stats {
    let (median, p99) = median_p99(samples);
    Stats { median, p99 }
}

/// Per-run time of `default`, fresh instance each run.
fn fresh_runs(rt: &tokio::runtime::Runtime, pooling: bool, n: usize) -> Stats {
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: None,
        pooling,
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let handler = registry::load_builtin(&runtime, "default")
        .expect("built-in")
        .expect("loads");
    let request = noop_request("default");
    rt.block_on(async {
        for _ in 0..n / 10 {
            black_box(runtime.run(&handler, &request).await);
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let report = runtime.run(&handler, &request).await;
            samples.push(start.elapsed());
            assert_eq!(
                report.status,
                heartbeat_host::core::model::RunStatus::Success
            );
        }
        stats(samples)
    })
}

/// Per-call time of `default` on one instance reused.
fn reused_calls(rt: &tokio::runtime::Runtime, n: usize) -> Stats {
    let runtime = Runtime::new(&RuntimeOptions::default()).expect("runtime");
    let handler = registry::load_builtin(&runtime, "default")
        .expect("built-in")
        .expect("loads");
    let request = noop_request("default");
    rt.block_on(async {
        let mut instance = runtime
            .reused_instance(&handler, &request)
            .await
            .expect("instance");
        for _ in 0..n / 10 {
            assert!(instance.call().await);
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let ok = instance.call().await;
            samples.push(start.elapsed());
            assert!(ok);
        }
        stats(samples)
    })
}

#[inline(never)]
fn native_noop(check: &str) -> (u8, String) {
    (0, black_box(check).len().to_string())
}

fn native_calls(n: usize) -> Stats {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        black_box(native_noop(black_box("noop")));
        samples.push(start.elapsed());
    }
    stats(samples)
}

/// Adds a custom section, so that copies of one component hash differently.
fn with_custom_section(bytes: &[u8], tag: usize) -> Vec<u8> {
    let name = b"bench";
    let payload = tag.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(u8::try_from(size).expect("small section"));
    out.push(u8::try_from(name.len()).expect("small name"));
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// Time from a handler file written into a watched directory until the
/// registry serves it (compiled, not from the cache), over `n` fresh files.
fn file_to_first_run(n: usize) -> Stats {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = Arc::new(
        Runtime::new(&RuntimeOptions {
            cache_dir: None,
            pooling: true,
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    let registry = Arc::new(Registry::default());
    let _watch = heartbeat_host::reload::watch_handler_dir(
        dir.path(),
        Arc::clone(&runtime),
        Arc::clone(&registry),
    )
    .expect("watch");
    let base = registry::builtin_bytes("default").expect("default");
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("h{i}");
        let bytes = with_custom_section(base, i);
        let start = Instant::now();
        std::fs::write(dir.path().join(format!("{name}.wasm")), &bytes).expect("write");
        while registry.get(&name).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "handler {name} never loaded"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(start.elapsed());
    }
    stats(samples)
}

/// Start-up of the real binary with 50 handler files already in the cache:
/// time from spawn to its "started" log line.
fn startup_with_cached_handlers(starts: usize) -> Stats {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = dir.path().join("handlers");
    std::fs::create_dir(&handlers).expect("mkdir");
    let base = registry::builtin_bytes("default").expect("default");
    for i in 0..50 {
        std::fs::write(
            handlers.join(format!("h{i}.wasm")),
            with_custom_section(base, i),
        )
        .expect("write");
    }
    let config = dir.path().join("heartbeat.json");
    std::fs::write(&config, r#"{"checks": {"noop": {"cadenceMs": 3600000}}}"#).expect("config");
    let mut samples = Vec::new();
    for round in 0..=starts {
        let start = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_heartbeat-host"))
            .args(["run", "--agent", "bench", "--config"])
            .arg(&config)
            .arg("--handlers")
            .arg(&handlers)
            .env("HEARTBEAT_CACHE_DIR", dir.path().join("cache"))
            .env("LOG_LEVEL", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn host");
        let stderr = child.stderr.take().expect("stderr");
        let started = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("heartbeat-host started"));
        let took = start.elapsed();
        let _ = child.kill();
        let _ = child.wait();
        assert!(started, "host did not start");
        if round > 0 {
            // Round 0 fills the cache.
            samples.push(took);
        }
    }
    stats(samples)
}

/// Where a fresh run's time goes: the parts of the host's per-run set-up
/// that do not depend on the guest, timed alone.
fn breakdown(rt: &tokio::runtime::Runtime, n: usize) {
    let time = |label: &str, f: &mut dyn FnMut()| {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            f();
            samples.push(start.elapsed());
        }
        let s = stats(samples);
        println!(
            "  {label:<28} median {:9.3} us  p99 {:9.3} us",
            us(s.median),
            us(s.p99)
        );
    };
    println!("per-run set-up, parts timed alone ({n} samples):");
    time("WASI context (empty)", &mut || {
        black_box(wasmtime_wasi::WasiCtxBuilder::new().build());
    });
    let request = noop_request("default");
    time("request clone", &mut || {
        black_box(request.clone());
    });
    time("tokio timeout around a ready future", &mut || {
        rt.block_on(async {
            black_box(
                tokio::time::timeout(Duration::from_secs(10), async { 1 })
                    .await
                    .ok(),
            );
        });
    });
    time("block_on a ready future", &mut || {
        rt.block_on(async { black_box(1) });
    });
}

/// `tests/handlers/kv` built for wasm32-wasip2 into the directory the host's
/// build script uses (as the e2e tests build it), or why not.
fn kv_test_handler() -> Result<std::path::PathBuf, String> {
    let target_dir = std::path::PathBuf::from(env!("HEARTBEAT_WASM_TARGET_DIR"));
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("host/ has no parent")?;
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--profile",
        "wasm-handlers",
        "--target",
        "wasm32-wasip2",
        "-p",
        "test-handler-kv",
    ])
    .arg("--manifest-path")
    .arg(workspace.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("{cmd:?} failed ({status})"));
    }
    Ok(target_dir.join("wasm32-wasip2/wasm-handlers/test_handler_kv.wasm"))
}

/// The key-value store's per-call costs: from inside a guest, then on the
/// host alone. Writes go to a temporary directory (the file system of
/// `TMPDIR`: say which when quoting the figures, fsync is most of a write).
fn kv_figures(rt: &tokio::runtime::Runtime, quick: bool) {
    let n: usize = if quick { 50 } else { 500 };
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "key-value store, 100-byte value, store in {}:",
        dir.path().display()
    );
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    match kv_test_handler() {
        Ok(wasm) => {
            let handler = registry::load_file(&runtime, &wasm).expect("kv test handler loads");
            let mut request = noop_request("kv");
            request.meta = format!(r#"{{"mode": "bench", "n": {n}, "bytes": 100}}"#);
            request.limits.timeout_ms = 600_000;
            request.kv = Some(heartbeat_host::KvLocation::new(dir.path().join("guest")));
            let report = rt.block_on(runtime.run(&handler, &request));
            assert_eq!(
                report.status,
                heartbeat_host::core::model::RunStatus::Success,
                "{:?}",
                report.error
            );
            let ns = |op: &str, at: &str| report.details[op][at].as_f64().unwrap_or(f64::NAN);
            println!(
                "  kv-set from the guest (durable)  median {:9.3} us  p99 {:9.3} us  ({n} calls)",
                ns("setNs", "median") / 1e3,
                ns("setNs", "p99") / 1e3
            );
            println!(
                "  kv-get from the guest            median {:9.3} us  p99 {:9.3} us  ({n} calls)",
                ns("getNs", "median") / 1e3,
                ns("getNs", "p99") / 1e3
            );
        }
        Err(e) => println!("  (guest figures skipped: the kv test handler did not build: {e})"),
    }
    let location = heartbeat_host::KvLocation::new(dir.path().join("host"));
    let mut data = heartbeat_host::bench::KvData::default();
    data.insert("bench".into(), "x".repeat(100));
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        location.save("bench", &data).expect("save");
        samples.push(start.elapsed());
    }
    let save = stats(samples);
    println!(
        "  host write (temp, fsync, rename, fsync dir)  median {:9.3} us  p99 {:9.3} us",
        us(save.median),
        us(save.p99)
    );
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        black_box(location.load("bench").expect("load"));
        samples.push(start.elapsed());
    }
    let load = stats(samples);
    println!(
        "  host read at a run's start (1 key)           median {:9.3} us  p99 {:9.3} us",
        us(load.median),
        us(load.p99)
    );
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        black_box(location.load("never-written").expect("load"));
        samples.push(start.elapsed());
    }
    let missing = stats(samples);
    println!(
        "  host read at a run's start (no store yet)    median {:9.3} us  p99 {:9.3} us",
        us(missing.median),
        us(missing.p99)
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--kv") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio");
        kv_figures(&rt, quick);
        return;
    }
    if std::env::args().any(|a| a == "--fresh-only") {
        // For profilers: fresh-instance runs and nothing else.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio");
        let fresh = fresh_runs(&rt, true, 200_000);
        println!("fresh instance, pooling: median {:.3} us", us(fresh.median));
        return;
    }
    if std::env::args().any(|a| a == "--breakdown") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio");
        breakdown(&rt, 20_000);
        return;
    }
    let n = if quick { 2_000 } else { 20_000 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio");

    let native = native_calls(n);
    let reused = reused_calls(&rt, n);
    let fresh = fresh_runs(&rt, true, n);
    let fresh_no_pool = fresh_runs(&rt, false, n / 4);
    println!("per run, no-op `default` handler ({n} samples):");
    println!(
        "  native Rust call            median {:9.3} us  p99 {:9.3} us",
        us(native.median),
        us(native.p99)
    );
    println!(
        "  one instance reused         median {:9.3} us  p99 {:9.3} us",
        us(reused.median),
        us(reused.p99)
    );
    println!(
        "  fresh instance, pooling     median {:9.3} us  p99 {:9.3} us",
        us(fresh.median),
        us(fresh.p99)
    );
    println!(
        "  fresh instance, on-demand   median {:9.3} us  p99 {:9.3} us",
        us(fresh_no_pool.median),
        us(fresh_no_pool.p99)
    );
    println!(
        "  ratios (medians): fresh/reused {:.1}x, fresh/native {:.0}x, on-demand/pooling {:.1}x",
        fresh.median.as_secs_f64() / reused.median.as_secs_f64(),
        fresh.median.as_secs_f64() / native.median.as_secs_f64().max(1e-9),
        fresh_no_pool.median.as_secs_f64() / fresh.median.as_secs_f64(),
    );

    let reload = file_to_first_run(if quick { 5 } else { 20 });
    println!(
        "handler file written -> servable (compiled, no cache): median {:.1} ms  p99 {:.1} ms",
        reload.median.as_secs_f64() * 1e3,
        reload.p99.as_secs_f64() * 1e3
    );
    let startup = startup_with_cached_handlers(if quick { 3 } else { 10 });
    println!(
        "host start-up with 50 cached handlers: median {:.1} ms  p99 {:.1} ms",
        startup.median.as_secs_f64() * 1e3,
        startup.p99.as_secs_f64() * 1e3
    );
}
