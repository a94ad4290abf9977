//! One agent served by the host: its config and state, its pipeline, its
//! bus (queue, outbox, beats, controls), its processes table, its timer and
//! its tick loop. [`Agent::start`] brings it up on what the process holds
//! for all its agents ([`ProcessResources`]); [`Agent::stop`] stops taking
//! ticks, lets its runs in flight finish and publishes its `stop` beat. The
//! single-agent host runs one; `run --agents` runs one per file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use heartbeat_core::health::Health;
use heartbeat_core::processes::{Tracker, TrackerConfig};
use heartbeat_core::tick_monitor::TickMonitor;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument as _, error, info, warn};

use super::config_reload::{self, ConfigReader, ConfigWatcher};
use super::live_agent::{AgentOptions, LiveAgent};
use super::observer::Observer;
use super::pipeline::{Pipeline, PipelineParts};
use super::services;
use crate::amqp::shared::SharedConnections;
use crate::amqp::{Bus, ControlRequest, FallbackGate, Watching};
use crate::observe::metrics::TickSource;
use crate::publish::{Discard, Sink, events_log::EventsLog};
use crate::runtime::Runtime;
use crate::runtime::registry::Registry;
use crate::source::{Clock, Tick, timer};
use crate::store::state::StateWriter;

/// What the process holds for all its agents: the WebAssembly runtime (its
/// engine and compiled-handler cache), the handler registries (one per
/// handler directory, with its watch), the clock, the broker connections
/// and the observer every agent reports to.
pub(super) struct ProcessResources {
    pub(super) runtime: Arc<Runtime>,
    pub(super) clock: Arc<dyn Clock>,
    /// `None`: each agent's bus has a connection of its own (one agent).
    pub(super) connections: Option<Arc<SharedConnections>>,
    /// Told what happens (the process's metrics).
    pub(super) observer: Arc<dyn Observer>,
    registries: Mutex<HashMap<Option<PathBuf>, WatchedRegistry>>,
}

/// A registry in service, the watch that keeps it current, and how many
/// agents use it.
struct WatchedRegistry {
    registry: Arc<Registry>,
    watch: Option<crate::watch::handlers::HandlerWatch>,
    users: usize,
}

impl ProcessResources {
    pub(super) fn new(
        runtime: Arc<Runtime>,
        clock: Arc<dyn Clock>,
        connections: Option<Arc<SharedConnections>>,
        observer: Arc<dyn Observer>,
    ) -> ProcessResources {
        ProcessResources {
            runtime,
            clock,
            connections,
            observer,
            registries: Mutex::new(HashMap::new()),
        }
    }

    /// The registry of `dir` (the built-ins alone without one), loaded and
    /// watched when its first agent asks.
    fn registry(&self, dir: Option<&Path>) -> anyhow::Result<Arc<Registry>> {
        let key = dir.map(Path::to_path_buf);
        let mut registries = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watched) = registries.get_mut(&key) {
            watched.users += 1;
            return Ok(Arc::clone(&watched.registry));
        }
        let registry = Arc::new(Registry::with_builtins(&self.runtime)?);
        let watch = match dir {
            Some(dir) => {
                let observer = Arc::clone(&self.observer);
                Some(
                    crate::watch::handlers::start_reporting(
                        dir,
                        Arc::clone(&self.runtime),
                        Arc::clone(&registry),
                        move |outcome| observer.handler_file(outcome),
                    )
                    .with_context(|| {
                        format!("cannot watch the handler directory {}", dir.display())
                    })?,
                )
            }
            None => None,
        };
        registries.insert(
            key,
            WatchedRegistry {
                registry: Arc::clone(&registry),
                watch,
                users: 1,
            },
        );
        Ok(registry)
    }

    /// An agent of `dir` stopped: its registry and watch go when it was the last.
    fn release(&self, dir: Option<&Path>) {
        let key = dir.map(Path::to_path_buf);
        let mut registries = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watched) = registries.get_mut(&key) {
            watched.users = watched.users.saturating_sub(1);
            if watched.users == 0 {
                registries.remove(&key);
            }
        }
    }

    /// Has every handler watch rescan its directory now (SIGHUP); false
    /// when there is none.
    pub(super) fn rescan_handlers(&self) -> bool {
        let registries = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        let mut any = false;
        for watched in registries.values() {
            if let Some(watch) = &watched.watch {
                any |= watch.trigger().fire();
            }
        }
        any
    }
}

/// How an agent follows changes to its `heartbeat.json`.
pub(super) enum Follow {
    /// A watch of its own on the file's directory (the single-agent host).
    OwnWatch,
    /// Told by the caller ([`Agent::reload_config`]): the many-agent host
    /// watches the agents' directory once for all of them.
    Told,
}

/// A running agent.
pub(super) struct Agent {
    pub(super) live: Arc<LiveAgent>,
    stop: watch::Sender<bool>,
    /// The tick loop; taken by [`Agent::stop`].
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Its own config watch ([`Follow::OwnWatch`]); dropped by [`Agent::stop`].
    config_watch: Mutex<Option<ConfigWatcher>>,
    /// Its config reader ([`Follow::Told`]).
    config_reader: Option<Mutex<ConfigReader>>,
}

impl Agent {
    /// Loads the agent's config and state and starts serving it: its bus
    /// (if any), its timer, its side services and its tick loop.
    pub(super) async fn start(
        resources: &Arc<ProcessResources>,
        options: AgentOptions,
        follow: Follow,
    ) -> anyhow::Result<Agent> {
        let span = tracing::info_span!("agent", agent = %options.agent);
        async move {
            let registry = resources.registry(options.handlers_dir.as_deref())?;
            match Agent::start_with(resources, options.clone(), follow, Arc::clone(&registry)) {
                Ok(agent) => Ok(agent),
                Err(e) => {
                    resources.release(options.handlers_dir.as_deref());
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await
    }

    fn start_with(
        resources: &Arc<ProcessResources>,
        options: AgentOptions,
        follow: Follow,
        registry: Arc<Registry>,
    ) -> anyhow::Result<Agent> {
        let loaded = crate::store::load_config_to_run(&options.config_path)?;
        for warning in &loaded.warnings {
            warn!(file = %options.config_path.display(), "{warning}");
        }
        let config = loaded.config;
        let mut state = crate::store::state::load(&options.state_path)?;
        for said in state.clamp_future(crate::source::now_ms()) {
            warn!(event = "state_clamped", file = %options.state_path.display(), "{said}");
        }
        crate::store::remove_stale_temps(&options.state_path);
        let kv = crate::store::kv::KvLocation::beside_state(&options.state_path);
        kv.remove_stale_temps();
        if let Some(path) = &options.liveness_file {
            crate::store::remove_stale_temps(path);
        }
        if let Some(bus) = &options.bus {
            crate::store::remove_stale_temps(&bus.outbox_path);
        }
        services::report_checks_that_will_fail(&config, &registry, options.handlers_dir.as_deref());
        info!(
            event = "started",
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
        let clock = Arc::clone(&resources.clock);
        let (tick_tx, tick_rx) = mpsc::channel::<Tick>(64);
        let (control_tx, control_rx) = mpsc::channel::<ControlRequest>(16);
        let tracker = Arc::new(Mutex::new(Tracker::new(TrackerConfig::default())));
        let bus = match &options.bus {
            Some(bus) => Some(Arc::new(Bus::start_watching(
                bus,
                &options.agent,
                &Watching {
                    patterns: config.watch.clone(),
                    tracker: Arc::clone(&tracker),
                    own_beats: Some(options.beats.routing_key()),
                    connections: resources.connections.clone(),
                },
                tick_tx.clone(),
                control_tx,
            )?)),
            None => None,
        };
        let sink: Arc<dyn Sink> = match (&bus, &options.events_log) {
            (Some(bus), _) => Arc::clone(bus) as Arc<dyn Sink>,
            (None, Some(path)) => Arc::new(EventsLog::new(path.clone(), &options.agent)),
            (None, None) => Arc::new(Discard),
        };
        let health = Arc::new(Health::default());
        let pipeline = Arc::new(Pipeline::new(PipelineParts {
            agent: options.agent.clone(),
            config,
            config_dir: crate::store::dir_of(&options.config_path).to_path_buf(),
            handlers_dir: options.handlers_dir.clone(),
            state,
            runtime: Arc::clone(&resources.runtime),
            registry,
            store: Arc::new(
                StateWriter::spawn(options.state_path.clone())
                    .context("cannot start the state writer thread")?,
            ),
            sink,
            health: Arc::clone(&health),
            tracker: Arc::clone(&tracker),
            clock: Arc::clone(&clock),
            kv: Some(kv),
            max_runs: options.max_runs,
            observer: Arc::clone(&resources.observer),
        }));
        let live = Arc::new(LiveAgent {
            options,
            pipeline,
            bus,
            health,
            tracker,
            ticks_seen: AtomicU64::new(0),
        });
        let observer = Arc::clone(&resources.observer);
        let (config_watch, config_reader) = match follow {
            // From here on a valid change to heartbeat.json applies from the next tick.
            Follow::OwnWatch => (config_reload::watch(&live, observer), None),
            Follow::Told => (
                None,
                Some(Mutex::new(config_reload::reader_of(&live, observer))),
            ),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(
            serve(
                Arc::clone(&live),
                Arc::clone(&resources.observer),
                clock,
                tick_tx,
                tick_rx,
                control_rx,
                stopped,
            )
            .instrument(tracing::Span::current()),
        );
        Ok(Agent {
            live,
            stop,
            task: Mutex::new(Some(task)),
            config_watch: Mutex::new(config_watch),
            config_reader,
        })
    }

    /// The agent's name.
    pub(super) fn name(&self) -> &str {
        &self.live.options.agent
    }

    /// Reads the agent's `heartbeat.json` again ([`Follow::Told`]; with its
    /// own watch, has the watch read it).
    pub(super) fn reload_config(&self) {
        if let Some(reader) = &self.config_reader {
            reader.lock().unwrap_or_else(|p| p.into_inner()).read();
        } else if let Some(watch) = &*self.config_watch.lock().unwrap_or_else(|p| p.into_inner()) {
            watch.trigger().fire();
        }
    }

    /// Stops taking ticks, lets the runs in flight finish, publishes the
    /// `stop` beat and closes the bus; resolves when all that is done. A
    /// second call does nothing.
    /// Marks the agent as no longer served, before [`Agent::stop`]: its
    /// inbox stops collecting ticks ([`crate::amqp::Bus::retire`]).
    pub(super) fn retire(&self) {
        if let Some(bus) = &self.live.bus {
            bus.retire();
        }
    }

    pub(super) async fn stop(&self, resources: &ProcessResources) {
        let _ = self.stop.send(true);
        drop(
            self.config_watch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(task) = task else { return };
        if let Err(e) = task.await {
            error!(agent = %self.live.options.agent, "agent task failed: {e}");
        }
        resources.release(self.live.options.handlers_dir.as_deref());
    }
}

/// The agent's tick loop: every tick goes to the pipeline (in a task of its
/// own, so that a slow run never holds up the next tick) until `stopped`;
/// then the shutdown steps, in order.
async fn serve(
    agent: Arc<LiveAgent>,
    observer: Arc<dyn Observer>,
    clock: Arc<dyn Clock>,
    tick_tx: mpsc::Sender<Tick>,
    mut tick_rx: mpsc::Receiver<Tick>,
    control_rx: mpsc::Receiver<ControlRequest>,
    mut stopped: watch::Receiver<bool>,
) {
    let span = tracing::Span::current();
    let spawn = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        tokio::spawn(f.instrument(span.clone()))
    };
    let liveness = agent
        .options
        .liveness_file
        .clone()
        .map(|path| spawn(Box::pin(services::write_liveness(Arc::clone(&agent), path))));
    let beats = agent
        .bus
        .as_ref()
        .map(|_| spawn(Box::pin(services::publish_beats(Arc::clone(&agent)))));
    let takeover = agent
        .options
        .bus
        .as_ref()
        .filter(|bus| bus.exclusive)
        .map(|_| {
            spawn(Box::pin(services::reload_state_on_takeover(Arc::clone(
                &agent,
            ))))
        });
    let interval = agent.options.tick_interval;
    let monitor = Arc::new(Mutex::new(TickMonitor::new(
        u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
    )));
    let pipeline = Arc::clone(&agent.pipeline);
    let controls = agent.bus.as_ref().map(|_| {
        spawn(Box::pin(services::apply_controls(
            Arc::clone(&pipeline),
            control_rx,
        )))
    });
    let timer = match &agent.bus {
        Some(bus) => {
            let gate = FallbackGate {
                status: bus.watch_status(),
                monitor: Arc::clone(&monitor),
                health: Arc::clone(&agent.health),
                interval,
                exclusive: agent.options.bus.as_ref().is_some_and(|b| b.exclusive),
            };
            spawn(Box::pin(timer::run(
                interval,
                tick_tx,
                Arc::clone(&clock),
                gate,
            )))
        }
        None => spawn(Box::pin(timer::run(
            interval,
            tick_tx,
            Arc::clone(&clock),
            timer::Always,
        ))),
    };
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            changed = stopped.changed() => if changed.is_err() || *stopped.borrow() { break },
            tick = tick_rx.recv() => match tick {
                Some(tick) => {
                    // Bus ticks carry an acknowledgement; the timer's do not.
                    let source = if tick.done.is_some() {
                        services::note_bus_tick(&agent, &monitor, clock.now_ms());
                        TickSource::Bus
                    } else if agent.bus.is_some() {
                        TickSource::Fallback
                    } else {
                        TickSource::Timer
                    };
                    observer.tick_taken(source);
                    agent.ticks_seen.fetch_add(1, Ordering::Relaxed);
                    in_flight.spawn(Arc::clone(&pipeline).handle(tick).instrument(span.clone()));
                }
                None => break,
            },
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(e) = done { error!("tick task failed: {e}"); }
            }
        }
    }
    timer.abort();
    if let Some(task) = takeover {
        task.abort();
    }
    if let Some(bus) = &agent.bus {
        bus.stop_consuming();
    }
    // Ticks taken but not started go back to the broker unacknowledged.
    drop(tick_rx);
    info!(
        event = "shutting_down",
        runs_in_flight = in_flight.len(),
        "shutting down; letting runs in flight finish"
    );
    while let Some(done) = in_flight.join_next().await {
        if let Err(e) = done {
            error!("tick task failed: {e}");
        }
    }
    if let Some(task) = controls {
        task.abort();
    }
    if let Some(bus) = &agent.bus {
        if let Some(task) = beats {
            task.abort();
        }
        let key = agent.options.beats.routing_key();
        match bus
            .publish_beat(&key, heartbeat_core::beats::STOP_BODY)
            .await
        {
            Ok(()) => info!(event = "stop_published", routing_key = %key, "published stop"),
            Err(e) => warn!(routing_key = %key, "stop not published: {e}"),
        }
        bus.shutdown().await;
    }
    if let (Some(task), Some(path)) = (liveness, &agent.options.liveness_file) {
        task.abort();
        services::write_liveness_once(&agent, path, "stopped");
    }
}
