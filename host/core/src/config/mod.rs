//! `heartbeat.json`: the agent's checks, parsed and validated.
//!
//! The format is heartbeat-consumer's (`$schema: heartbeat.v1`, `agent`,
//! `checks`, `paused`) plus the fields this host adds (`maxPerTick`,
//! `defaults`, per-check limits and grants). Parsing is pure: it takes the
//! file's text and returns either a [`HeartbeatConfig`] with the warnings
//! worth showing, or a [`ConfigError`] that names the file, line and column,
//! the field path and what was expected.

//!
//! - `raw`: the file's shape as serde reads it, each field type carrying
//!   its own "expected …" wording;
//! - `validate`: from the raw shape to a [`HeartbeatConfig`], the rules
//!   serde cannot express;
//! - `numbers`: integers and milliseconds as people and Python write them;
//! - `diagnostics`: errors and warnings, positioned by `spans` (a scan of
//!   the document's structure, never a text search);
//! - [`reload`]: what a re-read file means for the config in force;
//! - [`grants`]: what a check's handler may touch;
//! - [`diff`]: what changed between two configs, for the reload log.

mod diagnostics;
pub mod diff;
pub mod dir_grants;
pub mod grants;
mod numbers;
mod objects_only;
mod raw;
pub mod reload;
mod spans;
mod validate;

use std::collections::BTreeMap;

pub use diagnostics::{ConfigError, ConfigWarning};
pub use grants::{DirGrantConfig, EnvGrant, Grants, SecretGrant};
pub use validate::parse_hh_mm;

use crate::model::{Limits, Pause, Quarter, RetryPolicy, Window};

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
    /// `handlersDir`: the agent's own handler directory, as written
    /// (relative to the file's directory). Read by `run --agents` and a
    /// repeated `--config`; the single-agent form takes `--handlers`.
    pub handlers_dir: Option<String>,
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
    /// The `lastRun` written in the file, in whole ms since the epoch: the
    /// starting value when the state file has none for this check.
    pub last_run_ms: u64,
    /// The fraction of a millisecond `lastRun` was written with (in `[0, 1)`;
    /// Python's `time.time() * 1000` writes one). Only the overdue ratio uses
    /// it, so two checks a fraction apart are not taken for a tie.
    pub last_run_fraction_ms: f64,
    /// The time-of-day window the check may run in.
    pub window: Option<Window>,
    /// The calendar quarters (UTC) the check may run in.
    pub trigger_on_quarters: Option<Vec<Quarter>>,
    /// The check's `meta` object, handed to its handler.
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// The check's limits: the file's `defaults` with its own overrides.
    pub limits: Limits,
    /// What the check's handler may touch (`grants`); nothing by default.
    pub grants: Grants,
    /// How its failures become soft and hard states (`maxAttempts`,
    /// `retryIntervalMs`, `flapThreshold`: the check's own, else `defaults`).
    pub retry: RetryPolicy,
}

/// A config and the warnings its file earned.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: HeartbeatConfig,
    /// Unknown fields and defaults worth a look.
    pub warnings: Vec<ConfigWarning>,
}

/// Parses and validates `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Loaded, ConfigError> {
    let locator = diagnostics::Locator::new(text, file);
    let mut unknown = Vec::new();
    let raw: raw::RawConfig = {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignoring = serde_ignored::Deserializer::new(&mut de, &mut on_unknown);
        let raw = serde_path_to_error::deserialize(ignoring).map_err(|e| locator.serde(e))?;
        de.end().map_err(|e| locator.trailing(&e))?;
        raw
    };
    let mut warnings: Vec<ConfigWarning> = unknown
        .into_iter()
        .map(|path| ConfigWarning {
            path,
            message: "unknown field (kept, not used by the host)".into(),
        })
        .collect();
    raw.validate(&mut warnings, |field, message| {
        locator.invalid(field, message)
    })
    .map(|config| Loaded { config, warnings })
}

/// Validates the `meta` of every check whose handler is a built-in with a
/// validated `meta` ([`crate::builtins::validate`]) and that `is_builtin`
/// says is served by the built-in (a file of the same name in the handler
/// directory overrides it, and reads its `meta` its own way). The first
/// refusal is positioned in `text`, like any other config error:
/// `heartbeat.json:7:22: checks.api.meta.expectStatus[1]: expected …`.
pub fn validate_builtin_meta(
    text: &str,
    file: &str,
    config: &HeartbeatConfig,
    is_builtin: impl Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    let locator = diagnostics::Locator::new(text, file);
    for check in &config.checks {
        if !is_builtin(&check.handler) {
            continue;
        }
        if let Some(Err(e)) = crate::builtins::validate(&check.handler, &check.meta) {
            return Err(locator.invalid(
                format!("checks.{}.{}", check.name, e.meta_path()),
                e.message,
            ));
        }
    }
    Ok(())
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
            "../../../../tests/fixtures/consumer-readme.heartbeat.json"
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
            r#"{"checks": {"a": {"window": {"start": "9:0", "end": "17:00", "tz": "UTC"}}}}"#,
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
        assert_eq!(c.checks[0].last_run_fraction_ms, 0.75);
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
        assert_eq!(parse_hh_mm("7:00"), Some(420));
        assert_eq!(parse_hh_mm("7:0"), None);
        assert_eq!(parse_hh_mm("+7:00"), None);
        assert_eq!(parse_hh_mm("07:60"), None);
    }

    #[test]
    fn a_key_inside_an_earlier_checks_meta_does_not_capture_the_error_position() {
        let text = r#"{"checks": {"a": {"meta": {"checks": {"b": {"window": {"start": 1}}}}}, "b": {"window": {"start": "25:99", "end": "10:00", "tz": "UTC"}}}}"#;
        let err = parse_err(text);
        let column = text.find(r#""25:99""#).expect("value") + 1;
        assert!(
            err.starts_with(&format!(
                "heartbeat.json:1:{column}: checks.b.window.start: expected \"HH:MM\""
            )),
            "{err}"
        );
    }

    #[test]
    fn an_empty_trigger_on_quarters_runs_every_quarter_with_a_warning() {
        let loaded = parse_ok(r#"{"checks": {"a": {"triggerOnQuarters": []}}}"#);
        assert_eq!(loaded.config.checks[0].trigger_on_quarters, None);
        let paths: Vec<_> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["checks.a.triggerOnQuarters"]);
    }

    #[test]
    fn a_one_digit_hour_window_is_accepted_as_the_consumer_does() {
        let c = parse_ok(
            r#"{"checks": {"a": {"window": {"start": "9:00", "end": "17:30", "tz": "UTC"}}}}"#,
        )
        .config;
        let w = c.checks[0].window.as_ref().expect("window");
        assert_eq!((w.start_minute, w.end_minute), (9 * 60, 17 * 60 + 30));
    }

    #[test]
    fn an_escaping_guest_path_is_refused_at_its_position() {
        for guest in ["/..", "/a/../b", "/data/.."] {
            let text = format!(
                "{{\"checks\": {{\"a\": {{\"grants\": {{\"dirs\": {{\"{guest}\": {{\"path\": \"/tmp\"}}}}}}}}}}}}"
            );
            let e = parse(&text, "heartbeat.json").expect_err("refused");
            // The value's `{`, 1-based: past the quoted key, `:` and a space.
            let column = text.find(&format!("\"{guest}\":")).expect("key") + guest.len() + 5;
            assert_eq!(
                e.to_string(),
                format!(
                    "heartbeat.json:1:{column}: checks.a.grants.dirs.{guest}: expected an absolute guest path such as \"/data\", found {guest:?}"
                )
            );
        }
    }
}
