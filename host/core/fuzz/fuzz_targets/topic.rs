//! Feeds the input (lossy UTF-8) split at its first newline as a topic
//! pattern and a routing key (no newline: the whole input is both) to
//! `topic::is_pattern` and `topic::matches`. Asserts: no panic; `#`
//! matches every key and every text matches itself; a pattern without
//! wildcard words matches exactly the equal key; a valid pattern has no
//! empty word; and on short inputs `matches` agrees with a plain
//! backtracking matcher of the AMQP rules, written out apart from it.
#![no_main]

use heartbeat_core::topic;
use libfuzzer_sys::fuzz_target;

/// Words of a pattern or key: the empty text has none.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// AMQP topic matching as RabbitMQ defines it: `*` is exactly one word,
/// `#` zero or more. Exponential in the number of `#`: short inputs only.
fn reference(p: &[&str], k: &[&str]) -> bool {
    match (p, k) {
        ([], []) => true,
        ([], _) => false,
        (["#", rest @ ..], _) => reference(rest, k) || (!k.is_empty() && reference(p, &k[1..])),
        ([_, ..], []) => false,
        ([w, p_rest @ ..], [kw, k_rest @ ..]) => {
            (*w == "*" || w == kw) && reference(p_rest, k_rest)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, key) = text.split_once('\n').unwrap_or((&text, &text));

    let matched = topic::matches(pattern, key);
    assert!(topic::matches("#", key));
    assert!(topic::matches(pattern, pattern), "{pattern:?}");
    let (p, k) = (words(pattern), words(key));
    if !p.iter().any(|w| *w == "*" || *w == "#") {
        assert_eq!(matched, pattern == key, "{pattern:?} / {key:?}");
    }
    if topic::is_pattern(pattern) {
        assert!(!p.iter().any(|w| w.is_empty()), "{pattern:?}");
        assert!(!pattern.chars().any(char::is_whitespace), "{pattern:?}");
    }
    if p.len() <= 6 && k.len() <= 12 {
        assert_eq!(matched, reference(&p, &k), "{pattern:?} against {key:?}");
    }
});
