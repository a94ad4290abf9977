//! Hot reload of the handler directory: a `NAME.wasm` written, replaced
//! (in place or by rename) or deleted takes effect without a restart.
//!
//! Changes are debounced, then each affected file is compiled on this
//! watcher's own thread (never on the tick path), checked against the
//! handler world, and swapped into the [`Registry`] atomically. A run in
//! flight keeps the version it started with (it holds an `Arc`). A file
//! that does not load is refused with its reason and the previous version
//! of that handler stays in service. Deleting a file that overrode a
//! built-in brings the built-in back. What each file came to is logged and
//! told to the caller ([`HandlerFileOutcome`]), which counts it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

use super::debounce::{DEFAULT_MAX_DELAY, Debounce};
use crate::runtime::Runtime;
use crate::runtime::registry::{self, Registry};

/// How long the directory must be quiet before changed files are loaded:
/// long enough to let `cp` finish writing, short enough to feel instant.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// Keeps the watch alive; dropping it stops watching.
pub struct HandlerWatch {
    _watcher: notify::RecommendedWatcher,
    messages: mpsc::Sender<Message>,
}

/// What the watcher thread is told.
enum Message {
    Event(notify::Result<notify::Event>),
    /// Look at every file again now (SIGHUP).
    Rescan,
}

/// Asks a [`HandlerWatch`] to rescan its directory at once; cheap to clone.
#[derive(Clone)]
pub struct RescanTrigger(mpsc::Sender<Message>);

impl RescanTrigger {
    /// Queues a rescan; false when the watcher has stopped.
    pub fn fire(&self) -> bool {
        self.0.send(Message::Rescan).is_ok()
    }
}

impl HandlerWatch {
    /// A handle that makes the watcher rescan the directory at once.
    pub fn trigger(&self) -> RescanTrigger {
        RescanTrigger(self.messages.clone())
    }
}

/// What a handler file taken in came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerFileOutcome {
    /// Compiled and in service.
    Loaded,
    /// Unreadable or not a handler; the previous version stays.
    Refused,
    /// Deleted: the built-in of that name is back, or the name is gone.
    Removed,
}

impl HandlerFileOutcome {
    /// As a word (the `result` label of `heartbeat_handler_reloads_total`).
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerFileOutcome::Loaded => "loaded",
            HandlerFileOutcome::Refused => "refused",
            HandlerFileOutcome::Removed => "removed",
        }
    }
}

/// Told of every file's outcome, on the watcher's thread.
type Report = dyn Fn(HandlerFileOutcome) + Send + Sync;

/// What the watcher knows of each file it has loaded: its content hash,
/// so that a touch without a change does not recompile.
type Loaded = HashMap<String, [u8; 32]>;

/// Loads every `*.wasm` in `dir` over the built-ins, then watches `dir`,
/// telling no one what each file came to (the benches).
pub fn start(
    dir: &Path,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
) -> Result<HandlerWatch, notify::Error> {
    start_reporting(dir, runtime, registry, |_| {})
}

/// Loads every `*.wasm` in `dir` over the built-ins, then watches `dir`;
/// `report` is told what each file taken in came to.
pub fn start_reporting(
    dir: &Path,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    report: impl Fn(HandlerFileOutcome) + Send + Sync + 'static,
) -> Result<HandlerWatch, notify::Error> {
    let report: Box<Report> = Box::new(report);
    let (tx, rx) = mpsc::channel::<Message>();
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(Message::Event(event));
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;

    let mut loaded = Loaded::new();
    match registry::handler_files(dir) {
        Ok(files) => {
            for path in files {
                reload(&path, &runtime, &registry, &mut loaded, &report);
            }
        }
        Err(e) => error!(dir = %dir.display(), "cannot list the handler directory: {e}"),
    }
    let dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("handler-watch".into())
        .spawn(move || watch_loop(&dir, &rx, &runtime, &registry, &mut loaded, &report))
        .map_err(|e| {
            notify::Error::generic(&format!("cannot start the handler watcher thread: {e}"))
        })?;
    Ok(HandlerWatch {
        _watcher: watcher,
        messages: tx,
    })
}

fn watch_loop(
    dir: &Path,
    rx: &mpsc::Receiver<Message>,
    runtime: &Runtime,
    registry: &Registry,
    loaded: &mut Loaded,
    report: &Report,
) {
    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    let mut debounce = Debounce::new(DEBOUNCE, DEFAULT_MAX_DELAY);
    loop {
        let message = match debounce.deadline() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
        };
        match message {
            Ok(Message::Rescan) => {
                info!(event = "rescan_requested", dir = %dir.display(), "rescan requested (SIGHUP): reading the handler directory again");
                // Every file there now, and every one loaded before (gone
                // ones are removed), at once.
                let mut all: BTreeSet<PathBuf> = registry::handler_files(dir)
                    .unwrap_or_else(|e| {
                        error!(dir = %dir.display(), "cannot list the handler directory: {e}");
                        Vec::new()
                    })
                    .into_iter()
                    .collect();
                all.extend(loaded.keys().map(|name| dir.join(format!("{name}.wasm"))));
                all.extend(std::mem::take(&mut pending));
                for path in all {
                    reload(&path, runtime, registry, loaded, report);
                }
                continue;
            }
            Ok(Message::Event(Ok(event))) => {
                for path in event.paths {
                    if path.parent() == Some(dir) && registry::handler_name_of(&path).is_some() {
                        pending.insert(path);
                        debounce.event(Instant::now());
                    }
                }
            }
            Ok(Message::Event(Err(e))) => {
                warn!(dir = %dir.display(), "handler directory watch error: {e}")
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if debounce.fire(Instant::now()) {
            for path in std::mem::take(&mut pending) {
                reload(&path, runtime, registry, loaded, report);
            }
        }
    }
}

/// Brings the registry in line with the file at `path` (present or gone).
fn reload(
    path: &Path,
    runtime: &Runtime,
    registry: &Registry,
    loaded: &mut Loaded,
    report: &Report,
) {
    let Some(name) = registry::handler_name_of(path) else {
        return;
    };
    let bytes = match runtime.read_handler_file(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if loaded.remove(&name).is_some() {
                report(HandlerFileOutcome::Removed);
                removed(&name, path, runtime, registry);
            }
            return;
        }
        Err(e) => {
            report(HandlerFileOutcome::Refused);
            error!(event = "handler_refused", handler = %name, file = %path.display(), "handler refused: cannot read: {e}");
            return;
        }
    };
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if loaded.get(&name) == Some(&digest) {
        return;
    }
    let started = Instant::now();
    match runtime.load(&name, &path.display().to_string(), &bytes) {
        Ok(handler) => {
            report(HandlerFileOutcome::Loaded);
            let replaced = registry.insert(handler);
            loaded.insert(name.clone(), digest);
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match replaced {
                Some(old) if old.origin == crate::runtime::registry::BUILTIN_ORIGIN => {
                    info!(event = "handler_loaded", handler = %name, file = %path.display(), load_ms = format!("{ms:.1}"), "handler file overrides the built-in of the same name")
                }
                Some(_) => {
                    info!(event = "handler_loaded", handler = %name, file = %path.display(), load_ms = format!("{ms:.1}"), "handler replaced")
                }
                None => {
                    info!(event = "handler_loaded", handler = %name, file = %path.display(), load_ms = format!("{ms:.1}"), "handler loaded")
                }
            }
        }
        Err(e) => {
            report(HandlerFileOutcome::Refused);
            let previous = registry.get(&name).map(|h| h.origin.clone());
            match previous {
                Some(origin) => {
                    error!(event = "handler_refused", handler = %name, "handler refused, previous version ({origin}) stays in service: {e}")
                }
                None => error!(event = "handler_refused", handler = %name, "handler refused: {e}"),
            }
        }
    }
}

/// A handler file was deleted: the built-in of that name comes back, or the name goes.
fn removed(name: &str, path: &Path, runtime: &Runtime, registry: &Registry) {
    match registry::load_builtin(runtime, name) {
        Some(Ok(builtin)) => {
            registry.insert(builtin);
            info!(event = "handler_removed", handler = %name, file = %path.display(), "handler file deleted; the built-in is back in service");
        }
        Some(Err(e)) => {
            registry.remove(name);
            error!(event = "handler_removed", handler = %name, "handler file deleted and the built-in does not load: {e}");
        }
        None => {
            registry.remove(name);
            info!(event = "handler_removed", handler = %name, file = %path.display(), "handler file deleted; handler removed");
        }
    }
}
