//! What one message can carry on the wire, checked before anything is
//! published: AMQP 0-9-1 writes a routing key and the `message_id` and
//! `type` properties as short strings (at most
//! [`MAX_SHORT_STRING`](heartbeat_core::wire::MAX_SHORT_STRING) bytes, the
//! core's one bound), and the broker refuses bodies over its
//! `max_message_size`. A longer short string is not refused politely: lapin
//! truncates its length byte, the frame no longer parses and the broker
//! closes the whole connection (FRAME_ERROR). So a record that fails
//! [`check`] is never handed to lapin; the publisher dead-letters it instead.
//!
//! Also here: the [`Record`] every event travels as (in the outbox and to
//! the broker), which broker close codes can be a message's fault
//! ([`blames_the_message`]), and [`Suspect`], the count that turns a
//! record the broker keeps closing the connection on into poison. Pure.

use heartbeat_core::wire::{MAX_SHORT_STRING, fits_short_string};
use serde::{Deserialize, Serialize};

/// One event to publish, as the outbox keeps it and the publisher sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Where it goes (also the AMQP `type`).
    pub routing_key: String,
    /// Its envelope's `event_id` (also the AMQP `message_id`).
    pub event_id: String,
    /// The envelope, as JSON text.
    pub body: String,
}

/// The largest body the host sends unless the URL says (`?max_message_size=`):
/// 16 MiB, RabbitMQ 4's default `max_message_size` (3.x allows 128 MiB), so
/// an event this host sends is one the broker accepts by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Connection losses in a row, each with the same record first among the
/// unconfirmed and each a close by the broker that can be the message's
/// fault, after which that record is poison and dead-lettered.
pub const POISON_STRIKES: u32 = 3;

/// The bounds a message must keep to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest body, in bytes (the broker's `max_message_size`).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why a message cannot go on the wire as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    /// The routing key (also sent as the `type` property) is longer than a
    /// short string.
    #[error("routing key is {len} bytes; AMQP carries at most {MAX_SHORT_STRING} (a short string)")]
    RoutingKeyTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The `event_id`, sent as `message_id`, is longer than a short string.
    #[error(
        "event_id (the AMQP message_id) is {len} bytes; AMQP carries at most {MAX_SHORT_STRING} (a short string)"
    )]
    MessageIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The body is over [`Limits::max_body_bytes`].
    #[error("body is {len} bytes; at most {max} are sent (max_message_size)")]
    BodyTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
}

/// Whether a message with this routing key, `message_id` (if any) and body
/// length can be sent; the first bound it breaks otherwise.
pub fn check_parts(
    routing_key: &str,
    message_id: Option<&str>,
    body_len: usize,
    limits: &Limits,
) -> Result<(), Unsendable> {
    if !fits_short_string(routing_key) {
        return Err(Unsendable::RoutingKeyTooLong {
            len: routing_key.len(),
        });
    }
    if let Some(id) = message_id
        && !fits_short_string(id)
    {
        return Err(Unsendable::MessageIdTooLong { len: id.len() });
    }
    if body_len > limits.max_body_bytes {
        return Err(Unsendable::BodyTooLarge {
            len: body_len,
            max: limits.max_body_bytes,
        });
    }
    Ok(())
}

/// Whether an outbox record can be sent as the publisher sends it
/// (`routing_key` also as `type`, `event_id` as `message_id`; the other
/// properties are the host's constants).
pub fn check(record: &Record, limits: &Limits) -> Result<(), Unsendable> {
    check_parts(
        &record.routing_key,
        Some(&record.event_id),
        record.body.len(),
        limits,
    )
}

/// Splits records into those the wire can carry and those it cannot (each
/// with why), keeping the order of each.
pub fn split_sendable(
    records: Vec<Record>,
    limits: &Limits,
) -> (Vec<Record>, Vec<(Record, Unsendable)>) {
    let mut sendable = Vec::with_capacity(records.len());
    let mut unsendable = Vec::new();
    for record in records {
        match check(&record, limits) {
            Ok(()) => sendable.push(record),
            Err(why) => unsendable.push((record, why)),
        }
    }
    (sendable, unsendable)
}

/// Whether a broker closing a channel or the connection with `code` can be
/// the fault of a message it was sent: a frame or syntax error (what a
/// malformed message causes), a command or frame out of place, content too
/// large or a failed precondition (RabbitMQ's `max_message_size`, a bad
/// property), or a method the broker does not support (540). Not the broker
/// going away (320 CONNECTION_FORCED), permissions or topology (403, 404,
/// 405, 402, 530: every message would fail alike), a channel misused (504),
/// resources (506) or the broker's own internal error (541).
pub fn blames_the_message(code: u16) -> bool {
    matches!(code, 311 | 406 | 501 | 502 | 503 | 505 | 540)
}

/// The record first among the unconfirmed when sessions ended, and how
/// many sessions in a row ended that way with a close that can be its
/// fault ([`blames_the_message`]). Each session counts once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Suspect {
    event_id: Option<String>,
    strikes: u32,
    last_session: Option<u64>,
}

impl Suspect {
    /// Session `session` was lost with `event_id` first among the records
    /// not confirmed; `blamed` says whether the broker closed it with a
    /// code that can be the message's fault. True when the record is
    /// poison: [`POISON_STRIKES`] such losses in a row, counted from here
    /// on afresh. A loss without blame, or with another record first,
    /// starts the count over.
    pub fn lost(&mut self, session: u64, event_id: &str, blamed: bool) -> bool {
        if self.last_session == Some(session) {
            return false;
        }
        self.last_session = Some(session);
        if !blamed {
            self.event_id = None;
            self.strikes = 0;
            return false;
        }
        if self.event_id.as_deref() == Some(event_id) {
            self.strikes += 1;
        } else {
            self.event_id = Some(event_id.to_string());
            self.strikes = 1;
        }
        if self.strikes >= POISON_STRIKES {
            self.event_id = None;
            self.strikes = 0;
            return true;
        }
        false
    }

    /// `event_id` was confirmed (or set aside): it is no longer suspect.
    pub fn cleared(&mut self, event_id: &str) {
        if self.event_id.as_deref() == Some(event_id) {
            self.event_id = None;
            self.strikes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(routing_key: &str, event_id: &str, body: &str) -> Record {
        Record {
            routing_key: routing_key.into(),
            event_id: event_id.into(),
            body: body.into(),
        }
    }

    #[test]
    fn short_strings_over_255_bytes_and_bodies_over_the_bound_are_unsendable() {
        let limits = Limits { max_body_bytes: 10 };
        assert_eq!(check(&record("a.b", "e1", "{}"), &limits), Ok(()));
        let key = "k".repeat(255);
        assert_eq!(check(&record(&key, "e1", "{}"), &limits), Ok(()));
        let key = "k".repeat(300);
        assert_eq!(
            check(&record(&key, "e1", "{}"), &limits),
            Err(Unsendable::RoutingKeyTooLong { len: 300 })
        );
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        let key = "é".repeat(128);
        assert_eq!(
            check(&record(&key, "e1", "{}"), &limits),
            Err(Unsendable::RoutingKeyTooLong { len: 256 })
        );
        let id = "i".repeat(256);
        assert_eq!(
            check(&record("a.b", &id, "{}"), &limits),
            Err(Unsendable::MessageIdTooLong { len: 256 })
        );
        assert_eq!(
            check(&record("a.b", "e1", "0123456789x"), &limits),
            Err(Unsendable::BodyTooLarge { len: 11, max: 10 })
        );
        assert!(
            Unsendable::RoutingKeyTooLong { len: 300 }
                .to_string()
                .contains("routing key is 300 bytes")
        );
    }

    #[test]
    fn only_closes_a_message_can_cause_blame_it() {
        for code in [501, 502, 503, 505, 406, 311, 540] {
            assert!(blames_the_message(code), "{code}");
        }
        for code in [200, 320, 402, 403, 404, 405, 504, 506, 530, 541] {
            assert!(!blames_the_message(code), "{code}");
        }
    }

    #[test]
    fn a_record_first_in_line_at_three_blamed_losses_in_a_row_is_poison() {
        let mut suspect = Suspect::default();
        assert!(!suspect.lost(1, "e1", true));
        // The same session counts once.
        assert!(!suspect.lost(1, "e1", true));
        assert!(!suspect.lost(2, "e1", true));
        assert!(suspect.lost(3, "e1", true));
        // Counted afresh afterwards.
        assert!(!suspect.lost(4, "e1", true));
    }

    #[test]
    fn a_loss_without_blame_another_record_or_a_confirm_starts_the_count_over() {
        let mut suspect = Suspect::default();
        assert!(!suspect.lost(1, "e1", true));
        assert!(!suspect.lost(2, "e1", true));
        // The broker restarting (CONNECTION_FORCED) is not the record's fault.
        assert!(!suspect.lost(3, "e1", false));
        assert!(!suspect.lost(4, "e1", true));
        assert!(!suspect.lost(5, "e1", true));
        assert!(!suspect.lost(6, "e2", true));
        assert!(!suspect.lost(7, "e2", true));
        suspect.cleared("e2");
        assert!(!suspect.lost(8, "e2", true));
        assert!(!suspect.lost(9, "e2", true));
        suspect.cleared("other");
        assert!(suspect.lost(10, "e2", true));
    }
}
