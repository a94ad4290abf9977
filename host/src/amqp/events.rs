//! What a run sends: the events its handler emitted, each with its own
//! routing key, then the result event `agent.{name}.check.completed`.
//! Pure: ids and time are passed in.

use serde_json::Value;

use super::outbox::Record;
use crate::runtime::RunReport;
use heartbeat_core::envelope::{self, Source};

/// One run, as the bus sees it.
#[derive(Debug, Clone, Copy)]
pub struct RunOutcome<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The envelope of the tick the run answered (`{}` for timer ticks).
    pub tick_envelope: &'a Value,
    /// The check.
    pub check: &'a str,
    /// The check's handler.
    pub handler: &'a str,
    /// What the run came to.
    pub report: &'a RunReport,
}

/// The run's events in publishing order, each enveloped with a fresh id
/// from `new_id` and `correlation_ids` holding the tick's `event_id`.
pub fn run_records(
    run: RunOutcome<'_>,
    source: &Source,
    time: jiff::Timestamp,
    mut new_id: impl FnMut() -> String,
) -> Vec<Record> {
    let correlation = envelope::correlation_of(run.tick_envelope);
    let mut records = Vec::with_capacity(run.report.events.len() + 1);
    let mut push = |event_type: &str, payload: Value| {
        let event_id = new_id();
        let body = envelope::build(&event_id, event_type, time, source, &correlation, payload);
        records.push(Record {
            routing_key: event_type.to_string(),
            event_id,
            body: body.to_string(),
        });
    };
    for event in &run.report.events {
        push(&event.event_type, event.payload.clone());
    }
    let status = run.report.status.to_string();
    push(
        &envelope::completed_key(run.agent),
        envelope::completed_payload(
            run.check,
            run.handler,
            &status,
            run.report.duration_us,
            &run.report.details,
            run.report.error.as_deref(),
        ),
    );
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::EmittedEvent;
    use heartbeat_core::model::RunStatus;
    use serde_json::json;

    fn report(events: Vec<EmittedEvent>) -> RunReport {
        RunReport {
            status: RunStatus::Success,
            details: json!({"ok": true}),
            error: None,
            duration_us: 2500,
            logs: Vec::new(),
            events,
            dropped_logs: 0,
        }
    }

    #[test]
    fn handler_events_keep_their_routing_key_and_come_before_the_result() {
        let report = report(vec![EmittedEvent {
            event_type: "agent.cack.backup_age".into(),
            payload: json!({"stale": false}),
        }]);
        let tick = json!({"event_id": "tick-1", "payload": {}});
        let source = Source {
            host: "h".into(),
            kind: "agent".into(),
            app: "heartbeat-host".into(),
        };
        let mut n = 0;
        let records = run_records(
            RunOutcome {
                agent: "cack",
                tick_envelope: &tick,
                check: "backups",
                handler: "backup_age",
                report: &report,
            },
            &source,
            jiff::Timestamp::UNIX_EPOCH,
            || {
                n += 1;
                format!("id-{n}")
            },
        );
        let keys: Vec<&str> = records.iter().map(|r| r.routing_key.as_str()).collect();
        assert_eq!(
            keys,
            ["agent.cack.backup_age", "agent.cack.check.completed"]
        );
        let emitted: Value = serde_json::from_str(&records[0].body).expect("json");
        assert_eq!(emitted["event_type"], "agent.cack.backup_age");
        assert_eq!(emitted["event_id"], "id-1");
        assert_eq!(emitted["correlation_ids"], json!(["tick-1"]));
        assert_eq!(emitted["payload"], json!({"stale": false}));
        let result: Value = serde_json::from_str(&records[1].body).expect("json");
        assert_eq!(records[1].event_id, "id-2");
        assert_eq!(
            result["payload"],
            json!({"check": "backups", "handler": "backup_age", "status": "success",
                   "durationMs": 2.5, "details": {"ok": true}})
        );
    }
}
