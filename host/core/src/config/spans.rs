//! Where the values of a JSON document start, found by parsing the
//! document's structure rather than by searching its text.
//!
//! Errors found after deserializing (a bad time window, a grant that is not
//! allowed) know only their field path, e.g. `checks.b.window.start`. A text
//! search for `"b"` and then `"window"` can land inside an earlier check's
//! free-form `meta`; [`Spans`] instead records every value under the path it
//! really has, so the position is that of the value the path names.
//!
//! Only `std` is used. The scan is one forward pass over the bytes: no
//! allocation per character or per value (keys are copied once into one
//! shared buffer), so a 10 MB document costs time and memory linear in its
//! size.

/// Containers nested deeper than this are still scanned (so that what comes
/// after them is positioned right) but their contents are not recorded and
/// cannot be located. It also bounds the scanner's recursion.
const MAX_DEPTH: usize = 128;

/// Where each value of a JSON document starts, by field path.
///
/// Built once by [`Spans::scan`]; holds no reference to the text.
pub struct Spans {
    /// Every recorded value, in document order (pre-order), so a smaller
    /// index is a value that starts earlier. The root is index 0.
    nodes: Vec<Node>,
    /// The members of every object, each object's contiguous and in
    /// document order; a node of kind `Object` points at its range.
    members: Vec<Member>,
    /// The elements of every array, likewise; the index in the range is the
    /// index in the array.
    elements: Vec<u32>,
    /// Every decoded object key, back to back; a member points at its key.
    keys: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Scalar,
    Object,
    Array,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    line: u32,
    column: u32,
    kind: Kind,
    /// Start of this container's range in `members` or `elements`.
    start: u32,
    len: u32,
}

#[derive(Clone, Copy, Debug)]
struct Member {
    key_start: u32,
    key_end: u32,
    child: u32,
}

/// The scan cannot go on: the text is not valid JSON here (or is too large
/// for 32-bit bookkeeping). What was recorded so far is kept.
struct Stop;

impl Spans {
    /// Scans `text`, which may be any text at all. Invalid or truncated JSON
    /// ends the scan at the error and keeps everything recorded before it
    /// (a value cut short is still located where it starts). Never panics;
    /// one pass, linear in the length of `text`; containers nested deeper
    /// than 128 levels are skipped over rather than descended into.
    ///
    /// A leading byte order mark is skipped and not counted as a column.
    /// Anything after the root value is ignored.
    #[must_use]
    pub fn scan(text: &str) -> Spans {
        let mut scanner = Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
            cursor: Cursor {
                at: 0,
                line: 1,
                column: 1,
            },
            spans: Spans {
                nodes: Vec::new(),
                members: Vec::new(),
                elements: Vec::new(),
                keys: String::new(),
            },
            pending_members: Vec::new(),
            pending_elements: Vec::new(),
        };
        // An error only ends the scan; everything before it is recorded.
        let _ = scanner.document();
        scanner.spans
    }

    /// The 1-based (line, column) where the value at `path` starts, or None.
    ///
    /// `path` uses the host's field path syntax: object keys joined by `.`,
    /// array indices as `[i]` appended to the key, e.g.
    /// `checks.sub_health.window.tz`, `watch[0]`,
    /// `checks.a.triggerOnQuarters[2]`, `checks.a.grants.emit[0]`; the root
    /// is `.`. The position is that of the value's first character: the `"`
    /// of a string, the `{` of an object, the `-` or first digit of a number.
    ///
    /// The match is exact on the rendered path (keys are not escaped, so a
    /// key may itself contain `.` or `[`); when several values render to
    /// the same path (a duplicate key, or `"a.b"` beside `"a": {"b"}`), the
    /// one that starts first in the document wins. Lines are split on `\n`;
    /// columns count characters (Unicode scalar values), not bytes.
    #[must_use]
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let found = if path == "." {
            0
        } else {
            self.find(0, path, 0)?
        };
        let node = self.nodes.get(usize::try_from(found).ok()?)?;
        Some((
            usize::try_from(node.line).ok()?,
            usize::try_from(node.column).ok()?,
        ))
    }

    /// The first value, in document order, under node `id` (whose own path
    /// renders as `path[..at]`) whose path renders as all of `path`.
    ///
    /// Each node is visited at most once (a node is reached only from its
    /// parent), and the recursion is no deeper than the recorded tree,
    /// which `MAX_DEPTH` bounds.
    fn find(&self, id: u32, path: &str, at: usize) -> Option<u32> {
        let rest = path.get(at..)?;
        if rest.is_empty() {
            return Some(id);
        }
        let node = self.nodes.get(usize::try_from(id).ok()?)?;
        let start = usize::try_from(node.start).ok()?;
        let end = start.checked_add(usize::try_from(node.len).ok()?)?;
        match node.kind {
            Kind::Scalar => None,
            Kind::Array => {
                let (index, used) = parse_index(rest)?;
                let child = *self.elements.get(start..end)?.get(index)?;
                self.find(child, path, at + used)
            }
            Kind::Object => {
                // A key is preceded by `.` unless it is the first segment.
                let separator = if id == 0 { "" } else { "." };
                let rest = rest.strip_prefix(separator)?;
                let key_at = at + separator.len();
                // Members are in document order and each one's subtree
                // starts after the previous one's, so the first match is
                // the earliest value.
                self.members.get(start..end)?.iter().find_map(|member| {
                    let key_start = usize::try_from(member.key_start).ok()?;
                    let key_end = usize::try_from(member.key_end).ok()?;
                    let key = self.keys.get(key_start..key_end)?;
                    let after = rest.strip_prefix(key)?;
                    if after.is_empty() || after.starts_with(['.', '[']) {
                        self.find(member.child, path, key_at + key.len())
                    } else {
                        None
                    }
                })
            }
        }
    }
}

/// `[i]` at the start of `rest`, as the host renders an index (decimal, no
/// leading zeros): the index and the number of bytes it takes.
fn parse_index(rest: &str) -> Option<(usize, usize)> {
    let inner = rest.strip_prefix('[')?;
    let close = inner.find(']')?;
    let digits = &inner[..close];
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    Some((digits.parse().ok()?, close + 2))
}

fn to_u32(n: usize) -> Result<u32, Stop> {
    u32::try_from(n).map_err(|_| Stop)
}

/// Line and column at a byte offset, advanced incrementally: values are
/// recorded in increasing offset order, so the whole scan counts each byte
/// once.
struct Cursor {
    at: usize,
    line: usize,
    column: usize,
}

impl Cursor {
    fn advance(&mut self, bytes: &[u8], to: usize) {
        for &b in bytes.get(self.at..to).unwrap_or_default() {
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if b & 0xC0 != 0x80 {
                // Not a UTF-8 continuation byte: a character starts here.
                self.column += 1;
            }
        }
        self.at = self.at.max(to);
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The next byte to read.
    at: usize,
    cursor: Cursor,
    spans: Spans,
    /// Members of the objects being scanned, innermost last; moved into
    /// `spans.members` when their object ends, so each object's members
    /// are contiguous there.
    pending_members: Vec<Member>,
    pending_elements: Vec<u32>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn document(&mut self) -> Result<(), Stop> {
        if self.text.starts_with('\u{feff}') {
            self.at = '\u{feff}'.len_utf8();
            self.cursor.at = self.at;
        }
        let root = self.begin_value()?;
        self.value_body(root, 0)
    }

    /// Records the value that starts at the next non-whitespace byte
    /// (before reading it, so a value cut short is still located).
    fn begin_value(&mut self) -> Result<u32, Stop> {
        self.skip_whitespace();
        let kind = match self.peek() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => Kind::Scalar,
            _ => return Err(Stop),
        };
        self.cursor.advance(self.bytes, self.at);
        let id = to_u32(self.spans.nodes.len())?;
        self.spans.nodes.push(Node {
            line: to_u32(self.cursor.line)?,
            column: to_u32(self.cursor.column)?,
            kind,
            start: 0,
            len: 0,
        });
        Ok(id)
    }

    /// Reads the value `node` was recorded for, at `depth` (the root is 0).
    fn value_body(&mut self, node: u32, depth: usize) -> Result<(), Stop> {
        match self.peek() {
            Some(b'{') => {
                self.at += 1;
                if depth >= MAX_DEPTH {
                    return self.skip_nested();
                }
                let mark = self.pending_members.len();
                let result = self.object_members(depth);
                // Also when the object was cut short: what was read of it
                // stays locatable.
                let flushed = self.flush_members(node, mark);
                result.and(flushed)
            }
            Some(b'[') => {
                self.at += 1;
                if depth >= MAX_DEPTH {
                    return self.skip_nested();
                }
                let mark = self.pending_elements.len();
                let result = self.array_elements(depth);
                let flushed = self.flush_elements(node, mark);
                result.and(flushed)
            }
            Some(b'"') => self.skip_string(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => {
                self.number();
                Ok(())
            }
        }
    }

    fn object_members(&mut self, depth: usize) -> Result<(), Stop> {
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(Stop);
            }
            let (key_start, key_end) = self.key()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(Stop);
            }
            self.at += 1;
            let child = self.begin_value()?;
            self.pending_members.push(Member {
                key_start,
                key_end,
                child,
            });
            self.value_body(child, depth + 1)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    fn array_elements(&mut self, depth: usize) -> Result<(), Stop> {
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            let child = self.begin_value()?;
            self.pending_elements.push(child);
            self.value_body(child, depth + 1)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    fn flush_members(&mut self, node: u32, mark: usize) -> Result<(), Stop> {
        let start = self.spans.members.len();
        let tail = self.pending_members.get(mark..).unwrap_or_default();
        self.spans.members.extend_from_slice(tail);
        self.pending_members.truncate(mark);
        let len = self.spans.members.len() - start;
        self.set_range(node, start, len)
    }

    fn flush_elements(&mut self, node: u32, mark: usize) -> Result<(), Stop> {
        let start = self.spans.elements.len();
        let tail = self.pending_elements.get(mark..).unwrap_or_default();
        self.spans.elements.extend_from_slice(tail);
        self.pending_elements.truncate(mark);
        let len = self.spans.elements.len() - start;
        self.set_range(node, start, len)
    }

    fn set_range(&mut self, node: u32, start: usize, len: usize) -> Result<(), Stop> {
        let (start, len) = (to_u32(start)?, to_u32(len)?);
        let index = usize::try_from(node).map_err(|_| Stop)?;
        let node = self.spans.nodes.get_mut(index).ok_or(Stop)?;
        node.start = start;
        node.len = len;
        Ok(())
    }

    /// Skips a container whose opening bracket was just read, without
    /// recursion or recording: brackets are counted (their kinds are not
    /// checked), strings are skipped whole.
    fn skip_nested(&mut self) -> Result<(), Stop> {
        let mut open = 1usize;
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    self.skip_string()?;
                    continue;
                }
                b'{' | b'[' => open += 1,
                b'}' | b']' => {
                    open -= 1;
                    if open == 0 {
                        self.at += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        Err(Stop)
    }

    /// Skips a string whose opening quote is next, escapes and all.
    fn skip_string(&mut self) -> Result<(), Stop> {
        self.at += 1;
        loop {
            let rest = self.bytes.get(self.at..).ok_or(Stop)?;
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .ok_or(Stop)?;
            self.at += run;
            if self.peek() == Some(b'"') {
                self.at += 1;
                return Ok(());
            }
            // A backslash and the byte it escapes.
            self.at += 2;
        }
    }

    /// Reads a key whose opening quote is next, decoding its escapes onto
    /// the end of `spans.keys`; returns where it lies there.
    fn key(&mut self) -> Result<(u32, u32), Stop> {
        self.at += 1;
        let start = self.spans.keys.len();
        loop {
            let rest = self.bytes.get(self.at..).ok_or(Stop)?;
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .ok_or(Stop)?;
            // Both ends sit next to ASCII bytes, so on character boundaries.
            let plain = self.text.get(self.at..self.at + run).ok_or(Stop)?;
            self.spans.keys.push_str(plain);
            self.at += run;
            if self.peek() == Some(b'"') {
                self.at += 1;
                break;
            }
            self.at += 1;
            let decoded = self.escape()?;
            self.spans.keys.push(decoded);
        }
        Ok((to_u32(start)?, to_u32(self.spans.keys.len())?))
    }

    /// The character of the escape whose backslash was just read. A lone
    /// surrogate becomes U+FFFD rather than ending the scan.
    fn escape(&mut self) -> Result<char, Stop> {
        let b = self.peek().ok_or(Stop)?;
        self.at += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                if (0xD800..0xDC00).contains(&first)
                    && self.bytes.get(self.at..self.at + 2) == Some(b"\\u")
                {
                    let saved = self.at;
                    self.at += 2;
                    let second = self.hex4()?;
                    if (0xDC00..0xE000).contains(&second) {
                        let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(combined).unwrap_or('\u{fffd}')
                    } else {
                        // Not a pair: the second escape is read on its own.
                        self.at = saved;
                        '\u{fffd}'
                    }
                } else {
                    char::from_u32(first).unwrap_or('\u{fffd}')
                }
            }
            _ => return Err(Stop),
        })
    }

    fn hex4(&mut self) -> Result<u32, Stop> {
        let digits = self.bytes.get(self.at..self.at + 4).ok_or(Stop)?;
        let mut value = 0;
        for &d in digits {
            value = value * 16 + char::from(d).to_digit(16).ok_or(Stop)?;
        }
        self.at += 4;
        Ok(value)
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Stop> {
        if self
            .bytes
            .get(self.at..)
            .is_some_and(|r| r.starts_with(word))
        {
            self.at += word.len();
            Ok(())
        } else {
            Err(Stop)
        }
    }

    /// Skips a number. Its grammar is not checked: only where it starts
    /// matters, and what follows is checked by the caller.
    fn number(&mut self) {
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_inside_an_earlier_checks_meta_does_not_capture_the_error_position() {
        let text = r#"{"checks": {"a": {"meta": {"checks": {"b": {"window": {"start": 1}}}}}, "b": {"window": {"start": "25:99"}}}}"#;
        let spans = Spans::scan(text);
        // The opening quote of "25:99".
        assert_eq!(spans.locate("checks.b.window.start"), Some((1, 99)));
        // The look-alike inside meta is still there under its own path.
        assert_eq!(
            spans.locate("checks.a.meta.checks.b.window.start"),
            Some((1, 65))
        );
    }

    #[test]
    fn array_elements_are_located_by_index() {
        let text = r#"{"watch": ["a.json", "b.json"], "checks": {"a": {"triggerOnQuarters": [0, 15, -30], "grants": {"emit": ["x"]}}}}"#;
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("watch"), Some((1, 11)));
        assert_eq!(spans.locate("watch[0]"), Some((1, 12)));
        assert_eq!(spans.locate("watch[1]"), Some((1, 22)));
        assert_eq!(spans.locate("watch[2]"), None);
        assert_eq!(spans.locate("checks.a.triggerOnQuarters[0]"), Some((1, 72)));
        assert_eq!(spans.locate("checks.a.triggerOnQuarters[2]"), Some((1, 79)));
        assert_eq!(spans.locate("checks.a.grants.emit[0]"), Some((1, 105)));
        // Indices are rendered without leading zeros or signs.
        assert_eq!(spans.locate("watch[01]"), None);
        assert_eq!(spans.locate("watch[+1]"), None);
        assert_eq!(spans.locate("watch.1"), None);
    }

    #[test]
    fn arrays_nested_in_arrays_and_at_the_root() {
        let text = r#"[[1, [2, 3]], {"k": [true]}]"#;
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("[0]"), Some((1, 2)));
        assert_eq!(spans.locate("[0][1][1]"), Some((1, 10)));
        assert_eq!(spans.locate("[1].k[0]"), Some((1, 22)));
        assert_eq!(spans.locate("[1]k[0]"), None);
        assert_eq!(spans.locate("[0][1][1][0]"), None);
    }

    #[test]
    fn pretty_printed_with_crlf_line_endings() {
        let text = "{\r\n  \"agent\": \"x\",\r\n  \"checks\": {\r\n    \"sub_health\": {\r\n      \"window\": {\r\n        \"tz\": \"Mars/Olympus\"\r\n      }\r\n    }\r\n  },\r\n  \"watch\": [\r\n    \"a\",\r\n    \"b\"\r\n  ]\r\n}\r\n";
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("."), Some((1, 1)));
        assert_eq!(spans.locate("agent"), Some((2, 12)));
        assert_eq!(spans.locate("checks"), Some((3, 13)));
        assert_eq!(spans.locate("checks.sub_health.window"), Some((5, 17)));
        assert_eq!(spans.locate("checks.sub_health.window.tz"), Some((6, 15)));
        assert_eq!(spans.locate("watch[1]"), Some((12, 5)));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "é" is 2 bytes, "日本" 6, "😀" 4: each counts as one column.
        let text = "{\"é\": \"日本\", \"meta\": {\"😀\": \"ü\"}, \"b\": 1}";
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("é"), Some((1, 7)));
        assert_eq!(spans.locate("meta.😀"), Some((1, 27)));
        assert_eq!(spans.locate("b"), Some((1, 38)));
        // And on a later line, after non-ASCII on an earlier one.
        let spans = Spans::scan("{\"ä\": \"ö\",\n \"ß\": [\"€\", 2]}");
        assert_eq!(spans.locate("ß[1]"), Some((2, 13)));
    }

    #[test]
    fn keys_containing_dots_and_brackets() {
        let text = r#"{"checks": {"a.b": {"x": 1}, "a": {"b": {"x": 2}, "b.x": 3}, "q[0]": [4]}}"#;
        let spans = Spans::scan(text);
        // Three values render as `checks.a.b.x`; the first in the document wins.
        assert_eq!(spans.locate("checks.a.b.x"), Some((1, 26)));
        assert_eq!(spans.locate("checks.a.b"), Some((1, 20)));
        assert_eq!(spans.locate("checks.a"), Some((1, 35)));
        assert_eq!(spans.locate("checks.q[0]"), Some((1, 70)));
        assert_eq!(spans.locate("checks.q[0][0]"), Some((1, 71)));
        assert_eq!(spans.locate("checks.a.b.y"), None);
        // A key may be a prefix of the path without being a segment of it.
        assert_eq!(spans.locate("checks.a.bx"), None);
    }

    #[test]
    fn escaped_keys_are_decoded() {
        let text = r#"{"a\u00e9": 1, "a\"b": 2, "tab\tand\\slash\/": 3, "\ud83d\ude00": 4, "\ud800x": 5, "A": {"\u0041": 6}}"#;
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("aé"), Some((1, 13)));
        assert_eq!(spans.locate("a\"b"), Some((1, 24)));
        assert_eq!(spans.locate("tab\tand\\slash/"), Some((1, 48)));
        assert_eq!(spans.locate("😀"), Some((1, 67)));
        assert_eq!(spans.locate("\u{fffd}x"), Some((1, 81)));
        assert_eq!(spans.locate("A.A"), Some((1, 100)));
        assert_eq!(spans.locate("a\\u00e9"), None);
    }

    #[test]
    fn string_values_with_escapes_and_brackets_do_not_confuse_the_scan() {
        let text = r#"{"a": "x\"}, \"b\": [1", "b": 2}"#;
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("b"), Some((1, 31)));
    }

    #[test]
    fn a_duplicate_key_keeps_its_first_position() {
        let text = r#"{"a": {"x": 1}, "a": {"x": 2, "y": 3}}"#;
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("a"), Some((1, 7)));
        assert_eq!(spans.locate("a.x"), Some((1, 13)));
        // Only the second occurrence has `y`: it is found there.
        assert_eq!(spans.locate("a.y"), Some((1, 36)));
    }

    #[test]
    fn invalid_json_keeps_what_was_scanned_before_the_error() {
        let text = r#"{"checks": {"a": {"window": {"start": "10:00", "end": "#;
        let spans = Spans::scan(text);
        assert_eq!(spans.locate("checks.a.window.start"), Some((1, 39)));
        assert_eq!(spans.locate("checks.a.window.end"), None);

        let spans = Spans::scan(r#"{"a": [1, 2,, 3], "b": 4}"#);
        assert_eq!(spans.locate("a[1]"), Some((1, 11)));
        assert_eq!(spans.locate("a[2]"), None);
        assert_eq!(spans.locate("b"), None);

        // A value cut short is located where it starts.
        let spans = Spans::scan(r#"{"a": 1, "b": "unterminated"#);
        assert_eq!(spans.locate("a"), Some((1, 7)));
        assert_eq!(spans.locate("b"), Some((1, 15)));
    }

    #[test]
    fn no_prefix_or_garbage_panics() {
        let text = "{\"checks\": {\"a.b\": {\"meta\": {\"k\\u00e9\": [1, -2.5e3, true, null, \"\\ud83d\\ude00\"]}, \"window\": {\"tz\": \"é\"}}}, \"watch\": [\"x\"]}";
        let full = Spans::scan(text);
        let target = full.locate("checks.a.b.meta.ké[4]");
        assert_eq!(target, Some((1, 65)));
        let mut ends: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        ends.push(text.len());
        // Once a prefix reaches the target's first character, it is found.
        let target_start = text.find("\"\\ud83d").unwrap_or(text.len());
        for end in ends {
            let spans = Spans::scan(&text[..end]);
            assert_eq!(
                spans.locate("checks.a.b.meta.ké[4]").is_some(),
                end > target_start,
                "prefix {end}"
            );
            for path in [
                ".",
                "checks.a.b.meta.ké[4]",
                "watch[0]",
                "checks.a.b.window",
            ] {
                let found = spans.locate(path);
                // A value is found in a prefix only where the full text has it.
                if found.is_some() {
                    assert_eq!(found, full.locate(path), "prefix {end}, path {path}");
                }
            }
        }
        for garbage in [
            "",
            " ",
            "}",
            "]]]",
            "\"",
            "{\"a",
            "{\"a\\",
            "{\"a\\u12",
            "{\"a\\q\": 1}",
            "tru",
            "-",
            "{,}",
            "[,]",
            "{\"a\" 1}",
            "\u{feff}",
            "\u{feff}{\"a\": 1}",
            ":",
            "[\"\\",
        ] {
            let spans = Spans::scan(garbage);
            for path in [
                ".",
                "",
                "a",
                "[0]",
                "a[0]",
                "[",
                "[]",
                "[99999999999999999999999]",
            ] {
                let _ = spans.locate(path);
            }
        }
        assert_eq!(Spans::scan("").locate("."), None);
        assert_eq!(Spans::scan("\u{feff}{\"a\": 1}").locate("a"), Some((1, 7)));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let depth = 10_000;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(r#"{{"deep": {deep}, "after": 1}}"#);
        let spans = Spans::scan(&text);
        assert_eq!(spans.locate("deep"), Some((1, 10)));
        // Recorded down to the depth limit, and the scan goes on after it.
        let limit = "[0]".repeat(MAX_DEPTH - 1);
        assert_eq!(
            spans.locate(&format!("deep{limit}")),
            Some((1, 10 + MAX_DEPTH - 1))
        );
        assert_eq!(spans.locate(&format!("deep{limit}[0]")), None);
        assert_eq!(spans.locate("after"), Some((1, 10 + 2 * depth + 11)));

        // Unclosed, and objects too.
        let spans = Spans::scan(&"[".repeat(depth));
        assert_eq!(spans.locate("[0][0]"), Some((1, 3)));
        let spans = Spans::scan(&"{\"a\":".repeat(depth));
        assert_eq!(spans.locate("a.a"), Some((1, 11)));
    }

    #[test]
    fn the_root_is_the_first_non_whitespace_character() {
        assert_eq!(Spans::scan("  \n\t  {\"a\": 1}").locate("."), Some((2, 4)));
        assert_eq!(Spans::scan(" [1]").locate("."), Some((1, 2)));
        assert_eq!(Spans::scan("\r\n\"s\"").locate("."), Some((2, 1)));
        assert_eq!(Spans::scan("   ").locate("."), None);
    }

    #[test]
    fn paths_that_are_not_there() {
        let spans = Spans::scan(r#"{"a": {"b": 1}, "c": "text"}"#);
        assert_eq!(spans.locate("a.b.c"), None);
        assert_eq!(spans.locate("c[0]"), None);
        assert_eq!(spans.locate("a."), None);
        assert_eq!(spans.locate(".a"), None);
        assert_eq!(spans.locate("a..b"), None);
        assert_eq!(spans.locate("z"), None);
    }

    #[test]
    fn a_large_document_is_scanned_whole() {
        let checks: Vec<String> = (0..20_000)
            .map(|i| format!(r#""c{i}": {{"cadenceMs": {i}, "meta": {{"c{i}": [1, 2, 3]}}}}"#))
            .collect();
        let text = format!(r#"{{"checks": {{{}}}}}"#, checks.join(", "));
        let spans = Spans::scan(&text);
        let last = r#""c19999": {"cadenceMs": 19999"#;
        let offset = text.find(last).map(|i| i + last.len() - "19999".len());
        assert_eq!(
            spans.locate("checks.c19999.cadenceMs"),
            offset.map(|i| (1, i + 1))
        );
        assert_eq!(
            spans.locate("checks.c19999.meta.c19999[2]").map(|p| p.0),
            Some(1)
        );
    }
}
