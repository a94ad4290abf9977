//! Control messages: `agent.{name}.control.pause` (`{check, until?, reason?}`),
//! `.resume` (`{check}`) and `.run` (`{check}`). Parsing and applying them to
//! the state are pure; the daemon persists the result.

use serde_json::Value;

use crate::config::HeartbeatConfig;
use crate::envelope::{self, Invalid, json_type};
use crate::model::Pause;
use crate::state::State;

/// What a control message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Stop running a check, until a time or until resumed.
    Pause {
        /// The check.
        check: String,
        /// Until when (ms since epoch); `None`: until resumed.
        until_ms: Option<u64>,
        /// Why, for people.
        reason: Option<String>,
    },
    /// Lift a pause set by a control message.
    Resume {
        /// The check.
        check: String,
    },
    /// Run the check on the next tick whatever its ratio.
    Run {
        /// The check.
        check: String,
    },
}

impl Command {
    /// The check the command is about.
    pub fn check(&self) -> &str {
        match self {
            Command::Pause { check, .. } | Command::Resume { check } | Command::Run { check } => {
                check
            }
        }
    }

    /// The verb, as in the routing key.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Pause { .. } => "pause",
            Command::Resume { .. } => "resume",
            Command::Run { .. } => "run",
        }
    }
}

/// A control message the host refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The message itself is malformed.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// It names a check the config does not have.
    #[error("unknown check `{check}` (the config has: {known})")]
    UnknownCheck {
        /// The name given.
        check: String,
        /// The config's check names, comma separated.
        known: String,
    },
    /// Applied in memory, but the state file could not be written.
    #[error("state not saved: {0}")]
    NotSaved(String),
}

/// Parses the body of a control message for `verb`. The body is the
/// envelope with the command in `payload`; a bare payload (`{"check": …}`,
/// no `event_id`) is accepted too.
pub fn parse(verb: &str, body: &[u8]) -> Result<Command, Invalid> {
    let value = envelope::parse_object(body)?;
    let payload = if value.get("check").is_some() && value.get("event_id").is_none() {
        value
    } else {
        envelope::validate(value)?.payload
    };
    from_payload(verb, &payload)
}

/// The command in a control payload.
pub fn from_payload(verb: &str, payload: &Value) -> Result<Command, Invalid> {
    if !matches!(verb, "pause" | "resume" | "run") {
        return Err(Invalid::UnknownControl(verb.to_string()));
    }
    let Some(object) = payload.as_object() else {
        return Err(Invalid::WrongType {
            field: "payload",
            expected: "an object",
            found: json_type(payload),
        });
    };
    let check = match object.get("check") {
        None | Some(Value::Null) => return Err(Invalid::Missing("payload.check")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(Invalid::BadValue {
                field: "payload.check",
                reason: "is empty".into(),
            });
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(Invalid::WrongType {
                field: "payload.check",
                expected: "a string",
                found: json_type(other),
            });
        }
    };
    Ok(match verb {
        "pause" => Command::Pause {
            check,
            until_ms: object.get("until").map(parse_until).transpose()?.flatten(),
            reason: match object.get("reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(Invalid::WrongType {
                        field: "payload.reason",
                        expected: "a string",
                        found: json_type(other),
                    });
                }
            },
        },
        "resume" => Command::Resume { check },
        _ => Command::Run { check },
    })
}

/// `until`: ms since the epoch (a non-negative integer) or an RFC 3339
/// time (`2025-01-01T12:00:00Z`); `null` means no end.
fn parse_until(value: &Value) -> Result<Option<u64>, Invalid> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| Invalid::BadValue {
            field: "payload.until",
            reason: format!("{n} is not a time in ms since the epoch"),
        }),
        Value::String(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| Invalid::BadValue {
                field: "payload.until",
                reason: format!("{text:?} is not an RFC 3339 time: {e}"),
            })
            .and_then(|t| {
                u64::try_from(t.as_millisecond())
                    .map(Some)
                    .map_err(|_| Invalid::BadValue {
                        field: "payload.until",
                        reason: format!("{text:?} is before 1970"),
                    })
            }),
        other => Err(Invalid::WrongType {
            field: "payload.until",
            expected: "a number (ms since the epoch) or an RFC 3339 string",
            found: json_type(other),
        }),
    }
}

/// What applying a command changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// One line for people.
    pub summary: String,
    /// A caveat worth a warning (e.g. the config file still pauses the check).
    pub caveat: Option<String>,
}

/// Applies `command` to the run-time `state`, refusing checks `config`
/// does not have. A pause with a reason but no `until` is kept as a plain
/// pause (the state file has no place for its reason; it is logged).
pub fn apply(
    command: &Command,
    config: &HeartbeatConfig,
    state: &mut State,
) -> Result<Applied, Refused> {
    let check = command.check();
    if config.check(check).is_none() {
        let known = config
            .checks
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Refused::UnknownCheck {
            check: check.to_string(),
            known,
        });
    }
    let applied = match command {
        Command::Pause {
            until_ms: Some(until),
            reason,
            ..
        } => {
            state.paused.insert(
                check.to_string(),
                Pause::Until {
                    until: *until,
                    reason: reason.clone(),
                },
            );
            Applied {
                summary: format!("paused until {}", crate::schedule::format_ms(*until)),
                caveat: None,
            }
        }
        Command::Pause {
            until_ms: None,
            reason,
            ..
        } => {
            state.paused.insert(check.to_string(), Pause::Flag(true));
            Applied {
                summary: match reason {
                    Some(reason) => format!("paused until resumed ({reason})"),
                    None => "paused until resumed".to_string(),
                },
                caveat: None,
            }
        }
        Command::Resume { .. } => {
            let was = state.paused.remove(check).is_some();
            let caveat = config
                .paused
                .get(check)
                .filter(|p| !matches!(p, Pause::Flag(false)))
                .map(|_| "heartbeat.json itself pauses this check (`paused`); that pause stays until the file changes".to_string());
            Applied {
                summary: if was {
                    "resumed"
                } else {
                    "resumed (was not paused at run time)"
                }
                .to_string(),
                caveat,
            }
        }
        Command::Run { .. } => {
            state.run_requests.insert(check.to_string());
            Applied {
                summary: "will run on the next tick whatever its ratio".to_string(),
                caveat: None,
            }
        }
    };
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> HeartbeatConfig {
        crate::config::parse(
            r#"{"agent": "a", "checks": {"ping": {"cadenceMs": 1000}, "sweep": {"cadenceMs": 5000}},
                "paused": {"sweep": true}}"#,
            "heartbeat.json",
        )
        .expect("config")
        .config
    }

    fn envelope(payload: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"event_id": "c1", "event_type": "agent.a.control.pause", "payload": payload}),
        )
        .expect("json")
    }

    #[test]
    fn parses_pause_with_until_in_ms_or_rfc3339_and_a_reason() {
        let cmd = parse(
            "pause",
            &envelope(json!({"check": "ping", "until": 1_800_000_000_000u64, "reason": "deploy"})),
        )
        .expect("valid");
        assert_eq!(
            cmd,
            Command::Pause {
                check: "ping".into(),
                until_ms: Some(1_800_000_000_000),
                reason: Some("deploy".into())
            }
        );
        let cmd = parse(
            "pause",
            &envelope(json!({"check": "ping", "until": "2027-01-15T08:00:00Z"})),
        )
        .expect("valid");
        assert!(
            matches!(
                cmd,
                Command::Pause {
                    until_ms: Some(1_800_000_000_000),
                    ..
                }
            ),
            "{cmd:?}"
        );
    }

    #[test]
    fn accepts_a_bare_payload_without_envelope() {
        assert_eq!(
            parse("run", br#"{"check": "ping"}"#),
            Ok(Command::Run {
                check: "ping".into()
            })
        );
        assert_eq!(
            parse("resume", br#"{"check": "ping"}"#),
            Ok(Command::Resume {
                check: "ping".into()
            })
        );
    }

    #[test]
    fn refuses_malformed_control_messages_with_the_reason() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("pause", b"{{".to_vec(), "body is not JSON"),
            (
                "pause",
                envelope(json!({})),
                "field `payload.check` is missing",
            ),
            (
                "pause",
                envelope(json!({"check": 3})),
                "field `payload.check` must be a string, not number",
            ),
            (
                "pause",
                envelope(json!({"check": " "})),
                "field `payload.check`: is empty",
            ),
            (
                "pause",
                envelope(json!("ping")),
                "field `payload` must be an object, not string",
            ),
            (
                "pause",
                envelope(json!({"check": "ping", "until": "tomorrow"})),
                "field `payload.until`: \"tomorrow\" is not an RFC 3339 time",
            ),
            (
                "pause",
                envelope(json!({"check": "ping", "until": -5})),
                "field `payload.until`: -5 is not a time",
            ),
            (
                "pause",
                envelope(json!({"check": "ping", "reason": 1})),
                "field `payload.reason` must be a string",
            ),
            (
                "reboot",
                envelope(json!({"check": "ping"})),
                "unknown control `reboot`",
            ),
            (
                "run",
                br#"{"event_id": "e", "payload": {"check": "ping"}}"#.to_vec(),
                "field `event_type` is missing",
            ),
        ];
        for (verb, body, reason) in cases {
            let err = parse(verb, &body).expect_err("invalid").to_string();
            assert!(
                err.starts_with(reason),
                "{err} for {verb} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn pause_resume_and_run_change_the_state() {
        let config = config();
        let mut state = State::default();
        apply(
            &Command::Pause {
                check: "ping".into(),
                until_ms: Some(99),
                reason: Some("why".into()),
            },
            &config,
            &mut state,
        )
        .expect("applied");
        assert_eq!(
            state.paused["ping"],
            Pause::Until {
                until: 99,
                reason: Some("why".into())
            }
        );
        apply(
            &Command::Pause {
                check: "ping".into(),
                until_ms: None,
                reason: None,
            },
            &config,
            &mut state,
        )
        .expect("applied");
        assert_eq!(state.paused["ping"], Pause::Flag(true));
        let resumed = apply(
            &Command::Resume {
                check: "ping".into(),
            },
            &config,
            &mut state,
        )
        .expect("applied");
        assert!(state.paused.is_empty());
        assert_eq!(resumed.caveat, None);
        apply(
            &Command::Run {
                check: "ping".into(),
            },
            &config,
            &mut state,
        )
        .expect("applied");
        assert!(state.run_requests.contains("ping"));
    }

    #[test]
    fn resuming_a_check_the_file_pauses_says_the_file_still_pauses_it() {
        let config = config();
        let mut state = State::default();
        let applied = apply(
            &Command::Resume {
                check: "sweep".into(),
            },
            &config,
            &mut state,
        )
        .expect("applied");
        assert!(applied.caveat.is_some_and(|c| c.contains("heartbeat.json")));
    }

    #[test]
    fn an_unknown_check_is_refused_naming_the_known_ones_and_changes_nothing() {
        let config = config();
        let mut state = State::default();
        let err = apply(
            &Command::Run {
                check: "nope".into(),
            },
            &config,
            &mut state,
        )
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "unknown check `nope` (the config has: ping, sweep)"
        );
        assert_eq!(state, State::default());
    }
}
