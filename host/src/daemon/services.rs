//! The daemon's side services, beside the tick path: control messages
//! from the bus, the host's own beats, the liveness file, SIGHUP, a standby's
//! takeover, and the log line naming handlers nothing provides.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use heartbeat_core::config::HeartbeatConfig;
use heartbeat_core::health::HealthStatus;
use heartbeat_core::tick_monitor::{TickMonitor, Transition};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::live_agent::LiveAgent;
use super::pipeline::Pipeline;
use crate::amqp::{BusStatus, ControlRequest};
use crate::runtime::registry::Registry;

/// A bus tick arrived: the tick source is not (or no longer) silent.
pub(super) fn note_bus_tick(agent: &LiveAgent, monitor: &Mutex<TickMonitor>, now_ms: u64) {
    let back = monitor
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bus_tick(now_ms);
    if back == Some(Transition::Back) {
        agent.health.set_tick_source_silent(false);
        info!(
            event = "bus_ticks_back",
            "bus ticks are back: the tick source is no longer silent; the host's own timer falls silent"
        );
    }
}

/// Logs, for every check whose handler nothing provides or whose built-in
/// handler will refuse its `meta`, that its runs will fail.
pub(super) fn report_checks_that_will_fail(
    config: &HeartbeatConfig,
    registry: &Registry,
    dir: Option<&Path>,
) {
    for check in &config.checks {
        match registry.resolve(&check.handler, dir) {
            Err(e) => {
                error!(event = "missing_handler", check = %check.name, handler = %check.handler, "check names a missing handler; its runs will fail: {e}");
            }
            // A built-in's `meta` is read by the code `check` validates it
            // with: say now what every run would fail with.
            Ok(handler) if handler.origin == crate::runtime::registry::BUILTIN_ORIGIN => {
                if let Some(Err(e)) =
                    heartbeat_core::builtins::validate(&check.handler, &check.meta)
                {
                    error!(event = "invalid_meta", check = %check.name, handler = %check.handler,
                        "checks.{}.{}: {}; its runs will fail (heartbeat-host check shows where)",
                        check.name, e.meta_path(), e.message);
                }
            }
            Ok(_) => {}
        }
    }
}

/// On every SIGHUP, has the config watcher read `heartbeat.json` and the
/// handler watcher rescan its directory, at once (file systems without
/// inotify, `ExecReload=kill -HUP $MAINPID`). What they find is logged as
/// for a change they saw themselves.
pub(super) async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    mut reload: impl FnMut() -> (bool, bool) + Send,
) {
    while hangups.recv().await.is_some() {
        let (config_read, handlers_read) = reload();
        info!(
            event = "sighup",
            config = config_read,
            handlers = handlers_read,
            "SIGHUP: reloading"
        );
    }
}

/// Applies the bus's control messages (pause, resume, run) to the state,
/// one at a time, answering each once the state file has it.
pub(super) async fn apply_controls(
    pipeline: Arc<Pipeline>,
    mut requests: mpsc::Receiver<ControlRequest>,
) {
    while let Some(request) = requests.recv().await {
        let reply = pipeline.apply_control(&request.command).await;
        let _ = request.reply.send(reply);
    }
}

/// For a standby (`--exclusive`): when it takes over the inbox, reads the
/// state file again, so that a state file shared with the active host
/// (on shared storage) continues where that host left it rather than from
/// what it held at start-up. A state file of its own reads back the same.
pub(super) async fn reload_state_on_takeover(agent: Arc<LiveAgent>) {
    let Some(bus) = &agent.bus else { return };
    let mut status = bus.watch_status();
    let mut standing_by = false;
    loop {
        let now = *status.borrow_and_update();
        match now {
            BusStatus::Standby => standing_by = true,
            BusStatus::Connected if standing_by => {
                standing_by = false;
                let path = &agent.options.state_path;
                match crate::store::state::load(path) {
                    Ok(mut state) => {
                        state.clamp_future(crate::source::now_ms());
                        let checks = state.checks.len();
                        agent.pipeline.replace_state(state);
                        info!(event = "state_reloaded", file = %path.display(), checks, "took over: read the state file again");
                    }
                    Err(e) => {
                        warn!(file = %path.display(), "took over, but the state file cannot be read again ({e}); keeping the state read at start-up");
                    }
                }
            }
            _ => {}
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// The host's own beats: `start/<warmup>` once the bus is first connected,
/// then every period `beat/<period>` or, while degraded,
/// `degraded/<period>`; only while connected (a beat that cannot go out is
/// dropped, never queued). `stop` is published by the shutdown.
pub(super) async fn publish_beats(agent: Arc<LiveAgent>) {
    let Some(bus) = &agent.bus else { return };
    let options = &agent.options.beats;
    let key = options.routing_key();
    let mut status = bus.watch_status();
    while *status.borrow_and_update() != BusStatus::Connected {
        if status.changed().await.is_err() {
            return;
        }
    }
    let body = heartbeat_core::beats::start_body(options.warmup);
    match bus.publish_beat(&key, &body).await {
        Ok(()) => {
            info!(event = "start_published", routing_key = %key, body = %body, "published start")
        }
        Err(e) => warn!(routing_key = %key, "start not published: {e}"),
    }
    let period = options.period.max(heartbeat_core::beats::MIN_PERIOD);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        if !bus.is_connected() {
            continue;
        }
        let body = heartbeat_core::beats::periodic_body(&agent.health.status(), period);
        match bus.publish_beat(&key, &body).await {
            Ok(()) => tracing::debug!(routing_key = %key, body = %body, "published a beat"),
            Err(e) => tracing::debug!(routing_key = %key, "beat not published: {e}"),
        }
    }
}

/// Writes the liveness file now, then every period, with the host's health.
pub(super) async fn write_liveness(agent: Arc<LiveAgent>, path: PathBuf) {
    let mut every = tokio::time::interval(agent.options.liveness_period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_status = "";
    loop {
        every.tick().await;
        let health = agent.health.status();
        if health.as_str() != last_status {
            match &health {
                HealthStatus::Healthy => info!(event = "health_changed", "host is healthy"),
                HealthStatus::Degraded(reasons) => {
                    warn!(event = "health_changed", reasons = %reasons.join("; "), "host is degraded")
                }
            }
            last_status = health.as_str();
        }
        let agent = Arc::clone(&agent);
        let path = path.clone();
        let _ = tokio::task::spawn_blocking(move || {
            write_liveness_once(&agent, &path, health.as_str())
        })
        .await;
    }
}

/// One write of the liveness file, with `status` and the degraded reasons.
pub(super) fn write_liveness_once(agent: &LiveAgent, path: &Path, status: &str) {
    let mut metadata = serde_json::Map::new();
    metadata.insert("agent".into(), agent.options.agent.clone().into());
    metadata.insert("status".into(), status.into());
    metadata.insert(
        "reasons".into(),
        agent.health.status().reasons().to_vec().into(),
    );
    let now = crate::source::now_ms();
    let processes = agent
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
    let state = crate::store::liveness::stamped(now, metadata);
    if let Err(e) = crate::store::liveness::write(path, &state) {
        error!(file = %path.display(), "cannot write the liveness file: {e}");
    }
}
