//! kv_counter: counts its check's runs in the check's key-value store
//! (heartbeat:handler/kv), which outlives the run and the host's restarts.
//! Over the store's cap (maxKvBytes) `kv::set` returns `Err`: passed on with
//! `?`, the run fails with the host's reason.

use handler_sdk::{Check, Handler, Outcome, Status, Tick, kv};

struct KvCounter;

impl Handler for KvCounter {
    fn run(tick: Tick, _check: Check) -> Result<Outcome, String> {
        let stored = kv::get("runs")?; // None when never set
        let runs = stored.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
        kv::set("runs", &runs.to_string())?;
        kv::set("lastTick", &tick.id)?;
        let details = serde_json::json!({"runs": runs, "keys": kv::keys()?});
        Ok(Outcome::with_details(Status::Success, details.to_string()))
    }
}

handler_sdk::export_handler!(KvCounter);
