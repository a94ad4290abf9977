//! AMQP topic patterns, the one rule for every place that takes one
//! (`watch`, `grants.emit`, the emit check on every event a handler sends):
//! words split on `.`, `*` stands for exactly one word, `#` for zero or more.

/// Whether `pattern` is a topic pattern the broker would bind with the
/// meaning it appears to have: non-empty dot-separated words, `*` and `#`
/// only as whole words (`a.b*` is refused, since the broker would read the
/// `*` literally), no white space.
pub fn is_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.split('.').all(|word| {
            !word.is_empty()
                && (word == "*" || word == "#" || !word.contains(['*', '#']))
                && !word.chars().any(char::is_whitespace)
        })
}

/// Whether routing key `key` matches `pattern`, as the broker matches a
/// binding: RabbitMQ's topic exchange splits both on `.`, and the empty
/// key has no words at all (so `*` does not match it, `#` does).
///
/// Time and memory are O(pattern words × key words) whatever the
/// wildcards: a backtracking match is exponential in the number of `#`
/// against a long key that does not match, and the key is what a handler
/// chose to emit.
pub fn matches(pattern: &str, key: &str) -> bool {
    fn words(s: &str) -> Vec<&str> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').collect()
        }
    }
    let key = words(key);
    // `reached[j]`: the pattern's words so far can match the key's first j
    // words. Before any pattern word, only the empty prefix is matched.
    let mut reached: Vec<bool> = std::iter::once(true)
        .chain(key.iter().map(|_| false))
        .collect();
    for word in words(pattern) {
        reached = if word == "#" {
            // Zero or more words: every prefix at or after a reached one.
            let mut seen = false;
            reached
                .iter()
                .map(|&r| {
                    seen |= r;
                    seen
                })
                .collect()
        } else {
            // Exactly one word, `*` or equal to the key's next one.
            std::iter::once(false)
                .chain(
                    reached
                        .iter()
                        .zip(&key)
                        .map(|(&r, &k)| r && (word == "*" || word == k)),
                )
                .collect()
        };
    }
    reached.last().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_like_amqp() {
        assert!(matches("agent.cack.#", "agent.cack.sub_health"));
        assert!(matches("agent.cack.#", "agent.cack"));
        assert!(matches("agent.*.alert", "agent.x.alert"));
        assert!(!matches("agent.*.alert", "agent.x.y.alert"));
        assert!(matches("#", "anything.at.all"));
        assert!(!matches("system.heartbeat.tick", "system.heartbeat"));
    }

    #[test]
    fn an_empty_routing_key_has_no_words_as_in_rabbitmq() {
        // Found by fuzz::topic_matching_agrees_with_a_reference_amqp_matcher:
        // `*` matched "" (read as one empty word).
        assert!(!matches("*", ""));
        assert!(!matches("#.*", ""));
        assert!(!matches("*.#", ""));
        assert!(matches("#", ""));
        assert!(matches("#.#", ""));
        // An empty word between dots is still a word.
        assert!(matches("a.*", "a."));
        assert!(matches("*.a", ".a"));
    }

    #[test]
    fn matching_a_long_key_against_several_hashes_takes_no_time() {
        // Found by fuzz::topic_functions_never_panic_on_any_text, which hung:
        // backtracking tried every way to split 2000 words among the `#`s.
        let pattern = "#.a.#.a.#.a.#.a.#.b";
        let key = vec!["a"; 2000].join(".");
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(matches(pattern, &key)));
        let matched = result.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(matched, Ok(false), "still matching after 10 s");
        let key = format!("{}.b", vec!["a"; 2000].join("."));
        assert!(matches(pattern, &key));
    }

    #[test]
    fn a_wildcard_inside_a_word_is_not_a_pattern_anywhere() {
        assert!(is_pattern("heartbeat.worker.#"));
        assert!(is_pattern("alerts.*"));
        assert!(!is_pattern("a.b*"));
        assert!(!is_pattern("a..b"));
        assert!(!is_pattern(""));
        assert!(!is_pattern("a. b"));
    }
}
