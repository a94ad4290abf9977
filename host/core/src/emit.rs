//! What a handler may emit, and the event types only the host sends.
//!
//! The host publishes two kinds of message that other programs act on: a
//! run's results ([`ResultKeys`]: `check.completed` and
//! `check.state_changed`, under `agent.` or `--results-key-prefix`) and
//! control messages (`agent.{agent}.control.{verb}`, which pause, resume
//! and run checks). No handler may emit either, for any agent, whatever
//! `grants.emit` says. Agent names may contain dots, so "another agent"
//! cannot be told from the routing key (`agent.a.sub.control.pause` is a
//! control message to agent `a.sub`, and looks like an event of agent `a`):
//! the rule is written over every agent at once and knows no roster.
//!
//! An event type is refused ([`EmitPolicy::check`]) when it is:
//! 1. longer than a routing key can be ([`MAX_SHORT_STRING`] bytes);
//! 2. a result key of any agent under any prefix: its last two words are
//!    [`COMPLETED_EVENT`] or [`STATE_CHANGED_EVENT`] (so it covers the
//!    prefix this host publishes with, and that of every other host on the
//!    same exchange);
//! 3. a control message to any agent: `agent.`, at least one word (the
//!    agent's name, or its first word), then `control` as a whole word
//!    anywhere after it (`agent.#.control` and `agent.#.control.#`), which
//!    covers every key [`crate::envelope::route`] reads as control for
//!    some agent;
//! 4. outside the check's own namespace (`agent.{agent}.` and at least one
//!    more byte) and every pattern of its `grants.emit`.
//!
//! What it does not decide: an event that is neither a result nor a
//! control message, under `agent.a.sub.`, is in agent `a`'s namespace as
//! well as in agent `a.sub`'s; only results and control mean anything to
//! the host or its consumers, so only those are kept apart.

use crate::topic;
use crate::wire::MAX_SHORT_STRING;

/// The last words of the routing key (and `event_type`) of a run's result.
pub const COMPLETED_EVENT: &str = "check.completed";

/// The last words of the routing key (and `event_type`) of a check's state
/// change.
pub const STATE_CHANGED_EVENT: &str = "check.state_changed";

/// Where every agent's namespace starts, and its result keys without
/// `--results-key-prefix` (heartbeat-consumer's).
pub const AGENT_PREFIX: &str = "agent.";

/// The word that makes a key under [`AGENT_PREFIX`] a control message.
const CONTROL_WORD: &str = "control";

/// The routing keys of the host's own result events, which are also their
/// `event_type` (and AMQP `type`): one name per event, as for every event
/// the host sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultKeys {
    /// The result of every run.
    pub completed: String,
    /// A change of the check's state.
    pub state_changed: String,
}

impl ResultKeys {
    /// Without a prefix, heartbeat-consumer's keys
    /// `agent.{agent}.check.completed` and `agent.{agent}.check.state_changed`,
    /// which the inbox's own `agent.{agent}.#` binding brings back to the
    /// host (to be acknowledged unread). With `prefix` (`--results-key-prefix
    /// results.`), `{prefix}{agent}.check.completed` and
    /// `{prefix}{agent}.check.state_changed`: no return trip unless a
    /// `watch` pattern matches them. Either way [`is_reserved`] holds for
    /// both, so no handler can emit them.
    pub fn new(agent: &str, prefix: Option<&str>) -> ResultKeys {
        let prefix = prefix.unwrap_or(AGENT_PREFIX);
        ResultKeys {
            completed: format!("{prefix}{agent}.{COMPLETED_EVENT}"),
            state_changed: format!("{prefix}{agent}.{STATE_CHANGED_EVENT}"),
        }
    }
}

/// Whether `event_type` is a result key of some agent under some prefix
/// (rule 2 of the module's list).
pub fn is_result_key(event_type: &str) -> bool {
    [COMPLETED_EVENT, STATE_CHANGED_EVENT].iter().any(|suffix| {
        event_type
            .strip_suffix(suffix)
            .is_some_and(|before| before.is_empty() || before.ends_with('.'))
    })
}

/// Whether `event_type` is a control message to some agent (rule 3).
pub fn is_control_key(event_type: &str) -> bool {
    event_type
        .strip_prefix(AGENT_PREFIX)
        .is_some_and(|rest| rest.split('.').skip(1).any(|word| word == CONTROL_WORD))
}

/// Whether only the host may send `event_type`: a result or a control
/// message, of any agent.
pub fn is_reserved(event_type: &str) -> bool {
    is_result_key(event_type) || is_control_key(event_type)
}

/// Why a handler may not emit an event type. The text is what the guest's
/// `emit` returns as its error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitRefusal {
    /// Longer than a routing key can be.
    #[error("event type of {len} bytes is refused: a routing key holds at most {MAX_SHORT_STRING}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A result or a control message: the host's alone.
    #[error(
        "event type {event_type:?} is reserved for the host (check results, state changes and control messages)"
    )]
    Reserved {
        /// The type refused.
        event_type: String,
    },
    /// Outside the check's namespace and grants.
    #[error(
        "event type {event_type:?} is not allowed: a check may emit under \"{own_prefix}…\" unless granted more"
    )]
    NotGranted {
        /// The type refused.
        event_type: String,
        /// The check's own namespace.
        own_prefix: String,
    },
}

/// Which event types one check's runs may emit: its agent's namespace and
/// its `grants.emit`, less what [`is_reserved`] keeps for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitPolicy {
    /// `agent.{agent}.`.
    own_prefix: String,
    /// The AMQP patterns of `grants.emit`.
    granted: Vec<String>,
}

impl EmitPolicy {
    /// The policy of a check of `agent` granted the patterns `granted`.
    pub fn new(agent: &str, granted: &[String]) -> EmitPolicy {
        EmitPolicy {
            own_prefix: format!("{AGENT_PREFIX}{agent}."),
            granted: granted.to_vec(),
        }
    }

    /// Whether `event_type` may be emitted; why not, when it may not.
    pub fn check(&self, event_type: &str) -> Result<(), EmitRefusal> {
        if event_type.len() > MAX_SHORT_STRING {
            return Err(EmitRefusal::TooLong {
                len: event_type.len(),
            });
        }
        if is_reserved(event_type) {
            return Err(EmitRefusal::Reserved {
                event_type: event_type.to_string(),
            });
        }
        let own =
            event_type.len() > self.own_prefix.len() && event_type.starts_with(&self.own_prefix);
        if own || self.granted.iter().any(|p| topic::matches(p, event_type)) {
            Ok(())
        } else {
            Err(EmitRefusal::NotGranted {
                event_type: event_type.to_string(),
                own_prefix: self.own_prefix.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{self, Route};

    fn policy(agent: &str, granted: &[&str]) -> EmitPolicy {
        let granted: Vec<String> = granted.iter().map(|p| p.to_string()).collect();
        EmitPolicy::new(agent, &granted)
    }

    /// The grants a hostile config may give: none, every agent, everything.
    const GRANTS: [&[&str]; 5] = [
        &[],
        &["agent.#"],
        &["#"],
        &["agent.*.control.*", "agent.*.check.*"],
        &["results.#", "*.#"],
    ];

    fn assert_reserved(policy: &EmitPolicy, event_type: &str) {
        assert_eq!(
            policy.check(event_type),
            Err(EmitRefusal::Reserved {
                event_type: event_type.to_string()
            }),
            "{event_type} under {policy:?}"
        );
    }

    #[test]
    fn a_handler_emits_in_its_own_namespace_and_where_granted_only() {
        let policy = policy("cack", &["alerts.*"]);
        assert_eq!(policy.check("agent.cack.sub_health"), Ok(()));
        assert_eq!(policy.check("alerts.disk"), Ok(()));
        for refused in [
            "agent.cack.",
            "agent.other.sub_health",
            "system.heartbeat.tick",
        ] {
            assert_eq!(
                policy.check(refused),
                Err(EmitRefusal::NotGranted {
                    event_type: refused.to_string(),
                    own_prefix: "agent.cack.".into()
                })
            );
        }
    }

    #[test]
    fn a_routing_key_longer_than_amqp_carries_is_refused_at_the_emit() {
        let policy = policy("cack", &["#"]);
        let at_limit = format!("agent.cack.{}", "k".repeat(MAX_SHORT_STRING - 11));
        assert_eq!(at_limit.len(), MAX_SHORT_STRING);
        assert_eq!(policy.check(&at_limit), Ok(()));
        let over = format!("{at_limit}k");
        assert_eq!(
            policy.check(&over).map_err(|e| e.to_string()),
            Err("event type of 256 bytes is refused: a routing key holds at most 255".into())
        );
    }

    #[test]
    fn the_hosts_own_event_types_are_reserved_even_under_a_grant() {
        let policy = policy("cack", &["#"]);
        for forged in [
            "agent.cack.check.completed",
            "agent.cack.check.state_changed",
            "agent.cack.control.pause",
            "agent.cack.control.run",
            "agent.cack.control",
        ] {
            let why = policy.check(forged).map_err(|e| e.to_string());
            assert!(
                why.as_ref()
                    .is_err_and(|w| w.contains("reserved for the host")),
                "{forged}: {why:?}"
            );
        }
        assert_eq!(policy.check("agent.cack.check.completed.extra"), Ok(()));
        assert_eq!(policy.check("agent.cack.controller"), Ok(()));
        // Issue 24.1: another agent's result was allowed under a grant.
        assert_reserved(&policy, "agent.other.check.completed");
    }

    #[test]
    fn no_grant_lets_a_handler_emit_another_agents_control_message() {
        for granted in GRANTS {
            let policy = policy("a", granted);
            for forged in [
                "agent.b.control.pause",
                "agent.b.control.resume",
                "agent.b.control.run",
                "agent.b.control",
                "agent.b.sub.control.pause",
                "agent.control.control.pause",
            ] {
                assert_reserved(&policy, forged);
            }
        }
    }

    #[test]
    fn no_grant_lets_a_handler_emit_another_agents_results_or_state_changes() {
        for granted in GRANTS {
            let policy = policy("a", granted);
            for forged in [
                "agent.b.check.completed",
                "agent.b.check.state_changed",
                "agent.B.check.completed",
                "results.b.check.completed",
                "results.b.check.state_changed",
                "b.check.completed",
                "check.completed",
            ] {
                assert_reserved(&policy, forged);
            }
        }
    }

    #[test]
    fn an_agent_cannot_speak_for_an_agent_whose_name_extends_its_own() {
        // Agent `a`, granted nothing, emitted these and paused agent `a.sub`.
        let a = policy("a", &[]);
        for forged in [
            "agent.a.sub.check.completed",
            "agent.a.sub.check.state_changed",
            "agent.a.sub.control.pause",
            "agent.a.sub.deeper.control.run",
        ] {
            assert_reserved(&a, forged);
        }
        // Agent `a.sub` cannot forge its own either.
        let a_sub = policy("a.sub", &["#"]);
        assert_reserved(&a_sub, "agent.a.sub.check.completed");
        assert_reserved(&a_sub, "agent.a.sub.control.pause");
        // An event that is neither stays in the namespace.
        assert_eq!(a.check("agent.a.sub.disk_usage"), Ok(()));
    }

    #[test]
    fn every_result_key_the_bus_publishes_with_is_reserved_whatever_the_prefix() {
        let policy = policy("x", &["#"]);
        for prefix in [None, Some("results."), Some(""), Some("res"), Some("a.b.")] {
            for agent in ["cack", "a.sub", "x"] {
                let keys = ResultKeys::new(agent, prefix);
                assert_reserved(&policy, &keys.completed);
                assert_reserved(&policy, &keys.state_changed);
            }
        }
    }

    #[test]
    fn a_results_key_prefix_reserves_the_results_under_it_from_a_check_granted_them() {
        // Issue 24.2: `--results-key-prefix results.` and `grants.emit: ["results.#"]`.
        let policy = policy("cack", &["results.#"]);
        let keys = ResultKeys::new("cack", Some("results."));
        assert_eq!(keys.completed, "results.cack.check.completed");
        assert_eq!(keys.state_changed, "results.cack.check.state_changed");
        assert_reserved(&policy, &keys.completed);
        assert_reserved(&policy, &keys.state_changed);
        assert_eq!(policy.check("results.cack.summary"), Ok(()));
    }

    #[test]
    fn result_keys_without_a_prefix_are_heartbeat_consumers() {
        assert_eq!(
            ResultKeys::new("cack", None),
            ResultKeys {
                completed: envelope::completed_key("cack"),
                state_changed: envelope::state_changed_key("cack"),
            }
        );
    }

    #[test]
    fn what_only_resembles_a_reserved_type_is_not_reserved() {
        for plain in [
            "agent.cack.controller",
            "agent.cack.control_plane",
            "agent.control.pause",
            "agent.cack.check.completed.extra",
            "agent.cack.check.completedly",
            "agent.cack.recheck.completed",
            "control.pause",
            "alerts.check",
        ] {
            assert!(!is_reserved(plain), "{plain}");
        }
    }

    #[test]
    fn every_key_the_inbox_reads_as_control_for_some_agent_is_reserved() {
        let words = ["a", "sub", "control", "check", "completed", "pause", ""];
        let agents = ["a", "a.sub", "control", "a.control", "sub"];
        let mut keys = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = keys
                .iter()
                .flat_map(|k| words.iter().map(move |w| format!("{k}.{w}")))
                .collect();
            keys.extend(longer);
        }
        let mut control = 0;
        for key in keys.iter().map(|k| format!("agent{k}")) {
            if agents
                .iter()
                .any(|agent| matches!(envelope::route(agent, &key), Route::Control(_)))
            {
                control += 1;
                assert!(is_control_key(&key), "{key}");
            }
        }
        assert!(control > 100, "only {control} control keys generated");
    }
}
