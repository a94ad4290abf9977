//! The built-in `default` handler: heartbeat-consumer's no-op fallback. It
//! reports success, so a check without a handler of its own simply keeps
//! its `lastRun` fresh.

use handler_sdk::{Check, Handler, Outcome, Tick};

/// The no-op handler.
pub struct Default;

impl Handler for Default {
    fn run(_tick: Tick, _check: Check) -> Result<Outcome, String> {
        Ok(Outcome::success())
    }
}

handler_sdk::export_handler!(Default);
