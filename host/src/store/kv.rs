//! The checks' key-value stores on disk (the `kv` interface of the handler
//! world): one JSON file per check in one directory, `<state stem>.kv/`
//! beside the state file for the host (`heartbeat.state.json` →
//! `heartbeat.kv/`), `--kv-dir` for `invoke`.
//!
//! A store is read whole when a run starts ([`KvLocation::load`]) and
//! rewritten whole by every change ([`KvLocation::save`], through
//! [`super::write_atomically`]: temp file in the same directory, fsync,
//! rename, fsync of the directory), so a crash or `kill -9` at any moment
//! leaves the old store or the new one, never part of a value. Two
//! processes using one directory (a host and `invoke --kv-dir`) cannot tear
//! a file either; the last one to write a check's store wins, whole: each
//! writes the store as its own run last saw it.
//!
//! A file that does not parse, or names another check, is reported with
//! its path and the run is refused, so that a damaged store is repaired by
//! someone rather than replaced by an empty one. The file's format, the key
//! rules and the caps are the core's ([`heartbeat_core::kv_store`]); this
//! module is where the files are and how they are read and written.

use std::hash::{Hash as _, Hasher as _};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use heartbeat_core::kv_store::{self, Refused};
pub use heartbeat_core::kv_store::{KvData, key_refusal};
use sha2::{Digest, Sha256};

/// The longest escaped check name kept whole in a file name; a longer one
/// is cut and followed by `~` and a hash of the whole name.
const MAX_PLAIN_NAME: usize = 128;

/// Why a store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The file exists but could not be read (a directory, too large, no
    /// permission, ...).
    #[error("cannot read the key-value store {}: {source}", file.display())]
    Read {
        /// The store's file.
        file: PathBuf,
        /// What the read said.
        source: io::Error,
    },
    /// The file was read but is not a store of this check.
    #[error(
        "the key-value store {} is corrupt ({reason}); it is left as it is, and every key-value call of the run fails, so that nothing in it is lost: repair or remove the file",
        file.display()
    )]
    Corrupt {
        /// The store's file.
        file: PathBuf,
        /// What is wrong with it.
        reason: Refused,
    },
    /// The directory or the file could not be written.
    #[error("cannot write the key-value store {}: {source}", file.display())]
    Write {
        /// The store's file (or its directory, when that could not be made).
        file: PathBuf,
        /// What the write said.
        source: io::Error,
    },
}

/// The directory that holds the stores of every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvLocation {
    dir: PathBuf,
}

impl KvLocation {
    /// The stores in `dir` (made on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> KvLocation {
        KvLocation { dir: dir.into() }
    }

    /// The host's stores for the state file `state_path`: `<state stem>.kv/`
    /// beside it, named as the outbox is (`heartbeat.state.json` →
    /// `heartbeat.kv/`).
    pub fn beside_state(state_path: &Path) -> KvLocation {
        KvLocation::new(super::beside_state(state_path, ".kv"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `check`'s store.
    pub fn file_of(&self, check: &str) -> PathBuf {
        self.dir.join(file_name(check))
    }

    /// `check`'s store as it is on disk; empty when it was never written.
    pub fn load(&self, check: &str) -> Result<KvData, KvError> {
        let file = self.file_of(check);
        let bytes = match super::read::read_regular(
            &file,
            kv_store::max_file_bytes(check),
            "key-value store",
        ) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(KvData::default()),
            Err(source) => return Err(KvError::Read { file, source }),
        };
        kv_store::parse(&bytes, check).map_err(|reason| KvError::Corrupt { file, reason })
    }

    /// Replaces `check`'s store on disk with `data`, durably (see the
    /// module's comment); the directory is made (mode 0700) when missing.
    pub fn save(&self, check: &str, data: &KvData) -> Result<(), KvError> {
        let file = self.file_of(check);
        self.ensure_dir().map_err(|source| KvError::Write {
            file: self.dir.clone(),
            source,
        })?;
        let bytes = kv_store::to_bytes(check, data).map_err(|e| KvError::Write {
            file: file.clone(),
            source: io::Error::other(e),
        })?;
        // `write_atomically` names its temp file after the process: two
        // writers of one file in this process take turns.
        let _turn = lock_for(&file);
        super::write_atomically(&file, &bytes).map_err(|source| KvError::Write { file, source })
    }

    /// Removes the temp files a killed process left in the directory (see
    /// [`super::remove_stale_temps`]); how many went.
    pub fn remove_stale_temps(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut stores: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (store, pid) = name.strip_prefix('.')?.rsplit_once(".tmp.")?;
                pid.parse::<u32>().ok()?;
                Some(store.to_string())
            })
            .collect();
        stores.sort();
        stores.dedup();
        stores
            .iter()
            .map(|store| super::remove_stale_temps(&self.dir.join(store)))
            .sum()
    }

    fn ensure_dir(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        // The new directory's own entry must survive a crash too.
        std::fs::File::open(super::dir_of(&self.dir))?.sync_all()
    }
}

/// A lock per file (striped): the writers of one file in this process take
/// turns, writers of different files rarely wait for each other.
fn lock_for(file: &Path) -> std::sync::MutexGuard<'static, ()> {
    static STRIPES: [Mutex<()>; 16] = [const { Mutex::new(()) }; 16];
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    file.hash(&mut hasher);
    let stripe = (hasher.finish() % STRIPES.len() as u64) as usize;
    STRIPES[stripe].lock().unwrap_or_else(|p| p.into_inner())
}

/// The file name of `check`'s store: ASCII letters, digits, `-` and `_`
/// kept, every other byte as `%XX` (so `%` itself is escaped and two names
/// never meet), then `.json`. A name whose escaped form is longer than
/// [`MAX_PLAIN_NAME`] is cut there and followed by `~` (never produced by
/// the escaping) and 32 hex digits of its SHA-256; the file records the
/// whole name, which [`KvLocation::load`] checks. (Check names are never
/// empty, so no file name starts with a dot, as temp files do.)
pub fn file_name(check: &str) -> String {
    let mut escaped = String::with_capacity(check.len());
    for byte in check.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    if escaped.len() > MAX_PLAIN_NAME {
        // Cut at a whole escape, at most MAX_PLAIN_NAME bytes in.
        let mut keep = MAX_PLAIN_NAME;
        while escaped.as_bytes()[..keep]
            .iter()
            .rev()
            .take(2)
            .any(|&b| b == b'%')
        {
            keep -= 1;
        }
        escaped.truncate(keep);
        let digest = Sha256::digest(check.as_bytes());
        escaped.push('~');
        for byte in &digest[..16] {
            escaped.push_str(&format!("{byte:02x}"));
        }
    }
    escaped.push_str(".json");
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> KvData {
        KvData::from_entries(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn file_names_are_safe_and_never_shared_by_two_checks() {
        assert_eq!(file_name("disk_usage-1"), "disk_usage-1.json");
        assert_eq!(file_name("a/b"), "a%2Fb.json");
        assert_eq!(file_name(".."), "%2E%2E.json");
        assert_eq!(file_name("%2F"), "%252F.json");
        assert_eq!(file_name("é"), "%C3%A9.json");
        // Names that look alike map apart, and none leaves the directory
        // or hides (a leading dot is what temp files start with).
        let names = [
            "a/b", "a%2Fb", "a_b", "a-b", "a.b", "a b", "A/B", "a%2fb", ".", "..", "x.json", "x",
            "é", "e\u{301}",
        ];
        let files: std::collections::HashSet<String> = names.iter().map(|n| file_name(n)).collect();
        assert_eq!(files.len(), names.len(), "{files:?}");
        for file in &files {
            assert!(!file.contains('/') && !file.starts_with('.'), "{file}");
        }
    }

    #[test]
    fn a_long_check_name_gets_a_bounded_file_name_with_a_hash_of_the_whole() {
        let long = "c".repeat(300);
        let other = format!("{}d", "c".repeat(299));
        let (a, b) = (file_name(&long), file_name(&other));
        assert_ne!(a, b);
        assert!(a.len() <= MAX_PLAIN_NAME + 1 + 32 + 5, "{a}");
        assert!(
            a.starts_with(&"c".repeat(MAX_PLAIN_NAME)) && a.contains('~'),
            "{a}"
        );
        // A cut never splits an escape: every `%` is followed by two hex digits.
        let slashes = "/".repeat(100);
        let cut = file_name(&slashes);
        let plain = cut.split('~').next().unwrap_or_default();
        assert!(
            plain.len() <= MAX_PLAIN_NAME && plain.len().is_multiple_of(3),
            "{cut}"
        );
        // One escaped to exactly the limit is kept whole.
        assert_eq!(
            file_name(&"c".repeat(MAX_PLAIN_NAME)),
            format!("{}.json", "c".repeat(MAX_PLAIN_NAME))
        );
    }

    #[test]
    fn a_store_written_is_read_back_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = KvLocation::new(dir.path().join("nested/heartbeat.kv"));
        assert_eq!(location.load("a/b").expect("missing"), KvData::default());
        let store = data(&[
            ("count", "3"),
            ("json", "{\"x\":[1,\"\\u0001\"]}"),
            ("é", "\n"),
        ]);
        location.save("a/b", &store).expect("save");
        assert_eq!(location.load("a/b").expect("load"), store);
        assert!(location.file_of("a/b").ends_with("a%2Fb.json"));
        let mode = std::fs::metadata(location.dir())
            .expect("dir")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(location.dir())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a%2Fb.json")]);
    }

    #[test]
    fn a_corrupt_store_is_refused_naming_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = KvLocation::new(dir.path());
        let file = location.file_of("disk");
        let refused = |text: &str| {
            std::fs::write(&file, text).expect("write");
            location.load("disk").expect_err("corrupt").to_string()
        };
        let why =
            refused("{\"format\":\"heartbeat-kv/1\",\"check\":\"disk\",\"entries\":{\"a\":\"");
        assert!(
            why.starts_with(&format!(
                "the key-value store {} is corrupt (not a store:",
                file.display()
            )),
            "{why}"
        );
        assert!(why.ends_with("repair or remove the file"), "{why}");
        let why = refused(r#"{"format":"heartbeat-kv/1","check":"other","entries":{}}"#);
        assert!(
            why.contains(r#"it is the store of check "other", not of "disk""#),
            "{why}"
        );
        let why = refused(r#"{"format":"heartbeat-kv/9","check":"disk","entries":{}}"#);
        assert!(why.contains(r#"format "heartbeat-kv/9""#), "{why}");
        let why = refused(r#"{"format":"heartbeat-kv/1","check":"disk","entries":{"":"x"}}"#);
        assert!(why.contains("a key may not be empty"), "{why}");
        let why = refused(r#"{"format":"heartbeat-kv/1","check":"disk","entries":{"a":1}}"#);
        assert!(why.contains("not a store"), "{why}");
        // Not a regular file: a read error, also naming the file.
        std::fs::remove_file(&file).expect("rm");
        std::fs::create_dir(&file).expect("dir");
        let why = location.load("disk").expect_err("dir").to_string();
        assert!(
            why.contains(&file.display().to_string()) && why.contains("a directory"),
            "{why}"
        );
    }

    #[test]
    fn the_hosts_stores_sit_beside_the_state_file() {
        assert_eq!(
            KvLocation::beside_state(Path::new("/srv/agent/heartbeat.state.json")).dir(),
            Path::new("/srv/agent/heartbeat.kv")
        );
        assert_eq!(
            KvLocation::beside_state(Path::new("state.json")).dir(),
            Path::new("state.kv")
        );
    }

    #[test]
    fn temp_files_of_killed_writers_are_removed_and_stores_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = KvLocation::new(dir.path());
        location.save("a", &data(&[("k", "v")])).expect("save");
        // PID 4194304 is past Linux's pid_max ceiling: never running.
        let stale = dir.path().join(".a.json.tmp.4194304");
        let ours = dir
            .path()
            .join(format!(".b.json.tmp.{}", std::process::id()));
        std::fs::write(&stale, "{").expect("temp");
        std::fs::write(&ours, "{").expect("temp");
        assert_eq!(location.remove_stale_temps(), 1);
        assert!(!stale.exists() && ours.exists());
        assert_eq!(location.load("a").expect("kept").get("k"), Some("v"));
    }
}
