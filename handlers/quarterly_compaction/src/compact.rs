//! Moving past quarters' JSON-lines records into quarterly archives.
//!
//! Guarantees:
//! - Nothing is lost: every record ends up either in its live file or in an
//!   archive, byte for byte; archives are appended and fsynced before the
//!   live file is replaced, so a crash in between can duplicate records in
//!   an archive but never drop one.
//! - Each live file is rewritten atomically (temp file, fsync, rename), and
//!   only when it has something to move: a second run changes nothing.
//! - Lines that are not JSON objects with a readable timestamp stay in the
//!   live file and are counted as unparsable; blank lines stay too.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

/// What a compaction did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `*.jsonl` files looked at.
    pub files: u64,
    /// Records moved to archives.
    pub records_moved: u64,
    /// Records left in live files (current quarter or later).
    pub records_kept: u64,
    /// Lines left in live files because they could not be read.
    pub unparsable_lines: u64,
    /// Archive files appended to, relative to the directory.
    pub archives: Vec<String>,
}

impl Summary {
    /// The outcome details.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "files": self.files,
            "recordsMoved": self.records_moved,
            "recordsKept": self.records_kept,
            "unparsableLines": self.unparsable_lines,
            "archives": self.archives,
        })
        .to_string()
    }
}

/// A calendar quarter: (year, 1..=4).
type Quarter = (i16, u8);

fn timestamp_of_ms(ms: u64) -> Result<jiff::Timestamp, String> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .ok_or_else(|| format!("{ms} ms is out of range"))
}

fn quarter_of(ts: jiff::Timestamp) -> Quarter {
    let date = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    (date.year(), ((date.month() - 1) / 3 + 1) as u8)
}

/// The first millisecond (UTC) of the quarter `now_ms` falls in.
pub fn quarter_start_ms(now_ms: u64) -> Result<u64, String> {
    let (year, q) = quarter_of(timestamp_of_ms(now_ms)?);
    let start = jiff::civil::date(year, ((q - 1) * 3 + 1) as i8, 1)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?;
    u64::try_from(start.timestamp().as_millisecond()).map_err(|e| e.to_string())
}

/// Reads a record's timestamp: ms since the epoch, or ISO 8601 text (with
/// an offset, or a local date-time or date taken as UTC).
pub fn record_time(line: &str, field: &str) -> Option<jiff::Timestamp> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    match record.as_object()?.get(field)? {
        serde_json::Value::Number(n) => {
            let ms = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
            jiff::Timestamp::from_millisecond(ms).ok()
        }
        serde_json::Value::String(s) => s.parse::<jiff::Timestamp>().ok().or_else(|| {
            let dt = s.parse::<jiff::civil::DateTime>().ok()?;
            dt.to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp())
        }),
        _ => None,
    }
}

/// Compacts every `*.jsonl` file directly in `dir`.
pub fn compact_dir(dir: &Path, field: &str, cutoff_ms: u64) -> Result<Summary, String> {
    let cutoff = timestamp_of_ms(cutoff_ms)?;
    let entries = fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read directory {}: {e} (is it granted to this check under grants.dirs?)",
            dir.display()
        )
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut summary = Summary::default();
    let mut archives_touched = std::collections::BTreeSet::new();
    for file in files {
        summary.files += 1;
        compact_file(
            dir,
            &file,
            field,
            cutoff,
            &mut summary,
            &mut archives_touched,
        )?;
    }
    summary.archives = archives_touched.into_iter().collect();
    Ok(summary)
}

fn compact_file(
    dir: &Path,
    file: &Path,
    field: &str,
    cutoff: jiff::Timestamp,
    summary: &mut Summary,
    archives_touched: &mut std::collections::BTreeSet<String>,
) -> Result<(), String> {
    let text =
        fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut keep = String::with_capacity(text.len());
    let mut moving: BTreeMap<Quarter, String> = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            keep.push_str(line);
            keep.push('\n');
            continue;
        }
        match record_time(line, field) {
            Some(ts) if ts < cutoff => {
                let bucket = moving.entry(quarter_of(ts)).or_default();
                bucket.push_str(line);
                bucket.push('\n');
                summary.records_moved += 1;
            }
            Some(_) => {
                keep.push_str(line);
                keep.push('\n');
                summary.records_kept += 1;
            }
            None => {
                keep.push_str(line);
                keep.push('\n');
                summary.unparsable_lines += 1;
            }
        }
    }
    if moving.is_empty() {
        return Ok(());
    }
    let archive_dir = dir.join("archive");
    fs::create_dir_all(&archive_dir)
        .map_err(|e| format!("cannot create {}: {e}", archive_dir.display()))?;
    for ((year, q), lines) in &moving {
        let name = format!("{year:04}-Q{q}.jsonl");
        let path = archive_dir.join(&name);
        let mut archive = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        archive
            .write_all(lines.as_bytes())
            .and_then(|()| archive.sync_all())
            .map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
        archives_touched.insert(format!("archive/{name}"));
    }
    replace_file(file, keep.as_bytes())
}

/// Replaces `path` atomically: temp file beside it, fsync, rename.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.compacting"));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot rewrite {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAY_2026: u64 = 1_777_593_600_000; // 2026-05-01T00:00:00Z, in Q2

    fn write(dir: &Path, name: &str, lines: &[&str]) {
        let mut text = lines.join("\n");
        text.push('\n');
        fs::write(dir.join(name), text).expect("write");
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    fn count_records(dir: &Path) -> usize {
        let mut n = 0;
        for sub in [dir.to_path_buf(), dir.join("archive")] {
            if let Ok(entries) = fs::read_dir(&sub) {
                for e in entries.flatten() {
                    if e.path().extension().is_some_and(|x| x == "jsonl") {
                        n += read(&e.path())
                            .lines()
                            .filter(|l| !l.trim().is_empty())
                            .count();
                    }
                }
            }
        }
        n
    }

    #[test]
    fn quarter_start_is_the_first_day_of_the_quarter_in_utc() {
        assert_eq!(quarter_start_ms(MAY_2026), Ok(1_775_001_600_000)); // 2026-04-01
        assert_eq!(quarter_start_ms(1_775_001_600_000), Ok(1_775_001_600_000));
        assert_eq!(quarter_start_ms(1_775_001_599_999), Ok(1_767_225_600_000)); // 2026-01-01
    }

    #[test]
    fn timestamps_are_read_as_iso_8601_or_millis() {
        let t = |l: &str| record_time(l, "timestamp").map(|t| t.as_millisecond());
        assert_eq!(
            t(r#"{"timestamp": "2026-01-01T00:00:00Z"}"#),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            t(r#"{"timestamp": "2026-01-01T01:00:00+01:00"}"#),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            t(r#"{"timestamp": "2026-01-01T00:00:00"}"#),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            t(r#"{"timestamp": 1767225600000}"#),
            Some(1_767_225_600_000)
        );
        assert_eq!(t(r#"{"timestamp": "yesterday"}"#), None);
        assert_eq!(t(r#"{"ts": 5}"#), None);
        assert_eq!(t("not json"), None);
        assert_eq!(t("[1, 2]"), None);
    }

    #[test]
    fn past_quarters_move_to_their_archives_exactly_and_nothing_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "events.jsonl",
            &[
                r#"{"timestamp": "2025-11-30T10:00:00Z", "n": 1}"#,
                r#"{"timestamp": "2026-02-01T10:00:00Z", "n": 2}"#,
                "garbage line",
                r#"{"timestamp": "2026-04-02T10:00:00Z", "n": 3}"#,
                r#"{"timestamp": 1767225600000, "n": 4}"#,
            ],
        );
        write(
            dir.path(),
            "other.jsonl",
            &[r#"{"timestamp": "2026-03-31T23:59:59Z", "n": 5}"#],
        );
        fs::write(dir.path().join("notes.txt"), "2025 notes\n").expect("write");
        let before = count_records(dir.path());

        let s = compact_dir(
            dir.path(),
            "timestamp",
            quarter_start_ms(MAY_2026).expect("quarter"),
        )
        .expect("compact");
        assert_eq!(
            (s.files, s.records_moved, s.records_kept, s.unparsable_lines),
            (2, 4, 1, 1)
        );
        assert_eq!(
            s.archives,
            ["archive/2025-Q4.jsonl", "archive/2026-Q1.jsonl"]
        );
        assert_eq!(count_records(dir.path()), before);
        assert_eq!(
            read(&dir.path().join("archive/2025-Q4.jsonl")),
            "{\"timestamp\": \"2025-11-30T10:00:00Z\", \"n\": 1}\n"
        );
        assert_eq!(
            read(&dir.path().join("archive/2026-Q1.jsonl")),
            "{\"timestamp\": \"2026-02-01T10:00:00Z\", \"n\": 2}\n{\"timestamp\": 1767225600000, \"n\": 4}\n{\"timestamp\": \"2026-03-31T23:59:59Z\", \"n\": 5}\n"
        );
        assert_eq!(
            read(&dir.path().join("events.jsonl")),
            "garbage line\n{\"timestamp\": \"2026-04-02T10:00:00Z\", \"n\": 3}\n"
        );
        assert_eq!(read(&dir.path().join("other.jsonl")), "");
        assert_eq!(read(&dir.path().join("notes.txt")), "2025 notes\n");
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "a.jsonl",
            &[
                r#"{"timestamp": "2025-01-01T00:00:00Z"}"#,
                r#"{"timestamp": "2026-04-01T00:00:00Z"}"#,
            ],
        );
        let cutoff = quarter_start_ms(MAY_2026).expect("quarter");
        compact_dir(dir.path(), "timestamp", cutoff).expect("first");
        let live = read(&dir.path().join("a.jsonl"));
        let archive = read(&dir.path().join("archive/2025-Q1.jsonl"));
        let second = compact_dir(dir.path(), "timestamp", cutoff).expect("second");
        assert_eq!(second.records_moved, 0);
        assert!(second.archives.is_empty());
        assert_eq!(read(&dir.path().join("a.jsonl")), live);
        assert_eq!(read(&dir.path().join("archive/2025-Q1.jsonl")), archive);
    }

    #[test]
    fn a_custom_timestamp_field_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "a.jsonl",
            &[r#"{"at": "2024-06-01T00:00:00Z", "timestamp": "2026-06-01T00:00:00Z"}"#],
        );
        let s = compact_dir(
            dir.path(),
            "at",
            quarter_start_ms(MAY_2026).expect("quarter"),
        )
        .expect("compact");
        assert_eq!(s.records_moved, 1);
        assert!(dir.path().join("archive/2024-Q2.jsonl").exists());
    }

    #[test]
    fn a_missing_directory_says_to_grant_it() {
        let err =
            compact_dir(Path::new("/definitely/not/here"), "timestamp", 0).expect_err("missing");
        assert!(err.contains("grants.dirs"), "{err}");
    }
}
