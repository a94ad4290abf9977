//! Feeds the input, as a message body, to `envelope::parse_object` and
//! `envelope::parse_envelope`, and its text (or the parsed `event_type`) as
//! a routing key to `envelope::route`. Asserts: no panic; `parse_object`
//! gives objects only; `parse_envelope` accepts exactly what the documented
//! field rules accept and takes its fields from the body; a route names a
//! part of the key that rebuilds the key.
#![no_main]

use heartbeat_core::envelope::{self, MAX_EVENT_ID_LEN, Route, TICK_KEY};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const AGENT: &str = "cack";

/// The documented rules, written out apart from the parser.
fn rules_accept(value: &Value) -> bool {
    let Some(o) = value.as_object() else {
        return false;
    };
    let absent_or =
        |field: &str, ok: fn(&Value) -> bool| o.get(field).is_none_or(|v| v.is_null() || ok(v));
    matches!(o.get("event_id"), Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_EVENT_ID_LEN)
        && matches!(o.get("event_type"), Some(Value::String(_)))
        && o.contains_key("payload")
        && absent_or("timestamp", Value::is_string)
        && absent_or("version", Value::is_string)
        && absent_or("source", |v| v.is_object() || v.is_string())
        && absent_or("correlation_ids", |v| {
            v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        })
}

/// What `route` says of `key` can be read back into `key`.
fn check_route(agent: &str, key: &str) {
    match envelope::route(agent, key) {
        Route::Tick => assert_eq!(key, TICK_KEY),
        Route::Control(verb) => {
            assert!(!verb.is_empty());
            assert_eq!(key, format!("agent.{agent}.control.{verb}"));
        }
        Route::Beat(process) => {
            assert!(!process.is_empty());
            assert_eq!(key, format!("heartbeat.{process}"));
        }
        Route::Ignore => {
            assert_ne!(key, TICK_KEY);
            let control = format!("agent.{agent}.control.");
            assert!(
                key.strip_prefix(control.as_str()).is_none_or(str::is_empty),
                "{key:?}"
            );
            assert!(
                key.strip_prefix("heartbeat.").is_none_or(str::is_empty),
                "{key:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let object = envelope::parse_object(data);
    let parsed = envelope::parse_envelope(data);
    match object {
        Err(e) => {
            assert!(parsed.is_err());
            assert!(!e.to_string().is_empty());
        }
        Ok(value) => {
            assert!(value.is_object());
            assert_eq!(parsed.is_ok(), rules_accept(&value), "{parsed:?}");
            if let Ok(envelope) = &parsed {
                assert_eq!(envelope.raw, value);
                assert_eq!(
                    value.get("event_id"),
                    Some(&Value::from(envelope.event_id.as_str()))
                );
                assert_eq!(
                    value.get("event_type"),
                    Some(&Value::from(envelope.event_type.as_str()))
                );
                assert_eq!(value.get("payload"), Some(&envelope.payload));
                check_route(AGENT, &envelope.event_type);
            }
        }
    }
    // The body as a routing key, and split at its first newline into an
    // agent name and a key.
    let text = String::from_utf8_lossy(data);
    check_route(AGENT, &text);
    if let Some((agent, key)) = text.split_once('\n') {
        check_route(agent, key);
    }
});
