//! @@name@@: a heartbeat-host check handler in Rust.
//!
//! `run` is called once per run of a check that names this handler, in a
//! fresh sandboxed instance. `check.meta` is the check's `meta` object from
//! heartbeat.json, as JSON text.

wit_bindgen::generate!({
    path: "wit",
    world: "handler",
});

use heartbeat::handler::host::{self, Field, Level};
// The world `use`s tick, check and outcome, so they are at the crate root.
use heartbeat::handler::types::Status;

struct Handler;

impl Guest for Handler {
    /// Returning `Err(reason)` makes the run `failed` with that reason.
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
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
        let payload = format!(r#"{{"check": {:?}, "tick": {:?}}}"#, check.name, tick.id);
        host::emit(&format!("agent.{}.@@name@@", tick.agent), &payload)?;
        // Success and skipped move the check's lastRun; failed backs it off.
        Ok(Outcome {
            status: Status::Success,
            details: r#"{"emitted": 1}"#.to_string(),
        })
    }
}

export!(Handler);
