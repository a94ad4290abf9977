//! Write heartbeat-host check handlers in Rust.
//!
//! A handler is a WebAssembly component implementing the `handler` world of
//! the `heartbeat:handler` WIT package (`wit/handler.wit` in this
//! repository). This crate generates the bindings from that file and wraps
//! them so that a handler is a few lines:
//!
//! ```ignore
//! use handler_sdk::{Check, Handler, Outcome, Tick};
//!
//! struct Ping;
//!
//! impl Handler for Ping {
//!     fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
//!         handler_sdk::log::info(&format!("{} checked on tick {}", check.name, tick.id));
//!         Ok(Outcome::success())
//!     }
//! }
//!
//! handler_sdk::export_handler!(Ping);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` from a crate
//! with `crate-type = ["cdylib"]`, and drop the `.wasm` into the host's
//! handler directory.

#![warn(missing_docs)]

/// Bindings generated from `wit/handler.wit`. Prefer the re-exports at the
/// crate root; these are public for the export macro.
#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs, clippy::too_many_arguments)]
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler",
        pub_export_macro: true,
        export_macro_name: "__export_handler_world",
        default_bindings_module: "::handler_sdk::bindings",
    });
}

pub mod dirs;
pub mod env;
pub mod http;
pub mod kv;

pub use bindings::Guest as Handler;
pub use bindings::heartbeat::handler::types::{Check, Outcome, Status, Tick};

/// Exports a type implementing [`Handler`] as the component's `run`.
#[macro_export]
macro_rules! export_handler {
    ($handler:ident) => {
        $crate::bindings::__export_handler_world!($handler with_types_in $crate::bindings);
    };
}

impl Outcome {
    /// A successful run with no details.
    pub fn success() -> Outcome {
        Outcome::with_details(Status::Success, "{}")
    }

    /// A skipped run: nothing to do this time.
    pub fn skipped() -> Outcome {
        Outcome::with_details(Status::Skipped, "{}")
    }

    /// A run that found a problem.
    pub fn failed() -> Outcome {
        Outcome::with_details(Status::Failed, "{}")
    }

    /// A run with this status and details (JSON text).
    pub fn with_details(status: Status, details: impl Into<String>) -> Outcome {
        Outcome {
            status,
            details: details.into(),
        }
    }
}

pub use bindings::heartbeat::handler::host::{Process, ProcessStatus};

/// The agent's watched processes as the host tracks them from their beats
/// (`heartbeat.<agent>.#` and the config's `watch` patterns), sorted by name.
pub fn processes() -> Vec<Process> {
    bindings::heartbeat::handler::host::processes()
}

/// Emits an event: `event_type` is also its routing key (by default it must
/// start with `agent.<agent>.`), `payload` is JSON text.
pub fn emit(event_type: &str, payload: &str) -> Result<(), String> {
    bindings::heartbeat::handler::host::emit(event_type, payload)
}

/// Structured logging into the host's log.
pub mod log {
    use crate::bindings::heartbeat::handler::host::{self, Field, Level};

    /// Logs `message` at `level` with `fields` as key/value pairs.
    pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<Field> = fields
            .iter()
            .map(|(k, v)| Field {
                key: (*k).to_string(),
                value: (*v).to_string(),
            })
            .collect();
        host::log(level, message, &fields);
    }

    /// Logs at debug level.
    pub fn debug(message: &str) {
        write(Level::Debug, message, &[]);
    }

    /// Logs at info level.
    pub fn info(message: &str) {
        write(Level::Info, message, &[]);
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        write(Level::Warn, message, &[]);
    }

    /// Logs at error level.
    pub fn error(message: &str) {
        write(Level::Error, message, &[]);
    }

    pub use crate::bindings::heartbeat::handler::host::Level as LogLevel;
}
