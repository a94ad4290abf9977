//! Without a broker: the events handlers emit, and the checks' state
//! changes (`agent.{agent}.check.state_changed`), appended to a JSON-lines
//! file (`--events-log`), one object a line with `time`, `routingKey`,
//! `check`, `handler`, `tick` and `payload`.

use std::io::Write as _;
use std::path::PathBuf;

use tracing::error;

use super::{FinishedRun, Receipt, Sink};

/// Appends emitted events and state changes to a file; a run with
/// neither writes nothing.
#[derive(Debug, Clone)]
pub struct EventsLog {
    path: PathBuf,
    /// The agent, whose namespace state changes are logged under.
    agent: String,
}

impl EventsLog {
    /// A log at `path` (created on the first event) for `agent`.
    pub fn new(path: PathBuf, agent: &str) -> EventsLog {
        EventsLog {
            path,
            agent: agent.to_string(),
        }
    }
}

impl Sink for EventsLog {
    fn publish(&self, run: FinishedRun<'_>) -> Receipt {
        let FinishedRun {
            tick,
            check,
            report,
            verdict,
        } = run;
        let agent_events = report
            .events
            .iter()
            .map(|event| (event.event_type.clone(), event.payload.clone()));
        // A state change is what operators alert on: it goes into the log
        // too, under the routing key the bus would give it.
        let change = verdict.change.as_ref().map(|change| {
            (
                heartbeat_core::envelope::state_changed_key(&self.agent),
                heartbeat_core::envelope::state_changed_payload(
                    &check.name,
                    &check.handler,
                    verdict,
                    change,
                    report.error.as_deref(),
                ),
            )
        });
        let mut lines = String::new();
        for (routing_key, payload) in agent_events.chain(change) {
            let line = serde_json::json!({
                "time": heartbeat_core::time::iso_utc(tick.time_ms),
                "routingKey": routing_key,
                "check": check.name,
                "handler": check.handler,
                "tick": tick.id,
                "payload": payload,
            });
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        if lines.is_empty() {
            return Receipt::done();
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
