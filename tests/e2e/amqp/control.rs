//! Control messages (pause, resume, run now) and what a handler emits, on a real broker; ticks that carry forged own headers; `heartbeat-host tick`; acknowledgements of ticks still running.

use super::*;

#[test]
fn pause_resume_and_run_now_persist_in_the_state_file_and_steer_the_ticks() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("control", |agent| format!("agent.{agent}.check.completed"));
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_ms();
    let config = write_config(
        dir.path(),
        &agent,
        json!({
            "slow": {"cadenceMs": 3_600_000, "lastRun": now},
            "other": {"cadenceMs": 3_600_000, "lastRun": now}
        }),
    );
    let state_path = dir.path().join("heartbeat.state.json");
    let mut host = start_connected(&config, &exchange, &[]);
    let key = |verb: &str| format!("agent.{agent}.control.{verb}");
    let applied = |host: &mut RunningHost, n: usize| {
        host.wait_for("control applied", WAIT, |l| {
            records(l, "control_applied", &[]).len() >= n
        });
    };
    // Why a check was selected is in the message only.
    let run_requested = |host: &mut RunningHost, check: &str, tick: &str| {
        host.wait_for(&format!("the requested run of {check}"), WAIT, |l| {
            records(l, "selected", &[("check", check), ("tick", tick)])
                .iter()
                .any(|r| message(r) == "selected (run requested)")
        });
    };

    // Run now: persisted, then honoured by the next tick whatever the ratio.
    client.publish_json(
        &exchange,
        &key("run"),
        &control(&agent, "run", json!({"check": "slow"})),
    );
    applied(&mut host, 1);
    assert_eq!(read_json(&state_path)["runRequests"], json!(["slow"]));
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("tick-run-now"),
    );
    run_requested(&mut host, "slow", "tick-run-now");
    client.wait_count(&observer, 1, WAIT);
    host.wait_for("the run request to be cleared on disk", WAIT, |_| {
        read_json(&state_path).get("runRequests").is_none()
    });

    // Pause with until and reason (RFC 3339), then a run request is not enough.
    client.publish_json(
        &exchange,
        &key("pause"),
        &control(
            &agent,
            "pause",
            json!({"check": "other", "until": "2099-01-01T00:00:00Z", "reason": "maintenance"}),
        ),
    );
    applied(&mut host, 2);
    assert_eq!(
        read_json(&state_path)["paused"]["other"],
        json!({"until": 4_070_908_800_000u64, "reason": "maintenance"})
    );
    // `explain` shows the pause set on the bus.
    let explained = Command::new(support::host_bin())
        .args([
            "explain",
            "--json",
            "--config",
            config.to_str().expect("utf-8"),
        ])
        .env_remove("HEARTBEAT_PATH")
        .output()
        .expect("explain");
    assert!(
        explained.status.success(),
        "{}",
        String::from_utf8_lossy(&explained.stderr)
    );
    let explained: Value = serde_json::from_slice(&explained.stdout).expect("explain --json");
    let other = explained["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "other"))
        .expect("other in explain");
    assert_eq!(other["eligible"], false, "{explained}");
    assert!(
        other["reason"]
            .as_str()
            .is_some_and(|r| r.contains("paused") && r.contains("maintenance")),
        "{explained}"
    );
    // A bare payload works too.
    client.publish(&exchange, &key("run"), br#"{"check": "other"}"#);
    applied(&mut host, 3);
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("tick-while-paused"),
    );
    host.wait_for_event("no_check_due", &[("tick", "tick-while-paused")], WAIT);

    // Resume: the pending run request now runs it.
    client.publish_json(
        &exchange,
        &key("resume"),
        &control(&agent, "resume", json!({"check": "other"})),
    );
    applied(&mut host, 4);
    assert!(read_json(&state_path).get("paused").is_none());
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("tick-after-resume"),
    );
    run_requested(&mut host, "other", "tick-after-resume");
    client.wait_count(&observer, 2, WAIT);
    assert!(host.terminate(WAIT).success());
    let state = read_json(&state_path);
    assert!(
        state["checks"]["other"]["lastRun"]
            .as_u64()
            .is_some_and(|t| t > now),
        "{state}"
    );
    assert_eq!(client.count(&format!("agent.{agent}.dlq")), 0);
}

#[test]
fn handler_events_go_out_with_their_own_routing_key_after_confirms() {
    use heartbeat_host::bus::{Bus, BusOptions};
    use heartbeat_host::core::model::RunStatus;
    use heartbeat_host::{EmittedEvent, RunReport};

    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("emit", |agent| format!("agent.{agent}.#"));
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (ticks, _tick_rx) = tokio::sync::mpsc::channel(8);
        let (controls, _control_rx) = tokio::sync::mpsc::channel(8);
        let options = BusOptions {
            url: URL.into(),
            exchange: exchange.clone(),
            prefetch: 8,
            outbox_path: dir.path().join("o.outbox.jsonl"),
            outbox_max: 100,
            exclusive: false,
            results_key_prefix: None,
        };
        let bus = Bus::start(&options, &agent, ticks, controls).expect("bus");
        let deadline = Instant::now() + WAIT;
        while !bus.is_connected() {
            assert!(Instant::now() < deadline, "bus never connected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = RunReport {
            status: RunStatus::Failed,
            details: json!({"why": "stale"}),
            error: Some("backup too old".into()),
            duration_us: 1500,
            logs: Vec::new(),
            events: vec![EmittedEvent {
                event_type: format!("agent.{agent}.backup_age"),
                payload: json!({"ageHours": 30}),
            }],
            dropped_logs: 0,
        };
        let published = bus.publish_run(
            &json!({"event_id": "tick-e"}),
            "backups",
            "backup_age",
            &report,
            &heartbeat_host::core::soft_hard::Verdict {
                state: heartbeat_host::core::model::CheckHealth::Hard,
                attempt: 1,
                change: None,
            },
        );
        assert!(published.wait().await, "confirmed or spooled");
        bus.shutdown().await;
    });
    let events = client.drain(&observer);
    let keys: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("agent.{agent}.backup_age"),
            format!("agent.{agent}.check.completed")
        ]
    );
    assert_eq!(events[0].2["payload"], json!({"ageHours": 30}));
    assert_eq!(events[0].2["correlation_ids"], json!(["tick-e"]));
    assert_eq!(events[1].2["payload"]["error"], "backup too old");
    assert_eq!(events[1].2["payload"]["status"], "failed");
    assert!(
        !dir.path().join("o.outbox.jsonl").exists(),
        "nothing spooled"
    );
}

#[test]
fn a_tick_carrying_a_forged_own_header_is_handled_as_a_tick() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("forged", |agent| format!("agent.{agent}.check.completed"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &agent,
        json!({"due": {"cadenceMs": 0, "handler": "default"}}),
    );
    let mut host = start_connected(&config, &exchange, &["--tick-interval", "30s"]);

    // The agent header alone, as anyone who saw one of the host's events
    // could add it.
    let mut agent_only = FieldTable::default();
    agent_only.insert(
        heartbeat_host::bus::OWN_HEADER.into(),
        AMQPValue::LongString(LongString::from(agent.as_str())),
    );
    client.publish_with_headers(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("forged-agent-1"),
        agent_only,
    );
    // Its run done first: a tick handled while the check still runs from
    // the first would run nothing (correctly), and prove nothing here.
    client.wait_count(&observer, 1, WAIT);
    // The agent header with a made-up instance id.
    let mut made_up = FieldTable::default();
    made_up.insert(
        heartbeat_host::bus::OWN_HEADER.into(),
        AMQPValue::LongString(LongString::from(agent.as_str())),
    );
    made_up.insert(
        "x-heartbeat-host-instance".into(),
        AMQPValue::LongString(LongString::from("00000000-0000-4000-8000-000000000000")),
    );
    client.publish_with_headers(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("forged-instance-1"),
        made_up,
    );
    client.wait_count(&observer, 2, WAIT);
    wait_idle(&format!("agent.{agent}.inbox"));
    let events = client.drain(&observer);
    let ticks: BTreeSet<String> = events
        .iter()
        .map(|(_, _, e)| {
            e["correlation_ids"][0]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        ticks,
        BTreeSet::from([
            "forged-agent-1".to_string(),
            "forged-instance-1".to_string()
        ])
    );
    // The host's own events carry both headers.
    let (_, properties, _) = &events[0];
    let instance = header(properties, "x-heartbeat-host-instance");
    assert!(
        matches!(instance, Some(AMQPValue::LongString(s)) if s.as_bytes().len() == 36),
        "{properties:?}"
    );
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let stopped = records(&lines, "bus_stopped", &[]);
    let stopped = stopped.first().expect("a bus_stopped record");
    assert_eq!(number(stopped, "ticks"), Some(2), "{stopped}");
    // Only its own two result events, back through agent.{name}.#, were skipped.
    assert_eq!(number(stopped, "own_skipped"), Some(2), "{stopped}");
}

#[test]
fn tick_subcommand_publishes_ticks_in_the_consumers_envelope() {
    let _broker = shared_broker();
    let exchange = unique("ex");
    let client = Client::connect();
    client.exchange(&exchange);
    let observer = client.observer(&exchange, "system.heartbeat.tick");
    let _cleanup = Cleanup {
        queues: vec![observer.clone()],
        exchanges: vec![exchange.clone()],
    };
    let output = Command::new(support::host_bin())
        .args([
            "tick",
            "--amqp-url",
            URL,
            "--exchange",
            &exchange,
            "--count",
            "3",
        ])
        .env_remove("RABBIT_URL")
        .env_remove("EXCHANGE_NAME")
        .output()
        .expect("run tick");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 3);
    client.wait_count(&observer, 3, WAIT);
    let ticks = client.drain(&observer);
    let got: Vec<&str> = ticks
        .iter()
        .map(|(_, _, t)| t["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for (key, _, tick) in &ticks {
        assert_eq!(key, "system.heartbeat.tick");
        let keys: Vec<&str> = tick
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "event_id",
                "event_type",
                "timestamp",
                "version",
                "source",
                "payload"
            ]
        );
        assert_eq!(tick["event_type"], "system.heartbeat.tick");
        assert_eq!(tick["version"], "1.0.0");
        assert_eq!(tick["source"]["type"], "manual");
        assert!(
            tick["payload"]["tick_id"]
                .as_str()
                .is_some_and(|t| t.len() == 8),
            "{tick}"
        );
    }
}

#[test]
fn drop_in_8_tick_exits_quietly_and_an_unroutable_tick_is_one_readable_warning() {
    // lapin's I/O thread outliving the runtime logged `ERROR ... being
    // shutdown` on about 1 run in 17, and its warning for a returned
    // message dumped the tick's bytes. Twenty runs against an exchange no
    // queue is bound to: each says once, in words, what happened.
    let _broker = shared_broker();
    let exchange = unique("ex-unbound");
    let _cleanup = Cleanup {
        queues: vec![],
        exchanges: vec![exchange.clone()],
    };
    for run in 0..20 {
        let output = Command::new(support::host_bin())
            .args(["tick", "--amqp-url", URL, "--exchange", &exchange])
            .args(["--count", "2"])
            .env_remove("RABBIT_URL")
            .env_remove("EXCHANGE_NAME")
            .env_remove("LOG_LEVEL")
            .output()
            .expect("run tick");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "run {run}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines,
            [
                format!(
                    "heartbeat-host: 2 tick(s) published to {exchange} as system.heartbeat.tick"
                ),
                format!(
                    "heartbeat-host: warning: 2 tick(s) reached no queue (no agent inbox is bound to system.heartbeat.# on {exchange})"
                ),
            ],
            "run {run}"
        );
    }
}

#[test]
fn a_tick_still_running_stays_unacknowledged_while_later_ticks_are_acknowledged() {
    // Acks are batched with `multiple`: this pins that a later tick's ack
    // never takes in an earlier tick whose run is still going, and that it
    // is not held back behind it either.
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("slowack", |agent| format!("agent.{agent}.check.completed"));
    let inbox = format!("agent.{agent}.inbox");
    let dir = tempfile::tempdir().expect("tempdir");
    let handlers = support::handlers_with(dir.path(), "test_handler_hostile.wasm", "slow");
    let config = write_config(
        dir.path(),
        &agent,
        json!({"slow": {"cadenceMs": 0, "handler": "slow", "timeoutMs": 20000,
                        "meta": {"mode": "busy", "ms": 6000}}}),
    );
    let mut host = start_connected(
        &config,
        &exchange,
        &["--handlers", handlers.to_str().expect("utf-8")],
    );
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("slow-tick-1"),
    );
    host.wait_for_event("selected", &[("tick", "slow-tick-1")], WAIT);
    for n in 2..=4 {
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("slow-tick-{n}")),
        );
    }
    host.wait_for_event("no_check_due", &[("tick", "slow-tick-4")], WAIT);
    // Ticks 2-4 found the check running: acknowledged at once, while tick 1
    // stays unacknowledged until its run and its state are done.
    wait_queue_counts(&inbox, 0, 1);
    assert!(
        client.drain(&observer).is_empty(),
        "the slow run cannot have finished yet"
    );
    client.wait_count(&observer, 1, Duration::from_secs(20));
    wait_idle(&inbox);
}
