//! The sandbox handlers run in: one wasmtime [`Engine`], a fresh [`Store`]
//! and instance for every run, hard limits on time and memory, and no
//! capability that the check was not granted; [`registry`] holds the
//! handlers in service (the built-ins, overridden by the handler
//! directory's files) and the one rule of which file provides which name.
//!
//! The room knows wasmtime and the core's model (limits, statuses,
//! processes) only: a run comes in as a [`RunRequest`] already built from
//! the config (by `daemon::pipeline::run_request`), so nothing here reads
//! `heartbeat.json` or the state file. It touches the compiled-code cache
//! directory and, during a run, exactly the directories the request grants.

mod cache;
pub mod http;
mod kv;
mod names;
pub mod registry;
mod sandbox;
mod stderr;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
};
use wasmtime_wasi::WasiCtxBuilder;

pub use cache::CompileCache;
use sandbox::RunState;
pub use sandbox::{EmitPolicy, EmittedEvent, LogRecord};

use heartbeat_core::model::{Limits, MAX_MEMORY_MB, ProcessInfo, RunStatus};

/// Bindings of the `handler` world, generated from `wit/`.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "handler",
        // Host functions may trap (a run over its output caps stops at once);
        // `run` is called asynchronously so that a run blocked in a host call
        // (a WASI sleep, say) can still be stopped at its deadline.
        imports: { default: trappable },
        exports: { default: async },
    });
}

use bindings::heartbeat::handler::types as wit;

/// How often the epoch advances: the resolution of run timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How much of a trapped handler's stderr goes into its failure reason.
const STDERR_IN_REASON: usize = 400;

/// The pooling allocator's instance slots: the most runs the host can have
/// in flight at once, and the default and largest `--max-runs-in-flight`.
pub const MAX_CONCURRENT_RUNS: u32 = 128;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled handlers are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator (fast fresh instances). Off only to
    /// measure what it buys.
    pub pooling: bool,
    /// The largest handler file read from disk (`--max-handler-bytes`);
    /// a larger one is refused before it is read whole.
    pub max_handler_bytes: u64,
    /// Runs in flight at once in this process (`--max-runs-in-flight`, at
    /// most [`MAX_CONCURRENT_RUNS`]): a run beyond them waits for a slot,
    /// within its own `timeoutMs`.
    pub max_runs_in_flight: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: CompileCache::default_dir(),
            pooling: true,
            max_handler_bytes: crate::store::read::DEFAULT_MAX_HANDLER_BYTES,
            max_runs_in_flight: MAX_CONCURRENT_RUNS,
        }
    }
}

/// A granted environment value: its `Debug` shows only its length, so a
/// request logged or printed whole never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantedValue(pub String);

impl std::fmt::Debug for GrantedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// What the pooling allocator holds at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolingFigures {
    /// Component instances in use (runs in flight).
    pub component_instances: u64,
    /// Core module instances in use.
    pub core_instances: u64,
    /// Linear memories in use.
    pub memories: u64,
    /// Memory slots kept warm for reuse.
    pub unused_warm_memories: u64,
    /// Bytes those warm slots keep resident.
    pub unused_memory_bytes_resident: u64,
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine's configuration was refused (e.g. the pooling allocator
    /// could not reserve its address space).
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// WASI or the host interface could not be linked.
    #[error("cannot link {0}")]
    Link(String),
    /// The thread that drives timeouts could not start.
    #[error("cannot start the epoch thread: {0}")]
    EpochThread(std::io::Error),
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a component wasmtime can compile.
    #[error("{origin}: not a valid WebAssembly component: {reason}")]
    Compile {
        /// Where the bytes came from.
        origin: String,
        /// The compiler's reason.
        reason: String,
    },
    /// A component, but not one implementing the `handler` world this host speaks.
    #[error("{origin}: does not implement heartbeat:handler/handler@{WIT_VERSION}: {reason}", WIT_VERSION = WIT_VERSION)]
    World {
        /// Where the bytes came from.
        origin: String,
        /// What did not match.
        reason: String,
    },
}

/// A compiled handler, ready to instantiate.
#[derive(Clone)]
pub struct LoadedHandler {
    /// The handler's name (built-in name or file stem).
    pub name: String,
    /// Where it came from: `built-in` or a file path.
    pub origin: String,
    /// The interfaces the component imports, without their versions
    /// (`wasi:http/outgoing-handler`), sorted: what `check` reads to warn
    /// about a capability the handler uses and its check does not grant.
    pub imports: Arc<[String]>,
    pre: bindings::HandlerPre<RunState>,
}

impl std::fmt::Debug for LoadedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedHandler")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Everything one run needs besides the handler.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The tick's id (bus `event_id` or a generated one).
    pub tick_id: String,
    /// The tick's time, ms since epoch.
    pub tick_ms: u64,
    /// The agent.
    pub agent: String,
    /// The tick's envelope as JSON text.
    pub envelope: String,
    /// The check's name.
    pub check: String,
    /// The handler name the check asked for.
    pub handler: String,
    /// The check's cadence.
    pub cadence_ms: u64,
    /// The check's priority.
    pub priority: i64,
    /// The check's `meta` as JSON text.
    pub meta: String,
    /// The check's last run (ms since epoch; 0 when never).
    pub last_run_ms: u64,
    /// The run's limits.
    pub limits: Limits,
    /// Which events the run may emit.
    pub emit_policy: EmitPolicy,
    /// Directories granted to the run: (guest path, host path, read-only).
    pub dirs: Vec<DirGrant>,
    /// Environment variables the check is granted, with the values read
    /// for this run (name as the handler sees it, value); nothing else of
    /// the host's environment reaches the handler.
    pub env: Vec<(String, GrantedValue)>,
    /// Granted secrets (variable name, file). [`Runtime::run`] reads the
    /// files as the run starts, outside any lock of the caller's, gives the
    /// values to the handler as environment variables, and replaces them by
    /// `[redacted]` wherever the handler's logs, events, details or reason
    /// repeat them. A file that cannot be read fails the run before it starts.
    pub secret_files: Vec<(String, PathBuf)>,
    /// The TCP/UDP peers the check may reach (`grants.net`); nothing
    /// when empty (no sockets, no name lookups).
    pub net: Vec<heartbeat_core::net::NetPattern>,
    /// The origins the check may send HTTP requests to (`grants.http`);
    /// every request is refused when empty.
    pub http: Vec<http::HttpGrant>,
    /// The watched processes, as the host sees them when the run starts.
    pub processes: Arc<Vec<ProcessInfo>>,
    /// Where the check's key-value store lives; `None` gives the run no
    /// store (every `kv-*` call fails with a reason). The store is read at
    /// the run's first `kv-*` call, so a run that uses none touches no
    /// file; a corrupt one makes every call fail, naming the file.
    pub kv: Option<crate::store::kv::KvLocation>,
}

/// A host directory made visible to a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The path the handler opens (e.g. `/data`).
    pub guest_path: String,
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Whether writes are refused.
    pub read_only: bool,
}

/// What a run came to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// success, failed or skipped.
    pub status: RunStatus,
    /// The handler's details (JSON), `{}` when it gave none.
    pub details: serde_json::Value,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall-clock time of the run, instantiation included.
    #[serde(rename = "durationUs")]
    pub duration_us: u64,
    /// Log records the handler wrote.
    pub logs: Vec<LogRecord>,
    /// Events the handler emitted.
    pub events: Vec<EmittedEvent>,
    /// Log records dropped over the run's caps.
    #[serde(rename = "droppedLogs")]
    pub dropped_logs: u32,
}

impl RunReport {
    /// A failed run that never reached a handler (e.g. the handler is missing).
    pub fn failed_before_start(reason: String) -> RunReport {
        RunReport {
            status: RunStatus::Failed,
            details: serde_json::json!({}),
            error: Some(reason),
            duration_us: 0,
            logs: Vec::new(),
            events: Vec::new(),
            dropped_logs: 0,
        }
    }
}

/// The engine, the linker and the epoch clock shared by every run.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    cache: Option<CompileCache>,
    stop_epoch: Arc<AtomicBool>,
    max_handler_bytes: u64,
    /// One permit per run in flight ([`RuntimeOptions::max_runs_in_flight`]).
    slots: tokio::sync::Semaphore,
    /// The number of permits `slots` started with.
    slot_count: u32,
}

/// The pooling allocator's shape: slots for [`MAX_CONCURRENT_RUNS`]
/// instances, sized for Python and JavaScript components too, with memory
/// kept resident between runs so that a fresh instance reuses warm pages
/// (copy-on-write images, `pagemap_scan` where the kernel has it).
/// The benches that vary it (`benches/languages.rs`) get it through
/// `heartbeat_host::bench`.
pub fn pooling_config() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_CONCURRENT_RUNS)
        .total_core_instances(MAX_CONCURRENT_RUNS * 16)
        .total_memories(MAX_CONCURRENT_RUNS * 4)
        .total_tables(MAX_CONCURRENT_RUNS * 8)
        .total_stacks(MAX_CONCURRENT_RUNS)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(32)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(100_000)
        .max_core_instance_size(1 << 20)
        .max_component_instance_size(1 << 20)
        .max_memory_size((MAX_MEMORY_MB << 20) as usize)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(1 << 16)
        .pagemap_scan(Enabled::Auto);
    pool
}

impl Runtime {
    /// Builds the engine (pooling allocator, epoch interruption) and links
    /// WASI (with nothing granted by default) and the `host` interface.
    pub fn new(options: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        if options.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
        }
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Link(format!("WASI: {e:#}")))?;
        // The guest's name lookups go through the run's grants
        // (runtime/names.rs), in place of wasmtime-wasi's unrestricted ones.
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::add_to_linker::<
            RunState,
            names::GrantedLookup,
        >(&mut linker, RunState::lookup_view)
        .map_err(|e| RuntimeError::Link(format!("WASI name lookups: {e:#}")))?;
        linker.allow_shadowing(false);
        // Always linked, so that a handler importing wasi:http loads; with
        // no grant, its every request is refused (runtime/http.rs).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Link(format!("WASI HTTP: {e:#}")))?;
        bindings::Handler::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Link(format!("the host interface: {e:#}")))?;

        let stop_epoch = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let stop = Arc::clone(&stop_epoch);
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(RuntimeError::EpochThread)?;
        let cache = options
            .cache_dir
            .clone()
            .map(|dir| CompileCache::new(dir, &engine));
        let slot_count = options.max_runs_in_flight.clamp(1, MAX_CONCURRENT_RUNS);
        Ok(Runtime {
            engine,
            linker,
            cache,
            stop_epoch,
            max_handler_bytes: options.max_handler_bytes,
            slots: tokio::sync::Semaphore::new(slot_count as usize),
            slot_count,
        })
    }

    /// Reads a handler file for [`Runtime::load`]: a regular file of at
    /// most `max_handler_bytes` (a FIFO or a link to a device is refused,
    /// never read).
    pub fn read_handler_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        crate::store::read::read_regular(path, self.max_handler_bytes, "handler component")
    }

    /// The engine, for callers that precompile.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The pooling allocator's figures now (instances and memories in use,
    /// warm slots kept resident); `None` without the pooling allocator.
    pub fn pooling_figures(&self) -> Option<PoolingFigures> {
        let m = self.engine.pooling_allocator_metrics()?;
        Some(PoolingFigures {
            component_instances: m.component_instances(),
            core_instances: m.core_instances(),
            memories: m.memories() as u64,
            unused_warm_memories: u64::from(m.unused_warm_memories()),
            unused_memory_bytes_resident: m.unused_memory_bytes_resident() as u64,
        })
    }

    /// The compiled-code cache, when there is one.
    pub fn cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    /// Compiles `bytes` (or takes them from the cache) and checks that they
    /// implement the handler world.
    pub fn load(&self, name: &str, origin: &str, bytes: &[u8]) -> Result<LoadedHandler, LoadError> {
        let compile_error = |e: wasmtime::Error| LoadError::Compile {
            origin: origin.to_string(),
            reason: format!("{e:#}"),
        };
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::Compile {
                origin: origin.to_string(),
                reason: "not a WebAssembly binary (no \\0asm header)".into(),
            });
        }
        let component = match &self.cache {
            Some(cache) => {
                cache
                    .get_or_compile(&self.engine, bytes)
                    .map_err(compile_error)?
                    .0
            }
            None => Component::new(&self.engine, bytes).map_err(compile_error)?,
        };
        self.prepare(name, origin, &component)
    }

    /// Links a compiled component and checks that it implements the world.
    fn prepare(
        &self,
        name: &str,
        origin: &str,
        component: &Component,
    ) -> Result<LoadedHandler, LoadError> {
        let world_error = |e: wasmtime::Error| LoadError::World {
            origin: origin.to_string(),
            reason: match other_wit_version(&self.engine, component) {
                Some(theirs) => format!(
                    "it was built for {theirs}; this host speaks heartbeat:handler@{WIT_VERSION} ({e:#})"
                ),
                None => format!("{e:#}"),
            },
        };
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(world_error)?;
        let pre = bindings::HandlerPre::new(instance_pre).map_err(world_error)?;
        let mut imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.split_once('@').map_or(name, |(n, _)| n).to_string())
            .collect();
        imports.sort();
        Ok(LoadedHandler {
            name: name.to_string(),
            origin: origin.to_string(),
            imports: imports.into(),
            pre,
        })
    }

    /// Runs `handler` once in a fresh instance. Never panics on guest
    /// behaviour: traps, timeouts and limits become a `failed` report.
    ///
    /// The deadline holds two ways: guest code is interrupted at the next
    /// epoch after it (yielding to the async runtime every epoch until
    /// then), and a run blocked inside a host call is dropped when the
    /// deadline passes.
    ///
    /// A run waits for one of the process's run slots first; the wait
    /// counts toward its `timeoutMs`, and a run that gets no slot within
    /// it fails saying so, without starting.
    pub async fn run(&self, handler: &LoadedHandler, request: &RunRequest) -> RunReport {
        let started = Instant::now();
        let timeout = Duration::from_millis(request.limits.timeout_ms);
        let Ok(Ok(_slot)) = tokio::time::timeout(timeout, self.slots.acquire()).await else {
            let mut report = RunReport::failed_before_start(format!(
                "no run slot free within its timeoutMs ({} ms): this host runs at most {} at once (--max-runs-in-flight)",
                request.limits.timeout_ms, self.slot_count
            ));
            report.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            return report;
        };
        let secrets = match read_secrets(&request.secret_files) {
            Ok(secrets) => secrets,
            Err(reasons) => return RunReport::failed_before_start(reasons),
        };
        let stderr = stderr::StderrTail::default();
        let refusals = http::Refusals::default();
        // The names in `grants.net`, resolved for this run (within its time).
        let resolved = tokio::time::timeout(timeout, resolve_names(&request.net))
            .await
            .unwrap_or_default();
        let mut report = match self.build_store(
            request,
            started + timeout,
            stderr.clone(),
            resolved,
            &secrets,
            refusals.clone(),
        ) {
            Ok(mut store) => {
                let outcome = tokio::time::timeout(
                    timeout + EPOCH_TICK * 2,
                    self.call(handler, &mut store, request),
                )
                .await;
                let state = store.into_data();
                let mut report = match outcome {
                    Ok(result) => interpret(result, &state, &request.limits, &stderr),
                    Err(_elapsed) => RunReport::failed_before_start(format!(
                        "timeout after {} ms (blocked in a host call)",
                        request.limits.timeout_ms
                    )),
                };
                report.logs = state.output.logs;
                report.events = state.output.events;
                report.dropped_logs = state.output.dropped_logs;
                report
            }
            Err(e) => RunReport::failed_before_start(format!("{e:#}")),
        };
        report.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        name_refusals(&mut report, &refusals);
        redact(&mut report, &secrets);
        report
    }

    fn build_store(
        &self,
        request: &RunRequest,
        deadline: Instant,
        stderr: stderr::StderrTail,
        resolved: Vec<std::net::IpAddr>,
        secrets: &[(String, GrantedValue)],
        refusals: http::Refusals,
    ) -> anyhow::Result<Store<RunState>> {
        let kv = match &request.kv {
            Some(location) => {
                kv::KvSession::lazy(location, &request.check, request.limits.max_kv_bytes)
            }
            None => kv::KvSession::none(),
        };
        let mut wasi = WasiCtxBuilder::new();
        // Kept for the failure reason only; the handler cannot read it back.
        wasi.stderr(stderr);
        grant_sockets(&mut wasi, request, resolved, refusals.clone());
        for (name, value) in request.env.iter().chain(secrets) {
            wasi.env(name, &value.0);
        }
        for dir in &request.dirs {
            let perms = if dir.read_only {
                wasmtime_wasi::FsPerms::ReadOnly
            } else {
                wasmtime_wasi::FsPerms::ReadWrite
            };
            wasi.preopened_dir(&dir.host_path, &dir.guest_path, perms)
                .map_err(|e| {
                    anyhow::anyhow!("granted directory {}: {e:#}", dir.host_path.display())
                })?;
        }
        let http = http::HttpPolicy::new(
            request.http.clone(),
            &request.check,
            request.limits.max_http_bytes,
            deadline,
            refusals.clone(),
        );
        let names = names::NamePolicy::new(&request.check, &request.net, &request.http, refusals);
        let mut state = RunState::new(
            wasi.build(),
            http,
            names,
            request.limits,
            request.emit_policy.clone(),
            Arc::clone(&request.processes),
        );
        state.kv = kv;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch: past the deadline, trap; before it, yield to the
        // async runtime so a busy guest does not hog a worker thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        Ok(store)
    }

    async fn call(
        &self,
        handler: &LoadedHandler,
        store: &mut Store<RunState>,
        request: &RunRequest,
    ) -> wasmtime::Result<Result<wit::Outcome, String>> {
        let instance = handler.pre.instantiate_async(&mut *store).await?;
        let (tick, check) = (wit_tick(request), wit_check(request));
        instance.call_run(&mut *store, &tick, &check).await
    }
}

/// One instance kept across calls: the baseline that fresh instances are
/// measured against (`benches/runtime.rs`). Not for running checks: state
/// would leak from one run to the next, which is what fresh instances prevent.
#[cfg(feature = "bench")]
pub struct ReusedInstance {
    store: Store<RunState>,
    instance: bindings::Handler,
    tick: wit::Tick,
    check: wit::Check,
}

#[cfg(feature = "bench")]
impl ReusedInstance {
    /// Calls `run` again on the same instance; true when it returned an outcome.
    pub async fn call(&mut self) -> bool {
        matches!(
            self.instance
                .call_run(&mut self.store, &self.tick, &self.check)
                .await,
            Ok(Ok(_))
        )
    }
}

#[cfg(feature = "bench")]
impl Runtime {
    /// Instantiates `handler` once for repeated calls (see [`ReusedInstance`]).
    pub async fn reused_instance(
        &self,
        handler: &LoadedHandler,
        request: &RunRequest,
    ) -> anyhow::Result<ReusedInstance> {
        let mut store = self.build_store(
            request,
            Instant::now() + Duration::from_secs(24 * 3600),
            stderr::StderrTail::default(),
            Vec::new(),
            &[],
            http::Refusals::default(),
        )?;
        let instance = handler
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(ReusedInstance {
            store,
            instance,
            tick: wit_tick(request),
            check: wit_check(request),
        })
    }
}

fn wit_tick(request: &RunRequest) -> wit::Tick {
    wit::Tick {
        id: request.tick_id.clone(),
        time_ms: request.tick_ms,
        agent: request.agent.clone(),
        envelope: request.envelope.clone(),
    }
}

fn wit_check(request: &RunRequest) -> wit::Check {
    wit::Check {
        name: request.check.clone(),
        handler: request.handler.clone(),
        cadence_ms: request.cadence_ms,
        priority: request.priority,
        meta: request.meta.clone(),
        last_run_ms: request.last_run_ms,
    }
}

/// The version of the `heartbeat:handler` WIT package this host implements.
pub const WIT_VERSION: &str = "0.1.1";

/// The `heartbeat:handler` version a component imports, when it is not one
/// this host can serve (another major, or for 0.x another minor).
fn other_wit_version(engine: &Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let compatible_prefix = WIT_VERSION
        .rsplit_once('.')
        .map_or(WIT_VERSION, |(major_minor, _)| major_minor);
    ty.imports(engine)
        .map(|(name, _)| name)
        .filter_map(|name| name.strip_prefix("heartbeat:handler/"))
        .filter_map(|rest| rest.split_once('@').map(|(_, version)| version))
        .find(|version| !version.starts_with(&format!("{compatible_prefix}.")))
        .map(|version| format!("heartbeat:handler@{version}"))
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_epoch.store(true, Ordering::Relaxed);
    }
}

/// Turns what the guest returned (or how it died) into a report.
fn interpret(
    result: wasmtime::Result<Result<wit::Outcome, String>>,
    state: &RunState,
    limits: &Limits,
    stderr: &stderr::StderrTail,
) -> RunReport {
    // What logs and events left of the run's output cap: details and the
    // reason count toward it too.
    let budget = limits.max_output_bytes.saturating_sub(state.output.bytes);
    let (status, details, error) = match result {
        Ok(Ok(_)) if state.limiter.refused => (
            // The guest survived a refused allocation (and may have said
            // success): the run was over its limit all the same.
            RunStatus::Failed,
            serde_json::json!({}),
            Some(format!("memory limit {} MiB exceeded", limits.memory_mb)),
        ),
        Ok(Ok(outcome)) if outcome.details.len() as u64 > budget => (
            RunStatus::Failed,
            serde_json::json!({}),
            Some(format!(
                "details of {} bytes refused: over the output cap (maxOutputBytes {}, {} used by logs and events)",
                outcome.details.len(),
                limits.max_output_bytes,
                state.output.bytes
            )),
        ),
        Ok(Ok(outcome)) => {
            let status = match outcome.status {
                wit::Status::Success => RunStatus::Success,
                wit::Status::Failed => RunStatus::Failed,
                wit::Status::Skipped => RunStatus::Skipped,
            };
            match parse_details(&outcome.details) {
                Ok(details) => {
                    let left = budget.saturating_sub(outcome.details.len() as u64);
                    let error = (status == RunStatus::Failed)
                        .then(|| bounded_reason(failure_summary(&details), left));
                    (status, details, error)
                }
                Err(e) => (
                    RunStatus::Failed,
                    serde_json::json!({}),
                    Some(format!("handler returned details that are not JSON: {e}")),
                ),
            }
        }
        Ok(Err(message)) => (
            RunStatus::Failed,
            serde_json::json!({}),
            Some(bounded_reason(message, budget)),
        ),
        Err(e) => (
            RunStatus::Failed,
            serde_json::json!({}),
            Some(bounded_reason(
                match stderr.summary(STDERR_IN_REASON) {
                    Some(said) => format!("{}; stderr: {said}", trap_reason(&e, state, limits)),
                    None => trap_reason(&e, state, limits),
                },
                u64::MAX,
            )),
        ),
    };
    RunReport {
        status,
        details,
        error,
        duration_us: 0,
        logs: Vec::new(),
        events: Vec::new(),
        dropped_logs: 0,
    }
}

/// The addresses the DNS names of `patterns` resolve to now; names that do
/// not resolve add nothing (their pattern then allows nothing).
async fn resolve_names(patterns: &[heartbeat_core::net::NetPattern]) -> Vec<std::net::IpAddr> {
    let mut resolved = Vec::new();
    for pattern in patterns {
        if let heartbeat_core::net::NetHost::Name(name) = &pattern.host {
            match tokio::net::lookup_host((name.as_str(), 0)).await {
                Ok(addrs) => resolved.extend(addrs.map(|a| a.ip())),
                Err(e) => tracing::warn!(name = %name, "grants.net name does not resolve: {e}"),
            }
        }
    }
    resolved
}

/// Sockets under `grants.net`, checked by wasmtime-wasi on every bind,
/// connect, send and receive: implicit binds to the wildcard address,
/// connects, sends and receives with a granted peer; never a listener.
/// Without a grant every peer is refused, through the same check, so that
/// the refusal is logged and named in the run's reason; name lookups are
/// allowed only with a grant.
fn grant_sockets(
    wasi: &mut WasiCtxBuilder,
    request: &RunRequest,
    resolved: Vec<std::net::IpAddr>,
    refusals: http::Refusals,
) {
    use wasmtime_wasi::sockets::SocketAddrUse;
    let patterns = Arc::new(request.net.clone());
    let resolved = Arc::new(resolved);
    let check = Arc::new(request.check.clone());
    wasi.allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(!patterns.is_empty() || !request.http.is_empty())
        .socket_addr_check(move |addr, usage| {
            let allowed = match usage {
                // The implicit bind before a connect or send; a listener
                // is refused at `TcpListen`.
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                    addr.ip().is_unspecified() && addr.port() == 0
                }
                SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                    patterns
                        .iter()
                        .any(|p| p.allows(addr.ip(), addr.port(), &resolved))
                }
                _ => false,
            };
            if !allowed {
                tracing::warn!(check = %check, peer = %addr, use_ = ?usage, "socket use refused: not in grants.net");
                refusals.push(format!("socket peer {addr} is not in grants.net"));
            }
            Box::pin(std::future::ready(allowed))
        });
}

/// Adds what the host refused the run (origins, peers) to the reason of a
/// failed run: the handler's own message may not say which grant is missing.
fn name_refusals(report: &mut RunReport, refusals: &http::Refusals) {
    if report.status != RunStatus::Failed {
        return;
    }
    let refused = refusals.list();
    if refused.is_empty() {
        return;
    }
    let said = report.error.take().unwrap_or_default();
    report.error = Some(format!(
        "{said}; refused by the host: {}",
        refused.join("; ")
    ));
}

/// The largest secret file read.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The granted secrets' values (one trailing newline removed), or why one
/// cannot be read: the reason names the secret and its file, never a value.
fn read_secrets(files: &[(String, PathBuf)]) -> Result<Vec<(String, GrantedValue)>, String> {
    let mut secrets = Vec::with_capacity(files.len());
    let mut refused = Vec::new();
    for (name, file) in files {
        match crate::store::read::read_regular_text(file, MAX_SECRET_BYTES, "secret file") {
            Ok(text) => {
                let value = text.strip_suffix('\n').unwrap_or(&text);
                let value = value.strip_suffix('\r').unwrap_or(value);
                secrets.push((name.clone(), GrantedValue(value.to_string())));
            }
            Err(e) => refused.push(format!(
                "secret {name}: cannot read {}: {e}",
                file.display()
            )),
        }
    }
    if refused.is_empty() {
        Ok(secrets)
    } else {
        Err(refused.join("; "))
    }
}

/// What replaces a secret's value wherever a handler repeats it.
pub const REDACTED: &str = "[redacted]";

/// Replaces every granted secret's value in what the run produced (log
/// messages and fields, event payloads, details, the reason) before any of
/// it is logged, published or stored.
fn redact(report: &mut RunReport, secrets: &[(String, GrantedValue)]) {
    let values: Vec<&str> = secrets
        .iter()
        .map(|(_, v)| v.0.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return;
    }
    let clean = |text: &mut String| {
        for value in &values {
            if text.contains(value) {
                *text = text.replace(value, REDACTED);
            }
        }
    };
    for record in &mut report.logs {
        clean(&mut record.message);
        for (key, value) in &mut record.fields {
            clean(key);
            clean(value);
        }
    }
    for event in &mut report.events {
        redact_json(&mut event.payload, &clean);
    }
    redact_json(&mut report.details, &clean);
    if let Some(error) = &mut report.error {
        clean(error);
    }
}

/// [`redact`] over every string and key of a JSON value.
fn redact_json(value: &mut serde_json::Value, clean: &impl Fn(&mut String)) {
    match value {
        serde_json::Value::String(s) => clean(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, clean)),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (mut key, mut v) in entries {
                clean(&mut key);
                redact_json(&mut v, clean);
                map.insert(key, v);
            }
        }
        _ => {}
    }
}

/// The longest failure reason kept: it goes into every log line, event and
/// state file write about the run, so a line of text, not a document.
pub const MAX_REASON_BYTES: usize = 4096;

/// `reason` cut to `budget` (what the guest has left of its output cap; the
/// host's own reasons pass `u64::MAX`) and [`MAX_REASON_BYTES`],
/// at a character boundary, with a marker saying how much was cut.
fn bounded_reason(reason: String, budget: u64) -> String {
    let keep = usize::try_from(budget)
        .unwrap_or(usize::MAX)
        .min(MAX_REASON_BYTES);
    if reason.len() <= keep {
        return reason;
    }
    let mut cut = keep;
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… [reason truncated: {} of {} bytes kept]",
        &reason[..cut],
        cut,
        reason.len()
    )
}

/// The guest's details text as JSON (serde_json refuses nesting deeper than
/// 128 levels, so a deep document fails to parse instead of exhausting the
/// host's stack); its size was bounded by the output cap before this.
fn parse_details(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    if text.trim().is_empty() {
        Ok(serde_json::json!({}))
    } else {
        serde_json::from_str(text)
    }
}

/// The reason recorded for a handler that returned `failed` itself.
fn failure_summary(details: &serde_json::Value) -> String {
    for key in ["error", "reason", "message"] {
        if let Some(text) = details.get(key).and_then(|v| v.as_str()) {
            return text.to_string();
        }
    }
    "handler reported failure".to_string()
}

/// A plain reason for a run that ended in a trap or host error.
fn trap_reason(error: &wasmtime::Error, state: &RunState, limits: &Limits) -> String {
    if state.limiter.refused {
        return format!("memory limit {} MiB exceeded", limits.memory_mb);
    }
    if let Some(cap) = &state.output.cap_hit {
        return cap.clone();
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("timeout after {} ms", limits.timeout_ms),
        Some(Trap::StackOverflow) => {
            "trap: call stack exhausted (unbounded recursion?)".to_string()
        }
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    }
}
