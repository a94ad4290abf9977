//! `heartbeat-host completions SHELL` and `heartbeat-host man`: shell
//! completion scripts and a man page, generated from the same clap
//! definitions the parser uses, so they never drift from the flags.
//!
//! The man page's ENVIRONMENT section is built from the clap `env`
//! attributes plus [`PROCESS_ENVIRONMENT`] (the variables no flag takes);
//! FILES, EXIT STATUS and SIGNALS are written here, beside the commands
//! they describe. The tests below also hold `docs/*.md`'s flag tables to
//! the clap definitions: a flag without a row, a row without a flag, or a
//! row whose environment variable or default differs fails them.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use clap::CommandFactory as _;

/// `heartbeat-host completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Writes the completion script for the shell to stdout.
pub(super) fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "heartbeat-host", &mut out);
    if args.shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 escapes the `-` of `heartbeat-host` one way in
        // the names it assigns (`heartbeat__host__subcmd__run`) and another
        // in the `case` labels that test them (`heartbeat__subcmd__host__…`),
        // so no subcommand's flags completed. One spelling for both.
        let script =
            String::from_utf8_lossy(&out).replace("heartbeat__subcmd__host", "heartbeat__host");
        return print_all(script.as_bytes());
    }
    print_all(&out)
}

/// Writes `bytes` to stdout; a reader that stops early (`| head`) is not
/// an error.
fn print_all(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Writes the man page (roff, `heartbeat-host(1)`) to stdout, with one
/// section per subcommand after the top-level page.
pub(super) fn man() -> anyhow::Result<ExitCode> {
    print_all(&man_page()?)
}

/// The whole man page: the top-level page with ENVIRONMENT, FILES, EXIT
/// STATUS and SIGNALS, then a page per visible subcommand.
fn man_page() -> std::io::Result<Vec<u8>> {
    let command = super::Cli::command();
    let mut out = Vec::new();
    let page = clap_mangen::Man::new(command.clone());
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    page.render_subcommands_section(&mut out)?;
    out.extend_from_slice(operating_sections(&command).as_bytes());
    page.render_version_section(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        // `heartbeat-host-run(1)` and so on, as git names its pages.
        let title = format!("heartbeat-host-{}", sub.get_name());
        let sub = sub
            .clone()
            .bin_name(format!("heartbeat-host {}", sub.get_name()));
        clap_mangen::Man::new(sub).title(title).render(&mut out)?;
    }
    Ok(out)
}

/// Environment variables the host reads that no flag takes, with what
/// each does. A test holds this list to the sources: every variable read
/// by name under `host/src` is a flag's `env` or listed here.
const PROCESS_ENVIRONMENT: &[(&str, &str)] = &[
    (
        "LOG_LEVEL",
        "DEBUG, INFO (the default), WARNING or ERROR for the host's own logs; \
         dependencies stay at WARNING. A full tracing filter such as \
         info,wasmtime=debug works too.",
    ),
    (
        "LOG_FORMAT",
        "text (the default), or json: one JSON object a line, with an event \
         field naming the host's own events.",
    ),
    (
        "HEARTBEAT_CACHE_DIR",
        "The compiled-handler cache (run; invoke takes it as --cache-dir).",
    ),
    (
        "XDG_CACHE_HOME",
        "Without HEARTBEAT_CACHE_DIR, the cache is $XDG_CACHE_HOME/heartbeat-host.",
    ),
    (
        "HOME",
        "Without either, the cache is ~/.cache/heartbeat-host.",
    ),
    (
        "HOSTNAME",
        "The host name in the liveness file and the envelopes, when \
         /proc/sys/kernel/hostname cannot be read.",
    ),
    (
        "NOTIFY_SOCKET",
        "systemd's notification socket (a path, or @name): READY=1, STATUS=, \
         STOPPING=1 go there. Without it nothing is sent.",
    ),
    (
        "WATCHDOG_USEC",
        "systemd's watchdog period: WATCHDOG=1 is sent at half of it, from \
         the tick loop.",
    ),
    (
        "WATCHDOG_PID",
        "When set, the watchdog pings only if it names this process.",
    ),
];

/// The FILES section: what the host reads and writes, beside what.
const FILES: &[(&str, &str)] = &[
    (
        "heartbeat.json",
        "The agent's config (--config, HEARTBEAT_PATH). Read and watched, \
         never written.",
    ),
    (
        "<config stem>.state.json",
        "Beside the config (--state, STATE_PATH): each check's last run, \
         outcome, state and failures, and the pauses and run requests of \
         control messages.",
    ),
    (
        "<state stem>.kv/",
        "Beside the state file: one key-value store per check, CHECK.json.",
    ),
    (
        "<state stem>.outbox.jsonl",
        "Beside the state file (--outbox, OUTBOX_PATH): events waiting for \
         the broker; <state stem>.outbox.dead.jsonl holds those it can never \
         take.",
    ),
    (
        "HANDLERS_DIR/NAME.wasm",
        "Handler NAME (--handlers), watched: added, replaced and removed \
         files take effect without a restart.",
    ),
    (
        "$HEARTBEAT_CACHE_DIR",
        "Compiled handlers, keyed by the component's SHA-256 and the \
         engine; default $XDG_CACHE_HOME/heartbeat-host or \
         ~/.cache/heartbeat-host.",
    ),
    (
        "--liveness-file, --liveness-dir",
        "The liveness file (kstlib's format) that is-alive and status read.",
    ),
    (
        "--agents DIR",
        "One agent per *.json file; their state under DIR/state/ \
         (--state-dir) as <agent>.state.json.",
    ),
];

/// The EXIT STATUS section, one entry per subcommand (a test checks that
/// every visible subcommand has one).
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "any command",
        "2 for a usage error (an unknown flag, a missing or bad value); 0 for \
         --help and --version. With no subcommand and no HEARTBEAT_PATH: the \
         help, exit 2.",
    ),
    (
        "run",
        "0 after a graceful stop on SIGTERM or SIGINT; 2 when it cannot \
         start (a config that is missing or invalid at start-up, a refused \
         flag); 130 on a second signal during the stop.",
    ),
    (
        "explain",
        "0 once explained; 1 with --agents when a file serves no agent (the \
         others are still shown); 2 when the config, the state file or --at \
         is unusable, or --agent names no file.",
    ),
    (
        "check",
        "0 when the config is valid and every handler resolves (warnings \
         allowed); 1 otherwise (with --agents: unless every file is); 2 for \
         bad arguments, or --agent naming no file.",
    ),
    (
        "tick",
        "0 once every tick is confirmed by the broker; 2 when it cannot \
         connect or publish.",
    ),
    (
        "invoke",
        "0 for a success or skipped run; 1 for a failed one; 2 when the \
         handler could not be run at all.",
    ),
    (
        "new",
        "0 when the project is written; 2 when it is refused (a bad name, a \
         directory that is not empty).",
    ),
    (
        "is-alive",
        "0 when the liveness file is fresh; 1 when it is stale or missing; 2 \
         when it is unreadable.",
    ),
    (
        "status",
        "0 once shown; 2 when the file or endpoint is unreadable or not the \
         host's (with several agents: when any is, after showing the others).",
    ),
    ("completions", "0."),
    ("man", "0."),
];

/// The SIGNALS section: what the daemon does on each (`daemon/` and
/// `cli/run.rs`).
const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGHUP",
        "Read heartbeat.json and rescan the handler directory at once (and, \
         with --agents, the agent files), logged as a change the watchers \
         saw: event=sighup. ExecReload=/bin/kill -HUP $MAINPID.",
    ),
    (
        "SIGTERM, SIGINT",
        "Stop gracefully: stop consuming, let the runs in flight finish \
         (each bounded by its timeoutMs), publish what waits (at most 10 s; \
         the rest stays in the outbox), send the stop beat, write the \
         liveness file a last time, exit 0. STOPPING=1 goes to systemd.",
    ),
    ("a second SIGTERM or SIGINT", "Exit at once, status 130."),
];

/// The four sections after SUBCOMMANDS, in roff. A variable both a flag
/// and the process read (`HEARTBEAT_CACHE_DIR`) is one entry.
fn operating_sections(command: &clap::Command) -> String {
    let mut environment: Vec<(String, String)> = environment(command)
        .into_iter()
        .map(|(name, (flags, help))| (name, format!("{}: {help}", flags.join(", "))))
        .collect();
    for (name, what) in PROCESS_ENVIRONMENT {
        match environment.iter_mut().find(|(known, _)| known == name) {
            Some((_, text)) => text.push_str(&format!(" {what}")),
            None => environment.push(((*name).to_string(), (*what).to_string())),
        }
    }
    let mut out = String::new();
    for (title, items) in [
        ("ENVIRONMENT", environment),
        ("FILES", owned(FILES)),
        ("EXIT STATUS", owned(EXIT_STATUS)),
        ("SIGNALS", owned(SIGNALS)),
    ] {
        out.push_str(&format!(".SH \"{title}\"\n"));
        for (term, text) in items {
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                roff_escape(&term),
                roff_escape(&text)
            ));
        }
    }
    out
}

fn owned(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect()
}

/// Every `env` of every visible subcommand's flags: the variable, the
/// flags that take it (`run --config`), and the first flag's help.
fn environment(command: &clap::Command) -> BTreeMap<String, (Vec<String>, String)> {
    let mut found: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(env) = arg.get_env() else { continue };
            let flag = match arg.get_long() {
                Some(long) => format!("{} --{long}", sub.get_name()),
                None => format!("{} {}", sub.get_name(), arg.get_id()),
            };
            let entry = found
                .entry(env.to_string_lossy().into_owned())
                .or_insert_with(|| {
                    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                    (Vec::new(), help.replace('\n', " "))
                });
            entry.0.push(flag);
        }
    }
    found
}

/// Text for a roff line: backslashes and hyphens escaped, and a leading
/// `.` or `'` kept from being read as a request.
fn roff_escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests;
