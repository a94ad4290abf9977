//! The on-disk outbox: events the broker has not confirmed yet, kept while it
//! is unreachable and published in order once it is back.
//!
//! The file is JSON Lines: a header `{"heartbeatOutbox":1,"dropped":N}`
//! (N: events dropped over the bound, ever) and one record per event.
//! Appends are fsynced; removals rewrite the file atomically. A torn last
//! line (a crash mid-append) is skipped on reading. At most `max` records
//! are kept: beyond that the oldest are dropped and counted.
//!
//! Records the broker refuses for what they are (see [`super::wire`]: one
//! it cannot carry, one it nacks, one it keeps closing the connection on)
//! are moved aside to the dead-letter file beside the outbox
//! ([`dead_letter_path`]): the same record with `reason` and `deadAt`,
//! appended and fsynced, never sent again. Reading an outbox moves the
//! records that fail [`super::wire::check`] (written by an older host)
//! there too, so nothing unsendable is ever first in line.
//!
//! [`encode_header`], [`encode_record`], [`encode_dead_letter`],
//! [`decode`] and [`make_room`] are the pure format; [`Outbox`] does the
//! file work.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::wire::{self, Record};

/// The outbox file's format version.
pub const OUTBOX_VERSION: u32 = 1;

/// A record moved to the dead-letter file: the record's fields, why, and
/// when (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The record as it waited.
    #[serde(flatten)]
    pub record: Record,
    /// Why it is never sent.
    pub reason: String,
    /// When it was moved aside.
    pub dead_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    heartbeat_outbox: u32,
    dropped: u64,
}

/// Why the outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Reading or writing failed.
    #[error("outbox {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an outbox this host can read.
    #[error("outbox {path}: {reason} (move it aside to start with an empty outbox)")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The header line, newline included.
pub fn encode_header(dropped: u64) -> String {
    let header = Header {
        heartbeat_outbox: OUTBOX_VERSION,
        dropped,
    };
    let mut line = serde_json::to_string(&header).unwrap_or_default();
    line.push('\n');
    line
}

/// One record's line, newline included.
pub fn encode_record(record: &Record) -> String {
    // Serialising three strings cannot fail.
    let mut line = serde_json::to_string(record).unwrap_or_default();
    line.push('\n');
    line
}

/// One dead letter's line, newline included.
pub fn encode_dead_letter(record: &Record, reason: &str, at: jiff::Timestamp) -> String {
    let letter = DeadLetter {
        record: record.clone(),
        reason: reason.to_string(),
        dead_at: at.to_string(),
    };
    // Serialising strings cannot fail.
    let mut line = serde_json::to_string(&letter).unwrap_or_default();
    line.push('\n');
    line
}

/// The dead-letter file beside an outbox: `x.outbox.jsonl` →
/// `x.outbox.dead.jsonl` (a name without `.jsonl` gets `.dead.jsonl` added).
pub fn dead_letter_path(outbox: &Path) -> PathBuf {
    let name = outbox
        .file_name()
        .map_or_else(|| "outbox".into(), |n| n.to_string_lossy().into_owned());
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    outbox.with_file_name(format!("{stem}.dead.jsonl"))
}

/// What an outbox file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Events dropped over the bound so far.
    pub dropped: u64,
    /// The waiting events, oldest first.
    pub records: Vec<Record>,
    /// Lines that were not records (a torn last line after a crash).
    pub skipped: usize,
}

/// Reads an outbox file's text. `Err` (with the reason) when the header is
/// of another format or version.
pub fn decode(text: &str) -> Result<Decoded, String> {
    let mut lines = text.split('\n').filter(|l| !l.trim().is_empty());
    let mut decoded = Decoded::default();
    let Some(first) = lines.next() else {
        return Ok(decoded);
    };
    match serde_json::from_str::<Header>(first) {
        Ok(header) if header.heartbeat_outbox == OUTBOX_VERSION => decoded.dropped = header.dropped,
        Ok(header) => {
            return Err(format!(
                "format version {} is not this host's {OUTBOX_VERSION}",
                header.heartbeat_outbox
            ));
        }
        Err(_) => return Err("the first line is not an outbox header".to_string()),
    }
    for line in lines {
        match serde_json::from_str::<Record>(line) {
            Ok(record) => decoded.records.push(record),
            Err(_) => decoded.skipped += 1,
        }
    }
    Ok(decoded)
}

/// Makes room for `incoming` new records under `max`, dropping the oldest
/// (first those already waiting, then the oldest of `incoming` when it alone
/// is over the bound). Returns how many were dropped.
pub fn make_room(
    waiting: &mut VecDeque<Record>,
    incoming: &mut VecDeque<Record>,
    max: usize,
) -> u64 {
    let mut dropped = 0u64;
    while waiting.len() + incoming.len() > max {
        if waiting.pop_front().is_none() && incoming.pop_front().is_none() {
            break;
        }
        dropped += 1;
    }
    dropped
}

/// An outbox as opened, with what reading it found.
#[derive(Debug)]
pub struct Opened {
    /// The outbox.
    pub outbox: Outbox,
    /// Lines that were not records (dropped).
    pub skipped: usize,
    /// Records that cannot be sent, moved to the dead-letter file, with why.
    pub dead_lettered: Vec<(Record, String)>,
}

/// The outbox file and its contents in memory.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    dead_path: PathBuf,
    max: usize,
    records: VecDeque<Record>,
    dropped_total: u64,
}

impl Outbox {
    /// Opens (or starts) the outbox at `path`, holding at most `max` events
    /// (at least 1). Unreadable lines are dropped; records outside `limits`
    /// are appended to the dead-letter file first (an error there fails the
    /// opening: nothing is lost) and then dropped from the outbox.
    pub fn open(path: &Path, max: usize, limits: &wire::Limits) -> Result<Opened, OutboxError> {
        let max = max.max(1);
        let text = match crate::store::read::read_regular_text(
            path,
            crate::store::read::MAX_OUTBOX_BYTES,
            "outbox",
        ) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(OutboxError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let decoded = decode(&text).map_err(|reason| OutboxError::Foreign {
            path: path.to_path_buf(),
            reason,
        })?;
        let (sendable, unsendable) = wire::split_sendable(decoded.records, limits);
        let dead_lettered: Vec<(Record, String)> = unsendable
            .into_iter()
            .map(|(record, why)| (record, why.to_string()))
            .collect();
        let mut outbox = Outbox {
            path: path.to_path_buf(),
            dead_path: dead_letter_path(path),
            max,
            records: sendable.into(),
            dropped_total: decoded.dropped,
        };
        outbox.dead_letter(&dead_lettered, jiff::Timestamp::now())?;
        let over = make_room(&mut outbox.records, &mut VecDeque::new(), max);
        outbox.dropped_total += over;
        if decoded.skipped > 0 || over > 0 || !dead_lettered.is_empty() {
            outbox.rewrite()?;
        }
        Ok(Opened {
            outbox,
            skipped: decoded.skipped,
            dead_lettered,
        })
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Events dropped over the bound, ever (kept in the file).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dead-letter file beside it.
    pub fn dead_path(&self) -> &Path {
        &self.dead_path
    }

    /// Appends `letters` (each record with why) to the dead-letter file and
    /// fsyncs it. Only the file: a record also in the outbox is removed by
    /// the caller, once this returned.
    pub fn dead_letter(
        &self,
        letters: &[(Record, String)],
        at: jiff::Timestamp,
    ) -> Result<(), OutboxError> {
        if letters.is_empty() {
            return Ok(());
        }
        let text: String = letters
            .iter()
            .map(|(record, reason)| encode_dead_letter(record, reason, at))
            .collect();
        append_to(&self.dead_path, &text)
    }

    /// Up to `n` of the oldest waiting events.
    pub fn front(&self, n: usize) -> Vec<Record> {
        self.records.iter().take(n).cloned().collect()
    }

    /// Adds events at the end, durably; returns how many old ones were
    /// dropped to stay within the bound. The events stay in memory even if
    /// the file cannot be written (the error says so).
    pub fn push(&mut self, records: Vec<Record>) -> Result<u64, OutboxError> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut incoming: VecDeque<Record> = records.into();
        let dropped = make_room(&mut self.records, &mut incoming, self.max);
        self.dropped_total += dropped;
        if dropped > 0 {
            self.records.extend(incoming);
            self.rewrite()?;
        } else {
            let fresh = self.records.is_empty() && !self.path.exists();
            let mut text = String::new();
            if fresh {
                text.push_str(&encode_header(self.dropped_total));
            }
            for record in &incoming {
                text.push_str(&encode_record(record));
            }
            self.records.extend(incoming);
            self.append(&text)?;
        }
        Ok(dropped)
    }

    /// Removes the `n` oldest events (they were confirmed), durably.
    pub fn pop_front(&mut self, n: usize) -> Result<(), OutboxError> {
        let n = n.min(self.records.len());
        if n == 0 {
            return Ok(());
        }
        self.records.drain(..n);
        self.rewrite()
    }

    fn append(&self, text: &str) -> Result<(), OutboxError> {
        append_to(&self.path, text)
    }

    /// Replaces the file with the contents in memory; an empty outbox that
    /// never dropped anything leaves no file.
    fn rewrite(&self) -> Result<(), OutboxError> {
        let io = |source| OutboxError::Io {
            path: self.path.clone(),
            source,
        };
        if self.records.is_empty() && self.dropped_total == 0 {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            };
        }
        let mut text = encode_header(self.dropped_total);
        for record in &self.records {
            text.push_str(&encode_record(record));
        }
        crate::store::write_atomically(&self.path, text.as_bytes()).map_err(io)
    }
}

/// Appends `text` to the file at `path` (created if missing) and fsyncs it.
fn append_to(path: &Path, text: &str) -> Result<(), OutboxError> {
    let io = |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> Record {
        Record {
            routing_key: "agent.a.check.completed".into(),
            event_id: format!("e{n}"),
            body: format!("{{\"n\":{n}}}"),
        }
    }

    /// Opens with the default limits: the outbox and the lines skipped.
    fn open(path: &Path, max: usize) -> Result<(Outbox, usize), OutboxError> {
        Outbox::open(path, max, &wire::Limits::default()).map(|o| (o.outbox, o.skipped))
    }

    fn ids(outbox: &Outbox) -> Vec<String> {
        outbox
            .front(usize::MAX)
            .into_iter()
            .map(|r| r.event_id)
            .collect()
    }

    #[test]
    fn format_round_trips_and_skips_a_torn_last_line() {
        let mut text = encode_header(7);
        text.push_str(&encode_record(&record(1)));
        text.push_str(&encode_record(&record(2)));
        text.push_str("{\"routingKey\":\"agent.a.x\",\"eve");
        let decoded = decode(&text).expect("decodes");
        assert_eq!(decoded.dropped, 7);
        assert_eq!(decoded.records, [record(1), record(2)]);
        assert_eq!(decoded.skipped, 1);
    }

    #[test]
    fn a_foreign_file_is_refused_not_overwritten() {
        assert!(decode("{\"checks\": {}}\n").is_err());
        assert!(decode("{\"heartbeatOutbox\": 9, \"dropped\": 0}\n").is_err());
        assert_eq!(decode(""), Ok(Decoded::default()));
    }

    #[test]
    fn make_room_drops_the_oldest_first() {
        let mut waiting: VecDeque<Record> = (0..3).map(record).collect();
        let mut incoming: VecDeque<Record> = (3..5).map(record).collect();
        assert_eq!(make_room(&mut waiting, &mut incoming, 3), 2);
        let left: Vec<_> = waiting
            .iter()
            .chain(incoming.iter())
            .map(|r| r.event_id.clone())
            .collect();
        assert_eq!(left, ["e2", "e3", "e4"]);
        let mut waiting = VecDeque::new();
        let mut incoming: VecDeque<Record> = (0..5).map(record).collect();
        assert_eq!(make_room(&mut waiting, &mut incoming, 2), 3);
        assert_eq!(incoming.front().map(|r| r.event_id.as_str()), Some("e3"));
    }

    #[test]
    fn outbox_keeps_order_across_reopen_and_pops_from_the_front() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.outbox.jsonl");
        let (mut outbox, _) = open(&path, 10).expect("open");
        outbox.push(vec![record(1), record(2)]).expect("push");
        outbox.push(vec![record(3)]).expect("push");
        let (mut reopened, skipped) = open(&path, 10).expect("reopen");
        assert_eq!(skipped, 0);
        assert_eq!(ids(&reopened), ["e1", "e2", "e3"]);
        reopened.pop_front(2).expect("pop");
        let (reopened, _) = open(&path, 10).expect("reopen");
        assert_eq!(ids(&reopened), ["e3"]);
    }

    #[test]
    fn outbox_beyond_its_bound_drops_the_oldest_and_counts_them_durably() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.outbox.jsonl");
        let (mut outbox, _) = open(&path, 3).expect("open");
        assert_eq!(outbox.push((0..2).map(record).collect()).expect("push"), 0);
        assert_eq!(outbox.push((2..5).map(record).collect()).expect("push"), 2);
        assert_eq!(ids(&outbox), ["e2", "e3", "e4"]);
        assert_eq!(outbox.dropped_total(), 2);
        let (mut reopened, _) = open(&path, 3).expect("reopen");
        assert_eq!(ids(&reopened), ["e2", "e3", "e4"]);
        assert_eq!(reopened.dropped_total(), 2);
        // A smaller bound on the next start drops the oldest too.
        reopened.pop_front(0).expect("noop");
        let (smaller, _) = open(&path, 1).expect("reopen smaller");
        assert_eq!(ids(&smaller), ["e4"]);
        assert_eq!(smaller.dropped_total(), 4);
    }

    #[test]
    fn an_append_after_a_torn_line_does_not_glue_onto_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.outbox.jsonl");
        let mut text = encode_header(0);
        text.push_str(&encode_record(&record(1)));
        text.push_str("{\"routingKey\":\"x\"");
        std::fs::write(&path, text).expect("write");
        let (mut outbox, skipped) = open(&path, 10).expect("open");
        assert_eq!(skipped, 1);
        outbox.push(vec![record(2)]).expect("push");
        let (reopened, skipped) = open(&path, 10).expect("reopen");
        assert_eq!(
            (ids(&reopened), skipped),
            (vec!["e1".to_string(), "e2".to_string()], 0)
        );
    }

    #[test]
    fn an_emptied_outbox_leaves_no_file_unless_it_has_a_drop_count_to_keep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.outbox.jsonl");
        let (mut outbox, _) = open(&path, 10).expect("open");
        outbox.push(vec![record(1)]).expect("push");
        assert!(path.exists());
        outbox.pop_front(1).expect("pop");
        assert!(!path.exists());
    }

    #[test]
    fn the_dead_letter_file_sits_beside_the_outbox() {
        assert_eq!(
            dead_letter_path(Path::new("/a/heartbeat.outbox.jsonl")),
            Path::new("/a/heartbeat.outbox.dead.jsonl")
        );
        assert_eq!(
            dead_letter_path(Path::new("/a/spool")),
            Path::new("/a/spool.dead.jsonl")
        );
    }

    #[test]
    fn a_dead_letter_is_the_record_with_its_reason_and_time() {
        let line = encode_dead_letter(&record(1), "nacked", jiff::Timestamp::UNIX_EPOCH);
        assert!(line.ends_with('\n'));
        let letter: DeadLetter = serde_json::from_str(&line).expect("json");
        assert_eq!(letter.record, record(1));
        assert_eq!(letter.reason, "nacked");
        assert_eq!(letter.dead_at, "1970-01-01T00:00:00Z");
        // The record's own fields, as in the outbox, beside the reason.
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(value["routingKey"], "agent.a.check.completed");
        assert_eq!(value["eventId"], "e1");
    }

    #[test]
    fn reading_an_outbox_moves_records_the_wire_cannot_carry_to_the_dead_letter_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.outbox.jsonl");
        let bad = Record {
            routing_key: "k".repeat(300),
            event_id: "bad".into(),
            body: "{}".into(),
        };
        let mut text = encode_header(0);
        text.push_str(&encode_record(&bad));
        text.push_str(&encode_record(&record(1)));
        text.push_str(&encode_record(&record(2)));
        std::fs::write(&path, text).expect("write");
        let opened = Outbox::open(&path, 10, &wire::Limits::default()).expect("open");
        assert_eq!(ids(&opened.outbox), ["e1", "e2"]);
        assert_eq!(opened.dead_lettered.len(), 1);
        assert_eq!(opened.dead_lettered[0].0, bad);
        assert!(
            opened.dead_lettered[0]
                .1
                .contains("routing key is 300 bytes")
        );
        let dead = std::fs::read_to_string(opened.outbox.dead_path()).expect("dead letters");
        let letters: Vec<DeadLetter> = dead
            .lines()
            .map(|l| serde_json::from_str(l).expect("dead letter"))
            .collect();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].record, bad);
        assert!(
            letters[0].reason.contains("routing key"),
            "{}",
            letters[0].reason
        );
        // Moved, not copied: the next start finds only the sendable ones.
        let again = Outbox::open(&path, 10, &wire::Limits::default()).expect("reopen");
        assert_eq!(ids(&again.outbox), ["e1", "e2"]);
        assert!(again.dead_lettered.is_empty());
        let dead = std::fs::read_to_string(again.outbox.dead_path()).expect("dead letters");
        assert_eq!(dead.lines().count(), 1);
    }

    #[test]
    fn a_body_over_the_configured_bound_is_dead_lettered_on_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.outbox.jsonl");
        let (mut outbox, _) = open(&path, 10).expect("open");
        outbox.push(vec![record(1), record(22)]).expect("push");
        // record(22)'s body, `{"n":22}`, is 8 bytes.
        let small = wire::Limits { max_body_bytes: 7 };
        let opened = Outbox::open(&path, 10, &small).expect("reopen");
        assert_eq!(ids(&opened.outbox), ["e1"]);
        assert_eq!(opened.dead_lettered[0].0.event_id, "e22");
    }
}
