//! `heartbeat-host explain`: what would run at an instant, and why, from
//! the host's own selection (the model and its rendering are
//! `heartbeat_core::explain`). With `--agents DIR`, for every agent of the
//! directory (or `--agent`'s alone), each with the state file `run
//! --agents` gives it.

use std::path::{Path, PathBuf};

use std::process::ExitCode;

use heartbeat_core::explain;

use super::agent_files::{AgentFile, agent_files, naming_file, select};
use crate::daemon::Layout;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The agent's heartbeat.json.
    #[arg(
        long,
        env = "HEARTBEAT_PATH",
        required_unless_present = "agents",
        conflicts_with = "agents"
    )]
    pub config: Option<PathBuf>,
    /// The state file (default: `<config stem>.state.json` beside the config).
    #[arg(long, conflicts_with = "agents")]
    pub state: Option<PathBuf>,
    /// Explain every agent of a directory, as `run --agents DIR` serves
    /// them: each `*.json` there is one agent, headed `agent NAME (FILE)`.
    #[arg(long, value_name = "DIR")]
    pub agents: Option<PathBuf>,
    /// With --agents: where the agents' state files are
    /// (`<agent>.state.json`; default DIR/state), as `run --state-dir`.
    #[arg(long, value_name = "DIR", requires = "agents")]
    pub state_dir: Option<PathBuf>,
    /// With --agents: explain only this agent (the file whose `agent` it is).
    #[arg(long, value_name = "NAME", requires = "agents")]
    pub agent: Option<String>,
    /// The instant to explain, RFC 3339 (default: now), e.g. 2026-01-01T09:30:00Z.
    #[arg(long, value_parser = explain::parse_at)]
    pub at: Option<u64>,
    /// Print one JSON object instead of a table (with --agents, an array of
    /// them, each with its `agent` and `file`; one object with --agent).
    #[arg(long)]
    pub json: bool,
}

/// `explain`: exit 0 once explained; errors (invalid config, unreadable
/// state) go to `main`, which exits 2. With `--agents`, see [`explain_agents`].
pub(super) fn execute(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let at_ms = args.at.unwrap_or_else(crate::source::now_ms);
    let config = match (&args.agents, &args.config) {
        (Some(dir), _) => return explain_agents(&args, dir, at_ms),
        (None, Some(config)) => config,
        (None, None) => anyhow::bail!("explain: --config FILE or --agents DIR"),
    };
    // clap waives `requires = "agents"` once --config (which conflicts
    // with --agents) is given.
    for (given, flag) in [
        (args.agent.is_some(), "--agent"),
        (args.state_dir.is_some(), "--state-dir"),
    ] {
        if given {
            anyhow::bail!("{flag} is for --agents DIR; one --config takes --state");
        }
    }
    let loaded = crate::store::load_config(config)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| crate::store::state::default_path(config));
    let state = crate::store::state::load(&state_path)?;
    let explanation = explain::explain(&loaded.config, &state, at_ms);
    if args.json {
        let json = explain::to_json(&explanation);
        println!("{}", serde_json::to_string(&json)?);
    } else {
        print!("{}", explain::render_table(&explanation));
    }
    Ok(ExitCode::SUCCESS)
}

/// One agent of the directory, explained.
struct Explained {
    agent: String,
    file: PathBuf,
    explanation: explain::Explanation,
}

/// Reads the config and the state of the agent `agent` served from
/// `file`; the config's warnings go to stderr, naming the file.
fn explain_file(
    layout: &Layout,
    file: &Path,
    agent: &str,
    at_ms: u64,
) -> anyhow::Result<Explained> {
    let loaded = crate::store::load_config(file)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {}: {warning}", file.display());
    }
    let state = crate::store::state::load(&layout.state_path(file, agent))?;
    Ok(Explained {
        agent: agent.to_string(),
        file: file.to_path_buf(),
        explanation: explain::explain(&loaded.config, &state, at_ms),
    })
}

/// The `--json` object of one agent: `agent` and `file`, then the
/// single-agent object's fields.
fn agent_json(explained: &Explained) -> anyhow::Result<serde_json::Value> {
    let mut object = serde_json::Map::new();
    object.insert("agent".into(), explained.agent.clone().into());
    object.insert("file".into(), explained.file.display().to_string().into());
    match serde_json::to_value(explain::to_json(&explained.explanation))? {
        serde_json::Value::Object(fields) => object.extend(fields),
        other => anyhow::bail!("the explanation is not a JSON object: {other}"),
    }
    Ok(serde_json::Value::Object(object))
}

/// The heading line and the table of one agent.
fn agent_table(explained: &Explained) -> String {
    format!(
        "agent {} ({})\n{}",
        explained.agent,
        explained.file.display(),
        explain::render_table(&explained.explanation)
    )
}

/// `explain --agents DIR`: every agent the directory serves (tables one
/// after the other, a blank line between; or a JSON array), or `--agent`'s
/// alone. A file that serves no agent (it names none, or one an earlier
/// file names) is reported on stderr and the rest still shown: exit 1 if
/// there was one. With --agent, that agent's config or state being
/// unusable is an error (exit 2), as for `--config`.
fn explain_agents(args: &ExplainArgs, dir: &Path, at_ms: u64) -> anyhow::Result<ExitCode> {
    let layout = Layout {
        agents_dir: Some(dir.to_path_buf()),
        configs: Vec::new(),
        state_dir: args.state_dir.clone(),
    };
    let files = agent_files(&layout)?;
    if files.is_empty() {
        eprintln!(
            "heartbeat-host: --agents {}: no agent files (*.json) there",
            dir.display()
        );
    }
    let picked: Vec<&AgentFile> = select(&files, args.agent.as_deref(), dir)?;
    let mut broken = false;
    let mut shown = Vec::new();
    for file in picked {
        if let Some(line) = file.problem_line() {
            eprintln!("error: {line}; not explained");
            broken = true;
            continue;
        }
        let Some(agent) = file.agent() else { continue };
        match explain_file(&layout, &file.file, agent, at_ms) {
            Ok(explained) => shown.push(explained),
            // The one agent asked for: as `--config`'s errors.
            Err(e) if args.agent.is_some() => return Err(e),
            Err(e) => {
                eprintln!(
                    "error: {}; not explained",
                    naming_file(&file.file, &format!("{e:#}"))
                );
                broken = true;
            }
        }
    }
    if args.json {
        let mut objects = shown
            .iter()
            .map(agent_json)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let json = match (&args.agent, objects.len()) {
            (Some(_), 1) => objects.remove(0),
            _ => serde_json::Value::Array(objects),
        };
        println!("{}", serde_json::to_string(&json)?);
    } else {
        let tables: Vec<String> = shown.iter().map(agent_table).collect();
        print!("{}", tables.join("\n"));
    }
    Ok(if broken {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExplainArgs,
    }

    fn explained() -> Explained {
        let config = heartbeat_core::config::parse(
            r#"{"agent": "b", "checks": {"ping": {"cadenceMs": 60000}}}"#,
            "b.json",
        )
        .expect("valid")
        .config;
        Explained {
            agent: "b".into(),
            file: PathBuf::from("agents/b.json"),
            explanation: explain::explain(&config, &Default::default(), 1_767_225_600_000),
        }
    }

    #[test]
    fn an_agents_json_is_its_name_and_file_then_the_single_agent_object() {
        let one = explained();
        let json = agent_json(&one).expect("json");
        let keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["agent", "file", "at", "selected", "checks"]);
        assert_eq!(json["agent"], "b");
        assert_eq!(json["file"], "agents/b.json");
        let single = serde_json::to_value(explain::to_json(&one.explanation)).expect("value");
        assert_eq!(json["checks"], single["checks"]);
    }

    #[test]
    fn an_agents_table_is_headed_by_its_name_and_file() {
        let one = explained();
        let table = agent_table(&one);
        assert_eq!(
            table,
            format!(
                "agent b (agents/b.json)\n{}",
                explain::render_table(&one.explanation)
            )
        );
    }

    #[test]
    fn agents_conflicts_with_state_and_agent_needs_a_directory() {
        assert!(Cli::try_parse_from(["x", "--agents", "d", "--state", "s"]).is_err());
        assert!(Cli::try_parse_from(["x", "--agents", "d", "--config", "c"]).is_err());
        let parsed =
            Cli::try_parse_from(["x", "--agents", "d", "--agent", "a", "--state-dir", "s"])
                .expect("parsed");
        assert_eq!(parsed.args.agent.as_deref(), Some("a"));
        // --config waives clap's `requires`; execute refuses it instead.
        let given = Cli::try_parse_from(["x", "--config", "c", "--agent", "a"]).expect("parsed");
        let refused = execute(given.args).expect_err("refused");
        assert!(
            refused
                .to_string()
                .starts_with("--agent is for --agents DIR"),
            "{refused}"
        );
    }
}
