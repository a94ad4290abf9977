//! What one run is asked to do, besides the handler: the tick and check it
//! is told about, its limits, and every grant already resolved from the
//! config (built by `daemon::pipeline::run_request`).

use std::path::PathBuf;
use std::sync::Arc;

use heartbeat_core::model::{Limits, ProcessInfo};

/// A granted environment value: its `Debug` shows only its length, so a
/// request logged or printed whole never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantedValue(pub String);

impl std::fmt::Debug for GrantedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
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
    pub emit_policy: heartbeat_core::emit::EmitPolicy,
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
    pub http: Vec<super::outgoing_http::HttpGrant>,
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
