//! The built-in `file_freshness` handler.
//!
//! Lists the granted directory `meta.dir` (no recursion), keeps the regular
//! files whose names match `meta.glob`, and fails when there are fewer than
//! `minCount`, when the newest is older than `maxAge` at the tick's time, or
//! when it is smaller than `minBytes`. The rule and the `meta` are
//! `heartbeat_core::builtins::file_freshness`, the code `heartbeat-host
//! check` validates the `meta` with; the directory is reached only through
//! the check's `grants.dirs`, like any handler's.

use std::path::Path;
use std::time::UNIX_EPOCH;

use handler_sdk::log::LogLevel;
use handler_sdk::{Check, Handler, Outcome, Status, Tick};
use heartbeat_core::builtins::file_freshness::{self, Entry, Meta};

/// The handler.
pub struct FileFreshness;

impl Handler for FileFreshness {
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta = heartbeat_core::builtins::parse_text(&check.meta, Meta::parse)?;
        let files = match list(&meta.dir) {
            Ok(files) => files,
            Err(error) => {
                handler_sdk::log::write(LogLevel::Warn, &error, &[("dir", &meta.dir)]);
                let details = file_freshness::dir_failure(&meta, &error);
                return Ok(Outcome::with_details(Status::Failed, details.to_string()));
            }
        };
        let verdict = file_freshness::judge(&meta, &files, tick.time_ms);
        let details = verdict.details(&meta);
        let status = match &verdict.failure {
            None => Status::Success,
            Some(_) => Status::Failed,
        };
        let count = verdict.count.to_string();
        let newest = verdict
            .newest
            .as_ref()
            .map_or("(none)", |e| e.name.as_str());
        handler_sdk::log::write(
            if verdict.failure.is_some() {
                LogLevel::Warn
            } else {
                LogLevel::Info
            },
            verdict
                .failure
                .as_ref()
                .map_or("files are fresh", |(_, error)| error.as_str()),
            &[("dir", &meta.dir), ("count", &count), ("newest", newest)],
        );
        Ok(Outcome::with_details(status, details.to_string()))
    }
}

/// Every regular file directly in `dir` (symbolic links followed), or why
/// the directory cannot be listed, in words.
fn list(dir: &str) -> Result<Vec<Entry>, String> {
    if let Some(refused) = handler_sdk::dirs::refusal(dir) {
        return Err(format!("directory {refused}"));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("directory {dir} does not exist"),
        std::io::ErrorKind::NotADirectory => format!("{dir} is not a directory"),
        _ => format!("cannot list directory {dir}: {e}"),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list directory {dir}: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A file removed while the directory is listed is not there.
        let Ok(metadata) = std::fs::metadata(Path::new(dir).join(&name)) else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let modified_ms = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        files.push(Entry {
            name,
            modified_ms,
            bytes: metadata.len(),
        });
    }
    Ok(files)
}

handler_sdk::export_handler!(FileFreshness);
