//! Handlers by language (issue 7), as a bench binary with its own timing
//! so that it reports medians and p99s. For the no-op handler in Rust,
//! Python, JavaScript and C (built from source by
//! `host/benches/noop/build.sh`):
//!
//! - component size, and time to build it from source;
//! - time to compile it (first load: compile, write the cache, link);
//! - time to load it from the compiled-code cache;
//! - per-run overhead with a fresh instance each run, through the host's
//!   own `Runtime::run` (store, WASI context, instantiate, call, drop),
//!   with the pooling allocator and without, and one instance reused as
//!   the baseline;
//! - where a fresh-instance run's time goes (store, instantiate, call,
//!   drop; minor page faults per phase), for each language, under a few
//!   pooling settings, to see what the host can change and what is the
//!   guest's own start-up.
//!
//! `cargo bench -p heartbeat-host --bench languages` (add `-- --quick` for
//! a short run). The components are built into `target/bench-noop/` when
//! missing (`HANDLER_BENCH_REBUILD=1` to rebuild).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{median_p99, ms, noop_request, us};
use heartbeat_host::{LoadedHandler, Runtime, RuntimeOptions};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

const LANGUAGES: [&str; 4] = ["rust", "c", "js", "python"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the repository")
        .to_path_buf()
}

/// The no-op components, built when missing; (language, seconds to build).
fn components(dir: &Path) -> Vec<(String, f64)> {
    let rebuild = std::env::var_os("HANDLER_BENCH_REBUILD").is_some();
    let missing = LANGUAGES
        .iter()
        .any(|l| !dir.join(format!("noop-{l}.wasm")).exists());
    if rebuild || missing {
        let script = repo_root().join("host/benches/noop/build.sh");
        eprintln!(
            "building the no-op handlers: {} {}",
            script.display(),
            dir.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .arg(dir)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run host/benches/noop/build.sh");
        assert!(status.success(), "building the no-op handlers failed");
    }
    std::fs::read_to_string(dir.join("build-times.tsv"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(lang, secs)| Some((lang.to_string(), secs.trim().parse().ok()?)))
        .collect()
}

/// Fresh-instance runs through the host's `Runtime::run`.
fn fresh_runs(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    handler: &LoadedHandler,
    runs: usize,
) -> Vec<Duration> {
    let request = noop_request("noop");
    rt.block_on(async {
        for _ in 0..runs.min(200) {
            let report = runtime.run(handler, &request).await;
            assert_eq!(
                report.status,
                heartbeat_host::core::model::RunStatus::Success,
                "{:?}",
                report.error
            );
        }
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            black_box(runtime.run(handler, &request).await);
            samples.push(started.elapsed());
        }
        samples
    })
}

/// Calls on one instance kept across runs: the guest's own per-call cost.
fn reused_calls(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    handler: &LoadedHandler,
    runs: usize,
) -> Vec<Duration> {
    let request = noop_request("noop");
    rt.block_on(async {
        let mut instance = runtime
            .reused_instance(handler, &request)
            .await
            .expect("instantiate");
        for _ in 0..runs.min(200) {
            assert!(instance.call().await);
        }
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            black_box(instance.call().await);
            samples.push(started.elapsed());
        }
        samples
    })
}

// ---- the breakdown: the same path as the runtime, phase by phase --------

mod probe {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "handler",
        imports: { default: trappable },
        exports: { default: async },
    });
}

use probe::heartbeat::handler::{host as probe_host, types as probe_types};

/// Store data: WASI with nothing granted and a host interface that drops
/// everything (the no-op handlers call none of it).
struct ProbeState {
    wasi: WasiCtx,
    table: ResourceTable,
    grows: Grows,
}

/// Counts `memory.grow` during a run: pages that a fresh instance has to
/// map anew each time.
#[derive(Default)]
struct Grows {
    count: u64,
    bytes: u64,
}

impl wasmtime::ResourceLimiter for Grows {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if current > 0 {
            self.count += 1;
            self.bytes += (desired - current) as u64;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl WasiView for ProbeState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl probe_types::Host for ProbeState {}

impl probe_host::Host for ProbeState {
    fn log(
        &mut self,
        _level: probe_host::Level,
        _message: String,
        _fields: Vec<probe_host::Field>,
    ) -> wasmtime::Result<()> {
        Ok(())
    }
    fn emit(&mut self, _t: String, _p: String) -> wasmtime::Result<Result<(), String>> {
        Ok(Ok(()))
    }
    fn processes(&mut self) -> wasmtime::Result<Vec<probe_host::Process>> {
        Ok(Vec::new())
    }
}

/// No store: the no-op handlers call none of it.
impl probe::heartbeat::handler::kv::Host for ProbeState {
    fn kv_get(&mut self, _key: String) -> wasmtime::Result<Result<Option<String>, String>> {
        Ok(Ok(None))
    }
    fn kv_set(&mut self, _key: String, _value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(Ok(()))
    }
    fn kv_delete(&mut self, _key: String) -> wasmtime::Result<Result<(), String>> {
        Ok(Ok(()))
    }
    fn kv_keys(&mut self) -> wasmtime::Result<Result<Vec<String>, String>> {
        Ok(Ok(Vec::new()))
    }
}

/// An engine set-up to compare.
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    pooling: bool,
    keep_resident: usize,
    table_keep_resident: usize,
    pagemap_scan: Enabled,
}

/// The runtime's own pooling settings (host/src/runtime/mod.rs), and
/// variations of what the host controls per instance.
const VARIANTS: [Variant; 6] = [
    Variant {
        name: "runtime (pooling, keep 1 MiB, pagemap)",
        pooling: true,
        keep_resident: 1 << 20,
        table_keep_resident: 1 << 16,
        pagemap_scan: Enabled::Auto,
    },
    Variant {
        name: "pooling, keep 64 MiB, pagemap",
        pooling: true,
        keep_resident: 64 << 20,
        table_keep_resident: 1 << 20,
        pagemap_scan: Enabled::Auto,
    },
    Variant {
        name: "pooling, keep 64 MiB, no pagemap",
        pooling: true,
        keep_resident: 64 << 20,
        table_keep_resident: 1 << 20,
        pagemap_scan: Enabled::No,
    },
    Variant {
        name: "pooling, keep 4 MiB, no pagemap",
        pooling: true,
        keep_resident: 4 << 20,
        table_keep_resident: 1 << 20,
        pagemap_scan: Enabled::No,
    },
    Variant {
        name: "pooling, keep 0",
        pooling: true,
        keep_resident: 0,
        table_keep_resident: 0,
        pagemap_scan: Enabled::Auto,
    },
    Variant {
        name: "on-demand (no pooling)",
        pooling: false,
        keep_resident: 0,
        table_keep_resident: 0,
        pagemap_scan: Enabled::No,
    },
];

fn engine(variant: Variant) -> Engine {
    Engine::new(&engine_config(variant)).expect("engine")
}

fn engine_config(variant: Variant) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if variant.pooling {
        // The runtime's shape, with 16 slots rather than one per possible
        // concurrent run (a bench runs one at a time), and the variant's
        // per-instance settings.
        let mut pool = heartbeat_host::bench::pooling_config();
        pool.total_component_instances(16)
            .total_core_instances(16 * 16)
            .total_memories(16 * 4)
            .total_tables(16 * 8)
            .total_stacks(16)
            .linear_memory_keep_resident(variant.keep_resident)
            .table_keep_resident(variant.table_keep_resident)
            .pagemap_scan(variant.pagemap_scan);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Minor page faults of this thread so far.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.to_string();
            after.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Median time and faults of each phase of a fresh-instance run.
#[derive(Default, Clone, Copy)]
struct Phases {
    store_us: f64,
    instantiate_us: f64,
    call_us: f64,
    drop_us: f64,
    total_us: f64,
    total_p99_us: f64,
    faults_instantiate: u64,
    faults_call: u64,
    faults_drop: u64,
    /// `memory.grow` calls in one run, and the bytes they added.
    grows: u64,
    grown_bytes: u64,
}

fn phases(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    component: &Component,
    runs: usize,
) -> Phases {
    let mut linker: Linker<ProbeState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("link WASI");
    probe::Handler::add_to_linker::<ProbeState, HasSelf<ProbeState>>(&mut linker, |s| s)
        .expect("link host");
    let pre = probe::HandlerPre::new(linker.instantiate_pre(component).expect("instantiate_pre"))
        .expect("handler world");
    let tick = probe_types::Tick {
        id: "bench".into(),
        time_ms: 1_777_593_600_000,
        agent: "bench".into(),
        envelope: "{}".into(),
    };
    let check = probe_types::Check {
        name: "noop".into(),
        handler: "noop".into(),
        cadence_ms: 0,
        priority: 0,
        meta: "{}".into(),
        last_run_ms: 0,
    };
    rt.block_on(async {
        let one = |count_faults: bool| {
            let pre = &pre;
            let (tick, check) = (&tick, &check);
            async move {
                let f0 = if count_faults { minor_faults() } else { 0 };
                let t0 = Instant::now();
                let state = ProbeState {
                    wasi: WasiCtxBuilder::new().build(),
                    table: ResourceTable::new(),
                    grows: Grows::default(),
                };
                let mut store = Store::new(engine, state);
                store.limiter(|s| &mut s.grows);
                store.set_epoch_deadline(u64::MAX / 2);
                let t1 = Instant::now();
                let f1 = if count_faults { minor_faults() } else { 0 };
                let instance = pre
                    .instantiate_async(&mut store)
                    .await
                    .expect("instantiate");
                let t2 = Instant::now();
                let f2 = if count_faults { minor_faults() } else { 0 };
                let outcome = instance
                    .call_run(&mut store, tick, check)
                    .await
                    .expect("call")
                    .expect("ok");
                black_box(outcome);
                let t3 = Instant::now();
                let f3 = if count_faults { minor_faults() } else { 0 };
                let grown = (store.data().grows.count, store.data().grows.bytes);
                drop(store);
                let t4 = Instant::now();
                let f4 = if count_faults { minor_faults() } else { 0 };
                let _ = f0;
                (
                    [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0],
                    [f2 - f1, f3 - f2, f4 - f3],
                    grown,
                )
            }
        };
        for _ in 0..runs.min(100) {
            one(false).await;
        }
        let mut times: [Vec<Duration>; 5] = Default::default();
        for _ in 0..runs {
            let (t, _, _) = one(false).await;
            for (all, d) in times.iter_mut().zip(t) {
                all.push(d);
            }
        }
        // Faults in a separate pass: reading /proc takes microseconds.
        let mut faults = [Vec::new(), Vec::new(), Vec::new()];
        let mut grown = (0, 0);
        for _ in 0..runs.min(200) {
            let (_, f, g) = one(true).await;
            for (all, n) in faults.iter_mut().zip(f) {
                all.push(n);
            }
            grown = g;
        }
        let med = |v: &mut Vec<u64>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        let [store, inst, call, dropped, total] = times;
        let (total_med, total_p99) = median_p99(total);
        Phases {
            store_us: us(median_p99(store).0),
            instantiate_us: us(median_p99(inst).0),
            call_us: us(median_p99(call).0),
            drop_us: us(median_p99(dropped).0),
            total_us: us(total_med),
            total_p99_us: us(total_p99),
            faults_instantiate: med(&mut faults[0]),
            faults_call: med(&mut faults[1]),
            faults_drop: med(&mut faults[2]),
            grows: grown.0,
            grown_bytes: grown.1,
        }
    })
}

/// Core modules, memories and the largest initial memory of a component,
/// from its bytes (what the pooling allocator has to provide per instance).
fn shape(bytes: &[u8]) -> (usize, usize, u64) {
    let (mut modules, mut memories, mut largest) = (0usize, 0usize, 0u64);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ModuleSection { .. }) => modules += 1,
            Ok(wasmparser::Payload::MemorySection(reader)) => {
                for memory in reader.into_iter().flatten() {
                    memories += 1;
                    largest = largest.max(memory.initial * 65536);
                }
            }
            _ => {}
        }
    }
    (modules, memories, largest)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let dir = repo_root().join("target/bench-noop");
    std::fs::create_dir_all(&dir).expect("target/bench-noop");
    let build_times = components(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    // `--profile LANG`: only fresh-instance runs of LANG for 20 s, under the
    // runtime's settings, for `perf record` to sample (wasm functions are
    // named through /tmp/perf-PID.map).
    if let Some(lang) = args
        .iter()
        .position(|a| a == "--profile")
        .and_then(|i| args.get(i + 1))
    {
        let bytes = std::fs::read(dir.join(format!("noop-{lang}.wasm"))).expect("component");
        let mut config = engine_config(VARIANTS[0]);
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        let engine = Engine::new(&config).expect("engine");
        let component = Component::new(&engine, &bytes).expect("compile");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut rounds = 0;
        while Instant::now() < deadline {
            let p = phases(&rt, &engine, &component, 200);
            rounds += 1;
            eprintln!(
                "{lang} round {rounds}: instantiate {:.1} µs, call {:.1} µs, drop {:.1} µs, faults {}/{}/{}, memory.grow {} ({} KiB)",
                p.instantiate_us,
                p.call_us,
                p.drop_us,
                p.faults_instantiate,
                p.faults_call,
                p.faults_drop,
                p.grows,
                p.grown_bytes / 1024
            );
        }
        return;
    }

    println!("## Handlers by language: no-op handler, one run of this bench");
    println!();
    println!(
        "| language | size | build from source | compile (first load) | load from cache (median of 5) | fresh instance median | p99 | without pooling median | p99 | reused instance median |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut shapes = Vec::new();
    for lang in LANGUAGES {
        let path = dir.join(format!("noop-{lang}.wasm"));
        let bytes = std::fs::read(&path).expect("component");
        shapes.push((lang, shape(&bytes)));
        let slow = matches!(lang, "python" | "js");
        let runs = match (quick, slow) {
            (true, true) => 300,
            (true, false) => 2_000,
            (false, true) => 3_000,
            (false, false) => 20_000,
        };

        let cache = tempfile::tempdir().expect("cache dir");
        let options = RuntimeOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            pooling: true,
            ..RuntimeOptions::default()
        };
        let first = Runtime::new(&options).expect("runtime");
        let started = Instant::now();
        first.load(lang, "bench", &bytes).expect("load");
        let compile = started.elapsed();
        drop(first);

        let runtime = Runtime::new(&options).expect("runtime");
        let mut loads = Vec::new();
        let mut handler = None;
        for _ in 0..5 {
            let started = Instant::now();
            handler = Some(
                runtime
                    .load(lang, "bench", &bytes)
                    .expect("load from cache"),
            );
            loads.push(started.elapsed());
        }
        let handler = handler.expect("loaded");
        let (load, _) = median_p99(loads);
        let (fresh, fresh_p99) = median_p99(fresh_runs(&rt, &runtime, &handler, runs));
        let (reused, _) = median_p99(reused_calls(&rt, &runtime, &handler, runs));
        drop(runtime);

        let unpooled = Runtime::new(&RuntimeOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            pooling: false,
            ..RuntimeOptions::default()
        })
        .expect("runtime");
        let handler = unpooled.load(lang, "bench", &bytes).expect("load");
        let (plain, plain_p99) = median_p99(fresh_runs(&rt, &unpooled, &handler, runs / 2));
        drop(unpooled);

        let built = build_times
            .iter()
            .find(|(l, _)| l == lang)
            .map(|(_, s)| format!("{s:.1} s"))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {lang} | {:.1} KiB | {built} | {:.0} ms | {:.2} ms | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
            bytes.len() as f64 / 1024.0,
            ms(compile),
            ms(load),
            us(fresh),
            us(fresh_p99),
            us(plain),
            us(plain_p99),
            us(reused),
        );
    }

    println!();
    println!("### What a component asks of each instance");
    println!();
    println!("| language | core modules | memories | largest initial memory |");
    println!("| --- | ---: | ---: | ---: |");
    for (lang, (modules, memories, largest)) in &shapes {
        println!(
            "| {lang} | {modules} | {memories} | {:.1} MiB |",
            *largest as f64 / (1 << 20) as f64
        );
    }

    println!();
    println!("### Where a fresh-instance run goes (medians; faults: minor page faults)");
    println!();
    println!(
        "| language | engine | store + WASI | instantiate | call | drop | total median | p99 | faults instantiate / call / drop | memory.grow per run |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for lang in LANGUAGES {
        let bytes = std::fs::read(dir.join(format!("noop-{lang}.wasm"))).expect("component");
        let runs = match (quick, matches!(lang, "python" | "js")) {
            (true, true) => 200,
            (true, false) => 1_000,
            (false, true) => 2_000,
            (false, false) => 10_000,
        };
        // Compiled once; the variants differ only in how instances are
        // allocated, which does not change the machine code.
        let mut compiled: Option<Vec<u8>> = None;
        for variant in VARIANTS {
            let engine = engine(variant);
            let component = match &compiled {
                // SAFETY: the bytes are this process's own `serialize` output,
                // and `deserialize` checks they fit this engine.
                Some(code) => match unsafe { Component::deserialize(&engine, code) } {
                    Ok(component) => component,
                    Err(_) => Component::new(&engine, &bytes).expect("compile"),
                },
                None => {
                    let component = Component::new(&engine, &bytes).expect("compile");
                    compiled = component.serialize().ok();
                    component
                }
            };
            let p = phases(&rt, &engine, &component, runs);
            println!(
                "| {lang} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {} / {} / {} | {} ({} KiB) |",
                variant.name,
                p.store_us,
                p.instantiate_us,
                p.call_us,
                p.drop_us,
                p.total_us,
                p.total_p99_us,
                p.faults_instantiate,
                p.faults_call,
                p.faults_drop,
                p.grows,
                p.grown_bytes / 1024
            );
        }
    }
}
