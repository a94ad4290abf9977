//! `heartbeat-host is-alive`: the liveness probe for systemd, Docker or
//! Kubernetes, on the host's `--liveness-file` or any file in kstlib's
//! format (the rule is `crate::store::liveness::probe`).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct IsAliveArgs {
    /// The liveness file (heartbeat-host's --liveness-file, or kstlib's state file).
    pub file: PathBuf,
    /// The oldest beat, in seconds, that still counts as alive.
    #[arg(long, default_value_t = 30.0)]
    pub max_age: f64,
}

/// Probes the file: 0 fresh, 1 stale or missing, 2 unreadable.
pub(super) fn execute(args: &IsAliveArgs) -> ExitCode {
    let probe = crate::store::liveness::probe(&args.file, args.max_age, crate::source::now_ms());
    println!("{}", probe.describe(&args.file, args.max_age));
    ExitCode::from(probe.exit_code())
}
