//! Feeds `VERB\nBODY` (the input split at its first newline; no newline:
//! the whole input is the body of a `pause`) to `control::parse`, then
//! applies what it reads to an empty state under a two-check config.
//! Asserts: no panic; `parse` reads exactly the command that the documented
//! rules (a bare payload with `check` and no `event_id`, else an envelope's
//! `payload`) read, written out apart from the parser; applying a command
//! is refused only for a check the config lacks, and changes the state as
//! the verb says.
#![no_main]

use std::sync::OnceLock;

use heartbeat_core::config::HeartbeatConfig;
use heartbeat_core::control::{self, Command};
use heartbeat_core::envelope;
use heartbeat_core::state::State;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The config commands are applied under: checks `ping` and `sweep`, the
/// file pausing `sweep`.
fn config() -> &'static HeartbeatConfig {
    static CONFIG: OnceLock<HeartbeatConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = r#"{"agent": "a", "checks": {"ping": {"cadenceMs": 1000}, "sweep": {}},
            "paused": {"sweep": true}}"#;
        match heartbeat_core::config::parse(text, "heartbeat.json") {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("the target's own config is refused: {e}"),
        }
    })
}

/// The command the documented rules read from `payload` for `verb`.
fn rules_read(verb: &str, payload: &Value) -> Option<Command> {
    let o = payload.as_object()?;
    let check = match o.get("check") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return None,
    };
    match verb {
        "resume" => Some(Command::Resume { check }),
        "run" => Some(Command::Run { check }),
        "pause" => {
            let until_ms = match o.get("until") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.as_u64()?),
                Some(Value::String(s)) => {
                    let t: jiff::Timestamp = s.parse().ok()?;
                    Some(u64::try_from(t.as_millisecond()).ok()?)
                }
                Some(_) => return None,
            };
            let reason = match o.get("reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return None,
            };
            Some(Command::Pause {
                check,
                until_ms,
                reason,
            })
        }
        _ => None,
    }
}

/// The payload a body carries by the rules: the body itself when it is an
/// object with `check` and no `event_id`, else a valid envelope's payload.
fn payload_of(body: &[u8]) -> Option<Value> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    if object.contains_key("check") && !object.contains_key("event_id") {
        Some(value)
    } else {
        envelope::validate(value).ok().map(|e| e.payload)
    }
}

fuzz_target!(|data: &[u8]| {
    let (verb, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (String::from_utf8_lossy(&data[..at]), &data[at + 1..]),
        None => ("pause".into(), data),
    };
    let parsed = control::parse(&verb, body);
    let expected = payload_of(body).and_then(|payload| rules_read(&verb, &payload));
    assert_eq!(parsed.as_ref().ok(), expected.as_ref(), "{parsed:?}");
    let Ok(command) = parsed else {
        return;
    };
    assert_eq!(command.verb(), verb);
    let config = config();
    let mut state = State::default();
    let applied = control::apply(&command, config, &mut state);
    let check = command.check();
    if config.check(check).is_none() {
        assert!(applied.is_err(), "{applied:?}");
        assert_eq!(state, State::default());
        return;
    }
    assert!(applied.is_ok(), "{applied:?}");
    match &command {
        Command::Pause { .. } => assert!(state.paused.contains_key(check)),
        Command::Resume { .. } => assert!(!state.paused.contains_key(check)),
        Command::Run { .. } => assert!(state.run_requests.contains(check)),
    }
});
