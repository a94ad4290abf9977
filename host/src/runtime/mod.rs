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
mod connections;
mod kv;
mod names;
mod outcome;
pub mod outgoing_http;
mod redact;
mod refusals;
pub mod registry;
mod request;
mod sandbox;
mod secrets;
mod sockets;
mod stderr;

pub use request::{DirGrant, GrantedValue, RunRequest};

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

use heartbeat_core::model::{MAX_MEMORY_MB, RunReport};

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
    /// The descriptors all runs' connections share.
    descriptors: connections::GuestDescriptors,
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
            names::GrantedSockets,
        >(&mut linker, RunState::sockets_view)
        .map_err(|e| RuntimeError::Link(format!("WASI name lookups: {e:#}")))?;
        // And socket creation, under the run's connection bound
        // (runtime/connections.rs).
        wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::add_to_linker::<
            RunState,
            names::GrantedSockets,
        >(&mut linker, RunState::sockets_view)
        .map_err(|e| RuntimeError::Link(format!("WASI TCP sockets: {e:#}")))?;
        wasmtime_wasi::p2::bindings::sockets::udp_create_socket::add_to_linker::<
            RunState,
            names::GrantedSockets,
        >(&mut linker, RunState::sockets_view)
        .map_err(|e| RuntimeError::Link(format!("WASI UDP sockets: {e:#}")))?;
        linker.allow_shadowing(false);
        // Always linked, so that a handler importing wasi:http loads; with
        // no grant, its every request is refused (runtime/http.rs).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Link(format!("WASI HTTP: {e:#}")))?;
        // The handler world's interfaces, each on the part of the run's
        // data that serves it: `types` and `host` on the run itself, `kv`
        // on the run's key-value session (runtime/kv.rs).
        use bindings::heartbeat::handler::{host as host_interface, kv as kv_interface};
        wit::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Link(format!("the types interface: {e:#}")))?;
        host_interface::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Link(format!("the host interface: {e:#}")))?;
        kv_interface::add_to_linker::<RunState, HasSelf<kv::KvSession>>(&mut linker, |s| &mut s.kv)
            .map_err(|e| RuntimeError::Link(format!("the kv interface: {e:#}")))?;

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
            descriptors: connections::GuestDescriptors::from_process_limit(),
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
        let secrets = match secrets::read_secrets(&request.secret_files) {
            Ok(secrets) => secrets,
            Err(reasons) => return RunReport::failed_before_start(reasons),
        };
        let redactor = redact::Redactor::new(secrets.iter().map(|(_, v)| v.0.as_str()));
        let stderr = stderr::StderrTail::default();
        let refusals = refusals::Refusals::new(&request.check, redactor.clone());
        // The names in `grants.net`, resolved for this run (within its time).
        let resolved = tokio::time::timeout(timeout, sockets::resolve_names(&request.net))
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
                    Ok(result) => outcome::interpret(result, &state, &request.limits, &stderr),
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
        outcome::name_refusals(&mut report, &refusals);
        redactor.report(&mut report);
        report
    }

    fn build_store(
        &self,
        request: &RunRequest,
        deadline: Instant,
        stderr: stderr::StderrTail,
        resolved: Vec<std::net::IpAddr>,
        secrets: &[(String, GrantedValue)],
        refusals: refusals::Refusals,
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
        sockets::grant_sockets(&mut wasi, request, resolved, refusals.clone());
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
        let connections = connections::Connections::new(
            request.limits.max_connections,
            self.descriptors.clone(),
            refusals.clone(),
        );
        let http = outgoing_http::HttpPolicy::new(
            request.http.clone(),
            request.limits.max_http_bytes,
            deadline,
            connections.clone(),
        );
        let names = names::NamePolicy::new(&request.net, &request.http, refusals);
        let mut state = RunState::new(
            wasi.build(),
            http,
            names,
            connections,
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
            refusals::Refusals::default(),
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
