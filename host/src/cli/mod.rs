//! The `heartbeat-host` command line, one file per subcommand, named as
//! the command: each parses its own flags and hands over to the library.
//! This is the binary's edge: errors become `anyhow` here, and exit codes.

mod agent_files;
mod check;
mod docs;
mod explain;
mod invoke;
mod is_alive;
mod lints;
mod logging;
mod new;
mod run;
mod status;
mod tick;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Keeps an agent's periodic checks running as sandboxed WebAssembly handlers.
///
/// With no subcommand and `HEARTBEAT_PATH` set, runs the host (`run`), as
/// heartbeat-consumer's unit file (`ExecStart=` with no arguments) expects.
#[derive(Parser)]
#[command(name = "heartbeat-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// `run`'s flags alone, for the bare start: all of them from the environment.
#[derive(Parser)]
#[command(name = "heartbeat-host")]
struct RunFromEnvironment {
    #[command(flatten)]
    args: run::RunArgs,
}

/// Each usage line is written out: clap's own lists the options that came
/// from the environment too (`--cache-dir <CACHE_DIR>` with
/// `HEARTBEAT_CACHE_DIR` set), as if they were required. `--config` and
/// `--amqp-url` may come from `HEARTBEAT_PATH` and `RABBIT_URL` instead.
#[derive(Subcommand)]
enum Command {
    /// Run the host: take ticks, run due checks, record outcomes.
    #[command(
        override_usage = "heartbeat-host run [OPTIONS] --config <CONFIG>... | --agents <DIR>"
    )]
    Run(run::RunArgs),
    /// Show what would run at an instant, and why (the host's own selection).
    #[command(
        override_usage = "heartbeat-host explain [OPTIONS] --config <CONFIG> | --agents <DIR>"
    )]
    Explain(explain::ExplainArgs),
    /// Validate a heartbeat.json and resolve its handlers; exit 0 only when valid.
    #[command(override_usage = "heartbeat-host check [OPTIONS] --config <CONFIG> | --agents <DIR>")]
    Check(check::CheckArgs),
    /// Publish heartbeat tick(s) in heartbeat-consumer's envelope.
    #[command(override_usage = "heartbeat-host tick [OPTIONS] --amqp-url <AMQP_URL>")]
    Tick(tick::TickArgs),
    /// Run one handler once under the host's sandbox and print what it did as JSON.
    #[command(override_usage = "heartbeat-host invoke [OPTIONS] <HANDLER>")]
    Invoke(invoke::InvokeArgs),
    /// Create a handler project (Rust, Python, JavaScript or C) that builds and passes `invoke`.
    #[command(override_usage = "heartbeat-host new [OPTIONS] --lang <LANG> <NAME>")]
    New(new::NewArgs),
    /// Probe a liveness file: exit 0 when fresh, 1 when stale or missing, 2 when unreadable.
    #[command(override_usage = "heartbeat-host is-alive [OPTIONS] <FILE>")]
    IsAlive(is_alive::IsAliveArgs),
    /// Show a running host's health and its watched sub-processes, from its --liveness-file.
    #[command(
        override_usage = "heartbeat-host status <FILE> | --url <URL> [--agent <NAME>] | --liveness-dir <DIR> [--agent <NAME>]"
    )]
    Status(status::StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(override_usage = "heartbeat-host completions <SHELL>")]
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff): `heartbeat-host man | man -l -`.
    #[command(override_usage = "heartbeat-host man")]
    Man,
}

/// Parses the command line, sets up logging and runs the subcommand; an
/// error that reaches here is printed and exits 2.
pub fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Some(command) => command,
        // heartbeat-consumer's unit file starts it bare, configured by the
        // environment alone.
        None if std::env::var_os("HEARTBEAT_PATH").is_some_and(|p| !p.is_empty()) => {
            Command::Run(RunFromEnvironment::parse_from(["heartbeat-host"]).args)
        }
        None => {
            let help = <Cli as clap::CommandFactory>::command().render_help();
            eprintln!("{help}");
            return ExitCode::from(2);
        }
    };
    logging::init();
    let result = match command {
        Command::Run(args) => run::execute(args),
        Command::Explain(args) => explain::execute(args),
        Command::Check(args) => check::execute(args),
        Command::Tick(args) => tick::execute(&args),
        Command::Invoke(args) => invoke::execute(args),
        Command::New(args) => new::execute(args),
        Command::IsAlive(args) => Ok(is_alive::execute(&args)),
        Command::Status(args) => Ok(status::execute(&args)),
        Command::Completions(args) => docs::completions(&args),
        Command::Man => docs::man(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("heartbeat-host: {e:#}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 500ms, 10s, 1m)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}
