//! Soft and hard states published as state changes, active and standby hosts, and the results key prefix.

use super::*;

/// A check whose handler fails three times, then succeeds: on the bus, its
/// result events carry `soft 1`, `soft 2`, `hard 3`, then `ok 0`, and
/// exactly two state changes are published, `ok → hard` and `hard → ok`;
/// the soft retries came on the retry interval, the run after the hard
/// failure on the cadence.
#[test]
fn soft_retries_then_hard_then_ok_publish_one_state_change_each_way() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("states", |agent| format!("agent.{agent}.check.*"));
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = support::handlers_with(dir.path(), "test_handler_kv.wasm", "scripted");
    let config = write_config(
        dir.path(),
        &agent,
        json!({"api": {"handler": "scripted", "cadenceMs": 3000, "maxAttempts": 3,
            "retryIntervalMs": 200, "meta": {"mode": "script", "results": "---+"}}}),
    );
    let mut host = start_connected(
        &config,
        &exchange,
        &["--handlers", handlers.to_str().expect("utf-8")],
    );
    // Ticks every 100 ms until the recovery's state change is in.
    let deadline = Instant::now() + WAIT;
    let mut seen: Vec<(String, BasicProperties, Value)> = Vec::new();
    let mut n = 0;
    while !seen
        .iter()
        .any(|(key, _, e)| key.ends_with(".state_changed") && e["payload"]["state"] == "ok")
    {
        assert!(
            Instant::now() < deadline,
            "no recovery within {WAIT:?}: {seen:?}\n{}",
            host.log()
        );
        n += 1;
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("states-tick-{n:04}")),
        );
        std::thread::sleep(Duration::from_millis(100));
        seen.extend(client.drain(&observer));
    }
    assert!(host.terminate(WAIT).success(), "{}", host.log());
    seen.extend(client.drain(&observer));

    let completed: Vec<(String, u64, f64)> = seen
        .iter()
        .filter(|(key, _, _)| key.ends_with(".check.completed"))
        .map(|(_, _, e)| {
            let p = &e["payload"];
            let at = e["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or(0.0, |t| t.as_millisecond() as f64);
            (
                p["state"].as_str().unwrap_or("").to_string(),
                p["attempt"].as_u64().unwrap_or(99),
                at,
            )
        })
        .collect();
    let states: Vec<(&str, u64)> = completed
        .iter()
        .take(4)
        .map(|(s, a, _)| (s.as_str(), *a))
        .collect();
    assert_eq!(
        states,
        [("soft", 1), ("soft", 2), ("hard", 3), ("ok", 0)],
        "{seen:?}"
    );
    // Soft retries on the retry interval (200 ms, ticks every 100 ms);
    // after the hard failure the check waits its cadence (3 s).
    let gap = |i: usize| completed[i + 1].2 - completed[i].2;
    assert!(gap(0) < 1_500.0 && gap(1) < 1_500.0, "{completed:?}");
    assert!(gap(2) >= 2_900.0, "hard waits the cadence: {completed:?}");

    let changes: Vec<(&str, &str, &str)> = seen
        .iter()
        .filter(|(key, _, _)| key == &format!("agent.{agent}.check.state_changed"))
        .map(|(_, _, e)| {
            let p = &e["payload"];
            (
                p["change"].as_str().unwrap_or(""),
                p["previous"].as_str().unwrap_or(""),
                p["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [("transition", "ok", "hard"), ("transition", "hard", "ok")],
        "{seen:?}"
    );
    let hard = seen
        .iter()
        .find(|(key, _, e)| key.ends_with(".state_changed") && e["payload"]["state"] == "hard")
        .map(|(_, _, e)| e["payload"].clone())
        .expect("the hard change");
    assert_eq!(hard["attempt"], 3);
    assert_eq!(hard["error"], "scripted failure on run 3");
    // The state file says where the check stands.
    let state = read_json(&dir.path().join("heartbeat.state.json"));
    assert_eq!(
        state["checks"]["api"].get("state"),
        None,
        "ok is not written"
    );
    assert_eq!(state["checks"]["api"]["recent"], "---+");
}

/// Active and standby (`--exclusive`): two hosts for one agent, the second
/// stands by and runs nothing; `kill -9` of the active one hands the inbox
/// to the standby, which runs the next ticks within 2 tick intervals.
#[test]
fn a_standby_takes_over_within_two_tick_intervals_of_the_active_hosts_kill_9() {
    const TICK_EVERY: Duration = Duration::from_millis(500);
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("standby", |agent| format!("agent.{agent}.check.completed"));
    let (active_dir, standby_dir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let checks = json!({"beat": {"cadenceMs": 0, "handler": "default"}});
    let active_config = write_config(active_dir.path(), &agent, checks.clone());
    let standby_config = write_config(standby_dir.path(), &agent, checks);
    let active = start_connected(&active_config, &exchange, &["--exclusive"]);
    let mut standby = start_on_broker(&standby_config, URL, &exchange, &["--exclusive"]);
    standby.wait_for_event("standby", &[], WAIT);

    let tick = |n: u32| {
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("sb-{n:04}")),
        );
    };
    // While the active host lives, it runs every tick and the standby none.
    for n in 0..4 {
        tick(n);
        std::thread::sleep(TICK_EVERY);
    }
    client.wait_count(&observer, 4, WAIT);
    assert_eq!(
        records(&standby.lines(), "run_finished", &[]).len(),
        0,
        "the standby ran a check while the active host lived:\n{}",
        standby.log()
    );
    assert!(
        records(&standby.lines(), "fallback_tick", &[]).is_empty(),
        "a standby's own timer stays silent:\n{}",
        standby.log()
    );

    // Ticks keep coming every TICK_EVERY, as from a cron; the first one
    // the standby runs says when it took over.
    let killed = Instant::now();
    drop(active); // SIGKILL
    let mut n = 100;
    let first_run_after = 'ticking: loop {
        tick(n);
        n += 1;
        let next = Instant::now() + TICK_EVERY;
        while Instant::now() < next {
            if !records(&standby.lines(), "run_finished", &[]).is_empty() {
                break 'ticking killed.elapsed();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(killed.elapsed() < WAIT, "no takeover:\n{}", standby.log());
    };
    let lines = standby.lines();
    let took_over = lines
        .iter()
        .find(|l| event(l) == Some("took_over"))
        .map(render_line)
        .unwrap_or_default();
    assert!(
        first_run_after <= 2 * TICK_EVERY,
        "the standby ran its first check {first_run_after:?} after the kill, more than 2 tick \
         intervals ({TICK_EVERY:?} each); {took_over}\n{}",
        standby.log()
    );
    eprintln!("standby: first run {first_run_after:?} after the kill -9 of the active host");
    // The state file is read again beside the first runs, not before them.
    let lines = standby.wait_for_event("state_reloaded", &[], WAIT);
    assert!(
        records(&lines, "state_reloaded", &[]).len() == 1,
        "{}",
        standby.log()
    );
    assert!(standby.terminate(WAIT).success(), "{}", standby.log());
}

#[test]
fn a_results_key_prefix_moves_the_result_events_off_the_inbox_bindings() {
    // `--results-key-prefix results.`: both result events go to
    // `results.{agent}.check.…` with that `event_type`, nothing goes to
    // `agent.{agent}.check.…`, and none comes back through the inbox.
    let _broker = shared_broker();
    let (agent, exchange, client, observer, mut cleanup) =
        observed_agent("reskey", |agent| format!("results.{agent}.check.*"));
    let old_keys = client.observer(&exchange, &format!("agent.{agent}.check.*"));
    cleanup.queues.push(old_keys.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = support::handlers_with(dir.path(), "test_handler_kv.wasm", "scripted");
    // Fails, then passes: with maxAttempts 1 each run changes the state,
    // so both result events are sent each time.
    let config = write_config(
        dir.path(),
        &agent,
        json!({"api": {"handler": "scripted", "cadenceMs": 0, "maxAttempts": 1,
            "meta": {"mode": "script", "results": "-+"}}}),
    );
    let mut host = start_connected(
        &config,
        &exchange,
        &[
            "--handlers",
            handlers.to_str().expect("utf-8"),
            "--results-key-prefix",
            "results.",
        ],
    );
    for n in 1..=2u32 {
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("reskey-tick-{n}")),
        );
        client.wait_count(&observer, 2 * n, WAIT);
    }
    wait_idle(&format!("agent.{agent}.inbox"));
    assert!(host.terminate(WAIT).success(), "{}", host.log());

    let events = client.drain(&observer);
    let keys: Vec<&str> = events.iter().map(|(key, _, _)| key.as_str()).collect();
    let completed = format!("results.{agent}.check.completed");
    let changed = format!("results.{agent}.check.state_changed");
    assert_eq!(
        keys,
        [&completed, &changed, &completed, &changed],
        "{events:?}"
    );
    for (key, properties, event) in &events {
        assert_eq!(event["event_type"], json!(key), "{event}");
        assert_eq!(
            properties.kind().as_ref().map(|t| t.as_str()),
            Some(key.as_str())
        );
    }
    assert_eq!(events[0].2["correlation_ids"], json!(["reskey-tick-1"]));
    assert_eq!(events[1].2["payload"]["state"], "hard");
    assert_eq!(events[3].2["payload"]["state"], "ok");
    assert_eq!(
        client.count(&old_keys),
        0,
        "an event went to agent.{agent}.check.*"
    );
    // Nothing of the host's own came back on its inbox, and no binding
    // was reported to match the new keys.
    let lines = host.lines();
    let stopped = records(&lines, "bus_stopped", &[]);
    assert_eq!(stopped.len(), 1, "{}", host.log());
    assert_eq!(number(stopped[0], "own_skipped"), Some(0), "{}", host.log());
    assert_eq!(number(stopped[0], "published"), Some(4), "{}", host.log());
    assert!(
        records(&lines, "results_key_bound", &[]).is_empty(),
        "{}",
        host.log()
    );
}
