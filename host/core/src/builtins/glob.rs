//! File-name patterns as shells write them, matched against one name (no
//! `/`): `*` any run of characters, `?` one character, `[abc]` one of a
//! set, `[a-z]` a range, `[!abc]` (or `[^abc]`) anything but the set. A
//! `*` or `?` does not match a leading `.`, as in a shell, unless the
//! pattern itself starts with `.`. `\` escapes the next character.

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// A `[` with no `]` after it.
    #[error("the set opened at character {0} is not closed with ]")]
    UnclosedSet(usize),
    /// A `/` in the pattern: it matches names in one directory.
    #[error("a pattern matches names directly in the directory and cannot contain /")]
    Slash,
    /// A `\` at the end, escaping nothing.
    #[error("the pattern ends with a lone \\")]
    TrailingEscape,
    /// Nothing to match.
    #[error("the pattern is empty")]
    Empty,
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Set { negated: bool, items: Vec<SetItem> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SetItem {
    One(char),
    Range(char, char),
}

impl SetItem {
    fn contains(&self, c: char) -> bool {
        match *self {
            SetItem::One(x) => x == c,
            SetItem::Range(lo, hi) => lo <= c && c <= hi,
        }
    }
}

/// A checked pattern, ready to match names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`, refusing an unclosed set, a `/`, a trailing `\`
    /// and the empty pattern.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '/' => return Err(GlobError::Slash),
                '*' => {
                    // `**` in one name means the same as `*`.
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::AnyOne);
                    i += 1;
                }
                '\\' => {
                    let next = *chars.get(i + 1).ok_or(GlobError::TrailingEscape)?;
                    if next == '/' {
                        return Err(GlobError::Slash);
                    }
                    tokens.push(Token::Literal(next));
                    i += 2;
                }
                '[' => {
                    let (token, next) = parse_set(&chars, i)?;
                    tokens.push(token);
                    i = next;
                }
                other => {
                    tokens.push(Token::Literal(other));
                    i += 1;
                }
            }
        }
        Ok(Glob {
            text: pattern.to_string(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` (one file name) matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        if name.first() == Some(&'.') && self.tokens.first() != Some(&Token::Literal('.')) {
            return false;
        }
        matches_from(&self.tokens, &name)
    }
}

/// Reads the set starting at `chars[open]` (a `[`): the token and the
/// index after its `]`. A `]` right after `[` or `[!` is a member.
fn parse_set(chars: &[char], open: usize) -> Result<(Token, usize), GlobError> {
    let mut i = open + 1;
    let negated = matches!(chars.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or(GlobError::UnclosedSet(open + 1))?;
        if c == ']' && !first {
            return Ok((Token::Set { negated, items }, i + 1));
        }
        first = false;
        let c = if c == '\\' {
            i += 1;
            *chars.get(i).ok_or(GlobError::UnclosedSet(open + 1))?
        } else {
            c
        };
        if c == '/' {
            return Err(GlobError::Slash);
        }
        // `a-z`, but a `-` before the closing `]` is a member.
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = chars[i + 2];
            items.push(SetItem::Range(c.min(hi), c.max(hi)));
            i += 3;
        } else {
            items.push(SetItem::One(c));
            i += 1;
        }
    }
}

/// Iterative matching with one backtrack point for the last `*`: linear
/// in practice, never exponential.
fn matches_from(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match tokens.get(t) {
            Some(Token::AnyRun) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(Token::AnyOne) => true,
            Some(Token::Literal(c)) => *c == name[n],
            Some(Token::Set { negated, items }) => {
                items.iter().any(|item| item.contains(name[n])) != *negated
            }
            None => false,
        };
        if step {
            t += 1;
            n += 1;
        } else if let Some((star_t, star_n)) = star {
            // Let the last `*` take one more character and retry.
            t = star_t + 1;
            n = star_n + 1;
            star = Some((star_t, star_n + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|token| *token == Token::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).expect("valid pattern").matches(name)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*", "backup.tar.gz"));
        assert!(m("backup-*.tar.gz", "backup-2026-11-30.tar.gz"));
        assert!(!m("backup-*.tar.gz", "backup-2026-11-30.tar"));
        assert!(!m("*.gz", ".gz.gz"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("a*", "a"));
        assert!(m("??.log", "ab.log"));
        assert!(!m("??.log", "abc.log"));
        assert!(m("**.log", "x.log"));
        assert!(m("*a*a*a*a*b", &format!("{}b", "a".repeat(30))));
        assert!(!m("*a*a*a*a*b", &"a".repeat(60)));
    }

    #[test]
    fn sets_ranges_and_negation() {
        assert!(m("db-[abc].dump", "db-b.dump"));
        assert!(!m("db-[abc].dump", "db-d.dump"));
        assert!(m("v[0-9]", "v7"));
        assert!(!m("v[0-9]", "vx"));
        assert!(m("v[!0-9]", "vx"));
        assert!(m("v[^0-9]", "vx"));
        assert!(!m("v[!0-9]", "v3"));
        assert!(m("[]x]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
    }

    #[test]
    fn hidden_files_need_an_explicit_dot() {
        assert!(!m("*", ".part"));
        assert!(!m("?part", ".part"));
        assert!(m(".*", ".part"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("db-[ab"), Err(GlobError::UnclosedSet(4)));
        assert_eq!(Glob::new("sub/*.gz"), Err(GlobError::Slash));
        assert_eq!(Glob::new("x\\"), Err(GlobError::TrailingEscape));
        assert_eq!(
            GlobError::UnclosedSet(4).to_string(),
            "the set opened at character 4 is not closed with ]"
        );
    }
}
