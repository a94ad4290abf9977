//! `heartbeat-host invoke`: runs one handler once, under the same sandbox
//! and limits as the host, and reports everything it did. The handler
//! author's test loop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::runtime::registry::{self, HandlerSource};
use crate::runtime::{LoadError, Runtime, RuntimeOptions};
use crate::source::now_ms;
use heartbeat_core::config::{self, CheckConfig};
use heartbeat_core::model::{Limits, RunReport, RunStatus};

/// What to invoke and how.
#[derive(Debug, Clone, Default)]
pub struct InvokeOptions {
    /// A handler name (built-in, or `NAME.wasm` in `handlers_dir`) or a path to a `.wasm`.
    pub handler: String,
    /// A `heartbeat.json` whose check gives meta, limits and grants.
    pub config: Option<PathBuf>,
    /// The check in `config` to run as.
    pub check: Option<String>,
    /// `meta` for the run (a JSON object), replacing the check's.
    pub meta: Option<String>,
    /// The handler directory.
    pub handlers_dir: Option<PathBuf>,
    /// The agent name (default: the config's `agent`, else `local`).
    pub agent: Option<String>,
    /// The compiled-code cache; `None` compiles afresh.
    pub cache_dir: Option<PathBuf>,
    /// Grants added to the check's, as a `grants` object of heartbeat.json.
    pub grants: Option<serde_json::Value>,
    /// The directory of key-value stores the run uses (`--kv-dir`); `None`
    /// gives it a fresh, empty store in a temporary directory removed
    /// afterwards, so that `invoke` never touches a host's stores unless told.
    pub kv_dir: Option<PathBuf>,
}

/// Why an invocation could not run the handler at all.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The config did not load.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// `--check` names no check of the config.
    #[error("{config}: no check named {check:?} (checks: {known})")]
    NoSuchCheck {
        /// The config file.
        config: String,
        /// The name asked for.
        check: String,
        /// The names there are.
        known: String,
    },
    /// `--check` without `--config`.
    #[error("--check needs --config")]
    CheckWithoutConfig,
    /// `--meta` is not a JSON object.
    #[error("--meta: expected a JSON object, found {0}")]
    Meta(String),
    /// The handler is not there.
    #[error(transparent)]
    NotFound(#[from] registry::NotFound),
    /// The handler did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The engine did not start.
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
    /// A `--grant-*` flag is not a grant.
    #[error("{0}")]
    Grant(String),
    /// The temporary directory for the run's key-value store (no
    /// `--kv-dir`) could not be made.
    #[error("cannot make a temporary directory for the key-value store: {0}")]
    KvScratch(std::io::Error),
}

/// What `invoke` prints.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// The handler's name.
    pub handler: String,
    /// Where it came from (`built-in` or a file).
    pub origin: String,
    /// The check it ran as.
    pub check: String,
    /// Time to compile (or load from the cache) and link it, in ms.
    pub load_ms: f64,
    /// The run.
    #[serde(flatten)]
    pub report: RunReport,
}

/// Loads the handler and runs it once.
pub fn invoke(options: &InvokeOptions) -> Result<Invocation, InvokeError> {
    let loaded = match &options.config {
        Some(path) => Some(crate::store::load_config(path)?),
        None => None,
    };
    let mut check = match (&loaded, &options.check) {
        (Some(loaded), Some(name)) => {
            loaded
                .config
                .check(name)
                .cloned()
                .ok_or_else(|| InvokeError::NoSuchCheck {
                    config: options
                        .config
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    check: name.clone(),
                    known: loaded
                        .config
                        .checks
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?
        }
        (None, Some(_)) => return Err(InvokeError::CheckWithoutConfig),
        (loaded, None) => adhoc_check(
            loaded
                .as_ref()
                .map(|l| l.config.defaults)
                .unwrap_or_default(),
        ),
    };
    if let Some(grants) = &options.grants {
        // Validated by the core as a check's `grants` in heartbeat.json;
        // relative host paths are relative to the working directory.
        let text = serde_json::json!({"checks": {"invoke": {"grants": grants}}}).to_string();
        let parsed = heartbeat_core::config::parse(&text, "--grant-*")
            .map_err(|e| InvokeError::Grant(e.to_string()))?;
        if let Some(extra) = parsed.config.checks.first() {
            let g = &extra.grants;
            check.grants.dirs.extend(g.dirs.iter().cloned());
            check.grants.emit.extend(g.emit.iter().cloned());
            check.grants.env.extend(g.env.iter().cloned());
            check.grants.secrets.extend(g.secrets.iter().cloned());
            check.grants.net.extend(g.net.iter().cloned());
            check.grants.http.extend(g.http.iter().cloned());
        }
    }
    if let Some(meta) = &options.meta {
        check.meta = match serde_json::from_str::<serde_json::Value>(meta) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(other) => return Err(InvokeError::Meta(other.to_string())),
            Err(e) => return Err(InvokeError::Meta(format!("invalid JSON ({e})"))),
        };
    }
    let agent = options
        .agent
        .clone()
        .or_else(|| loaded.as_ref().and_then(|l| l.config.agent.clone()))
        .unwrap_or_else(|| "local".to_string());

    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: options.cache_dir.clone(),
        pooling: true,
        ..RuntimeOptions::default()
    })
    .map_err(|e| InvokeError::Runtime(format!("{e:#}")))?;
    let started = Instant::now();
    let handler = load_handler(&runtime, &options.handler, options.handlers_dir.as_deref())?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    check.handler = handler.name.clone();

    let config_dir = options
        .config
        .as_deref()
        .map_or(Path::new("."), crate::store::dir_of);
    let time_ms = now_ms();
    let tick = crate::source::Tick {
        id: format!("invoke-{time_ms}"),
        time_ms,
        envelope: serde_json::json!({}),
        done: None,
    };
    let mut request =
        crate::daemon::pipeline::run_request(&agent, &tick, &check, check.last_run_ms, config_dir);
    let scratch = match &options.kv_dir {
        Some(_) => None,
        None => Some(ScratchDir::new().map_err(InvokeError::KvScratch)?),
    };
    request.kv = options
        .kv_dir
        .as_deref()
        .or(scratch.as_ref().map(|s| s.0.as_path()))
        .map(crate::store::kv::KvLocation::new);
    // I/O for the handler's granted HTTP requests and sockets.
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| InvokeError::Runtime(format!("async runtime: {e}")))?
        .block_on(runtime.run(&handler, &request));
    Ok(Invocation {
        handler: handler.name.clone(),
        origin: handler.origin.clone(),
        check: check.name,
        load_ms,
        report,
    })
}

/// A directory of its own under the system's temporary directory, removed
/// (with what is in it) when dropped: the key-value store of an `invoke`
/// without `--kv-dir`.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<ScratchDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let path = std::env::temp_dir().join(format!(
            "heartbeat-host-invoke-kv.{}.{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        // `create`, not `create_all`: fails rather than adopt a directory
        // that is already there.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), "cannot remove the temporary key-value directory: {e}");
        }
    }
}

/// The check an invocation without `--check` runs as.
fn adhoc_check(limits: Limits) -> CheckConfig {
    CheckConfig {
        name: "invoke".to_string(),
        cadence_ms: config::DEFAULT_CADENCE_MS,
        handler: String::new(),
        priority: config::DEFAULT_PRIORITY,
        enabled: true,
        last_run_ms: 0,
        last_run_fraction_ms: 0.0,
        window: None,
        trigger_on_quarters: None,
        meta: serde_json::Map::new(),
        limits,
        grants: heartbeat_core::config::grants::Grants::default(),
        retry: heartbeat_core::model::RetryPolicy::default(),
    }
}

/// A path to a `.wasm`, else `NAME.wasm` in the handler directory, else a built-in.
fn load_handler(
    runtime: &Runtime,
    handler: &str,
    dir: Option<&Path>,
) -> Result<crate::runtime::LoadedHandler, InvokeError> {
    let as_path = Path::new(handler);
    if handler.ends_with(".wasm") || handler.contains('/') {
        return Ok(registry::load_file(runtime, as_path)?);
    }
    let files = match dir {
        Some(dir) => registry::handler_files(dir).unwrap_or_default(),
        None => Vec::new(),
    };
    let builtins: Vec<&str> = registry::builtin_names().collect();
    match registry::source_of(handler, &builtins, &files) {
        Some(HandlerSource::File(file)) => Ok(registry::load_file(runtime, &file)?),
        Some(HandlerSource::BuiltIn) => match registry::load_builtin(runtime, handler) {
            Some(loaded) => Ok(loaded?),
            None => Err(registry::NotFound::new(handler, dir).into()),
        },
        None => Err(registry::NotFound::new(handler, dir).into()),
    }
}
#[derive(clap::Args)]
pub struct InvokeArgs {
    /// A handler name (built-in or NAME.wasm in --handlers) or a path to a .wasm file.
    pub handler: String,
    /// A heartbeat.json to take the check's meta, limits and grants from.
    #[arg(long, requires = "check")]
    pub config: Option<PathBuf>,
    /// The check of --config to run as.
    #[arg(long, requires = "config")]
    pub check: Option<String>,
    /// The check's `meta` for this run, a JSON object.
    #[arg(long)]
    pub meta: Option<String>,
    /// A directory of handler components.
    #[arg(long, env = "HANDLERS_DIR")]
    pub handlers: Option<PathBuf>,
    /// The agent name (default: the config's `agent`, else `local`).
    #[arg(long, env = "AGENT_NAME")]
    pub agent: Option<String>,
    /// Where compiled handlers are cached.
    #[arg(long, env = "HEARTBEAT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Grant a directory for this run: GUEST=HOST (read-write) or GUEST=HOST:ro.
    #[arg(long, value_name = "GUEST=HOST[:ro]")]
    pub grant_dir: Vec<String>,
    /// Grant emitting under a routing-key pattern beyond `agent.<agent>.`.
    #[arg(long, value_name = "PATTERN")]
    pub grant_emit: Vec<String>,
    /// Grant a host environment variable (NAME, or GUEST=HOST to rename).
    #[arg(long, value_name = "NAME[=HOST]")]
    pub grant_env: Vec<String>,
    /// Grant a secret read from a file: NAME=FILE.
    #[arg(long, value_name = "NAME=FILE")]
    pub grant_secret: Vec<String>,
    /// Use the key-value stores in DIR, kept after the run (the check's
    /// store is DIR/<escaped check name>.json). Without it the run gets a
    /// fresh, empty store that is removed afterwards, so invoke never touches
    /// a host's stores (<state stem>.kv/ beside its state file) unless told.
    #[arg(long, value_name = "DIR")]
    pub kv_dir: Option<PathBuf>,
    /// Grant HTTP requests to an origin (grants.http syntax, e.g.
    /// http://127.0.0.1:8080, https://*.example.com, http://localhost:*).
    #[arg(long, value_name = "ORIGIN")]
    pub grant_http: Vec<String>,
    /// Grant TCP/UDP to peers (grants.net syntax, e.g. db.internal:5432,
    /// 10.0.0.0/8:*).
    #[arg(long, value_name = "HOST:PORT")]
    pub grant_net: Vec<String>,
}

/// A `--grant-*` path made absolute against the working directory.
fn absolute(path: &str) -> Result<String, InvokeError> {
    if path.is_empty() {
        return Ok(String::new());
    }
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .map_err(|e| InvokeError::Grant(format!("{path}: {e}")))
}

/// The `--grant-*` flags as a `grants` object of heartbeat.json, so that
/// the core validates them exactly as it validates a config's.
fn grants_json(args: &InvokeArgs) -> Result<Option<serde_json::Value>, InvokeError> {
    let pair = |flag: &str, text: &str| {
        text.split_once('=')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .ok_or_else(|| InvokeError::Grant(format!("--{flag} {text:?}: expected A=B")))
    };
    let mut dirs = serde_json::Map::new();
    for text in &args.grant_dir {
        let (guest, host) = pair("grant-dir", text)?;
        let (host, read_only) = match host.strip_suffix(":ro") {
            Some(host) => (host.to_string(), true),
            None => (host, false),
        };
        dirs.insert(
            guest,
            serde_json::json!({"path": absolute(&host)?, "readOnly": read_only}),
        );
    }
    let mut env = serde_json::Map::new();
    for text in &args.grant_env {
        let (guest, host) = text
            .split_once('=')
            .map_or((text.clone(), text.clone()), |(a, b)| {
                (a.to_string(), b.to_string())
            });
        env.insert(guest, serde_json::Value::String(host));
    }
    let mut secrets = serde_json::Map::new();
    for text in &args.grant_secret {
        let (name, file) = pair("grant-secret", text)?;
        secrets.insert(name, serde_json::json!({"file": absolute(&file)?}));
    }
    if dirs.is_empty()
        && env.is_empty()
        && secrets.is_empty()
        && args.grant_emit.is_empty()
        && args.grant_http.is_empty()
        && args.grant_net.is_empty()
    {
        return Ok(None);
    }
    Ok(Some(serde_json::json!({
        "dirs": dirs, "emit": args.grant_emit, "env": env, "secrets": secrets,
        "http": args.grant_http, "net": args.grant_net,
    })))
}

/// Runs `invoke` and prints the invocation as JSON; exit 1 for a failed run.
pub(super) fn execute(args: InvokeArgs) -> anyhow::Result<std::process::ExitCode> {
    let grants = grants_json(&args)?;
    let options = InvokeOptions {
        handler: args.handler,
        config: args.config,
        check: args.check,
        meta: args.meta,
        handlers_dir: args.handlers,
        agent: args.agent,
        grants,
        kv_dir: args.kv_dir,
        cache_dir: args
            .cache_dir
            .or_else(crate::runtime::CompileCache::default_dir),
    };
    let invocation = invoke(&options)?;
    println!("{}", serde_json::to_string_pretty(&invocation)?);
    Ok(if invocation.report.status == RunStatus::Failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    })
}
