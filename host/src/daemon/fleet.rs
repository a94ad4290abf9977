//! Many agents in one process (`run --agents DIR`, a repeated `--config`):
//! the agent files are listed and read ([`scan`]), the core's
//! [`Roster`] says what the rescan means, and [`Fleet::rescan`] starts,
//! stops and reloads agents accordingly. One watch of the files'
//! directories ([`watch`]) only signals; the rescan does the rest.
//!
//! Per agent, derived from its name: the state file
//! `<state dir>/<agent>.state.json` (its outbox and key-value stores beside
//! it), the liveness file `<liveness dir>/<agent>.json`, the beats'
//! process `heartbeat-host.<agent>`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heartbeat_core::agents::{Action, Identity, Roster, Scanned};
use heartbeat_core::beats::BeatOptions;
use tokio::sync::mpsc;
use tracing::{Instrument as _, error, info, warn};

use super::agent::{Agent, Follow, ProcessResources};
use super::live_agent::{AgentOptions, LiveAgent};
use crate::amqp::BusOptions;

/// Where a many-agent host finds its agents' files and keeps their state;
/// `explain`, `check` and `status` read the same layout.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// `--agents DIR`: every `*.json` there is one agent; a file deleted
    /// stops its agent.
    pub agents_dir: Option<PathBuf>,
    /// `--config` given more than once: each is one agent; a file deleted
    /// keeps its agent on the last good config, as for a single agent.
    pub configs: Vec<PathBuf>,
    /// Where the agents' state files go (`--state-dir`); default: the
    /// `state` directory inside `--agents DIR`, and beside each `--config`
    /// file (`<stem>.state.json`) for those.
    pub state_dir: Option<PathBuf>,
}

impl Layout {
    /// The agent files there are now: every `*.json` regular file in the
    /// agents directory (by name, hidden ones left out), then each
    /// `--config` file.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(dir) = &self.agents_dir {
            match json_files(dir) {
                Ok(listed) => files.extend(listed),
                Err(e) => warn!(dir = %dir.display(), "cannot list the agents directory: {e}"),
            }
        }
        for file in &self.configs {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
        files
    }

    /// Where the agent `name` of `file` keeps its state: `<state
    /// dir>/<name>.state.json`, by default `DIR/state/` for a file of the
    /// agents directory and `<stem>.state.json` beside a `--config` file.
    pub fn state_path(&self, file: &Path, name: &str) -> PathBuf {
        let in_dir = |dir: &Path| dir.join(format!("{name}.state.json"));
        match (&self.state_dir, &self.agents_dir) {
            (Some(dir), _) => in_dir(dir),
            (None, Some(dir)) if crate::store::dir_of(file) == dir.as_path() => {
                in_dir(&dir.join("state"))
            }
            _ => crate::store::state::default_path(file),
        }
    }
}

/// The `*.json` regular files of `dir` by name, hidden ones (the temp
/// files of an atomic write, an editor's) left out: the agent files of an
/// agents directory, the liveness files of a liveness directory.
pub fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && p.metadata().is_ok_and(|m| m.is_file())
        })
        .collect();
    files.sort();
    Ok(files)
}

/// How one process serves many agents (`run --agents`, a repeated `--config`).
#[derive(Debug, Clone)]
pub struct ManyOptions {
    /// Where the agent files are and their state goes.
    pub layout: Layout,
    /// `--handlers`: the handler directory of every agent whose file names
    /// no `handlersDir` of its own.
    pub handlers_dir: Option<PathBuf>,
    /// `--liveness-dir`: each agent writes `<dir>/<agent>.json`.
    pub liveness_dir: Option<PathBuf>,
    /// `--agents-per-connection`: agents sharing one broker connection.
    pub agents_per_connection: usize,
    /// What every agent is served with alike.
    pub defaults: AgentDefaults,
}

/// What every agent of a many-agent host is served with alike; what is an
/// agent's own (its files, its name, its beats' process) comes from its
/// name and its file.
#[derive(Debug, Clone)]
pub struct AgentDefaults {
    /// Each agent's own timer's period.
    pub tick_interval: Duration,
    /// The broker, if any; each agent's outbox goes beside its state file.
    pub bus: Option<BusDefaults>,
    /// Without a broker: the JSON-lines file every agent's events are appended to.
    pub events_log: Option<PathBuf>,
    /// How often each agent's liveness file is written.
    pub liveness_period: Duration,
    /// Time between each agent's own beats.
    pub beat_period: Duration,
    /// The warm-up each agent's `start` beat announces.
    pub beat_warmup: Duration,
    /// The most of one agent's runs in flight at once.
    pub max_runs: Option<u32>,
}

/// How to reach the bus, for any agent: [`BusOptions`] but the outbox,
/// which is each agent's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusDefaults {
    /// `RABBIT_URL`.
    pub url: String,
    /// `EXCHANGE_NAME`.
    pub exchange: String,
    /// The consumer's prefetch (basic.qos).
    pub prefetch: u16,
    /// The outbox's bound, in events.
    pub outbox_max: usize,
    /// `--exclusive`: consume the inbox as its only consumer.
    pub exclusive: bool,
    /// `--results-key-prefix`.
    pub results_key_prefix: Option<String>,
}

impl BusDefaults {
    /// The bus options of an agent whose outbox is `outbox_path`.
    pub fn with_outbox(&self, outbox_path: PathBuf) -> BusOptions {
        BusOptions {
            url: self.url.clone(),
            exchange: self.exchange.clone(),
            prefetch: self.prefetch,
            outbox_path,
            outbox_max: self.outbox_max,
            exclusive: self.exclusive,
            results_key_prefix: self.results_key_prefix.clone(),
        }
    }
}

/// The agents being served, by file.
pub(super) struct Agents {
    by_file: Mutex<BTreeMap<PathBuf, Arc<Agent>>>,
    /// Serving several (the endpoint shows them as a list).
    pub(super) many: bool,
}

impl Agents {
    pub(super) fn new(many: bool) -> Agents {
        Agents {
            by_file: Mutex::new(BTreeMap::new()),
            many,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Arc<Agent>>> {
        self.by_file.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn insert(&self, file: PathBuf, agent: Agent) {
        self.lock().insert(file, Arc::new(agent));
    }

    fn take(&self, file: &Path) -> Option<Arc<Agent>> {
        self.lock().remove(file)
    }

    fn get(&self, file: &Path) -> Option<Arc<Agent>> {
        self.lock().get(file).cloned()
    }

    /// Every agent served now, by name.
    pub(super) fn live(&self) -> Vec<Arc<LiveAgent>> {
        let mut all: Vec<Arc<LiveAgent>> =
            self.lock().values().map(|a| Arc::clone(&a.live)).collect();
        all.sort_by(|a, b| a.options.agent.cmp(&b.options.agent));
        all
    }

    /// Has every agent read its config again (SIGHUP).
    pub(super) fn reload_all(&self) -> bool {
        let agents: Vec<Arc<Agent>> = self.lock().values().cloned().collect();
        for agent in &agents {
            agent.reload_config();
        }
        !agents.is_empty()
    }

    /// Stops every agent at once; resolves when all have stopped.
    pub(super) async fn stop_all(&self, resources: &ProcessResources) {
        let agents: Vec<Arc<Agent>> = std::mem::take(&mut *self.lock()).into_values().collect();
        let stops = agents.iter().map(|agent| agent.stop(resources));
        futures_util::future::join_all(stops).await;
    }
}

/// The many-agent host's bookkeeping: its options, its roster, its agents
/// and those still stopping.
pub(super) struct Fleet {
    resources: Arc<ProcessResources>,
    options: ManyOptions,
    roster: Roster<PathBuf>,
    agents: Arc<Agents>,
    /// Agents stopping in the background, by name: one started again under
    /// the same name waits for its stop (they share a state file and a queue).
    stopping: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl Fleet {
    pub(super) fn new(
        resources: Arc<ProcessResources>,
        options: ManyOptions,
        agents: Arc<Agents>,
    ) -> Fleet {
        Fleet {
            resources,
            roster: Roster::new(options.layout.agents_dir.is_some()),
            options,
            agents,
            stopping: HashMap::new(),
        }
    }

    /// Reads the agent files again and puts the roster's plan into effect;
    /// returns how many agents are served.
    pub(super) async fn rescan(&mut self) -> usize {
        let scanned = scan(&self.options.layout);
        let actions = self.roster.plan(scanned);
        for action in actions {
            match action {
                Action::Start { key, identity } => self.start(key, identity).await,
                Action::Stop { key, agent } => {
                    if let Some(running) = self.agents.take(&key) {
                        info!(event = "agent_removed", agent = %agent, file = %key.display(),
                            "agent {agent} removed: stops consuming, lets its runs in flight finish, publishes stop; its queue stays, unbound from ticks and beats");
                        running.retire();
                        let resources = Arc::clone(&self.resources);
                        let span = tracing::info_span!("agent", agent = %agent);
                        let task = tokio::spawn(
                            async move { running.stop(&resources).await }.instrument(span),
                        );
                        self.stopping.insert(agent, task);
                    }
                }
                Action::Reload { key } => {
                    if let Some(agent) = self.agents.get(&key) {
                        let span = tracing::info_span!("agent", agent = %agent.name());
                        span.in_scope(|| agent.reload_config());
                    }
                }
                Action::Refuse { key, reason } => {
                    error!(event = "agent_refused", file = %key.display(),
                        "{}: {reason}; no agent is served from this file until it changes", key.display());
                }
            }
        }
        self.stopping.retain(|_, task| !task.is_finished());
        self.agents.lock().len()
    }

    async fn start(&mut self, file: PathBuf, identity: Identity) {
        if let Some(stopping) = self.stopping.remove(&identity.agent) {
            let _ = stopping.await;
        }
        let options = self.agent_options(&file, &identity);
        let agent = options.agent.clone();
        let dirs = [Some(&options.state_path), options.liveness_file.as_ref()];
        let made = dirs.into_iter().flatten().try_for_each(|path| {
            let dir = crate::store::dir_of(path);
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
        });
        let started = match made {
            Ok(()) => Agent::start(&self.resources, options, Follow::Told).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(started) => {
                info!(event = "agent_added", agent = %agent, file = %file.display(), "serving agent {agent}");
                self.agents.insert(file, started);
            }
            Err(e) => {
                error!(event = "agent_refused", agent = %agent, file = %file.display(),
                    "{}: agent {agent} cannot start: {e:#}; tried again when the file changes", file.display());
                self.roster.start_failed(&file);
            }
        }
    }

    /// The options of the agent `identity` served from `file`.
    fn agent_options(&self, file: &Path, identity: &Identity) -> AgentOptions {
        let name = &identity.agent;
        let defaults = &self.options.defaults;
        let state_path = self.options.layout.state_path(file, name);
        AgentOptions {
            config_path: file.to_path_buf(),
            agent: name.clone(),
            handlers_dir: handlers_dir(
                file,
                identity.handlers_dir.as_deref(),
                self.options.handlers_dir.as_deref(),
            ),
            tick_interval: defaults.tick_interval,
            bus: defaults
                .bus
                .as_ref()
                .map(|bus| bus.with_outbox(crate::amqp::default_outbox_path(&state_path))),
            events_log: defaults.events_log.clone(),
            liveness_file: self
                .options
                .liveness_dir
                .as_ref()
                .map(|dir| dir.join(format!("{name}.json"))),
            liveness_period: defaults.liveness_period,
            beats: BeatOptions {
                process: heartbeat_core::beats::default_process(name),
                period: defaults.beat_period,
                warmup: defaults.beat_warmup,
            },
            max_runs: defaults.max_runs,
            state_path,
        }
    }
}

/// Lists and reads the agent files: who each names, or why it names no one.
fn scan(layout: &Layout) -> Vec<Scanned<PathBuf>> {
    layout
        .files()
        .into_iter()
        .filter_map(|file| {
            let (identity, digest) = read_agent_file(&file)?;
            Some(Scanned {
                identity,
                key: file,
                digest,
            })
        })
        .collect()
}

/// Reads one agent file as `run --agents` does: the agent it names (or
/// why it names none, naming the field) and a digest of its bytes (0 when
/// unreadable); `None` when it is gone since it was listed.
pub fn read_agent_file(file: &Path) -> Option<(Result<Identity, String>, u64)> {
    match crate::store::read::read_regular(
        file,
        crate::store::read::MAX_CONFIG_BYTES,
        "heartbeat.json",
    ) {
        Ok(bytes) => {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hasher);
            Some((identify(file, &bytes), hasher.finish()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some((Err(format!("cannot read it: {e}")), 0)),
    }
}

/// The handler directory of the agent of `file`: its `handlersDir`
/// (relative to the file's directory), else `fallback` (`--handlers`).
pub fn handlers_dir(file: &Path, own: Option<&str>, fallback: Option<&Path>) -> Option<PathBuf> {
    own.map(|dir| crate::store::dir_of(file).join(dir))
        .or_else(|| fallback.map(Path::to_path_buf))
}

/// The agent a file names: its `agent` (required here, and usable as a
/// queue and file name) and its `handlersDir`.
pub fn identify(file: &Path, bytes: &[u8]) -> Result<Identity, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let loaded = heartbeat_core::config::parse(text, &file.display().to_string())
        .map_err(|e| e.to_string())?;
    let agent = loaded.config.agent.ok_or_else(|| {
        "agent: required in a file served beside others (each file is one agent), found none"
            .to_string()
    })?;
    heartbeat_core::agents::check_name(&agent).map_err(|why| format!("agent: {why}"))?;
    Ok(Identity {
        agent,
        handlers_dir: loaded.config.handlers_dir,
    })
}

/// The watch on the agent files' directories. It only signals (the
/// receiver debounces and rescans); it also watches the agents
/// directory's parent, for the directory itself, so that an agents
/// directory deleted and made again is watched again
/// ([`FilesWatch::follow_agents_dir`]) and its agents served again.
pub(super) struct FilesWatch {
    watcher: notify::RecommendedWatcher,
    /// `--agents DIR`, and the inode watched there (`None`: gone).
    agents_dir: Option<(PathBuf, Option<DirId>)>,
}

/// A directory's device and inode: a directory made again under the same
/// name is another.
type DirId = (u64, u64);

fn dir_id(dir: &Path) -> Option<DirId> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

/// Watches the agent files' directories (and the agents directory's
/// parent, for the directory itself); sends on the channel whenever
/// something there may have changed.
pub(super) fn watch(layout: &Layout) -> anyhow::Result<(FilesWatch, mpsc::Receiver<()>)> {
    use notify::Watcher as _;
    let (tx, rx) = mpsc::channel(1);
    let mut dirs: Vec<PathBuf> = layout.agents_dir.iter().cloned().collect();
    for file in &layout.configs {
        let dir = crate::store::dir_of(file).to_path_buf();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let agents_dir = layout.agents_dir.clone();
    let watched = dirs.clone();
    // Of the parent's events only those on the agents directory count.
    let concerns = move |path: &Path| {
        agents_dir.as_deref() == Some(path)
            || watched.iter().any(|dir| crate::store::dir_of(path) == dir)
    };
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(event) => {
                !matches!(
                    event.kind,
                    notify::EventKind::Access(
                        notify::event::AccessKind::Open(_)
                            | notify::event::AccessKind::Read
                            | notify::event::AccessKind::Close(notify::event::AccessMode::Read)
                    )
                ) && (event.paths.is_empty() || event.paths.iter().any(|p| concerns(p)))
            }
            Err(_) => true,
        };
        if relevant {
            // Full: a rescan is already asked for.
            let _ = tx.try_send(());
        }
    })?;
    let mut watch = FilesWatch {
        watcher,
        agents_dir: layout.agents_dir.clone().map(|dir| (dir, None)),
    };
    for dir in &dirs {
        watch
            .watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| anyhow::anyhow!("cannot watch {} for agent files: {e}", dir.display()))?;
    }
    if let Some((dir, id)) = &mut watch.agents_dir {
        *id = dir_id(dir);
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            watch
                .watcher
                .watch(parent, notify::RecursiveMode::NonRecursive)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot watch {} for the agents directory {}: {e}",
                        parent.display(),
                        dir.display()
                    )
                })?;
        }
    }
    Ok((watch, rx))
}

impl FilesWatch {
    /// Watches the agents directory again when it was deleted and made
    /// again (a watch follows the directory's inode, not its name); says
    /// once when it is gone and when it is back.
    fn follow_agents_dir(&mut self) {
        use notify::Watcher as _;
        let Some((dir, watched)) = &mut self.agents_dir else {
            return;
        };
        let now = dir_id(dir);
        if now == *watched {
            return;
        }
        // The old inode's watch ended with it; this only tidies notify's books.
        let _ = self.watcher.unwatch(dir);
        match now {
            None => {
                warn!(event = "agents_dir_gone", dir = %dir.display(),
                    "the agents directory {} is gone: its agents stop; it is watched for, and its agents served again when it is back", dir.display());
                *watched = None;
            }
            Some(_) => match self.watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    info!(event = "agents_dir_back", dir = %dir.display(),
                        "the agents directory {} is back: its agents are read", dir.display());
                    *watched = now;
                }
                Err(e) => {
                    // Left unwatched: tried again on the parent's next event or SIGHUP.
                    warn!(dir = %dir.display(), "cannot watch the agents directory {} again: {e}", dir.display());
                    *watched = None;
                }
            },
        }
    }
}

/// Rescans after each burst of changes (quiet for
/// [`crate::watch::config::DEFAULT_DEBOUNCE`]) and on every `hangup`.
pub(super) async fn follow(
    mut fleet: Fleet,
    mut watch: FilesWatch,
    mut changes: mpsc::Receiver<()>,
    mut hangups: mpsc::Receiver<()>,
) {
    loop {
        tokio::select! {
            changed = changes.recv() => {
                if changed.is_none() { return; }
                // Let the burst settle (an editor's write, rename, chmod).
                while let Ok(Some(())) =
                    tokio::time::timeout(crate::watch::config::DEFAULT_DEBOUNCE, changes.recv()).await
                {}
                watch.follow_agents_dir();
                fleet.rescan().await;
            }
            hangup = hangups.recv() => {
                if hangup.is_none() { return; }
                watch.follow_agents_dir();
                let served = fleet.rescan().await;
                fleet.agents.reload_all();
                info!(event = "agents_rescanned", agents = served, "SIGHUP: agent files read again");
            }
        }
    }
}
