//! From the raw shape to a [`HeartbeatConfig`]: defaults, limits, grants,
//! windows and the cross-field rules serde cannot express.

use std::collections::BTreeMap;

use super::raw::{RawConfig, RawPause, RawWindow};
use super::{
    CheckConfig, ConfigError, ConfigWarning, DEFAULT_CADENCE_MS, DEFAULT_HANDLER, DEFAULT_PRIORITY,
    DEFAULT_WINDOW_TZ, Grants, HeartbeatConfig, SUPPORTED_SCHEMAS,
};
use crate::model::{Limits, MAX_MEMORY_MB, Pause, Quarter, RetryPolicy, Window};

impl RawConfig {
    pub(super) fn validate(
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
        let mut raw_defaults = self.defaults;
        let default_grants = match raw_defaults.grants.take() {
            Some(g) => {
                let mut said = Vec::new();
                let grants = g.validate(&mut said).map_err(|(field, message)| {
                    invalid(format!("defaults.grants.{field}"), message)
                })?;
                warnings.extend(said.into_iter().map(|(field, message)| ConfigWarning {
                    path: format!("defaults.grants.{field}"),
                    message,
                }));
                grants
            }
            None => Grants::default(),
        };
        let defaults = raw_defaults.limits().over(Limits::default());
        let default_retry = raw_defaults.limits().retry_over(RetryPolicy::default());
        // Checked here, where it is written: a check that inherits it has no
        // `memoryMb` of its own to point at.
        if defaults.memory_mb > MAX_MEMORY_MB {
            return Err(invalid(
                "defaults.memoryMb".into(),
                format!(
                    "expected at most {} (MiB), found {}",
                    MAX_MEMORY_MB, defaults.memory_mb
                ),
            ));
        }
        let mut checks = Vec::with_capacity(self.checks.len());
        for (name, raw) in self.checks {
            let path = format!("checks.{name}");
            if name.is_empty() {
                return Err(invalid(path, "expected a non-empty check name".into()));
            }
            let limits = raw.limits().over(defaults);
            let retry = raw.limits().retry_over(default_retry);
            if raw.retry_interval_ms.is_some() && retry.max_attempts == 1 {
                warnings.push(ConfigWarning {
                    path: format!("{path}.retryIntervalMs"),
                    message: "has no effect with maxAttempts 1: the first failure is already hard"
                        .into(),
                });
            }
            if limits.memory_mb > MAX_MEMORY_MB {
                return Err(invalid(
                    format!("{path}.memoryMb"),
                    format!(
                        "expected at most {} (MiB), found {}",
                        MAX_MEMORY_MB, limits.memory_mb
                    ),
                ));
            }
            let grants = match raw.grants {
                Some(g) => {
                    let mut said = Vec::new();
                    let grants = g.validate(&mut said).map_err(|(field, message)| {
                        invalid(format!("{path}.grants.{field}"), message)
                    })?;
                    warnings.extend(said.into_iter().map(|(field, message)| ConfigWarning {
                        path: format!("{path}.grants.{field}"),
                        message,
                    }));
                    grants
                }
                None => Grants::default(),
            };
            let grants = default_grants.under(grants);
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
                last_run_fraction_ms: raw.last_run.map_or(0.0, |m| m.1),
                window,
                trigger_on_quarters: quarters(raw.trigger_on_quarters, &path, warnings),
                meta: raw.meta.unwrap_or_default(),
                limits,
                grants,
                retry,
                name,
            });
        }
        let watch = self.watch.unwrap_or_default();
        for (i, pattern) in watch.iter().enumerate() {
            if !crate::topic::is_pattern(pattern) {
                return Err(invalid(
                    format!("watch[{i}]"),
                    format!(
                        "expected a routing-key pattern such as \"heartbeat.worker.#\", found {pattern:?}"
                    ),
                ));
            }
        }
        if self.handlers_dir.as_deref() == Some("") {
            return Err(invalid(
                "handlersDir".into(),
                "expected a directory path, found \"\"".into(),
            ));
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
            handlers_dir: self.handlers_dir,
        })
    }
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

/// Parses `HH:MM` (24-hour) into minutes after midnight; a one-digit hour
/// (`9:00`) is accepted, as heartbeat-consumer's schema and parser accept it.
pub fn parse_hh_mm(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !h.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `triggerOnQuarters` as the consumer reads it: an empty list restricts
/// nothing (the consumer runs such a check every quarter), so it is no
/// restriction here either, with a warning, since it reads as "never".
fn quarters(
    given: Option<Vec<Quarter>>,
    path: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<Vec<Quarter>> {
    match given {
        Some(list) if list.is_empty() => {
            warnings.push(ConfigWarning {
                path: format!("{path}.triggerOnQuarters"),
                message: "empty: runs in every quarter, as in heartbeat-consumer (leave it out, or list the quarters)".into(),
            });
            None
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn a_defaults_memory_mb_over_the_limit_is_refused_at_defaults() {
        // Found by fuzz::config_documents_of_real_fields_are_accepted_or_refused_at_the_value_at_fault:
        // with no check it was accepted; with a check inheriting it, refused
        // at `checks.a.memoryMb`, a field the file does not have (0:0).
        for text in [
            r#"{"defaults": {"memoryMb": 4097}}"#,
            r#"{"defaults": {"memoryMb": 4097}, "checks": {"a": {}}}"#,
            r#"{"defaults": {"memoryMb": 4097}, "checks": {"a": {"memoryMb": 8}}}"#,
        ] {
            let e = parse(text, "heartbeat.json").expect_err("over the limit");
            assert_eq!(
                e.to_string(),
                "heartbeat.json:1:27: defaults.memoryMb: expected at most 4096 (MiB), found 4097",
                "{text}"
            );
        }
    }

    #[test]
    fn defaults_grants_go_to_every_check_under_its_own() {
        let c = parse(
            r#"{"defaults": {"grants": {
                    "http": ["https://api.example.com"], "env": ["REGION"],
                    "dirs": {"/data": {"path": "/srv/shared", "readOnly": true}}}},
                "checks": {
                    "plain": {},
                    "own": {"grants": {
                        "http": ["https://api.example.com", "http://127.0.0.1:8080"],
                        "secrets": {"REGION": {"file": "region"}},
                        "dirs": {"/data": {"path": "/srv/own"}}}}}}"#,
            "heartbeat.json",
        )
        .expect("valid")
        .config;
        let plain = &c.checks[0].grants;
        assert_eq!(plain.http.len(), 1);
        assert_eq!(plain.env.len(), 1);
        assert_eq!(plain.dirs[0].host_path.to_str(), Some("/srv/shared"));
        let own = &c.checks[1].grants;
        let origins: Vec<String> = own.http.iter().map(|h| h.origin.to_string()).collect();
        assert_eq!(
            origins,
            ["https://api.example.com", "http://127.0.0.1:8080"]
        );
        // The check's secret REGION replaces the default env REGION; its
        // /data replaces the default's.
        assert!(own.env.is_empty());
        assert_eq!(own.secrets[0].name, "REGION");
        assert_eq!(own.dirs.len(), 1);
        assert_eq!(own.dirs[0].host_path.to_str(), Some("/srv/own"));
        let e = parse(
            r#"{"defaults": {"grants": {"http": ["api.example.com"]}}}"#,
            "heartbeat.json",
        )
        .expect_err("no scheme");
        assert!(
            e.to_string()
                .contains("defaults.grants.http[0]: expected an origin"),
            "{e}"
        );
    }
}
