//! The broker's side of the consumer's wire: exchange, queues, arguments and bindings declared exactly as the consumer does; a queue the consumer made taken over; a plain AMQP tick run and answered; malformed messages dead-lettered.

use super::*;

#[test]
fn declares_the_consumers_exchange_queue_arguments_and_bindings_exactly() {
    let _broker = shared_broker();
    let agent = unique("topology");
    let _cleanup = Cleanup::agent(&agent, None);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    let watched = format!("heartbeat.{agent}-db.*");
    std::fs::write(
        &config,
        json!({"$schema": "heartbeat.v1", "agent": agent, "checks": {"ping": {"cadenceMs": 60000}},
               "watch": [watched]})
        .to_string(),
    )
    .expect("write config");
    let mut host = start_connected(&config, "bloodbank.events.v1", &[]);
    // A config warning has no event of its own: no line says it, anywhere.
    assert!(
        !host
            .lines()
            .iter()
            .any(|l| text(l).contains("unknown field")),
        "`watch` is known: {}",
        host.log()
    );

    let queues = ctl(&["list_queues", "name", "durable", "arguments"]);
    let inbox_line = format!(
        "agent.{agent}.inbox\ttrue\t[{{\"x-dead-letter-exchange\",[]}},{{\"x-dead-letter-routing-key\",\"agent.{agent}.dlq\"}}]"
    );
    assert!(
        queues.lines().any(|l| l == inbox_line),
        "{inbox_line}\nnot in\n{queues}"
    );
    let dlq_line = format!("agent.{agent}.dlq\ttrue\t[]");
    assert!(
        queues.lines().any(|l| l == dlq_line),
        "{dlq_line}\nnot in\n{queues}"
    );

    let bindings = ctl(&[
        "list_bindings",
        "source_name",
        "destination_name",
        "routing_key",
    ]);
    let mine: BTreeSet<&str> = bindings
        .lines()
        .filter(|l| {
            l.starts_with("bloodbank.events.v1\t")
                && l.contains(&format!("\tagent.{agent}.inbox\t"))
        })
        .collect();
    // The consumer's two, then the agent's sub-processes' beats and `watch`.
    let expected: BTreeSet<String> = [
        format!("agent.{agent}.#"),
        "system.heartbeat.#".to_string(),
        format!("heartbeat.{agent}.#"),
        watched.clone(),
    ]
    .into_iter()
    .map(|key| format!("bloodbank.events.v1\tagent.{agent}.inbox\t{key}"))
    .collect();
    assert_eq!(
        mine,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{bindings}"
    );

    let exchanges = ctl(&["list_exchanges", "name", "type", "durable"]);
    assert!(
        exchanges
            .lines()
            .any(|l| l == "bloodbank.events.v1\ttopic\ttrue"),
        "{exchanges}"
    );
    assert!(host.terminate(WAIT).success());
}

#[test]
fn takes_over_a_queue_the_consumer_created_and_drains_what_waits_in_it() {
    let _broker = shared_broker();
    let agent = unique("takeover");
    let exchange = unique("ex");
    let client = Client::connect();
    let observer;
    // The inbox's arguments as heartbeat-consumer (FastStream/aio-pika) declared them.
    let consumers_args = || {
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from(format!("agent.{agent}.dlq"))),
        );
        args
    };
    {
        client.exchange(&exchange);
        client.queue(&format!("agent.{agent}.dlq"), FieldTable::default());
        client.queue(&format!("agent.{agent}.inbox"), consumers_args());
        client.bind(
            &format!("agent.{agent}.inbox"),
            &exchange,
            &format!("agent.{agent}.#"),
        );
        client.bind(
            &format!("agent.{agent}.inbox"),
            &exchange,
            "system.heartbeat.#",
        );
        observer = client.observer(&exchange, &format!("agent.{agent}.check.completed"));
    }
    let mut cleanup = Cleanup::agent(&agent, Some(&exchange));
    cleanup.queues.push(observer.clone());
    // A tick waits in the queue before the host exists.
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("waiting-tick-1"),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 1000}}));
    let mut host = start_connected(&config, &exchange, &[]);
    client.wait_count(&observer, 1, WAIT);
    let events = client.drain(&observer);
    assert_eq!(events[0].2["correlation_ids"], json!(["waiting-tick-1"]));
    assert_eq!(client.count(&format!("agent.{agent}.inbox")), 0);
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    // A broker error (PRECONDITION_FAILED) may be in any record's message or fields.
    assert!(
        !lines.iter().any(|l| text(l).contains("PRECONDITION")),
        "{}",
        render(&lines)
    );
    // And back again: the consumer's own declaration of the inbox still
    // matches the queue the host used (a difference would be refused).
    client.queue(&format!("agent.{agent}.inbox"), consumers_args());
}

#[test]
fn a_plain_amqp_tick_runs_the_due_check_and_its_result_event_arrives() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("tick", |agent| format!("agent.{agent}.check.completed"));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &agent,
        json!({
            "due": {"cadenceMs": 1000, "handler": "default", "lastRun": 0},
            "later": {"cadenceMs": 3_600_000, "handler": "default", "lastRun": now_ms()}
        }),
    );
    let mut host = start_connected(&config, &exchange, &[]);

    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("readme-tick-1"),
    );
    client.wait_count(&observer, 1, WAIT);
    // The cron's payload shape, and traffic the host does not act on.
    let cron = json!({
        "event_id": "cron-tick-2", "event_type": "system.heartbeat.tick",
        "timestamp": "2025-06-01T12:01:00Z", "version": "1.0.0", "source": {"app": "cron"},
        "correlation_ids": [],
        "payload": {"tick": 2, "timestamp": "2025-06-01T12:01:00Z", "quarter": "Q2", "dayOfWeek": 0, "epochMs": 1}
    });
    client.publish_json(&exchange, "system.heartbeat.tick", &cron);
    client.publish_json(
        &exchange,
        "system.heartbeat.status",
        &json!({"anything": true}),
    );
    client.publish_json(
        &exchange,
        &format!("agent.{agent}.note"),
        &json!({"hello": 1}),
    );
    host.wait_for_event("no_check_due", &[("tick", "cron-tick-2")], WAIT);
    wait_idle(&format!("agent.{agent}.inbox"));

    let events = client.drain(&observer);
    assert_eq!(events.len(), 1, "{events:?}");
    let (key, properties, event) = &events[0];
    assert_eq!(key, &format!("agent.{agent}.check.completed"));
    assert_eq!(
        event["event_type"],
        json!(format!("agent.{agent}.check.completed"))
    );
    assert_eq!(event["version"], "1.0.0");
    assert_eq!(event["correlation_ids"], json!(["readme-tick-1"]));
    assert!(
        event["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00")),
        "{event}"
    );
    assert_eq!(event["source"]["app"], "heartbeat-host");
    let event_id = event["event_id"].as_str().expect("event_id");
    assert_eq!(event_id.len(), 36, "a UUID: {event_id}");
    let payload = &event["payload"];
    assert_eq!(payload["check"], "due");
    assert_eq!(payload["handler"], "default");
    assert_eq!(payload["status"], "success");
    assert!(
        payload["durationMs"].as_f64().is_some_and(|d| d > 0.0),
        "{payload}"
    );
    assert_eq!(payload["details"], json!({}));
    assert!(payload.get("error").is_none(), "{payload}");
    let keys: Vec<&str> = payload
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "check",
            "handler",
            "status",
            "state",
            "attempt",
            "durationMs",
            "details"
        ]
    );
    assert_eq!(
        (&payload["state"], &payload["attempt"]),
        (&json!("ok"), &json!(0))
    );
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some(event_id)
    );
    assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert!(header(properties, heartbeat_host::bus::OWN_HEADER).is_some());

    // Everything that reached the inbox was acknowledged; nothing dead-lettered.
    assert_eq!(client.count(&format!("agent.{agent}.inbox")), 0);
    assert_eq!(client.count(&format!("agent.{agent}.dlq")), 0);
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let stopped = records(&lines, "bus_stopped", &[]);
    assert_eq!(stopped.len(), 1, "{}", render(&lines));
    // Its own result event came back through agent.{name}.# and was skipped.
    assert_eq!(number(stopped[0], "own_skipped"), Some(1), "{}", stopped[0]);
    assert_eq!(number(stopped[0], "ignored"), Some(2), "{}", stopped[0]);
    assert_eq!(number(stopped[0], "rejected"), Some(0), "{}", stopped[0]);
    assert_eq!(
        records(&lines, "selected", &[("check", "due")]).len(),
        1,
        "{}",
        render(&lines)
    );
    assert!(records(&lines, "selected", &[("check", "later")]).is_empty());
    assert!(!records(&lines, "connection_closed", &[]).is_empty());
    let state = read_json(&dir.path().join("heartbeat.state.json"));
    assert_eq!(state["checks"]["due"]["lastStatus"], "success");
}

#[test]
fn malformed_messages_land_in_the_dlq_logged_once_each_and_the_host_carries_on() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("dlq", |agent| format!("agent.{agent}.check.completed"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 0}}));
    let mut host = start_connected(&config, &exchange, &[]);

    let tick = "system.heartbeat.tick";
    let ctl_key = |verb: &str| format!("agent.{agent}.control.{verb}");
    let bad: Vec<(String, Vec<u8>, &str)> = vec![
        (
            tick.into(),
            b"this is not json".to_vec(),
            "body is not JSON",
        ),
        (tick.into(), b"[1, 2]".to_vec(), "body is a JSON array"),
        (
            tick.into(),
            br#"{"event_type": "system.heartbeat.tick", "payload": {}}"#.to_vec(),
            "field `event_id` is missing",
        ),
        (
            ctl_key("pause"),
            control(&agent, "pause", json!({"check": "no_such_check"}))
                .to_string()
                .into_bytes(),
            "unknown check `no_such_check`",
        ),
        (
            ctl_key("resume"),
            control(&agent, "resume", json!({"name": "ping"}))
                .to_string()
                .into_bytes(),
            "field `payload.check` is missing",
        ),
        (
            ctl_key("reboot"),
            control(&agent, "reboot", json!({"check": "ping"}))
                .to_string()
                .into_bytes(),
            "unknown control `reboot`",
        ),
    ];
    for (key, body, _) in &bad {
        client.publish(&exchange, key, body);
    }
    let dlq = format!("agent.{agent}.dlq");
    client.wait_count(&dlq, bad.len() as u32, WAIT);
    // The host is alive and still runs checks. The inbox is handled in
    // order, each refusal logged before its reject: once the good tick's
    // run is in the log, every refusal that was to be logged is too.
    let sentinel = "good-tick-after-bad-ones";
    client.publish_json(&exchange, tick, &readme_tick(sentinel));
    client.wait_count(&observer, 1, WAIT);
    let lines = host.wait_for("the run of the tick after the bad ones", WAIT, |l| {
        l.iter().any(|r| run_on(r, sentinel))
    });
    let refused = records(&lines, "message_refused", &[]);
    assert_eq!(
        refused.len(),
        bad.len(),
        "each logged once:\n{}",
        shown(&refused)
    );
    // The reason is in the message only.
    for (key, _, reason) in &bad {
        assert_eq!(
            refused
                .iter()
                .filter(|r| message(r).contains(reason))
                .count(),
            1,
            "{key}: {reason} in\n{}",
            shown(&refused)
        );
    }
    let dead = client.drain(&dlq);
    assert_eq!(dead.len(), bad.len());
    for (_, properties, _) in &dead {
        assert!(
            header(properties, "x-death").is_some(),
            "dead-lettered by the broker"
        );
    }
    assert_eq!(dead[0].2, Value::String("this is not json".into()));
    assert_eq!(client.count(&format!("agent.{agent}.inbox")), 0);
    assert!(host.terminate(WAIT).success());
}
