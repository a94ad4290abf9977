//! One host for many agents: `run --agents DIR` and a repeated `--config`.
//! Agents added, changed, broken and removed live; one broker connection
//! for all; a hostile agent that leaves the others on schedule.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::endpoint::{get, sample};
use crate::support::broker::{Cleanup, Client, URL, WAIT, ctl, readme_tick, shared_broker, unique};
use crate::support::{RunningHost, field, is, records, render};

/// The agent a log line was written for (its `agent` span).
fn agent_of(line: &Value) -> Option<&str> {
    line["span"]["agent"].as_str()
}

/// The successful runs of `agent`'s `check` in `lines`.
fn runs_of<'a>(lines: &'a [Value], agent: &str, check: &str) -> Vec<&'a Value> {
    records(
        lines,
        "run_finished",
        &[("check", check), ("status", "success")],
    )
    .into_iter()
    .filter(|l| agent_of(l) == Some(agent))
    .collect()
}

fn agent_file(dir: &Path, file: &str, agent: &str, checks: Value) {
    let config = json!({"$schema": "heartbeat.v1", "agent": agent, "checks": checks});
    // Written beside and renamed in, as an editor or a deploy tool does.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, serde_json::to_string_pretty(&config).expect("json")).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

fn every_tick() -> Value {
    json!({"probe": {"cadenceMs": 0, "handler": "default"}})
}

fn start(dir: &Path, extra: &[&str]) -> RunningHost {
    let mut args = vec![
        "run",
        "--agents",
        dir.to_str().expect("utf-8"),
        "--tick-interval",
        "200ms",
    ];
    args.extend_from_slice(extra);
    RunningHost::start(&args, &[])
}

#[test]
fn agents_are_added_changed_broken_and_removed_live_from_their_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).expect("mkdir");
    agent_file(&agents, "a.json", "fleet-a", every_tick());
    agent_file(&agents, "b.json", "fleet-b", every_tick());
    // Not an agent: no `agent` field. Refused, the others served.
    std::fs::write(agents.join("nameless.json"), r#"{"checks": {}}"#).expect("write");
    let mut host = start(&agents, &["--metrics-addr", "127.0.0.1:0"]);
    let lines = host.wait_for("both agents running", WAIT, |l| {
        runs_of(l, "fleet-a", "probe").len() >= 2 && runs_of(l, "fleet-b", "probe").len() >= 2
    });
    let addr = lines
        .iter()
        .find_map(|l| field(l, "addr"))
        .expect("the bound address")
        .to_string();
    // One endpoint for the process: every agent's checks, by agent.
    let (_, _, scrape) = get(&addr, "/metrics");
    assert_eq!(sample(&scrape, "heartbeat_agents"), Some(2.0), "{scrape}");
    for agent in ["fleet-a", "fleet-b"] {
        assert_eq!(
            sample(
                &scrape,
                &format!(r#"heartbeat_check_state{{agent="{agent}",check="probe",state="ok"}}"#)
            ),
            Some(1.0),
            "{scrape}"
        );
    }
    let (status, _, all) = get(&addr, "/status");
    assert_eq!(status, 200);
    let all: Value = serde_json::from_str(&all).expect("json");
    let listed: Vec<&str> = all["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(listed, ["fleet-a", "fleet-b"]);
    let (status, _, one) = get(&addr, "/status?agent=fleet-b");
    assert_eq!(status, 200);
    let one: Value = serde_json::from_str(&one).expect("json");
    assert_eq!(one["agent"], "fleet-b");
    assert!(
        one["recentRuns"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|run| run["check"] == "probe")),
        "{one}"
    );
    assert_eq!(get(&addr, "/status?agent=nobody").0, 404);
    let (_, _, page) = get(&addr, "/");
    assert!(
        page.contains("2 agents") && page.contains("/?agent=fleet-a"),
        "{page}"
    );
    let refused = records(&lines, "agent_refused", &[]);
    assert!(
        refused
            .iter()
            .any(|l| crate::support::message(l).contains("nameless.json")
                && crate::support::message(l).contains("agent: required")),
        "{}",
        render(&lines)
    );
    // Each agent's state file is its own, in DIR/state/.
    for agent in ["fleet-a", "fleet-b"] {
        let state =
            crate::support::read_json(&agents.join("state").join(format!("{agent}.state.json")));
        assert!(
            state["checks"]["probe"]["lastRun"].is_number(),
            "{agent}: {state}"
        );
    }

    // Added: a third agent starts without a restart.
    agent_file(&agents, "c.json", "fleet-c", every_tick());
    host.wait_for("the added agent running", WAIT, |l| {
        !records(l, "agent_added", &[]).is_empty() && runs_of(l, "fleet-c", "probe").len() >= 2
    });

    // Changed: a check added to a's file is a config reload of a alone.
    let changed = json!({"agent": "fleet-a", "maxPerTick": 2, "checks": {
        "probe": {"cadenceMs": 0, "handler": "default"},
        "second": {"cadenceMs": 0, "handler": "default"},
    }});
    std::fs::write(agents.join(".a.json.tmp"), changed.to_string()).expect("write");
    std::fs::rename(agents.join(".a.json.tmp"), agents.join("a.json")).expect("rename");
    let lines = host.wait_for("a's new check running", WAIT, |l| {
        runs_of(l, "fleet-a", "second").len() >= 2
    });
    let reloaded = records(&lines, "config_reloaded", &[]);
    assert!(
        reloaded.iter().all(|l| agent_of(l) == Some("fleet-a")) && !reloaded.is_empty(),
        "{}",
        render(&lines)
    );

    // Broken: b's change is refused, b keeps running on its last good config.
    std::fs::write(
        agents.join("b.json"),
        r#"{"agent": "fleet-b", "checks": {"probe": {"cadenceMs": -5}}}"#,
    )
    .expect("write");
    let lines = host.wait_for("b's broken file refused", WAIT, |l| {
        records(l, "config_refused", &[])
            .iter()
            .any(|r| agent_of(r) == Some("fleet-b"))
    });
    let before = runs_of(&lines, "fleet-b", "probe").len();
    host.wait_for("b still running", WAIT, |l| {
        runs_of(l, "fleet-b", "probe").len() >= before + 2
    });

    // Removed: c stops (runs finish, then no more), the others go on.
    std::fs::remove_file(agents.join("c.json")).expect("rm");
    let lines = host.wait_for("c removed and stopped", WAIT, |l| {
        records(l, "agent_removed", &[])
            .iter()
            .any(|r| field(r, "agent") == Some("fleet-c"))
            && records(l, "shutting_down", &[])
                .iter()
                .any(|r| agent_of(r) == Some("fleet-c"))
    });
    let c_runs = runs_of(&lines, "fleet-c", "probe").len();
    let a_runs = runs_of(&lines, "fleet-a", "probe").len();
    let lines = host.wait_for("a goes on after c's removal", WAIT, |l| {
        runs_of(l, "fleet-a", "probe").len() >= a_runs + 3
    });
    assert_eq!(
        runs_of(&lines, "fleet-c", "probe").len(),
        c_runs,
        "a removed agent ran again:\n{}",
        render(&lines)
    );
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    for agent in ["fleet-a", "fleet-b"] {
        assert!(
            records(&lines, "shutting_down", &[])
                .iter()
                .any(|r| agent_of(r) == Some(agent)),
            "{agent} did not shut down:\n{}",
            render(&lines)
        );
    }
    assert!(lines.iter().any(|l| is(l, "stopped", &[])));
}

#[test]
fn a_deleted_and_recreated_agents_directory_is_served_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).expect("mkdir");
    agent_file(&agents, "a.json", "fleet-a", every_tick());
    let state = dir.path().join("state");
    let mut host = start(&agents, &["--state-dir", state.to_str().expect("utf-8")]);
    host.wait_for("fleet-a running", WAIT, |l| {
        !runs_of(l, "fleet-a", "probe").is_empty()
    });

    std::fs::remove_dir_all(&agents).expect("rm -r");
    host.wait_for("the directory's agent stopped", WAIT, |l| {
        !records(l, "agents_dir_gone", &[]).is_empty()
            && !records(l, "agent_removed", &[("agent", "fleet-a")]).is_empty()
    });

    // Made again, with one agent written at once and one later: both
    // served, with no restart and no SIGHUP.
    std::fs::create_dir_all(&agents).expect("mkdir again");
    agent_file(&agents, "a.json", "fleet-a", every_tick());
    host.wait_for("the directory watched again", WAIT, |l| {
        !records(l, "agents_dir_back", &[]).is_empty()
    });
    agent_file(&agents, "b.json", "fleet-b", every_tick());
    host.wait_for("both agents running again", WAIT, |l| {
        let added = |agent| records(l, "agent_added", &[("agent", agent)]).len();
        added("fleet-a") == 2 && added("fleet-b") == 1 && !runs_of(l, "fleet-b", "probe").is_empty()
    });
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_second_file_naming_a_served_agent_is_refused_and_the_first_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = dir.path();
    agent_file(agents, "first.json", "fleet-same", every_tick());
    let mut host = start(agents, &[]);
    host.wait_for("the agent running", WAIT, |l| {
        !runs_of(l, "fleet-same", "probe").is_empty()
    });
    agent_file(agents, "second.json", "fleet-same", every_tick());
    let lines = host.wait_for("the second file refused", WAIT, |l| {
        records(l, "agent_refused", &[]).iter().any(|r| {
            crate::support::message(r).contains("second.json")
                && crate::support::message(r).contains("already served")
        })
    });
    assert_eq!(
        records(&lines, "agent_added", &[]).len(),
        1,
        "{}",
        render(&lines)
    );
    assert!(host.terminate(WAIT).success());
}

#[test]
fn a_hostile_agent_leaves_another_agents_check_on_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).expect("mkdir");
    let handlers =
        crate::support::handlers_with(dir.path(), "test_handler_hostile.wasm", "hostile");
    // Agent A: every check hostile, all due on every tick.
    agent_file(
        &agents,
        "hostile.json",
        "fleet-hostile",
        json!({
            "spin": {"cadenceMs": 0, "handler": "hostile", "timeoutMs": 1500, "meta": {"mode": "loop"}},
            "spin2": {"cadenceMs": 0, "handler": "hostile", "timeoutMs": 1500, "meta": {"mode": "loop"}},
            "hog": {"cadenceMs": 0, "handler": "hostile", "memoryMb": 16, "meta": {"mode": "memory"}},
            "flood": {"cadenceMs": 0, "handler": "hostile", "meta": {"mode": "event_flood", "agent": "fleet-hostile"}},
        }),
    );
    let mut hostile = serde_json::from_str::<Value>(
        &std::fs::read_to_string(agents.join("hostile.json")).expect("read"),
    )
    .expect("json");
    hostile["maxPerTick"] = json!(4);
    std::fs::write(agents.join("hostile.json"), hostile.to_string()).expect("write");
    // Agent B: one well-behaved check on every tick.
    agent_file(
        &agents,
        "calm.json",
        "fleet-calm",
        json!({"steady": {"cadenceMs": 0, "handler": "hostile", "meta": {"mode": "ok"}}}),
    );
    let mut host = start(
        &agents,
        &[
            "--handlers",
            handlers.to_str().expect("utf-8"),
            "--max-runs-per-agent",
            "1",
        ],
    );
    // Let it run for a while: A's spins time out over and over.
    let lines = host.wait_for("hostile runs failing and calm runs", WAIT, |l| {
        let failed_spins = records(l, "run_finished", &[("status", "failed")])
            .iter()
            .filter(|r| agent_of(r) == Some("fleet-hostile"))
            .count();
        failed_spins >= 6 && runs_of(l, "fleet-calm", "steady").len() >= 15
    });
    assert!(host.terminate(WAIT).success());
    let hostile_failed: Vec<&Value> = records(&lines, "run_finished", &[("status", "failed")])
        .into_iter()
        .filter(|r| agent_of(r) == Some("fleet-hostile"))
        .collect();
    // A's runs beyond its one slot wait for it, and fail saying so: no slot
    // came within their timeoutMs, or the wait took part of it.
    assert!(
        hostile_failed
            .iter()
            .any(|r| field(r, "error").is_some_and(|e| {
                e.contains("no run slot of agent fleet-hostile")
                    || e.contains("waiting for one of agent fleet-hostile's run slots")
            })),
        "{}",
        render(&lines)
    );
    assert!(
        hostile_failed
            .iter()
            .any(|r| field(r, "check") == Some("flood")
                && field(r, "error").is_some_and(|e| e.contains("event"))),
        "the flood is stopped at the event cap:\n{}",
        render(&lines)
    );
    // B never failed, and ran on schedule: no gap between two of its runs
    // longer than a few tick intervals (200 ms), while A's spins ran 1.5 s each.
    let calm = runs_of(&lines, "fleet-calm", "steady");
    assert!(
        records(
            &lines,
            "run_finished",
            &[("check", "steady"), ("status", "failed")]
        )
        .is_empty(),
        "{}",
        render(&lines)
    );
    let times: Vec<jiff::Timestamp> = calm
        .iter()
        .filter_map(|l| l["timestamp"].as_str()?.parse().ok())
        .collect();
    assert_eq!(times.len(), calm.len(), "timestamps: {}", render(&lines));
    let longest = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis())
        .max()
        .unwrap_or(0);
    assert!(
        longest <= 1_000,
        "the calm agent's check waited {longest} ms between runs while the hostile agent ran:\n{}",
        render(&lines)
    );
}

/// rabbitmqctl's connections named `name`.
fn connections_named(name: &str) -> usize {
    ctl(&["list_connections", "client_properties"])
        .lines()
        .filter(|l| l.contains(name))
        .count()
}

/// Consumers on `queue` now (rabbitmqctl), `None` when it does not exist.
fn consumers(queue: &str) -> Option<u32> {
    ctl(&["list_queues", "name", "consumers"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{queue}\t"))?.parse().ok())
}

#[test]
fn agents_share_one_connection_a_tick_reaches_all_and_a_removed_agent_publishes_stop_and_takes_no_more_ticks()
 {
    let _broker = shared_broker();
    let exchange = unique("ex");
    let names: Vec<String> = (0..3).map(|_| unique("fleet")).collect();
    let client = Client::connect();
    client.exchange(&exchange);
    let results = client.observer(&exchange, "agent.*.check.completed");
    let beats = client.observer(&exchange, "heartbeat.heartbeat-host.#");
    let mut cleanup = Cleanup {
        queues: vec![results.clone(), beats.clone()],
        exchanges: vec![exchange.clone()],
    };
    for name in &names {
        cleanup.queues.push(format!("agent.{name}.inbox"));
        cleanup.queues.push(format!("agent.{name}.dlq"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for name in &names {
        agent_file(
            dir.path(),
            &format!("{name}.json"),
            name,
            json!({"probe": {"cadenceMs": 0, "handler": "default"}}),
        );
    }
    let mut host = RunningHost::start(
        &[
            "run",
            "--agents",
            dir.path().to_str().expect("utf-8"),
            "--amqp-url",
            URL,
            "--exchange",
            &exchange,
            "--tick-interval",
            "60s",
        ],
        &[],
    );
    let lines = host.wait_for("every agent connected", WAIT, |l| {
        names.iter().all(|n| {
            records(l, "connected", &[])
                .iter()
                .any(|r| agent_of(r) == Some(n.as_str()))
        })
    });
    assert_eq!(
        records(&lines, "shared_connection_open", &[]).len(),
        1,
        "{}",
        render(&lines)
    );
    // One connection for the three agents, each with its own consumer.
    let deadline = Instant::now() + WAIT;
    while names
        .iter()
        .any(|n| consumers(&format!("agent.{n}.inbox")) != Some(1))
    {
        assert!(Instant::now() < deadline, "consumers never came");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(connections_named("heartbeat-host agents #0"), 1);
    assert_eq!(connections_named("heartbeat-host agent."), 0);

    // One system tick, every agent runs its check and publishes its result.
    client.publish_json(&exchange, "system.heartbeat.tick", &readme_tick("fanout-1"));
    await_results(&client, &results, &names);

    // Removed: stops consuming, publishes stop; its queue stays.
    let gone = &names[0];
    std::fs::remove_file(dir.path().join(format!("{gone}.json"))).expect("rm");
    let deadline = Instant::now() + WAIT;
    loop {
        let stops: Vec<String> = client
            .drain(&beats)
            .into_iter()
            .filter(|(_, _, body)| body == "stop")
            .map(|(key, _, _)| key)
            .collect();
        if stops.contains(&format!("heartbeat.heartbeat-host.{gone}")) {
            break;
        }
        assert!(Instant::now() < deadline, "no stop beat for {gone}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        consumers(&format!("agent.{gone}.inbox")),
        Some(0),
        "its queue stays"
    );
    assert_eq!(consumers(&format!("agent.{}.inbox", names[1])), Some(1));
    assert_eq!(connections_named("heartbeat-host agents #0"), 1);

    // Its queue no longer takes ticks or beats (issue 24.7): only what is
    // addressed to the agent stays bound. A tick that reaches the others
    // leaves it empty.
    let gone_inbox = format!("agent.{gone}.inbox");
    host.wait_for("the removed agent's inbox unbound", WAIT, |l| {
        records(l, "ticks_unbound", &[])
            .iter()
            .any(|r| agent_of(r) == Some(gone.as_str()))
    });
    assert_eq!(
        bindings_of(&exchange, &gone_inbox),
        [format!("agent.{gone}.#")]
    );
    client.publish_json(&exchange, "system.heartbeat.tick", &readme_tick("fanout-2"));
    await_results(&client, &results, &names[1..]);
    assert_eq!(
        client.count(&gone_inbox),
        0,
        "the tick reached the removed agent's queue"
    );

    // Served again: bound again, and the next tick reaches it.
    agent_file(
        dir.path(),
        &format!("{gone}.json"),
        gone,
        json!({"probe": {"cadenceMs": 0, "handler": "default"}}),
    );
    let deadline = Instant::now() + WAIT;
    while consumers(&gone_inbox) != Some(1) {
        assert!(Instant::now() < deadline, "the agent was not served again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(bindings_of(&exchange, &gone_inbox).contains(&"system.heartbeat.#".to_string()));
    client.publish_json(&exchange, "system.heartbeat.tick", &readme_tick("fanout-3"));
    await_results(&client, &results, &names);
    assert!(host.terminate(WAIT).success());
    drop(cleanup);
}

/// The routing keys binding `queue` to `exchange` now, sorted (rabbitmqctl).
fn bindings_of(exchange: &str, queue: &str) -> Vec<String> {
    let mut keys: Vec<String> = ctl(&[
        "list_bindings",
        "source_name",
        "destination_name",
        "routing_key",
    ])
    .lines()
    .filter_map(|l| {
        let mut cols = l.split('\t');
        let (source, destination, key) = (cols.next()?, cols.next()?, cols.next()?);
        (source == exchange && destination == queue).then(|| key.to_string())
    })
    .collect();
    keys.sort();
    keys
}

/// Waits (bounded) until each of `agents` published a result on `results`.
fn await_results(client: &Client, results: &str, agents: &[String]) {
    let deadline = Instant::now() + WAIT;
    let mut seen: Vec<String> = Vec::new();
    while !agents
        .iter()
        .all(|a| seen.contains(&format!("agent.{a}.check.completed")))
    {
        seen.extend(client.drain(results).into_iter().map(|(key, _, _)| key));
        assert!(
            Instant::now() < deadline,
            "results seen: {seen:?}, wanted {agents:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_repeated_config_serves_each_files_agent_with_its_state_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    for (at, agent) in [(&one, "fleet-one"), (&two, "fleet-two")] {
        std::fs::create_dir_all(at).expect("mkdir");
        agent_file(at, "heartbeat.json", agent, every_tick());
    }
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            one.join("heartbeat.json").to_str().expect("utf-8"),
            "--config",
            two.join("heartbeat.json").to_str().expect("utf-8"),
            "--tick-interval",
            "200ms",
        ],
        &[],
    );
    host.wait_for("both files' agents running", WAIT, |l| {
        runs_of(l, "fleet-one", "probe").len() >= 2 && runs_of(l, "fleet-two", "probe").len() >= 2
    });
    // A deleted --config file keeps its agent on the last good config.
    std::fs::remove_file(two.join("heartbeat.json")).expect("rm");
    let lines = host.wait_for("the missing file reported", WAIT, |l| {
        records(l, "config_missing", &[])
            .iter()
            .any(|r| agent_of(r) == Some("fleet-two"))
    });
    let before = runs_of(&lines, "fleet-two", "probe").len();
    host.wait_for("fleet-two still running", WAIT, |l| {
        runs_of(l, "fleet-two", "probe").len() >= before + 2
    });
    assert!(host.terminate(WAIT).success());
    for at in [&one, &two] {
        let state = crate::support::read_json(&at.join("heartbeat.state.json"));
        assert!(state["checks"]["probe"]["lastRun"].is_number(), "{state}");
    }
}
