//! The Bloodbank envelope, as heartbeat-consumer reads and writes it:
//! `{event_id, event_type, timestamp, version, source, correlation_ids?, payload}`.
//!
//! Pure functions only: parsing and validating what arrives, deciding what a
//! routing key means to this agent, and building what the host sends.

use serde_json::{Map, Value, json};

use crate::soft_hard::{ChangeKind, StateChange, Verdict};

/// The routing key (and `event_type`) of a heartbeat tick.
pub const TICK_KEY: &str = "system.heartbeat.tick";

/// The envelope `version` the host writes.
pub const ENVELOPE_VERSION: &str = "1.0.0";

/// The longest `event_id` accepted: it travels as the AMQP `message_id`,
/// a short string.
pub const MAX_EVENT_ID_LEN: usize = crate::wire::MAX_SHORT_STRING;

/// Why a message was refused. Shown in the log line and kept with the
/// message in the dead-letter queue's log context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The body does not parse as JSON.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("body is a JSON {0}, not an object")]
    NotObject(&'static str),
    /// A required field is absent.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// A field has the wrong type.
    #[error("field `{field}` must be {expected}, not {found}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A field has the right type but an unusable value.
    #[error("field `{field}`: {reason}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A control message for a verb the host does not know.
    #[error("unknown control `{0}` (known: pause, resume, run)")]
    UnknownControl(String),
}

/// A validated incoming envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `event_id`: non-empty, at most [`MAX_EVENT_ID_LEN`] bytes.
    pub event_id: String,
    /// `event_type`.
    pub event_type: String,
    /// `payload`, whatever its shape.
    pub payload: Value,
    /// The whole envelope as received (handed to handlers).
    pub raw: Value,
}

/// The name of a JSON value's type, for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses a message body as JSON, requiring an object.
pub fn parse_object(body: &[u8]) -> Result<Value, Invalid> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Invalid::NotJson(e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(Invalid::NotObject(json_type(&value)))
    }
}

/// Parses and validates an envelope. Required: `event_id` (non-empty
/// string), `event_type` (string) and `payload` (any JSON). When present,
/// `timestamp` and `version` must be strings, `source` an object or a
/// string, `correlation_ids` an array of strings. Other fields are kept.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, Invalid> {
    validate(parse_object(body)?)
}

/// [`parse_envelope`] on an already parsed JSON object.
pub fn validate(raw: Value) -> Result<Envelope, Invalid> {
    let Some(object) = raw.as_object() else {
        return Err(Invalid::NotObject(json_type(&raw)));
    };
    let event_id = required_string(object, "event_id")?;
    if event_id.is_empty() {
        return Err(Invalid::BadValue {
            field: "event_id",
            reason: "is empty".into(),
        });
    }
    if event_id.len() > MAX_EVENT_ID_LEN {
        return Err(Invalid::BadValue {
            field: "event_id",
            reason: format!("is longer than {MAX_EVENT_ID_LEN} bytes"),
        });
    }
    let event_type = required_string(object, "event_type")?;
    let payload = object.get("payload").ok_or(Invalid::Missing("payload"))?;
    optional_type(object, "timestamp", "a string", Value::is_string)?;
    optional_type(object, "version", "a string", Value::is_string)?;
    optional_type(object, "source", "an object or a string", |v| {
        v.is_object() || v.is_string()
    })?;
    if let Some(ids) = object.get("correlation_ids").filter(|v| !v.is_null()) {
        let ok = ids
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string));
        if !ok {
            return Err(Invalid::WrongType {
                field: "correlation_ids",
                expected: "an array of strings",
                found: json_type(ids),
            });
        }
    }
    Ok(Envelope {
        event_id: event_id.to_string(),
        event_type: event_type.to_string(),
        payload: payload.clone(),
        raw,
    })
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, Invalid> {
    match object.get(field) {
        None | Some(Value::Null) => Err(Invalid::Missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Invalid::WrongType {
            field,
            expected: "a string",
            found: json_type(other),
        }),
    }
}

fn optional_type(
    object: &Map<String, Value>,
    field: &'static str,
    expected: &'static str,
    ok: impl Fn(&Value) -> bool,
) -> Result<(), Invalid> {
    match object.get(field) {
        Some(value) if !value.is_null() && !ok(value) => Err(Invalid::WrongType {
            field,
            expected,
            found: json_type(value),
        }),
        _ => Ok(()),
    }
}

/// What a routing key arriving on `agent.{agent}.inbox` means to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `system.heartbeat.tick`.
    Tick,
    /// `agent.{agent}.control.{verb}`: the verb.
    Control(&'a str),
    /// `heartbeat.{process}`: a beatit beat (a raw body, not an envelope)
    /// of a watched process; the process name.
    Beat(&'a str),
    /// Anything else: acknowledged and ignored.
    Ignore,
}

/// Classifies a routing key for `agent`.
pub fn route<'a>(agent: &str, routing_key: &'a str) -> Route<'a> {
    if routing_key == TICK_KEY {
        return Route::Tick;
    }
    let verb = routing_key
        .strip_prefix("agent.")
        .and_then(|rest| rest.strip_prefix(agent))
        .and_then(|rest| rest.strip_prefix(".control."));
    match verb {
        Some(verb) if !verb.is_empty() => Route::Control(verb),
        _ => match routing_key.strip_prefix("heartbeat.") {
            Some(process) if !process.is_empty() => Route::Beat(process),
            _ => Route::Ignore,
        },
    }
}

/// The routing key and `event_type` of a run's result event.
pub fn completed_key(agent: &str) -> String {
    format!("agent.{agent}.check.completed")
}

/// The routing key and `event_type` of a check's state change (ok → hard,
/// hard → ok, flapping started or stopped): the event operators alert on.
pub fn state_changed_key(agent: &str) -> String {
    format!("agent.{agent}.check.state_changed")
}

/// The payload of a state change: `check`, `handler`, `change`
/// (`transition`, `flapping_started`, `flapping_stopped`), `previous`,
/// `state`, `attempt`, `flapping`, `changes` among the last `window`
/// results, and the failed run's `error` when there is one.
pub fn state_changed_payload(
    check: &str,
    handler: &str,
    verdict: &Verdict,
    change: &StateChange,
    error: Option<&str>,
) -> Value {
    let mut payload = Map::new();
    payload.insert("check".into(), Value::from(check));
    payload.insert("handler".into(), Value::from(handler));
    payload.insert("change".into(), Value::from(change.kind.as_str()));
    payload.insert("previous".into(), Value::from(change.previous.as_str()));
    payload.insert("state".into(), Value::from(change.state.as_str()));
    payload.insert("attempt".into(), Value::from(verdict.attempt));
    payload.insert(
        "flapping".into(),
        Value::from(change.kind == ChangeKind::FlappingStarted),
    );
    payload.insert("changes".into(), Value::from(change.changes));
    payload.insert("window".into(), Value::from(change.window));
    if let Some(error) = error {
        payload.insert("error".into(), Value::from(error));
    }
    Value::Object(payload)
}

/// Who sent an envelope (`source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The machine.
    pub host: String,
    /// The kind of sender.
    pub kind: String,
    /// The program.
    pub app: String,
}

impl Source {
    fn to_json(&self) -> Value {
        json!({"host": self.host, "type": self.kind, "app": self.app})
    }
}

/// Builds an envelope.
pub fn build(
    event_id: &str,
    event_type: &str,
    time: jiff::Timestamp,
    source: &Source,
    correlation_ids: &[String],
    payload: Value,
) -> Value {
    let mut envelope = Map::new();
    envelope.insert("event_id".into(), Value::from(event_id));
    envelope.insert("event_type".into(), Value::from(event_type));
    envelope.insert(
        "timestamp".into(),
        Value::from(crate::time::python_isoformat(time)),
    );
    envelope.insert("version".into(), Value::from(ENVELOPE_VERSION));
    envelope.insert("source".into(), source.to_json());
    envelope.insert(
        "correlation_ids".into(),
        Value::from(correlation_ids.to_vec()),
    );
    envelope.insert("payload".into(), payload);
    Value::Object(envelope)
}

/// A tick in the consumer README's shape (`payload: {tick_id}`).
pub fn tick(event_id: &str, tick_id: &str, time: jiff::Timestamp, source: &Source) -> Value {
    let mut envelope = build(
        event_id,
        TICK_KEY,
        time,
        source,
        &[],
        json!({"tick_id": tick_id}),
    );
    if let Some(object) = envelope.as_object_mut() {
        // The README's ticks carry no correlation_ids at all.
        object.remove("correlation_ids");
    }
    envelope
}

/// The payload of a result event:
/// `{check, handler, status, durationMs, details, error?}`.
pub fn completed_payload(
    check: &str,
    handler: &str,
    status: &str,
    duration_us: u64,
    details: &Value,
    error: Option<&str>,
    verdict: &Verdict,
) -> Value {
    let mut payload = Map::new();
    payload.insert("check".into(), Value::from(check));
    payload.insert("handler".into(), Value::from(handler));
    payload.insert("status".into(), Value::from(status));
    payload.insert("state".into(), Value::from(verdict.state.as_str()));
    payload.insert("attempt".into(), Value::from(verdict.attempt));
    payload.insert("durationMs".into(), duration_ms(duration_us));
    payload.insert("details".into(), details.clone());
    if let Some(error) = error {
        payload.insert("error".into(), Value::from(error));
    }
    Value::Object(payload)
}

/// Microseconds as milliseconds with three decimals.
fn duration_ms(duration_us: u64) -> Value {
    let ms = (duration_us as f64) / 1000.0;
    serde_json::Number::from_f64((ms * 1000.0).round() / 1000.0)
        .map_or_else(|| Value::from(duration_us / 1000), Value::Number)
}

/// The tick's `event_id` as `correlation_ids` of what a run sends:
/// empty for the host's own timer ticks, which have none.
pub fn correlation_of(tick_envelope: &Value) -> Vec<String> {
    tick_envelope
        .get("event_id")
        .and_then(Value::as_str)
        .map(|id| vec![id.to_string()])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CheckHealth;

    fn source() -> Source {
        Source {
            host: "box".into(),
            kind: "agent".into(),
            app: "heartbeat-host".into(),
        }
    }

    #[test]
    fn accepts_the_consumer_readme_tick() {
        let body = br#"{"event_id": "0b6f", "event_type": "system.heartbeat.tick",
            "timestamp": "2025-01-01T00:00:00+00:00", "version": "1.0.0",
            "source": {"host": "local", "type": "manual", "app": "test"},
            "payload": {"tick_id": "ab12cd34"}}"#;
        let envelope = parse_envelope(body).expect("valid");
        assert_eq!(envelope.event_id, "0b6f");
        assert_eq!(envelope.payload, json!({"tick_id": "ab12cd34"}));
        assert_eq!(envelope.raw["source"]["app"], "test");
    }

    #[test]
    fn accepts_the_cron_tick_payload_and_correlation_ids() {
        let body = br#"{"event_id": "e1", "event_type": "system.heartbeat.tick",
            "timestamp": "2025-01-01T00:00:00Z", "version": "1.0.0", "source": "cron",
            "correlation_ids": ["a", "b"],
            "payload": {"tick": 42, "timestamp": "x", "quarter": "Q1", "dayOfWeek": 3, "epochMs": 1}}"#;
        let envelope = parse_envelope(body).expect("valid");
        assert_eq!(envelope.payload["quarter"], "Q1");
    }

    #[test]
    fn accepts_any_payload_shape_and_extra_fields() {
        for payload in ["null", "7", "\"x\"", "[1, 2]", "{}"] {
            let body = format!(
                r#"{{"event_id": "e", "event_type": "t", "payload": {payload}, "extra": true}}"#
            );
            assert!(parse_envelope(body.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_envelope_with_the_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "body is not JSON"),
            (b"[1]", "body is a JSON array, not an object"),
            (b"{\"event_type\": \"t\", \"payload\": {}}", "field `event_id` is missing"),
            (
                b"{\"event_id\": 5, \"event_type\": \"t\", \"payload\": {}}",
                "field `event_id` must be a string, not number",
            ),
            (b"{\"event_id\": \"\", \"event_type\": \"t\", \"payload\": {}}", "field `event_id`: is empty"),
            (b"{\"event_id\": \"e\", \"payload\": {}}", "field `event_type` is missing"),
            (b"{\"event_id\": \"e\", \"event_type\": \"t\"}", "field `payload` is missing"),
            (
                b"{\"event_id\": \"e\", \"event_type\": \"t\", \"payload\": {}, \"timestamp\": 1}",
                "field `timestamp` must be a string, not number",
            ),
            (
                b"{\"event_id\": \"e\", \"event_type\": \"t\", \"payload\": {}, \"correlation_ids\": [1]}",
                "field `correlation_ids` must be an array of strings, not array",
            ),
        ];
        for (body, reason) in cases {
            let err = parse_envelope(body).expect_err("invalid").to_string();
            assert!(
                err.starts_with(reason),
                "{err} for {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn refuses_an_event_id_too_long_for_an_amqp_short_string() {
        let body = format!(
            r#"{{"event_id": "{}", "event_type": "t", "payload": {{}}}}"#,
            "x".repeat(MAX_EVENT_ID_LEN + 1)
        );
        assert!(matches!(
            parse_envelope(body.as_bytes()),
            Err(Invalid::BadValue {
                field: "event_id",
                ..
            })
        ));
    }

    #[test]
    fn routes_ticks_controls_and_everything_else() {
        assert_eq!(route("cack", "system.heartbeat.tick"), Route::Tick);
        assert_eq!(
            route("cack", "agent.cack.control.pause"),
            Route::Control("pause")
        );
        assert_eq!(
            route("cack", "agent.cack.control.run"),
            Route::Control("run")
        );
        assert_eq!(route("cack", "system.heartbeat.other"), Route::Ignore);
        assert_eq!(route("cack", "system.heartbeat.tick.extra"), Route::Ignore);
        assert_eq!(route("cack", "agent.cack.check.completed"), Route::Ignore);
        assert_eq!(route("cack", "agent.cackle.control.pause"), Route::Ignore);
        assert_eq!(route("cack", "agent.cack.control."), Route::Ignore);
        assert_eq!(route("cack", "agent.other.control.pause"), Route::Ignore);
        assert_eq!(
            route("cack", "heartbeat.cack.worker"),
            Route::Beat("cack.worker")
        );
        assert_eq!(route("cack", "heartbeat."), Route::Ignore);
        assert_eq!(route("cack", "heartbeat"), Route::Ignore);
    }

    #[test]
    fn builds_result_events_in_the_consumer_envelope() {
        let time = jiff::Timestamp::from_millisecond(1_700_000_000_123).expect("time");
        let payload = completed_payload(
            "ping",
            "default",
            "failed",
            1234,
            &json!({"a": 1}),
            Some("boom"),
            &Verdict {
                state: CheckHealth::Soft,
                attempt: 2,
                change: None,
            },
        );
        let envelope = build(
            "id-1",
            &completed_key("cack"),
            time,
            &source(),
            &correlation_of(&json!({"event_id": "tick-9"})),
            payload,
        );
        assert_eq!(
            envelope,
            json!({
                "event_id": "id-1",
                "event_type": "agent.cack.check.completed",
                "timestamp": "2023-11-14T22:13:20.123000+00:00",
                "version": "1.0.0",
                "source": {"host": "box", "type": "agent", "app": "heartbeat-host"},
                "correlation_ids": ["tick-9"],
                "payload": {"check": "ping", "handler": "default", "status": "failed",
                    "state": "soft", "attempt": 2, "durationMs": 1.234, "details": {"a": 1}, "error": "boom"}
            })
        );
        // What the host builds, it accepts.
        let body = serde_json::to_vec(&envelope).expect("json");
        assert!(parse_envelope(&body).is_ok());
    }

    #[test]
    fn a_successful_run_has_no_error_field_and_timer_ticks_no_correlation() {
        let ok = Verdict {
            state: CheckHealth::Ok,
            attempt: 0,
            change: None,
        };
        let payload = completed_payload("ping", "default", "success", 5, &json!({}), None, &ok);
        assert!(payload.get("error").is_none());
        assert_eq!(
            (&payload["state"], &payload["attempt"]),
            (&json!("ok"), &json!(0))
        );
        assert_eq!(payload["durationMs"], json!(0.005));
        assert!(correlation_of(&json!({})).is_empty());
    }

    #[test]
    fn a_state_change_names_both_states_and_the_flapping_count() {
        let change = StateChange {
            kind: ChangeKind::FlappingStarted,
            previous: CheckHealth::Ok,
            state: CheckHealth::Hard,
            changes: 11,
            window: 20,
        };
        let verdict = Verdict {
            state: CheckHealth::Hard,
            attempt: 1,
            change: Some(change.clone()),
        };
        assert_eq!(state_changed_key("cack"), "agent.cack.check.state_changed");
        assert_eq!(
            state_changed_payload("api", "http_probe", &verdict, &change, Some("status 500")),
            json!({"check": "api", "handler": "http_probe", "change": "flapping_started",
                "previous": "ok", "state": "hard", "attempt": 1, "flapping": true,
                "changes": 11, "window": 20, "error": "status 500"})
        );
    }

    #[test]
    fn ticks_look_like_the_readme_snippet() {
        let time = jiff::Timestamp::from_millisecond(0).expect("time");
        let tick = tick("e", "ab12cd34", time, &source());
        let keys: Vec<&str> = tick
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "event_id",
                "event_type",
                "timestamp",
                "version",
                "source",
                "payload"
            ]
        );
        assert_eq!(tick["timestamp"], "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(tick["payload"], json!({"tick_id": "ab12cd34"}));
    }
}
