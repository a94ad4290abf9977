//! kill -9 at any moment: the state file is never torn, `lastRun` never
//! goes backwards, and the temp files a killed write leaves are cleaned up
//! by the next start.

use std::time::Duration;

use crate::support::start_on_timer;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn kill_9_in_a_loop_never_tears_the_state_nor_moves_last_run_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"maxPerTick": 3, "checks": {
            "a": {"cadenceMs": 0}, "b": {"cadenceMs": 0}, "c": {"cadenceMs": 0}}}"#,
    )
    .expect("config");
    let state = dir.path().join("heartbeat.state.json");
    let cache = dir.path().join("cache");
    let start = || {
        start_on_timer(
            &config,
            "20ms",
            &[],
            &[
                ("AGENT_NAME", "killed"),
                ("HEARTBEAT_CACHE_DIR", cache.to_str().expect("utf-8")),
            ],
        )
    };
    let mut last_runs = [0u64; 3];
    for round in 0..25u64 {
        let mut host = start();
        host.wait_for_event("run_finished", &[], WAIT);
        // The run is logged as it is handed to the state writer: on a busy
        // machine the very first write may still be on its way.
        let deadline = std::time::Instant::now() + WAIT;
        while !state.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no state file after a run"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Kill at a different moment of the write cycle each round.
        std::thread::sleep(Duration::from_millis(5 + (round * 7) % 60));
        drop(host); // SIGKILL
        let text = std::fs::read_to_string(&state).expect("a state file after a run");
        let parsed: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("round {round}: torn state file ({e}):\n{text}"));
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let now = parsed["checks"][name]["lastRun"].as_u64().unwrap_or(0);
            assert!(
                now >= last_runs[i],
                "round {round}: {name}.lastRun went back from {} to {now}",
                last_runs[i]
            );
            last_runs[i] = now;
        }
    }
    assert!(last_runs.iter().all(|&t| t > 0), "{last_runs:?}");
    // A clean start removes what the killed writes left behind.
    let mut host = start();
    host.wait_for_event("run_finished", &[], WAIT);
    assert!(host.terminate(WAIT).success());
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
