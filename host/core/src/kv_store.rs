//! The file format of a check's key-value store (the `kv` interface of the
//! handler world), and the store's values in memory: what a store file
//! must say to be read ([`parse`]), what the host writes ([`to_bytes`]),
//! which keys are refused ([`key_refusal`]) and what a store counts against
//! its caps ([`KvData`]). The files themselves (where they are, reading
//! them bounded, writing them atomically) are the host's `store::kv`.
//!
//! A file is one JSON object, `{"format": "heartbeat-kv/1", "check": NAME,
//! "entries": {KEY: VALUE, ...}}`, every value a string, no other field.

use std::collections::BTreeMap;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// The most keys one store holds, whatever its byte cap.
pub const MAX_KEYS: usize = 10_000;

/// The most bytes (keys and values) any store holds, whatever `maxKvBytes`
/// says: every write rewrites the check's whole file. 16 MiB.
pub const MAX_STORE_BYTES: u64 = 16 * 1024 * 1024;

/// What a store file says it is (its `format` field).
pub const FORMAT: &str = "heartbeat-kv/1";

/// Why a file's bytes are not the store of the check asked for. The text
/// goes into the host's "the key-value store FILE is corrupt (…)" error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not JSON, not an object of the three fields, or a value that is not
    /// a string.
    #[error("not a store: {0}")]
    NotAStore(String),
    /// A `format` other than [`FORMAT`] (another version of the format).
    #[error("format {found:?}, expected {FORMAT:?}")]
    Format {
        /// The file's `format`.
        found: String,
    },
    /// The file names another check: it was copied or renamed by hand, or
    /// two names met in one file name.
    #[error("it is the store of check {found:?}, not of {expected:?}")]
    OtherCheck {
        /// The file's `check`.
        found: String,
        /// The check whose store was asked for.
        expected: String,
    },
    /// A key no `kv-set` could have written ([`key_refusal`]).
    #[error("key {key:?}: {why}")]
    Key {
        /// The key.
        key: String,
        /// Why it is refused.
        why: String,
    },
}

/// A store file as written.
#[derive(serde::Serialize)]
struct FileOut<'a> {
    format: &'a str,
    check: &'a str,
    entries: &'a BTreeMap<String, String>,
}

/// A store file as read.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    format: String,
    check: String,
    entries: BTreeMap<String, String>,
}

/// Why `key` cannot be a key, if it cannot: empty, longer than
/// [`MAX_KEY_BYTES`], or holding NUL.
pub fn key_refusal(key: &str) -> Option<String> {
    if key.is_empty() {
        Some("a key may not be empty".to_string())
    } else if key.len() > MAX_KEY_BYTES {
        Some(format!(
            "a key of {} bytes is refused: at most {MAX_KEY_BYTES}",
            key.len()
        ))
    } else if key.contains('\0') {
        Some("a key may not contain NUL".to_string())
    } else {
        None
    }
}

/// The bytes of a store file, as `check`'s store: the right format, this
/// check's name, valid keys. (A file over [`MAX_KEYS`] or
/// [`MAX_STORE_BYTES`], which only a hand edit makes, is read: it may
/// shrink, never grow, as [`KvData::set_refusal`] says.)
pub fn parse(bytes: &[u8], check: &str) -> Result<KvData, Refused> {
    let file: FileIn =
        serde_json::from_slice(bytes).map_err(|e| Refused::NotAStore(e.to_string()))?;
    if file.format != FORMAT {
        return Err(Refused::Format { found: file.format });
    }
    if file.check != check {
        return Err(Refused::OtherCheck {
            found: file.check,
            expected: check.to_string(),
        });
    }
    if let Some((key, why)) = file
        .entries
        .keys()
        .find_map(|k| key_refusal(k).map(|why| (k, why)))
    {
        return Err(Refused::Key {
            key: key.clone(),
            why,
        });
    }
    Ok(KvData::from_entries(file.entries))
}

/// The file the host writes for `check`'s store `data`: pretty JSON, keys
/// sorted by their bytes; [`parse`] reads it back equal.
pub fn to_bytes(check: &str, data: &KvData) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(&FileOut {
        format: FORMAT,
        check,
        entries: &data.entries,
    })
}

/// The largest file the host reads for `check`: a full store with every
/// byte escaped (`\u0001` is 6 bytes of JSON), the punctuation of
/// [`MAX_KEYS`] entries, and the header.
pub fn max_file_bytes(check: &str) -> u64 {
    6 * (MAX_STORE_BYTES + check.len() as u64) + 16 * MAX_KEYS as u64 + 4096
}

/// One check's entries, with the bytes they count against its cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvData {
    entries: BTreeMap<String, String>,
    bytes: u64,
}

impl KvData {
    /// A store holding `entries`.
    pub fn from_entries(entries: BTreeMap<String, String>) -> KvData {
        let bytes = entries.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        KvData { entries, bytes }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The keys, sorted by their bytes.
    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// How many keys are set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of every key and value: what counts against the cap.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Why setting `key` to `value` is refused under a cap of `cap` bytes
    /// (the check's `maxKvBytes`, at most [`MAX_STORE_BYTES`]), if it is: a
    /// new key past [`MAX_KEYS`], or a store that would grow past the cap.
    /// Replacing a value counts the difference, so a write that does not
    /// grow the store passes even when a lowered cap left it over.
    pub fn set_refusal(&self, key: &str, value: &str, cap: u64) -> Option<String> {
        let old = self.entries.get(key).map(|v| entry_bytes(key, v));
        if old.is_none() && self.entries.len() >= MAX_KEYS {
            return Some(format!(
                "key cap reached: a store holds at most {MAX_KEYS} keys"
            ));
        }
        let after = self.bytes - old.unwrap_or(0) + entry_bytes(key, value);
        let effective = cap.min(MAX_STORE_BYTES);
        if after > effective && after > self.bytes {
            let limit = if cap > MAX_STORE_BYTES {
                format!(
                    "{effective} bytes (maxKvBytes {cap}, but no store holds more than {MAX_STORE_BYTES})"
                )
            } else {
                format!("{cap} bytes (maxKvBytes)")
            };
            return Some(format!(
                "key-value cap reached: the store would hold {after} bytes of keys and values, the cap is {limit}; {} used now",
                self.bytes
            ));
        }
        None
    }

    /// Sets `key` to `value` (no cap checked: see [`KvData::set_refusal`]);
    /// the value it replaced.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        self.bytes += entry_bytes(&key, &value);
        let old = self.entries.insert(key.clone(), value);
        if let Some(old) = &old {
            self.bytes -= entry_bytes(&key, old);
        }
        old
    }

    /// Removes `key`; the value it had.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let old = self.entries.remove(key);
        if let Some(old) = &old {
            self.bytes -= entry_bytes(key, old);
        }
        old
    }
}

/// What one entry counts against the cap.
fn entry_bytes(key: &str, value: &str) -> u64 {
    (key.len() + value.len()) as u64
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
    fn keys_are_non_empty_short_and_free_of_nul() {
        assert_eq!(key_refusal(""), Some("a key may not be empty".into()));
        assert_eq!(key_refusal("count"), None);
        assert_eq!(key_refusal("a/b c.é"), None);
        assert_eq!(key_refusal(&"k".repeat(MAX_KEY_BYTES)), None);
        assert_eq!(
            key_refusal(&"k".repeat(MAX_KEY_BYTES + 1)),
            Some("a key of 513 bytes is refused: at most 512".into())
        );
        assert_eq!(
            key_refusal("a\0b"),
            Some("a key may not contain NUL".into())
        );
    }

    #[test]
    fn a_replacing_set_counts_the_difference_and_a_delete_frees() {
        let mut store = data(&[("count", "12345")]);
        assert_eq!(store.bytes(), 10);
        // Cap 12: replacing "12345" (5) with "1234567" (7) needs 12: allowed.
        assert_eq!(store.set_refusal("count", "1234567", 12), None);
        assert_eq!(
            store.insert("count".into(), "1234567".into()).as_deref(),
            Some("12345")
        );
        assert_eq!(store.bytes(), 12);
        // A new key of 2 bytes would need 14.
        let why = store.set_refusal("k", "v", 12).unwrap_or_default();
        assert!(
            why.contains("would hold 14 bytes") && why.contains("the cap is 12 bytes (maxKvBytes)"),
            "{why}"
        );
        assert_eq!(store.remove("count").as_deref(), Some("1234567"));
        assert_eq!(store.bytes(), 0);
        assert_eq!(store.remove("count"), None);
        assert_eq!(store.set_refusal("k", "v", 12), None);
    }

    #[test]
    fn a_store_over_a_lowered_cap_may_shrink_but_not_grow() {
        let store = data(&[("a", "xxxxxxxxxx"), ("b", "yy")]);
        assert_eq!(store.bytes(), 14);
        assert_eq!(store.set_refusal("a", "x", 5), None);
        assert_eq!(store.set_refusal("a", "xxxxxxxxxx", 5), None);
        assert!(store.set_refusal("a", "xxxxxxxxxxx", 5).is_some());
        assert!(store.set_refusal("c", "", 5).is_some());
    }

    #[test]
    fn the_cap_never_exceeds_the_ceiling_nor_the_key_count() {
        let store = KvData::default();
        let big = "x".repeat(usize::try_from(MAX_STORE_BYTES).unwrap_or(0));
        let why = store.set_refusal("k", &big, u64::MAX).unwrap_or_default();
        assert!(why.contains("no store holds more than 16777216"), "{why}");
        let full = KvData::from_entries(
            (0..MAX_KEYS)
                .map(|i| (i.to_string(), String::new()))
                .collect(),
        );
        let why = full.set_refusal("new", "", u64::MAX).unwrap_or_default();
        assert_eq!(why, "key cap reached: a store holds at most 10000 keys");
        assert_eq!(full.set_refusal("7", "replaced", u64::MAX), None);
    }

    #[test]
    fn what_the_host_writes_parses_back_equal() {
        let store = data(&[
            ("count", "3"),
            ("json", "{\"x\":[1,\"\\u0001\"]}"),
            ("é", "\n"),
            ("nul in a value", "\0"),
        ]);
        let bytes = to_bytes("a/b", &store).expect("serialises");
        assert_eq!(parse(&bytes, "a/b"), Ok(store));
        let empty = to_bytes("a", &KvData::default()).expect("serialises");
        assert_eq!(parse(&empty, "a"), Ok(KvData::default()));
    }

    #[test]
    fn a_file_of_another_format_check_or_shape_is_refused_saying_why() {
        let refused = |text: &str| parse(text.as_bytes(), "disk").expect_err(text).to_string();
        let why = refused(r#"{"format":"heartbeat-kv/1","check":"disk","entries":{"a":""#);
        assert!(why.starts_with("not a store: "), "{why}");
        assert_eq!(
            refused(r#"{"format":"heartbeat-kv/1","check":"other","entries":{}}"#),
            r#"it is the store of check "other", not of "disk""#
        );
        assert_eq!(
            refused(r#"{"format":"heartbeat-kv/9","check":"disk","entries":{}}"#),
            r#"format "heartbeat-kv/9", expected "heartbeat-kv/1""#
        );
        assert_eq!(
            refused(r#"{"format":"heartbeat-kv/1","check":"disk","entries":{"":"x"}}"#),
            r#"key "": a key may not be empty"#
        );
        let why = refused(r#"{"format":"heartbeat-kv/1","check":"disk","entries":{"a":1}}"#);
        assert!(why.starts_with("not a store: "), "{why}");
        let why = refused(r#"{"format":"heartbeat-kv/1","check":"disk","entries":{},"x":1}"#);
        assert!(why.starts_with("not a store: unknown field `x`"), "{why}");
        let why = refused(r#"{"format":"heartbeat-kv/1","check":"disk"}"#);
        assert!(
            why.starts_with("not a store: missing field `entries`"),
            "{why}"
        );
    }

    #[test]
    fn a_file_over_the_caps_is_read_so_that_it_may_shrink() {
        let entries: BTreeMap<String, String> = (0..=MAX_KEYS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        let over = KvData::from_entries(entries);
        let bytes = to_bytes("disk", &over).expect("serialises");
        let read = parse(&bytes, "disk").expect("read");
        assert_eq!(read.len(), MAX_KEYS + 1);
        assert!(read.set_refusal("new", "", u64::MAX).is_some());
        assert_eq!(read.set_refusal("k0", "", u64::MAX), None);
    }
}
