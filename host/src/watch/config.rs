//! The watch of `heartbeat.json`, which only signals (as Vector's config
//! watcher does). It watches the file's parent directory, not the file
//! (editors save by writing a new file and renaming it over the old one,
//! which a watch on the file itself would lose); events on the directory's
//! other files (the state file is written beside the config on every run)
//! are ignored. Once a burst has been quiet for the debounce period, or on
//! a [`ReloadTrigger`] (SIGHUP), it calls its caller with a [`Signal`];
//! reading the file, deciding what it means, logging and applying it are
//! the caller's (the daemon's config reader).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tracing::{debug, error, warn};

use super::debounce::{DEFAULT_MAX_DELAY, Debounce};

/// How long the file must be quiet after an event before it is read.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// How the watch debounces.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet period after the last event before the signal.
    pub debounce: Duration,
    /// Longest wait from the first event of a burst.
    pub max_delay: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: DEFAULT_DEBOUNCE,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

/// Why the watch could not start.
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

/// Why the file is to be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The watch is set up: a change made between the caller's first read
    /// and the watch would otherwise be missed.
    Watching,
    /// The file may have changed (a burst of events, now quiet).
    Changed,
    /// Asked for through a [`ReloadTrigger`] (SIGHUP): for file systems
    /// without inotify and for `ExecReload=`.
    Requested,
}

enum Message {
    Event(notify::Result<notify::Event>),
    Reload,
    Stop,
}

/// Asks a [`ConfigWatch`] to signal at once; cheap to clone.
#[derive(Clone)]
pub struct ReloadTrigger(mpsc::Sender<Message>);

impl ReloadTrigger {
    /// Queues a [`Signal::Requested`]; false when the watch has stopped.
    pub fn fire(&self) -> bool {
        self.0.send(Message::Reload).is_ok()
    }
}

/// Watches `heartbeat.json`'s directory and signals; stops when dropped.
pub struct ConfigWatch {
    // Dropped first: no more events are sent once the watcher is gone.
    watcher: Option<notify::RecommendedWatcher>,
    messages: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl ConfigWatch {
    /// Starts watching for changes to `path`; `signal` is called on the
    /// watch's own thread, once with [`Signal::Watching`] straight after
    /// the watch is set up, then whenever the file is to be read again.
    pub fn start(
        path: &Path,
        options: WatchOptions,
        signal: impl FnMut(Signal) + Send + 'static,
    ) -> Result<ConfigWatch, WatchError> {
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
        let thread = std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || watch_loop(&rx, &file_name, &options, signal))
            .map_err(WatchError::Thread)?;
        debug!(dir = %dir.display(), file = %path.display(), "watching the config for changes");
        Ok(ConfigWatch {
            watcher: Some(watcher),
            messages: tx,
            thread: Some(thread),
        })
    }

    /// A handle that makes the watch signal at once.
    pub fn trigger(&self) -> ReloadTrigger {
        ReloadTrigger(self.messages.clone())
    }
}

impl Drop for ConfigWatch {
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

fn watch_loop(
    rx: &mpsc::Receiver<Message>,
    file_name: &OsString,
    options: &WatchOptions,
    mut signal: impl FnMut(Signal),
) {
    let mut debounce = Debounce::new(options.debounce, options.max_delay);
    signal(Signal::Watching);
    loop {
        let message = match debounce.deadline() {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
        };
        match message {
            Ok(Message::Event(Ok(event))) => {
                if concerns(&event, file_name) {
                    debounce.event(Instant::now());
                }
            }
            Ok(Message::Event(Err(e))) => {
                warn!("config watch: {e}; reading the file again");
                debounce.event(Instant::now());
            }
            Ok(Message::Reload) => {
                signal(Signal::Requested);
                continue;
            }
            Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if debounce.fire(Instant::now()) {
            signal(Signal::Changed);
        }
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
