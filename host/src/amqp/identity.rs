//! Who published a message, as the host marks it on the wire and reads it
//! back. Everything the host publishes carries `app_id` [`APP_ID`] and two
//! headers: [`OWN_HEADER`] (the agent whose bus sent it) and
//! [`INSTANCE_HEADER`] (this process's random instance id). On the inbox
//! they tell apart ([`Inbound`]):
//!
//! - the agent's own events coming back through its `agent.{name}.#`
//!   binding: acknowledged unread;
//! - a control message that this process published (a handler of any of
//!   its agents emitted it as an event): never applied as control, refused;
//! - everything else, routed by its key.
//!
//! Anyone can write the agent header; only this process knows the instance
//! id it puts beside it, so a header alone makes nothing the host's own.
//! Pure but for [`instance_id`], made once per process.

use std::sync::OnceLock;

use heartbeat_core::envelope::{self, Route};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};

use super::wire::Record;

/// The AMQP header naming the agent whose host published a message. With
/// [`INSTANCE_HEADER`], how the host recognises what it published itself.
pub const OWN_HEADER: &str = "x-heartbeat-host-agent";

/// The AMQP header carrying the publishing process's instance id (a UUID
/// made at start-up, [`instance_id`]): a message is the host's own only
/// when this and [`OWN_HEADER`] both match, so adding the agent header to
/// a tick does not make the host drop it.
pub const INSTANCE_HEADER: &str = "x-heartbeat-host-instance";

/// The AMQP `app_id` of everything the host publishes.
pub const APP_ID: &str = "heartbeat-host";

/// This process's instance id (random, made on first use, the same for
/// every bus of the process), sent in [`INSTANCE_HEADER`].
pub(crate) fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

/// The name one agent's bus publishes under: the agent and the process's
/// instance id, written into every message it sends and compared with the
/// headers of every delivery it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The agent (`agent.{agent}.inbox`).
    pub agent: String,
    /// The process's instance id ([`instance_id`] outside tests).
    pub instance: String,
}

impl Identity {
    /// `agent` in this process.
    pub fn of(agent: &str) -> Identity {
        Identity {
            agent: agent.to_string(),
            instance: instance_id().to_string(),
        }
    }

    /// The headers marking a message as published by this agent in this
    /// process.
    fn headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(
            OWN_HEADER.into(),
            AMQPValue::LongString(LongString::from(self.agent.as_str())),
        );
        headers.insert(
            INSTANCE_HEADER.into(),
            AMQPValue::LongString(LongString::from(self.instance.as_str())),
        );
        headers
    }

    /// The AMQP properties of an event: JSON, persistent, its `event_id`
    /// as `message_id`, its routing key as `type`, stamped `now_s` (Unix
    /// seconds). The record must have passed [`super::wire::check`]: both
    /// strings are short strings.
    pub fn event_properties(&self, record: &Record, now_s: u64) -> BasicProperties {
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(record.event_id.as_str().into())
            .with_type(record.routing_key.as_str().into())
            .with_app_id(APP_ID.into())
            .with_timestamp(now_s)
            .with_headers(self.headers())
    }

    /// The AMQP properties of a beat: a raw text body, transient, stamped
    /// `now_s`, marked as the host's own (so its inbox skips it should a
    /// binding match).
    pub fn beat_properties(&self, now_s: u64) -> BasicProperties {
        BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_app_id(APP_ID.into())
            .with_timestamp(now_s)
            .with_headers(self.headers())
    }

    /// What the inbox does with a delivery on `routing_key` with
    /// `properties`. Headers only: the body is not read.
    pub fn screen<'k>(&self, properties: &BasicProperties, routing_key: &'k str) -> Inbound<'k> {
        let route = envelope::route(&self.agent, routing_key);
        let headers = properties.headers().as_ref();
        let header = |key: &str| headers.and_then(|h| header_bytes(h, key));
        let from_this_process = header(INSTANCE_HEADER) == Some(self.instance.as_bytes());
        if !from_this_process {
            return Inbound::Route(route);
        }
        let publisher = header(OWN_HEADER);
        if let Route::Control(verb) = route {
            return Inbound::ControlFromThisHost(ControlFromThisHost {
                verb,
                publisher: publisher.map(|agent| String::from_utf8_lossy(agent).into_owned()),
            });
        }
        if publisher == Some(self.agent.as_bytes()) {
            return Inbound::Own;
        }
        Inbound::Route(route)
    }
}

/// A delivery as the inbox sees it once its headers are read
/// ([`Identity::screen`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inbound<'k> {
    /// One of this agent's own messages come back (both headers match):
    /// acknowledged unread.
    Own,
    /// A control message this process published: refused, never applied.
    ControlFromThisHost(ControlFromThisHost<'k>),
    /// Anything else: handled as its routing key says.
    Route(Route<'k>),
}

/// A control message carrying this process's instance id. Only a handler's
/// emitted event can be one (the host itself sends no control message), and
/// no handler may steer an agent, its own or another of the process, so it
/// is refused. Its `Display` is the reason the `message_refused` log gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ControlFromThisHost<'k> {
    /// The control verb (`pause`, `run`, …).
    pub verb: &'k str,
    /// The agent whose bus published it ([`OWN_HEADER`]), if named.
    pub publisher: Option<String>,
}

impl std::fmt::Display for ControlFromThisHost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let agent = self.publisher.as_deref().unwrap_or("(not named)");
        write!(
            f,
            "control message `{}` published by this host process (agent {agent}, \
             {INSTANCE_HEADER} is this process's): a handler's event, never applied as control",
            self.verb
        )
    }
}

/// A header's text as bytes, when it is a string (long or short).
fn header_bytes<'h>(headers: &'h FieldTable, key: &str) -> Option<&'h [u8]> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_headers(pairs: &[(&str, &str)]) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (key, value) in pairs {
            headers.insert(
                (*key).into(),
                AMQPValue::LongString(LongString::from(*value)),
            );
        }
        BasicProperties::default().with_headers(headers)
    }

    fn cack() -> Identity {
        Identity::of("cack")
    }

    const TICK: &str = "system.heartbeat.tick";
    const RESULT: &str = "agent.cack.check.completed";

    #[test]
    fn own_events_need_the_agent_and_this_process_instance_not_the_agent_header_alone() {
        let instance = instance_id();
        let own = with_headers(&[(OWN_HEADER, "cack"), (INSTANCE_HEADER, instance)]);
        assert_eq!(cack().screen(&own, RESULT), Inbound::Own);
        assert_eq!(cack().screen(&own, TICK), Inbound::Own);
        // Another agent's identity is not this agent's own.
        assert_eq!(
            Identity::of("other").screen(&own, TICK),
            Inbound::Route(Route::Tick)
        );
        // A forged agent header, alone or with a made-up instance id, is not
        // the host's: such a tick is handled as a tick.
        let forged = with_headers(&[(OWN_HEADER, "cack")]);
        assert_eq!(cack().screen(&forged, TICK), Inbound::Route(Route::Tick));
        let made_up = with_headers(&[
            (OWN_HEADER, "cack"),
            (INSTANCE_HEADER, "00000000-0000-4000-8000-000000000000"),
        ]);
        assert_eq!(cack().screen(&made_up, TICK), Inbound::Route(Route::Tick));
        let instance_only = with_headers(&[(INSTANCE_HEADER, instance)]);
        assert_eq!(
            cack().screen(&instance_only, TICK),
            Inbound::Route(Route::Tick)
        );
        assert_eq!(
            cack().screen(&BasicProperties::default(), TICK),
            Inbound::Route(Route::Tick)
        );
        // Short strings count as well as long ones.
        let mut headers = FieldTable::default();
        headers.insert(OWN_HEADER.into(), AMQPValue::ShortString("cack".into()));
        headers.insert(
            INSTANCE_HEADER.into(),
            AMQPValue::ShortString(instance.into()),
        );
        let short = BasicProperties::default().with_headers(headers);
        assert_eq!(cack().screen(&short, TICK), Inbound::Own);
    }

    #[test]
    fn the_instance_id_is_a_uuid_made_once_per_process() {
        let id = instance_id();
        assert_eq!(id, instance_id());
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(cack().instance, id);
    }

    #[test]
    fn a_control_message_another_agent_of_this_process_published_is_refused_naming_it() {
        // Agent `a`'s handler emitted `agent.cack.control.pause`: it went out
        // with `a`'s headers and this process's instance id.
        let from_a = with_headers(&[(OWN_HEADER, "a"), (INSTANCE_HEADER, instance_id())]);
        let inbound = cack().screen(&from_a, "agent.cack.control.pause");
        let Inbound::ControlFromThisHost(control) = inbound else {
            panic!("routed, not refused: {inbound:?}");
        };
        assert_eq!(
            control,
            ControlFromThisHost {
                verb: "pause",
                publisher: Some("a".into())
            }
        );
        let why = control.to_string();
        assert!(why.contains("`pause`"), "{why}");
        assert!(why.contains("agent a"), "{why}");
        assert!(why.contains("never applied as control"), "{why}");
        // Every verb, not only pause.
        assert!(matches!(
            cack().screen(&from_a, "agent.cack.control.resume"),
            Inbound::ControlFromThisHost(ControlFromThisHost { verb: "resume", .. })
        ));
    }

    #[test]
    fn a_control_message_this_agent_or_an_unnamed_agent_of_this_process_published_is_refused() {
        // Its own control message is refused too, not skipped as an own event.
        let own = with_headers(&[(OWN_HEADER, "cack"), (INSTANCE_HEADER, instance_id())]);
        assert_eq!(
            cack().screen(&own, "agent.cack.control.run"),
            Inbound::ControlFromThisHost(ControlFromThisHost {
                verb: "run",
                publisher: Some("cack".into())
            })
        );
        // The instance id alone is this process's mark.
        let unnamed = with_headers(&[(INSTANCE_HEADER, instance_id())]);
        let control = ControlFromThisHost {
            verb: "pause",
            publisher: None,
        };
        assert_eq!(
            cack().screen(&unnamed, "agent.cack.control.pause"),
            Inbound::ControlFromThisHost(control.clone())
        );
        assert!(control.to_string().contains("(not named)"), "{control}");
    }

    #[test]
    fn a_control_message_from_outside_this_process_is_routed_as_control_even_with_an_agent_header()
    {
        for properties in [
            BasicProperties::default(),
            with_headers(&[(OWN_HEADER, "a")]),
            with_headers(&[
                (OWN_HEADER, "a"),
                (INSTANCE_HEADER, "00000000-0000-4000-8000-000000000000"),
            ]),
        ] {
            assert_eq!(
                cack().screen(&properties, "agent.cack.control.pause"),
                Inbound::Route(Route::Control("pause"))
            );
        }
    }

    #[test]
    fn another_agents_non_control_event_from_this_process_is_routed_not_skipped() {
        // A watched beat another agent of this process sent is still a beat.
        let from_a = with_headers(&[(OWN_HEADER, "a"), (INSTANCE_HEADER, instance_id())]);
        assert_eq!(
            cack().screen(&from_a, "heartbeat.a"),
            Inbound::Route(Route::Beat("a"))
        );
    }

    #[test]
    fn events_carry_the_agent_the_instance_and_the_record_as_message_id_and_type() {
        let record = Record {
            routing_key: RESULT.into(),
            event_id: "e1".into(),
            body: "{}".into(),
        };
        let properties = cack().event_properties(&record, 42);
        assert_eq!(
            properties.message_id().as_ref().map(|s| s.as_str()),
            Some("e1")
        );
        assert_eq!(properties.kind().as_ref().map(|s| s.as_str()), Some(RESULT));
        assert_eq!(
            properties.app_id().as_ref().map(|s| s.as_str()),
            Some(APP_ID)
        );
        assert_eq!(*properties.delivery_mode(), Some(2));
        assert_eq!(*properties.timestamp(), Some(42));
        // What the host sends, it recognises as its own.
        assert_eq!(cack().screen(&properties, RESULT), Inbound::Own);
        let beat = cack().beat_properties(7);
        assert_eq!(
            beat.content_type().as_ref().map(|s| s.as_str()),
            Some("text/plain")
        );
        assert_eq!(*beat.delivery_mode(), None);
        assert_eq!(cack().screen(&beat, "heartbeat.cack"), Inbound::Own);
    }
}
