//! `heartbeat-host check`: is this config ready to run?
//!
//! Validates `heartbeat.json` (the same parser the host runs with) and
//! resolves every handler its checks name, as the host would: a `NAME.wasm`
//! in the handler directory first, then the built-ins. Handler files that
//! are used are also compiled, so that a file that is not a handler
//! component is caught here rather than on its first run. The resolution
//! itself ([`resolve_handlers`]) is pure; [`check`] does the I/O.
//!
//! `check --agents DIR` checks every agent file of a directory the same
//! way, plus what serving them side by side needs: each names its `agent`,
//! and no two name the same one (`cli/agent_files.rs`, which `explain
//! --agents` reads the directory through too). What a config grants too
//! little (or too much) for its handlers is `cli/lints.rs`.

use std::path::{Path, PathBuf};

use super::agent_files::{agent_files, select};
use super::lints::{ungranted_compactions, ungranted_imports, unusable_dir_grants};
use crate::daemon::Layout;
use crate::runtime::registry::{self, HandlerSource};
use heartbeat_core::config::{ConfigWarning, HeartbeatConfig};

/// One handler name the config uses, and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerUse {
    /// The handler name.
    pub handler: String,
    /// The checks naming it, in file order.
    pub checks: Vec<String>,
    /// What it resolves to; `None` when nothing provides it.
    pub source: Option<HandlerSource>,
}

/// Resolves each handler the config names, in order of first use, the way
/// the host's registry does: a file of the directory overrides a built-in.
pub fn resolve_handlers(
    config: &HeartbeatConfig,
    builtins: &[&str],
    files: &[PathBuf],
) -> Vec<HandlerUse> {
    let mut uses: Vec<HandlerUse> = Vec::new();
    for check in &config.checks {
        if let Some(known) = uses.iter_mut().find(|u| u.handler == check.handler) {
            known.checks.push(check.name.clone());
            continue;
        }
        let source = registry::source_of(&check.handler, builtins, files);
        uses.push(HandlerUse {
            handler: check.handler.clone(),
            checks: vec![check.name.clone()],
            source,
        });
    }
    uses
}

/// The outcome of `check`.
#[derive(Debug)]
pub struct CheckReport {
    /// The config file.
    pub config_path: PathBuf,
    /// The parsed config, when it is valid.
    pub config: Option<HeartbeatConfig>,
    /// Warnings: the config is still valid.
    pub warnings: Vec<ConfigWarning>,
    /// What makes the config unusable, one line each.
    pub errors: Vec<String>,
    /// The handlers the config uses and where they come from.
    pub handlers: Vec<HandlerUse>,
}

impl CheckReport {
    /// Whether the config is valid and every handler resolves (and loads).
    pub fn is_ok(&self) -> bool {
        self.config.is_some() && self.errors.is_empty()
    }

    /// The report for people: warnings and errors, the handlers, then a
    /// one-line verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for warning in &self.warnings {
            out.push_str(&format!("warning: {warning}\n"));
        }
        for error in &self.errors {
            out.push_str(&format!("error: {error}\n"));
        }
        for used in &self.handlers {
            let source = match &used.source {
                Some(HandlerSource::BuiltIn) => "built-in".to_string(),
                Some(HandlerSource::File(path)) => path.display().to_string(),
                None => "NOT FOUND".to_string(),
            };
            out.push_str(&format!(
                "handler {}: {source} (used by {})\n",
                used.handler,
                used.checks.join(", ")
            ));
        }
        if let Some(config) = &self.config {
            for check in &config.checks {
                if let Some(line) = grants_line(&check.grants) {
                    out.push_str(&format!("grants of {}: {line}\n", check.name));
                }
            }
        }
        let counts = format!(
            "{} error{}, {} warning{}",
            self.errors.len(),
            plural(self.errors.len()),
            self.warnings.len(),
            plural(self.warnings.len())
        );
        match (&self.config, self.is_ok()) {
            (Some(config), true) => out.push_str(&format!(
                "{}: valid: {} check{}, maxPerTick {}, {counts}\n",
                self.config_path.display(),
                config.checks.len(),
                plural(config.checks.len()),
                config.max_per_tick
            )),
            _ => out.push_str(&format!(
                "{}: NOT valid: {counts}\n",
                self.config_path.display()
            )),
        }
        out
    }
}

/// What a check is granted, in one line (names and paths only: a secret's
/// value is never read here); `None` when nothing is granted.
fn grants_line(grants: &heartbeat_core::config::Grants) -> Option<String> {
    let mut parts = Vec::new();
    for dir in &grants.dirs {
        parts.push(format!(
            "dir {} = {} ({})",
            dir.guest_path,
            dir.host_path.display(),
            if dir.read_only {
                "read-only"
            } else {
                "read-write"
            }
        ));
    }
    if !grants.emit.is_empty() {
        parts.push(format!("emit {}", grants.emit.join(", ")));
    }
    for env in &grants.env {
        parts.push(if env.guest == env.host {
            format!("env {}", env.guest)
        } else {
            format!("env {} = ${}", env.guest, env.host)
        });
    }
    if !grants.net.is_empty() {
        let peers: Vec<String> = grants.net.iter().map(ToString::to_string).collect();
        parts.push(format!("net {}", peers.join(", ")));
    }
    for http in &grants.http {
        parts.push(match &http.ca_file {
            Some(ca) => format!("http {} (CA {})", http.origin, ca.display()),
            None => format!("http {}", http.origin),
        });
    }
    for secret in &grants.secrets {
        parts.push(format!(
            "secret {} from {}",
            secret.name,
            secret.file.display()
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Validates the config at `config_path` and resolves its handlers against
/// the built-ins and the `*.wasm` files of `handlers_dir`. When `runtime` is
/// given, the handler files that are used are compiled with it.
pub fn check(
    config_path: &Path,
    handlers_dir: Option<&Path>,
    runtime: Option<&crate::runtime::Runtime>,
) -> CheckReport {
    let mut report = CheckReport {
        config_path: config_path.to_path_buf(),
        config: None,
        warnings: Vec::new(),
        errors: Vec::new(),
        handlers: Vec::new(),
    };
    let (text, loaded) = match crate::store::load_config_text(config_path) {
        Ok(read) => read,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    report.warnings = loaded.warnings;
    report
        .warnings
        .extend(ungranted_compactions(&loaded.config));
    report.errors.extend(unusable_dir_grants(
        &loaded.config,
        crate::store::dir_of(config_path),
    ));
    let files = match handlers_dir {
        None => Vec::new(),
        Some(dir) => match registry::handler_files(dir) {
            Ok(files) => files,
            Err(e) => {
                report
                    .errors
                    .push(format!("handler directory {}: {e}", dir.display()));
                Vec::new()
            }
        },
    };
    let builtins: Vec<&str> = registry::builtin_names().collect();
    report.handlers = resolve_handlers(&loaded.config, &builtins, &files);
    // A built-in's `meta` is validated by the same code the built-in runs;
    // a file that overrides the built-in reads its `meta` its own way.
    let served_by_builtin = |handler: &str| {
        report
            .handlers
            .iter()
            .any(|u| u.handler == handler && u.source == Some(HandlerSource::BuiltIn))
    };
    if let Err(e) = heartbeat_core::config::validate_builtin_meta(
        &text,
        &config_path.display().to_string(),
        &loaded.config,
        served_by_builtin,
    ) {
        report.errors.push(e.to_string());
    }
    for used in &report.handlers {
        match &used.source {
            None => report.errors.push(format!(
                "check{} {}: {}",
                plural(used.checks.len()),
                used.checks.join(", "),
                registry::NotFound::new(&used.handler, handlers_dir)
            )),
            Some(source) => {
                let Some(runtime) = runtime else { continue };
                let component = match source {
                    HandlerSource::File(path) => registry::load_file(runtime, path),
                    HandlerSource::BuiltIn => {
                        match registry::load_builtin(runtime, &used.handler) {
                            Some(loaded) => loaded,
                            None => continue,
                        }
                    }
                };
                match component {
                    Ok(handler) => report.warnings.extend(ungranted_imports(
                        &handler,
                        &loaded.config,
                        &used.checks,
                    )),
                    Err(e) => report.errors.push(format!("handler {}: {e}", used.handler)),
                }
            }
        }
    }
    report.config = Some(loaded.config);
    report
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The agent's heartbeat.json.
    #[arg(
        long,
        env = "HEARTBEAT_PATH",
        required_unless_present = "agents",
        conflicts_with = "agents"
    )]
    pub config: Option<PathBuf>,
    /// Check every agent file of a directory as `run --agents DIR` would
    /// serve it: each `*.json` there is one agent, its `agent` required and
    /// named by no other file.
    #[arg(long, value_name = "DIR")]
    pub agents: Option<PathBuf>,
    /// With --agents: check only the file naming this agent.
    #[arg(long, value_name = "NAME", requires = "agents")]
    pub agent: Option<String>,
    /// A directory of handler components (`NAME.wasm` provides handler NAME);
    /// with --agents, for the files that name no `handlersDir` of their own.
    #[arg(long, env = "HANDLERS_DIR")]
    pub handlers: Option<PathBuf>,
}

/// `check`: exit 0 when the config is valid and its handlers resolve, 1
/// otherwise; with --agents, 0 only when every agent file is.
pub(super) fn execute(args: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = match (&args.agents, &args.config) {
        (Some(dir), _) => return check_agents(&args, dir),
        (None, Some(config)) => config,
        (None, None) => anyhow::bail!("check: --config FILE or --agents DIR"),
    };
    // clap waives `requires = "agents"` once --config (which conflicts
    // with --agents) is given.
    if args.agent.is_some() {
        anyhow::bail!("--agent is for --agents DIR: one --config is one agent already");
    }
    // Handler files are compiled too, when there is a directory of them.
    let runtime = runtime_if(args.handlers.is_some());
    let report = check(config, args.handlers.as_deref(), runtime.as_ref());
    print!("{}", report.render());
    Ok(exit_code(report.is_ok()))
}

fn exit_code(ok: bool) -> std::process::ExitCode {
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

/// The runtime handler files are compiled with, when `needed` (there is a
/// handler directory); `None`, said on stderr, when it cannot start.
fn runtime_if(needed: bool) -> Option<crate::runtime::Runtime> {
    if !needed {
        return None;
    }
    match crate::runtime::Runtime::new(&crate::runtime::RuntimeOptions::default()) {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("warning: handler files are not compiled: {e:#}");
            None
        }
    }
}

/// `check --agents DIR`: each file's report as `check --config` gives it
/// (blank line between), then a line counting the valid ones.
fn check_agents(args: &CheckArgs, dir: &Path) -> anyhow::Result<std::process::ExitCode> {
    let layout = Layout {
        agents_dir: Some(dir.to_path_buf()),
        ..Layout::default()
    };
    let files = agent_files(&layout)?;
    if files.is_empty() {
        println!("{}: no agent files (*.json) there", dir.display());
        return Ok(exit_code(false));
    }
    let picked = select(&files, args.agent.as_deref(), dir)?;
    let handler_dirs: Vec<Option<PathBuf>> = picked
        .iter()
        .map(|f| f.handlers_dir(args.handlers.as_deref()))
        .collect();
    let runtime = runtime_if(handler_dirs.iter().any(Option::is_some));
    let mut valid = 0;
    for (i, (file, handlers)) in picked.iter().zip(&handler_dirs).enumerate() {
        let mut report = check(&file.file, handlers.as_deref(), runtime.as_ref());
        // A config that does not parse says so already.
        if report.config.is_some()
            && let Some(problem) = file.problem()
        {
            report.errors.insert(0, problem);
        }
        if report.is_ok() {
            valid += 1;
        }
        if i > 0 {
            println!();
        }
        print!("{}", report.render());
    }
    println!(
        "{}: {valid} of {} agent file{} valid",
        dir.display(),
        picked.len(),
        plural(picked.len())
    );
    Ok(exit_code(valid == picked.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> HeartbeatConfig {
        heartbeat_core::config::parse(json, "test.json")
            .expect("valid")
            .config
    }

    #[test]
    fn files_override_builtins_and_unknown_names_are_missing() {
        let c = config(
            r#"{"checks": {
            "a": {"handler": "default"},
            "b": {"handler": "disk"},
            "c": {},
            "d": {"handler": "ghost"},
            "e": {"handler": "sub_health"}}}"#,
        );
        let files = [
            PathBuf::from("/h/disk.wasm"),
            PathBuf::from("/h/sub_health.wasm"),
            PathBuf::from("/h/notes.txt"),
        ];
        let uses = resolve_handlers(&c, &["default", "sub_health"], &files);
        let summary: Vec<(&str, Vec<&str>, Option<HandlerSource>)> = uses
            .iter()
            .map(|u| {
                (
                    u.handler.as_str(),
                    u.checks.iter().map(String::as_str).collect(),
                    u.source.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("default", vec!["a", "c"], Some(HandlerSource::BuiltIn)),
                (
                    "disk",
                    vec!["b"],
                    Some(HandlerSource::File("/h/disk.wasm".into()))
                ),
                ("ghost", vec!["d"], None),
                (
                    "sub_health",
                    vec!["e"],
                    Some(HandlerSource::File("/h/sub_health.wasm".into()))
                ),
            ]
        );
    }

    #[test]
    fn a_missing_handler_makes_the_report_fail_and_says_where_it_looked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("heartbeat.json");
        std::fs::write(
            &path,
            r#"{"checks": {"a": {"handler": "ghost"}, "b": {"handler": "ghost"}}}"#,
        )
        .expect("write");
        let report = check(&path, Some(dir.path()), None);
        assert!(!report.is_ok());
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(
            report.errors[0].starts_with("checks a, b: handler \"ghost\" not found")
                && report.errors[0].contains("no ghost.wasm in"),
            "{}",
            report.errors[0]
        );
        assert!(
            report
                .render()
                .ends_with(": NOT valid: 1 error, 0 warnings\n")
        );
    }

    #[test]
    fn an_invalid_config_is_one_error_with_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("heartbeat.json");
        std::fs::write(&path, "{\"maxPerTick\": 0}").expect("write");
        let report = check(&path, None, None);
        assert!(!report.is_ok());
        assert!(
            report.errors[0]
                .ends_with("heartbeat.json:1:16: maxPerTick: expected a positive integer, found 0"),
            "{:?}",
            report.errors
        );
    }

    #[test]
    fn warnings_alone_leave_the_config_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("heartbeat.json");
        std::fs::write(
            &path,
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "17:00"}}}}"#,
        )
        .expect("write");
        let report = check(&path, None, None);
        assert!(report.is_ok(), "{:?}", report.errors);
        let text = report.render();
        assert!(
            text.contains(
                "warning: checks.a.window.tz: missing; the window is read in America/New_York"
            ),
            "{text}"
        );
        assert!(
            text.contains("handler default: built-in (used by a)"),
            "{text}"
        );
        assert!(
            text.ends_with("valid: 1 check, maxPerTick 1, 0 errors, 1 warning\n"),
            "{text}"
        );
    }

    #[test]
    fn a_compaction_without_a_grant_for_its_dir_is_warned_about() {
        let c = heartbeat_core::config::parse(
            r#"{"checks": {
                "bare": {"handler": "quarterly_compaction"},
                "granted": {"handler": "quarterly_compaction", "grants": {"dirs": {"/data": {"path": "/tmp"}}}},
                "elsewhere": {"handler": "quarterly_compaction", "meta": {"dir": "/mem/x"}, "grants": {"dirs": {"/mem": {"path": "/tmp"}}}},
                "other": {"handler": "default"}}}"#,
            "test.json",
        )
        .expect("valid")
        .config;
        let warned: Vec<_> = ungranted_compactions(&c)
            .into_iter()
            .map(|w| w.path)
            .collect();
        assert_eq!(warned, ["checks.bare.grants.dirs"]);
    }

    #[test]
    fn a_dir_grant_that_is_missing_or_a_file_fails_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("mem")).expect("mkdir");
        std::fs::write(dir.path().join("file"), "x").expect("file");
        let config = dir.path().join("heartbeat.json");
        std::fs::write(
            &config,
            r#"{"checks": {"a": {"grants": {"dirs": {
                "/ok": {"path": "mem"}, "/gone": {"path": "nope"}, "/file": {"path": "file"}}}}}}"#,
        )
        .expect("config");
        let report = check(&config, None, None);
        let shown = |p: &str| dir.path().join(p).display().to_string();
        assert_eq!(
            report.errors,
            [
                format!(
                    "checks.a.grants.dirs./gone.path: {} does not exist",
                    shown("nope")
                ),
                format!(
                    "checks.a.grants.dirs./file.path: {} is not a directory",
                    shown("file")
                ),
            ]
        );
        assert!(!report.is_ok());
    }

    #[test]
    fn check_prints_each_checks_grants_and_never_a_secrets_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("mem")).expect("mkdir");
        std::fs::write(dir.path().join("db"), "hunter2").expect("secret");
        let config = dir.path().join("heartbeat.json");
        std::fs::write(
            &config,
            r#"{"checks": {"a": {"grants": {
                "dirs": {"/data": {"path": "mem", "readOnly": true}}, "emit": ["alerts.#"],
                "env": {"TOKEN": "API_TOKEN"}, "secrets": {"DB": {"file": "db"}},
                "net": ["10.0.0.0/8:*", "[::1]:80"]}},
              "b": {}}}"#,
        )
        .expect("config");
        let text = check(&config, None, None).render();
        assert!(
            text.contains(
                "grants of a: dir /data = mem (read-only); emit alerts.#; env TOKEN = $API_TOKEN; net 10.0.0.0/8:*, [::1]:80; secret DB from db\n"
            ),
            "{text}"
        );
        assert!(!text.contains("grants of b"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
