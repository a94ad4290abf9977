//! The running host: takes ticks, picks the due checks, runs their
//! handlers in the sandbox and records the outcomes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::{CheckConfig, HeartbeatConfig};
use crate::registry::Registry;
use crate::runtime::{RunReport, RunRequest, Runtime, TickInfo};
use crate::schedule::{self, Ratio};
use crate::state::{self, RunStatus, State};
use crate::tick::{self, Tick};

/// How the host is started.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// `heartbeat.json`.
    pub config_path: PathBuf,
    /// The state file.
    pub state_path: PathBuf,
    /// The agent this host serves.
    pub agent: String,
    /// Extra handlers, `*.wasm` named by stem.
    pub handlers_dir: Option<PathBuf>,
    /// The host's own timer period.
    pub tick_interval: Duration,
    /// RabbitMQ: ticks and control messages in, events out. `None`: the
    /// host's own timer only.
    pub bus: Option<crate::amqp::BusOptions>,
    /// Without a bus: a JSON-lines file the events handlers emit are appended to.
    pub events_log: Option<PathBuf>,
    /// The liveness file (kstlib's format), written every `liveness_period`.
    pub liveness_file: Option<PathBuf>,
    /// How often the liveness file is written.
    pub liveness_period: Duration,
    /// The host's own beats on the bus (beatit convention); used only with a bus.
    pub beats: crate::beats::BeatOptions,
}

/// State shared by every tick in flight.
struct Shared {
    options: HostOptions,
    config: RwLock<Arc<HeartbeatConfig>>,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    book: Mutex<Book>,
    writer: StateWriter,
    /// The broker connection, in broker mode.
    bus: Option<crate::amqp::Bus>,
    /// Healthy or degraded, and why.
    health: Arc<crate::health::Health>,
    /// The watched sub-processes, fed by their beats on the bus.
    tracker: Arc<Mutex<crate::processes::Tracker>>,
}

/// The bookkeeping that selection and recording change together.
struct Book {
    state: State,
    running: HashSet<String>,
}

/// Runs the host until `shutdown` resolves, then lets runs in flight finish.
pub async fn run(
    options: HostOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let loaded = crate::config::load(&options.config_path)?;
    for warning in &loaded.warnings {
        warn!(file = %options.config_path.display(), "{warning}");
    }
    let config = loaded.config;
    let state = state::load(&options.state_path)?;
    let runtime = Arc::new(
        Runtime::new(&crate::runtime::RuntimeOptions::default())
            .context("cannot start the WebAssembly runtime")?,
    );
    let registry = Arc::new(Registry::with_builtins(&runtime)?);
    // Loads the directory's handlers over the built-ins, then keeps them current.
    let _handler_watch = match &options.handlers_dir {
        Some(dir) => Some(
            crate::handler_watch::start(dir, Arc::clone(&runtime), Arc::clone(&registry))
                .with_context(|| format!("cannot watch the handler directory {}", dir.display()))?,
        ),
        None => None,
    };
    report_missing_handlers(&config, &registry, options.handlers_dir.as_deref());
    info!(
        agent = %options.agent,
        config = %options.config_path.display(),
        state = %options.state_path.display(),
        checks = config.checks.len(),
        handlers = %registry.names().join(","),
        tick_interval = %humantime::format_duration(options.tick_interval),
        "heartbeat-host started; {}",
        if options.bus.is_some() {
            "ticks from the bus, its own timer only while the broker is unreachable"
        } else {
            "ticks from its own timer"
        }
    );
    let (tick_tx, mut tick_rx) = mpsc::channel::<Tick>(64);
    let (control_tx, control_rx) = mpsc::channel::<crate::amqp::ControlRequest>(16);
    let tracker = Arc::new(Mutex::new(crate::processes::Tracker::new(
        crate::processes::TrackerConfig::default(),
    )));
    let bus = match &options.bus {
        Some(bus) => Some(crate::amqp::Bus::start_watching(
            bus,
            &options.agent,
            &crate::amqp::Watching {
                patterns: config.watch.clone(),
                tracker: Arc::clone(&tracker),
                own_beats: Some(options.beats.routing_key()),
            },
            tick_tx.clone(),
            control_tx,
        )?),
        None => None,
    };

    let shared = Arc::new(Shared {
        writer: StateWriter::spawn(options.state_path.clone())
            .context("cannot start the state writer thread")?,
        options,
        config: RwLock::new(Arc::new(config)),
        runtime,
        registry,
        book: Mutex::new(Book {
            state,
            running: HashSet::new(),
        }),
        bus,
        health: Arc::new(crate::health::Health::default()),
        tracker,
    });
    let liveness = shared
        .options
        .liveness_file
        .clone()
        .map(|path| tokio::spawn(write_liveness(Arc::clone(&shared), path)));
    let beats = shared
        .bus
        .as_ref()
        .map(|_| tokio::spawn(publish_beats(Arc::clone(&shared))));
    // From here on a valid change to heartbeat.json applies from the next tick.
    let _config_watch = watch_config(&shared);

    let interval = shared.options.tick_interval;
    let monitor = Arc::new(Mutex::new(crate::tick_monitor::TickMonitor::new(
        u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
    )));
    let timer = match &shared.bus {
        Some(bus) => {
            tokio::spawn(apply_controls(Arc::clone(&shared), control_rx));
            tokio::spawn(crate::amqp::run_fallback_timer(
                interval,
                tick_tx,
                bus.watch_status(),
                Arc::clone(&monitor),
                Arc::clone(&shared.health),
            ))
        }
        None => tokio::spawn(tick::run_timer(interval, tick_tx)),
    };
    let mut in_flight = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            tick = tick_rx.recv() => match tick {
                Some(tick) => {
                    // Bus ticks carry an acknowledgement; the timer's do not.
                    if tick.done.is_some() {
                        note_bus_tick(&shared, &monitor);
                    }
                    in_flight.spawn(handle_tick(Arc::clone(&shared), tick));
                }
                None => break,
            },
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(e) = done { error!("tick task failed: {e}"); }
            }
        }
    }
    timer.abort();
    if let Some(bus) = &shared.bus {
        bus.stop_consuming();
    }
    // Ticks taken but not started go back to the broker unacknowledged.
    drop(tick_rx);
    info!(
        runs_in_flight = in_flight.len(),
        "shutting down; letting runs in flight finish"
    );
    while let Some(done) = in_flight.join_next().await {
        if let Err(e) = done {
            error!("tick task failed: {e}");
        }
    }
    if let Some(bus) = &shared.bus {
        if let Some(task) = beats {
            task.abort();
        }
        let beats = &shared.options.beats;
        match bus
            .publish_beat(&beats.routing_key(), crate::beats::STOP_BODY)
            .await
        {
            Ok(()) => info!(routing_key = %beats.routing_key(), "published stop"),
            Err(e) => warn!(routing_key = %beats.routing_key(), "stop not published: {e}"),
        }
        bus.shutdown().await;
    }
    if let (Some(task), Some(path)) = (liveness, &shared.options.liveness_file) {
        task.abort();
        write_liveness_once(&shared, path, "stopped");
    }
    info!("heartbeat-host stopped");
    Ok(())
}

/// A bus tick arrived: the tick source is not (or no longer) silent.
fn note_bus_tick(shared: &Shared, monitor: &Mutex<crate::tick_monitor::TickMonitor>) {
    let back = monitor
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bus_tick(crate::tick::now_ms());
    if back == Some(crate::tick_monitor::Transition::Back) {
        shared.health.set_tick_source_silent(false);
        info!(
            "bus ticks are back: the tick source is no longer silent; the host's own timer falls silent"
        );
    }
}

fn report_missing_handlers(config: &HeartbeatConfig, registry: &Registry, dir: Option<&Path>) {
    for check in &config.checks {
        if let Err(e) = registry.resolve(&check.handler, dir) {
            error!(check = %check.name, handler = %check.handler, "check names a missing handler; its runs will fail: {e}");
        }
    }
}

/// Watches heartbeat.json and swaps each valid change into `shared.config`
/// (the next tick reads it); `None`, and the config fixed, when the watch
/// cannot be set up.
fn watch_config(shared: &Arc<Shared>) -> Option<crate::config_watch::ConfigWatcher> {
    let current = Arc::clone(&shared.config.read().unwrap_or_else(|p| p.into_inner()));
    let target = Arc::clone(shared);
    let apply = move |config: Arc<HeartbeatConfig>, _: &crate::config_watch::ConfigDiff| {
        report_missing_handlers(
            &config,
            &target.registry,
            target.options.handlers_dir.as_deref(),
        );
        *target.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    };
    match crate::config_watch::ConfigWatcher::start(
        &shared.options.config_path,
        current,
        crate::config_watch::WatchOptions {
            health: Some(Arc::clone(&shared.health)),
            ..crate::config_watch::WatchOptions::default()
        },
        apply,
    ) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            error!("hot reload is off, restart the host to apply config changes: {e}");
            None
        }
    }
}

/// One tick: select, run, record. Resolves once the state is on disk.
async fn handle_tick(shared: Arc<Shared>, tick: Tick) {
    let config = Arc::clone(&shared.config.read().unwrap_or_else(|p| p.into_inner()));
    let mut jobs = select(&shared, &config, &tick).into_iter();
    // The first run goes in this task, any others beside it in tasks of their own.
    let first = jobs.next();
    let mut runs = tokio::task::JoinSet::new();
    for (check, request) in jobs {
        runs.spawn(run_check(Arc::clone(&shared), check, request));
    }
    let mut finished = Vec::new();
    let mut published = Vec::new();
    let mut ended = |(check, report): (CheckConfig, RunReport)| {
        // Events go out as soon as the run ends, while the state is saved.
        if let (None, Some(path)) = (&shared.bus, &shared.options.events_log) {
            append_events(path, &tick, &check, &report);
        }
        if let Some(bus) = &shared.bus {
            published.push(bus.publish_run(&tick.envelope, &check.name, &check.handler, &report));
        }
        finished.push((check, report));
    };
    if let Some((check, request)) = first {
        ended(run_check(Arc::clone(&shared), check, request).await);
    }
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok(run) => ended(run),
            Err(e) => error!(tick = %tick.id, "run task failed: {e}"),
        }
    }
    if !finished.is_empty() {
        match record(&shared, &tick, finished).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(tick = %tick.id, "state not saved: {e}"),
            Err(_) => error!(tick = %tick.id, "state writer stopped; state not saved"),
        }
    }
    // A bus tick is acknowledged only once its runs' events are confirmed
    // (or in the outbox) too.
    for events in published {
        if !events.wait().await {
            error!(tick = %tick.id, "event publisher stopped; this run's events were not sent");
        }
    }
    if let Some(done) = tick.done {
        done.handled();
    }
}

/// Resolves the check's handler and runs it once.
async fn run_check(
    shared: Arc<Shared>,
    check: CheckConfig,
    request: RunRequest,
) -> (CheckConfig, RunReport) {
    let report = match shared
        .registry
        .resolve(&check.handler, shared.options.handlers_dir.as_deref())
    {
        Ok(handler) => shared.runtime.run(&handler, &request).await,
        Err(e) => RunReport::failed_before_start(e.to_string()),
    };
    (check, report)
}

/// Applies the bus's control messages (pause, resume, run) to the state,
/// one at a time, answering each once the state file has it.
async fn apply_controls(
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<crate::amqp::ControlRequest>,
) {
    use crate::amqp::control::{self, Refused};
    while let Some(request) = requests.recv().await {
        let config = Arc::clone(&shared.config.read().unwrap_or_else(|p| p.into_inner()));
        let applied = {
            let mut book = shared.book.lock().unwrap_or_else(|p| p.into_inner());
            control::apply(&request.command, &config, &mut book.state)
                .map(|applied| (applied, shared.writer.persist(book.state.clone())))
        };
        let reply = match applied {
            Ok((applied, saved)) => match saved.await {
                Ok(Ok(())) => Ok(applied),
                Ok(Err(e)) => Err(Refused::NotSaved(e)),
                Err(_) => Err(Refused::NotSaved("the state writer stopped".into())),
            },
            Err(refused) => Err(refused),
        };
        let _ = request.reply.send(reply);
    }
}

/// Plans the tick, logs why, and marks the selected checks running.
fn select(
    shared: &Shared,
    config: &HeartbeatConfig,
    tick: &Tick,
) -> Vec<(CheckConfig, RunRequest)> {
    let mut book = shared.book.lock().unwrap_or_else(|p| p.into_inner());
    let plan = schedule::plan(config, &book.state, &book.running, tick.time_ms);
    if plan.selected.is_empty() {
        info!(tick = %tick.id, "no check due");
        return Vec::new();
    }
    let mut jobs = Vec::with_capacity(plan.selected.len());
    let processes = Arc::new(
        shared
            .tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot(crate::tick::now_ms()),
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
        info!(tick = %tick.id, check = %check.name, handler = %check.handler, "selected ({why})");
        book.running.insert(check.name.clone());
        book.state.run_requests.remove(&check.name);
        let mut request = RunRequest::for_check(
            &shared.options.agent,
            TickInfo {
                id: tick.id.clone(),
                time_ms: tick.time_ms,
                envelope: tick.envelope.to_string(),
            },
            check,
            evaluation.last_run_ms,
            config_dir(&shared.options.config_path),
        );
        request.processes = Arc::clone(&processes);
        jobs.push((check.clone(), request));
    }
    jobs
}

/// Appends the events a run emitted to the JSON-lines events log (no bus).
fn append_events(path: &Path, tick: &Tick, check: &CheckConfig, report: &RunReport) {
    use std::io::Write as _;
    if report.events.is_empty() {
        return;
    }
    let mut lines = String::new();
    for event in &report.events {
        let line = serde_json::json!({
            "time": crate::liveness::iso_utc(tick.time_ms),
            "routingKey": event.event_type,
            "check": check.name,
            "handler": check.handler,
            "tick": tick.id,
            "payload": event.payload,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(lines.as_bytes()));
    if let Err(e) = appended {
        error!(file = %path.display(), check = %check.name, "cannot append to the events log: {e}");
    }
}

/// The host's own beats: `start/<warmup>` once the bus is first connected,
/// then every period `beat/<period>` or, while degraded,
/// `degraded/<period>`; only while connected (a beat that cannot go out is
/// dropped, never queued). `stop` is published by the shutdown.
async fn publish_beats(shared: Arc<Shared>) {
    let Some(bus) = &shared.bus else { return };
    let options = &shared.options.beats;
    let key = options.routing_key();
    let mut status = bus.watch_status();
    while *status.borrow_and_update() != crate::amqp::BusStatus::Connected {
        if status.changed().await.is_err() {
            return;
        }
    }
    let body = crate::beats::start_body(options.warmup);
    match bus.publish_beat(&key, &body).await {
        Ok(()) => info!(routing_key = %key, body = %body, "published start"),
        Err(e) => warn!(routing_key = %key, "start not published: {e}"),
    }
    let period = options.period.max(crate::beats::MIN_PERIOD);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        if !bus.is_connected() {
            continue;
        }
        let body = crate::beats::periodic_body(&shared.health.status(), period);
        match bus.publish_beat(&key, &body).await {
            Ok(()) => tracing::debug!(routing_key = %key, body = %body, "published a beat"),
            Err(e) => tracing::debug!(routing_key = %key, "beat not published: {e}"),
        }
    }
}

/// Writes the liveness file now, then every period, with the host's health.
async fn write_liveness(shared: Arc<Shared>, path: PathBuf) {
    let mut every = tokio::time::interval(shared.options.liveness_period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_status = "";
    loop {
        every.tick().await;
        let health = shared.health.status();
        if health.as_str() != last_status {
            match &health {
                crate::health::HealthStatus::Healthy => info!("host is healthy"),
                crate::health::HealthStatus::Degraded(reasons) => {
                    warn!(reasons = %reasons.join("; "), "host is degraded")
                }
            }
            last_status = health.as_str();
        }
        let shared = Arc::clone(&shared);
        let path = path.clone();
        let _ = tokio::task::spawn_blocking(move || {
            write_liveness_once(&shared, &path, health.as_str())
        })
        .await;
    }
}

/// One write of the liveness file, with `status` and the degraded reasons.
fn write_liveness_once(shared: &Shared, path: &Path, status: &str) {
    let mut metadata = serde_json::Map::new();
    metadata.insert("agent".into(), shared.options.agent.clone().into());
    metadata.insert("status".into(), status.into());
    metadata.insert(
        "reasons".into(),
        shared.health.status().reasons().to_vec().into(),
    );
    let now = tick::now_ms();
    let processes = shared
        .tracker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .snapshot(now);
    match serde_json::to_value(processes) {
        Ok(processes) => {
            metadata.insert("processes".into(), processes);
        }
        Err(e) => error!("cannot write the process table to the liveness file: {e}"),
    }
    let state = crate::liveness::LivenessState::now(now, metadata);
    if let Err(e) = crate::liveness::write(path, &state) {
        error!(file = %path.display(), "cannot write the liveness file: {e}");
    }
}

/// The directory relative grant paths are resolved against.
fn config_dir(config_path: &Path) -> &Path {
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Logs each outcome, applies it to the state and hands the state to the writer.
fn record(
    shared: &Shared,
    tick: &Tick,
    finished: Vec<(CheckConfig, RunReport)>,
) -> oneshot::Receiver<Result<(), String>> {
    let mut book = shared.book.lock().unwrap_or_else(|p| p.into_inner());
    for (check, report) in finished {
        log_outcome(tick, &check, &report);
        book.running.remove(&check.name);
        shared.health.record_run(report.status == RunStatus::Failed);
        let record = book.state.checks.entry(check.name.clone()).or_default();
        state::record_outcome(
            record,
            tick.time_ms,
            check.cadence_ms,
            report.status,
            report.duration_us,
            report.error.clone(),
        );
    }
    // Sent under the lock, so the writer sees snapshots in the order they were taken.
    shared.writer.persist(book.state.clone())
}

fn log_outcome(tick: &Tick, check: &CheckConfig, report: &RunReport) {
    let duration = format!("{:.3}ms", report.duration_us as f64 / 1000.0);
    for record in &report.logs {
        let fields = record
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        info!(check = %check.name, handler = %check.handler, level = record.level, fields = %fields, "handler log: {}", record.message);
    }
    match report.status {
        RunStatus::Failed => warn!(
            tick = %tick.id, check = %check.name, handler = %check.handler, status = %report.status,
            duration = %duration, error = report.error.as_deref().unwrap_or(""), "run finished"
        ),
        _ => info!(
            tick = %tick.id, check = %check.name, handler = %check.handler, status = %report.status,
            duration = %duration, details = %report.details, events = report.events.len(), "run finished"
        ),
    }
}

/// Writes state snapshots to disk off the tick path, on a thread of its
/// own, coalescing snapshots that queue up behind a write into one (group
/// commit): every caller is answered once a snapshot at least as new as its
/// own is durable. The thread ends once every handle is dropped.
struct StateWriter {
    tx: std::sync::mpsc::Sender<(State, oneshot::Sender<Result<(), String>>)>,
}

impl StateWriter {
    fn spawn(path: PathBuf) -> std::io::Result<StateWriter> {
        let (tx, rx) = std::sync::mpsc::channel::<(State, oneshot::Sender<Result<(), String>>)>();
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || {
                while let Ok((mut latest, first)) = rx.recv() {
                    let mut waiters = vec![first];
                    while let Ok((newer, waiter)) = rx.try_recv() {
                        latest = newer;
                        waiters.push(waiter);
                    }
                    let result = state::save(&path, &latest).map_err(|e| e.to_string());
                    for waiter in waiters {
                        let _ = waiter.send(result.clone());
                    }
                }
            })?;
        Ok(StateWriter { tx })
    }

    fn persist(&self, snapshot: State) -> oneshot::Receiver<Result<(), String>> {
        let (done, wait) = oneshot::channel();
        if self.tx.send((snapshot, done)).is_err() {
            error!("state writer has stopped; state not saved");
        }
        wait
    }
}
