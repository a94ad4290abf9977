//! `heartbeat-host run`: the host itself, on its own timer or on the bus.
//! Every flag here can also come from the environment the consumer's unit
//! file sets (`HEARTBEAT_PATH`, `AGENT_NAME`, `RABBIT_URL`, ...).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use heartbeat_core::beats::BeatOptions;

use super::parse_duration;
use crate::amqp::{BusOptions, DEFAULT_EXCHANGE, DEFAULT_OUTBOX_MAX, DEFAULT_PREFETCH};
use crate::daemon::{self, AgentDefaults, BusDefaults, HostOptions, ManyOptions, ProcessOptions};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The agent's heartbeat.json. Given more than once, one process serves
    /// each file's agent (named by its `agent` field), as with --agents.
    #[arg(long, env = "HEARTBEAT_PATH", required_unless_present = "agents")]
    pub config: Vec<PathBuf>,
    /// Serve every agent of a directory: each `*.json` there is one agent
    /// (`heartbeat.json` format, `agent` required), added, changed and
    /// removed live as files are.
    #[arg(long, env = "HEARTBEAT_AGENTS_DIR", value_name = "DIR")]
    pub agents: Option<PathBuf>,
    /// With several agents: where their state files go
    /// (`<agent>.state.json`, outbox and key-value stores beside it);
    /// default `DIR/state` for --agents, beside each --config file otherwise.
    #[arg(long, env = "HEARTBEAT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// With several agents: write each agent's liveness file here, as `<agent>.json`.
    #[arg(long, env = "HEARTBEAT_LIVENESS_DIR", value_name = "DIR")]
    pub liveness_dir: Option<PathBuf>,
    /// The most runs of one agent in flight at once (default: the process's
    /// cap with one agent, a quarter of it with several), so that one agent's
    /// checks cannot take every slot.
    #[arg(long, env = "HEARTBEAT_MAX_RUNS_PER_AGENT",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::runtime::MAX_CONCURRENT_RUNS)))]
    pub max_runs_per_agent: Option<u32>,
    /// With several agents and a broker: how many agents share one broker
    /// connection (two channels each); more open another.
    #[arg(long, env = "HEARTBEAT_AGENTS_PER_CONNECTION",
          default_value_t = crate::amqp::shared::DEFAULT_AGENTS_PER_CONNECTION as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::amqp::shared::AGENTS_PER_CONNECTION as u64))]
    pub agents_per_connection: u64,
    /// The agent's name (defaults to the config's `agent`).
    #[arg(long, env = "AGENT_NAME")]
    pub agent: Option<String>,
    /// A directory of handler components (`NAME.wasm` provides handler NAME).
    #[arg(long, env = "HANDLERS_DIR")]
    pub handlers: Option<PathBuf>,
    /// Period of the host's own timer, e.g. `500ms`, `10s`, `1m`.
    #[arg(long, env = "TICK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub tick_interval: Duration,
    /// The state file (default: `<config stem>.state.json` beside the config).
    #[arg(long, env = "STATE_PATH")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub bus: BusArgs,
    /// Without a broker: append the events handlers emit to this JSON-lines file.
    #[arg(long, env = "EVENTS_LOG")]
    pub events_log: Option<PathBuf>,
    /// Write a liveness file (kstlib's format) here every --liveness-period; probe it with `is-alive`.
    #[arg(long, env = "LIVENESS_FILE")]
    pub liveness_file: Option<PathBuf>,
    /// How often the liveness file is written.
    #[arg(long, env = "LIVENESS_PERIOD", default_value = "10s", value_parser = parse_duration)]
    pub liveness_period: Duration,
    /// With a broker: the process name of the host's own beats, published on
    /// `heartbeat.<process>` (default `heartbeat-host.<agent>`).
    #[arg(long, env = "BEAT_PROCESS")]
    pub process: Option<String>,
    /// With a broker: time between the host's beats (at least 1s).
    #[arg(long, env = "BEAT_PERIOD", default_value = "10s", value_parser = parse_beat_period)]
    pub beat_period: Duration,
    /// With a broker: the warm-up announced by the host's `start` beat.
    #[arg(long, env = "BEAT_WARMUP", default_value = "30s", value_parser = humantime::parse_duration)]
    pub beat_warmup: Duration,
    /// The largest handler component read from the handler directory, in bytes.
    #[arg(long, env = "HEARTBEAT_MAX_HANDLER_BYTES",
          default_value_t = crate::store::read::DEFAULT_MAX_HANDLER_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_handler_bytes: u64,
    /// Runs in flight at once; a run beyond them waits for a slot within its
    /// check's timeoutMs (and fails saying so when none comes).
    #[arg(long, env = "HEARTBEAT_MAX_RUNS_IN_FLIGHT",
          default_value_t = crate::runtime::MAX_CONCURRENT_RUNS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::runtime::MAX_CONCURRENT_RUNS)))]
    pub max_runs_in_flight: u32,
    /// Serve /metrics (Prometheus), /healthz and /readyz here, e.g.
    /// 127.0.0.1:9464 (port 0: any free port, logged at start-up). Off unless given.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Broker flags of `heartbeat-host run`.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/ (without one the
    /// host runs on its own timer only).
    #[arg(long, env = "RABBIT_URL")]
    pub amqp_url: Option<String>,
    /// The topic exchange ticks arrive on and events go to.
    #[arg(long, env = "EXCHANGE_NAME", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// Unacknowledged deliveries the broker may hand the host at once.
    #[arg(long, env = "PREFETCH", default_value_t = DEFAULT_PREFETCH, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Where events wait while the broker is unreachable (default:
    /// `<state stem>.outbox.jsonl` beside the state file).
    #[arg(long, env = "OUTBOX_PATH")]
    pub outbox: Option<PathBuf>,
    /// Most events the outbox keeps; beyond it the oldest are dropped (and counted).
    #[arg(long, env = "OUTBOX_MAX", default_value_t = DEFAULT_OUTBOX_MAX as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub outbox_max: u64,
    /// Consume the inbox as its only consumer. Start two hosts for one
    /// agent with it: the first is active, the second stands by (runs
    /// nothing) and takes over when the active one's connection ends.
    #[arg(long, env = "HEARTBEAT_EXCLUSIVE")]
    pub exclusive: bool,
    /// Publish the result events on `<PREFIX><agent>.check.completed` and
    /// `<PREFIX><agent>.check.state_changed` (e.g. `results.`), outside the
    /// inbox's bindings, instead of `agent.<agent>.check.*`; empty: the default.
    #[arg(long, env = "RESULTS_KEY_PREFIX", value_name = "PREFIX", value_parser = parse_results_key_prefix)]
    pub results_key_prefix: Option<String>,
}

impl BusArgs {
    /// The bus options of the one agent whose state file is `state_path`,
    /// or `None` without a URL (an empty `RABBIT_URL` counts as none).
    pub fn options(&self, state_path: &Path) -> Option<BusOptions> {
        let outbox = self
            .outbox
            .clone()
            .unwrap_or_else(|| crate::amqp::default_outbox_path(state_path));
        Some(self.defaults()?.with_outbox(outbox))
    }

    /// The bus options every agent shares (each has its own outbox), or
    /// `None` without a URL.
    pub fn defaults(&self) -> Option<BusDefaults> {
        let url = self
            .amqp_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())?;
        Some(BusDefaults {
            url: url.to_string(),
            exchange: self.exchange.clone(),
            prefetch: self.prefetch,
            outbox_max: usize::try_from(self.outbox_max).unwrap_or(usize::MAX),
            exclusive: self.exclusive,
            results_key_prefix: self
                .results_key_prefix
                .clone()
                .filter(|prefix| !prefix.is_empty()),
        })
    }
}

/// A routing key prefix: at most 128 bytes (the key must stay within AMQP's
/// 255), no white space and no `*` or `#` (a key, not a pattern).
fn parse_results_key_prefix(text: &str) -> Result<String, String> {
    if text.len() > 128 {
        return Err(format!("at most 128 bytes, found {}", text.len()));
    }
    if text.contains(['*', '#']) || text.chars().any(char::is_whitespace) {
        return Err("a routing key prefix such as `results.`: no `*`, `#` or white space".into());
    }
    Ok(text.to_string())
}

fn parse_beat_period(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < heartbeat_core::beats::MIN_PERIOD {
        return Err("must be at least 1s (at most one beat per second)".into());
    }
    Ok(d)
}

/// `path` made absolute against the working directory at start-up, so that
/// the watchers (whose events carry absolute paths) and every later open
/// see the same file whatever the working directory becomes.
fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    std::path::absolute(&path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// Starts the host and runs it until SIGTERM or SIGINT.
pub(super) fn execute(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    args.config = args
        .config
        .into_iter()
        .map(absolute)
        .collect::<anyhow::Result<_>>()?;
    args.agents = args.agents.map(absolute).transpose()?;
    args.state_dir = args.state_dir.map(absolute).transpose()?;
    args.liveness_dir = args.liveness_dir.map(absolute).transpose()?;
    args.state = args.state.map(absolute).transpose()?;
    args.handlers = args.handlers.map(absolute).transpose()?;
    args.events_log = args.events_log.map(absolute).transpose()?;
    args.liveness_file = args.liveness_file.map(absolute).transpose()?;
    args.bus.outbox = args.bus.outbox.map(absolute).transpose()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if args.agents.is_some() || args.config.len() > 1 {
        let (many, process) = many_options(args)?;
        runtime.block_on(daemon::run_many(many, process, shutdown_signal()))?;
    } else {
        runtime.block_on(daemon::run(single_options(args)?, shutdown_signal()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The one agent of `run --config FILE` (or `HEARTBEAT_PATH`).
fn single_options(args: RunArgs) -> anyhow::Result<HostOptions> {
    let process = process_options(&args);
    let [config] = <[PathBuf; 1]>::try_from(args.config)
        .map_err(|_| anyhow::anyhow!("run: one --config, or --agents DIR"))?;
    for (given, flag) in [
        (args.state_dir.is_some(), "--state-dir"),
        (args.liveness_dir.is_some(), "--liveness-dir"),
    ] {
        if given {
            anyhow::bail!(
                "{flag} is for several agents (--agents DIR, or --config more than once); one agent takes --state / --liveness-file"
            );
        }
    }
    let agent = match args.agent {
        Some(agent) => agent,
        None => crate::store::load_config(&config)?.config.agent.context(
            "no agent name: pass --agent, set AGENT_NAME, or give `agent` in the config",
        )?,
    };
    let state_path = args
        .state
        .unwrap_or_else(|| crate::store::state::default_path(&config));
    let beats = BeatOptions {
        process: args
            .process
            .unwrap_or_else(|| heartbeat_core::beats::default_process(&agent)),
        period: args.beat_period,
        warmup: args.beat_warmup,
    };
    Ok(HostOptions {
        agent: daemon::AgentOptions {
            bus: args.bus.options(&state_path),
            state_path,
            config_path: config,
            agent,
            handlers_dir: args.handlers,
            tick_interval: args.tick_interval,
            events_log: args.events_log,
            liveness_file: args.liveness_file,
            liveness_period: args.liveness_period,
            beats,
            max_runs: args.max_runs_per_agent,
        },
        process,
    })
}

/// The agents of `run --agents DIR` and a repeated `--config`. What names
/// one agent's own files (`--agent`, `--state`, `--outbox`,
/// `--liveness-file`, `--process`) is refused: each agent's come from its name.
fn many_options(args: RunArgs) -> anyhow::Result<(ManyOptions, ProcessOptions)> {
    let process = process_options(&args);
    for (given, flag, instead) in [
        (
            args.agent.is_some(),
            "--agent (AGENT_NAME)",
            "each file's `agent`",
        ),
        (args.state.is_some(), "--state (STATE_PATH)", "--state-dir"),
        (
            args.bus.outbox.is_some(),
            "--outbox (OUTBOX_PATH)",
            "the outbox beside each state file",
        ),
        (
            args.liveness_file.is_some(),
            "--liveness-file (LIVENESS_FILE)",
            "--liveness-dir",
        ),
        (
            args.process.is_some(),
            "--process (BEAT_PROCESS)",
            "heartbeat-host.<agent>",
        ),
    ] {
        if given {
            anyhow::bail!("{flag} names one agent's own; with several agents use {instead}");
        }
    }
    if let Some(dir) = &args.agents
        && !dir.is_dir()
    {
        anyhow::bail!("--agents {}: not a directory", dir.display());
    }
    let max_runs = args
        .max_runs_per_agent
        .unwrap_or((args.max_runs_in_flight / 4).max(1));
    let defaults = AgentDefaults {
        tick_interval: args.tick_interval,
        bus: args.bus.defaults(),
        events_log: args.events_log,
        liveness_period: args.liveness_period,
        beat_period: args.beat_period,
        beat_warmup: args.beat_warmup,
        max_runs: Some(max_runs),
    };
    Ok((
        ManyOptions {
            layout: daemon::Layout {
                agents_dir: args.agents,
                configs: args.config,
                state_dir: args.state_dir,
            },
            handlers_dir: args.handlers,
            liveness_dir: args.liveness_dir,
            agents_per_connection: usize::try_from(args.agents_per_connection)
                .unwrap_or(crate::amqp::shared::AGENTS_PER_CONNECTION),
            defaults,
        },
        process,
    ))
}

/// What the process holds, one agent or many.
fn process_options(args: &RunArgs) -> ProcessOptions {
    ProcessOptions {
        max_handler_bytes: args.max_handler_bytes,
        max_runs_in_flight: args.max_runs_in_flight,
        metrics_addr: args.metrics_addr,
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; stopping gracefully (a second signal exits at once)"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; stopping gracefully (a second signal exits at once)"),
    }
    // A second signal while runs finish: exit at once.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("heartbeat-host: second signal, exiting at once");
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_results_key_prefix_is_a_short_key_prefix_not_a_pattern() {
        assert_eq!(parse_results_key_prefix("results."), Ok("results.".into()));
        assert_eq!(parse_results_key_prefix(""), Ok(String::new()));
        assert!(parse_results_key_prefix("results.#").is_err());
        assert!(parse_results_key_prefix("a b.").is_err());
        assert!(parse_results_key_prefix(&"x".repeat(129)).is_err());
    }
}
