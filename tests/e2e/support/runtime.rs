//! The sandbox in-process, as the tests that drive it without the binary
//! use it: a runtime like the host's (pooling allocator, no compiled-code
//! cache on disk), the hostile test handler loaded into it, and the
//! request a check written as JSON comes to.

use std::path::Path;

use heartbeat_host::core::config;
use heartbeat_host::{LoadedHandler, RunRequest, Runtime, RuntimeOptions, Tick};

use super::test_handler;

/// The tick time of an in-process run: 2026-05-01T00:00:00Z, in ms since
/// the epoch.
pub const TICK_MS: u64 = 1_777_593_600_000;

/// A runtime with the pooling allocator and no cache directory, so that
/// nothing is written outside the test's own temporary directories.
pub fn runtime() -> Runtime {
    Runtime::new(&RuntimeOptions {
        cache_dir: None,
        pooling: true,
        ..RuntimeOptions::default()
    })
    .expect("runtime")
}

/// `tests/handlers/hostile` (built on first use), loaded into `rt`.
pub fn hostile(rt: &Runtime) -> LoadedHandler {
    heartbeat_host::load_file(rt, &test_handler("test_handler_hostile.wasm"))
        .expect("hostile handler loads")
}

/// The request of agent `agent` for check `check`, written as JSON (its
/// `meta`, limits, grants) and parsed as the config would be, on tick `t1`
/// at `tick_ms`; relative grant paths are resolved against `dir`.
pub fn check_request(
    agent: &str,
    check: &str,
    check_json: &str,
    dir: &Path,
    tick_ms: u64,
) -> RunRequest {
    let name = serde_json::Value::String(check.to_string());
    let text = format!(r#"{{"checks": {{{name}: {check_json}}}}}"#);
    let loaded = config::parse(&text, "test.json").expect("valid check");
    let tick = Tick {
        id: "t1".into(),
        time_ms: tick_ms,
        envelope: serde_json::json!({}),
        done: None,
    };
    heartbeat_host::run_request(agent, &tick, &loaded.config.checks[0], 0, dir)
}
