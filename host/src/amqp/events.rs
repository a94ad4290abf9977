//! What a run sends: the events its handler emitted, each with its own
//! routing key, then the result event `agent.{name}.check.completed`, then,
//! when the run changed the check's state, `agent.{name}.check.state_changed`
//! (both keys moved out of the inbox's bindings by `--results-key-prefix`,
//! see the core's [`ResultKeys`], from which the emit rules reserve them
//! too). Pure: ids and time are passed in.

use serde_json::Value;

use super::wire::Record;
use heartbeat_core::emit::ResultKeys;
use heartbeat_core::envelope::{self, Source};
use heartbeat_core::model::RunReport;
use heartbeat_core::soft_hard::Verdict;

/// One run, as the bus sees it.
#[derive(Debug, Clone, Copy)]
pub struct RunOutcome<'a> {
    /// The routing keys of the result events.
    pub keys: &'a ResultKeys,
    /// The envelope of the tick the run answered (`{}` for timer ticks).
    pub tick_envelope: &'a Value,
    /// The check.
    pub check: &'a str,
    /// The check's handler.
    pub handler: &'a str,
    /// What the run came to.
    pub report: &'a RunReport,
    /// What it did to the check's state.
    pub verdict: &'a Verdict,
}

/// The run's events in publishing order, each enveloped with a fresh id
/// from `new_id` and `correlation_ids` holding the tick's `event_id`, the
/// result events on `run.keys`.
pub fn run_records(
    run: RunOutcome<'_>,
    source: &Source,
    time: jiff::Timestamp,
    mut new_id: impl FnMut() -> String,
) -> Vec<Record> {
    let correlation = envelope::correlation_of(run.tick_envelope);
    let mut records = Vec::with_capacity(run.report.events.len() + 2);
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
        &run.keys.completed,
        envelope::completed_payload(
            run.check,
            run.handler,
            &status,
            run.report.duration_us,
            &run.report.details,
            run.report.error.as_deref(),
            run.verdict,
        ),
    );
    if let Some(change) = &run.verdict.change {
        push(
            &run.keys.state_changed,
            envelope::state_changed_payload(
                run.check,
                run.handler,
                run.verdict,
                change,
                run.report.error.as_deref(),
            ),
        );
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbeat_core::model::EmittedEvent;
    use heartbeat_core::model::{CheckHealth, RunStatus};
    use heartbeat_core::soft_hard::{ChangeKind, StateChange};
    use serde_json::json;

    fn source() -> Source {
        Source {
            host: "h".into(),
            kind: "agent".into(),
            app: "heartbeat-host".into(),
        }
    }

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
        let source = source();
        let mut n = 0;
        let records = run_records(
            RunOutcome {
                keys: &ResultKeys::new("cack", None),
                tick_envelope: &tick,
                check: "backups",
                handler: "backup_age",
                report: &report,
                verdict: &Verdict {
                    state: CheckHealth::Ok,
                    attempt: 0,
                    change: None,
                },
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
                   "state": "ok", "attempt": 0, "durationMs": 2.5, "details": {"ok": true}})
        );
    }

    #[test]
    fn a_state_change_goes_out_after_the_result_and_only_when_there_is_one() {
        let mut failed = report(Vec::new());
        failed.status = RunStatus::Failed;
        failed.error = Some("status 500".into());
        let tick = json!({"event_id": "tick-1"});
        let source = source();
        let records_for = |verdict: &Verdict| {
            run_records(
                RunOutcome {
                    keys: &ResultKeys::new("cack", None),
                    tick_envelope: &tick,
                    check: "api",
                    handler: "http_probe",
                    report: &failed,
                    verdict,
                },
                &source,
                jiff::Timestamp::UNIX_EPOCH,
                || "id".to_string(),
            )
        };
        let soft = Verdict {
            state: CheckHealth::Soft,
            attempt: 1,
            change: None,
        };
        assert_eq!(records_for(&soft).len(), 1);
        let hard = Verdict {
            state: CheckHealth::Hard,
            attempt: 3,
            change: Some(StateChange {
                kind: ChangeKind::Transition,
                previous: CheckHealth::Ok,
                state: CheckHealth::Hard,
                changes: 1,
                window: 4,
            }),
        };
        let records = records_for(&hard);
        let keys: Vec<&str> = records.iter().map(|r| r.routing_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agent.cack.check.completed",
                "agent.cack.check.state_changed"
            ]
        );
        let change: Value = serde_json::from_str(&records[1].body).expect("json");
        assert_eq!(change["correlation_ids"], json!(["tick-1"]));
        assert_eq!(change["payload"]["previous"], "ok");
        assert_eq!(change["payload"]["state"], "hard");
        assert_eq!(change["payload"]["attempt"], 3);
        assert_eq!(change["payload"]["error"], "status 500");
    }

    #[test]
    fn a_results_key_prefix_moves_both_result_events_and_their_event_type() {
        let mut failed = report(Vec::new());
        failed.status = RunStatus::Failed;
        let tick = json!({"event_id": "tick-1"});
        let source = source();
        let verdict = Verdict {
            state: CheckHealth::Hard,
            attempt: 1,
            change: Some(StateChange {
                kind: ChangeKind::Transition,
                previous: CheckHealth::Ok,
                state: CheckHealth::Hard,
                changes: 1,
                window: 4,
            }),
        };
        let records = run_records(
            RunOutcome {
                keys: &ResultKeys::new("cack", Some("results.")),
                tick_envelope: &tick,
                check: "api",
                handler: "http_probe",
                report: &failed,
                verdict: &verdict,
            },
            &source,
            jiff::Timestamp::UNIX_EPOCH,
            || "id".to_string(),
        );
        let keys: Vec<&str> = records.iter().map(|r| r.routing_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "results.cack.check.completed",
                "results.cack.check.state_changed"
            ]
        );
        for record in &records {
            let body: Value = serde_json::from_str(&record.body).expect("json");
            assert_eq!(body["event_type"], record.routing_key.as_str());
        }
        assert_eq!(
            ResultKeys::new("cack", None),
            ResultKeys {
                completed: "agent.cack.check.completed".into(),
                state_changed: "agent.cack.check.state_changed".into(),
            }
        );
    }
}
