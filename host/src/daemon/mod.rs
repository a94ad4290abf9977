//! The running host: the wiring. [`run`] serves one agent, [`run_many`]
//! many from one process. Each agent ([`agent`], [`live_agent`]) has its
//! rooms (config reader, tick sources, sink, store, pipeline) and side
//! services ([`services`]: control messages, beats, the liveness file);
//! what the agents share, the process holds: the WebAssembly runtime, the
//! handler registries, the broker connection ([`fleet`] for many), the
//! metrics, the operations endpoint, systemd's notifications and the
//! signals. Everything a tick goes through is in [`pipeline`]; what the
//! rooms report ([`observer`]) becomes metrics and `/status` in one
//! adapter, `observed`; this module only connects the parts.

mod agent;
pub mod config_reload;
pub mod fleet;
mod live_agent;
mod observed;
mod observer;
pub mod pipeline;
mod services;
mod systemd;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use heartbeat_core::health::HealthStatus;
use tokio::sync::mpsc;
use tracing::info;

pub use fleet::{AgentDefaults, BusDefaults, Layout, ManyOptions};
pub use live_agent::AgentOptions;
pub use pipeline::Pipeline;

use agent::{Agent, Follow, ProcessResources};
use fleet::Agents;

use crate::observe::metrics::Metrics;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::source::SystemClock;

/// How the host is started for one agent.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The agent it serves.
    pub agent: AgentOptions,
    /// What the process holds.
    pub process: ProcessOptions,
}

/// What the process holds for all its agents.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// The largest handler file read (`--max-handler-bytes`).
    pub max_handler_bytes: u64,
    /// Runs in flight at once, all agents together (`--max-runs-in-flight`).
    pub max_runs_in_flight: u32,
    /// Where `/metrics`, `/status`, `/healthz` and `/readyz` are served.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// How often the process loop tells systemd its status (and pings the
/// watchdog, at least this often when one is set).
const NOTIFY_PERIOD: Duration = Duration::from_secs(1);

/// Runs the host for one agent until `shutdown` resolves, then lets runs
/// in flight finish.
pub async fn run(
    options: HostOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let HostOptions { agent, process } = options;
    let hangups = listen_for_sighup()?;
    let metrics = Arc::new(Metrics::new());
    let resources = Arc::new(ProcessResources::new(
        start_runtime(&process)?,
        Arc::new(SystemClock),
        None,
        Arc::clone(&metrics) as _,
    ));
    let file = agent.config_path.clone();
    let agents = Arc::new(Agents::new(false));
    agents.insert(
        file,
        Agent::start(&resources, agent, Follow::OwnWatch).await?,
    );
    let served = Process {
        resources: &resources,
        agents: &agents,
        metrics,
        options: &process,
    };
    serve_process(served, hangups, None, shutdown).await
}

/// What the process's own loop serves.
struct Process<'a> {
    resources: &'a Arc<ProcessResources>,
    agents: &'a Arc<Agents>,
    /// The metrics every agent records into.
    metrics: Arc<Metrics>,
    options: &'a ProcessOptions,
}

/// SIGHUP, listened for before the first tick, so that a SIGHUP from then
/// on never meets the default action (terminate).
fn listen_for_sighup() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")
}

/// The many-agent host's file rescans: asked for on SIGHUP, stopped
/// before the agents are at shutdown (so that none starts meanwhile).
struct Rescans {
    ask: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the host for every agent of `options` (`run --agents`, a repeated
/// `--config`) until `shutdown`, adding, changing and removing agents as
/// their files are; then stops them all, letting their runs finish.
pub async fn run_many(
    options: ManyOptions,
    process: ProcessOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let connections = match &options.defaults.bus {
        Some(bus) => Some(crate::amqp::shared::SharedConnections::new(
            &bus.url,
            options.agents_per_connection,
        )?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let resources = Arc::new(ProcessResources::new(
        start_runtime(&process)?,
        Arc::new(SystemClock),
        connections.clone(),
        Arc::clone(&metrics) as _,
    ));
    let hangups = listen_for_sighup()?;
    let agents = Arc::new(Agents::new(true));
    // Watched before the first scan, so that no file added meanwhile is missed.
    let (watcher, changes) = fleet::watch(&options.layout)?;
    let started = std::time::Instant::now();
    let mut fleet = fleet::Fleet::new(Arc::clone(&resources), options, Arc::clone(&agents));
    let served = fleet.rescan().await;
    info!(
        event = "agents_started",
        agents = served,
        startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "serving {served} agents"
    );
    let (ask, asked) = mpsc::channel(1);
    let task = tokio::spawn(fleet::follow(fleet, watcher, changes, asked));
    let rescans = Rescans { ask, task };
    let served = Process {
        resources: &resources,
        agents: &agents,
        metrics,
        options: &process,
    };
    serve_process(served, hangups, Some(rescans), shutdown).await?;
    if let Some(connections) = connections {
        connections.close().await;
    }
    Ok(())
}

fn start_runtime(process: &ProcessOptions) -> anyhow::Result<Arc<Runtime>> {
    Ok(Arc::new(
        Runtime::new(&RuntimeOptions {
            max_handler_bytes: process.max_handler_bytes,
            max_runs_in_flight: process.max_runs_in_flight,
            ..RuntimeOptions::default()
        })
        .context("cannot start the WebAssembly runtime")?,
    ))
}

/// The process's own loop while its agents run: the operations endpoint,
/// systemd's notifications and watchdog, SIGHUP (`rescan`: the many-agent
/// host's file rescan), and at `shutdown` every agent stopped.
async fn serve_process(
    process: Process<'_>,
    hangups: tokio::signal::unix::Signal,
    rescans: Option<Rescans>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // SIGHUP reads heartbeat.json and the handler directories again at once.
    let (rescan, rescan_task) = match rescans {
        Some(Rescans { ask, task }) => (Some(ask), Some(task)),
        None => (None, None),
    };
    let Process {
        resources,
        agents,
        metrics,
        options,
    } = process;
    let hangup = {
        let agents = Arc::clone(agents);
        let resources = Arc::clone(resources);
        tokio::spawn(services::reload_on_sighup(hangups, move || {
            let config = match &rescan {
                // The rescan also has every agent read its file again (a
                // full channel: one is asked for already).
                Some(rescan) => !matches!(
                    rescan.try_send(()),
                    Err(mpsc::error::TrySendError::Closed(()))
                ),
                None => agents.reload_all(),
            };
            (config, resources.rescan_handlers())
        }))
    };
    let clock = Arc::clone(&resources.clock);
    let last_turn_ms = Arc::new(AtomicU64::new(clock.now_ms()));
    let endpoint = match options.metrics_addr {
        None => None,
        Some(addr) => {
            let view = Arc::new(observed::Observed {
                metrics,
                agents: Arc::clone(agents),
                runtime: Arc::clone(&resources.runtime),
                clock: Arc::clone(&clock),
                last_turn_ms: Arc::clone(&last_turn_ms),
            });
            let (bound, serve) = crate::observe::endpoint::bind(addr, view)
                .await
                .with_context(|| format!("cannot serve --metrics-addr {addr}"))?;
            info!(event = "endpoint_listening", addr = %bound, "serving /metrics, /healthz and /readyz on http://{bound}");
            Some(tokio::spawn(serve))
        }
    };
    // systemd (`Type=notify`): ready now that the configs are loaded and the
    // tick sources run. The watchdog pings come from this loop's own turns,
    // so a wedged loop stops them and systemd restarts the host.
    let notifier = systemd::Notifier::from_env();
    let watchdog = systemd::watchdog_interval();
    let mut sent_status = systemd::status_line(&health(agents));
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
                    let status = systemd::status_line(&health(agents));
                    if watchdog.is_some() {
                        notifier.send("WATCHDOG=1");
                    }
                    if status != sent_status {
                        notifier.send(&status);
                        sent_status = status;
                    }
                }
            }
        }
    }
    if let Some(notifier) = &notifier {
        notifier.send("STOPPING=1\nSTATUS=stopping: letting runs in flight finish");
    }
    hangup.abort();
    if let Some(task) = rescan_task {
        task.abort();
        let _ = task.await;
    }
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    agents.stop_all(resources).await;
    info!(event = "stopped", "heartbeat-host stopped");
    Ok(())
}

/// The process's health: healthy when every agent is; else each degraded
/// agent's reasons (named by agent when there are several).
fn health(agents: &Agents) -> HealthStatus {
    let mut reasons = Vec::new();
    for live in agents.live() {
        if let HealthStatus::Degraded(said) = live.health.status() {
            if agents.many {
                reasons.extend(
                    said.into_iter()
                        .map(|r| format!("agent {}: {r}", live.options.agent)),
                );
            } else {
                reasons.extend(said);
            }
        }
    }
    if reasons.is_empty() {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded(reasons)
    }
}
