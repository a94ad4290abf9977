//! A handler that uses the check's key-value store, chosen by `meta.mode`,
//! for the kv tests. Not shipped: the host's build compiles it for the
//! tests only.
//!
//! - `counter`: reads `count` (0 when unset), writes it plus one, returns
//!   `{"count": n}`.
//! - `write`: sets `meta.key` (default `blob`) to a value of `meta.bytes`
//!   bytes; returns `{"written": bytes}`, or, when the host refuses,
//!   succeeds with `{"refused": reason}`, so that a refusal is visible.
//! - `get`: returns `{"value": ...}` of `meta.key` (null when unset).
//! - `dump`: returns `{"entries": {key: value, ...}}` of the whole store.
//! - `slow_writer`: for `meta.rounds` rounds, sets `v0`..`v{meta.keys}`
//!   each to a JSON document `{"round": r, "key": k, "pad": "xxx..."}` with
//!   a pad of `meta.bytes` bytes, so that a store read after a kill can be
//!   checked value by value.
//! - `errors`: calls each function with an invalid key and returns the
//!   reasons.
//! - `script`: fails or succeeds as `meta.results` says, one character a
//!   run (`-` failed, `+` success), counted in the key `run`; past the end
//!   it starts over when `meta.cycle` is true, else succeeds. For the
//!   soft/hard state tests: a handler that fails N times then succeeds,
//!   or alternates.
//! - `bench`: times `meta.n` sets of a `meta.bytes`-byte value, then as many
//!   gets, from inside the guest; returns their medians and p99s in ns
//!   (`benches/runtime.rs -- --kv`).

use handler_sdk::{Check, Handler, Outcome, Status, Tick, kv};
use serde_json::json;

/// The kv test handler.
pub struct KvHandler;

fn meta_u64(meta: &serde_json::Value, key: &str, default: u64) -> u64 {
    meta.get(key).and_then(|v| v.as_u64()).unwrap_or(default)
}

fn meta_str<'a>(meta: &'a serde_json::Value, key: &str, default: &'a str) -> &'a str {
    meta.get(key).and_then(|v| v.as_str()).unwrap_or(default)
}

fn success(details: serde_json::Value) -> Result<Outcome, String> {
    Ok(Outcome::with_details(Status::Success, details.to_string()))
}

impl Handler for KvHandler {
    fn run(_tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: serde_json::Value =
            serde_json::from_str(&check.meta).map_err(|e| e.to_string())?;
        match meta_str(&meta, "mode", "") {
            "counter" => {
                let count = match kv::get("count")? {
                    Some(text) => text
                        .parse::<u64>()
                        .map_err(|e| format!("count {text:?} is not a number: {e}"))?,
                    None => 0,
                } + 1;
                kv::set("count", &count.to_string())?;
                success(json!({ "count": count }))
            }
            "script" => {
                let run = match kv::get("run")? {
                    Some(text) => text
                        .parse::<usize>()
                        .map_err(|e| format!("run {text:?} is not a number: {e}"))?,
                    None => 0,
                };
                kv::set("run", &(run + 1).to_string())?;
                let results: Vec<char> = meta_str(&meta, "results", "").chars().collect();
                let cycle = meta.get("cycle").and_then(|v| v.as_bool()).unwrap_or(false);
                let result = match (results.len(), cycle) {
                    (0, _) => '+',
                    (n, true) => results[run % n],
                    (_, false) => results.get(run).copied().unwrap_or('+'),
                };
                if result == '-' {
                    Err(format!("scripted failure on run {}", run + 1))
                } else {
                    success(json!({ "run": run + 1 }))
                }
            }
            "write" => {
                let bytes = usize::try_from(meta_u64(&meta, "bytes", 100)).unwrap_or(0);
                match kv::set(meta_str(&meta, "key", "blob"), &"x".repeat(bytes)) {
                    Ok(()) => success(json!({ "written": bytes })),
                    Err(refused) => success(json!({ "refused": refused })),
                }
            }
            "get" => success(json!({ "value": kv::get(meta_str(&meta, "key", "blob"))? })),
            "dump" => {
                let mut entries = serde_json::Map::new();
                for key in kv::keys()? {
                    let value = kv::get(&key)?.ok_or_else(|| format!("{key} listed but unset"))?;
                    entries.insert(key, serde_json::Value::String(value));
                }
                success(json!({ "entries": entries }))
            }
            "slow_writer" => {
                let rounds = meta_u64(&meta, "rounds", 1_000_000);
                let keys = meta_u64(&meta, "keys", 4);
                let pad =
                    "x".repeat(usize::try_from(meta_u64(&meta, "bytes", 50_000)).unwrap_or(0));
                for round in 0..rounds {
                    for key in 0..keys {
                        let value = json!({ "round": round, "key": key, "pad": pad });
                        kv::set(&format!("v{key}"), &value.to_string())?;
                    }
                }
                success(json!({ "rounds": rounds }))
            }
            "bench" => {
                // Times its own calls: `meta.n` sets of a value of
                // `meta.bytes` bytes to one key, then as many gets of it.
                let n = usize::try_from(meta_u64(&meta, "n", 200)).unwrap_or(0);
                let value = "x".repeat(usize::try_from(meta_u64(&meta, "bytes", 100)).unwrap_or(0));
                let time = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<Vec<u64>, String> {
                    let mut samples = Vec::with_capacity(n);
                    for _ in 0..n {
                        let start = std::time::Instant::now();
                        f()?;
                        samples.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    }
                    samples.sort_unstable();
                    Ok(samples)
                };
                let sets = time(&mut || kv::set("bench", &value))?;
                let gets = time(&mut || kv::get("bench").map(|_| ()))?;
                let at = |s: &[u64], p: f64| {
                    s.get(((s.len().max(1) - 1) as f64 * p).round() as usize)
                        .copied()
                };
                success(json!({
                    "setNs": {"median": at(&sets, 0.5), "p99": at(&sets, 0.99)},
                    "getNs": {"median": at(&gets, 0.5), "p99": at(&gets, 0.99)},
                }))
            }
            "errors" => success(json!({
                "get": kv::get("").err(),
                "set": kv::set("a\0b", "v").err(),
                "delete": kv::delete(&"k".repeat(513)).err(),
            })),
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

handler_sdk::export_handler!(KvHandler);
