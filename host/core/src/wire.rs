//! The bounds of the wire that rules in more than one room must keep:
//! AMQP 0-9-1 writes a routing key and the `message_id` and `type`
//! properties as short strings, a one-byte length and then the bytes. A
//! longer one is not refused politely (the client truncates the length
//! byte, the frame no longer parses, the broker closes the connection), so
//! every place that takes such a string from outside (an emitted event's
//! type, an envelope's `event_id`) and the publisher's last check before
//! sending all refuse it against this one constant.

/// The longest AMQP short string, in bytes: the most a routing key, a
/// `message_id` or a `type` property can hold.
pub const MAX_SHORT_STRING: usize = 255;

/// Whether `text` fits in an AMQP short string.
pub fn fits_short_string(text: &str) -> bool {
    text.len() <= MAX_SHORT_STRING
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_string_holds_255_bytes_counted_in_bytes_not_characters() {
        assert!(fits_short_string(&"k".repeat(255)));
        assert!(!fits_short_string(&"k".repeat(256)));
        // 128 two-byte characters: 256 bytes.
        assert!(!fits_short_string(&"é".repeat(128)));
        assert!(fits_short_string(""));
    }
}
