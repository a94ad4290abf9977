//! What one run of a handler can see and do: the per-run store data, the
//! host functions of the `host` interface, and the limits they enforce.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use std::sync::Arc;

use super::bindings::heartbeat::handler::host::{self, Field, Level};
use super::bindings::heartbeat::handler::types;
use heartbeat_core::emit::EmitPolicy;
use heartbeat_core::model::{EmittedEvent, Limits, LogRecord, ProcessInfo, ProcessState};

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
    http: super::outgoing_http::HttpPolicy,
    http_ctx: wasmtime_wasi_http::WasiHttpCtx,
    names: super::names::NamePolicy,
    connections: super::connections::Connections,
    /// The places of the sockets the run created (see `runtime/connections.rs`).
    sockets: Vec<super::connections::ConnectionPermit>,
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
        http: super::outgoing_http::HttpPolicy,
        names: super::names::NamePolicy,
        connections: super::connections::Connections,
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
            connections,
            sockets: Vec::new(),
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
/// the run's [`super::outgoing_http::HttpPolicy`].
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
    /// The guest's name lookups and socket creation, through the run's
    /// name policy and connection bound.
    pub(super) fn sockets_view(&mut self) -> super::names::SocketsView<'_> {
        super::names::SocketsView {
            inner: wasmtime_wasi::sockets::WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            policy: &self.names,
            connections: &self.connections,
            sockets: &mut self.sockets,
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
        if let Err(refused) = self.emit_policy.check(&event_type) {
            return Ok(Err(refused.to_string()));
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
    use host::Host as _;

    fn connections() -> super::super::connections::Connections {
        super::super::connections::Connections::new(
            16,
            super::super::connections::GuestDescriptors::sized(16),
            super::super::refusals::Refusals::default(),
        )
    }

    fn run_state(agent: &str, granted: &[&str]) -> RunState {
        let granted: Vec<String> = granted.iter().map(|p| p.to_string()).collect();
        RunState::new(
            wasmtime_wasi::WasiCtxBuilder::new().build(),
            super::super::outgoing_http::HttpPolicy::new(
                Vec::new(),
                0,
                std::time::Instant::now(),
                connections(),
            ),
            super::super::names::NamePolicy::default(),
            connections(),
            Limits::default(),
            EmitPolicy::new(agent, &granted),
            Arc::new(Vec::new()),
        )
    }

    #[test]
    fn the_emit_host_function_refuses_another_agents_control_message_and_keeps_nothing() {
        let mut state = run_state("a", &["#"]);
        for forged in [
            "agent.a.sub.control.pause",
            "agent.b.control.pause",
            "agent.a.sub.check.completed",
            "results.b.check.state_changed",
        ] {
            let said = state
                .emit(forged.to_string(), "{}".to_string())
                .expect("a refusal is an error to the guest, not a trap");
            assert!(
                said.as_ref()
                    .is_err_and(|why| why.contains("reserved for the host")),
                "{forged}: {said:?}"
            );
        }
        assert!(state.output.events.is_empty());
        assert_eq!(state.output.bytes, 0);
        let kept = state
            .emit("agent.a.disk".to_string(), "{}".to_string())
            .expect("no trap");
        assert_eq!(kept, Ok(()));
        assert_eq!(state.output.events.len(), 1);
    }
}
