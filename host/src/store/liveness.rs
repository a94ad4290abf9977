//! The liveness file (kstlib's heartbeat convention) and its probe.
//!
//! The host writes `{"timestamp": ISO 8601 UTC, "pid", "hostname",
//! "metadata": {...}}` atomically every period; `heartbeat-host is-alive`
//! (and kstlib's `Heartbeat.is_alive`) read it. The probe reads files
//! written by other tools in that format too. What the probe decides from
//! the text (the format, the timestamp with or without an offset, age at
//! most max-age) is `heartbeat_core::builtins::liveness_file`, the rule the
//! built-in `liveness_file` check applies too; this module does the I/O.

use std::path::Path;

use heartbeat_core::builtins::liveness_file;

pub use heartbeat_core::builtins::liveness_file::LivenessState;

/// A state stamped at `now_ms` for this process.
pub fn stamped(now_ms: u64, metadata: serde_json::Map<String, serde_json::Value>) -> LivenessState {
    LivenessState {
        timestamp: heartbeat_core::time::iso_utc(now_ms),
        pid: std::process::id(),
        hostname: super::hostname(),
        metadata,
    }
}

/// Writes the liveness file atomically.
pub fn write(path: &Path, state: &LivenessState) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    super::write_atomically(path, &bytes)
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// The last beat is at most max-age old (age in seconds).
    Alive(f64),
    /// The last beat is older than max-age (age in seconds).
    Stale(f64),
    /// No file.
    Missing,
    /// A file that is not a liveness file (why).
    Unreadable(String),
}

impl Probe {
    /// The probe's exit status: 0 alive, 1 stale or missing, 2 unreadable.
    pub fn exit_code(&self) -> u8 {
        match self {
            Probe::Alive(_) => 0,
            Probe::Stale(_) | Probe::Missing => 1,
            Probe::Unreadable(_) => 2,
        }
    }

    /// A one-line reason.
    pub fn describe(&self, path: &Path, max_age_s: f64) -> String {
        let file = path.display();
        match self {
            Probe::Alive(age) => format!("alive: {file} beat {age:.1}s ago (max age {max_age_s}s)"),
            Probe::Stale(age) => {
                format!("stale: {file} beat {age:.1}s ago, more than {max_age_s}s")
            }
            Probe::Missing => format!("missing: {file} does not exist"),
            Probe::Unreadable(why) => format!("unreadable: {file}: {why}"),
        }
    }
}

/// Whether the file at `path` shows a beat at most `max_age_s` seconds before `now_ms`.
pub fn probe(path: &Path, max_age_s: f64, now_ms: u64) -> Probe {
    let text = match super::read::read_regular_text(
        path,
        super::read::MAX_LIVENESS_BYTES,
        "liveness file",
    ) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Probe::Missing,
        Err(e) => return Probe::Unreadable(e.to_string()),
    };
    let beat = match liveness_file::read(&text) {
        Ok(beat) => beat,
        Err(why) => return Probe::Unreadable(why),
    };
    let age = liveness_file::age_seconds(beat.at_ms, now_ms);
    if liveness_file::is_alive(age, max_age_s) {
        Probe::Alive(age.max(0.0))
    } else {
        Probe::Stale(age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_768_212_000_000; // 2026-01-12T10:00:00Z

    fn file_with(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bot.heartbeat");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn written_file_round_trips_and_is_alive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/host.liveness.json");
        let mut meta = serde_json::Map::new();
        meta.insert("status".into(), "healthy".into());
        let state = stamped(NOW, meta);
        write(&path, &state).expect("write");
        let read: LivenessState =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("parse");
        assert_eq!(read, state);
        assert_eq!(probe(&path, 30.0, NOW + 29_000), Probe::Alive(29.0));
        assert_eq!(probe(&path, 30.0, NOW + 31_000), Probe::Stale(31.0));
    }

    #[test]
    fn reads_kstlib_files() {
        let (_d, path) = file_with(
            r#"{"timestamp": "2026-01-12T10:00:00+00:00", "pid": 1234, "hostname": "myhost", "metadata": {}}"#,
        );
        assert_eq!(probe(&path, 30.0, NOW + 1_000).exit_code(), 0);
    }

    #[test]
    fn missing_stale_and_unreadable_have_their_exit_codes() {
        assert_eq!(
            probe(Path::new("/no/such/liveness"), 30.0, NOW).exit_code(),
            1
        );
        let (_d, path) =
            file_with(r#"{"timestamp": "2026-01-12T09:00:00+00:00", "pid": 1, "hostname": "h"}"#);
        assert_eq!(probe(&path, 30.0, NOW).exit_code(), 1);
        let (_d, path) = file_with("not json");
        assert_eq!(probe(&path, 30.0, NOW).exit_code(), 2);
        let (_d, path) = file_with(r#"{"timestamp": "yesterday", "pid": 1, "hostname": "h"}"#);
        let p = probe(&path, 30.0, NOW);
        assert_eq!(p.exit_code(), 2);
        assert!(p.describe(&path, 30.0).contains("not ISO 8601"));
    }
}
