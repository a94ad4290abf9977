//! `heartbeat-host status`: the host's health and its table of watched
//! sub-processes, read from the liveness file a running host writes
//! (`metadata.processes`, as of the file's `timestamp`), or from a live
//! host's `/status`. A host serving several agents has one liveness file
//! per agent in its `--liveness-dir` and lists them all in `/status`;
//! `--agent` picks one. Rendering is pure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::observe::status::{AgentStatus, StatusReply};

/// Why the status cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a heartbeat-host liveness file.
    #[error("{path} is not a heartbeat-host liveness file: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HostStatus {
    /// When the file was written (ISO 8601).
    pub timestamp: String,
    /// The host's pid.
    pub pid: u32,
    /// The host's metadata.
    pub metadata: Metadata,
}

/// The host's part of the liveness file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Metadata {
    /// The agent.
    pub agent: String,
    /// `healthy`, `degraded` or `stopped`.
    pub status: String,
    /// Why degraded.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The watched sub-processes.
    #[serde(default)]
    pub processes: Vec<ProcessRow>,
}

/// One watched process, as written by the host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRow {
    /// The process name.
    pub name: String,
    /// Its status when the file was written.
    pub status: String,
    /// Its last message.
    pub last_message: String,
    /// When that arrived (ms since the epoch).
    pub last_seen_ms: u64,
    /// When the next is due (ms since the epoch).
    pub expected_by_ms: Option<u64>,
}

/// Reads the liveness file at `path`.
pub fn read(path: &Path) -> Result<HostStatus, StatusError> {
    let shown = path.display().to_string();
    let text = crate::store::read::read_regular_text(
        path,
        crate::store::read::MAX_LIVENESS_BYTES,
        "liveness file",
    )
    .map_err(|source| StatusError::Read {
        path: shown.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| StatusError::Invalid {
        path: shown,
        reason: e.to_string(),
    })
}

/// The status as text: a line for the host, then the process table.
pub fn render(status: &HostStatus) -> String {
    let m = &status.metadata;
    let mut out = format!(
        "agent {} (pid {}): {} as of {}\n",
        m.agent, status.pid, m.status, status.timestamp
    );
    for reason in &m.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    if m.processes.is_empty() {
        out.push_str("\nno watched processes have beaten yet\n");
        return out;
    }
    let rows: Vec<[String; 5]> = m
        .processes
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.status.clone(),
                p.last_message.clone(),
                heartbeat_core::time::iso_utc(p.last_seen_ms),
                p.expected_by_ms
                    .map_or_else(|| "-".to_string(), heartbeat_core::time::iso_utc),
            ]
        })
        .collect();
    let header = [
        "PROCESS",
        "STATUS",
        "LAST MESSAGE",
        "LAST SEEN",
        "EXPECTED BY",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    out.push('\n');
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The host's liveness file (--liveness-file of `run`).
    #[arg(required_unless_present_any = ["url", "liveness_dir"])]
    pub file: Option<PathBuf>,
    /// A live host's endpoint (--metrics-addr of `run`), e.g.
    /// http://127.0.0.1:9464: its checks, runs in flight, recent runs (of
    /// every agent, one after the other, for a host serving several).
    #[arg(long, conflicts_with_all = ["file", "liveness_dir"])]
    pub url: Option<String>,
    /// A host's --liveness-dir (several agents): every agent's
    /// `<agent>.json` there, one after the other.
    #[arg(long, value_name = "DIR", conflicts_with = "file")]
    pub liveness_dir: Option<PathBuf>,
    /// One agent of a host serving several: `/status?agent=NAME` with
    /// --url, `<DIR>/NAME.json` with --liveness-dir.
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    pub agent: Option<String>,
}

/// Prints the status; exit 2 when the file or endpoint is unreadable or
/// not the host's (with several agents: when any of them is, after
/// showing the others). Which health is shown does not change the exit
/// code, as for one agent (`is-alive` probes a liveness file's freshness).
pub(super) fn execute(args: &StatusArgs) -> std::process::ExitCode {
    let shown = match (&args.url, &args.liveness_dir, &args.file) {
        (Some(url), _, _) => show_live(url, args.agent.as_deref()),
        (None, Some(dir), _) => show_liveness_dir(dir, args.agent.as_deref()),
        (None, None, Some(file)) => read(file)
            .map(|status| print!("{}", render(&status)))
            .map_err(|e| e.to_string()),
        (None, None, None) => Err("status: FILE, --url URL or --liveness-dir DIR".into()),
    };
    match shown {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heartbeat-host: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `status --url`: one agent's status as before, every agent's of a
/// host serving several, or `agent`'s alone (`/status?agent=NAME`).
fn show_live(url: &str, agent: Option<&str>) -> Result<(), String> {
    let status = fetch_status(url, agent).map_err(|e| format!("{url}: {e}"))?;
    if let Some(name) = agent {
        // A host from before several agents ignores the query.
        let answered = match &status {
            StatusReply::Agent(one) if one.agent == name => None,
            StatusReply::Agent(one) => Some(format!("{:?}", one.agent)),
            StatusReply::Host(_) => Some("every agent's status".to_string()),
        };
        if let Some(answered) = answered {
            return Err(format!(
                "{url}: asked for agent {name:?}, the host answered with {answered}"
            ));
        }
    }
    print!("{}", render_live_any(&status));
    Ok(())
}

/// A host's `/status` as text, whichever host answered: one agent's
/// as [`render_live`] shows it; a host serving several as each agent's,
/// a blank line between.
pub fn render_live_any(status: &StatusReply) -> String {
    let host = match status {
        StatusReply::Agent(one) => return render_live(one),
        StatusReply::Host(host) => host,
    };
    if host.agents.is_empty() {
        return format!("heartbeat-host: serving no agents at {}\n", host.at);
    }
    host.agents
        .iter()
        .map(render_live)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `status --liveness-dir DIR`: `<DIR>/<agent>.json` of `agent`, or every
/// liveness file there (by name), a blank line between; those that
/// cannot be read are said on stderr after, and make it an error.
fn show_liveness_dir(dir: &Path, agent: Option<&str>) -> Result<(), String> {
    if let Some(name) = agent {
        heartbeat_core::agents::check_name(name).map_err(|why| format!("--agent: {why}"))?;
        let status = read(&dir.join(format!("{name}.json"))).map_err(|e| e.to_string())?;
        print!("{}", render(&status));
        return Ok(());
    }
    let files = crate::daemon::fleet::json_files(dir)
        .map_err(|e| format!("--liveness-dir {}: cannot list it: {e}", dir.display()))?;
    if files.is_empty() {
        return Err(format!(
            "--liveness-dir {}: no liveness files (*.json) there yet",
            dir.display()
        ));
    }
    let (read, failed): (Vec<_>, Vec<_>) = files.iter().map(|f| read(f)).partition(Result::is_ok);
    let shown: Vec<String> = read.into_iter().flatten().map(|s| render(&s)).collect();
    print!("{}", shown.join("\n"));
    let failed: Vec<String> = failed
        .into_iter()
        .filter_map(Result::err)
        .map(|e| e.to_string())
        .collect();
    match failed.len() {
        0 => Ok(()),
        1 => Err(failed.join("")),
        _ => Err(failed.join("\nheartbeat-host: ")),
    }
}

/// `GET /status` (`/status?agent=NAME` for `agent`) from a host's
/// endpoint (`http://HOST:PORT`), over plain HTTP/1.1 with a 10 s bound
/// on each step: the host's status.
fn fetch_status(url: &str, agent: Option<&str>) -> Result<StatusReply, String> {
    use std::io::{Read as _, Write as _};
    let authority = url
        .strip_prefix("http://")
        .ok_or("expected an http:// URL (the host serves plain HTTP)")?
        .trim_end_matches('/');
    let path = match agent {
        None => "/status".to_string(),
        Some(name) => format!(
            "/status?agent={}",
            url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        ),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    let bound = std::time::Duration::from_secs(10);
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, bound).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(bound))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(bound))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP response")?;
    if let Some(name) = agent
        && head.starts_with("HTTP/1.1 404")
    {
        return Err(format!("the host serves no agent {name:?} (404 on {path})"));
    }
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    serde_json::from_str(body).map_err(|e| format!("not a heartbeat-host /status: {e}"))
}

/// A live host's `/status`, for people: health, then a line per check,
/// then the last runs.
pub fn render_live(status: &AgentStatus) -> String {
    let mut out = format!(
        "heartbeat-host for {}: {} at {}\n",
        status.agent, status.health.status, status.at
    );
    for reason in &status.health.reasons {
        let _ = writeln!(out, "  reason: {reason}");
    }
    let _ = writeln!(
        out,
        "{:<20} {:<22} {:<12} {:<16} {:<10} WHY",
        "CHECK", "HANDLER", "STATUS", "STATE", "LAST"
    );
    for check in &status.checks {
        let outcome = check.last_status.as_deref().unwrap_or_default();
        let last = match check.last_error.as_deref().unwrap_or_default() {
            "" => outcome.to_string(),
            error => format!("{outcome}: {error}"),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<22} {:<12} {:<16} {:<10} {}",
            check.name, check.handler, check.status, check.state_text, last, check.reason
        );
    }
    if !status.recent_runs.is_empty() {
        let _ = writeln!(out, "recent runs (newest first):");
        for run in status.recent_runs.iter().take(10) {
            let _ = writeln!(
                out,
                "  {} {} {} {:.3}ms {}",
                run.at,
                run.check,
                run.status,
                run.duration_ms,
                run.error.as_deref().unwrap_or_default()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_host_line_and_the_table() {
        let status: HostStatus = serde_json::from_str(
            r#"{"timestamp": "2026-01-01T00:00:00+00:00", "pid": 7, "hostname": "h",
                "metadata": {"agent": "cack", "status": "degraded", "reasons": ["x"],
                  "processes": [{"name": "cack.worker", "status": "alive", "lastMessage": "beat/5",
                                 "lastSeenMs": 0, "expectedByMs": 7500},
                                {"name": "db", "status": "stopped", "lastMessage": "stop",
                                 "lastSeenMs": 0, "expectedByMs": null}]}}"#,
        )
        .expect("status");
        let text = render(&status);
        assert!(
            text.starts_with(
                "agent cack (pid 7): degraded as of 2026-01-01T00:00:00+00:00\n  - x\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("PROCESS      STATUS   LAST MESSAGE  LAST SEEN"),
            "{text}"
        );
        assert!(text.contains("cack.worker  alive    beat/5"), "{text}");
        assert!(
            text.lines().last().is_some_and(|l| l.ends_with("  -")),
            "{text}"
        );
    }

    #[test]
    fn a_file_without_the_hosts_metadata_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kstlib.json");
        std::fs::write(
            &path,
            r#"{"timestamp": "t", "pid": 1, "hostname": "h", "metadata": {}}"#,
        )
        .expect("write");
        assert!(matches!(read(&path), Err(StatusError::Invalid { .. })));
    }

    fn live(agent: &str) -> AgentStatus {
        serde_json::from_value(serde_json::json!({
            "agent": agent, "at": "2026-01-01T00:00:00Z",
            "health": {"status": "healthy", "reasons": []},
            "checks": [{"name": "ping", "handler": "default", "status": "waiting"}],
            "recentRuns": []
        }))
        .expect("an agent's /status")
    }

    /// `/status` as the host with `json` would answer it.
    fn reply(json: serde_json::Value) -> StatusReply {
        serde_json::from_value(json).expect("a /status reply")
    }

    #[test]
    fn a_many_agent_status_shows_each_agent_as_one_would_be_shown() {
        let agents = [live("a"), live("b")];
        let many = reply(serde_json::json!({"at": "2026-01-01T00:00:00Z", "agents": agents}));
        let text = render_live_any(&many);
        assert_eq!(
            text,
            format!("{}\n{}", render_live(&live("a")), render_live(&live("b")))
        );
        assert!(
            text.starts_with("heartbeat-host for a: healthy at 2026-01-01T00:00:00Z\n"),
            "{text}"
        );
        assert!(text.contains("\n\nheartbeat-host for b: healthy"), "{text}");
        // One agent's object is shown as before.
        let one = reply(serde_json::to_value(live("a")).expect("json"));
        assert_eq!(render_live_any(&one), render_live(&live("a")));
        let none = reply(serde_json::json!({"at": "2026-01-01T00:00:00Z", "agents": []}));
        assert_eq!(
            render_live_any(&none),
            "heartbeat-host: serving no agents at 2026-01-01T00:00:00Z\n"
        );
    }

    #[test]
    fn a_liveness_dir_lists_its_json_files_by_name_and_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.json", "a.json", ".a.json.tmp.7", "notes.txt"] {
            std::fs::write(dir.path().join(name), "{}").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub.json")).expect("dir");
        assert_eq!(
            crate::daemon::fleet::json_files(dir.path()).expect("listed"),
            [dir.path().join("a.json"), dir.path().join("b.json")]
        );
    }

    #[test]
    fn an_agent_name_that_is_a_path_is_refused_before_any_file_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = show_liveness_dir(dir.path(), Some("../etc/x")).expect_err("refused");
        assert!(err.starts_with("--agent: "), "{err}");
        let err = show_liveness_dir(dir.path(), None).expect_err("empty");
        assert!(err.contains("no liveness files"), "{err}");
    }
}
