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
/// binding. Linear in practice: `#` backtracks only over the words left.
pub fn matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&w, rest)) => k
                .split_first()
                .is_some_and(|(&kw, krest)| (w == "*" || w == kw) && go(rest, krest)),
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
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
    fn a_wildcard_inside_a_word_is_not_a_pattern_anywhere() {
        assert!(is_pattern("heartbeat.worker.#"));
        assert!(is_pattern("alerts.*"));
        assert!(!is_pattern("a.b*"));
        assert!(!is_pattern("a..b"));
        assert!(!is_pattern(""));
        assert!(!is_pattern("a. b"));
    }
}
