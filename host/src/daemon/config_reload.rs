//! Hot reload of an agent's `heartbeat.json`, the daemon's side: when told
//! (by the file's watch, `watch::config`, which only signals; by the
//! many-agent host's directory watch; on SIGHUP) the [`ConfigReader`] reads
//! the file again and the pure [`Reloader`] decides what it means:
//!
//! - a valid file that differs from the config in force is logged as a
//!   [`ConfigDiff`] and handed to `apply` (the host swaps it into the
//!   pipeline; it applies from the next tick);
//! - an invalid file is refused with its error; the last good config stays;
//! - a deleted file keeps the last good config until the file reappears.
//!
//! Each read also sets the agent's health (degraded while the file on disk
//! is not the config in force) and is told to the [`Observer`].

use std::path::Path;
use std::sync::Arc;

use heartbeat_core::config::HeartbeatConfig;
use heartbeat_core::config::diff::ConfigDiff;
use heartbeat_core::config::reload::{ReloadOutcome, Reloader};
use heartbeat_core::health::Health;
use tracing::{debug, error, info, warn};

use super::live_agent::LiveAgent;
use super::observer::{Observer, Unobserved};
use super::services::report_checks_that_will_fail;
use crate::watch::config::{ConfigWatch, ReloadTrigger, Signal, WatchError, WatchOptions};

/// What a valid new config is handed to.
type Apply = dyn FnMut(Arc<HeartbeatConfig>, &ConfigDiff) + Send;

/// Reads one agent's heartbeat.json again when told, logs what it came
/// to, keeps the health's "config invalid" flag, tells the observer and
/// hands a valid change to `apply`.
pub struct ConfigReader {
    reloader: Reloader,
    apply: Box<Apply>,
    health: Option<Arc<Health>>,
    observer: Arc<dyn Observer>,
}

impl ConfigReader {
    /// Reads `path`, whose config in force is `current`, each time
    /// [`ConfigReader::read`] is called.
    pub fn new(
        path: &Path,
        current: Arc<HeartbeatConfig>,
        health: Option<Arc<Health>>,
        observer: Arc<dyn Observer>,
        apply: impl FnMut(Arc<HeartbeatConfig>, &ConfigDiff) + Send + 'static,
    ) -> ConfigReader {
        ConfigReader {
            reloader: Reloader::new(path.to_path_buf(), current)
                .vetted_by(crate::store::vet_for_run(path)),
            apply: Box::new(apply),
            health,
            observer,
        }
    }

    /// Re-reads the file, logs what it came to and applies a valid change.
    pub fn read(&mut self) {
        let file = self.reloader.path().display().to_string();
        let outcome = self.reloader.consider(crate::store::read::read_regular(
            self.reloader.path(),
            crate::store::read::MAX_CONFIG_BYTES,
            "heartbeat.json",
        ));
        if let Some(health) = &self.health {
            match &outcome {
                ReloadOutcome::Applied { .. }
                | ReloadOutcome::Unchanged
                | ReloadOutcome::Restored => health.set_config_invalid(false),
                ReloadOutcome::Refused(_) | ReloadOutcome::Missing => {
                    health.set_config_invalid(true)
                }
                ReloadOutcome::StillMissing => {}
            }
        }
        self.observer.config_read(&outcome);
        match outcome {
            ReloadOutcome::Applied {
                config,
                diff,
                warnings,
            } => {
                for warning in &warnings {
                    warn!(file = %file, "{warning}");
                }
                info!(event = "config_reloaded", file = %file, checks = config.checks.len(), "config reloaded, applies from the next tick: {diff}");
                (self.apply)(config, &diff);
            }
            ReloadOutcome::Unchanged => {
                debug!(file = %file, "config file touched; nothing changed")
            }
            ReloadOutcome::Restored => info!(event = "config_restored",
                file = %file,
                "config file is valid again and unchanged; the config in force stays"
            ),
            ReloadOutcome::Refused(e) => {
                error!(event = "config_refused", file = %file, "config change refused, the last good config stays in force: {e}")
            }
            ReloadOutcome::Missing => warn!(event = "config_missing",
                file = %file,
                "config file is gone; the last good config stays in force until it reappears"
            ),
            ReloadOutcome::StillMissing => {}
        }
    }

    /// What a signal of the file's watch means: a read (said first when
    /// it was asked for).
    fn on_signal(&mut self, signal: Signal) {
        if signal == Signal::Requested {
            info!(event = "reload_requested", file = %self.reloader.path().display(), "reload requested (SIGHUP): reading the config again");
        }
        self.read();
    }
}

/// A config file's watch with its reader: reads the file on each signal
/// and applies each valid change; stops when dropped.
pub struct ConfigWatcher {
    watch: ConfigWatch,
}

impl ConfigWatcher {
    /// Watches `path`, whose config in force is `current`, and passes each
    /// valid change to `apply` (on the watch's own thread) after it has
    /// been logged; invalid and deleted files are logged and the config in
    /// force stays. The file is read once straight after the watch is set
    /// up, so that a change made between the first load and the watch is
    /// not missed. Nothing observes it (the host's own watches are started
    /// with [`ConfigWatcher::with_reader`]).
    pub fn start<F>(
        path: &Path,
        current: Arc<HeartbeatConfig>,
        options: WatchOptions,
        apply: F,
    ) -> Result<ConfigWatcher, WatchError>
    where
        F: FnMut(Arc<HeartbeatConfig>, &ConfigDiff) + Send + 'static,
    {
        let reader = ConfigReader::new(path, current, None, Arc::new(Unobserved), apply);
        ConfigWatcher::with_reader(path, options, reader)
    }

    /// Watches `path` and has `reader` read it on each signal.
    pub fn with_reader(
        path: &Path,
        options: WatchOptions,
        mut reader: ConfigReader,
    ) -> Result<ConfigWatcher, WatchError> {
        let watch = ConfigWatch::start(path, options, move |signal| reader.on_signal(signal))?;
        Ok(ConfigWatcher { watch })
    }

    /// A handle that makes the watcher read the file at once.
    pub fn trigger(&self) -> ReloadTrigger {
        self.watch.trigger()
    }
}

/// The reader of `agent`'s heartbeat.json: it puts each valid change in
/// force in the agent's pipeline (from its next tick), after saying which
/// of its checks will fail.
pub(super) fn reader_of(agent: &LiveAgent, observer: Arc<dyn Observer>) -> ConfigReader {
    let pipeline = Arc::clone(&agent.pipeline);
    ConfigReader::new(
        &agent.options.config_path,
        agent.pipeline.config(),
        Some(Arc::clone(&agent.health)),
        observer,
        move |config, _| {
            report_checks_that_will_fail(&config, pipeline.registry(), pipeline.handlers_dir());
            pipeline.set_config(config);
        },
    )
}

/// Watches `agent`'s heartbeat.json with its reader; `None`, and the
/// config fixed, when the watch cannot be set up.
pub(super) fn watch(agent: &LiveAgent, observer: Arc<dyn Observer>) -> Option<ConfigWatcher> {
    let path = &agent.options.config_path;
    match ConfigWatcher::with_reader(path, WatchOptions::default(), reader_of(agent, observer)) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            error!("hot reload is off, restart the host to apply config changes: {e}");
            None
        }
    }
}
