//! The built-in `quarterly_compaction` handler.
//!
//! In its granted directory (`meta.dir`, default `/data`), every `*.jsonl`
//! file's records whose timestamp falls before the current calendar quarter
//! (UTC, from the tick's time) move to `archive/<YYYY>-Q<n>.jsonl` (the
//! record's own quarter, appended); the live file keeps the rest. See
//! [`compact`] for the guarantees.
//!
//! `meta`: `dir` (default `/data`), `timestampField` (default `timestamp`;
//! ISO 8601 text or milliseconds since the epoch). With no directory
//! granted at `dir` the run is `skipped`, its reason in `details.reason`.

pub mod compact;

use handler_sdk::{Check, Handler, Outcome, Status, Tick};

/// The handler.
pub struct QuarterlyCompaction;

impl Handler for QuarterlyCompaction {
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: serde_json::Value =
            serde_json::from_str(&check.meta).map_err(|e| format!("meta is not JSON: {e}"))?;
        let dir = meta.get("dir").and_then(|v| v.as_str()).unwrap_or("/data");
        let field = meta
            .get("timestampField")
            .and_then(|v| v.as_str())
            .unwrap_or("timestamp");
        // Nothing granted at `dir` (the consumer's example config grants
        // nothing): nothing to compact, which is no failure of the agent.
        if std::fs::metadata(dir).is_err() {
            let reason = format!("no directory granted at {dir}: nothing to compact");
            handler_sdk::log::write(handler_sdk::log::LogLevel::Info, &reason, &[("dir", dir)]);
            let details = serde_json::json!({ "reason": reason });
            return Ok(Outcome::with_details(Status::Skipped, details.to_string()));
        }
        let cutoff = compact::quarter_start_ms(tick.time_ms)?;
        let summary = compact::compact_dir(std::path::Path::new(dir), field, cutoff)?;
        handler_sdk::log::write(
            handler_sdk::log::LogLevel::Info,
            "quarterly compaction done",
            &[
                ("dir", dir),
                ("moved", &summary.records_moved.to_string()),
                ("kept", &summary.records_kept.to_string()),
            ],
        );
        Ok(Outcome::with_details(Status::Success, summary.to_json()))
    }
}

handler_sdk::export_handler!(QuarterlyCompaction);
