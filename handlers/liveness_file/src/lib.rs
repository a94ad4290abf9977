//! The built-in `liveness_file` handler.
//!
//! Reads a liveness file in kstlib's format (`{"timestamp", "pid",
//! "hostname", "metadata"}`, also the host's own `--liveness-file`) from a
//! granted directory and fails when its beat is older than `meta.maxAge`
//! (default 30 s) at the tick's time, when it is missing, or when it is not
//! a liveness file. The rule is the one `heartbeat-host is-alive` applies
//! (`heartbeat_core::builtins::liveness_file`).

use std::io::Read;

use handler_sdk::log::LogLevel;
use handler_sdk::{Check, Handler, Outcome, Status, Tick};
use heartbeat_core::builtins::liveness_file::{self, Failed, MAX_FILE_BYTES, Meta};

/// The handler.
pub struct LivenessFile;

impl Handler for LivenessFile {
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta = heartbeat_core::builtins::parse_text(&check.meta, Meta::parse)?;
        let (status, details) = match read(&meta.path) {
            Err((failed, error)) => (
                Status::Failed,
                liveness_file::failure(&meta, failed, &error),
            ),
            Ok(text) => {
                let (alive, details) = liveness_file::judge(&meta, &text, tick.time_ms);
                let status = if alive {
                    Status::Success
                } else {
                    Status::Failed
                };
                (status, details)
            }
        };
        let message = details
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("the liveness file shows a recent beat");
        let age = details
            .get("ageMs")
            .map(ToString::to_string)
            .unwrap_or_default();
        handler_sdk::log::write(
            if matches!(status, Status::Success) {
                LogLevel::Info
            } else {
                LogLevel::Warn
            },
            message,
            &[("path", &meta.path), ("ageMs", &age)],
        );
        Ok(Outcome::with_details(status, details.to_string()))
    }
}

/// The file's text (at most [`MAX_FILE_BYTES`]), or why there is none.
fn read(path: &str) -> Result<String, (Failed, String)> {
    if let Some(refused) = handler_sdk::dirs::refusal(path) {
        return Err((Failed::Unreadable, refused));
    }
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => (Failed::Missing, format!("{path} does not exist")),
        _ => (Failed::Unreadable, format!("cannot open {path}: {e}")),
    })?;
    let unreadable = |why: String| (Failed::Unreadable, format!("cannot read {path}: {why}"));
    let metadata = file.metadata().map_err(|e| unreadable(e.to_string()))?;
    if !metadata.is_file() {
        return Err((Failed::Unreadable, format!("{path} is not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(unreadable(format!(
            "larger than {MAX_FILE_BYTES} bytes, not a liveness file"
        )));
    }
    String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".to_string()))
}

handler_sdk::export_handler!(LivenessFile);
