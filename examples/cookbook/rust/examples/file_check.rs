//! file_check: the most common handler. Reads its settings from meta, reads
//! a file in a granted directory, logs with fields, and when something is
//! wrong emits an event and returns `failed` (it never panics).
//!
//! ```json
//! "meta": {"file": "/data/status.txt", "mustContain": "OK"},
//! "grants": {"dirs": {"/data": {"path": "data", "readOnly": true}}}
//! ```

use handler_sdk::{Check, Handler, Outcome, Status, Tick, log};
use serde_json::{Value, json};

struct FileCheck;

impl Handler for FileCheck {
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: Value = serde_json::from_str(&check.meta).map_err(|e| e.to_string())?;
        let file = meta["file"]
            .as_str()
            .ok_or("meta.file must be a path in a granted directory")?; // a failed run, this reason
        let needle = meta["mustContain"].as_str().unwrap_or("");
        // Not granted, missing, unreadable: an ordinary io::Error.
        let (text, problem) = match std::fs::read_to_string(file) {
            Ok(text) if text.contains(needle) => (text, None),
            Ok(text) => (text, Some(format!("{file} does not contain {needle:?}"))),
            Err(e) => (String::new(), Some(format!("cannot read {file}: {e}"))),
        };
        let level = if problem.is_some() {
            log::LogLevel::Warn
        } else {
            log::LogLevel::Info
        };
        log::write(
            level,
            "file checked",
            &[("file", file), ("bytes", &text.len().to_string())],
        );
        if let Some(problem) = problem {
            let payload = json!({"file": file, "problem": problem});
            handler_sdk::emit(
                &format!("agent.{}.file_check", tick.agent),
                &payload.to_string(),
            )?;
            let details = json!({"file": file, "error": problem});
            return Ok(Outcome::with_details(Status::Failed, details.to_string()));
        }
        let details = json!({"file": file, "bytes": text.len()});
        Ok(Outcome::with_details(Status::Success, details.to_string()))
    }
}

handler_sdk::export_handler!(FileCheck);
