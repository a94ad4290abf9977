//! The liveness rule of kstlib's heartbeat file, shared by the host's
//! `heartbeat-host is-alive` (`host/src/store/liveness.rs`) and the
//! built-in `liveness_file` check, so that both say "alive" of the same
//! files at the same instants.
//!
//! The file is `{"timestamp": ISO 8601, "pid", "hostname", "metadata"}`
//! (kstlib's `HeartbeatState`, and the host's own `--liveness-file`); it is
//! alive when the timestamp is at most `max-age` old (kstlib's
//! `Heartbeat.is_alive`: `age <= max_age_seconds`, default 30 s). A
//! timestamp without an offset is taken as UTC, as Python's naive
//! datetimes are.
//!
//! `liveness_file`'s `meta`: `path` (required, a guest path in a granted
//! directory), `maxAge` (a duration, default `30s`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Fields, MetaError};

/// The default `maxAge`, as kstlib's `is_alive` and `is-alive --max-age`.
pub const DEFAULT_MAX_AGE_MS: u64 = 30_000;

/// The largest liveness file read (the host's limit for the same files).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// What a liveness file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LivenessState {
    /// Last beat, ISO 8601 (e.g. `2026-01-12T10:00:00.123456+00:00`).
    pub timestamp: String,
    /// The writer's process id.
    pub pid: u32,
    /// The writer's host name.
    pub hostname: String,
    /// Application data: for heartbeat-host, `agent`, `status`, `reasons`
    /// and `processes`.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// A liveness file read and its timestamp understood.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    /// The file's content.
    pub state: LivenessState,
    /// The timestamp, ms since the Unix epoch.
    pub at_ms: i64,
}

/// Reads a liveness file's text; the error says why it is not one.
pub fn read(text: &str) -> Result<Beat, String> {
    let state: LivenessState =
        serde_json::from_str(text).map_err(|e| format!("not a liveness file: {e}"))?;
    let at = parse_timestamp(&state.timestamp)
        .ok_or_else(|| format!("timestamp {:?} is not ISO 8601", state.timestamp))?;
    Ok(Beat {
        state,
        at_ms: at.as_millisecond(),
    })
}

/// ISO 8601 with an offset, or without one (taken as UTC).
pub fn parse_timestamp(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>().ok().or_else(|| {
        let dt = text.parse::<jiff::civil::DateTime>().ok()?;
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    })
}

/// The beat's age at `now_ms`, in seconds (negative for a beat stamped in
/// the future).
pub fn age_seconds(at_ms: i64, now_ms: u64) -> f64 {
    (now_ms as f64 - at_ms as f64) / 1000.0
}

/// kstlib's rule: alive when the age is at most the maximum.
pub fn is_alive(age_s: f64, max_age_s: f64) -> bool {
    age_s <= max_age_s
}

/// A `liveness_file` check's `meta`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The guest path of the liveness file.
    pub path: String,
    /// The oldest beat that still counts as alive, ms.
    pub max_age_ms: u64,
    /// `maxAge` as written (`30s` when absent), for messages.
    pub max_age_text: String,
}

impl Meta {
    /// Validates a `liveness_file` `meta`.
    pub fn parse(meta: &Map<String, Value>) -> Result<Meta, MetaError> {
        let mut f = Fields::new(meta, "");
        let path = f.required_string("path")?;
        if !path.starts_with('/') || path.ends_with('/') {
            return Err(f.error(
                "path",
                format!(
                    "expected the absolute guest path of a file in grants.dirs such as \"/run/bot.heartbeat\", found {path:?}"
                ),
            ));
        }
        let max_age_ms = f.duration_ms("maxAge")?.unwrap_or(DEFAULT_MAX_AGE_MS);
        let max_age_text = meta
            .get("maxAge")
            .and_then(Value::as_str)
            .map_or_else(|| "30s".to_string(), |s| s.trim().to_string());
        f.finish()?;
        Ok(Meta {
            path: path.to_string(),
            max_age_ms,
            max_age_text,
        })
    }
}

/// Why a `liveness_file` run failed (`details.failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// No file at `path`.
    Missing,
    /// A file that cannot be read or is not a liveness file, or a path
    /// outside every granted directory.
    Unreadable,
    /// The beat is older than `maxAge`.
    Stale,
}

impl Failed {
    /// The name in `details.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failed::Missing => "missing",
            Failed::Unreadable => "unreadable",
            Failed::Stale => "stale",
        }
    }
}

/// The details of a run whose file could not be judged: `path`, `failed`
/// and `error`.
pub fn failure(meta: &Meta, failed: Failed, error: &str) -> Value {
    json!({"path": meta.path, "failed": failed.as_str(), "error": error})
}

/// Judges the file's text at `now_ms`: the details (`path`, `timestamp`,
/// `ageMs`, `maxAgeMs`, `pid`, `hostname`, the writer's
/// `metadata.status` when it has one, and on failure `failed` and `error`)
/// and whether it is alive.
pub fn judge(meta: &Meta, text: &str, now_ms: u64) -> (bool, Value) {
    let beat = match read(text) {
        Ok(beat) => beat,
        Err(why) => {
            let error = format!("{}: {why}", meta.path);
            return (false, failure(meta, Failed::Unreadable, &error));
        }
    };
    let age_s = age_seconds(beat.at_ms, now_ms);
    let alive = is_alive(age_s, meta.max_age_ms as f64 / 1000.0);
    let age_ms = (now_ms as i64).saturating_sub(beat.at_ms);
    let mut details = json!({
        "path": meta.path,
        "timestamp": beat.state.timestamp,
        "ageMs": age_ms,
        "maxAgeMs": meta.max_age_ms,
        "pid": beat.state.pid,
        "hostname": beat.state.hostname,
    });
    if let (Some(status), Value::Object(map)) = (beat.state.metadata.get("status"), &mut details) {
        map.insert("status".into(), status.clone());
    }
    if !alive && let Value::Object(map) = &mut details {
        map.insert("failed".into(), Failed::Stale.as_str().into());
        map.insert(
            "error".into(),
            format!(
                "{} beat {} ago (pid {} on {}), more than maxAge {}",
                meta.path,
                super::file_freshness::age_words(age_ms.max(0) as u64),
                beat.state.pid,
                beat.state.hostname,
                meta.max_age_text
            )
            .into(),
        );
    }
    (alive, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_768_212_000_000; // 2026-01-12T10:00:00Z

    fn meta(value: Value) -> Result<Meta, MetaError> {
        Meta::parse(&super::super::test_object(value))
    }

    const KSTLIB: &str = r#"{"timestamp": "2026-01-12T10:00:00+00:00", "pid": 1234, "hostname": "myhost", "metadata": {}}"#;

    #[test]
    fn timestamps_with_and_without_an_offset() {
        let with = read(KSTLIB).expect("kstlib file");
        assert_eq!(with.at_ms, NOW as i64);
        let naive = read(r#"{"timestamp": "2026-01-12T10:00:00.5", "pid": 1, "hostname": "h"}"#)
            .expect("naive is UTC");
        assert_eq!(naive.at_ms, NOW as i64 + 500);
        let berlin =
            read(r#"{"timestamp": "2026-01-12T11:00:00+01:00", "pid": 1, "hostname": "h"}"#)
                .expect("offset");
        assert_eq!(berlin.at_ms, NOW as i64);
        assert!(
            read(r#"{"timestamp": "yesterday", "pid": 1, "hostname": "h"}"#)
                .expect_err("bad")
                .contains("not ISO 8601")
        );
        assert!(
            read("{")
                .expect_err("bad")
                .starts_with("not a liveness file")
        );
    }

    #[test]
    fn the_rule_is_kstlibs_at_most_max_age() {
        assert!(is_alive(age_seconds(NOW as i64, NOW + 30_000), 30.0));
        assert!(!is_alive(age_seconds(NOW as i64, NOW + 30_001), 30.0));
        assert!(is_alive(age_seconds(NOW as i64 + 5_000, NOW), 30.0));
    }

    #[test]
    fn meta_defaults_and_errors() {
        let m = meta(json!({"path": "/run/bot.heartbeat"})).expect("valid");
        assert_eq!((m.max_age_ms, m.max_age_text.as_str()), (30_000, "30s"));
        for (value, path) in [
            (json!({}), "path"),
            (json!({"path": "bot.heartbeat"}), "path"),
            (json!({"path": "/run/"}), "path"),
            (json!({"path": "/run/x", "maxAge": 30}), "maxAge"),
            (
                json!({"path": "/run/x", "maxAgeSeconds": 30}),
                "maxAgeSeconds",
            ),
        ] {
            assert_eq!(
                meta(value.clone()).expect_err("invalid").path,
                path,
                "{value}"
            );
        }
    }

    #[test]
    fn judging_gives_details_and_the_failure_in_words() {
        let m = meta(json!({"path": "/run/bot.heartbeat", "maxAge": "1m"})).expect("valid");
        let (alive, d) = judge(&m, KSTLIB, NOW + 60_000);
        assert!(alive, "{d}");
        assert_eq!(d["ageMs"], 60_000);
        assert_eq!(
            (d["pid"].clone(), d["hostname"].clone()),
            (json!(1234), json!("myhost"))
        );
        assert!(d.get("failed").is_none());
        let (alive, d) = judge(&m, KSTLIB, NOW + 95_000);
        assert!(!alive);
        assert_eq!(d["failed"], "stale");
        assert_eq!(
            d["error"],
            "/run/bot.heartbeat beat 1m35s ago (pid 1234 on myhost), more than maxAge 1m"
        );
        let (alive, d) = judge(&m, "not json", NOW);
        assert!(!alive);
        assert_eq!(d["failed"], "unreadable");
        let host = r#"{"timestamp": "2026-01-12T10:00:00+00:00", "pid": 7, "hostname": "h", "metadata": {"agent": "a", "status": "healthy"}}"#;
        assert_eq!(judge(&m, host, NOW).1["status"], "healthy");
    }
}
