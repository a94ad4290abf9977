//! Feeds the input, as a state file's text (lossy UTF-8), to `State::parse`,
//! then clamps what it reads with `State::clamp_future`. Asserts: no panic;
//! a refusal has a message and a 1-based position inside the text (columns
//! in bytes, as serde_json counts them); a state read is at a version this
//! host knows, and what the host writes of it (`to_text`) reads back equal;
//! clamping twice says nothing the second time and leaves no `lastRun` or
//! `retryAfter` beyond the horizon.
#![no_main]

use heartbeat_core::state::{FUTURE_HORIZON_MS, STATE_VERSION, State};
use libfuzzer_sys::fuzz_target;

/// The "now" clamping is done at: 2026-01-01T00:00:00Z.
const NOW_MS: u64 = 1_767_225_600_000;

/// Whether 1-based (`line`, `column`) is a byte of `text`, or just past the
/// end of one of its lines.
fn inside_bytes(text: &str, line: usize, column: usize) -> bool {
    line >= 1
        && column >= 1
        && text
            .split('\n')
            .nth(line - 1)
            .is_some_and(|l| column <= l.len() + 1)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut state = match State::parse(&text) {
        Err(e) => {
            assert!(!e.message.is_empty());
            assert!(
                inside_bytes(&text, e.line, e.column),
                "outside the text: {e}"
            );
            return;
        }
        Ok(state) => state,
    };
    assert!(state.version <= STATE_VERSION);
    let written = state.to_text();
    let Ok(written) = String::from_utf8(written) else {
        panic!("the state file written is not UTF-8");
    };
    assert_eq!(State::parse(&written).as_ref(), Ok(&state), "{written}");

    state.clamp_future(NOW_MS);
    assert_eq!(state.clamp_future(NOW_MS), Vec::<String>::new());
    for check in state.checks.values() {
        for value in [check.last_run, check.retry_after].into_iter().flatten() {
            assert!(value <= NOW_MS + FUTURE_HORIZON_MS, "{check:?}");
        }
    }
});
