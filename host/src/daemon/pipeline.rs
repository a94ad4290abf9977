//! A tick's path through the host: select → run → record → publish.
//!
//! [`Pipeline::handle`] plans the tick with the core's selection
//! ([`heartbeat_core::schedule::plan`]), marks the selected checks running,
//! runs each handler in the sandbox, hands each finished run to the
//! [`Sink`] as it ends, applies the outcomes to the state and hands the
//! state to the [`Store`], and answers the tick's source once the state is
//! durable and every receipt has resolved. The clock, the sink and the
//! store are injected, so the whole path is tested in-process against the
//! real runtime (see the tests below).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use heartbeat_core::config::{CheckConfig, HeartbeatConfig};
use heartbeat_core::control::{self, Applied, Command, Refused};
use heartbeat_core::health::Health;
use heartbeat_core::model::{CheckHealth, RunReport, RunStatus};
use heartbeat_core::processes::Tracker;
use heartbeat_core::schedule::{self, NotRunning, Ratio};
use heartbeat_core::soft_hard::{ChangeKind, Verdict};
use heartbeat_core::state::State;
use tracing::{error, info, warn};

use super::observer::Observer;
use crate::publish::{FinishedRun, Sink};
use crate::runtime::registry::Registry;
use crate::runtime::{DirGrant, RunRequest, Runtime};
use crate::source::{Clock, Tick};
use crate::store::state::Store;
use heartbeat_core::emit::EmitPolicy;

/// What a pipeline is built from: its agent, its config and state at
/// start-up, and the seams it runs through (sandbox, registry, store,
/// sink, clock, observer).
pub struct PipelineParts {
    /// The agent it serves (the namespace of its events).
    pub agent: String,
    /// The config in force at start-up.
    pub config: HeartbeatConfig,
    /// The directory relative grant paths resolve against (the config's).
    pub config_dir: PathBuf,
    /// The handler directory, named in "handler not found" reasons.
    pub handlers_dir: Option<PathBuf>,
    /// The state read at start-up.
    pub state: State,
    /// The sandbox.
    pub runtime: Arc<Runtime>,
    /// The handlers in service.
    pub registry: Arc<Registry>,
    /// Where state snapshots go.
    pub store: Arc<dyn Store>,
    /// Where finished runs go.
    pub sink: Arc<dyn Sink>,
    /// Told of every run's outcome.
    pub health: Arc<Health>,
    /// The watched processes handed to each run.
    pub tracker: Arc<Mutex<Tracker>>,
    /// The time of the processes' snapshot handed to each run.
    pub clock: Arc<dyn Clock>,
    /// Where the checks' key-value stores live (`<state stem>.kv/`); `None`
    /// gives runs no store.
    pub kv: Option<crate::store::kv::KvLocation>,
    /// The most runs of this agent in flight at once
    /// (`--max-runs-per-agent`), beneath the process's own cap; `None`:
    /// only the process's.
    pub max_runs: Option<u32>,
    /// Told of every tick's plan and every run recorded.
    pub observer: Arc<dyn Observer>,
}

/// An agent's own run slots: one agent's checks (a hostile handler on
/// every one of them, say) hold at most this many of the process's.
struct AgentSlots {
    slots: tokio::sync::Semaphore,
    count: u32,
}

/// The state file's values and the runs in flight: what selection and
/// recording read and change together, under one lock.
struct LiveState {
    state: State,
    /// Checks with a run in flight.
    running: HashSet<String>,
    /// The tick each run in flight started on, by check.
    started_on: HashMap<String, String>,
    /// Ticks that selected nothing only because the checks that would have
    /// been due were still running from earlier ticks.
    held_back: u64,
}

/// Takes ticks through select → run → record → publish; shared by every
/// tick in flight.
pub struct Pipeline {
    agent: String,
    config_dir: PathBuf,
    handlers_dir: Option<PathBuf>,
    config: RwLock<Arc<HeartbeatConfig>>,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    live: Mutex<LiveState>,
    /// Tells a step of the wall clock from time passing, tick by tick.
    clock_steps: Mutex<heartbeat_core::clock_step::StepDetector>,
    store: Arc<dyn Store>,
    sink: Arc<dyn Sink>,
    health: Arc<Health>,
    tracker: Arc<Mutex<Tracker>>,
    clock: Arc<dyn Clock>,
    kv: Option<crate::store::kv::KvLocation>,
    slots: Option<AgentSlots>,
    observer: Arc<dyn Observer>,
}

impl Pipeline {
    /// A pipeline with nothing running.
    pub fn new(parts: PipelineParts) -> Pipeline {
        Pipeline {
            agent: parts.agent,
            config_dir: parts.config_dir,
            handlers_dir: parts.handlers_dir,
            config: RwLock::new(Arc::new(parts.config)),
            runtime: parts.runtime,
            registry: parts.registry,
            live: Mutex::new(LiveState {
                state: parts.state,
                running: HashSet::new(),
                started_on: HashMap::new(),
                held_back: 0,
            }),
            clock_steps: Mutex::new(heartbeat_core::clock_step::StepDetector::new()),
            store: parts.store,
            sink: parts.sink,
            health: parts.health,
            tracker: parts.tracker,
            clock: parts.clock,
            kv: parts.kv,
            slots: parts.max_runs.map(|count| AgentSlots {
                slots: tokio::sync::Semaphore::new(count.max(1) as usize),
                count: count.max(1),
            }),
            observer: parts.observer,
        }
    }

    /// Ticks so far that ran nothing only because the checks that would
    /// have been due were still running from earlier ticks.
    #[cfg(test)]
    fn ticks_held_back(&self) -> u64 {
        self.lock_live().held_back
    }

    /// The config in force.
    pub fn config(&self) -> Arc<HeartbeatConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `config` in force from the next tick; runs already selected
    /// finish with the config they started with.
    pub fn set_config(&self, config: Arc<HeartbeatConfig>) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// The state as the pipeline holds it now (what the store last got, or newer).
    pub fn state(&self) -> State {
        self.lock_live().state.clone()
    }

    /// Replaces the state the pipeline holds with `state` read from the
    /// state file: a standby taking over reads what the active host left
    /// there (when the two share the file). Runs in flight keep recording
    /// into the new state.
    pub fn replace_state(&self, state: State) {
        self.lock_live().state = state;
    }

    /// The checks with a run in flight.
    pub fn running(&self) -> HashSet<String> {
        self.lock_live().running.clone()
    }

    /// The handlers in service.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The handler directory, if any.
    pub fn handlers_dir(&self) -> Option<&Path> {
        self.handlers_dir.as_deref()
    }

    /// One tick: select, run, record, publish. Each run is recorded (log
    /// line, state, check released) and published the moment it ends, so a
    /// slow run never holds up a fast one selected beside it. Resolves once
    /// every run's state is durable and its events are safe; then the tick
    /// is answered.
    pub async fn handle(self: Arc<Self>, tick: Tick) {
        let config = self.config();
        let jobs = self.select(&config, &tick);
        let mut saves = Vec::with_capacity(jobs.len());
        let mut receipts = Vec::with_capacity(jobs.len());
        let mut ended = |(check, report): (CheckConfig, RunReport)| {
            // Recorded first (the state change is decided there), then the
            // events go out at once, while the state is saved; the check is
            // released for later ticks once its events are handed over.
            let (saved, verdict) = self.record(&tick, &check, &report);
            receipts.push(self.sink.publish(FinishedRun {
                tick: &tick,
                check: &check,
                report: &report,
                verdict: &verdict,
            }));
            self.release(&check.name);
            saves.push(saved);
        };
        if jobs.len() == 1 {
            // The usual case runs in this task: no spawn on the tick path.
            for (check, request) in jobs {
                ended(Arc::clone(&self).run_check(check, request).await);
            }
        } else {
            let mut runs = tokio::task::JoinSet::new();
            for (check, request) in jobs {
                runs.spawn(Arc::clone(&self).run_check(check, request));
            }
            while let Some(joined) = runs.join_next().await {
                match joined {
                    Ok(run) => ended(run),
                    Err(e) => error!(tick = %tick.id, "run task failed: {e}"),
                }
            }
        }
        for saved in saves {
            match saved.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error!(event = "state_not_saved", tick = %tick.id, "state not saved: {e}")
                }
                Err(_) => {
                    error!(event = "state_not_saved", tick = %tick.id, "state writer stopped; state not saved")
                }
            }
        }
        // A bus tick is acknowledged only once its runs' events are
        // confirmed (or in the outbox) too.
        for receipt in receipts {
            if !receipt.wait().await {
                error!(tick = %tick.id, "event publisher stopped; this run's events were not sent");
            }
        }
        if let Some(done) = tick.done {
            done.handled();
        }
    }

    /// Applies a control message (pause, resume, run) to the state and
    /// answers once the store has it.
    pub async fn apply_control(&self, command: &Command) -> Result<Applied, Refused> {
        let config = self.config();
        let (applied, saved) = {
            let mut live = self.lock_live();
            let applied = control::apply(command, &config, &mut live.state)?;
            (applied, self.store.persist(live.state.clone()))
        };
        match saved.await {
            Ok(Ok(())) => Ok(applied),
            Ok(Err(e)) => Err(Refused::NotSaved(e)),
            Err(_) => Err(Refused::NotSaved("the state writer stopped".into())),
        }
    }

    /// When the wall clock stepped since the last tick, moves the
    /// schedule's instants with it (saved with the next run), so that the
    /// step costs no check its cadence; logged once per step.
    fn follow_clock_steps(&self, config: &HeartbeatConfig, live: &mut LiveState) {
        let step = self
            .clock_steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(self.clock.now_ms(), self.clock.monotonic_ms());
        if let Some(by_ms) = step {
            heartbeat_core::clock_step::shift_schedule(&mut live.state, config, by_ms);
            warn!(
                event = "clock_stepped",
                agent = %self.agent,
                by_ms,
                "the wall clock stepped {} by {}; the checks' last runs moved with it",
                if by_ms < 0 { "back" } else { "forward" },
                heartbeat_core::explain::format_span(by_ms.unsigned_abs()),
            );
        }
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plans the tick, logs why, and marks the selected checks running.
    fn select(&self, config: &HeartbeatConfig, tick: &Tick) -> Vec<(CheckConfig, RunRequest)> {
        let mut live = self.lock_live();
        self.follow_clock_steps(config, &mut live);
        let plan = schedule::plan(config, &live.state, &live.running, tick.time_ms);
        self.observer.tick_planned(&plan);
        if plan.selected.is_empty() {
            let busy = still_running(&plan, config, &live.started_on);
            if busy.is_empty() {
                info!(event = "no_check_due", tick = %tick.id, "no check due");
            } else {
                // Only checks still running would be due: say so, rather
                // than "no check due" (heartbeat-consumer's habit), and count it.
                live.held_back += 1;
                info!(
                    event = "no_check_due",
                    tick = %tick.id,
                    still_running = busy.len(),
                    held_back_total = live.held_back,
                    "nothing eligible: {}",
                    busy.join(", ")
                );
            }
            return Vec::new();
        }
        let mut jobs = Vec::with_capacity(plan.selected.len());
        let processes = Arc::new(
            self.tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .snapshot(self.clock.now_ms()),
        );
        for &i in &plan.selected {
            let check = &config.checks[i];
            let evaluation = &plan.checks[i];
            let why = if evaluation.run_requested {
                "run requested".to_string()
            } else {
                match evaluation.ratio {
                    Ratio::Infinite => "cadenceMs 0: due on every tick".to_string(),
                    Ratio::Finite(r) => format!("most overdue: ratio {r:.4} > 1.0"),
                }
            };
            info!(event = "selected", tick = %tick.id, check = %check.name, handler = %check.handler, "selected ({why})");
            live.running.insert(check.name.clone());
            live.started_on.insert(check.name.clone(), tick.id.clone());
            live.state.run_requests.remove(&check.name);
            let mut request = run_request(
                &self.agent,
                tick,
                check,
                evaluation.last_run_ms,
                &self.config_dir,
            );
            request.processes = Arc::clone(&processes);
            request.kv.clone_from(&self.kv);
            jobs.push((check.clone(), request));
        }
        jobs
    }

    /// Resolves the check's handler and runs it once.
    /// With a cap of the agent's own, the run first waits for one of its
    /// slots; the wait counts toward its `timeoutMs` (the process's slots
    /// get what is left), and a run that gets none fails saying so.
    async fn run_check(
        self: Arc<Self>,
        check: CheckConfig,
        mut request: RunRequest,
    ) -> (CheckConfig, RunReport) {
        let handler = match self
            .registry
            .resolve(&check.handler, self.handlers_dir.as_deref())
        {
            Ok(handler) => handler,
            Err(e) => return (check, RunReport::failed_before_start(e.to_string())),
        };
        let mut waited_ms = 0;
        let _slot = match &self.slots {
            None => None,
            Some(own) => {
                let started = std::time::Instant::now();
                let timeout = std::time::Duration::from_millis(request.limits.timeout_ms);
                match tokio::time::timeout(timeout, own.slots.acquire()).await {
                    Ok(Ok(slot)) if started.elapsed() < timeout => {
                        waited_ms =
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        request.limits.timeout_ms =
                            request.limits.timeout_ms.saturating_sub(waited_ms).max(1);
                        Some(slot)
                    }
                    _ => {
                        let mut report = RunReport::failed_before_start(format!(
                            "no run slot of agent {} free within its timeoutMs ({} ms): an agent runs at most {} at once (--max-runs-per-agent)",
                            self.agent, check.limits.timeout_ms, own.count
                        ));
                        report.duration_us =
                            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        return (check, report);
                    }
                }
            }
        };
        let mut report = self.runtime.run(&handler, &request).await;
        if waited_ms > 0 {
            // The run had what its slot wait left of its timeoutMs: say so.
            if let Some(error) = &mut report.error
                && error.starts_with("timeout after")
            {
                *error = format!(
                    "timeout after {} ms ({waited_ms} ms of it waiting for one of agent {}'s run slots)",
                    check.limits.timeout_ms, self.agent
                );
            }
            report.duration_us = report.duration_us.saturating_add(waited_ms * 1000);
        }
        (check, report)
    }

    /// Applies one outcome to the state (soft and hard states included),
    /// logs it and hands the state to the store; says what the outcome did
    /// to the check's state. The check stays in flight until [`Self::release`].
    fn record(
        &self,
        tick: &Tick,
        check: &CheckConfig,
        report: &RunReport,
    ) -> (crate::store::state::Saved, Verdict) {
        let mut live = self.lock_live();
        self.health.record_run(report.status == RunStatus::Failed);
        let record = live.state.checks.entry(check.name.clone()).or_default();
        let verdict = schedule::record_outcome(
            record,
            tick.time_ms,
            check.cadence_ms,
            &check.retry,
            report.status,
            report.duration_us,
            report.error.clone(),
        );
        // Told before the log line, so that a reader of the log finds the run counted.
        self.observer
            .run_recorded(&self.agent, tick, check, report, &verdict);
        log_outcome(tick, check, report, &verdict);
        // Sent under the lock, so the store sees snapshots in the order they were taken.
        (self.store.persist(live.state.clone()), verdict)
    }

    /// Lets later ticks select `check` again.
    fn release(&self, check: &str) {
        let mut live = self.lock_live();
        live.running.remove(check);
        live.started_on.remove(check);
    }
}

/// For a tick that selects nothing: each check held back only because its
/// run from an earlier tick is in flight, with that tick
/// (`keepalive still running since tick t-41`).
fn still_running(
    plan: &schedule::Plan,
    config: &HeartbeatConfig,
    started_on: &HashMap<String, String>,
) -> Vec<String> {
    plan.checks
        .iter()
        .filter(|e| e.not_running == Some(NotRunning::StillRunning))
        .map(|e| {
            let name = &config.checks[e.index].name;
            let since = started_on.get(name).map_or("?", String::as_str);
            format!("{name} still running since tick {since}")
        })
        .collect()
}

/// The request for running `check` on `tick`: its limits, its grants
/// (relative directory paths resolved against `config_dir`) and the
/// agent's event namespace. `invoke` builds its one run with it too.
pub fn run_request(
    agent: &str,
    tick: &Tick,
    check: &CheckConfig,
    last_run_ms: u64,
    config_dir: &Path,
) -> RunRequest {
    RunRequest {
        tick_id: tick.id.clone(),
        tick_ms: tick.time_ms,
        agent: agent.to_string(),
        envelope: tick.envelope.to_string(),
        check: check.name.clone(),
        handler: check.handler.clone(),
        cadence_ms: check.cadence_ms,
        priority: check.priority,
        meta: serde_json::Value::Object(check.meta.clone()).to_string(),
        last_run_ms,
        limits: check.limits,
        // Results and control messages of every agent are refused whatever
        // the grants (heartbeat_core::emit), under any results key prefix.
        emit_policy: EmitPolicy::new(agent, &check.grants.emit),
        dirs: check
            .grants
            .dirs
            .iter()
            .map(|d| DirGrant {
                guest_path: d.guest_path.clone(),
                host_path: d.host_path_from(config_dir),
                read_only: d.read_only,
            })
            .collect(),
        // Read at each run: a variable changed or unset since start-up is
        // seen as it is now, and one that is unset is simply absent.
        env: check
            .grants
            .env
            .iter()
            .filter_map(|g| {
                std::env::var(&g.host)
                    .ok()
                    .map(|value| (g.guest.clone(), crate::runtime::GrantedValue(value)))
            })
            .collect(),
        secret_files: check
            .grants
            .secrets
            .iter()
            .map(|s| (s.name.clone(), s.file_from(config_dir)))
            .collect(),
        net: check.grants.net.clone(),
        http: check
            .grants
            .http
            .iter()
            .map(|g| crate::runtime::outgoing_http::HttpGrant {
                origin: g.origin.clone(),
                ca_file: g.ca_file_from(config_dir),
            })
            .collect(),
        processes: Arc::new(Vec::new()),
        // The pipeline gives its runs the host's stores; `invoke` its own.
        kv: None,
    }
}

fn log_outcome(tick: &Tick, check: &CheckConfig, report: &RunReport, verdict: &Verdict) {
    let duration = format!("{:.3}ms", report.duration_us as f64 / 1000.0);
    for record in &report.logs {
        let fields = record
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        info!(event = "handler_log", check = %check.name, handler = %check.handler, level = record.level, fields = %fields, "handler log: {}", record.message);
    }
    let state = verdict.state;
    match report.status {
        RunStatus::Failed => warn!(
            event = "run_finished", tick = %tick.id, check = %check.name, handler = %check.handler, status = %report.status,
            state = %state, attempt = verdict.attempt, max_attempts = check.retry.max_attempts,
            duration = %duration, error = report.error.as_deref().unwrap_or(""), details = %report.details,
            "run finished"
        ),
        _ => info!(
            event = "run_finished", tick = %tick.id, check = %check.name, handler = %check.handler, status = %report.status,
            state = %state, duration = %duration, details = %report.details, events = report.events.len(), "run finished"
        ),
    }
    if let Some(change) = &verdict.change {
        // Bad news at warn, the way back at info.
        macro_rules! changed {
            ($level:ident) => {
                $level!(
                    event = "state_changed", tick = %tick.id, check = %check.name, handler = %check.handler,
                    change = %change.kind.as_str(), previous = %change.previous, state = %change.state,
                    attempt = verdict.attempt, changes = change.changes, window = change.window,
                    "check state changed: {} -> {} ({})", change.previous, change.state, change.kind.as_str()
                )
            };
        }
        if change.state == CheckHealth::Hard || change.kind == ChangeKind::FlappingStarted {
            changed!(warn);
        } else {
            changed!(info);
        }
    }
}

#[cfg(test)]
mod tests;
