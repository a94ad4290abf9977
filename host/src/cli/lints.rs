//! What `heartbeat-host check` warns about beyond validity: grants that
//! leave a handler's imports unusable, directory grants whose host path is
//! not a directory, compactions with nothing granted to compact.

use std::path::Path;

use heartbeat_core::config::{ConfigWarning, HeartbeatConfig};

/// Warnings for the capabilities `handler` imports that a check using it
/// is not granted: its requests (`wasi:http`) or connections
/// (`wasi:sockets`) will be refused at run time. An import is a fact about
/// the component, not proof that its code connects: componentize-py's and
/// componentize-js's runtimes import `wasi:sockets` whatever the script
/// does, so the socket warning then says only what a connection would meet.
pub(super) fn ungranted_imports(
    handler: &crate::runtime::LoadedHandler,
    config: &HeartbeatConfig,
    checks: &[String],
) -> Vec<ConfigWarning> {
    let imports = &handler.imports;
    let http = imports.iter().any(|i| i == "wasi:http/outgoing-handler");
    let sockets = imports
        .iter()
        .any(|i| i == "wasi:sockets/tcp-create-socket" || i == "wasi:sockets/udp-create-socket");
    let mut warnings = Vec::new();
    for check in config.checks.iter().filter(|c| checks.contains(&c.name)) {
        if http && check.grants.http.is_empty() {
            warnings.push(ConfigWarning {
                path: format!("checks.{}.grants.http", check.name),
                message: format!(
                    "handler {} imports wasi:http but this check grants no origin: any request it makes will be refused (grant one, e.g. \"http\": [\"https://api.example.com\"])",
                    handler.name
                ),
            });
        }
        if sockets && check.grants.net.is_empty() {
            warnings.push(ConfigWarning {
                path: format!("checks.{}.grants.net", check.name),
                message: format!(
                    "handler {} imports wasi:sockets but this check grants no peer: any connection it makes will be refused (grant one, e.g. \"net\": [\"db.internal:5432\"])",
                    handler.name
                ),
            });
        }
    }
    warnings
}

/// Directory grants whose host path is missing or not a directory: each
/// run of the check would fail before the handler starts, and `run` and a
/// reload refuse the file (one rule: `heartbeat_core::config::dir_grants`).
pub(super) fn unusable_dir_grants(config: &HeartbeatConfig, config_dir: &Path) -> Vec<String> {
    heartbeat_core::config::dir_grants::unusable(config, config_dir, crate::store::path_kind)
        .into_iter()
        .map(|(field, problem)| format!("{field}: {problem}"))
        .collect()
}

/// `quarterly_compaction` checks whose `meta.dir` (default `/data`) no
/// directory grant covers: each run will be `skipped`, nothing compacted.
pub(super) fn ungranted_compactions(config: &HeartbeatConfig) -> Vec<ConfigWarning> {
    config
        .checks
        .iter()
        .filter(|check| check.handler == "quarterly_compaction")
        .filter_map(|check| {
            let dir = check
                .meta
                .get("dir")
                .and_then(|d| d.as_str())
                .unwrap_or("/data");
            let granted = check.grants.dirs.iter().any(|g| {
                dir == g.guest_path || dir.starts_with(&format!("{}/", g.guest_path.trim_end_matches('/')))
            });
            (!granted).then(|| ConfigWarning {
                path: format!("checks.{}.grants.dirs", check.name),
                message: format!(
                    "no directory granted at {dir}: quarterly_compaction will skip every run with nothing to compact"
                ),
            })
        })
        .collect()
}
