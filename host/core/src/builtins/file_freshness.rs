//! The built-in `file_freshness`: the newest file matching a pattern in a
//! granted directory is recent enough, big enough, and there are enough of
//! them (a backup job that still runs, a spool that still fills).
//!
//! `meta`: `dir` (required, a guest path of `grants.dirs`), `glob`
//! (default `*`, see [`super::glob`]), `maxAge` (required, a duration),
//! `minCount` (default 1), `minBytes` (default 0). The handler lists the
//! directory; [`judge`] decides from the listing and the tick's time.

use serde_json::{Map, Value, json};

use super::glob::Glob;
use super::{Fields, MetaError};

/// A `file_freshness` check's `meta`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The guest directory listed (no recursion).
    pub dir: String,
    /// Which names in `dir` count.
    pub glob: Glob,
    /// The newest matching file's greatest allowed age, ms.
    pub max_age_ms: u64,
    /// `maxAge` as written, for messages (`26h`, not `1d2h`).
    pub max_age_text: String,
    /// At least this many matching files.
    pub min_count: u64,
    /// The newest matching file has at least this many bytes.
    pub min_bytes: u64,
}

impl Meta {
    /// Validates a `file_freshness` `meta`.
    pub fn parse(meta: &Map<String, Value>) -> Result<Meta, MetaError> {
        let mut f = Fields::new(meta, "");
        let dir = f.required_string("dir")?;
        if !dir.starts_with('/') {
            return Err(f.error(
                "dir",
                format!(
                    "expected an absolute guest path of grants.dirs such as \"/backups\", found {dir:?}"
                ),
            ));
        }
        let glob = match f.string("glob")? {
            None => Glob::new("*").map_err(|e| f.error("glob", e.to_string()))?,
            Some(text) => Glob::new(text)
                .map_err(|e| f.error("glob", format!("expected a file-name pattern: {e}")))?,
        };
        let max_age_ms = f
            .duration_ms("maxAge")?
            .ok_or_else(|| f.error("maxAge", "expected a duration such as \"26h\", found none"))?;
        let max_age_text = meta
            .get("maxAge")
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let min_count = f.unsigned("minCount")?.unwrap_or(1);
        let min_bytes = f.unsigned("minBytes")?.unwrap_or(0);
        f.finish()?;
        Ok(Meta {
            dir: match dir.trim_end_matches('/') {
                "" => "/".to_string(),
                trimmed => trimmed.to_string(),
            },
            glob,
            max_age_ms,
            max_age_text,
            min_count,
            min_bytes,
        })
    }
}

/// One regular file found directly in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name (no directory).
    pub name: String,
    /// Its modification time, ms since the Unix epoch.
    pub modified_ms: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Which expectation failed, in the names of `meta` (`details.failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The directory could not be listed (not granted, missing, not a directory).
    Dir,
    /// Fewer matching files than `minCount`.
    MinCount,
    /// The newest matching file is older than `maxAge`.
    MaxAge,
    /// The newest matching file is smaller than `minBytes`.
    MinBytes,
}

impl Failed {
    /// The name in `details.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failed::Dir => "dir",
            Failed::MinCount => "minCount",
            Failed::MaxAge => "maxAge",
            Failed::MinBytes => "minBytes",
        }
    }
}

/// What [`judge`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// How many files matched.
    pub count: u64,
    /// The newest matching file (latest mtime; of equal ones, the last name).
    pub newest: Option<Entry>,
    /// Its age at the tick, ms (0 for a file stamped in the future).
    pub newest_age_ms: Option<u64>,
    /// The first expectation that failed, in the order minCount, maxAge,
    /// minBytes, with the reason in words.
    pub failure: Option<(Failed, String)>,
}

/// Judges a directory listing (every regular file of `meta.dir`, matching
/// or not) at `now_ms`.
pub fn judge(meta: &Meta, files: &[Entry], now_ms: u64) -> Verdict {
    let matching: Vec<&Entry> = files
        .iter()
        .filter(|e| meta.glob.matches(&e.name))
        .collect();
    let count = matching.len() as u64;
    let newest = matching
        .iter()
        .max_by(|a, b| {
            a.modified_ms
                .cmp(&b.modified_ms)
                .then_with(|| a.name.cmp(&b.name))
        })
        .map(|e| (*e).clone());
    let newest_age_ms = newest
        .as_ref()
        .map(|e| now_ms.saturating_sub(e.modified_ms));
    let pattern = meta.glob.as_str();
    let failure = if count < meta.min_count {
        Some((
            Failed::MinCount,
            format!(
                "{count} file{} in {} match{} {pattern:?}, fewer than minCount {}",
                plural(count),
                meta.dir,
                if count == 1 { "es" } else { "" },
                meta.min_count
            ),
        ))
    } else {
        match (&newest, newest_age_ms) {
            (Some(file), Some(age)) if age > meta.max_age_ms => Some((
                Failed::MaxAge,
                format!(
                    "newest {} is {} old, more than maxAge {}",
                    file.name,
                    age_words(age),
                    meta.max_age_text
                ),
            )),
            (Some(file), _) if file.bytes < meta.min_bytes => Some((
                Failed::MinBytes,
                format!(
                    "newest {} has {} byte{}, fewer than minBytes {}",
                    file.name,
                    file.bytes,
                    plural(file.bytes),
                    meta.min_bytes
                ),
            )),
            _ => None,
        }
    };
    Verdict {
        count,
        newest,
        newest_age_ms,
        failure,
    }
}

impl Verdict {
    /// The run's details: `dir`, `glob`, `count`, `newest`, `newestAgeMs`,
    /// `newestBytes`, `maxAgeMs`, and on failure `failed` and `error`.
    pub fn details(&self, meta: &Meta) -> Value {
        let mut details = json!({
            "dir": meta.dir,
            "glob": meta.glob.as_str(),
            "count": self.count,
            "newest": self.newest.as_ref().map(|e| e.name.clone()),
            "newestAgeMs": self.newest_age_ms,
            "newestBytes": self.newest.as_ref().map(|e| e.bytes),
            "maxAgeMs": meta.max_age_ms,
        });
        if let (Some((failed, error)), Value::Object(map)) = (&self.failure, &mut details) {
            map.insert("failed".into(), failed.as_str().into());
            map.insert("error".into(), error.clone().into());
        }
        details
    }
}

/// The details of a run whose directory could not be listed.
pub fn dir_failure(meta: &Meta, error: &str) -> Value {
    json!({
        "dir": meta.dir,
        "glob": meta.glob.as_str(),
        "failed": Failed::Dir.as_str(),
        "error": error,
    })
}

/// An age for people, in hours, minutes and seconds (never days, so that
/// it reads against a `maxAge` of `26h`): `31h`, `26h30m`, `95s`→`1m35s`,
/// `250ms` under a second.
pub fn age_words(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let s = ms / 1_000;
    let (h, m, s) = (s / 3_600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const NOW: u64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    fn meta(value: Value) -> Result<Meta, MetaError> {
        Meta::parse(&super::super::test_object(value))
    }

    fn file(name: &str, age_ms: u64, bytes: u64) -> Entry {
        Entry {
            name: name.into(),
            modified_ms: NOW - age_ms,
            bytes,
        }
    }

    fn backups() -> Meta {
        meta(
            json!({"dir": "/backups", "glob": "backup-*.tar.gz", "maxAge": "26h", "minBytes": 100}),
        )
        .expect("valid")
    }

    #[test]
    fn defaults_and_fields() {
        let m = meta(json!({"dir": "/backups/", "maxAge": "26h"})).expect("valid");
        assert_eq!(m.dir, "/backups");
        assert_eq!(m.glob.as_str(), "*");
        assert_eq!(m.max_age_ms, 26 * HOUR);
        assert_eq!((m.min_count, m.min_bytes), (1, 0));
        assert_eq!(
            meta(json!({"dir": "/", "maxAge": "1h"})).expect("root").dir,
            "/"
        );
    }

    #[test]
    fn bad_metas_name_their_field() {
        for (value, path, words) in [
            (
                json!({"maxAge": "1h"}),
                "dir",
                "expected a string, found none",
            ),
            (
                json!({"dir": "backups", "maxAge": "1h"}),
                "dir",
                "absolute guest path",
            ),
            (json!({"dir": "/b"}), "maxAge", "found none"),
            (
                json!({"dir": "/b", "maxAge": "26 hours"}),
                "maxAge",
                "expected a duration",
            ),
            (
                json!({"dir": "/b", "maxAge": "1h", "glob": "a/*"}),
                "glob",
                "cannot contain /",
            ),
            (
                json!({"dir": "/b", "maxAge": "1h", "glob": "[ab"}),
                "glob",
                "not closed",
            ),
            (
                json!({"dir": "/b", "maxAge": "1h", "minCount": -1}),
                "minCount",
                "non-negative",
            ),
            (
                json!({"dir": "/b", "maxAge": "1h", "minBytes": "1k"}),
                "minBytes",
                "non-negative",
            ),
            (
                json!({"dir": "/b", "maxAge": "1h", "max_age": "1h"}),
                "max_age",
                "unknown field",
            ),
        ] {
            let e = meta(value.clone()).expect_err("invalid");
            assert_eq!(e.path, path, "{value}");
            assert!(e.message.contains(words), "{value}: {e}");
        }
    }

    #[test]
    fn a_fresh_big_newest_backup_passes() {
        let m = backups();
        let files = [
            file("backup-2026-11-29.tar.gz", 49 * HOUR, 500),
            file("backup-2026-11-30.tar.gz", 2 * HOUR, 400),
            file("notes.txt", 0, 1),
        ];
        let v = judge(&m, &files, NOW);
        assert_eq!(v.failure, None);
        assert_eq!(v.count, 2);
        let d = v.details(&m);
        assert_eq!(d["newest"], "backup-2026-11-30.tar.gz");
        assert_eq!(d["newestAgeMs"], 2 * HOUR);
        assert_eq!(d["newestBytes"], 400);
        assert!(d.get("failed").is_none());
    }

    #[test]
    fn each_expectation_fails_in_words() {
        let m = backups();
        let stale = judge(&m, &[file("backup-2026-11-30.tar.gz", 31 * HOUR, 500)], NOW);
        assert_eq!(
            stale.failure,
            Some((
                Failed::MaxAge,
                "newest backup-2026-11-30.tar.gz is 31h old, more than maxAge 26h".into()
            ))
        );
        assert_eq!(stale.details(&m)["failed"], "maxAge");
        let small = judge(&m, &[file("backup-a.tar.gz", HOUR, 99)], NOW);
        assert_eq!(
            small.failure,
            Some((
                Failed::MinBytes,
                "newest backup-a.tar.gz has 99 bytes, fewer than minBytes 100".into()
            ))
        );
        let none = judge(&m, &[file("other.tar.gz", 0, 500)], NOW);
        assert_eq!(
            none.failure,
            Some((
                Failed::MinCount,
                "0 files in /backups match \"backup-*.tar.gz\", fewer than minCount 1".into()
            ))
        );
        let d = none.details(&m);
        assert_eq!(
            (d["count"].clone(), d["newest"].clone()),
            (json!(0), Value::Null)
        );
        let three = meta(json!({"dir": "/b", "maxAge": "1h", "minCount": 3})).expect("valid");
        let v = judge(&three, &[file("a", 0, 1), file("b", 0, 1)], NOW);
        assert_eq!(v.failure.map(|f| f.0), Some(Failed::MinCount));
    }

    #[test]
    fn min_count_zero_accepts_an_empty_directory() {
        let m = meta(json!({"dir": "/b", "maxAge": "1h", "minCount": 0})).expect("valid");
        assert_eq!(judge(&m, &[], NOW).failure, None);
    }

    #[test]
    fn the_newest_is_by_mtime_and_future_files_are_fresh() {
        let m = meta(json!({"dir": "/b", "maxAge": "1h"})).expect("valid");
        let future = Entry {
            name: "clock-skew".into(),
            modified_ms: NOW + 5_000,
            bytes: 1,
        };
        let v = judge(&m, &[file("old", 2 * HOUR, 1), future], NOW);
        assert_eq!(v.newest.map(|e| e.name), Some("clock-skew".into()));
        assert_eq!(v.newest_age_ms, Some(0));
        assert_eq!(v.failure, None);
        // Exactly maxAge old still passes.
        assert_eq!(judge(&m, &[file("edge", HOUR, 1)], NOW).failure, None);
        assert!(
            judge(&m, &[file("edge", HOUR + 1, 1)], NOW)
                .failure
                .is_some()
        );
    }

    #[test]
    fn ages_read_in_hours_minutes_and_seconds() {
        assert_eq!(age_words(250), "250ms");
        assert_eq!(age_words(95_000), "1m35s");
        assert_eq!(age_words(31 * HOUR + 999), "31h");
        assert_eq!(age_words(26 * HOUR + 30 * 60_000), "26h30m");
        assert_eq!(age_words(1_000), "1s");
    }
}
