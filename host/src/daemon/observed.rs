//! The one adapter between the daemon and `observe/`: what the rooms say
//! as it happens ([`Observer`]) is recorded into the process's
//! [`Metrics`], and the daemon is what the operations endpoint reads
//! ([`HostView`]): metrics rendered from each agent's live state and the
//! bus's and the pooling allocator's own counters, `/status` as one
//! [`StatusReply`], liveness from the process loop's last turn, readiness
//! from every agent's config, handlers and ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use heartbeat_core::config::CheckConfig;
use heartbeat_core::config::reload::ReloadOutcome;
use heartbeat_core::model::RunReport;
use heartbeat_core::schedule::{self, Plan, Ratio};
use heartbeat_core::soft_hard::Verdict;
use heartbeat_core::time::iso_utc;

use super::fleet::Agents;
use super::live_agent::LiveAgent;
use super::observer::Observer;
use crate::amqp::Bus;
use crate::observe::endpoint::HostView;
use crate::observe::metrics::{
    AgentSnapshot, BusFigures, Metrics, PoolFigures, RunSample, Snapshot, TickSource,
};
use crate::observe::status::{
    AgentStatus, BusStatus, CheckStatus, HealthStatus, HostStatus, ProcessStatus, RunStatus,
    StatusReply,
};
use crate::runtime::Runtime;
use crate::source::{Clock, Tick};
use crate::watch::handlers::HandlerFileOutcome;

impl Observer for Metrics {
    fn tick_taken(&self, source: TickSource) {
        self.record_tick(source);
    }

    fn tick_planned(&self, plan: &Plan) {
        self.record_plan(plan);
    }

    fn run_recorded(
        &self,
        agent: &str,
        tick: &Tick,
        check: &CheckConfig,
        report: &RunReport,
        verdict: &Verdict,
    ) {
        self.record_run(RunSample {
            agent,
            at_ms: tick.time_ms,
            check: &check.name,
            handler: &check.handler,
            status: report.status,
            duration_us: report.duration_us,
            error: report.error.as_deref(),
        });
        if let Some(change) = &verdict.change {
            self.record_state_change(agent, &check.name, change.kind.as_str());
        }
    }

    fn config_read(&self, outcome: &ReloadOutcome) {
        self.record_config_reload(match outcome {
            ReloadOutcome::Applied { .. } => "applied",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Restored => "restored",
            ReloadOutcome::Refused(_) => "refused",
            ReloadOutcome::Missing | ReloadOutcome::StillMissing => "missing",
        });
    }

    fn handler_file(&self, outcome: HandlerFileOutcome) {
        self.record_handler_reload(outcome.as_str());
    }
}

/// The bus's own counters, as the metrics read them.
fn bus_figures(bus: &Bus) -> BusFigures {
    let m = bus.metrics();
    BusFigures {
        connected: bus.is_connected(),
        reconnects: m.reconnects.load(Ordering::Relaxed),
        published: m.published.load(Ordering::Relaxed),
        spooled: m.spooled.load(Ordering::Relaxed),
        outbox_depth: m.outbox_depth.load(Ordering::Relaxed),
        outbox_dropped: m.outbox_dropped.load(Ordering::Relaxed),
        dead_lettered: m.dead_lettered.load(Ordering::Relaxed),
    }
}

/// The pooling allocator's figures, if it is in use.
fn pool_figures(runtime: &Runtime) -> Option<PoolFigures> {
    runtime.pooling_figures().map(|p| PoolFigures {
        component_instances: p.component_instances,
        memories: p.memories,
        warm_memories: p.unused_warm_memories,
        warm_memory_bytes: p.unused_memory_bytes_resident,
    })
}

/// How long the tick loop may go without a turn before `/healthz` fails:
/// it turns at least once a second (its notify timer).
const LOOP_SILENCE_MS: u64 = 5_000;

/// The running host, read by the endpoint.
pub(super) struct Observed {
    /// The process's metrics, which the agents record into.
    pub(super) metrics: Arc<Metrics>,
    pub(super) agents: Arc<Agents>,
    pub(super) runtime: Arc<Runtime>,
    pub(super) clock: Arc<dyn Clock>,
    /// When the process loop last turned (ms since the epoch).
    pub(super) last_turn_ms: Arc<AtomicU64>,
}

impl HostView for Observed {
    fn metrics(&self) -> String {
        let now = self.clock.now_ms();
        let agents = self.agents.live();
        let taken: Vec<_> = agents
            .iter()
            .map(|live| {
                let pipeline = &live.pipeline;
                let config = pipeline.config();
                let state = pipeline.state();
                let running = pipeline.running();
                let plan = schedule::plan(&config, &state, &running, now);
                let processes = live
                    .tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .snapshot(now);
                (live, config, state, running, plan, processes)
            })
            .collect();
        let snapshots: Vec<AgentSnapshot<'_>> = taken
            .iter()
            .map(
                |(live, config, state, running, plan, processes)| AgentSnapshot {
                    agent: &live.options.agent,
                    plan,
                    names: config.checks.iter().map(|c| c.name.as_str()).collect(),
                    state,
                    running,
                    processes,
                    health: live.health.status(),
                    bus: live.bus.as_deref().map(bus_figures),
                },
            )
            .collect();
        self.metrics.render(&Snapshot {
            agents: &snapshots,
            pool: pool_figures(&self.runtime),
        })
    }

    fn status(&self, agent: Option<&str>) -> Option<StatusReply> {
        let agents = self.agents.live();
        let one = |live: &LiveAgent| StatusReply::Agent(Box::new(self.status_of(live)));
        match agent {
            Some(name) => agents
                .iter()
                .find(|a| a.options.agent == name)
                .map(|a| one(a)),
            None if !self.agents.many => agents.first().map(|a| one(a)),
            None => Some(StatusReply::Host(HostStatus {
                at: iso_utc(self.clock.now_ms()),
                agents: agents.iter().map(|a| self.status_of(a)).collect(),
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
        let agents = self.agents.live();
        for live in &agents {
            let mut own = Vec::new();
            agent_readiness(live, &mut own);
            if self.agents.many {
                let name = &live.options.agent;
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
fn agent_readiness(live: &LiveAgent, reasons: &mut Vec<String>) {
    let health = &live.health;
    if health.config_invalid() {
        reasons.push(format!(
            "{} is invalid; running on the last good config",
            live.options.config_path.display()
        ));
    }
    let pipeline = &live.pipeline;
    for check in &pipeline.config().checks {
        if let Err(e) = pipeline
            .registry()
            .resolve(&check.handler, pipeline.handlers_dir())
        {
            reasons.push(format!("check {}: {e}", check.name));
        }
    }
    if live.ticks_seen.load(Ordering::Relaxed) == 0 {
        reasons.push("no tick has arrived yet".to_string());
    } else if health.tick_source_silent() {
        reasons.push("the tick source has gone silent".to_string());
    }
}

impl Observed {
    /// One agent's `/status`.
    fn status_of(&self, live: &LiveAgent) -> AgentStatus {
        let now = self.clock.now_ms();
        let pipeline = &live.pipeline;
        let config = pipeline.config();
        let state = pipeline.state();
        let running = pipeline.running();
        let explanation = heartbeat_core::explain::explain_live(&config, &state, &running, now);
        let checks = explanation
            .checks
            .iter()
            .map(|c| {
                let record = state.checks.get(&c.name);
                CheckStatus {
                    name: c.name.clone(),
                    handler: c.handler.clone(),
                    status: c.status(),
                    reason: c.reason(),
                    ratio: match c.ratio {
                        Ratio::Finite(r) => Some(r),
                        Ratio::Infinite => None,
                    },
                    running: running.contains(&c.name),
                    last_run: (c.last_run_ms > 0).then(|| iso_utc(c.last_run_ms)),
                    next_due: c.next_due_ms.map(iso_utc),
                    last_status: record.and_then(|r| r.last_status).map(|s| s.to_string()),
                    last_error: record.and_then(|r| r.last_error.clone()),
                    consecutive_failures: record.map_or(0, |r| r.consecutive_failures),
                    state: c.health.as_str().to_string(),
                    state_text: c.state(),
                    attempt: c.attempt,
                    max_attempts: c.max_attempts,
                    flapping: c.flapping,
                    state_since: record.and_then(|r| r.state_since).map(iso_utc),
                }
            })
            .collect();
        let recent_runs = self
            .metrics
            .recent_runs(&live.options.agent)
            .into_iter()
            .map(|r| RunStatus {
                at: iso_utc(r.at_ms),
                check: r.check,
                handler: r.handler,
                status: r.status,
                duration_ms: r.duration_ms,
                error: r.error,
            })
            .collect();
        let processes = live
            .tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot(now)
            .into_iter()
            .map(|p| ProcessStatus {
                name: p.name,
                status: p.status.as_str().to_string(),
                last_message: p.last_message,
                last_seen: iso_utc(p.last_seen_ms),
            })
            .collect();
        let bus = live.bus.as_deref().map(|bus| {
            let f = bus_figures(bus);
            BusStatus {
                connected: f.connected,
                reconnects: f.reconnects,
                events_published: f.published,
                outbox_spooled: f.spooled,
                outbox_events: f.outbox_depth,
                outbox_dropped: f.outbox_dropped,
                outbox_dead_lettered: f.dead_lettered,
            }
        });
        let health = live.health.status();
        AgentStatus {
            agent: live.options.agent.clone(),
            at: iso_utc(now),
            health: HealthStatus {
                status: health.as_str().to_string(),
                reasons: health.reasons().to_vec(),
            },
            max_per_tick: config.max_per_tick,
            selected_now: explanation.selected,
            checks,
            recent_runs,
            processes,
            bus,
        }
    }
}
