//! Fuzz harnesses, on stable Rust: proptest properties over every parser of
//! the core (the config parser and validator, the state file loader, the
//! tick and control envelope parsers, beat bodies, topic patterns). None
//! may panic; each input is either accepted or refused, and where the
//! refusal has a position (config, state) the position is inside the text.
//!
//! Inputs are of three kinds: arbitrary text or bytes; documents built from
//! the real field names with values of every JSON type (huge, negative and
//! fractional numbers, number literals no `f64` holds, duplicate keys, long
//! and non-ASCII strings, nesting); and valid documents (fixtures, or what
//! the host itself writes) cut short or edited at random.
//!
//! Each property runs `HEARTBEAT_FUZZ_CASES` cases (default
//! [`DEFAULT_CASES`], a few seconds for the whole module in a debug build).
//! A longer run, as a bench:
//!
//! ```sh
//! HEARTBEAT_FUZZ_CASES=100000 cargo test -p heartbeat-core --release fuzz::
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use crate::beats::{self, STOP_BODY};
use crate::config::{self, ConfigError, HeartbeatConfig, SUPPORTED_SCHEMAS};
use crate::control::{self, Command};
use crate::envelope::{self, MAX_EVENT_ID_LEN, Source, TICK_KEY};
use crate::health::HealthStatus;
use crate::model::CheckHealth;
use crate::model::{MAX_MEMORY_MB, Pause, ProcessState, RunStatus};
use crate::processes::{Beat, Tracker, TrackerConfig, parse_beat};
use crate::state::{CheckState, STATE_VERSION, State};
use crate::topic;

/// Cases per property when `HEARTBEAT_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 1024;

/// `HEARTBEAT_FUZZ_CASES` when it is a positive number, else [`DEFAULT_CASES`].
fn cases() -> u32 {
    std::env::var("HEARTBEAT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CASES)
}

const FILE: &str = "heartbeat.json";

/// Valid configs, to be cut short and edited.
const VALID_CONFIGS: &[&str] = &[
    include_str!("../../../tests/fixtures/every-field.heartbeat.json"),
    include_str!("../../../tests/fixtures/consumer-readme.heartbeat.json"),
    include_str!("../../../examples/heartbeat.json"),
];

// ---------------------------------------------------------------------------
// Text, bytes and edits.

/// Pieces of JSON and of the host's formats: noise made of them reaches
/// further into a parser than uniform noise does.
const SOUP: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    " ",
    "\n",
    "\r\n",
    "\t",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "1e400",
    "-0",
    "9007199254740993",
    "18446744073709551616",
    "\"checks\"",
    "\"a\"",
    "\"\"",
    "\"cadenceMs\"",
    "\"lastRun\"",
    "\"window\"",
    "\"start\"",
    "\"end\"",
    "\"tz\"",
    "\"09:00\"",
    "\"UTC\"",
    "\"paused\"",
    "\"until\"",
    "\"meta\"",
    "\"grants\"",
    "\"dirs\"",
    "\"emit\"",
    "\"watch\"",
    "\"defaults\"",
    "\"memoryMb\"",
    "\"$schema\"",
    "\"heartbeat.v1\"",
    "\"triggerOnQuarters\"",
    "\"Q1\"",
    "\"event_id\"",
    "\"payload\"",
    "\"check\"",
    "\"version\"",
    "\"é\"",
    "é",
    "日本",
    "😀",
    "\u{feff}",
    "\"\\u00e9\"",
    "\"\\ud800\"",
    "\\u",
    "start/",
    "beat/",
    "stop",
    "/",
    ".",
    "*",
    "#",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SOUP), 0..48).prop_map(|t| t.concat())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        soup().prop_map(String::into_bytes),
    ]
}

/// Any text: printable, with control characters, lossy UTF-8, or soup.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter),
        prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        soup(),
    ]
}

/// One random change to a sequence of `T` (characters or bytes).
#[derive(Debug, Clone)]
enum Edit<T> {
    Delete(Index, usize),
    Insert(Index, Vec<T>),
    Replace(Index, T),
    Truncate(Index),
    Duplicate(Index, usize),
}

fn edits<T: Clone + std::fmt::Debug + 'static>(
    item: impl Strategy<Value = T> + Clone + 'static,
    snippet: impl Strategy<Value = Vec<T>> + Clone + 'static,
) -> impl Strategy<Value = Vec<Edit<T>>> {
    let edit = prop_oneof![
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), snippet).prop_map(|(i, s)| Edit::Insert(i, s)),
        (any::<Index>(), item).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ];
    prop::collection::vec(edit, 1..5)
}

fn char_edits() -> impl Strategy<Value = Vec<Edit<char>>> {
    edits(
        any::<char>(),
        prop_oneof![
            prop::sample::select(SOUP).prop_map(|s| s.chars().collect()),
            prop::collection::vec(any::<char>(), 1..4),
        ],
    )
}

fn byte_edits() -> impl Strategy<Value = Vec<Edit<u8>>> {
    edits(
        any::<u8>(),
        prop_oneof![
            prop::sample::select(SOUP).prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 1..4),
        ],
    )
}

fn apply<T: Clone>(mut items: Vec<T>, edits: &[Edit<T>]) -> Vec<T> {
    for edit in edits {
        let len = items.len();
        match edit {
            Edit::Insert(at, snippet) => {
                let at = at.index(len + 1);
                items.splice(at..at, snippet.iter().cloned());
            }
            _ if len == 0 => {}
            Edit::Delete(at, n) => {
                let at = at.index(len);
                items.drain(at..(at + n).min(len));
            }
            Edit::Replace(at, with) => items[at.index(len)] = with.clone(),
            Edit::Truncate(at) => items.truncate(at.index(len)),
            Edit::Duplicate(at, n) => {
                let at = at.index(len);
                let copy: Vec<T> = items[at..(at + n).min(len)].to_vec();
                items.splice(at..at, copy);
            }
        }
    }
    items
}

fn edit_text(text: &str, edits: &[Edit<char>]) -> String {
    apply(text.chars().collect(), edits).into_iter().collect()
}

/// Whether 1-based (`line`, `column`) is a character of `text`, or just
/// past the end of one of its lines (where an error at the end of the
/// input points). Lines split on `\n`; columns count characters.
fn inside(text: &str, line: usize, column: usize) -> bool {
    line >= 1
        && column >= 1
        && text
            .split('\n')
            .nth(line - 1)
            .is_some_and(|l| column <= l.chars().count() + 1)
}

/// [`inside`], with columns counted in bytes.
fn inside_bytes(text: &str, line: usize, column: usize) -> bool {
    line >= 1
        && column >= 1
        && text
            .split('\n')
            .nth(line - 1)
            .is_some_and(|l| column <= l.len() + 1)
}

/// The character at 1-based (`line`, `column`) (columns in characters).
fn char_at(text: &str, line: usize, column: usize) -> Option<char> {
    text.split('\n')
        .nth(line.checked_sub(1)?)?
        .chars()
        .nth(column.checked_sub(1)?)
}

// ---------------------------------------------------------------------------
// JSON documents, written out by hand so that they may hold what a
// `serde_json::Value` cannot: duplicate keys and any number literal.

#[derive(Debug, Clone)]
enum Doc {
    Null,
    Bool(bool),
    /// A number literal as written, e.g. `1e400` or `-0`.
    Number(String),
    Str(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

impl Doc {
    fn text(&self, pretty: bool) -> String {
        let mut out = String::new();
        self.write(pretty, 0, &mut out);
        out
    }

    fn write(&self, pretty: bool, depth: usize, out: &mut String) {
        let newline = |out: &mut String, depth: usize| {
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
        };
        match self {
            Doc::Null => out.push_str("null"),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Number(n) => out.push_str(n),
            Doc::Str(s) => out.push_str(&quote(s)),
            Doc::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(pretty, depth + 1, out);
                }
                if !items.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            Doc::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    out.push_str(&quote(key));
                    out.push_str(": ");
                    value.write(pretty, depth + 1, out);
                }
                if !members.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

/// Number literals at the edges of what the fields and the number types
/// hold.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "-0.0",
    "1",
    "-1",
    "0.5",
    "1.5",
    "-2.5",
    "4096",
    "4097",
    "4294967295",
    "4294967296",
    "9007199254740992",
    "9007199254740992.0",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e3",
    "9E5",
    "1e19",
    "1e20",
    "1e300",
    "1e400",
    "-1e400",
    "1e-400",
    "5e-324",
    "1767225600000",
    "1767225600000.5",
    "1767225600000.999999",
];

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EDGE_NUMBERS).prop_map(str::to_string),
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
    ]
}

/// Strings that mean something to some field, and some that nearly do.
const WORDS: &[&str] = &[
    "",
    " ",
    "a",
    "b",
    "a.b",
    "q[0]",
    "checks",
    "default",
    "sub_health",
    "quarterly_compaction",
    "heartbeat.v1",
    "heartbeat.v2",
    "00:00",
    "23:59",
    "24:00",
    "9:00",
    "9:0",
    "07:60",
    "+7:00",
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Mars/Olympus",
    "../../etc/passwd",
    "Q1",
    "Q4",
    "Q5",
    "q1",
    "/data",
    "data",
    "/a/../b",
    "/",
    "alerts.#",
    "heartbeat.*.db",
    "a..b",
    "a.b*",
    "#",
    "*",
    "é",
    "日本",
    "😀",
    "\u{0}",
    "\u{feff}",
    "\u{10ffff}",
    "\n",
    "line\nbreak",
];

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_string),
        2 => any::<String>(),
        1 => prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        1 => (1usize..3000).prop_map(|n| "x".repeat(n)),
        1 => (1usize..300).prop_map(|n| "é日😀".repeat(n)),
    ]
}

/// Every field name of `heartbeat.json`, at any level.
const FIELDS: &[&str] = &[
    "$schema",
    "agent",
    "checks",
    "paused",
    "maxPerTick",
    "defaults",
    "watch",
    "cadenceMs",
    "handler",
    "priority",
    "enabled",
    "lastRun",
    "window",
    "start",
    "end",
    "tz",
    "triggerOnQuarters",
    "meta",
    "timeoutMs",
    "memoryMb",
    "maxLogLines",
    "maxEvents",
    "maxOutputBytes",
    "maxHttpBytes",
    "maxKvBytes",
    "grants",
    "dirs",
    "emit",
    "path",
    "readOnly",
    "until",
    "reason",
];
const TOP_FIELDS: &[&str] = &[
    "$schema",
    "agent",
    "checks",
    "paused",
    "maxPerTick",
    "defaults",
    "watch",
];
const CHECK_FIELDS: &[&str] = &[
    "cadenceMs",
    "handler",
    "priority",
    "enabled",
    "lastRun",
    "window",
    "triggerOnQuarters",
    "meta",
    "timeoutMs",
    "memoryMb",
    "maxLogLines",
    "maxEvents",
    "maxOutputBytes",
    "maxHttpBytes",
    "maxKvBytes",
    "grants",
];
const LIMIT_FIELDS: &[&str] = &[
    "timeoutMs",
    "memoryMb",
    "maxLogLines",
    "maxEvents",
    "maxOutputBytes",
    "maxHttpBytes",
    "maxKvBytes",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS).prop_map(str::to_string),
        1 => string(),
    ]
}

/// Any JSON value, keyed by field names more often than not.
fn any_doc() -> BoxedStrategy<Doc> {
    let leaf = prop_oneof![
        Just(Doc::Null),
        any::<bool>().prop_map(Doc::Bool),
        number().prop_map(Doc::Number),
        string().prop_map(Doc::Str),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Doc::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(Doc::Object),
        ]
    })
    .boxed()
}

/// An object with fields drawn from `fields` (in any order, some twice),
/// each holding a plausible value or any value, and a stray field or two.
fn object_of(fields: &'static [&'static str]) -> BoxedStrategy<Doc> {
    (
        prop::collection::vec(
            prop::sample::select(fields).prop_flat_map(member),
            0..=fields.len(),
        ),
        prop::collection::vec((key(), any_doc()), 0..2),
    )
        .prop_map(|(mut members, stray)| {
            members.extend(stray);
            Doc::Object(members)
        })
        .boxed()
}

fn member(name: &'static str) -> BoxedStrategy<(String, Doc)> {
    prop_oneof![4 => plausible(name), 1 => any_doc()]
        .prop_map(move |value| (name.to_string(), value))
        .boxed()
}

fn strings_from(words: &'static [&'static str]) -> BoxedStrategy<Doc> {
    prop_oneof![
        3 => prop::sample::select(words).prop_map(|w| Doc::Str(w.to_string())),
        1 => string().prop_map(Doc::Str),
    ]
    .boxed()
}

fn check_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&["a", "b", "sub_health", "", "a.b", "q[0]", "é"][..])
            .prop_map(str::to_string),
        1 => string(),
    ]
}

fn pattern_doc() -> BoxedStrategy<Doc> {
    prop_oneof![
        topic_pattern().prop_map(Doc::Str),
        strings_from(&["alerts.#", "a..b", "a.b*", "", "#", "a. b"]),
    ]
    .boxed()
}

/// A value that is of the right kind for the field `name`, often valid.
fn plausible(name: &'static str) -> BoxedStrategy<Doc> {
    match name {
        "$schema" => strings_from(&["heartbeat.v1", "heartbeat.v2", ""]),
        "agent" | "handler" | "reason" | "path" => strings_from(&["default", "cack", "", "memory"]),
        "cadenceMs" | "priority" | "lastRun" | "timeoutMs" | "memoryMb" | "maxLogLines"
        | "maxEvents" | "maxOutputBytes" | "maxHttpBytes" | "maxKvBytes" | "maxPerTick"
        | "until" => number().prop_map(Doc::Number).boxed(),
        "enabled" | "readOnly" => any::<bool>().prop_map(Doc::Bool).boxed(),
        "window" => object_of(&["start", "end", "tz"]),
        "start" | "end" => strings_from(&["00:00", "23:59", "24:00", "9:00", "9:0", "07:60"]),
        "tz" => strings_from(&[
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Mars/Olympus",
            "",
        ]),
        "triggerOnQuarters" => {
            prop::collection::vec(strings_from(&["Q1", "Q2", "Q3", "Q4", "Q5", "q1"]), 0..5)
                .prop_map(Doc::Array)
                .boxed()
        }
        "meta" => prop::collection::vec((key(), any_doc()), 0..4)
            .prop_map(Doc::Object)
            .boxed(),
        "grants" => object_of(&["dirs", "emit"]),
        "dirs" => prop::collection::vec(
            (
                prop_oneof![
                    prop::sample::select(&["/data", "data", "/a/../b", "/", ""][..])
                        .prop_map(str::to_string),
                    string(),
                ],
                object_of(&["path", "readOnly"]),
            ),
            0..3,
        )
        .prop_map(Doc::Object)
        .boxed(),
        "emit" | "watch" => prop::collection::vec(pattern_doc(), 0..4)
            .prop_map(Doc::Array)
            .boxed(),
        "checks" => prop::collection::vec((check_name(), object_of(CHECK_FIELDS)), 0..4)
            .prop_map(Doc::Object)
            .boxed(),
        "paused" => prop::collection::vec(
            (
                check_name(),
                prop_oneof![
                    any::<bool>().prop_map(Doc::Bool),
                    object_of(&["until", "reason"]),
                ],
            ),
            0..3,
        )
        .prop_map(Doc::Object)
        .boxed(),
        "defaults" => object_of(LIMIT_FIELDS),
        _ => any_doc(),
    }
}

/// A `heartbeat.json` as people might get it wrong: mostly an object with
/// the real fields, sometimes any JSON value at all.
fn config_doc() -> impl Strategy<Value = Doc> {
    prop_oneof![8 => object_of(TOP_FIELDS), 1 => any_doc()]
}

// ---------------------------------------------------------------------------
// Config.

/// What every accepted config holds, whatever the file said: the
/// validator's rules, checked on its output.
fn accepted_config_keeps_the_rules(c: &HeartbeatConfig) -> Result<(), TestCaseError> {
    prop_assert!(c.max_per_tick >= 1);
    if let Some(schema) = &c.schema {
        prop_assert!(SUPPORTED_SCHEMAS.contains(&schema.as_str()), "{schema:?}");
    }
    prop_assert!(c.defaults.memory_mb <= MAX_MEMORY_MB, "{:?}", c.defaults);
    for pattern in &c.watch {
        prop_assert!(topic::is_pattern(pattern), "watch {pattern:?}");
    }
    let mut names = BTreeSet::new();
    for check in &c.checks {
        prop_assert!(!check.name.is_empty());
        prop_assert!(names.insert(&check.name), "{} twice", check.name);
        prop_assert!(!check.handler.is_empty());
        prop_assert!(check.limits.timeout_ms >= 1);
        prop_assert!((1..=MAX_MEMORY_MB).contains(&check.limits.memory_mb));
        if let Some(w) = &check.window {
            prop_assert!(w.start_minute < 1440 && w.end_minute < 1440, "{w:?}");
        }
        if let Some(quarters) = &check.trigger_on_quarters {
            prop_assert!(!quarters.is_empty());
        }
        for dir in &check.grants.dirs {
            prop_assert!(dir.guest_path.starts_with('/'), "{dir:?}");
            prop_assert!(!dir.guest_path.split('/').any(|p| p == ".."), "{dir:?}");
            prop_assert!(!dir.host_path.as_os_str().is_empty());
        }
        for pattern in &check.grants.emit {
            prop_assert!(topic::is_pattern(pattern), "emit {pattern:?}");
        }
    }
    Ok(())
}

/// `config::parse(text)` is a config that keeps the rules, or an error
/// positioned inside `text`; when `text` is valid JSON, the position is the
/// first character of a value (the one at fault), since every refusal of a
/// well-formed document is about a value.
fn config_verdict(text: &str) -> Result<(), TestCaseError> {
    match config::parse(text, FILE) {
        Ok(loaded) => accepted_config_keeps_the_rules(&loaded.config),
        Err(ConfigError::Invalid {
            file,
            line,
            column,
            field,
            message,
        }) => {
            let shown = format!("{line}:{column}: {field}: {message} in {text:?}");
            prop_assert_eq!(file.as_str(), FILE);
            prop_assert!(!field.is_empty() && !message.is_empty(), "{}", shown);
            prop_assert!(inside(text, line, column), "outside the text: {}", shown);
            if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                let at = char_at(text, line, column);
                prop_assert!(
                    matches!(
                        at,
                        Some('{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n')
                    ),
                    "not at a value ({:?}): {}",
                    at,
                    shown
                );
            }
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "parse reads no file, yet: {other}"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn config_parse_never_panics_and_every_refusal_has_a_position(text in any_text()) {
        config_verdict(&text)?;
    }

    #[test]
    fn config_documents_of_real_fields_are_accepted_or_refused_at_the_value_at_fault(
        doc in config_doc(),
        pretty in any::<bool>(),
    ) {
        config_verdict(&doc.text(pretty))?;
    }

    #[test]
    fn edited_valid_configs_are_accepted_or_refused_with_a_position(
        which in any::<Index>(),
        edits in char_edits(),
    ) {
        let valid = VALID_CONFIGS[which.index(VALID_CONFIGS.len())];
        config_verdict(&edit_text(valid, &edits))?;
    }
}

#[test]
fn the_valid_configs_are_valid() {
    // Pins the inputs of the properties above: edits start from valid files.
    for text in VALID_CONFIGS {
        assert!(config::parse(text, FILE).is_ok(), "{text}");
    }
}

#[test]
fn every_truncation_of_a_valid_config_is_refused_with_a_position_inside_it() {
    for full in VALID_CONFIGS {
        for end in (0..full.len()).filter(|&i| full.is_char_boundary(i)) {
            let prefix = &full[..end];
            if prefix.trim_end() == full.trim_end() {
                // Only trailing white space is missing: still the whole document.
                assert!(config::parse(prefix, FILE).is_ok(), "{prefix:?}");
                continue;
            }
            match config::parse(prefix, FILE) {
                Ok(_) => panic!("a strict prefix was accepted: {prefix:?}"),
                Err(ConfigError::Invalid { line, column, .. }) => assert!(
                    inside(prefix, line, column),
                    "{line}:{column} outside {prefix:?}"
                ),
                Err(other) => panic!("{other}"),
            }
        }
    }
}

#[test]
fn deep_nesting_anywhere_in_a_config_is_accepted_or_refused_without_overflow() {
    for depth in [1, 100, 126, 127, 128, 129, 200, 10_000] {
        let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let deep_object = format!("{}1{}", r#"{"k": "#.repeat(depth), "}".repeat(depth));
        for text in [
            format!(r#"{{"checks": {{"a": {{"meta": {{"x": {deep}}}}}}}}}"#),
            format!(r#"{{"checks": {{"a": {{"meta": {deep_object}}}}}}}"#),
            format!(r#"{{"unknown": {deep}, "checks": {{}}}}"#),
            format!(r#"{{"checks": {{"a": {deep}}}}}"#),
            format!(r#"{{"watch": {deep}}}"#),
            format!(r#"{{"paused": {{"a": {deep_object}}}}}"#),
            deep.clone(),
            "[".repeat(depth),
        ] {
            config_verdict(&text).unwrap_or_else(|e| panic!("depth {depth}: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------
// State.

fn pause() -> impl Strategy<Value = Pause> {
    prop_oneof![
        any::<bool>().prop_map(Pause::Flag),
        (any::<u64>(), prop::option::of(string()))
            .prop_map(|(until, reason)| Pause::Until { until, reason }),
    ]
}

fn check_state() -> impl Strategy<Value = CheckState> {
    (
        prop::option::of(any::<u64>()),
        prop::option::of(prop::sample::select(
            &[RunStatus::Success, RunStatus::Failed, RunStatus::Skipped][..],
        )),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        any::<u32>(),
        prop::option::of(string()),
        prop::option::of(any::<u64>()),
    )
        .prop_flat_map(|fields| (Just(fields), alerting()))
        .prop_map(
            |(
                (
                    last_run,
                    last_status,
                    last_duration_us,
                    last_attempt,
                    consecutive_failures,
                    last_error,
                    retry_after,
                ),
                (state, attempt, state_since, recent, flapping),
            )| {
                let mut record = CheckState {
                    last_run,
                    last_status,
                    last_duration_us,
                    last_attempt,
                    consecutive_failures,
                    last_error,
                    retry_after,
                    state,
                    attempt,
                    state_since,
                    recent,
                    flapping,
                };
                // What the host reads is settled (a failing record from
                // before states existed is hard): generate what it writes.
                record.settle();
                record
            },
        )
}

/// The soft/hard fields of a check's record.
fn alerting() -> impl Strategy<Value = (CheckHealth, u32, Option<u64>, String, bool)> {
    (
        prop::sample::select(&CheckHealth::ALL[..]),
        any::<u32>(),
        prop::option::of(any::<u64>()),
        "[+-]{0,20}",
        any::<bool>(),
    )
}

fn state() -> impl Strategy<Value = State> {
    (
        0..=STATE_VERSION,
        prop::collection::vec((check_name(), check_state()), 0..4),
        prop::collection::vec((check_name(), pause()), 0..3),
        prop::collection::btree_set(check_name(), 0..3),
    )
        .prop_map(|(version, checks, paused, run_requests)| State {
            version,
            checks: checks.into_iter().collect(),
            paused: paused.into_iter().collect(),
            run_requests,
        })
}

/// A state file as a person or a bug might write it: the real fields with
/// values of every type.
fn state_doc() -> impl Strategy<Value = Doc> {
    const CHECK_STATE_FIELDS: &[&str] = &[
        "lastRun",
        "lastStatus",
        "lastDurationUs",
        "lastAttempt",
        "consecutiveFailures",
        "lastError",
        "retryAfter",
    ];
    let field = |name: &'static str| -> BoxedStrategy<(String, Doc)> {
        let plausible = match name {
            "version" | "lastRun" | "lastDurationUs" | "lastAttempt" | "consecutiveFailures"
            | "retryAfter" => number().prop_map(Doc::Number).boxed(),
            "lastStatus" => strings_from(&["success", "failed", "skipped", "Success"]),
            "lastError" => string().prop_map(Doc::Str).boxed(),
            "checks" => prop::collection::vec(
                (
                    check_name(),
                    prop::collection::vec(
                        prop::sample::select(CHECK_STATE_FIELDS).prop_flat_map(|f| {
                            prop_oneof![
                                4 => match f {
                                    "lastStatus" => strings_from(&["success", "failed", "skipped", "Success"]),
                                    "lastError" => string().prop_map(Doc::Str).boxed(),
                                    _ => number().prop_map(Doc::Number).boxed(),
                                },
                                1 => any_doc(),
                            ]
                            .prop_map(move |v| (f.to_string(), v))
                        }),
                        0..5,
                    )
                    .prop_map(Doc::Object),
                ),
                0..3,
            )
            .prop_map(Doc::Object)
            .boxed(),
            "paused" => plausible("paused"),
            "runRequests" => prop::collection::vec(check_name().prop_map(Doc::Str), 0..3)
                .prop_map(Doc::Array)
                .boxed(),
            _ => any_doc(),
        };
        prop_oneof![4 => plausible, 1 => any_doc()]
            .prop_map(move |v| (name.to_string(), v))
            .boxed()
    };
    prop_oneof![
        8 => prop::collection::vec(
            prop::sample::select(&["version", "checks", "paused", "runRequests"][..])
                .prop_flat_map(field),
            0..5,
        )
        .prop_map(Doc::Object),
        1 => any_doc(),
    ]
}

fn state_text(state: &State) -> String {
    String::from_utf8(state.to_text()).expect("the state file is UTF-8")
}

/// `State::parse(text)` is a state this host can read, written back the
/// same, or an error at 1-based line and column inside `text` (columns in
/// bytes, as serde_json counts them).
fn state_verdict(text: &str) -> Result<(), TestCaseError> {
    match State::parse(text) {
        Ok(state) => {
            prop_assert!(state.version <= STATE_VERSION);
            prop_assert_eq!(State::parse(&state_text(&state)), Ok(state));
        }
        Err(e) => {
            prop_assert!(!e.message.is_empty());
            prop_assert!(
                inside_bytes(text, e.line, e.column),
                "outside the text: {} in {:?}",
                e,
                text
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn state_parse_never_panics_and_every_refusal_has_a_position(text in any_text()) {
        state_verdict(&text)?;
    }

    #[test]
    fn a_state_written_by_the_host_reads_back_equal(state in state()) {
        prop_assert_eq!(State::parse(&state_text(&state)), Ok(state));
    }

    #[test]
    fn a_state_from_a_newer_host_is_refused_not_misread(
        state in state(),
        version in (STATE_VERSION + 1)..=u32::MAX,
    ) {
        let newer = State { version, ..state };
        let refused = State::parse(&state_text(&newer));
        prop_assert!(refused.is_err(), "{:?}", refused);
    }

    #[test]
    fn edited_state_files_are_read_or_refused_with_a_position(
        state in state(),
        edits in char_edits(),
    ) {
        state_verdict(&edit_text(&state_text(&state), &edits))?;
    }

    #[test]
    fn state_documents_of_real_fields_are_read_or_refused_with_a_position(
        doc in state_doc(),
        pretty in any::<bool>(),
    ) {
        state_verdict(&doc.text(pretty))?;
    }
}

// ---------------------------------------------------------------------------
// Envelopes and control messages.

/// The documented rules of [`envelope::parse_envelope`], written out
/// independently: required `event_id` (a non-empty string of at most 255
/// bytes), `event_type` (a string) and `payload` (anything); `timestamp`
/// and `version` strings, `source` an object or a string, `correlation_ids`
/// an array of strings, each when present and not null.
fn envelope_rules_accept(value: &Value) -> bool {
    let Some(o) = value.as_object() else {
        return false;
    };
    let absent_or =
        |field: &str, ok: fn(&Value) -> bool| o.get(field).is_none_or(|v| v.is_null() || ok(v));
    matches!(o.get("event_id"), Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_EVENT_ID_LEN)
        && matches!(o.get("event_type"), Some(Value::String(_)))
        && o.contains_key("payload")
        && absent_or("timestamp", Value::is_string)
        && absent_or("version", Value::is_string)
        && absent_or("source", |v| v.is_object() || v.is_string())
        && absent_or("correlation_ids", |v| {
            v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        })
}

/// Both envelope parsers on `body`: no panic, `parse_object` gives objects
/// only, and `parse_envelope` accepts exactly what the rules accept, with
/// its fields taken from the body.
fn envelope_verdict(body: &[u8]) -> Result<(), TestCaseError> {
    let object = envelope::parse_object(body);
    let parsed = envelope::parse_envelope(body);
    match object {
        Err(e) => {
            prop_assert!(parsed.is_err());
            prop_assert!(!e.to_string().is_empty());
        }
        Ok(value) => {
            prop_assert!(value.is_object());
            prop_assert_eq!(
                parsed.is_ok(),
                envelope_rules_accept(&value),
                "{:?}",
                parsed
            );
            if let Ok(envelope) = parsed {
                prop_assert_eq!(&envelope.raw, &value);
                prop_assert_eq!(value.get("event_id"), Some(&Value::from(envelope.event_id)));
                prop_assert_eq!(
                    value.get("event_type"),
                    Some(&Value::from(envelope.event_type))
                );
                prop_assert_eq!(value.get("payload"), Some(&envelope.payload));
            }
        }
    }
    Ok(())
}

fn source() -> impl Strategy<Value = Source> {
    (string(), string(), string()).prop_map(|(host, kind, app)| Source { host, kind, app })
}

/// Any instant jiff represents, to the millisecond.
fn timestamp() -> impl Strategy<Value = jiff::Timestamp> {
    (jiff::Timestamp::MIN.as_millisecond()..=jiff::Timestamp::MAX.as_millisecond())
        .prop_map(|ms| jiff::Timestamp::from_millisecond(ms).expect("in jiff's range"))
}

fn tick_body() -> impl Strategy<Value = (String, String, Vec<u8>)> {
    (
        prop_oneof![string(), "[a-f0-9]{1,40}"],
        string(),
        timestamp(),
        source(),
    )
        .prop_map(|(event_id, tick_id, time, source)| {
            let tick = envelope::tick(&event_id, &tick_id, time, &source);
            let body = serde_json::to_vec(&tick).expect("a value always serialises");
            (event_id, tick_id, body)
        })
}

fn envelope_doc() -> impl Strategy<Value = Doc> {
    const ENVELOPE_FIELDS: &[&str] = &[
        "event_id",
        "event_type",
        "timestamp",
        "version",
        "source",
        "correlation_ids",
        "payload",
    ];
    let member = prop::sample::select(ENVELOPE_FIELDS).prop_flat_map(|name| {
        let plausible = match name {
            "event_id" => prop_oneof![
                string().prop_map(Doc::Str),
                (250usize..260).prop_map(|n| Doc::Str("e".repeat(n))),
            ]
            .boxed(),
            "event_type" | "timestamp" | "version" => string().prop_map(Doc::Str).boxed(),
            "source" => prop_oneof![
                string().prop_map(Doc::Str),
                object_of(&["host", "type", "app"])
            ]
            .boxed(),
            "correlation_ids" => prop::collection::vec(
                prop_oneof![4 => string().prop_map(Doc::Str), 1 => any_doc()],
                0..3,
            )
            .prop_map(Doc::Array)
            .boxed(),
            _ => any_doc(),
        };
        prop_oneof![4 => plausible, 1 => Just(Doc::Null), 1 => any_doc()]
            .prop_map(move |value| (name.to_string(), value))
    });
    prop_oneof![
        8 => prop::collection::vec(member, 0..9).prop_map(Doc::Object),
        1 => any_doc(),
    ]
}

/// The command the documented rules of [`control::parse`] read from
/// `payload` for `verb`, written out independently (`None`: refused).
fn control_rules_read(verb: &str, payload: &Value) -> Option<Command> {
    let o = payload.as_object()?;
    let check = match o.get("check") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return None,
    };
    match verb {
        "resume" => Some(Command::Resume { check }),
        "run" => Some(Command::Run { check }),
        "pause" => {
            let until_ms = match o.get("until") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.as_u64()?),
                Some(Value::String(s)) => {
                    let t: jiff::Timestamp = s.parse().ok()?;
                    Some(u64::try_from(t.as_millisecond()).ok()?)
                }
                Some(_) => return None,
            };
            let reason = match o.get("reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return None,
            };
            Some(Command::Pause {
                check,
                until_ms,
                reason,
            })
        }
        _ => None,
    }
}

fn verb() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&["pause", "resume", "run"][..]).prop_map(str::to_string),
        1 => prop::sample::select(&["", "Pause", "reboot", "run ", "pause.x"][..])
            .prop_map(str::to_string),
        1 => string(),
    ]
}

/// A control payload as senders write it, and as they get it wrong.
fn control_payload() -> impl Strategy<Value = Value> {
    let check = prop_oneof![
        4 => check_name().prop_map(Value::from),
        1 => Just(Value::from(" ")),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
    ];
    let until = prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        timestamp().prop_map(|t| Value::from(t.to_string())),
        prop::sample::select(
            &[
                "tomorrow",
                "",
                "2025-13-01T00:00:00Z",
                "1969-12-31T23:59:59Z"
            ][..]
        )
        .prop_map(Value::from),
        string().prop_map(Value::from),
        Just(Value::Null),
        Just(json!([1])),
    ];
    let reason = prop_oneof![
        string().prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
    ];
    (
        prop::option::weighted(0.95, check),
        prop::option::of(until),
        prop::option::of(reason),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(check, until, reason, not_an_object)| {
            if not_an_object {
                return json!(["check"]);
            }
            let mut o = serde_json::Map::new();
            for (field, value) in [("check", check), ("until", until), ("reason", reason)] {
                if let Some(value) = value {
                    o.insert(field.to_string(), value);
                }
            }
            Value::Object(o)
        })
}

/// `control::parse(verb, body)`: no panic, and what it reads is a command
/// for `verb` about a check with a name.
fn control_verdict(verb: &str, body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(command) = control::parse(verb, body) {
        prop_assert_eq!(command.verb(), verb);
        prop_assert!(!command.check().trim().is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn envelope_parsers_never_panic_and_accept_only_what_the_rules_accept(body in bytes()) {
        envelope_verdict(&body)?;
    }

    #[test]
    fn envelope_documents_of_real_fields_are_judged_by_the_rules(
        doc in envelope_doc(),
        pretty in any::<bool>(),
    ) {
        envelope_verdict(doc.text(pretty).as_bytes())?;
    }

    #[test]
    fn a_tick_the_host_builds_parses_back_to_its_fields((event_id, tick_id, body) in tick_body()) {
        let parsed = envelope::parse_envelope(&body);
        if event_id.is_empty() || event_id.len() > MAX_EVENT_ID_LEN {
            prop_assert!(parsed.is_err());
        } else {
            let envelope = parsed.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(envelope.event_id, event_id);
            prop_assert_eq!(envelope.event_type, TICK_KEY);
            prop_assert_eq!(envelope.payload, json!({"tick_id": tick_id}));
        }
    }

    #[test]
    fn edited_ticks_are_accepted_or_refused_by_the_rules(
        (_, _, body) in tick_body(),
        edits in byte_edits(),
    ) {
        envelope_verdict(&apply(body, &edits))?;
    }

    #[test]
    fn control_parse_never_panics_on_any_verb_and_body(verb in verb(), body in bytes()) {
        control_verdict(&verb, &body)?;
    }

    #[test]
    fn control_parse_reads_what_the_rules_read(
        verb in verb(),
        payload in control_payload(),
        bare in any::<bool>(),
    ) {
        let body = if bare {
            payload.clone()
        } else {
            json!({"event_id": "c1", "event_type": format!("agent.a.control.{verb}"), "payload": payload})
        };
        let body = serde_json::to_vec(&body).expect("a value always serialises");
        // A bare payload is taken for one only when it has a `check`.
        let readable = !bare || payload.get("check").is_some();
        let expected = control_rules_read(&verb, &payload).filter(|_| readable);
        prop_assert_eq!(control::parse(&verb, &body).ok(), expected);
    }

    #[test]
    fn edited_control_messages_are_read_or_refused_never_panicking(
        verb in verb(),
        payload in control_payload(),
        edits in byte_edits(),
    ) {
        let body = json!({"event_id": "c1", "event_type": "agent.a.control.pause", "payload": payload});
        let body = serde_json::to_vec(&body).expect("a value always serialises");
        control_verdict(&verb, &apply(body, &edits))?;
    }
}

// ---------------------------------------------------------------------------
// Beat bodies.

fn beat_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(),
        (
            prop::sample::select(&["start", "beat", "degraded", "stop", "pulse", "", " beat"][..]),
            prop::sample::select(&["/", "", "//", " / "][..]),
            prop_oneof![
                number(),
                string(),
                Just("inf".to_string()),
                Just("NaN".to_string())
            ],
            prop::sample::select(&["", " ", "\n", "\t\r\n"][..]),
        )
            .prop_map(|(kind, slash, seconds, pad)| format!(
                "{pad}{kind}{slash}{seconds}{pad}"
            )
            .into_bytes()),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..100_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..100_000).prop_map(Duration::from_secs),
        (0u64..100_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn beat_parse_never_panics_and_accepts_only_the_four_forms(body in beat_body()) {
        let Ok(beat) = parse_beat(&body) else {
            return Ok(());
        };
        let text = std::str::from_utf8(&body).map_err(|e| TestCaseError::fail(e.to_string()))?.trim();
        let (prefix, seconds) = match beat {
            Beat::Stop => {
                prop_assert_eq!(text, "stop");
                return Ok(());
            }
            Beat::Start(s) => ("start/", s),
            Beat::Beat(s) => ("beat/", s),
            Beat::Degraded(s) => ("degraded/", s),
        };
        prop_assert!(text.starts_with(prefix), "{:?} read as {:?}", text, beat);
        prop_assert!(seconds.is_finite() && seconds >= 0.0, "{:?} read as {:?}", text, beat);
    }

    #[test]
    fn the_beats_the_host_writes_parse_back_to_what_they_say(
        period in duration(),
        reasons in prop::collection::vec(string(), 0..2),
    ) {
        let seconds = period.as_secs_f64();
        prop_assert_eq!(parse_beat(beats::start_body(period).as_bytes()), Ok(Beat::Start(seconds)));
        prop_assert_eq!(
            parse_beat(beats::periodic_body(&HealthStatus::Healthy, period).as_bytes()),
            Ok(Beat::Beat(seconds))
        );
        prop_assert_eq!(
            parse_beat(beats::periodic_body(&HealthStatus::Degraded(reasons), period).as_bytes()),
            Ok(Beat::Degraded(seconds))
        );
        prop_assert_eq!(parse_beat(STOP_BODY.as_bytes()), Ok(Beat::Stop));
    }

    #[test]
    fn the_tracker_takes_any_messages_at_any_time(
        messages in prop::collection::vec((check_name(), beat_body(), any::<u64>()), 0..8),
        now in any::<u64>(),
    ) {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut malformed = 0;
        for (process, body, at) in &messages {
            if tracker.observe(process, body, *at).is_err() {
                malformed += 1;
            }
        }
        prop_assert_eq!(tracker.malformed(), malformed);
        let snapshot = tracker.snapshot(now);
        for pair in snapshot.windows(2) {
            prop_assert!(pair[0].name < pair[1].name);
        }
        for p in &snapshot {
            prop_assert_eq!(p.expected_by_ms.is_none(), p.status == ProcessState::Stopped);
        }
    }
}

// ---------------------------------------------------------------------------
// Topic patterns.

/// Text made mostly of a topic's own characters.
fn topic_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(
            prop::sample::select(&["a", "b", ".", "*", "#", "", " ", "é", ".."][..]),
            0..40,
        )
        .prop_map(|t| t.concat()),
        1 => any::<String>(),
        1 => (1usize..500).prop_map(|n| "#.".repeat(n)),
        1 => (1usize..500).prop_map(|n| "a.".repeat(n)),
    ]
}

fn topic_pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&["a", "b", "c", "*", "#"][..]), 1..7)
        .prop_map(|w| w.join("."))
}

fn topic_key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&["a", "b", "c"][..]), 0..7)
        .prop_map(|w| w.join("."))
}

/// AMQP topic matching, written out independently as RabbitMQ's topic
/// exchange defines it: words split on `.`, the empty key has no words,
/// `*` is exactly one word and `#` zero or more.
fn reference_matches(pattern: &str, key: &str) -> bool {
    fn words(s: &str) -> Vec<&str> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').collect()
        }
    }
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p, k) {
            ([], []) => true,
            ([], _) => false,
            (["#", p_rest @ ..], _) => go(p_rest, k) || (!k.is_empty() && go(p, &k[1..])),
            ([_, ..], []) => false,
            ([w, p_rest @ ..], [kw, k_rest @ ..]) => (*w == "*" || w == kw) && go(p_rest, k_rest),
        }
    }
    go(&words(pattern), &words(key))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn topic_functions_never_panic_on_any_text(pattern in topic_text(), key in topic_text()) {
        let is_pattern = topic::is_pattern(&pattern);
        let matched = topic::matches(&pattern, &key);
        if is_pattern {
            prop_assert!(!pattern.split('.').any(str::is_empty), "{:?}", pattern);
            if !pattern.contains(['*', '#']) {
                prop_assert_eq!(matched, pattern == key, "{:?} / {:?}", pattern, key);
            }
        }
        prop_assert!(topic::matches("#", &key));
    }

    #[test]
    fn topic_matching_agrees_with_a_reference_amqp_matcher(
        pattern in topic_pattern(),
        key in topic_key(),
    ) {
        prop_assert!(topic::is_pattern(&pattern));
        prop_assert_eq!(
            topic::matches(&pattern, &key),
            reference_matches(&pattern, &key),
            "{:?} against {:?}", pattern, key
        );
    }

    #[test]
    fn topic_matching_of_long_keys_agrees_with_the_reference(
        pattern in prop::collection::vec(prop::sample::select(&["a", "b", "*", "#"][..]), 1..5)
            .prop_map(|w| w.join(".")),
        key in prop::collection::vec(prop::sample::select(&["a", "b"][..]), 0..200)
            .prop_map(|w| w.join(".")),
    ) {
        prop_assert_eq!(
            topic::matches(&pattern, &key),
            reference_matches(&pattern, &key),
            "{:?} against {:?}", pattern, key
        );
    }
}

#[test]
fn the_reference_matcher_reads_the_rabbitmq_tutorial_as_written() {
    // Pins the reference itself, on the examples of RabbitMQ's tutorial 5.
    for (pattern, key, expected) in [
        ("*.orange.*", "quick.orange.rabbit", true),
        ("*.*.rabbit", "lazy.pink.rabbit", true),
        ("lazy.#", "lazy.orange.male.rabbit", true),
        ("lazy.#", "lazy", true),
        ("*.orange.*", "quick.orange.male.rabbit", false),
        ("*.orange.*", "orange", false),
        ("#", "", true),
        ("*", "", false),
        ("#.*", "a", true),
        ("a.#.#.b", "a.b", true),
    ] {
        assert_eq!(
            reference_matches(pattern, key),
            expected,
            "{pattern} / {key}"
        );
    }
}
