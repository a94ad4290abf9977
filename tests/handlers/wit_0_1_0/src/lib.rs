//! A handler built against `heartbeat:handler@0.1.0` exactly as released
//! (`wit/handler.wit` here is a verbatim copy of that version, from before
//! the `kv` interface), so that the tests show a handler built for an
//! older compatible version still loads and runs on the current host.
//! It calls every host function 0.1.0 had. Not shipped.

// Some functions of the generated bindings take many arguments.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "wit",
    world: "handler",
});

use heartbeat::handler::host::{self, Field, Level};
use heartbeat::handler::types::Status;

struct Compat;

impl Guest for Compat {
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        host::log(
            Level::Info,
            "built against heartbeat:handler@0.1.0",
            &[Field {
                key: "tick".to_string(),
                value: tick.id.clone(),
            }],
        );
        let processes = host::processes().len();
        if check.meta.contains("\"emit\"") {
            host::emit(&format!("agent.{}.compat", tick.agent), "{}")?;
        }
        Ok(Outcome {
            status: Status::Success,
            details: format!(
                r#"{{"wit":"0.1.0","check":{:?},"processes":{processes}}}"#,
                check.name
            ),
        })
    }
}

export!(Compat);
