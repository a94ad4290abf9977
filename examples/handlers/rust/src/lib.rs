//! backup_age: a heartbeat-host handler in Rust.
//!
//! Checks that the newest backup in a directory the check is granted is
//! recent enough. The check's config:
//!
//! ```json
//! "grants": {"dirs": {"/backups": {"path": "/var/backups/agent", "readOnly": true}}},
//! "meta": {"path": "/backups", "suffix": ".tar.gz", "maxAgeHours": 26}
//! ```
//!
//! Every run that finds a backup emits `agent.<agent>.backup_age` with the
//! newest file, its age and whether it is stale. Outcome: `success` when it
//! is younger than `maxAgeHours`; `failed` when it is older or when there
//! is no backup at all; an error (a failed run with the reason) when `meta`
//! is unusable or the directory cannot be read, e.g. because it was not
//! granted.

use std::time::UNIX_EPOCH;

use handler_sdk::{Check, Handler, Outcome, Status, Tick};
use serde_json::{Value, json};

/// What the check's `meta` asks for.
struct Settings {
    path: String,
    suffix: String,
    max_age_ms: u64,
}

fn settings(meta: &str) -> Result<Settings, String> {
    let meta: Value = serde_json::from_str(meta).map_err(|e| format!("meta is not JSON: {e}"))?;
    let text = |key: &str, default: &str| -> Result<String, String> {
        match meta.get(key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("meta.{key} must be a string, not {other}")),
        }
    };
    let max_age_hours = match meta.get("maxAgeHours") {
        None => 26.0,
        Some(v) => v
            .as_f64()
            .filter(|h| *h > 0.0)
            .ok_or_else(|| format!("meta.maxAgeHours must be a positive number, not {v}"))?,
    };
    Ok(Settings {
        path: text("path", "/backups")?,
        suffix: text("suffix", "")?,
        max_age_ms: (max_age_hours * 3_600_000.0) as u64,
    })
}

/// The newest regular file whose name ends with `suffix`: (name, mtime ms, files seen).
fn newest(settings: &Settings) -> Result<Option<(String, u64)>, String> {
    let entries = std::fs::read_dir(&settings.path).map_err(|e| {
        format!(
            "cannot read directory {}: {e} (is it granted to this check?)",
            settings.path
        )
    })?;
    let mut best: Option<(String, u64)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", settings.path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(&settings.suffix) {
            continue;
        }
        let metadata = entry
            .metadata()
            .map_err(|e| format!("{}/{name}: {e}", settings.path))?;
        if !metadata.is_file() {
            continue;
        }
        let modified = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if best.as_ref().is_none_or(|(_, t)| modified > *t) {
            best = Some((name, modified));
        }
    }
    Ok(best)
}

fn hours(ms: u64) -> f64 {
    (ms as f64 / 36_000.0).round() / 100.0
}

struct BackupAge;

impl Handler for BackupAge {
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        let settings = settings(&check.meta)?;
        let Some((name, modified)) = newest(&settings)? else {
            let details = json!({
                "path": settings.path,
                "error": format!("no backup ending in {:?} in {}", settings.suffix, settings.path),
            });
            return Ok(Outcome::with_details(Status::Failed, details.to_string()));
        };
        let age_ms = tick.time_ms.saturating_sub(modified);
        let stale = age_ms > settings.max_age_ms;
        let mut details = json!({
            "path": settings.path,
            "newest": name,
            "ageHours": hours(age_ms),
            "maxAgeHours": hours(settings.max_age_ms),
            "stale": stale,
        });
        // Fails (with the host's reason) when the check may not emit this type.
        handler_sdk::emit(
            &format!("agent.{}.backup_age", tick.agent),
            &details.to_string(),
        )?;
        if !stale {
            return Ok(Outcome::with_details(Status::Success, details.to_string()));
        }
        handler_sdk::log::warn(&format!(
            "newest backup {name} is {} h old (max {} h)",
            hours(age_ms),
            hours(settings.max_age_ms)
        ));
        details["error"] = json!(format!("newest backup is {} h old", hours(age_ms)));
        Ok(Outcome::with_details(Status::Failed, details.to_string()))
    }
}

handler_sdk::export_handler!(BackupAge);
