//! The host's Prometheus metrics, named per the Prometheus naming guide
//! (`heartbeat_` prefix, base units, `_total` on counters) and labelled
//! only by bounded sets: agent, check, handler, status, state, change,
//! source, reason, result (every per-check family carries its agent, so
//! that one host serving many agents keeps them apart).
//! Never a tick id or an emitted routing key.
//!
//! The process holds one [`Metrics`], counted from start-up whether or not
//! the endpoint is on (each update is an atomic add) and served when it
//! is; the daemon's adapter (`daemon/observed.rs`) is what records into it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use heartbeat_core::health::HealthStatus;
use heartbeat_core::model::{CheckHealth, ProcessInfo, ProcessState, RunStatus};
use heartbeat_core::schedule::{NotRunning, Plan, Ratio};
use heartbeat_core::state::State;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    agent: String,
    check: String,
    handler: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    agent: String,
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckStateLabels {
    agent: String,
    check: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    agent: String,
    check: String,
    change: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// Where a tick came from.
#[derive(Debug, Clone, Copy)]
pub enum TickSource {
    /// A `system.heartbeat.tick` from the broker.
    Bus,
    /// The host's own timer, with no broker configured.
    Timer,
    /// The host's own timer standing in for a silent or lost bus.
    Fallback,
}

/// A float gauge.
type FloatGauge = Gauge<f64, AtomicU64>;

/// How many finished runs `/status` shows.
pub const RECENT_RUNS: usize = 50;

/// One finished run, for `/status`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentRun {
    /// The agent.
    pub agent: String,
    /// The tick's time (ms since epoch).
    pub at_ms: u64,
    /// The check.
    pub check: String,
    /// Its handler.
    pub handler: String,
    /// `success`, `failed` or `skipped`.
    pub status: String,
    /// How long it took, in ms.
    pub duration_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// One run that ended, as the metrics count it.
#[derive(Debug, Clone, Copy)]
pub struct RunSample<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The tick's time (ms since epoch).
    pub at_ms: u64,
    /// The check.
    pub check: &'a str,
    /// Its handler.
    pub handler: &'a str,
    /// How it ended.
    pub status: RunStatus,
    /// How long it took, in µs.
    pub duration_us: u64,
    /// Why it failed.
    pub error: Option<&'a str>,
}

/// Every family the host exports, and the last runs.
pub struct Metrics {
    recent: Mutex<VecDeque<RecentRun>>,
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    run_seconds: Family<CheckLabel, Histogram>,
    ticks: Family<SourceLabel, Counter>,
    skipped: Family<ReasonLabel, Counter>,
    config_reloads: Family<ResultLabel, Counter>,
    handler_reloads: Family<ResultLabel, Counter>,
    // Set at each scrape from the pipeline's state.
    overdue_ratio: Family<CheckLabel, FloatGauge>,
    last_success: Family<CheckLabel, FloatGauge>,
    consecutive_failures: Family<CheckLabel, Gauge>,
    check_state: Family<CheckStateLabels, Gauge>,
    check_attempt: Family<CheckLabel, Gauge>,
    check_flapping: Family<CheckLabel, Gauge>,
    state_changes: Family<ChangeLabels, Counter>,
    running: Family<CheckLabel, Gauge>,
    processes: Family<StatusLabel, Gauge>,
    healthy: Gauge,
    agents: Gauge,
    pool_instances: Gauge,
    pool_memories: Gauge,
    pool_warm_memories: Gauge,
    pool_warm_bytes: Gauge,
    bus_connected: Gauge,
    bus_reconnects: Counter,
    events_published: Counter,
    outbox_spooled: Counter,
    outbox_depth: Gauge,
    outbox_dropped: Counter,
    outbox_dead_lettered: Counter,
}

/// Run durations, in seconds: from a no-op (~0.1 ms) to the default
/// timeout (10 s) and past it.
const RUN_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family registered, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("heartbeat");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "check_runs",
            "Runs completed, by check, handler and outcome",
            runs.clone(),
        );
        let run_seconds = Family::<CheckLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(RUN_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "check_run_duration_seconds",
            "How long runs took, by check",
            run_seconds.clone(),
        );
        let ticks = Family::<SourceLabel, Counter>::default();
        registry.register(
            "ticks",
            "Ticks taken, by source (bus, timer, fallback)",
            ticks.clone(),
        );
        let skipped = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "checks_skipped",
            "Checks a tick did not run, by reason (not_due, window, paused, backoff, still_running, ...)",
            skipped.clone(),
        );
        let config_reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Re-reads of heartbeat.json, by result (applied, unchanged, refused, missing, restored)",
            config_reloads.clone(),
        );
        let handler_reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "handler_reloads",
            "Handler files taken in from the handler directory, by result (loaded, refused, removed)",
            handler_reloads.clone(),
        );
        let overdue_ratio = Family::<CheckLabel, FloatGauge>::default();
        registry.register(
            "check_overdue_ratio",
            "(now - lastRun) / cadenceMs at the scrape; above 1 is due, and a ratio that keeps growing is a starved check",
            overdue_ratio.clone(),
        );
        let last_success = Family::<CheckLabel, FloatGauge>::default();
        registry.register(
            "check_last_success_timestamp_seconds",
            "When the check last ended in success or skipped (0: never, since the state file began)",
            last_success.clone(),
        );
        let consecutive_failures = Family::<CheckLabel, Gauge>::default();
        registry.register(
            "check_consecutive_failures",
            "Failed runs in a row",
            consecutive_failures.clone(),
        );
        let check_state = Family::<CheckStateLabels, Gauge>::default();
        registry.register(
            "check_state",
            "1 for the state the check is in (ok, soft, hard), 0 for the others: alert on state=\"hard\"",
            check_state.clone(),
        );
        let check_attempt = Family::<CheckLabel, Gauge>::default();
        registry.register(
            "check_attempt",
            "Failures in a row counted toward maxAttempts (0 while ok)",
            check_attempt.clone(),
        );
        let check_flapping = Family::<CheckLabel, Gauge>::default();
        registry.register(
            "check_flapping",
            "1 while the check is flapping (more than flapThreshold pass/fail changes in its last 20 results)",
            check_flapping.clone(),
        );
        let state_changes = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "check_state_changes",
            "State changes published, by check and change (transition, flapping_started, flapping_stopped)",
            state_changes.clone(),
        );
        let running = Family::<CheckLabel, Gauge>::default();
        registry.register(
            "check_running",
            "1 while a run of the check is in flight",
            running.clone(),
        );
        let processes = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "watched_processes",
            "Watched sub-processes, by status",
            processes.clone(),
        );
        let healthy = Gauge::default();
        registry.register(
            "host_healthy",
            "1 when the host (every agent it serves) is healthy, 0 when degraded",
            healthy.clone(),
        );
        let agents = Gauge::default();
        registry.register("agents", "Agents the host serves now", agents.clone());
        let pool_instances = Gauge::default();
        registry.register(
            "pool_component_instances",
            "Component instances the pooling allocator has in use (runs in flight)",
            pool_instances.clone(),
        );
        let pool_memories = Gauge::default();
        registry.register(
            "pool_memories",
            "Linear memories the pooling allocator has in use",
            pool_memories.clone(),
        );
        let pool_warm_memories = Gauge::default();
        registry.register(
            "pool_warm_memories",
            "Memory slots kept warm for the next runs",
            pool_warm_memories.clone(),
        );
        let pool_warm_bytes = Gauge::default();
        registry.register(
            "pool_warm_memory_resident_bytes",
            "Bytes the warm memory slots keep resident",
            pool_warm_bytes.clone(),
        );
        let bus_connected = Gauge::default();
        registry.register(
            "bus_connected",
            "1 while connected to the broker (0 without one)",
            bus_connected.clone(),
        );
        let bus_reconnects = Counter::default();
        registry.register(
            "bus_reconnects",
            "Reconnections to the broker after a loss",
            bus_reconnects.clone(),
        );
        let events_published = Counter::default();
        registry.register(
            "events_published",
            "Events the broker confirmed",
            events_published.clone(),
        );
        let outbox_spooled = Counter::default();
        registry.register(
            "outbox_spooled",
            "Events written to the outbox while the broker could not take them",
            outbox_spooled.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_events",
            "Events waiting in the outbox now",
            outbox_depth.clone(),
        );
        let outbox_dropped = Counter::default();
        registry.register(
            "outbox_dropped",
            "Events dropped over the outbox's bound",
            outbox_dropped.clone(),
        );
        let outbox_dead_lettered = Counter::default();
        registry.register(
            "outbox_dead_lettered",
            "Events the broker refused for what they are, set aside in the dead-letter file",
            outbox_dead_lettered.clone(),
        );
        Metrics {
            recent: Mutex::new(VecDeque::with_capacity(RECENT_RUNS)),
            registry,
            runs,
            run_seconds,
            ticks,
            skipped,
            config_reloads,
            handler_reloads,
            overdue_ratio,
            last_success,
            consecutive_failures,
            check_state,
            check_attempt,
            check_flapping,
            state_changes,
            running,
            processes,
            healthy,
            agents,
            pool_instances,
            pool_memories,
            pool_warm_memories,
            pool_warm_bytes,
            bus_connected,
            bus_reconnects,
            events_published,
            outbox_spooled,
            outbox_depth,
            outbox_dropped,
            outbox_dead_lettered,
        }
    }

    /// One run of an agent's check completed.
    pub fn record_run(&self, run: RunSample<'_>) {
        let RunSample {
            agent,
            at_ms,
            check,
            handler,
            status,
            duration_us,
            error,
        } = run;
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT_RUNS {
                recent.pop_front();
            }
            recent.push_back(RecentRun {
                agent: agent.to_string(),
                at_ms,
                check: check.to_string(),
                handler: handler.to_string(),
                status: status.to_string(),
                duration_ms: duration_us as f64 / 1000.0,
                error: error.map(str::to_string),
            });
        }
        self.runs
            .get_or_create(&RunLabels {
                agent: agent.to_string(),
                check: check.to_string(),
                handler: handler.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.run_seconds
            .get_or_create(&CheckLabel {
                agent: agent.to_string(),
                check: check.to_string(),
            })
            .observe(duration_us as f64 / 1e6);
    }

    /// `agent`'s runs among the last [`RECENT_RUNS`] of the process, newest first.
    pub fn recent_runs(&self, agent: &str) -> Vec<RecentRun> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .filter(|r| r.agent == agent)
            .cloned()
            .collect()
    }

    /// A state change published for `agent`'s `check` (`change` is the
    /// event's `change` field).
    pub fn record_state_change(&self, agent: &str, check: &str, change: &str) {
        self.state_changes
            .get_or_create(&ChangeLabels {
                agent: agent.to_string(),
                check: check.to_string(),
                change: change.to_string(),
            })
            .inc();
    }

    /// One tick taken.
    pub fn record_tick(&self, source: TickSource) {
        let source = match source {
            TickSource::Bus => "bus",
            TickSource::Timer => "timer",
            TickSource::Fallback => "fallback",
        };
        self.ticks
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .inc();
    }

    /// The checks a tick's plan did not run, counted by reason.
    /// Tallied first, so a tick over thousands of checks costs one lookup
    /// per reason, not one per check.
    pub fn record_plan(&self, plan: &Plan) {
        let mut tally: [(&'static str, u64); 8] = [("", 0); 8];
        for evaluation in &plan.checks {
            if let Some(reason) = &evaluation.not_running {
                let label = reason_label(reason);
                if let Some(slot) = tally.iter_mut().find(|(l, n)| *l == label || *n == 0) {
                    slot.0 = label;
                    slot.1 += 1;
                }
            }
        }
        for (label, count) in tally.into_iter().filter(|(_, n)| *n > 0) {
            self.skipped
                .get_or_create(&ReasonLabel {
                    reason: label.to_string(),
                })
                .inc_by(count);
        }
    }

    /// A re-read of heartbeat.json, by what it came to.
    pub fn record_config_reload(&self, result: &str) {
        self.config_reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// A handler file taken in, by what it came to.
    pub fn record_handler_reload(&self, result: &str) {
        self.handler_reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// The text exposition (OpenMetrics), with the gauges set from `now`.
    pub fn render(&self, now: &Snapshot<'_>) -> String {
        self.set_gauges(now);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn set_gauges(&self, now: &Snapshot<'_>) {
        // Checks removed from the config (and agents removed) disappear from the gauges.
        self.overdue_ratio.clear();
        self.last_success.clear();
        self.consecutive_failures.clear();
        self.check_state.clear();
        self.check_attempt.clear();
        self.check_flapping.clear();
        self.running.clear();
        for agent in now.agents {
            self.set_check_gauges(agent);
        }
        self.processes.clear();
        for state in ProcessState::ALL {
            let count: usize = now
                .agents
                .iter()
                .map(|a| a.processes.iter().filter(|p| p.status == state).count())
                .sum();
            self.processes
                .get_or_create(&StatusLabel {
                    status: state.as_str().to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.healthy.set(i64::from(
            now.agents
                .iter()
                .all(|a| matches!(a.health, HealthStatus::Healthy)),
        ));
        self.agents
            .set(i64::try_from(now.agents.len()).unwrap_or(i64::MAX));
        let pool = now.pool.unwrap_or_default();
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.pool_instances.set(gauge(pool.component_instances));
        self.pool_memories.set(gauge(pool.memories));
        self.pool_warm_memories.set(gauge(pool.warm_memories));
        self.pool_warm_bytes.set(gauge(pool.warm_memory_bytes));
        // The buses' figures, all agents together.
        let buses: Vec<BusFigures> = now.agents.iter().filter_map(|a| a.bus).collect();
        let total = |f: fn(&BusFigures) -> u64| buses.iter().map(f).sum::<u64>();
        self.bus_connected.set(i64::from(
            !buses.is_empty() && buses.iter().all(|b| b.connected),
        ));
        catch_up(&self.bus_reconnects, total(|b| b.reconnects));
        catch_up(&self.events_published, total(|b| b.published));
        catch_up(&self.outbox_spooled, total(|b| b.spooled));
        self.outbox_depth.set(gauge(total(|b| b.outbox_depth)));
        catch_up(&self.outbox_dropped, total(|b| b.outbox_dropped));
        catch_up(&self.outbox_dead_lettered, total(|b| b.dead_lettered));
    }

    fn set_check_gauges(&self, now: &AgentSnapshot<'_>) {
        for evaluation in &now.plan.checks {
            let Some(name) = now.names.get(evaluation.index) else {
                continue;
            };
            let label = CheckLabel {
                agent: now.agent.to_string(),
                check: (*name).to_string(),
            };
            let ratio = match evaluation.ratio {
                Ratio::Finite(r) => r,
                Ratio::Infinite => f64::INFINITY,
            };
            self.overdue_ratio.get_or_create(&label).set(ratio);
            let record = now.state.checks.get(*name);
            // `lastRun` moves on success and skipped only.
            self.last_success
                .get_or_create(&label)
                .set(evaluation.last_run_ms as f64 / 1000.0);
            self.consecutive_failures
                .get_or_create(&label)
                .set(i64::from(record.map_or(0, |r| r.consecutive_failures)));
            let state = record.map_or(CheckHealth::Ok, |r| r.state);
            for each in CheckHealth::ALL {
                self.check_state
                    .get_or_create(&CheckStateLabels {
                        agent: now.agent.to_string(),
                        check: (*name).to_string(),
                        state: each.as_str().to_string(),
                    })
                    .set(i64::from(each == state));
            }
            self.check_attempt
                .get_or_create(&label)
                .set(i64::from(record.map_or(0, |r| r.attempt)));
            self.check_flapping
                .get_or_create(&label)
                .set(i64::from(record.is_some_and(|r| r.flapping)));
            self.running
                .get_or_create(&label)
                .set(i64::from(now.running.contains(*name)));
        }
    }
}

/// Brings a counter up to a total counted elsewhere (the bus's atomics).
fn catch_up(counter: &Counter, total: u64) {
    let shown = counter.get();
    if total > shown {
        counter.inc_by(total - shown);
    }
}

/// The bus's figures at a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct BusFigures {
    /// Connected now.
    pub connected: bool,
    /// Reconnections so far.
    pub reconnects: u64,
    /// Events confirmed so far.
    pub published: u64,
    /// Events spooled to the outbox so far.
    pub spooled: u64,
    /// Events in the outbox now.
    pub outbox_depth: u64,
    /// Events dropped over the outbox's bound, ever.
    pub outbox_dropped: u64,
    /// Events dead-lettered so far.
    pub dead_lettered: u64,
}

/// The pooling allocator's figures at a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolFigures {
    /// Component instances in use (runs in flight).
    pub component_instances: u64,
    /// Linear memories in use.
    pub memories: u64,
    /// Memory slots kept warm for the next runs.
    pub warm_memories: u64,
    /// Bytes those warm slots keep resident.
    pub warm_memory_bytes: u64,
}

/// What the gauges are set from at a scrape.
pub struct Snapshot<'a> {
    /// Every agent served.
    pub agents: &'a [AgentSnapshot<'a>],
    /// The pooling allocator, if it is in use.
    pub pool: Option<PoolFigures>,
}

/// One agent at a scrape.
pub struct AgentSnapshot<'a> {
    /// Its name.
    pub agent: &'a str,
    /// The plan at the scrape's instant.
    pub plan: &'a Plan,
    /// The check names, by index in the config.
    pub names: Vec<&'a str>,
    /// The state the pipeline holds.
    pub state: &'a State,
    /// Checks with a run in flight.
    pub running: &'a std::collections::HashSet<String>,
    /// The watched processes.
    pub processes: &'a [ProcessInfo],
    /// Its health.
    pub health: HealthStatus,
    /// Its bus, if it has one.
    pub bus: Option<BusFigures>,
}

/// The `reason` label of a check a tick did not run.
fn reason_label(reason: &NotRunning) -> &'static str {
    match reason {
        NotRunning::Disabled => "disabled",
        NotRunning::Paused { .. } => "paused",
        NotRunning::OutsideWindow => "window",
        NotRunning::WrongQuarter(_) => "quarter",
        NotRunning::StillRunning => "still_running",
        NotRunning::Backoff { .. } => "backoff",
        NotRunning::NotDue => "not_due",
        NotRunning::TickFull => "tick_full",
    }
}
