//! The daemon as the operations endpoint sees it ([`HostView`]): metrics
//! rendered from each agent's live state, liveness from the process loop's
//! last turn, readiness from every agent's config, handlers and ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use heartbeat_core::schedule;

use super::agent::Shared;
use super::fleet::Agents;
use crate::observe::http::HostView;
use crate::observe::metrics::{AgentSnapshot, BusFigures, Snapshot};
use crate::runtime::Runtime;
use crate::source::Clock;

/// How long the tick loop may go without a turn before `/healthz` fails:
/// it turns at least once a second (its notify timer).
const LOOP_SILENCE_MS: u64 = 5_000;

/// The running host, read by the endpoint.
pub(super) struct Observed {
    pub(super) agents: Arc<Agents>,
    pub(super) runtime: Arc<Runtime>,
    pub(super) clock: Arc<dyn Clock>,
    /// When the process loop last turned (ms since the epoch).
    pub(super) last_turn_ms: Arc<AtomicU64>,
}

impl HostView for Observed {
    fn metrics(&self) -> String {
        let now = self.clock.now_ms();
        let agents = self.agents.shared();
        let taken: Vec<_> = agents
            .iter()
            .map(|shared| {
                let pipeline = &shared.pipeline;
                let config = pipeline.config();
                let state = pipeline.state();
                let running = pipeline.running();
                let plan = schedule::plan(&config, &state, &running, now);
                let processes = shared
                    .tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .snapshot(now);
                (shared, config, state, running, plan, processes)
            })
            .collect();
        let snapshots: Vec<AgentSnapshot<'_>> = taken
            .iter()
            .map(
                |(shared, config, state, running, plan, processes)| AgentSnapshot {
                    agent: &shared.options.agent,
                    plan,
                    names: config.checks.iter().map(|c| c.name.as_str()).collect(),
                    state,
                    running,
                    processes,
                    health: shared.health.status(),
                    bus: shared
                        .bus
                        .as_ref()
                        .map(|bus| BusFigures::read(bus.is_connected(), bus.metrics())),
                },
            )
            .collect();
        crate::observe::METRICS.render(&Snapshot {
            agents: &snapshots,
            pool: self.runtime.pooling_figures(),
        })
    }

    fn status(&self, agent: Option<&str>) -> Option<serde_json::Value> {
        let agents = self.agents.shared();
        match agent {
            Some(name) => agents
                .iter()
                .find(|a| a.options.agent == name)
                .map(|a| self.status_of(a)),
            None if !self.agents.many => agents.first().map(|a| self.status_of(a)),
            None => Some(serde_json::json!({
                "at": heartbeat_core::time::iso_utc(self.clock.now_ms()),
                "agents": agents.iter().map(|a| self.status_of(a)).collect::<Vec<_>>(),
            })),
        }
    }

    fn alive(&self) -> Result<(), String> {
        let silent = self
            .clock
            .now_ms()
            .saturating_sub(self.last_turn_ms.load(Ordering::Relaxed));
        if silent > LOOP_SILENCE_MS {
            Err(format!("the tick loop has not turned for {silent} ms"))
        } else {
            Ok(())
        }
    }

    fn ready(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        let agents = self.agents.shared();
        for shared in &agents {
            let mut own = Vec::new();
            agent_readiness(shared, &mut own);
            if self.agents.many {
                let name = &shared.options.agent;
                reasons.extend(own.into_iter().map(|r| format!("agent {name}: {r}")));
            } else {
                reasons.extend(own);
            }
        }
        if self.agents.many && agents.is_empty() {
            reasons.push("no agent is served (no valid agent file)".to_string());
        }
        if let Err(why) = self.alive() {
            reasons.push(why);
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

/// Why one agent is not ready: its config is invalid on disk, a check's
/// handler is missing, or no tick has come (or they stopped coming).
fn agent_readiness(shared: &Shared, reasons: &mut Vec<String>) {
    let health = &shared.health;
    if health.config_invalid() {
        reasons.push(format!(
            "{} is invalid; running on the last good config",
            shared.options.config_path.display()
        ));
    }
    let pipeline = &shared.pipeline;
    for check in &pipeline.config().checks {
        if let Err(e) = pipeline
            .registry()
            .resolve(&check.handler, pipeline.handlers_dir())
        {
            reasons.push(format!("check {}: {e}", check.name));
        }
    }
    if shared.ticks_seen.load(Ordering::Relaxed) == 0 {
        reasons.push("no tick has arrived yet".to_string());
    } else if health.tick_source_silent() {
        reasons.push("the tick source has gone silent".to_string());
    }
}

impl Observed {
    /// One agent's `/status`.
    fn status_of(&self, shared: &Shared) -> serde_json::Value {
        use heartbeat_core::time::iso_utc;
        let now = self.clock.now_ms();
        let pipeline = &shared.pipeline;
        let config = pipeline.config();
        let state = pipeline.state();
        let running = pipeline.running();
        let explanation = heartbeat_core::explain::explain_live(&config, &state, &running, now);
        let checks: Vec<serde_json::Value> = explanation
            .checks
            .iter()
            .map(|c| {
                let record = state.checks.get(&c.name);
                serde_json::json!({
                    "name": c.name,
                    "handler": c.handler,
                    "status": c.status(),
                    "reason": c.reason(),
                    "ratio": match c.ratio {
                        heartbeat_core::schedule::Ratio::Finite(r) => Some(r),
                        heartbeat_core::schedule::Ratio::Infinite => None,
                    },
                    "running": running.contains(&c.name),
                    "lastRun": (c.last_run_ms > 0).then(|| iso_utc(c.last_run_ms)),
                    "nextDue": c.next_due_ms.map(iso_utc),
                    "lastStatus": record.and_then(|r| r.last_status).map(|s| s.to_string()),
                    "lastError": record.and_then(|r| r.last_error.clone()),
                    "consecutiveFailures": record.map_or(0, |r| r.consecutive_failures),
                    "state": c.health.as_str(),
                    "stateText": c.state(),
                    "attempt": c.attempt,
                    "maxAttempts": c.max_attempts,
                    "flapping": c.flapping,
                    "stateSince": record.and_then(|r| r.state_since).map(iso_utc),
                })
            })
            .collect();
        let runs: Vec<serde_json::Value> = crate::observe::METRICS
            .recent_runs(&shared.options.agent)
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "at": iso_utc(r.at_ms), "check": r.check, "handler": r.handler,
                    "status": r.status, "durationMs": r.duration_ms, "error": r.error,
                })
            })
            .collect();
        let processes: Vec<serde_json::Value> = shared
            .tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot(now)
            .into_iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name, "status": p.status.as_str(),
                    "lastMessage": p.last_message, "lastSeen": iso_utc(p.last_seen_ms),
                })
            })
            .collect();
        let bus = shared.bus.as_ref().map(|bus| {
            let f = BusFigures::read(bus.is_connected(), bus.metrics());
            serde_json::json!({
                "connected": f.connected, "reconnects": f.reconnects,
                "eventsPublished": f.published, "outboxSpooled": f.spooled,
                "outboxEvents": f.outbox_depth,
                "outboxDropped": f.outbox_dropped, "outboxDeadLettered": f.dead_lettered,
            })
        });
        let health = shared.health.status();
        serde_json::json!({
            "agent": shared.options.agent,
            "at": iso_utc(now),
            "health": {"status": health.as_str(), "reasons": health.reasons()},
            "maxPerTick": config.max_per_tick,
            "selectedNow": explanation.selected,
            "checks": checks,
            "recentRuns": runs,
            "processes": processes,
            "bus": bus,
        })
    }
}
