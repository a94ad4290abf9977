//! Feeds the input, as a key-value store file, to `kv_store::parse` as the
//! store of the check the file itself names and as the store of `disk`, and
//! its text to `kv_store::key_refusal`. Asserts: no panic; a refusal says
//! why in terms of the file (another format, another check, a refused
//! key); a store read holds only keys `key_refusal` lets through, counts
//! exactly the bytes of its keys and values, and what `to_bytes` writes of
//! it parses back equal; removing and re-inserting an entry restores it.
#![no_main]

use heartbeat_core::kv_store::{self, FORMAT, KvData, MAX_KEY_BYTES, Refused};
use libfuzzer_sys::fuzz_target;

/// What the key rules say, written out apart from `key_refusal`.
fn key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_BYTES && !key.contains('\0')
}

/// `data` read as `check`'s store, judged.
fn read_as(data: &[u8], check: &str) {
    let store = match kv_store::parse(data, check) {
        Err(Refused::NotAStore(why)) => {
            assert!(!why.is_empty());
            return;
        }
        Err(Refused::Format { found }) => {
            assert_ne!(found, FORMAT);
            return;
        }
        Err(Refused::OtherCheck { found, expected }) => {
            assert_ne!(found, expected);
            assert_eq!(expected, check);
            return;
        }
        Err(Refused::Key { key, why }) => {
            assert!(!key_ok(&key), "{key:?} refused: {why}");
            assert_eq!(kv_store::key_refusal(&key), Some(why));
            return;
        }
        Ok(store) => store,
    };
    let mut counted = 0u64;
    for (key, value) in store.entries() {
        assert!(key_ok(key), "{key:?}");
        counted += (key.len() + value.len()) as u64;
    }
    assert_eq!(store.bytes(), counted);

    let bytes = match kv_store::to_bytes(check, &store) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a store read does not serialise: {e}"),
    };
    assert_eq!(kv_store::parse(&bytes, check).as_ref(), Ok(&store));
    remove_and_restore(&store);
}

/// Removing the first entry frees its bytes; inserting it back gives the
/// store it was.
fn remove_and_restore(store: &KvData) {
    let Some((key, value)) = store.entries().iter().next() else {
        return;
    };
    let mut edited = store.clone();
    assert_eq!(edited.remove(key).as_deref(), Some(value.as_str()));
    assert_eq!(
        edited.bytes(),
        store.bytes() - (key.len() + value.len()) as u64
    );
    assert_eq!(edited.get(key), None);
    assert_eq!(edited.insert(key.clone(), value.clone()), None);
    assert_eq!(&edited, store);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert_eq!(kv_store::key_refusal(&text).is_none(), key_ok(&text));

    let named = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("check")?.as_str().map(str::to_string));
    if let Some(named) = named.as_deref().filter(|&n| n != "disk") {
        read_as(data, named);
    }
    read_as(data, "disk");
});
