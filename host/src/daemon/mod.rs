//! The running host: the wiring. [`run`] starts the rooms (runtime,
//! handler and config watchers, tick sources, sink, store) and the side
//! services ([`services`]: control messages, beats, the liveness file),
//! then feeds every tick to the [`Pipeline`] until shutdown, when it lets
//! the runs in flight finish. Everything a tick goes through is in
//! [`pipeline`]; this module only connects the parts.

mod observed;
pub mod pipeline;
mod services;
mod systemd;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use heartbeat_core::health::Health;
use heartbeat_core::processes::{Tracker, TrackerConfig};
use heartbeat_core::tick_monitor::TickMonitor;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

pub use pipeline::Pipeline;

use crate::amqp::{Bus, ControlRequest, FallbackGate, Watching};
use crate::observe::metrics::TickSource;
use crate::publish::{Discard, Sink, events_log::EventsLog};
use crate::runtime::registry::Registry;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::source::{Clock, SystemClock, Tick, timer};
use crate::store::state::StateWriter;

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
    pub beats: heartbeat_core::beats::BeatOptions,
    /// The largest handler file read (`--max-handler-bytes`).
    pub max_handler_bytes: u64,
    /// Runs in flight at once (`--max-runs-in-flight`); more wait for a slot.
    pub max_runs_in_flight: u32,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`--metrics-addr`); off when `None`.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// What the side services share with the wiring.
struct Shared {
    options: HostOptions,
    pipeline: Arc<Pipeline>,
    /// The broker connection, in broker mode.
    bus: Option<Arc<Bus>>,
    /// Healthy or degraded, and why.
    health: Arc<Health>,
    /// The watched sub-processes, fed by their beats on the bus.
    tracker: Arc<Mutex<Tracker>>,
}

/// How often the tick loop tells systemd its status (and pings the
/// watchdog, at least this often when one is set).
const NOTIFY_PERIOD: Duration = Duration::from_secs(1);

/// Runs the host until `shutdown` resolves, then lets runs in flight finish.
pub async fn run(
    options: HostOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let loaded = crate::store::load_config(&options.config_path)?;
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
    let runtime = Arc::new(
        Runtime::new(&RuntimeOptions {
            max_handler_bytes: options.max_handler_bytes,
            max_runs_in_flight: options.max_runs_in_flight,
            ..RuntimeOptions::default()
        })
        .context("cannot start the WebAssembly runtime")?,
    );
    let registry = Arc::new(Registry::with_builtins(&runtime)?);
    // Loads the directory's handlers over the built-ins, then keeps them current.
    let handler_watch = match &options.handlers_dir {
        Some(dir) => Some(
            crate::watch::handlers::start(dir, Arc::clone(&runtime), Arc::clone(&registry))
                .with_context(|| format!("cannot watch the handler directory {}", dir.display()))?,
        ),
        None => None,
    };
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (tick_tx, mut tick_rx) = mpsc::channel::<Tick>(64);
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
    let pipeline = Arc::new(Pipeline::new(pipeline::Parts {
        agent: options.agent.clone(),
        config,
        config_dir: crate::store::dir_of(&options.config_path).to_path_buf(),
        handlers_dir: options.handlers_dir.clone(),
        state,
        runtime,
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
    }));
    let shared = Arc::new(Shared {
        options,
        pipeline: Arc::clone(&pipeline),
        bus,
        health,
        tracker,
    });
    let liveness = shared
        .options
        .liveness_file
        .clone()
        .map(|path| tokio::spawn(services::write_liveness(Arc::clone(&shared), path)));
    let beats = shared
        .bus
        .as_ref()
        .map(|_| tokio::spawn(services::publish_beats(Arc::clone(&shared))));
    let takeover = shared
        .options
        .bus
        .as_ref()
        .filter(|bus| bus.exclusive)
        .map(|_| tokio::spawn(services::reload_state_on_takeover(Arc::clone(&shared))));
    // From here on a valid change to heartbeat.json applies from the next tick.
    let config_watch = services::watch_config(&shared);
    // SIGHUP reads heartbeat.json and the handler directory again at once.
    // Listened for before the first tick, so a SIGHUP from then on never
    // meets the default action (terminate).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let hangup = tokio::spawn(services::reload_on_sighup(
        hangups,
        config_watch.as_ref().map(|w| w.trigger()),
        handler_watch.as_ref().map(|w| w.trigger()),
    ));

    let interval = shared.options.tick_interval;
    let monitor = Arc::new(Mutex::new(TickMonitor::new(
        u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
    )));
    let timer = match &shared.bus {
        Some(bus) => {
            tokio::spawn(services::apply_controls(Arc::clone(&pipeline), control_rx));
            let gate = FallbackGate {
                status: bus.watch_status(),
                monitor: Arc::clone(&monitor),
                health: Arc::clone(&shared.health),
                interval,
                exclusive: shared.options.bus.as_ref().is_some_and(|b| b.exclusive),
            };
            tokio::spawn(timer::run(interval, tick_tx, Arc::clone(&clock), gate))
        }
        None => tokio::spawn(timer::run(
            interval,
            tick_tx,
            Arc::clone(&clock),
            timer::Always,
        )),
    };
    let mut in_flight = tokio::task::JoinSet::new();
    let last_turn_ms = Arc::new(AtomicU64::new(clock.now_ms()));
    let ticks_seen = Arc::new(AtomicU64::new(0));
    let endpoint = match shared.options.metrics_addr {
        None => None,
        Some(addr) => {
            let view = Arc::new(observed::Observed {
                shared: Arc::clone(&shared),
                clock: Arc::clone(&clock),
                last_turn_ms: Arc::clone(&last_turn_ms),
                ticks_seen: Arc::clone(&ticks_seen),
            });
            let (bound, serve) = crate::observe::http::bind(addr, view)
                .await
                .with_context(|| format!("cannot serve --metrics-addr {addr}"))?;
            info!(event = "endpoint_listening", addr = %bound, "serving /metrics, /healthz and /readyz on http://{bound}");
            Some(tokio::spawn(serve))
        }
    };
    // systemd (`Type=notify`): ready now that the config is loaded and the
    // tick source runs. The watchdog pings come from this loop's own turns,
    // so a wedged loop stops them and systemd restarts the host.
    let notifier = systemd::Notifier::from_env();
    let watchdog = systemd::watchdog_interval();
    let mut sent_status = systemd::status_line(&shared.health.status());
    if let Some(notifier) = &notifier {
        notifier.send(&format!("READY=1\n{sent_status}"));
    }
    let mut notify_every =
        tokio::time::interval(watchdog.map_or(NOTIFY_PERIOD, |w| w.min(NOTIFY_PERIOD)));
    notify_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = notify_every.tick() => {
                // The loop's own pulse: `/healthz` and the watchdog read it.
                last_turn_ms.store(clock.now_ms(), Ordering::Relaxed);
                if let Some(notifier) = &notifier {
                    let status = systemd::status_line(&shared.health.status());
                    if watchdog.is_some() {
                        notifier.send("WATCHDOG=1");
                    }
                    if status != sent_status {
                        notifier.send(&status);
                        sent_status = status;
                    }
                }
            }
            tick = tick_rx.recv() => match tick {
                Some(tick) => {
                    // Bus ticks carry an acknowledgement; the timer's do not.
                    let source = if tick.done.is_some() {
                        services::note_bus_tick(&shared, &monitor, clock.now_ms());
                        TickSource::Bus
                    } else if shared.bus.is_some() {
                        TickSource::Fallback
                    } else {
                        TickSource::Timer
                    };
                    crate::observe::METRICS.record_tick(source);
                    ticks_seen.fetch_add(1, Ordering::Relaxed);
                    in_flight.spawn(Arc::clone(&pipeline).handle(tick));
                }
                None => break,
            },
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(e) = done { error!("tick task failed: {e}"); }
            }
        }
    }
    if let Some(notifier) = &notifier {
        notifier.send("STOPPING=1\nSTATUS=stopping: letting runs in flight finish");
    }
    timer.abort();
    hangup.abort();
    if let Some(task) = takeover {
        task.abort();
    }
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    if let Some(bus) = &shared.bus {
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
    if let Some(bus) = &shared.bus {
        if let Some(task) = beats {
            task.abort();
        }
        let key = shared.options.beats.routing_key();
        match bus
            .publish_beat(&key, heartbeat_core::beats::STOP_BODY)
            .await
        {
            Ok(()) => info!(event = "stop_published", routing_key = %key, "published stop"),
            Err(e) => warn!(routing_key = %key, "stop not published: {e}"),
        }
        bus.shutdown().await;
    }
    if let (Some(task), Some(path)) = (liveness, &shared.options.liveness_file) {
        task.abort();
        services::write_liveness_once(&shared, path, "stopped");
    }
    info!(event = "stopped", "heartbeat-host stopped");
    Ok(())
}
