//! @@name@@: a heartbeat-host check handler in Rust.
//!
//! `run` is called once per run of a check that names this handler, in a
//! fresh sandboxed instance. `check.meta` is the check's `meta` object from
//! heartbeat.json, as JSON text. With `meta.url` set, the handler GETs it
//! (the check must grant the origin: `grants.http`, or `invoke
//! --grant-http ORIGIN`).

wit_bindgen::generate!({
    path: "wit",
    // `handler` plus the WASI interfaces a check reaches under its grants
    // (here wasi:http, for `http::get`); the deps are in wit/deps/.
    world: "handler-wasi",
    generate_all,
});

mod http;

use heartbeat::handler::host::{self, Field, Level};
// The world `use`s tick, check and outcome, so they are at the crate root.
use heartbeat::handler::types::Status;

/// How much of a response body goes into the details.
const EXCERPT_CHARS: usize = 200;

struct Handler;

impl Guest for Handler {
    /// Returning `Err(reason)` makes the run `failed` with that reason.
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: serde_json::Value =
            serde_json::from_str(&check.meta).map_err(|e| format!("meta is not JSON: {e}"))?;
        host::log(
            Level::Info,
            &format!("{} runs on tick {}", check.name, tick.id),
            &[Field {
                key: "metaBytes".to_string(),
                value: check.meta.len().to_string(),
            }],
        );
        // Events go to the agent's bus; a check may emit under
        // `agent.<agent>.` unless it is granted more.
        let payload = serde_json::json!({"check": check.name, "tick": tick.id});
        host::emit(
            &format!("agent.{}.@@name@@", tick.agent),
            &payload.to_string(),
        )?;

        let mut details = serde_json::json!({"emitted": 1});
        if let Some(url) = meta.get("url").and_then(|u| u.as_str()) {
            // A refused origin, a connection error or a timeout is an
            // `Err` naming the URL and the WASI error code.
            let response = http::get(url)?;
            details["status"] = response.status.into();
            details["excerpt"] = response
                .text()
                .chars()
                .take(EXCERPT_CHARS)
                .collect::<String>()
                .into();
            if response.status >= 400 {
                // A failed outcome's `details.error` is the run's reason.
                details["error"] = format!("GET {url}: HTTP {}", response.status).into();
                return Ok(Outcome {
                    status: Status::Failed,
                    details: details.to_string(),
                });
            }
        }
        // Success and skipped move the check's lastRun; failed backs it off.
        Ok(Outcome {
            status: Status::Success,
            details: details.to_string(),
        })
    }
}

export!(Handler);
