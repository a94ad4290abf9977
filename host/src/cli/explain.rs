//! `heartbeat-host explain`: what would run at an instant, and why, from
//! the host's own selection (the model and its rendering are
//! `heartbeat_core::explain`).

use std::path::PathBuf;

use std::process::ExitCode;

use heartbeat_core::explain;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The agent's heartbeat.json.
    #[arg(long, env = "HEARTBEAT_PATH")]
    pub config: PathBuf,
    /// The state file (default: `<config stem>.state.json` beside the config).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The instant to explain, RFC 3339 (default: now), e.g. 2026-01-01T09:30:00Z.
    #[arg(long, value_parser = explain::parse_at)]
    pub at: Option<u64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `explain`: exit 0 once explained; errors (invalid config, unreadable
/// state) go to `main`, which exits 2.
pub(super) fn execute(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::store::load_config(&args.config)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let state_path = args
        .state
        .unwrap_or_else(|| crate::store::state::default_path(&args.config));
    let state = crate::store::state::load(&state_path)?;
    let at_ms = args.at.unwrap_or_else(crate::source::now_ms);
    let explanation = explain::explain(&loaded.config, &state, at_ms);
    if args.json {
        let json = explain::to_json(&explanation);
        println!("{}", serde_json::to_string(&json)?);
    } else {
        print!("{}", explain::render_table(&explanation));
    }
    Ok(ExitCode::SUCCESS)
}
