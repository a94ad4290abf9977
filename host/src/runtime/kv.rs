//! The `kv` interface of the handler world: the running check's own
//! key-value store, implemented on the run's [`KvSession`] and linked by
//! projection from the run's store data. The store is read at the run's
//! first `kv-*` call (a run that makes none touches no file; a corrupt file
//! makes each call fail, naming the file) and every
//! `kv-set` or `kv-delete` that changes it is written through to disk
//! before it returns (`store::kv`). Every refusal (a bad key, the cap, a
//! write that failed, no store for this run) is an `err` to the guest,
//! never a trap, and leaves the store as it was, in memory and on disk.

use super::bindings::heartbeat::handler::kv;
#[cfg(test)]
use crate::store::kv::KvError;
use crate::store::kv::{KvData, KvLocation, key_refusal};

/// One run's view of its check's store.
pub(super) struct KvSession {
    open: Option<OpenStore>,
    /// The store to read on the first call: a run that never calls `kv-*`
    /// (most runs) costs no file access.
    pending: Option<(KvLocation, String, u64)>,
}

/// A store loaded for a run.
struct OpenStore {
    location: KvLocation,
    check: String,
    data: KvData,
    /// The check's `maxKvBytes`.
    cap: u64,
}

impl KvSession {
    /// A run without a store (`RunRequest::kv` is `None`): every call fails.
    pub(super) fn none() -> KvSession {
        KvSession {
            open: None,
            pending: None,
        }
    }

    /// `check`'s store in `location`, read from disk on the first call.
    pub(super) fn lazy(location: &KvLocation, check: &str, cap: u64) -> KvSession {
        KvSession {
            open: None,
            pending: Some((location.clone(), check.to_string(), cap)),
        }
    }

    /// `check`'s store in `location`, as it is on disk now (the tests'
    /// way in; runs use [`KvSession::lazy`]).
    #[cfg(test)]
    pub(super) fn open(location: &KvLocation, check: &str, cap: u64) -> Result<KvSession, KvError> {
        Ok(KvSession {
            open: Some(OpenStore {
                data: location.load(check)?,
                location: location.clone(),
                check: check.to_string(),
                cap,
            }),
            pending: None,
        })
    }

    /// The open store, or the reason every call fails.
    fn store(&mut self, key: Option<&str>) -> Result<&mut OpenStore, String> {
        if let Some(why) = key.and_then(key_refusal) {
            return Err(why);
        }
        if let Some((location, check, cap)) = &self.pending {
            // A store that cannot be read stays unread (and untouched): each
            // call says why, naming the file.
            let data = location.load(check).map_err(|e| e.to_string())?;
            self.open = Some(OpenStore {
                data,
                location: location.clone(),
                check: check.clone(),
                cap: *cap,
            });
            self.pending = None;
        }
        self.open.as_mut().ok_or_else(|| {
            "this run has no key-value store (the host gave it none; `invoke` gives one unless told otherwise)"
                .to_string()
        })
    }

    fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        Ok(self.store(Some(key))?.data.get(key).map(str::to_string))
    }

    fn set(&mut self, key: String, value: String) -> Result<(), String> {
        let store = self.store(Some(&key))?;
        if let Some(why) = store.data.set_refusal(&key, &value, store.cap) {
            return Err(why);
        }
        let old = store.data.insert(key.clone(), value);
        if let Err(why) = store.commit() {
            match old {
                Some(old) => store.data.insert(key, old),
                None => store.data.remove(&key),
            };
            return Err(why);
        }
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), String> {
        let store = self.store(Some(key))?;
        let Some(old) = store.data.remove(key) else {
            return Ok(());
        };
        if let Err(why) = store.commit() {
            store.data.insert(key.to_string(), old);
            return Err(why);
        }
        Ok(())
    }

    fn keys(&mut self) -> Result<Vec<String>, String> {
        Ok(self.store(None)?.data.keys())
    }
}

impl OpenStore {
    /// Writes the store as it is in memory; the reason names the file.
    fn commit(&self) -> Result<(), String> {
        self.location.save(&self.check, &self.data).map_err(|e| {
            tracing::warn!(check = %self.check, "key-value write failed: {e}");
            e.to_string()
        })
    }
}

impl kv::Host for KvSession {
    fn kv_get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, String>> {
        Ok(self.get(&key))
    }

    fn kv_set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self.set(key, value))
    }

    fn kv_delete(&mut self, key: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self.delete(&key))
    }

    fn kv_keys(&mut self) -> wasmtime::Result<Result<Vec<String>, String>> {
        Ok(self.keys())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(dir: &std::path::Path, cap: u64) -> KvSession {
        KvSession::open(&KvLocation::new(dir), "disk", cap).expect("open")
    }

    #[test]
    fn a_set_is_on_disk_when_it_returns_and_a_delete_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut kv = session(dir.path(), 1 << 20);
        assert_eq!(kv.get("count"), Ok(None));
        assert_eq!(kv.set("count".into(), "1".into()), Ok(()));
        assert_eq!(
            session(dir.path(), 1 << 20).get("count"),
            Ok(Some("1".into()))
        );
        assert_eq!(kv.set("b".into(), "2".into()), Ok(()));
        assert_eq!(kv.keys(), Ok(vec!["b".to_string(), "count".to_string()]));
        assert_eq!(kv.delete("count"), Ok(()));
        assert_eq!(kv.delete("never-set"), Ok(()));
        assert_eq!(
            session(dir.path(), 1 << 20).keys(),
            Ok(vec!["b".to_string()])
        );
    }

    #[test]
    fn a_set_over_the_cap_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut kv = session(dir.path(), 10);
        assert_eq!(kv.set("k".into(), "123456789".into()), Ok(()));
        let before = std::fs::read(KvLocation::new(dir.path()).file_of("disk")).expect("file");
        let why = kv.set("k2".into(), "x".into()).expect_err("over");
        assert!(why.starts_with("key-value cap reached"), "{why}");
        assert_eq!(kv.get("k2"), Ok(None));
        let after = std::fs::read(KvLocation::new(dir.path()).file_of("disk")).expect("file");
        assert_eq!(before, after);
        // Replacing within the cap and deleting still work.
        assert_eq!(kv.set("k".into(), "1".into()), Ok(()));
        assert_eq!(kv.set("k2".into(), "x".into()), Ok(()));
    }

    #[test]
    fn a_failed_write_is_an_error_naming_the_file_and_the_store_is_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocked = dir.path().join("heartbeat.kv");
        let mut kv = session(&blocked, 1 << 20);
        assert_eq!(kv.set("kept".into(), "1".into()), Ok(()));
        // The directory goes and a file takes its place: nothing can be written.
        std::fs::remove_dir_all(&blocked).expect("rm");
        std::fs::write(&blocked, "").expect("file");
        let why = kv.set("k".into(), "v".into()).expect_err("unwritable");
        assert!(why.contains(&blocked.display().to_string()), "{why}");
        assert_eq!(
            kv.delete("kept").map_err(|e| e.contains("cannot write")),
            Err(true)
        );
        assert_eq!(kv.get("k"), Ok(None));
        assert_eq!(kv.keys(), Ok(vec!["kept".to_string()]));
    }

    #[test]
    fn bad_keys_and_a_missing_store_are_errors_not_traps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut kv = session(dir.path(), 1 << 20);
        assert_eq!(kv.get(""), Err("a key may not be empty".into()));
        assert!(kv.set("a\0".into(), "v".into()).is_err());
        assert!(kv.delete(&"k".repeat(513)).is_err());
        let mut none = KvSession::none();
        for result in [
            none.get("k").map(|_| ()),
            none.set("k".into(), "v".into()),
            none.delete("k"),
            none.keys().map(|_| ()),
        ] {
            assert!(result.expect_err("no store").contains("no key-value store"));
        }
    }
}
