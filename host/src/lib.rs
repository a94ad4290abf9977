//! heartbeat-host: keeps an agent's periodic checks running.
//!
//! On every tick the host reads the agent's `heartbeat.json`, picks the
//! most overdue check, runs its handler, a WebAssembly component, in a
//! sandbox and records the outcome. What it decides is pure and lives in
//! [`heartbeat_core`] (re-exported as [`core`]); this crate does the I/O,
//! one room per step of the data's path (see `docs/architecture.md`):
//!
//! - `source`: where ticks come from ([`Tick`], [`TickDone`], the timer; the
//!   bus in `amqp`) and the [`Clock`];
//! - `daemon`: the wiring, and the [`Pipeline`] that takes a tick through
//!   select → run → record → publish;
//! - `runtime`: the sandbox ([`Runtime`]) and the handlers in service ([`Registry`]);
//! - `publish`: where finished runs go ([`Sink`]: the bus or the events log);
//! - `store`: the state file ([`Store`]), the liveness file, atomic writes;
//! - `watch`: hot reload of `heartbeat.json` and the handler directory;
//! - `amqp`: RabbitMQ, wire-compatible with heartbeat-consumer;
//! - [`cli`]: the command line; the `heartbeat-host` binary only calls
//!   [`cli::main`].
//!
//! The modules are private; what other crates (the benches, the tests,
//! an embedding program) may use is re-exported below.

#![warn(missing_docs)]

pub(crate) mod amqp;
pub mod cli;
pub(crate) mod daemon;
pub(crate) mod observe;
pub(crate) mod publish;
pub(crate) mod runtime;
pub(crate) mod source;
pub(crate) mod store;
pub(crate) mod watch;

pub use heartbeat_core as core;

pub use daemon::pipeline::{PipelineParts, run_request};
pub use daemon::{HostOptions, ManyOptions, Pipeline, ProcessOptions, run, run_many};
pub use heartbeat_core::emit::EmitPolicy;
pub use heartbeat_core::model::{EmittedEvent, LogRecord, RunReport};
pub use publish::{Discard, FinishedRun, Receipt, Sink};
pub use runtime::registry::{Registry, builtin_bytes, builtin_names, load_builtin, load_file};
pub use runtime::{
    CompileCache, DirGrant, LoadError, LoadedHandler, RunRequest, Runtime, RuntimeError,
    RuntimeOptions,
};
pub use source::{Clock, SystemClock, Tick, TickDone};
pub use store::kv::KvLocation;
pub use store::load_config;
pub use store::state::{Saved, Store};

/// RabbitMQ pieces the benches and tests drive directly.
pub mod bus {
    pub use crate::amqp::connect::{connect, parse_url};
    pub use crate::amqp::topology::{Names, declare, declare_exchange};
    pub use crate::amqp::{Bus, BusOptions, ControlRequest, DEFAULT_PREFETCH, OWN_HEADER};
}

/// Hot reload, for the benches that time it.
pub mod reload {
    pub use crate::daemon::config_reload::ConfigWatcher;
    pub use crate::watch::config::WatchOptions;
    pub use crate::watch::handlers::start as watch_handler_dir;
}

/// What only the benchmark harnesses need: the pooling allocator's shape
/// and a reused instance, to measure what a fresh instance per run costs.
#[cfg(feature = "bench")]
pub mod bench {
    pub use crate::runtime::{ReusedInstance, pooling_config};
    pub use crate::store::kv::KvData;
}
