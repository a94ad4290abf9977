//! Hot reload of `heartbeat.json`: watch, debounce, re-parse, validate, apply.
//!
//! The watcher watches the file's parent directory, not the file: editors
//! save by writing a new file and renaming it over the old one, which a
//! watch on the file itself would lose. Events on the directory's other
//! files (the state file is written beside the config on every run) are
//! ignored. After the last event of a burst has been quiet for the debounce
//! period the file is read again, and:
//!
//! - a valid file that differs from the config in force is handed to the
//!   caller's `apply` (the host swaps it in; it applies from the next tick)
//!   and logged as a [`ConfigDiff`];
//! - an invalid file is refused with its error; the last good config stays;
//! - a deleted file keeps the last good config until the file reappears.
//!
//! The pure parts ([`diff`], [`Debounce`], [`Reloader::consider`]) take no
//! clock and touch no file, and are unit-tested here; [`ConfigWatcher`] is
//! the thin I/O shell around them.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tracing::{debug, error, info, warn};

use crate::config::{self, CheckConfig, ConfigError, ConfigWarning, HeartbeatConfig, Pause};

/// How long the file must be quiet after an event before it is read.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// A burst of events longer than this is read anyway, so that a file written
/// without pause cannot postpone its reload for ever.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------
// Diff of two configs (pure).

/// One field whose value changed, with both values as a person reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field path, e.g. `cadenceMs` within a check, `maxPerTick` at the top.
    pub field: String,
    /// The value before (`none` when absent).
    pub old: String,
    /// The value after (`none` when absent).
    pub new: String,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} → {}", self.field, self.old, self.new)
    }
}

/// A check present in both configs whose fields changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckChange {
    /// The check's name.
    pub name: String,
    /// Its changed fields, in a fixed order.
    pub fields: Vec<FieldChange>,
}

/// What changed between two configs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Checks only in the new config, in its file order.
    pub added: Vec<String>,
    /// Checks only in the old config, in its file order.
    pub removed: Vec<String>,
    /// Checks in both whose fields changed, in the new file order.
    pub changed: Vec<CheckChange>,
    /// Top-level fields that changed (`$schema`, `agent`, `maxPerTick`,
    /// `paused.NAME`, `defaults.FIELD`, and the order of the checks, which
    /// breaks ties).
    pub top_level: Vec<FieldChange>,
}

impl ConfigDiff {
    /// Whether nothing the host uses changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.top_level.is_empty()
    }
}

impl fmt::Display for ConfigDiff {
    /// One line: `added: c; removed: b; changed: a.cadenceMs 1000 → 2000; maxPerTick 1 → 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added: {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed: {}", self.removed.join(", ")));
        }
        if !self.changed.is_empty() {
            let fields: Vec<String> = self
                .changed
                .iter()
                .flat_map(|c| c.fields.iter().map(move |f| format!("{}.{f}", c.name)))
                .collect();
            parts.push(format!("changed: {}", fields.join(", ")));
        }
        for change in &self.top_level {
            parts.push(change.to_string());
        }
        if parts.is_empty() {
            f.write_str("no change the host uses")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// What changed from `old` to `new`: checks added, removed, and changed
/// field by field, then the top-level fields.
pub fn diff(old: &HeartbeatConfig, new: &HeartbeatConfig) -> ConfigDiff {
    // By name, so that a config of thousands of checks diffs in linear time.
    let (old_by_name, new_by_name) = (by_name(old), by_name(new));
    let added = new
        .checks
        .iter()
        .filter(|c| !old_by_name.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let removed = old
        .checks
        .iter()
        .filter(|c| !new_by_name.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let changed = new
        .checks
        .iter()
        .filter_map(|n| {
            let o = old_by_name.get(n.name.as_str())?;
            if *o == n {
                return None;
            }
            let fields = check_fields(o, n);
            (!fields.is_empty()).then(|| CheckChange {
                name: n.name.clone(),
                fields,
            })
        })
        .collect();

    let mut top_level = Vec::new();
    push_change(
        &mut top_level,
        "$schema",
        show_opt_str(&old.schema),
        show_opt_str(&new.schema),
    );
    push_change(
        &mut top_level,
        "agent",
        show_opt_str(&old.agent),
        show_opt_str(&new.agent),
    );
    push_change(
        &mut top_level,
        "maxPerTick",
        old.max_per_tick.to_string(),
        new.max_per_tick.to_string(),
    );
    let paused_names: std::collections::BTreeSet<&String> =
        old.paused.keys().chain(new.paused.keys()).collect();
    for name in paused_names {
        push_change(
            &mut top_level,
            &format!("paused.{name}"),
            show_pause(old.paused.get(name)),
            show_pause(new.paused.get(name)),
        );
    }
    for (field, o, n) in limit_fields(&old.defaults, &new.defaults) {
        push_change(&mut top_level, &format!("defaults.{field}"), o, n);
    }
    // The order of the checks both have breaks ties between equal ratios.
    let old_order: Vec<&str> = old
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| new_by_name.contains_key(name))
        .collect();
    let new_order: Vec<&str> = new
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| old_by_name.contains_key(name))
        .collect();
    if let Some(first) = old_order.iter().zip(&new_order).position(|(o, n)| o != n) {
        push_change(
            &mut top_level,
            "order",
            excerpt(&old_order, first),
            excerpt(&new_order, first),
        );
    }
    ConfigDiff {
        added,
        removed,
        changed,
        top_level,
    }
}

fn by_name(config: &HeartbeatConfig) -> HashMap<&str, &CheckConfig> {
    config.checks.iter().map(|c| (c.name.as_str(), c)).collect()
}

/// Up to five names from `from` on, comma-separated, `…` around what is left out.
fn excerpt(names: &[&str], from: usize) -> String {
    const SHOWN: usize = 5;
    let shown = &names[from..names.len().min(from + SHOWN)];
    format!(
        "{}{}{}",
        if from > 0 { "…," } else { "" },
        shown.join(","),
        if from + SHOWN < names.len() {
            ",…"
        } else {
            ""
        }
    )
}

fn push_change(out: &mut Vec<FieldChange>, field: &str, old: String, new: String) {
    if old != new {
        out.push(FieldChange {
            field: field.to_string(),
            old,
            new,
        });
    }
}

/// The changed fields of one check, in the file format's names.
fn check_fields(old: &CheckConfig, new: &CheckConfig) -> Vec<FieldChange> {
    let mut out = Vec::new();
    push_change(
        &mut out,
        "cadenceMs",
        old.cadence_ms.to_string(),
        new.cadence_ms.to_string(),
    );
    push_change(
        &mut out,
        "handler",
        format!("{:?}", old.handler),
        format!("{:?}", new.handler),
    );
    push_change(
        &mut out,
        "priority",
        old.priority.to_string(),
        new.priority.to_string(),
    );
    push_change(
        &mut out,
        "enabled",
        old.enabled.to_string(),
        new.enabled.to_string(),
    );
    push_change(
        &mut out,
        "lastRun",
        old.last_run_ms.to_string(),
        new.last_run_ms.to_string(),
    );
    push_change(
        &mut out,
        "window",
        show_window(old.window.as_ref()),
        show_window(new.window.as_ref()),
    );
    push_change(
        &mut out,
        "triggerOnQuarters",
        show_quarters(old.trigger_on_quarters.as_deref()),
        show_quarters(new.trigger_on_quarters.as_deref()),
    );
    push_change(
        &mut out,
        "meta",
        serde_json::Value::Object(old.meta.clone()).to_string(),
        serde_json::Value::Object(new.meta.clone()).to_string(),
    );
    for (field, o, n) in limit_fields(&old.limits, &new.limits) {
        push_change(&mut out, field, o, n);
    }
    push_change(
        &mut out,
        "grants",
        show_grants(&old.grants),
        show_grants(&new.grants),
    );
    out
}

fn show_grants(grants: &crate::grants::Grants) -> String {
    if grants.dirs.is_empty() && grants.emit.is_empty() {
        return "none".to_string();
    }
    let dirs: Vec<String> = grants
        .dirs
        .iter()
        .map(|d| {
            format!(
                "{}={}{}",
                d.guest_path,
                d.host_path.display(),
                if d.read_only { " (read-only)" } else { "" }
            )
        })
        .collect();
    format!(
        "dirs [{}], emit [{}]",
        dirs.join(", "),
        grants.emit.join(", ")
    )
}

fn limit_fields(old: &config::Limits, new: &config::Limits) -> [(&'static str, String, String); 5] {
    [
        (
            "timeoutMs",
            old.timeout_ms.to_string(),
            new.timeout_ms.to_string(),
        ),
        (
            "memoryMb",
            old.memory_mb.to_string(),
            new.memory_mb.to_string(),
        ),
        (
            "maxLogLines",
            old.max_log_lines.to_string(),
            new.max_log_lines.to_string(),
        ),
        (
            "maxEvents",
            old.max_events.to_string(),
            new.max_events.to_string(),
        ),
        (
            "maxOutputBytes",
            old.max_output_bytes.to_string(),
            new.max_output_bytes.to_string(),
        ),
    ]
}

fn show_opt_str(value: &Option<String>) -> String {
    value
        .as_ref()
        .map_or_else(|| "none".to_string(), |v| format!("{v:?}"))
}

fn show_window(window: Option<&config::Window>) -> String {
    window.map_or_else(
        || "none".to_string(),
        |w| {
            format!(
                "{:02}:{:02}-{:02}:{:02} {}{}",
                w.start_minute / 60,
                w.start_minute % 60,
                w.end_minute / 60,
                w.end_minute % 60,
                w.tz_name,
                if w.tz_defaulted { " (default)" } else { "" }
            )
        },
    )
}

fn show_quarters(quarters: Option<&[config::Quarter]>) -> String {
    quarters.map_or_else(
        || "none".to_string(),
        |qs| {
            let names: Vec<String> = qs.iter().map(ToString::to_string).collect();
            format!("[{}]", names.join(","))
        },
    )
}

fn show_pause(pause: Option<&Pause>) -> String {
    match pause {
        None => "none".to_string(),
        Some(Pause::Flag(flag)) => flag.to_string(),
        Some(Pause::Until { until, reason }) => {
            let mut text = format!("until {}", crate::schedule::format_ms(*until));
            if let Some(reason) = reason {
                text.push_str(&format!(" ({reason})"));
            }
            text
        }
    }
}

// ---------------------------------------------------------------------------
// Debouncing (pure: the caller passes the time in).

/// Collapses a burst of file events into one reload: it fires once events
/// have been quiet for `quiet`, or `max_delay` after the first of the burst.
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    /// A debouncer with nothing pending.
    pub fn new(quiet: Duration, max_delay: Duration) -> Debounce {
        Debounce {
            quiet,
            max_delay,
            first: None,
            last: None,
        }
    }

    /// Notes an event at `now`.
    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending burst is to be acted on; `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + self.max_delay))
    }

    /// Whether the burst is to be acted on at `now`; if so, it is cleared.
    pub fn fire(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                self.first = None;
                self.last = None;
                true
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Deciding what a re-read file means (pure: the caller does the reading).

/// What a re-read of the file came to.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A valid file that differs from the config in force.
    Applied {
        /// The new config.
        config: Arc<HeartbeatConfig>,
        /// What changed.
        diff: ConfigDiff,
        /// The new file's warnings.
        warnings: Vec<ConfigWarning>,
    },
    /// The file is valid and means the same as the config in force
    /// (same bytes, or only formatting or unknown fields changed).
    Unchanged,
    /// The file is back after being deleted or refused, and means the same
    /// as the config in force.
    Restored,
    /// The file is invalid; the config in force stays.
    Refused(ConfigError),
    /// The file has just been deleted; the config in force stays.
    Missing,
    /// The file is still missing (already reported).
    StillMissing,
}

/// Tracks the config in force and decides what each re-read means.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    current: Arc<HeartbeatConfig>,
    /// The bytes last read, to skip re-parsing a file that did not change.
    last_bytes: Option<Vec<u8>>,
    missing: bool,
    refused: bool,
}

impl Reloader {
    /// Starts from the config in force, loaded from `path`.
    pub fn new(path: PathBuf, current: Arc<HeartbeatConfig>) -> Reloader {
        Reloader {
            path,
            current,
            last_bytes: None,
            missing: false,
            refused: false,
        }
    }

    /// The config in force.
    pub fn current(&self) -> &Arc<HeartbeatConfig> {
        &self.current
    }

    /// Reads the file and decides.
    pub fn reload(&mut self) -> ReloadOutcome {
        let read = std::fs::read(&self.path);
        self.consider(read)
    }

    /// Decides what the result of reading the file means, and makes a valid
    /// new config the one in force.
    pub fn consider(&mut self, read: std::io::Result<Vec<u8>>) -> ReloadOutcome {
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.last_bytes = None;
                return if std::mem::replace(&mut self.missing, true) {
                    ReloadOutcome::StillMissing
                } else {
                    ReloadOutcome::Missing
                };
            }
            Err(source) => {
                self.last_bytes = None;
                self.refused = true;
                return ReloadOutcome::Refused(ConfigError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let was_missing = std::mem::replace(&mut self.missing, false);
        if self.last_bytes.as_deref() == Some(bytes.as_slice()) {
            return ReloadOutcome::Unchanged;
        }
        self.last_bytes = Some(bytes.clone());
        let was_bad = was_missing || std::mem::replace(&mut self.refused, false);
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                self.refused = true;
                return ReloadOutcome::Refused(ConfigError::Invalid {
                    file: self.path.display().to_string(),
                    line: 0,
                    column: 0,
                    field: ".".into(),
                    message: format!("expected UTF-8 text, found invalid bytes ({e})"),
                });
            }
        };
        match config::parse(&text, &self.path.display().to_string()) {
            Err(e) => {
                self.refused = true;
                ReloadOutcome::Refused(e)
            }
            Ok(loaded) if loaded.config == *self.current => {
                if was_bad {
                    ReloadOutcome::Restored
                } else {
                    ReloadOutcome::Unchanged
                }
            }
            Ok(loaded) => {
                let diff = diff(&self.current, &loaded.config);
                self.current = Arc::new(loaded.config);
                ReloadOutcome::Applied {
                    config: Arc::clone(&self.current),
                    diff,
                    warnings: loaded.warnings,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The watcher (I/O).

/// How the watcher debounces, and whom it tells about the file's validity.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet period after the last event before the file is read.
    pub debounce: Duration,
    /// Longest wait from the first event of a burst.
    pub max_delay: Duration,
    /// Told whether the file on disk is valid (the host is degraded while
    /// it runs on the last good config).
    pub health: Option<Arc<crate::health::Health>>,
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
    Stop,
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
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
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
            Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if debounce.fire(Instant::now()) {
            act(&mut reloader, &mut apply, options.health.as_deref());
        }
    }
}

/// Re-reads the file, logs what it came to and applies a valid change.
fn act<F>(reloader: &mut Reloader, apply: &mut F, health: Option<&crate::health::Health>)
where
    F: FnMut(Arc<HeartbeatConfig>, &ConfigDiff),
{
    let file = reloader.path.display().to_string();
    let outcome = reloader.reload();
    if let Some(health) = health {
        match &outcome {
            ReloadOutcome::Applied { .. } | ReloadOutcome::Unchanged | ReloadOutcome::Restored => {
                health.set_config_invalid(false)
            }
            ReloadOutcome::Refused(_) | ReloadOutcome::Missing => health.set_config_invalid(true),
            ReloadOutcome::StillMissing => {}
        }
    }
    match outcome {
        ReloadOutcome::Applied {
            config,
            diff,
            warnings,
        } => {
            for warning in &warnings {
                warn!(file = %file, "{warning}");
            }
            info!(file = %file, checks = config.checks.len(), "config reloaded, applies from the next tick: {diff}");
            apply(config, &diff);
        }
        ReloadOutcome::Unchanged => debug!(file = %file, "config file touched; nothing changed"),
        ReloadOutcome::Restored => info!(
            file = %file,
            "config file is valid again and unchanged; the config in force stays"
        ),
        ReloadOutcome::Refused(e) => {
            error!(file = %file, "config change refused, the last good config stays in force: {e}")
        }
        ReloadOutcome::Missing => warn!(
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

    fn parsed(json: &str) -> HeartbeatConfig {
        config::parse(json, "test.json").expect("valid").config
    }

    #[test]
    fn identical_configs_have_an_empty_diff() {
        let a = parsed(r#"{"checks": {"a": {"cadenceMs": 5}}}"#);
        let d = diff(&a, &a.clone());
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "no change the host uses");
    }

    #[test]
    fn diff_lists_added_removed_and_changed_fields() {
        let old = parsed(
            r#"{"checks": {
            "keep": {"cadenceMs": 1000},
            "gone": {},
            "tweak": {"cadenceMs": 1000, "handler": "x", "priority": 1}}}"#,
        );
        let new = parsed(
            r#"{"maxPerTick": 2, "checks": {
            "keep": {"cadenceMs": 1000},
            "tweak": {"cadenceMs": 2000, "handler": "y", "priority": 1, "timeoutMs": 50},
            "fresh": {}}}"#,
        );
        let d = diff(&old, &new);
        assert_eq!(d.added, ["fresh"]);
        assert_eq!(d.removed, ["gone"]);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].name, "tweak");
        let fields: Vec<&str> = d.changed[0]
            .fields
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, ["cadenceMs", "handler", "timeoutMs"]);
        assert_eq!(
            d.to_string(),
            "added: fresh; removed: gone; changed: tweak.cadenceMs 1000 → 2000, \
             tweak.handler \"x\" → \"y\", tweak.timeoutMs 10000 → 50; maxPerTick 1 → 2"
        );
    }

    #[test]
    fn diff_covers_windows_quarters_meta_enabled_and_last_run() {
        let old = parsed(
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "17:00", "tz": "UTC"}}}}"#,
        );
        let new = parsed(
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "18:30"},
            "triggerOnQuarters": ["Q1"], "meta": {"k": 1}, "enabled": false, "lastRun": 7}}}"#,
        );
        let fields = &diff(&old, &new).changed[0].fields;
        let window = fields
            .iter()
            .find(|f| f.field == "window")
            .expect("window changed");
        assert_eq!(window.old, "09:00-17:00 UTC");
        assert_eq!(window.new, "09:00-18:30 America/New_York (default)");
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            ["enabled", "lastRun", "window", "triggerOnQuarters", "meta"]
        );
    }

    #[test]
    fn diff_reports_pauses_defaults_and_reordering() {
        let old = parsed(r#"{"checks": {"a": {}, "b": {}}, "paused": {"a": true}}"#);
        let new = parsed(
            r#"{"defaults": {"memoryMb": 8}, "checks": {"b": {}, "a": {}},
            "paused": {"b": {"until": 0, "reason": "ops"}}}"#,
        );
        let d = diff(&old, &new);
        let top: Vec<String> = d.top_level.iter().map(ToString::to_string).collect();
        assert_eq!(
            top,
            [
                "paused.a true → none",
                "paused.b none → until 1970-01-01T00:00:00Z (ops)",
                "defaults.memoryMb 64 → 8",
                "order a,b → b,a",
            ]
        );
        // The per-check limits changed too, through the defaults.
        assert_eq!(d.changed.len(), 2);
    }

    #[test]
    fn diff_shows_grants_and_keeps_a_long_reordering_short() {
        let old = parsed(
            r#"{"checks": {"a": {}, "b": {}, "c": {}, "d": {}, "e": {}, "f": {}, "g": {}}}"#,
        );
        let new = parsed(
            r#"{"checks": {"a": {}, "c": {}, "b": {}, "d": {}, "e": {}, "f": {},
            "g": {"grants": {"dirs": {"/data": {"path": "mem", "readOnly": true}}, "emit": ["alerts.#"]}}}}"#,
        );
        let d = diff(&old, &new);
        assert_eq!(
            d.top_level[0].to_string(),
            "order …,b,c,d,e,f,… → …,c,b,d,e,f,…"
        );
        assert_eq!(
            d.changed[0].fields[0].to_string(),
            "grants none → dirs [/data=mem (read-only)], emit [alerts.#]"
        );
    }

    #[test]
    fn debounce_waits_for_quiet_and_is_capped_by_max_delay() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debounce::new(ms(50), ms(200));
        assert_eq!(d.deadline(), None);
        assert!(!d.fire(t0));
        d.event(t0);
        assert_eq!(d.deadline(), Some(t0 + ms(50)));
        d.event(t0 + ms(30));
        assert!(!d.fire(t0 + ms(79)));
        assert!(d.fire(t0 + ms(80)));
        assert_eq!(d.deadline(), None, "firing clears the burst");
        // A burst that never goes quiet fires at max_delay.
        let t1 = t0 + ms(1000);
        for i in 0..10 {
            d.event(t1 + ms(i * 40));
        }
        assert_eq!(d.deadline(), Some(t1 + ms(200)));
    }

    fn reloader(json: &str) -> Reloader {
        Reloader::new(PathBuf::from("heartbeat.json"), Arc::new(parsed(json)))
    }

    const A: &str = r#"{"checks": {"a": {"cadenceMs": 1000}}}"#;
    const B: &str = r#"{"checks": {"a": {"cadenceMs": 2000}}}"#;

    #[test]
    fn a_valid_change_is_applied_with_its_diff() {
        let mut r = reloader(A);
        match r.consider(Ok(B.as_bytes().to_vec())) {
            ReloadOutcome::Applied { config, diff, .. } => {
                assert_eq!(config.checks[0].cadence_ms, 2000);
                assert_eq!(diff.to_string(), "changed: a.cadenceMs 1000 → 2000");
            }
            other => panic!("expected Applied, got {other:?}"),
        }
        assert_eq!(r.current().checks[0].cadence_ms, 2000);
        assert!(matches!(
            r.consider(Ok(B.as_bytes().to_vec())),
            ReloadOutcome::Unchanged
        ));
    }

    #[test]
    fn reformatting_alone_is_unchanged() {
        let mut r = reloader(A);
        let reformatted = "{\n  \"checks\": {\"a\": {\"cadenceMs\": 1000, \"note\": 1}}\n}\n";
        assert!(matches!(
            r.consider(Ok(reformatted.as_bytes().to_vec())),
            ReloadOutcome::Unchanged
        ));
    }

    #[test]
    fn an_invalid_file_is_refused_and_the_last_good_config_stays() {
        let mut r = reloader(A);
        match r.consider(Ok(br#"{"checks": {"a": {"cadenceMs": "soon"}}}"#.to_vec())) {
            ReloadOutcome::Refused(e) => assert_eq!(e.field(), Some("checks.a.cadenceMs")),
            other => panic!("expected Refused, got {other:?}"),
        }
        assert_eq!(r.current().checks[0].cadence_ms, 1000);
        assert!(matches!(
            r.consider(Ok(b"{\"checks\": ".to_vec())),
            ReloadOutcome::Refused(_)
        ));
        assert!(matches!(
            r.consider(Ok(vec![0xff, 0xfe])),
            ReloadOutcome::Refused(_)
        ));
        // Putting the good file back is worth saying, though nothing changes.
        assert!(matches!(
            r.consider(Ok(A.as_bytes().to_vec())),
            ReloadOutcome::Restored
        ));
        assert!(matches!(
            r.consider(Ok(B.as_bytes().to_vec())),
            ReloadOutcome::Applied { .. }
        ));
    }

    #[test]
    fn a_deleted_file_keeps_the_config_until_it_reappears() {
        let mut r = reloader(A);
        let gone = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(matches!(r.consider(gone()), ReloadOutcome::Missing));
        assert!(matches!(r.consider(gone()), ReloadOutcome::StillMissing));
        assert_eq!(r.current().checks[0].cadence_ms, 1000);
        assert!(matches!(
            r.consider(Ok(A.as_bytes().to_vec())),
            ReloadOutcome::Restored
        ));
        assert!(matches!(r.consider(gone()), ReloadOutcome::Missing));
        assert!(matches!(
            r.consider(Ok(B.as_bytes().to_vec())),
            ReloadOutcome::Applied { .. }
        ));
    }

    #[test]
    fn an_unreadable_file_is_refused() {
        let mut r = reloader(A);
        let denied = Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(r.consider(denied), ReloadOutcome::Refused(_)));
    }

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
