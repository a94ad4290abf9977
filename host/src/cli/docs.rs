//! `heartbeat-host completions SHELL` and `heartbeat-host man`: shell
//! completion scripts and a man page, generated from the same clap
//! definitions the parser uses, so they never drift from the flags.

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
    let command = super::Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        // `heartbeat-host-run(1)` and so on, as git names its pages.
        let title = format!("heartbeat-host-{}", sub.get_name());
        let sub = sub
            .clone()
            .bin_name(format!("heartbeat-host {}", sub.get_name()));
        clap_mangen::Man::new(sub).title(title).render(&mut out)?;
    }
    print_all(&out)
}
