//! `heartbeat.json`: the agent's checks, parsed and validated.
//!
//! The format is heartbeat-consumer's (`$schema: heartbeat.v1`, `agent`,
//! `checks`, `paused`) plus the fields this host adds (`maxPerTick`,
//! `defaults`, per-check limits and grants). Parsing is pure: it takes the
//! file's text and returns either a [`HeartbeatConfig`] with the warnings
//! worth showing, or a [`ConfigError`] that names the file, line and column,
//! the field path and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// The `$schema` values this host understands.
pub const SUPPORTED_SCHEMAS: &[&str] = &["heartbeat.v1"];

/// Defaults the consumer applies to a check that leaves a field out.
pub const DEFAULT_CADENCE_MS: u64 = 900_000;
/// The handler a check runs when it names none.
pub const DEFAULT_HANDLER: &str = "default";
/// The priority of a check that gives none.
pub const DEFAULT_PRIORITY: i64 = 1;
/// The zone a `window` without `tz` is evaluated in (as the consumer does).
pub const DEFAULT_WINDOW_TZ: &str = "America/New_York";

/// A validated `heartbeat.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// The `$schema` value, when the file gives one.
    pub schema: Option<String>,
    /// The `agent` value, when the file gives one.
    pub agent: Option<String>,
    /// How many due checks run on one tick (`maxPerTick`, default 1).
    pub max_per_tick: usize,
    /// The checks, in file order.
    pub checks: Vec<CheckConfig>,
    /// Pauses set in the file (`paused`), by check name.
    pub paused: BTreeMap<String, Pause>,
    /// Limits that apply to every check unless it overrides them.
    pub defaults: Limits,
    /// Extra routing-key patterns (`watch`) whose beats the host tracks as
    /// sub-processes, beyond `heartbeat.<agent>.#`.
    pub watch: Vec<String>,
}

impl HeartbeatConfig {
    /// The check with this name, if any.
    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// One entry of `checks`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// The check's key in `checks`.
    pub name: String,
    /// How often it should run, in milliseconds (0: on every tick).
    pub cadence_ms: u64,
    /// The handler that runs it.
    pub handler: String,
    /// Tie-breaker among equally overdue checks; lower runs first.
    pub priority: i64,
    /// `false` turns the check off.
    pub enabled: bool,
    /// The `lastRun` written in the file, in ms since the epoch: the starting
    /// value when the state file has none for this check.
    pub last_run_ms: u64,
    /// The time-of-day window the check may run in.
    pub window: Option<Window>,
    /// The calendar quarters (UTC) the check may run in.
    pub trigger_on_quarters: Option<Vec<Quarter>>,
    /// The check's `meta` object, handed to its handler.
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// The check's limits: the file's `defaults` with its own overrides.
    pub limits: Limits,
    /// What the check's handler may touch (`grants`); nothing by default.
    pub grants: crate::grants::Grants,
}

/// A time-of-day window, `HH:MM` to `HH:MM` (both inclusive) in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// First minute of the window, in minutes after local midnight.
    pub start_minute: u16,
    /// Last minute of the window, in minutes after local midnight.
    pub end_minute: u16,
    /// The IANA zone name the window is read in.
    pub tz_name: String,
    /// The zone itself.
    pub tz: jiff::tz::TimeZone,
    /// Whether `tz` was left out and the default zone applied.
    pub tz_defaulted: bool,
}

/// A calendar quarter of the year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Quarter {
    /// January to March.
    Q1,
    /// April to June.
    Q2,
    /// July to September.
    Q3,
    /// October to December.
    Q4,
}

impl Quarter {
    /// The quarter a month (1–12) falls in.
    pub fn of_month(month: i8) -> Quarter {
        match month {
            1..=3 => Quarter::Q1,
            4..=6 => Quarter::Q2,
            7..=9 => Quarter::Q3,
            _ => Quarter::Q4,
        }
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match self {
            Quarter::Q1 => 1,
            Quarter::Q2 => 2,
            Quarter::Q3 => 3,
            Quarter::Q4 => 4,
        };
        write!(f, "Q{n}")
    }
}

/// A pause of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pause {
    /// `true`: paused until resumed (`false` means not paused).
    Flag(bool),
    /// Paused until a time.
    Until {
        /// Milliseconds since the epoch; a past value means not paused.
        until: u64,
        /// Why, for people.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Pause {
    /// Whether the pause holds at `now_ms`.
    pub fn is_active(&self, now_ms: u64) -> bool {
        match self {
            Pause::Flag(paused) => *paused,
            Pause::Until { until, .. } => now_ms < *until,
        }
    }
}

/// Per-run limits of a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one run, in milliseconds.
    pub timeout_ms: u64,
    /// Linear-memory budget of one run, in MiB.
    pub memory_mb: u64,
    /// Log records a run may write.
    pub max_log_lines: u32,
    /// Events a run may emit.
    pub max_events: u32,
    /// Bytes a run may send through log records and events together.
    pub max_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 10_000,
            memory_mb: 64,
            max_log_lines: 1_000,
            max_events: 100,
            max_output_bytes: 1 << 20,
        }
    }
}

/// A warning about a file that is still valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The field path, e.g. `checks.sub_health.window.tz`.
    pub path: String,
    /// What is worth knowing about it.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A config and the warnings its file earned.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: HeartbeatConfig,
    /// Unknown fields and defaults worth a look.
    pub warnings: Vec<ConfigWarning>,
}

/// Why a `heartbeat.json` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON or a field has the wrong shape.
    #[error("{file}:{line}:{column}: {field}: {message}")]
    Invalid {
        /// The file name as given.
        file: String,
        /// 1-based line of the offending token (0 when unknown).
        line: usize,
        /// 1-based column of the offending token (0 when unknown).
        column: usize,
        /// The field path (`.` when the whole document is at fault).
        field: String,
        /// What was expected and what was found.
        message: String,
    },
}

impl ConfigError {
    /// The field path the error is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Read { .. } => None,
        }
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Loaded, ConfigError> {
    let mut unknown = Vec::new();
    let raw: RawConfig = {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignoring = serde_ignored::Deserializer::new(&mut de, &mut on_unknown);
        let raw = serde_path_to_error::deserialize(ignoring).map_err(|e| {
            let field = display_path(&e.path().to_string());
            let inner = e.into_inner();
            // serde points after the offending token; point at the value's start when it can be found.
            let (line, column) = match locate(text, &field) {
                (0, _) => (inner.line(), inner.column()),
                found => found,
            };
            invalid(file, line, column, field, clean_serde_message(&inner))
        })?;
        de.end().map_err(|e| {
            invalid(
                file,
                e.line(),
                e.column(),
                ".".into(),
                clean_serde_message(&e),
            )
        })?;
        raw
    };
    let mut warnings: Vec<ConfigWarning> = unknown
        .into_iter()
        .map(|path| ConfigWarning {
            path,
            message: "unknown field (kept, not used by the host)".into(),
        })
        .collect();
    let located = |field: String, message: String| {
        let (line, column) = locate(text, &field);
        invalid(file, line, column, field, message)
    };
    raw.validate(&mut warnings, located)
        .map(|config| Loaded { config, warnings })
}

fn invalid(file: &str, line: usize, column: usize, field: String, message: String) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        line,
        column,
        field,
        message,
    }
}

/// serde_path_to_error writes `?` for the root.
fn display_path(path: &str) -> String {
    if path.is_empty() || path == "?" {
        ".".to_string()
    } else {
        path.to_string()
    }
}

/// serde_json appends " at line L column C"; the location is reported
/// apart. serde's "invalid type: X, expected Y" is turned around to say
/// first what was expected: "expected Y, found X".
fn clean_serde_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => &message,
    };
    expected_found(message)
}

/// Rewrites serde's error wording as "expected …, found …"; other messages
/// are returned as they are.
fn expected_found(message: &str) -> String {
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some((found, expected)) = mismatch.and_then(|m| m.split_once(", expected ")) {
        return format!("expected {expected}, found {}", describe_unexpected(found));
    }
    if let Some((variant, expected)) = message
        .strip_prefix("unknown variant ")
        .and_then(|m| m.split_once(", expected "))
    {
        return format!(
            "expected {}, found \"{}\"",
            expected.replace('`', "\""),
            variant.trim_matches('`')
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!(
            "expected a field \"{}\", found none",
            field.trim_matches('`')
        );
    }
    if let Some((length, expected)) = message
        .strip_prefix("invalid length ")
        .and_then(|m| m.split_once(", expected "))
    {
        return format!("expected {expected}, found {length} elements");
    }
    message.to_string()
}

/// serde's description of a value (`string "15m"`, `integer `-5``, `map`)
/// as it would be written in JSON (`"15m"`, `-5`, `an object`).
fn describe_unexpected(found: &str) -> String {
    if let Some(string) = found.strip_prefix("string ") {
        return string.to_string();
    }
    if let (Some(open), Some(close)) = (found.find('`'), found.rfind('`'))
        && open < close
    {
        return found[open + 1..close].to_string();
    }
    match found {
        "map" => "an object".to_string(),
        "sequence" => "an array".to_string(),
        "unit value" => "null".to_string(),
        other => other.to_string(),
    }
}

/// Finds where the value of a dotted field path starts in `text`, as a
/// 1-based (line, column); (0, 0) when it cannot be found. Used for errors
/// found after parsing, when serde's own position is gone.
fn locate(text: &str, field: &str) -> (usize, usize) {
    let mut offset = 0;
    for key in field.split('.') {
        let key = key.split('[').next().unwrap_or(key);
        let needle = format!("\"{key}\"");
        match text[offset..].find(&needle) {
            Some(i) => {
                offset += i + needle.len();
                if let Some(colon) = text[offset..].find(':') {
                    offset += colon + 1;
                }
                offset += text[offset..].len() - text[offset..].trim_start().len();
            }
            None => return (0, 0),
        }
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

// ---------------------------------------------------------------------------
// The file's shape, as serde reads it. Field types carry their own
// "expected ..." wording so that errors read well.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(rename = "$schema", default, deserialize_with = "present")]
    schema: Option<String>,
    #[serde(default, deserialize_with = "present")]
    agent: Option<String>,
    #[serde(default)]
    checks: IndexMap<String, RawCheck>,
    #[serde(default)]
    paused: BTreeMap<String, RawPause>,
    #[serde(default, deserialize_with = "present")]
    max_per_tick: Option<PositiveInt>,
    #[serde(default)]
    defaults: RawLimits,
    #[serde(default, deserialize_with = "present")]
    watch: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCheck {
    // `present`: a field given as `null` is an error, not the default
    // (heartbeat-consumer could not run such a file either; the schema agrees).
    #[serde(default, deserialize_with = "present")]
    cadence_ms: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    handler: Option<String>,
    #[serde(default, deserialize_with = "present")]
    priority: Option<Integer>,
    #[serde(default, deserialize_with = "present")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    last_run: Option<Millis>,
    #[serde(default, deserialize_with = "present")]
    window: Option<RawWindow>,
    #[serde(default, deserialize_with = "present")]
    trigger_on_quarters: Option<Vec<Quarter>>,
    #[serde(default, deserialize_with = "present")]
    meta: Option<serde_json::Map<String, serde_json::Value>>,
    // The limit fields of `RawLimits`, spelled out: `#[serde(flatten)]` would
    // lose error positions and unknown-field warnings.
    #[serde(default, deserialize_with = "present")]
    timeout_ms: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    memory_mb: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    max_log_lines: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    max_events: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    max_output_bytes: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    grants: Option<crate::grants::RawGrants>,
}

impl RawCheck {
    fn limits(&self) -> RawLimits {
        RawLimits {
            timeout_ms: self.timeout_ms,
            memory_mb: self.memory_mb,
            max_log_lines: self.max_log_lines,
            max_events: self.max_events,
            max_output_bytes: self.max_output_bytes,
        }
    }
}

#[derive(Deserialize)]
struct RawWindow {
    start: String,
    end: String,
    #[serde(default, deserialize_with = "present")]
    tz: Option<String>,
}

enum RawPause {
    Flag(bool),
    Until {
        until: Millis,
        reason: Option<String>,
    },
}

/// Written by hand rather than `#[serde(untagged)]`: untagged enums lose the
/// error's field path and position and drop unknown fields silently.
impl<'de> Deserialize<'de> for RawPause {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPause;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or {\"until\": <ms since epoch>, \"reason\": \"...\"}")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawPause, E> {
                Ok(RawPause::Flag(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawPause, A::Error> {
                let mut until = None;
                let mut reason = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "until" if until.is_some() => {
                            return Err(de::Error::duplicate_field("until"));
                        }
                        "until" => until = Some(map.next_value::<Millis>()?),
                        "reason" if reason.is_some() => {
                            return Err(de::Error::duplicate_field("reason"));
                        }
                        "reason" => reason = Some(map.next_value::<String>()?),
                        // Through the deserializer, so that serde_ignored reports it.
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let until = until.ok_or_else(|| de::Error::missing_field("until"))?;
                Ok(RawPause::Until { until, reason })
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawLimits {
    #[serde(default, deserialize_with = "present")]
    timeout_ms: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    memory_mb: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    max_log_lines: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    max_events: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    max_output_bytes: Option<NonNegativeInt>,
}

impl RawLimits {
    fn over(&self, base: Limits) -> Limits {
        let clamp32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Limits {
            timeout_ms: self.timeout_ms.map_or(base.timeout_ms, |v| v.0),
            memory_mb: self.memory_mb.map_or(base.memory_mb, |v| v.0),
            max_log_lines: self
                .max_log_lines
                .map_or(base.max_log_lines, |v| clamp32(v.0)),
            max_events: self.max_events.map_or(base.max_events, |v| clamp32(v.0)),
            max_output_bytes: self.max_output_bytes.map_or(base.max_output_bytes, |v| v.0),
        }
    }
}

impl RawConfig {
    fn validate(
        self,
        warnings: &mut Vec<ConfigWarning>,
        invalid: impl Fn(String, String) -> ConfigError,
    ) -> Result<HeartbeatConfig, ConfigError> {
        if let Some(schema) = &self.schema
            && !SUPPORTED_SCHEMAS.contains(&schema.as_str())
        {
            return Err(invalid(
                "$schema".into(),
                format!(
                    "expected one of {}, found {schema:?} (a newer format this host does not know)",
                    SUPPORTED_SCHEMAS.join(", ")
                ),
            ));
        }
        let defaults = self.defaults.over(Limits::default());
        let mut checks = Vec::with_capacity(self.checks.len());
        for (name, raw) in self.checks {
            let path = format!("checks.{name}");
            if name.is_empty() {
                return Err(invalid(path, "expected a non-empty check name".into()));
            }
            let limits = raw.limits().over(defaults);
            if limits.memory_mb > crate::runtime::MAX_MEMORY_MB {
                return Err(invalid(
                    format!("{path}.memoryMb"),
                    format!(
                        "expected at most {} (MiB), found {}",
                        crate::runtime::MAX_MEMORY_MB,
                        limits.memory_mb
                    ),
                ));
            }
            let grants = match raw.grants {
                Some(g) => g.validate().map_err(|(field, message)| {
                    invalid(format!("{path}.grants.{field}"), message)
                })?,
                None => crate::grants::Grants::default(),
            };
            let window = match raw.window {
                Some(w) => Some(w.validate(&format!("{path}.window"), warnings, &invalid)?),
                None => None,
            };
            let handler = raw.handler.unwrap_or_else(|| DEFAULT_HANDLER.to_string());
            if handler.is_empty() {
                return Err(invalid(
                    format!("{path}.handler"),
                    "expected a handler name, found \"\"".into(),
                ));
            }
            checks.push(CheckConfig {
                cadence_ms: raw.cadence_ms.map_or(DEFAULT_CADENCE_MS, |c| c.0),
                handler,
                priority: raw.priority.map_or(DEFAULT_PRIORITY, |p| p.0),
                enabled: raw.enabled.unwrap_or(true),
                last_run_ms: raw.last_run.map_or(0, |m| m.0),
                window,
                trigger_on_quarters: raw.trigger_on_quarters,
                meta: raw.meta.unwrap_or_default(),
                limits,
                grants,
                name,
            });
        }
        let watch = self.watch.unwrap_or_default();
        for (i, pattern) in watch.iter().enumerate() {
            if !is_topic_pattern(pattern) {
                return Err(invalid(
                    format!("watch[{i}]"),
                    format!(
                        "expected a routing-key pattern such as \"heartbeat.worker.#\", found {pattern:?}"
                    ),
                ));
            }
        }
        let mut paused = BTreeMap::new();
        for (name, pause) in self.paused {
            if !checks.iter().any(|c| c.name == name) {
                warnings.push(ConfigWarning {
                    path: format!("paused.{name}"),
                    message: "names no check in `checks`".into(),
                });
            }
            let pause = match pause {
                RawPause::Flag(flag) => Pause::Flag(flag),
                RawPause::Until { until, reason } => Pause::Until {
                    until: until.0,
                    reason,
                },
            };
            paused.insert(name, pause);
        }
        Ok(HeartbeatConfig {
            schema: self.schema,
            agent: self.agent,
            max_per_tick: self
                .max_per_tick
                .map_or(1, |n| usize::try_from(n.0).unwrap_or(usize::MAX)),
            checks,
            paused,
            defaults,
            watch,
        })
    }
}

/// Whether `pattern` is an AMQP topic pattern: dot-separated non-empty
/// words, `*` and `#` only as whole words.
fn is_topic_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.split('.').all(|word| {
            !word.is_empty()
                && (word == "*" || word == "#" || !word.contains(['*', '#']))
                && !word.chars().any(char::is_whitespace)
        })
}

impl RawWindow {
    fn validate(
        self,
        path: &str,
        warnings: &mut Vec<ConfigWarning>,
        invalid: &impl Fn(String, String) -> ConfigError,
    ) -> Result<Window, ConfigError> {
        let start_minute = parse_hh_mm(&self.start).ok_or_else(|| {
            invalid(
                format!("{path}.start"),
                format!(
                    "expected \"HH:MM\" (00:00 to 23:59), found {:?}",
                    self.start
                ),
            )
        })?;
        let end_minute = parse_hh_mm(&self.end).ok_or_else(|| {
            invalid(
                format!("{path}.end"),
                format!("expected \"HH:MM\" (00:00 to 23:59), found {:?}", self.end),
            )
        })?;
        let tz_defaulted = self.tz.is_none();
        let tz_name = self.tz.unwrap_or_else(|| DEFAULT_WINDOW_TZ.to_string());
        let tz = jiff::tz::TimeZone::get(&tz_name).map_err(|_| {
            invalid(
                format!("{path}.tz"),
                format!("expected an IANA time zone such as \"Europe/Berlin\", found {tz_name:?}"),
            )
        })?;
        if tz_defaulted {
            warnings.push(ConfigWarning {
                path: format!("{path}.tz"),
                message: format!(
                    "missing; the window is read in {DEFAULT_WINDOW_TZ}, as heartbeat-consumer does"
                ),
            });
        }
        Ok(Window {
            start_minute,
            end_minute,
            tz_name,
            tz,
            tz_defaulted,
        })
    }
}

/// Parses `HH:MM` (24-hour) into minutes after midnight.
pub fn parse_hh_mm(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

// ---------------------------------------------------------------------------
// Number types whose errors say what a person should write.

macro_rules! number_type {
    ($name:ident, $expecting:literal, $accept:expr) => {
        #[derive(Debug, Clone, Copy)]
        struct $name(u64);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        let accept: fn(u64) -> bool = $accept;
                        if accept(v) {
                            Ok($name(v))
                        } else {
                            Err(E::invalid_value(de::Unexpected::Unsigned(v), &self))
                        }
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        match u64::try_from(v) {
                            Ok(v) => self.visit_u64(v),
                            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                        }
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        match integral(v) {
                            Some(i) => self.visit_i64(i),
                            None => Err(E::invalid_type(de::Unexpected::Float(v), &self)),
                        }
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}

number_type!(NonNegativeInt, "a non-negative integer", |_| true);
number_type!(PositiveInt, "a positive integer", |v| v > 0);

/// A float with no fractional part (`900000.0`, `9e5`) as an integer, as JSON
/// Schema's `integer` and Python's arithmetic treat it; `None` otherwise.
fn integral(v: f64) -> Option<i64> {
    // Beyond 2^53 a float no longer names one integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    (v.fract() == 0.0 && v.abs() <= EXACT).then_some(v as i64)
}

/// Any integer (`priority`).
#[derive(Debug, Clone, Copy)]
struct Integer(i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Integer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
                Ok(Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
                i64::try_from(v)
                    .map(Integer)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Integer, E> {
                integral(v)
                    .map(Integer)
                    .ok_or_else(|| E::invalid_type(de::Unexpected::Float(v), &self))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// For optional fields: absent is `None` (through `#[serde(default)]`), but
/// an explicit `null` is refused like any other value of the wrong type.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Milliseconds since the epoch. heartbeat-consumer is Python and may have
/// written `time.time() * 1000`, a float: fractions of a millisecond are
/// dropped.
#[derive(Debug, Clone, Copy)]
struct Millis(u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("milliseconds since the Unix epoch (a non-negative number)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
                Ok(Millis(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
                u64::try_from(v)
                    .map(Millis)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Millis, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(Millis(v as u64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Loaded {
        parse(text, "heartbeat.json").expect("valid config")
    }

    fn parse_err(text: &str) -> String {
        parse(text, "heartbeat.json")
            .expect_err("invalid config")
            .to_string()
    }

    #[test]
    fn consumer_readme_example_parses_with_its_defaults() {
        let loaded = parse_ok(include_str!(
            "../../tests/fixtures/consumer-readme.heartbeat.json"
        ));
        let c = &loaded.config;
        assert_eq!(c.agent.as_deref(), Some("cack"));
        assert_eq!(c.checks.len(), 2);
        assert_eq!(c.checks[0].name, "sub_health");
        assert_eq!(c.checks[0].cadence_ms, 900_000);
        let w = c.checks[0].window.as_ref().expect("window");
        assert_eq!((w.start_minute, w.end_minute), (0, 23 * 60 + 59));
        assert_eq!(
            c.checks[1].trigger_on_quarters.as_ref().map(Vec::len),
            Some(4)
        );
        assert_eq!(c.max_per_tick, 1);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn omitted_fields_take_the_consumers_defaults() {
        let c = parse_ok(r#"{"checks": {"a": {}}}"#).config;
        let a = &c.checks[0];
        assert_eq!(a.cadence_ms, DEFAULT_CADENCE_MS);
        assert_eq!(a.handler, "default");
        assert_eq!(a.priority, 1);
        assert!(a.enabled);
        assert_eq!(a.last_run_ms, 0);
        assert_eq!(a.limits, Limits::default());
    }

    #[test]
    fn checks_keep_file_order() {
        let c = parse_ok(r#"{"checks": {"z": {}, "a": {}, "m": {}}}"#).config;
        let names: Vec<_> = c.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
    }

    #[test]
    fn wrong_cadence_type_names_line_column_and_path() {
        let text = "{\n  \"checks\": {\n    \"sub_health\": {\n      \"cadenceMs\": \"15m\"\n    }\n  }\n}";
        assert_eq!(
            parse_err(text),
            "heartbeat.json:4:20: checks.sub_health.cadenceMs: expected a non-negative integer, found \"15m\""
        );
    }

    #[test]
    fn negative_cadence_is_refused() {
        let err = parse_err(r#"{"checks": {"a": {"cadenceMs": -5}}}"#);
        assert!(
            err.contains("checks.a.cadenceMs: expected a non-negative integer, found -5"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_names_position() {
        let err = parse_err("{\n  \"checks\": {,}\n}");
        assert!(err.starts_with("heartbeat.json:2:"), "{err}");
    }

    #[test]
    fn unknown_schema_version_is_refused() {
        let err = parse_err(r#"{"$schema": "heartbeat.v2", "checks": {}}"#);
        assert!(
            err.contains("$schema: expected one of heartbeat.v1"),
            "{err}"
        );
        assert!(err.starts_with("heartbeat.json:1:13:"), "{err}");
    }

    #[test]
    fn watch_is_a_list_of_routing_key_patterns() {
        let loaded =
            parse_ok(r#"{"checks": {}, "watch": ["heartbeat.worker.#", "heartbeat.*.db"]}"#);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(
            loaded.config.watch,
            ["heartbeat.worker.#", "heartbeat.*.db"]
        );
        assert!(parse_ok(r#"{"checks": {}}"#).config.watch.is_empty());
        let err = parse_err(r#"{"watch": ["heartbeat..x"]}"#);
        assert!(
            err.contains("watch[0]: expected a routing-key pattern"),
            "{err}"
        );
        let err = parse_err(r#"{"watch": ["a.b*"]}"#);
        assert!(err.contains("watch[0]"), "{err}");
        let err = parse_err(r#"{"watch": "heartbeat.#"}"#);
        assert!(err.contains("watch: expected"), "{err}");
    }

    #[test]
    fn unknown_fields_are_warnings_not_errors() {
        let loaded = parse_ok(r#"{"owner": "ops", "checks": {"a": {"colour": "red"}}}"#);
        let paths: Vec<_> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["owner", "checks.a.colour"]);
    }

    #[test]
    fn window_without_tz_defaults_to_new_york_with_a_warning() {
        let loaded =
            parse_ok(r#"{"checks": {"a": {"window": {"start": "09:00", "end": "17:00"}}}}"#);
        let w = loaded.config.checks[0].window.as_ref().expect("window");
        assert_eq!(w.tz_name, "America/New_York");
        assert!(w.tz_defaulted);
        assert_eq!(loaded.warnings[0].path, "checks.a.window.tz");
    }

    #[test]
    fn bad_window_fields_are_named() {
        let err = parse_err(
            r#"{"checks": {"a": {"window": {"start": "9:00", "end": "17:00", "tz": "UTC"}}}}"#,
        );
        assert!(
            err.contains("checks.a.window.start: expected \"HH:MM\""),
            "{err}"
        );
        let err = parse_err(
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "24:00", "tz": "UTC"}}}}"#,
        );
        assert!(err.contains("checks.a.window.end"), "{err}");
        let err = parse_err(
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "10:00", "tz": "Mars/Olympus"}}}}"#,
        );
        assert!(
            err.contains("checks.a.window.tz: expected an IANA time zone"),
            "{err}"
        );
    }

    #[test]
    fn bad_quarter_is_named() {
        let err = parse_err(r#"{"checks": {"a": {"triggerOnQuarters": ["Q5"]}}}"#);
        assert!(
            err.contains(
                "checks.a.triggerOnQuarters[0]: expected one of \"Q1\", \"Q2\", \"Q3\", \"Q4\", found \"Q5\""
            ),
            "{err}"
        );
    }

    #[test]
    fn float_last_run_from_python_is_accepted() {
        let c = parse_ok(r#"{"checks": {"a": {"lastRun": 1700000000123.75}}}"#).config;
        assert_eq!(c.checks[0].last_run_ms, 1_700_000_000_123);
    }

    #[test]
    fn paused_takes_flags_and_until() {
        let c = parse_ok(r#"{"checks": {"a": {}, "b": {}}, "paused": {"a": true, "b": {"until": 5000, "reason": "maintenance"}}}"#).config;
        assert!(c.paused["a"].is_active(0));
        assert!(c.paused["b"].is_active(4999));
        assert!(!c.paused["b"].is_active(5000));
    }

    #[test]
    fn limits_default_then_override() {
        let c = parse_ok(r#"{"defaults": {"timeoutMs": 500}, "checks": {"a": {}, "b": {"timeoutMs": 50, "memoryMb": 8}}}"#).config;
        assert_eq!(c.checks[0].limits.timeout_ms, 500);
        assert_eq!(c.checks[1].limits.timeout_ms, 50);
        assert_eq!(c.checks[1].limits.memory_mb, 8);
        let err = parse_err(r#"{"checks": {"a": {"timeoutMs": 0}}}"#);
        assert!(err.contains("checks.a.timeoutMs"), "{err}");
    }

    #[test]
    fn explicit_null_is_refused_not_defaulted() {
        let err = parse_err("{\"checks\": {\"a\": {\"handler\": null}}}");
        assert!(
            err.contains("checks.a.handler: expected a string, found null"),
            "{err}"
        );
        let err = parse_err("{\"checks\": {\"a\": {\"cadenceMs\": null}}}");
        assert!(
            err.contains("checks.a.cadenceMs: expected a non-negative integer, found null"),
            "{err}"
        );
        let err = parse_err("{\"maxPerTick\": null}");
        assert!(
            err.contains("maxPerTick: expected a positive integer"),
            "{err}"
        );
    }

    #[test]
    fn integral_floats_count_as_integers_like_json_schema() {
        let c = parse_ok(
            r#"{"maxPerTick": 2.0, "checks": {"a": {"cadenceMs": 9e5, "priority": -3.0}}}"#,
        )
        .config;
        assert_eq!(c.max_per_tick, 2);
        assert_eq!(c.checks[0].cadence_ms, 900_000);
        assert_eq!(c.checks[0].priority, -3);
        let err = parse_err(r#"{"checks": {"a": {"cadenceMs": 1.5}}}"#);
        assert!(
            err.contains("checks.a.cadenceMs: expected a non-negative integer, found 1.5"),
            "{err}"
        );
        let err = parse_err(r#"{"checks": {"a": {"priority": 0.5}}}"#);
        assert!(
            err.contains("checks.a.priority: expected an integer, found 0.5"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_pause_names_its_path_and_what_is_expected() {
        let text = "{\n  \"paused\": {\n    \"a\": \"yes\"\n  }\n}";
        assert_eq!(
            parse_err(text),
            "heartbeat.json:3:10: paused.a: expected true, false, or {\"until\": <ms since epoch>, \"reason\": \"...\"}, found \"yes\""
        );
        let err = parse_err(r#"{"paused": {"a": {"reason": "x"}}}"#);
        assert!(
            err.contains("paused.a: expected a field \"until\", found none"),
            "{err}"
        );
        let err = parse_err(r#"{"paused": {"a": {"until": -1}}}"#);
        assert!(
            err.contains("paused.a.until: expected milliseconds"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_inside_a_pause_are_warnings() {
        let loaded =
            parse_ok(r#"{"checks": {"a": {}}, "paused": {"a": {"until": 5, "by": "ops"}}}"#);
        let paths: Vec<_> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["paused.a.by"]);
    }

    #[test]
    fn missing_window_end_is_named() {
        let err = parse_err(r#"{"checks": {"a": {"window": {"start": "09:00"}}}}"#);
        assert!(
            err.contains("checks.a.window: expected a field \"end\", found none"),
            "{err}"
        );
    }

    #[test]
    fn hh_mm_parsing() {
        assert_eq!(parse_hh_mm("00:00"), Some(0));
        assert_eq!(parse_hh_mm("23:59"), Some(1439));
        assert_eq!(parse_hh_mm("24:00"), None);
        assert_eq!(parse_hh_mm("7:00"), None);
        assert_eq!(parse_hh_mm("07:60"), None);
    }
}
