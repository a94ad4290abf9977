//! Without a broker: the events handlers emit, appended to a JSON-lines
//! file (`--events-log`), one object a line with `time`, `routingKey`,
//! `check`, `handler`, `tick` and `payload`.

use std::io::Write as _;
use std::path::PathBuf;

use tracing::error;

use super::{FinishedRun, Receipt, Sink};

/// Appends emitted events to a file; a run without events writes nothing.
#[derive(Debug, Clone)]
pub struct EventsLog {
    path: PathBuf,
}

impl EventsLog {
    /// A log at `path` (created on the first event).
    pub fn new(path: PathBuf) -> EventsLog {
        EventsLog { path }
    }
}

impl Sink for EventsLog {
    fn publish(&self, run: FinishedRun<'_>) -> Receipt {
        let FinishedRun {
            tick,
            check,
            report,
        } = run;
        if report.events.is_empty() {
            return Receipt::done();
        }
        let mut lines = String::new();
        for event in &report.events {
            let line = serde_json::json!({
                "time": heartbeat_core::time::iso_utc(tick.time_ms),
                "routingKey": event.event_type,
                "check": check.name,
                "handler": check.handler,
                "tick": tick.id,
                "payload": event.payload,
            });
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(lines.as_bytes()));
        if let Err(e) = appended {
            error!(file = %self.path.display(), check = %check.name, "cannot append to the events log: {e}");
        }
        Receipt::done()
    }
}
