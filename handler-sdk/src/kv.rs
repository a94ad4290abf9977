//! The check's own key-value store: small values kept between runs and
//! across host restarts (a counter, a last-seen time, a cursor), scoped to
//! the check being run, so that no other check can read or change them.
//! No grant is needed.
//!
//! Values are text; JSON is the usual choice for anything structured.
//! Every [`set`] and [`delete`] that returns `Ok` is on disk when it
//! returns, whole (a crash leaves the old store or the new one). The store
//! holds at most the check's `maxKvBytes` (default 1 MiB, keys and values
//! counted together) and 10,000 keys; a write past that returns `Err` and
//! changes nothing, and the run goes on. Keys are non-empty, at most 512
//! bytes, without NUL.
//!
//! ```ignore
//! use handler_sdk::{kv, Check, Handler, Outcome, Status, Tick};
//!
//! struct Counter;
//!
//! impl Handler for Counter {
//!     fn run(_tick: Tick, _check: Check) -> Result<Outcome, String> {
//!         let runs: u64 = kv::get("runs")?.and_then(|v| v.parse().ok()).unwrap_or(0) + 1;
//!         kv::set("runs", &runs.to_string())?;
//!         Ok(Outcome::with_details(Status::Success, format!(r#"{{"runs":{runs}}}"#)))
//!     }
//! }
//!
//! handler_sdk::export_handler!(Counter);
//! ```

use crate::bindings::heartbeat::handler::kv as wit;

/// The value stored under `key`, `None` when it is not set. `Err` for an
/// invalid key, or when the run was given no store.
pub fn get(key: &str) -> Result<Option<String>, String> {
    wit::kv_get(key)
}

/// Stores `value` under `key` (replacing what it held), durably. `Err`,
/// with nothing changed, for an invalid key, over the cap, or when the
/// host could not write the store.
pub fn set(key: &str, value: &str) -> Result<(), String> {
    wit::kv_set(key, value)
}

/// Removes `key`, durably; `Ok` as well when it was not set.
pub fn delete(key: &str) -> Result<(), String> {
    wit::kv_delete(key)
}

/// Every key set, sorted.
pub fn keys() -> Result<Vec<String>, String> {
    wit::kv_keys()
}
