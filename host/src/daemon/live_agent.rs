//! One agent while it is served: what it is served with ([`AgentOptions`])
//! and the live parts its tick loop, its side services and the operations
//! endpoint all read ([`LiveAgent`]). Apart from `agent.rs`, which starts
//! and stops it, so that the side services need nothing of the start-up.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heartbeat_core::health::Health;
use heartbeat_core::processes::Tracker;

use super::pipeline::Pipeline;
use crate::amqp::Bus;

/// What one agent is served with.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Its `heartbeat.json`.
    pub config_path: PathBuf,
    /// Its state file.
    pub state_path: PathBuf,
    /// Its name.
    pub agent: String,
    /// Its handler directory (`*.wasm` named by stem), over the built-ins.
    pub handlers_dir: Option<PathBuf>,
    /// Its own timer's period.
    pub tick_interval: Duration,
    /// RabbitMQ: ticks and control messages in, events out. `None`: its
    /// own timer only.
    pub bus: Option<crate::amqp::BusOptions>,
    /// Without a bus: a JSON-lines file the events are appended to.
    pub events_log: Option<PathBuf>,
    /// Its liveness file (kstlib's format), written every `liveness_period`.
    pub liveness_file: Option<PathBuf>,
    /// How often the liveness file is written.
    pub liveness_period: Duration,
    /// Its own beats on the bus (beatit convention); used only with a bus.
    pub beats: heartbeat_core::beats::BeatOptions,
    /// The most of its runs in flight at once (`--max-runs-per-agent`);
    /// `None`: only the process's cap.
    pub max_runs: Option<u32>,
}

/// An agent while it is served: its options and the parts its tick loop,
/// its side services and the operations endpoint read.
pub(super) struct LiveAgent {
    pub(super) options: AgentOptions,
    pub(super) pipeline: Arc<Pipeline>,
    /// The broker connection, in broker mode.
    pub(super) bus: Option<Arc<Bus>>,
    /// Healthy or degraded, and why.
    pub(super) health: Arc<Health>,
    /// The watched sub-processes, fed by their beats on the bus.
    pub(super) tracker: Arc<Mutex<Tracker>>,
    /// Ticks taken so far (readiness waits for the first).
    pub(super) ticks_seen: AtomicU64,
}
