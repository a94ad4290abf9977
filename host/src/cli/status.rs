//! `heartbeat-host status`: the host's health and its table of watched
//! sub-processes, read from the liveness file a running host writes
//! (`metadata.processes`, as of the file's `timestamp`). Rendering is pure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    #[arg(required_unless_present = "url")]
    pub file: Option<PathBuf>,
    /// A live host's endpoint (--metrics-addr of `run`), e.g.
    /// http://127.0.0.1:9464: its checks, runs in flight, recent runs.
    #[arg(long, conflicts_with = "file")]
    pub url: Option<String>,
}

/// Prints the status; exit 2 when the file or endpoint is unreadable or not the host's.
pub(super) fn execute(args: &StatusArgs) -> std::process::ExitCode {
    let file = match (&args.url, &args.file) {
        (Some(url), _) => {
            return match fetch_status(url) {
                Ok(status) => {
                    print!("{}", render_live(&status));
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("heartbeat-host: {url}: {e}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        (None, Some(file)) => file,
        (None, None) => return std::process::ExitCode::from(2),
    };
    match read(file) {
        Ok(status) => {
            print!("{}", render(&status));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("heartbeat-host: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `GET /status` from a host's endpoint (`http://HOST:PORT`), over plain
/// HTTP/1.1 with a 10 s bound on each step: the host's JSON.
fn fetch_status(url: &str) -> Result<serde_json::Value, String> {
    use std::io::{Read as _, Write as _};
    let authority = url
        .strip_prefix("http://")
        .ok_or("expected an http:// URL (the host serves plain HTTP)")?
        .trim_end_matches('/');
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
        "GET /status HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    serde_json::from_str(body).map_err(|e| format!("not a heartbeat-host /status: {e}"))
}

/// A live host's `/status`, for people: health, then a line per check,
/// then the last runs.
pub fn render_live(status: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut out = format!(
        "heartbeat-host for {}: {} at {}\n",
        s(&status["agent"]),
        s(&status["health"]["status"]),
        s(&status["at"])
    );
    for reason in status["health"]["reasons"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  reason: {}", s(reason));
    }
    let _ = writeln!(
        out,
        "{:<20} {:<22} {:<12} {:<16} {:<10} WHY",
        "CHECK", "HANDLER", "STATUS", "STATE", "LAST"
    );
    for check in status["checks"].as_array().into_iter().flatten() {
        let last = match (s(&check["lastStatus"]), s(&check["lastError"])) {
            (st, err) if err.is_empty() => st,
            (st, err) => format!("{st}: {err}"),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<22} {:<12} {:<16} {:<10} {}",
            s(&check["name"]),
            s(&check["handler"]),
            s(&check["status"]),
            s(&check["stateText"]),
            last,
            s(&check["reason"])
        );
    }
    let runs = status["recentRuns"].as_array().cloned().unwrap_or_default();
    if !runs.is_empty() {
        let _ = writeln!(out, "recent runs (newest first):");
        for run in runs.iter().take(10) {
            let _ = writeln!(
                out,
                "  {} {} {} {:.3}ms {}",
                s(&run["at"]),
                s(&run["check"]),
                s(&run["status"]),
                run["durationMs"].as_f64().unwrap_or(0.0),
                s(&run["error"])
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
}
