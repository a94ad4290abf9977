//! Feeds the input, as the text of `heartbeat.json` (lossy UTF-8), to
//! `config::parse`, then what it accepts to `config::diff` (against itself
//! and a fixture) and `config::validate_builtin_meta`; and the raw bytes to
//! a `config::reload::Reloader` holding the fixture. Asserts: no panic; a
//! refusal names the file and lies inside the text, at the first character
//! of a value when the text is well-formed JSON; an accepted config keeps
//! the validator's rules and diffs empty against itself; the reloader
//! refuses exactly what `parse` refuses, and applies what differs.
#![no_main]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use heartbeat_core::config::reload::{ReloadOutcome, Reloader};
use heartbeat_core::config::{self, ConfigError, HeartbeatConfig, SUPPORTED_SCHEMAS, diff};
use heartbeat_core::model::MAX_MEMORY_MB;
use heartbeat_core::topic;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "heartbeat.json";

/// The config the reloader starts from and the accepted ones are diffed
/// against: every field the format has.
fn fixture() -> &'static HeartbeatConfig {
    static FIXTURE: OnceLock<HeartbeatConfig> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = include_str!("../../../../tests/fixtures/every-field.heartbeat.json");
        match config::parse(text, FILE) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("the fixture is refused: {e}"),
        }
    })
}

/// Whether 1-based (`line`, `column`) is a character of `text`, or just
/// past the end of one of its lines. Columns count characters.
fn inside(text: &str, line: usize, column: usize) -> bool {
    line >= 1
        && column >= 1
        && text
            .split('\n')
            .nth(line - 1)
            .is_some_and(|l| column <= l.chars().count() + 1)
}

fn char_at(text: &str, line: usize, column: usize) -> Option<char> {
    text.split('\n')
        .nth(line.checked_sub(1)?)?
        .chars()
        .nth(column.checked_sub(1)?)
}

/// What every accepted config holds, whatever the file said.
fn keeps_the_rules(c: &HeartbeatConfig) {
    assert!(c.max_per_tick >= 1);
    if let Some(schema) = &c.schema {
        assert!(SUPPORTED_SCHEMAS.contains(&schema.as_str()), "{schema:?}");
    }
    assert!(c.defaults.memory_mb <= MAX_MEMORY_MB, "{:?}", c.defaults);
    for pattern in &c.watch {
        assert!(topic::is_pattern(pattern), "watch {pattern:?}");
    }
    let mut names = BTreeSet::new();
    for check in &c.checks {
        assert!(!check.name.is_empty());
        assert!(names.insert(&check.name), "{} twice", check.name);
        assert!(!check.handler.is_empty());
        assert!(check.limits.timeout_ms >= 1);
        assert!((1..=MAX_MEMORY_MB).contains(&check.limits.memory_mb));
        assert!(
            (0.0..1.0).contains(&check.last_run_fraction_ms),
            "{check:?}"
        );
        if let Some(w) = &check.window {
            assert!(w.start_minute < 1440 && w.end_minute < 1440, "{w:?}");
        }
        if let Some(quarters) = &check.trigger_on_quarters {
            assert!(!quarters.is_empty());
        }
        for dir in &check.grants.dirs {
            assert!(dir.guest_path.starts_with('/'), "{dir:?}");
            assert!(!dir.guest_path.split('/').any(|p| p == ".."), "{dir:?}");
            assert!(!dir.host_path.as_os_str().is_empty());
        }
        for pattern in &check.grants.emit {
            assert!(topic::is_pattern(pattern), "emit {pattern:?}");
        }
    }
}

/// A refusal of `text`: an `Invalid` naming `file`, with a field and a
/// message; positioned inside the text unless `unpositioned_ok` and the
/// position is the documented (0, 0) of a field not found in the text.
fn check_refusal(text: &str, file: &str, error: &ConfigError, unpositioned_ok: bool) {
    let ConfigError::Invalid {
        file: named,
        line,
        column,
        field,
        message,
    } = error
    else {
        panic!("nothing was read, yet: {error}");
    };
    let (line, column) = (*line, *column);
    assert_eq!(named, file);
    assert!(!field.is_empty() && !message.is_empty(), "{error}");
    if unpositioned_ok && (line, column) == (0, 0) {
        return;
    }
    assert!(inside(text, line, column), "outside the text: {error}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = config::parse(&text, FILE);
    match &parsed {
        Err(e) => {
            check_refusal(&text, FILE, e, false);
            if serde_json::from_str::<serde_json::Value>(&text).is_ok()
                && let ConfigError::Invalid { line, column, .. } = e
            {
                let at = char_at(&text, *line, *column);
                assert!(
                    matches!(
                        at,
                        Some('{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n')
                    ),
                    "not at a value ({at:?}): {e}"
                );
            }
        }
        Ok(loaded) => {
            let c = &loaded.config;
            keeps_the_rules(c);
            let same = diff::diff(c, c);
            assert!(same.is_empty(), "{same}");
            let _ = diff::diff(fixture(), c).to_string();
            let _ = diff::diff(c, fixture()).to_string();
            if let Err(e) = config::validate_builtin_meta(&text, FILE, c, |_| true) {
                check_refusal(&text, FILE, &e, true);
            }
        }
    }

    let mut reloader = Reloader::new(PathBuf::from(FILE), Arc::new(fixture().clone()));
    let outcome = reloader.consider(Ok(data.to_vec()));
    match (std::str::from_utf8(data).is_ok(), &parsed, &outcome) {
        (false, _, ReloadOutcome::Refused(_)) | (true, Err(_), ReloadOutcome::Refused(_)) => {}
        (true, Ok(loaded), ReloadOutcome::Unchanged) => assert_eq!(&loaded.config, fixture()),
        (
            true,
            Ok(loaded),
            ReloadOutcome::Applied {
                config, diff: d, ..
            },
        ) => {
            assert_ne!(&loaded.config, fixture());
            assert_eq!(**config, loaded.config);
            assert_eq!(*d, diff::diff(fixture(), &loaded.config));
        }
        (utf8, parsed, outcome) => {
            panic!("reloader said {outcome:?} of a file parse judged {parsed:?} (UTF-8: {utf8})")
        }
    }
    assert!(matches!(
        reloader.consider(Ok(data.to_vec())),
        ReloadOutcome::Unchanged
    ));
});
