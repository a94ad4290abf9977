//! Hot reload of `heartbeat.json`: the watcher only signals. It watches
//! the file's parent directory, not the file (editors save by writing a new
//! file and renaming it over the old one, which a watch on the file itself
//! would lose); events on the directory's other files (the state file is
//! written beside the config on every run) are ignored. After a burst has
//! been quiet for the debounce period the file is read again and the pure
//! [`Reloader`] decides what it means:
//!
//! - a valid file that differs from the config in force is handed to the
//!   caller's `apply` (the host swaps it in; it applies from the next tick)
//!   and logged as a [`ConfigDiff`];
//! - an invalid file is refused with its error; the last good config stays;
//! - a deleted file keeps the last good config until the file reappears.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use heartbeat_core::config::HeartbeatConfig;
use heartbeat_core::config::diff::ConfigDiff;
use heartbeat_core::config::reload::{ReloadOutcome, Reloader};
use heartbeat_core::health::Health;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tracing::{debug, error, info, warn};

use super::debounce::{DEFAULT_MAX_DELAY, Debounce};

/// How long the file must be quiet after an event before it is read.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// How the watcher debounces, and whom it tells about the file's validity.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet period after the last event before the file is read.
    pub debounce: Duration,
    /// Longest wait from the first event of a burst.
    pub max_delay: Duration,
    /// Told whether the file on disk is valid (the host is degraded while
    /// it runs on the last good config).
    pub health: Option<Arc<Health>>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: DEFAULT_DEBOUNCE,
            max_delay: DEFAULT_MAX_DELAY,
            health: None,
        }
    }
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file system watch could not be set up.
    #[error("cannot watch {dir} for changes to {file}: {source}")]
    Watch {
        /// The directory watched.
        dir: PathBuf,
        /// The config file.
        file: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
    /// The watching thread could not be started.
    #[error("cannot start the config watcher thread: {0}")]
    Thread(std::io::Error),
    /// The path has no file name.
    #[error("{0}: not a file path")]
    NotAFile(PathBuf),
}

enum Message {
    Event(notify::Result<notify::Event>),
    /// Read the file now (SIGHUP): for file systems without inotify and
    /// for `ExecReload=`.
    Reload,
    Stop,
}

/// Asks a [`ConfigWatcher`] to read the file at once; cheap to clone.
#[derive(Clone)]
pub struct ReloadTrigger(mpsc::Sender<Message>);

impl ReloadTrigger {
    /// Queues a reload; false when the watcher has stopped.
    pub fn fire(&self) -> bool {
        self.0.send(Message::Reload).is_ok()
    }
}

/// Watches `heartbeat.json` and applies each valid change; stops when dropped.
pub struct ConfigWatcher {
    // Dropped first: no more events are sent once the watcher is gone.
    watcher: Option<notify::RecommendedWatcher>,
    messages: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl ConfigWatcher {
    /// Starts watching `path`, whose config in force is `current`. Each
    /// valid change is passed to `apply` (on the watcher's own thread) after
    /// it has been logged; invalid and deleted files are logged and the
    /// config in force stays. The file is read once straight after the watch
    /// is set up, so that a change made between the first load and the
    /// watch is not missed.
    pub fn start<F>(
        path: &Path,
        current: Arc<HeartbeatConfig>,
        options: WatchOptions,
        apply: F,
    ) -> Result<ConfigWatcher, WatchError>
    where
        F: FnMut(Arc<HeartbeatConfig>, &ConfigDiff) + Send + 'static,
    {
        let file_name = path
            .file_name()
            .map(OsStr::to_os_string)
            .ok_or_else(|| WatchError::NotAFile(path.to_path_buf()))?;
        let dir = crate::store::dir_of(path).to_path_buf();
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = events.send(Message::Event(event));
        })
        .map_err(|source| WatchError::Watch {
            dir: dir.clone(),
            file: path.to_path_buf(),
            source,
        })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                dir: dir.clone(),
                file: path.to_path_buf(),
                source,
            })?;
        let reloader = Reloader::new(path.to_path_buf(), current);
        let thread = std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || watch_loop(rx, reloader, file_name, options, apply))
            .map_err(WatchError::Thread)?;
        debug!(dir = %dir.display(), file = %path.display(), "watching the config for changes");
        Ok(ConfigWatcher {
            watcher: Some(watcher),
            messages: tx,
            thread: Some(thread),
        })
    }
}

impl ConfigWatcher {
    /// A handle that makes the watcher read the file at once.
    pub fn trigger(&self) -> ReloadTrigger {
        ReloadTrigger(self.messages.clone())
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.watcher.take();
        let _ = self.messages.send(Message::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the config watcher thread panicked");
        }
    }
}

fn watch_loop<F>(
    rx: mpsc::Receiver<Message>,
    mut reloader: Reloader,
    file_name: OsString,
    options: WatchOptions,
    mut apply: F,
) where
    F: FnMut(Arc<HeartbeatConfig>, &ConfigDiff),
{
    let mut debounce = Debounce::new(options.debounce, options.max_delay);
    // Catch a change made between the host's first load and the watch.
    act(&mut reloader, &mut apply, options.health.as_deref());
    loop {
        let message = match debounce.deadline() {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
        };
        match message {
            Ok(Message::Event(Ok(event))) => {
                if concerns(&event, &file_name) {
                    debounce.event(Instant::now());
                }
            }
            Ok(Message::Event(Err(e))) => {
                warn!("config watch: {e}; reading the file again");
                debounce.event(Instant::now());
            }
            Ok(Message::Reload) => {
                info!(event = "reload_requested", file = %reloader.path().display(), "reload requested (SIGHUP): reading the config again");
                act(&mut reloader, &mut apply, options.health.as_deref());
                continue;
            }
            Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if debounce.fire(Instant::now()) {
            act(&mut reloader, &mut apply, options.health.as_deref());
        }
    }
}

/// What a valid new config is handed to.
type Apply = dyn FnMut(Arc<HeartbeatConfig>, &ConfigDiff) + Send;

/// A config followed by a watch that is not its own: the many-agent host
/// watches its agents' directory once and, when an agent's file changed,
/// has [`Followed::reload`] read it as a [`ConfigWatcher`] would (same
/// logs, same refusal of a broken file, same health signal).
pub struct Followed {
    reloader: Reloader,
    apply: Box<Apply>,
    health: Option<Arc<Health>>,
}

impl Followed {
    /// Follows `path`, whose config in force is `current`.
    pub fn new(
        path: &Path,
        current: Arc<HeartbeatConfig>,
        health: Option<Arc<Health>>,
        apply: impl FnMut(Arc<HeartbeatConfig>, &ConfigDiff) + Send + 'static,
    ) -> Followed {
        Followed {
            reloader: Reloader::new(path.to_path_buf(), current),
            apply: Box::new(apply),
            health,
        }
    }

    /// Reads the file again and applies it if it is a valid change.
    pub fn reload(&mut self) {
        act(&mut self.reloader, &mut self.apply, self.health.as_deref());
    }
}

/// Re-reads the file, logs what it came to and applies a valid change.
fn act<F>(reloader: &mut Reloader, apply: &mut F, health: Option<&Health>)
where
    F: FnMut(Arc<HeartbeatConfig>, &ConfigDiff),
{
    let file = reloader.path().display().to_string();
    let outcome = reloader.consider(crate::store::read::read_regular(
        reloader.path(),
        crate::store::read::MAX_CONFIG_BYTES,
        "heartbeat.json",
    ));
    if let Some(health) = health {
        match &outcome {
            ReloadOutcome::Applied { .. } | ReloadOutcome::Unchanged | ReloadOutcome::Restored => {
                health.set_config_invalid(false)
            }
            ReloadOutcome::Refused(_) | ReloadOutcome::Missing => health.set_config_invalid(true),
            ReloadOutcome::StillMissing => {}
        }
    }
    crate::observe::METRICS.record_config_reload(match &outcome {
        ReloadOutcome::Applied { .. } => "applied",
        ReloadOutcome::Unchanged => "unchanged",
        ReloadOutcome::Restored => "restored",
        ReloadOutcome::Refused(_) => "refused",
        ReloadOutcome::Missing | ReloadOutcome::StillMissing => "missing",
    });
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
            apply(config, &diff);
        }
        ReloadOutcome::Unchanged => debug!(file = %file, "config file touched; nothing changed"),
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

/// Whether a directory event may concern the config file: it names the file
/// (written, created, renamed to or from, deleted), or a Kubernetes-style
/// `..data` link swap, or the watch lost events and asks for a rescan.
/// Reads (open, close without writing) never do: the reload's own read
/// would otherwise trigger the next one.
fn concerns(event: &notify::Event, file_name: &OsStr) -> bool {
    if event.need_rescan() {
        return true;
    }
    let kind_may_change = match event.kind {
        EventKind::Access(notify::event::AccessKind::Close(notify::event::AccessMode::Write)) => {
            true
        }
        EventKind::Access(_) => false,
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    };
    kind_may_change
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|name| name == file_name || name.to_string_lossy().starts_with(".."))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_events_that_may_change_the_file_count() {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
        let name = OsStr::new("heartbeat.json");
        assert!(concerns(
            &event(EventKind::Create(CreateKind::File), "/d/heartbeat.json"),
            name
        ));
        assert!(concerns(
            &event(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/d/heartbeat.json"
            ),
            name
        ));
        assert!(concerns(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/d/heartbeat.json"
            ),
            name
        ));
        assert!(concerns(
            &event(EventKind::Create(CreateKind::Any), "/d/..data"),
            name
        ));
        // Our own reads, and the state file written beside the config.
        assert!(!concerns(
            &event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                "/d/heartbeat.json"
            ),
            name
        ));
        assert!(!concerns(
            &event(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/d/heartbeat.state.json"
            ),
            name
        ));
    }
}
