//! The `heartbeat-host` command line: parses arguments, sets up logging,
//! and hands over to the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use heartbeat_host::daemon::{self, HostOptions};
use heartbeat_host::state;

/// Keeps an agent's periodic checks running as sandboxed WebAssembly handlers.
#[derive(Parser)]
#[command(name = "heartbeat-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: take ticks, run due checks, record outcomes.
    Run(RunArgs),
    /// Show what would run at an instant, and why (the host's own selection).
    Explain(ExplainArgs),
    /// Validate a heartbeat.json and resolve its handlers; exit 0 only when valid.
    Check(CheckArgs),
    /// Publish heartbeat tick(s) in heartbeat-consumer's envelope.
    Tick(heartbeat_host::amqp::cli::TickArgs),
    /// Run one handler once under the host's sandbox and print what it did as JSON.
    Invoke(InvokeArgs),
    /// Create a handler project (Rust, Python, JavaScript or C) that builds and passes `invoke`.
    New(NewArgs),
    /// Probe a liveness file: exit 0 when fresh, 1 when stale or missing, 2 when unreadable.
    IsAlive(IsAliveArgs),
    /// Show a running host's health and its watched sub-processes, from its --liveness-file.
    Status(StatusArgs),
}

#[derive(clap::Args)]
struct StatusArgs {
    /// The host's liveness file (--liveness-file of `run`).
    file: PathBuf,
}

#[derive(clap::Args)]
struct IsAliveArgs {
    /// The liveness file (heartbeat-host's --liveness-file, or kstlib's state file).
    file: PathBuf,
    /// The oldest beat, in seconds, that still counts as alive.
    #[arg(long, default_value_t = 30.0)]
    max_age: f64,
}

#[derive(clap::Args)]
struct NewArgs {
    /// The handler's name: its component will be NAME.wasm (a-z, 0-9, _).
    name: String,
    /// The language: rust, python, js or c.
    #[arg(long)]
    lang: heartbeat_host::scaffold::Language,
    /// The project directory to create (default: ./NAME); must be empty or absent.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct InvokeArgs {
    /// A handler name (built-in or NAME.wasm in --handlers) or a path to a .wasm file.
    handler: String,
    /// A heartbeat.json to take the check's meta, limits and grants from.
    #[arg(long, requires = "check")]
    config: Option<PathBuf>,
    /// The check of --config to run as.
    #[arg(long, requires = "config")]
    check: Option<String>,
    /// The check's `meta` for this run, a JSON object.
    #[arg(long)]
    meta: Option<String>,
    /// A directory of handler components.
    #[arg(long, env = "HANDLERS_DIR")]
    handlers: Option<PathBuf>,
    /// The agent name (default: the config's `agent`, else `local`).
    #[arg(long, env = "AGENT_NAME")]
    agent: Option<String>,
    /// Where compiled handlers are cached.
    #[arg(long, env = "HEARTBEAT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The agent's heartbeat.json.
    #[arg(long, env = "HEARTBEAT_PATH")]
    config: PathBuf,
    /// The agent's name (defaults to the config's `agent`).
    #[arg(long, env = "AGENT_NAME")]
    agent: Option<String>,
    /// A directory of handler components (`NAME.wasm` provides handler NAME).
    #[arg(long, env = "HANDLERS_DIR")]
    handlers: Option<PathBuf>,
    /// Period of the host's own timer, e.g. `500ms`, `10s`, `1m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    tick_interval: Duration,
    /// The state file (default: `<config stem>.state.json` beside the config).
    #[arg(long)]
    state: Option<PathBuf>,
    #[command(flatten)]
    bus: heartbeat_host::amqp::cli::BusArgs,
    /// Without a broker: append the events handlers emit to this JSON-lines file.
    #[arg(long, env = "EVENTS_LOG")]
    events_log: Option<PathBuf>,
    /// Write a liveness file (kstlib's format) here every --liveness-period; probe it with `is-alive`.
    #[arg(long, env = "LIVENESS_FILE")]
    liveness_file: Option<PathBuf>,
    /// How often the liveness file is written.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    liveness_period: Duration,
    /// With a broker: the process name of the host's own beats, published on
    /// `heartbeat.<process>` (default `heartbeat-host.<agent>`).
    #[arg(long)]
    process: Option<String>,
    /// With a broker: time between the host's beats (at least 1s).
    #[arg(long, default_value = "10s", value_parser = parse_beat_period)]
    beat_period: Duration,
    /// With a broker: the warm-up announced by the host's `start` beat.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    beat_warmup: Duration,
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// The agent's heartbeat.json.
    #[arg(long, env = "HEARTBEAT_PATH")]
    config: PathBuf,
    /// The state file (default: `<config stem>.state.json` beside the config).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The instant to explain, RFC 3339 (default: now), e.g. 2026-01-01T09:30:00Z.
    #[arg(long, value_parser = heartbeat_host::explain::parse_at)]
    at: Option<u64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The agent's heartbeat.json.
    #[arg(long, env = "HEARTBEAT_PATH")]
    config: PathBuf,
    /// A directory of handler components (`NAME.wasm` provides handler NAME).
    #[arg(long, env = "HANDLERS_DIR")]
    handlers: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 500ms, 10s, 1m)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn parse_beat_period(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < heartbeat_host::beats::MIN_PERIOD {
        return Err("must be at least 1s (at most one beat per second)".into());
    }
    Ok(d)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("heartbeat-host: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let agent = match args.agent {
                Some(agent) => agent,
                None => heartbeat_host::config::load(&args.config)?
                    .config
                    .agent
                    .context("no agent name: pass --agent, set AGENT_NAME, or give `agent` in the config")?,
            };
            let state_path = args
                .state
                .unwrap_or_else(|| state::default_path(&args.config));
            let beats = heartbeat_host::beats::BeatOptions {
                process: args
                    .process
                    .unwrap_or_else(|| heartbeat_host::beats::default_process(&agent)),
                period: args.beat_period,
                warmup: args.beat_warmup,
            };
            let options = HostOptions {
                beats,
                bus: args.bus.options(&state_path),
                state_path,
                config_path: args.config,
                agent,
                handlers_dir: args.handlers,
                tick_interval: args.tick_interval,
                events_log: args.events_log,
                liveness_file: args.liveness_file,
                liveness_period: args.liveness_period,
            };
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(daemon::run(options, shutdown_signal()))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Explain(args) => explain(args),
        Command::Check(args) => check(args),
        Command::IsAlive(args) => {
            let probe = heartbeat_host::liveness::probe(
                &args.file,
                args.max_age,
                heartbeat_host::tick::now_ms(),
            );
            println!("{}", probe.describe(&args.file, args.max_age));
            Ok(std::process::ExitCode::from(probe.exit_code()))
        }
        Command::Status(args) => match heartbeat_host::status::read(&args.file) {
            Ok(status) => {
                print!("{}", heartbeat_host::status::render(&status));
                Ok(std::process::ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("heartbeat-host: {e}");
                Ok(std::process::ExitCode::from(2))
            }
        },
        Command::Invoke(args) => {
            let options = heartbeat_host::invoke::InvokeOptions {
                handler: args.handler,
                config: args.config,
                check: args.check,
                meta: args.meta,
                handlers_dir: args.handlers,
                agent: args.agent,
                cache_dir: args
                    .cache_dir
                    .or_else(heartbeat_host::runtime::CompileCache::default_dir),
            };
            let invocation = heartbeat_host::invoke::invoke(&options)?;
            println!("{}", serde_json::to_string_pretty(&invocation)?);
            Ok(
                if invocation.report.status == heartbeat_host::state::RunStatus::Failed {
                    std::process::ExitCode::from(1)
                } else {
                    std::process::ExitCode::SUCCESS
                },
            )
        }
        Command::New(args) => {
            let project =
                heartbeat_host::scaffold::create(&heartbeat_host::scaffold::NewProject {
                    name: args.name,
                    language: args.lang,
                    dir: args.dir,
                })?;
            println!(
                "created {} handler `{}` in {}\n\ncd {}\n{}",
                project.language,
                project.name,
                project.dir.display(),
                project.dir.display(),
                project.next_steps()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Tick(args) => {
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(heartbeat_host::amqp::cli::run_tick(&args))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// `explain`: exit 0 once explained; errors (invalid config, unreadable
/// state) go to `main`, which exits 2.
fn explain(args: ExplainArgs) -> anyhow::Result<std::process::ExitCode> {
    let loaded = heartbeat_host::config::load(&args.config)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let state_path = args
        .state
        .unwrap_or_else(|| state::default_path(&args.config));
    let state = state::load(&state_path)?;
    let at_ms = args.at.unwrap_or_else(heartbeat_host::tick::now_ms);
    let explanation = heartbeat_host::explain::explain(&loaded.config, &state, at_ms);
    if args.json {
        let json = heartbeat_host::explain::to_json(&explanation);
        println!("{}", serde_json::to_string(&json)?);
    } else {
        print!("{}", heartbeat_host::explain::render_table(&explanation));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `check`: exit 0 when the config is valid and its handlers resolve, 1 otherwise.
fn check(args: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    // Handler files are compiled too, when there is a directory of them.
    let runtime = match &args.handlers {
        None => None,
        Some(_) => {
            match heartbeat_host::runtime::Runtime::new(
                &heartbeat_host::runtime::RuntimeOptions::default(),
            ) {
                Ok(runtime) => Some(runtime),
                Err(e) => {
                    eprintln!("warning: handler files are not compiled: {e:#}");
                    None
                }
            }
        }
    };
    let report =
        heartbeat_host::preflight::check(&args.config, args.handlers.as_deref(), runtime.as_ref());
    print!("{}", report.render());
    Ok(if report.is_ok() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
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

/// Logs to stderr at `LOG_LEVEL` (heartbeat-consumer's Python names work:
/// DEBUG, INFO, WARNING, ERROR, CRITICAL), or a full `tracing` filter.
fn init_logging() {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "INFO".into());
    let directive = match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace".to_string(),
        "DEBUG" => "debug".to_string(),
        "INFO" => "info".to_string(),
        "WARNING" | "WARN" => "warn".to_string(),
        "ERROR" | "CRITICAL" | "FATAL" => "error".to_string(),
        _ => level,
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directive).unwrap_or_else(|e| {
        eprintln!(
            "heartbeat-host: LOG_LEVEL={directive:?} is not a level or filter ({e}); using INFO"
        );
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
