//! What one run of a handler can see and do: the per-run store data, the
//! host functions of the `host` interface, and the limits they enforce.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use std::sync::Arc;

use super::bindings::heartbeat::handler::host::{self, Field, Level};
use super::bindings::heartbeat::handler::types;
use heartbeat_core::model::Limits;
use heartbeat_core::model::{ProcessInfo, ProcessState};

/// A log record a handler wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogRecord {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message.
    pub message: String,
    /// Structured fields, in the order given.
    pub fields: Vec<(String, String)>,
}

/// An event a handler emitted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EmittedEvent {
    /// The event type, also its routing key.
    pub event_type: String,
    /// The payload.
    pub payload: serde_json::Value,
}

/// Which event types a run may emit.
#[derive(Debug, Clone, Default)]
pub struct EmitPolicy {
    /// Types starting with this prefix are allowed (`agent.<agent>.`).
    pub own_prefix: String,
    /// Further AMQP-style patterns (`*` one word, `#` any words) granted.
    pub extra: Vec<String>,
}

/// The longest routing key AMQP can carry (a short string): a longer one
/// makes the broker close the connection, so it is refused at the emit.
pub const MAX_ROUTING_KEY_BYTES: usize = 255;

impl EmitPolicy {
    /// Whether `event_type` may be emitted.
    pub fn allows(&self, event_type: &str) -> bool {
        self.refusal(event_type).is_none()
    }

    /// Why `event_type` may not be emitted, if it may not: longer than a
    /// routing key can be, one of the host's own event types (a check's
    /// result or a control message: no handler may forge them, whatever it
    /// is granted), or outside the check's namespace and grants.
    pub fn refusal(&self, event_type: &str) -> Option<String> {
        if event_type.len() > MAX_ROUTING_KEY_BYTES {
            return Some(format!(
                "event type of {} bytes is refused: a routing key holds at most {MAX_ROUTING_KEY_BYTES}",
                event_type.len()
            ));
        }
        if let Some(own) = event_type.strip_prefix(&self.own_prefix)
            && (own == "check.completed"
                || own == "check.state_changed"
                || own.starts_with("control.")
                || own == "control")
        {
            return Some(format!(
                "event type {event_type:?} is reserved for the host (check results, state changes and control messages)"
            ));
        }
        let allowed = (event_type.starts_with(&self.own_prefix)
            && event_type.len() > self.own_prefix.len())
            || self
                .extra
                .iter()
                .any(|p| heartbeat_core::topic::matches(p, event_type));
        (!allowed).then(|| {
            format!(
                "event type {event_type:?} is not allowed: a check may emit under \"{}…\" unless granted more",
                self.own_prefix
            )
        })
    }
}

/// What a run wrote through the host functions, within its caps.
#[derive(Debug, Default)]
pub struct RunOutput {
    /// Log records kept.
    pub logs: Vec<LogRecord>,
    /// Events kept.
    pub events: Vec<EmittedEvent>,
    /// Log records dropped over the caps.
    pub dropped_logs: u32,
    /// Bytes written through log and emit so far.
    pub bytes: u64,
    /// The output cap the run hit (it was stopped there), if any.
    pub cap_hit: Option<String>,
}

/// The store data of one run.
pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: super::http::HttpPolicy,
    http_ctx: wasmtime_wasi_http::WasiHttpCtx,
    names: super::names::NamePolicy,
    pub(super) limiter: MemoryLimiter,
    pub(super) output: RunOutput,
    limits: Limits,
    emit_policy: EmitPolicy,
    processes: Arc<Vec<ProcessInfo>>,
    /// The check's key-value store (`runtime/kv.rs`); none until `build_store` opens it.
    pub(super) kv: super::kv::KvSession,
}

impl RunState {
    pub(super) fn new(
        wasi: WasiCtx,
        http: super::http::HttpPolicy,
        names: super::names::NamePolicy,
        limits: Limits,
        emit_policy: EmitPolicy,
        processes: Arc<Vec<ProcessInfo>>,
    ) -> RunState {
        RunState {
            wasi,
            table: ResourceTable::new(),
            http,
            http_ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
            names,
            limiter: MemoryLimiter::new(limits.memory_mb),
            output: RunOutput::default(),
            limits,
            emit_policy,
            processes,
            kv: super::kv::KvSession::none(),
        }
    }

    /// Counts `len` bytes against the output cap; a trap when over it.
    fn take_bytes(&mut self, len: usize) -> wasmtime::Result<()> {
        let next = self.output.bytes.saturating_add(len as u64);
        if next > self.limits.max_output_bytes {
            return self.stop(format!(
                "output cap reached: at most {} bytes of logs and events per run",
                self.limits.max_output_bytes
            ));
        }
        self.output.bytes = next;
        Ok(())
    }

    /// Stops the run over a cap: records why and traps.
    fn stop(&mut self, reason: String) -> wasmtime::Result<()> {
        self.output.cap_hit = Some(reason.clone());
        Err(wasmtime::Error::msg(reason))
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `wasi:http` shares the run's resource table; every request goes through
/// the run's [`super::http::HttpPolicy`].
impl wasmtime_wasi_http::WasiHttpView for RunState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            hooks: &mut self.http,
            table: &mut self.table,
            ctx: &mut self.http_ctx,
        }
    }
}

impl RunState {
    /// The guest's name lookups, through the run's name policy.
    pub(super) fn lookup_view(&mut self) -> super::names::LookupView<'_> {
        super::names::LookupView {
            inner: wasmtime_wasi::sockets::WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            policy: &self.names,
        }
    }
}

impl types::Host for RunState {}

impl host::Host for RunState {
    fn log(&mut self, level: Level, message: String, fields: Vec<Field>) -> wasmtime::Result<()> {
        if self.output.logs.len() >= self.limits.max_log_lines as usize {
            self.output.dropped_logs = self.output.dropped_logs.saturating_add(1);
            return self.stop(format!(
                "log cap reached: at most {} log records per run",
                self.limits.max_log_lines
            ));
        }
        let len = message.len()
            + fields
                .iter()
                .map(|f| f.key.len() + f.value.len())
                .sum::<usize>();
        if let Err(e) = self.take_bytes(len) {
            self.output.dropped_logs = self.output.dropped_logs.saturating_add(1);
            return Err(e);
        }
        self.output.logs.push(LogRecord {
            level: match level {
                Level::Trace => "trace",
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            },
            message,
            fields: fields.into_iter().map(|f| (f.key, f.value)).collect(),
        });
        Ok(())
    }

    fn emit(
        &mut self,
        event_type: String,
        payload: String,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Some(refused) = self.emit_policy.refusal(&event_type) {
            return Ok(Err(refused));
        }
        if self.output.events.len() >= self.limits.max_events as usize {
            self.stop(format!(
                "event cap reached: at most {} events per run",
                self.limits.max_events
            ))?;
        }
        let payload: serde_json::Value = match serde_json::from_str(&payload) {
            Ok(payload) => payload,
            Err(e) => return Ok(Err(format!("payload is not JSON: {e}"))),
        };
        self.take_bytes(event_type.len() + payload.to_string().len())?;
        self.output.events.push(EmittedEvent {
            event_type,
            payload,
        });
        Ok(Ok(()))
    }

    fn processes(&mut self) -> wasmtime::Result<Vec<host::Process>> {
        Ok(self
            .processes
            .iter()
            .map(|p| host::Process {
                name: p.name.clone(),
                status: match p.status {
                    ProcessState::Starting => host::ProcessStatus::Starting,
                    ProcessState::Alive => host::ProcessStatus::Alive,
                    ProcessState::Degraded => host::ProcessStatus::Degraded,
                    ProcessState::Late => host::ProcessStatus::Late,
                    ProcessState::Dead => host::ProcessStatus::Dead,
                    ProcessState::Stopped => host::ProcessStatus::Stopped,
                },
                last_message: p.last_message.clone(),
                last_seen_ms: p.last_seen_ms,
                expected_by_ms: p.expected_by_ms,
            })
            .collect())
    }
}

/// Caps linear memory and remembers when it said no, so a handler that dies
/// of a refused allocation is reported as over its memory limit.
pub(super) struct MemoryLimiter {
    max_bytes: usize,
    pub(super) refused: bool,
}

/// Table growth is not a configurable limit; this bounds it against abuse.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl MemoryLimiter {
    fn new(memory_mb: u64) -> MemoryLimiter {
        MemoryLimiter {
            max_bytes: usize::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            refused: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_policy_keeps_handlers_in_their_namespace() {
        let policy = EmitPolicy {
            own_prefix: "agent.cack.".into(),
            extra: vec!["alerts.*".into()],
        };
        assert!(policy.allows("agent.cack.sub_health"));
        assert!(!policy.allows("agent.cack."));
        assert!(!policy.allows("agent.other.sub_health"));
        assert!(!policy.allows("system.heartbeat.tick"));
        assert!(policy.allows("alerts.disk"));
    }

    #[test]
    fn hardening_1_a_routing_key_longer_than_amqp_carries_is_refused_at_the_emit() {
        let policy = EmitPolicy {
            own_prefix: "agent.cack.".into(),
            extra: vec!["#".into()],
        };
        let at_limit = format!("agent.cack.{}", "k".repeat(MAX_ROUTING_KEY_BYTES - 11));
        assert_eq!(at_limit.len(), MAX_ROUTING_KEY_BYTES);
        assert!(policy.allows(&at_limit));
        let over = format!("{at_limit}k");
        assert_eq!(
            policy.refusal(&over).as_deref(),
            Some("event type of 256 bytes is refused: a routing key holds at most 255")
        );
    }

    #[test]
    fn hardening_8_the_hosts_own_event_types_are_reserved_even_under_a_grant() {
        let policy = EmitPolicy {
            own_prefix: "agent.cack.".into(),
            extra: vec!["#".into()],
        };
        for forged in [
            "agent.cack.check.completed",
            "agent.cack.control.pause",
            "agent.cack.control.run",
            "agent.cack.control",
        ] {
            let why = policy.refusal(forged).unwrap_or_default();
            assert!(why.contains("reserved for the host"), "{forged}: {why:?}");
        }
        assert!(policy.allows("agent.cack.check.completed.extra"));
        assert!(policy.allows("agent.cack.controller"));
        assert!(policy.allows("agent.other.check.completed"));
    }
}
