//! The outbox: its bound, and events the broker cannot carry, nacks or closes the channel on, dead-lettered while the events behind them go out.

use super::*;

#[test]
fn outbox_over_its_bound_drops_the_oldest_counted_and_publishes_the_rest_in_order_later() {
    let _broker = shared_broker();
    let agent = unique("outbox");
    let exchange = unique("ex");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 0}}));
    let outbox = dir.path().join("heartbeat.outbox.jsonl");

    // No broker at this address: the host runs on its own timer (degraded)
    // and its events go to the outbox, which keeps the newest 3.
    let mut offline = start_on_broker(
        &config,
        "amqp://guest:guest@127.0.0.1:1/",
        &exchange,
        &["--tick-interval", "150ms", "--outbox-max", "3"],
    );
    let lines = offline.wait_for("six runs and a full outbox", WAIT, |l| {
        runs_finished(l) >= 6 && !records(l, "outbox_full", &[]).is_empty()
    });
    assert!(
        !records(&lines, "broker_unreachable", &[]).is_empty(),
        "{}",
        render(&lines)
    );
    assert!(
        !records(&lines, "fallback_tick", &[("cause", "broker_unreachable")]).is_empty(),
        "{}",
        render(&lines)
    );
    assert!(offline.terminate(WAIT).success());
    let lines = offline.lines();
    let runs = runs_finished(&lines);
    let text = std::fs::read_to_string(&outbox).expect("outbox file");
    let mut file_lines = text.lines();
    let header: Value = serde_json::from_str(file_lines.next().expect("header")).expect("json");
    let waiting: Vec<Value> = file_lines
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(waiting.len(), 3, "{text}");
    assert_eq!(header["dropped"].as_u64(), Some(runs as u64 - 3), "{text}");
    let full = records(&lines, "outbox_full", &[]);
    assert!(
        full.iter()
            .any(|l| number(l, "outbox_dropped_total") == Some(runs as u64 - 3)),
        "{}",
        shown(&full)
    );
    let stopped = records(&lines, "bus_stopped", &[]);
    let stopped = stopped.first().expect("a bus_stopped record");
    assert_eq!(
        number(stopped, "outbox_dropped_total"),
        Some(runs as u64 - 3),
        "{stopped}"
    );
    let expected: Vec<String> = waiting
        .iter()
        .map(|r| r["eventId"].as_str().expect("eventId").to_string())
        .collect();

    // With the broker: the three waiting events go out first, in order.
    let client = Client::connect();
    client.exchange(&exchange);
    let observer = client.observer(&exchange, &format!("agent.{agent}.check.completed"));
    let mut cleanup = Cleanup::agent(&agent, Some(&exchange));
    cleanup.queues.push(observer.clone());
    // A long interval: the tick-source monitor (silent after 2 × the
    // interval without a bus tick) must not start the timer during this test.
    let mut online = start_connected(&config, &exchange, &["--tick-interval", "30s"]);
    online.wait_for_event("outbox_drained", &[], WAIT);
    // A bus tick after them: its result goes out behind whatever the host
    // had to send, so once it is in, anything else would be too.
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("after-the-outbox"),
    );
    client.wait_count(&observer, 4, WAIT);
    let events = client.drain(&observer);
    let got = event_ids(&events);
    assert_eq!(
        got[..3],
        expected,
        "in order, nothing else (the timer is idle while connected): {got:?}"
    );
    assert_eq!(events.len(), 4, "{got:?}");
    assert_eq!(events[3].2["correlation_ids"], json!(["after-the-outbox"]));
    assert!(online.terminate(WAIT).success());
    assert!(!outbox.exists() || read_outbox_records(&outbox) == 0);
}

pub(super) fn read_outbox_records(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

/// One outbox record line as the host writes it (`routingKey`, `eventId`,
/// `body`), its body a result-like envelope.
fn outbox_record(routing_key: &str, event_id: &str) -> String {
    let body = json!({
        "event_id": event_id,
        "event_type": routing_key,
        "timestamp": "2025-06-01T12:00:00.000000+00:00",
        "version": "1.0.0",
        "source": {"host": "local", "type": "agent", "app": "heartbeat-host"},
        "correlation_ids": [],
        "payload": {"n": event_id}
    });
    let mut line =
        json!({"routingKey": routing_key, "eventId": event_id, "body": body.to_string()})
            .to_string();
    line.push('\n');
    line
}

/// The broker's `max_message_size` set to a value for as long as this
/// lives, restored when dropped (even when the test fails). Broker-wide:
/// hold [`exclusive_broker`] with it.
struct BrokerMaxMessageSize {
    was: String,
}

impl BrokerMaxMessageSize {
    fn set(bytes: u64) -> BrokerMaxMessageSize {
        let out = ctl(&["eval", "application:get_env(rabbit, max_message_size)."]);
        let was = out
            .trim()
            .strip_prefix("{ok,")
            .and_then(|v| v.strip_suffix('}'))
            .unwrap_or("134217728")
            .to_string();
        ctl(&[
            "eval",
            &format!("application:set_env(rabbit, max_message_size, {bytes})."),
        ]);
        BrokerMaxMessageSize { was }
    }
}

impl Drop for BrokerMaxMessageSize {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args([
                "120",
                "rabbitmqctl",
                "eval",
                &format!(
                    "application:set_env(rabbit, max_message_size, {}).",
                    self.was
                ),
            ])
            .status();
    }
}

/// Writes an outbox file holding `records` (routing key, event id), oldest first.
fn write_outbox(path: &Path, records: &[(String, String)]) {
    let mut text = "{\"heartbeatOutbox\":1,\"dropped\":0}\n".to_string();
    for (key, id) in records {
        text.push_str(&outbox_record(key, id));
    }
    std::fs::write(path, text).expect("write outbox");
}

/// In `dir`: a config for `agent` whose one check runs the built-in
/// `default` on every tick, and beside its state file an outbox holding
/// `first` (routing key, event id) and behind it one `check.completed`
/// event per id of `then`. Returns the config, the outbox and the path of
/// its dead-letter file.
fn outbox_with(
    dir: &Path,
    agent: &str,
    first: (&str, &str),
    then: &[&str],
) -> (PathBuf, PathBuf, PathBuf) {
    let config = write_config(
        dir,
        agent,
        json!({"ping": {"cadenceMs": 0, "handler": "default"}}),
    );
    let outbox = dir.join("heartbeat.outbox.jsonl");
    let completed = format!("agent.{agent}.check.completed");
    let mut records = vec![(first.0.to_string(), first.1.to_string())];
    records.extend(then.iter().map(|id| (completed.clone(), id.to_string())));
    write_outbox(&outbox, &records);
    (config, outbox, dir.join("heartbeat.outbox.dead.jsonl"))
}

/// The one record of the dead-letter file at `path`, which must be for
/// `event_id`, with the outbox it sits beside emptied.
fn the_one_dead_letter(path: &Path, outbox: &Path, event_id: &str) -> Value {
    let letters: Vec<Value> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("dead letter record"))
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["eventId"], event_id);
    assert_eq!(read_outbox_records(outbox), 0, "the outbox emptied");
    letters[0].clone()
}

/// The `event_id`s of drained events, in arrival order.
fn event_ids(events: &[(String, BasicProperties, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, _, e)| e["event_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether the host never lost its connection: one `connected`, no
/// `broker_lost`, no `broker_back` (no reconnect loop).
fn connected_once(lines: &[Value]) -> bool {
    records(lines, "connected", &[]).len() == 1
        && records(lines, "broker_lost", &[]).is_empty()
        && records(lines, "broker_back", &[]).is_empty()
}

/// Asserts [`connected_once`], with the log.
fn assert_connected_once(lines: &[Value]) {
    assert!(connected_once(lines), "{}", render(lines));
}

#[test]
fn an_event_the_broker_cannot_carry_is_dead_lettered_and_the_outbox_keeps_flowing() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("poison", |agent| format!("agent.{agent}.check.completed"));
    let dir = tempfile::tempdir().expect("tempdir");
    // An older host (or a handler without the emit-side check) left an
    // event whose routing key AMQP cannot carry (a shortstr: 255 bytes)
    // first in line, with valid events behind it.
    let prefix = format!("agent.{agent}.");
    let long_key = format!("{prefix}{}", "x".repeat(300 - prefix.len()));
    assert_eq!(long_key.len(), 300);
    let (config, outbox, dead) = outbox_with(
        dir.path(),
        &agent,
        (&long_key, "bad-1"),
        &["good-1", "good-2", "good-3"],
    );

    // A long interval: the host's own timer stays idle while connected.
    let mut host = start_connected(&config, &exchange, &["--tick-interval", "30s"]);
    client.wait_count(&observer, 3, WAIT);
    host.wait_for_event("outbox_dead_lettered", &[("event_id", "bad-1")], WAIT);
    // Later runs' result events get through too.
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("after-dead-1"),
    );
    client.wait_count(&observer, 4, WAIT);
    let events = client.drain(&observer);
    let ids = event_ids(&events);
    assert_eq!(ids[..3], ["good-1", "good-2", "good-3"], "{ids:?}");
    assert_eq!(events.len(), 4, "{ids:?}");
    assert_eq!(events[3].2["correlation_ids"], json!(["after-dead-1"]));

    // The bad one is in the dead-letter file beside the outbox, with why.
    let letter = the_one_dead_letter(&dead, &outbox, "bad-1");
    assert_eq!(letter["routingKey"], json!(long_key));
    assert!(letter["body"].is_string(), "{letter}");
    let reason = letter["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("routing key"), "{letter}");

    // Stay connected a little longer: no reconnect loop, the dead letter
    // logged once.
    host.holds_for(
        Duration::from_millis(1500),
        "one connection, one dead letter",
        |l| connected_once(l) && records(l, "outbox_dead_lettered", &[]).len() == 1,
    );
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let stopped = records(&lines, "bus_stopped", &[]);
    let stopped = stopped.first().expect("a bus_stopped record");
    assert_eq!(number(stopped, "dead_lettered"), Some(1), "{stopped}");

    // A restart sends nothing again, the bad event included.
    let mut again = start_connected(&config, &exchange, &["--tick-interval", "30s"]);
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("after-restart-1"),
    );
    // Anything sent again would go out before this tick's result.
    client.wait_count(&observer, 1, WAIT);
    let events = client.drain(&observer);
    assert_eq!(events.len(), 1, "{:?}", event_ids(&events));
    assert_eq!(events[0].2["correlation_ids"], json!(["after-restart-1"]));
    let lines = again.wait_for("the run of the tick after the restart", WAIT, |l| {
        l.iter().any(|r| run_on(r, "after-restart-1"))
    });
    assert_connected_once(&lines);
    assert!(
        records(&lines, "outbox_dead_lettered", &[]).is_empty(),
        "{}",
        render(&lines)
    );
    the_one_dead_letter(&dead, &outbox, "bad-1");
    assert!(again.terminate(WAIT).success());
}

#[test]
fn an_event_the_broker_nacks_is_dead_lettered_and_the_events_behind_it_go_out() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, mut cleanup) =
        observed_agent("nack", |agent| format!("agent.{agent}.check.completed"));
    // A queue that holds nothing and refuses what would overflow it: the
    // broker nacks every publish routed to it.
    let full = unique("full");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    client.queue(&full, args);
    cleanup.queues.push(full.clone());
    let refused_key = format!("agent.{agent}.refused");
    client.bind(&full, &exchange, &refused_key);

    let dir = tempfile::tempdir().expect("tempdir");
    let (config, outbox, dead) = outbox_with(
        dir.path(),
        &agent,
        (&refused_key, "nacked-1"),
        &["good-1", "good-2"],
    );
    let mut host = start_connected(&config, &exchange, &["--tick-interval", "30s"]);
    client.wait_count(&observer, 2, WAIT);
    host.wait_for_event("outbox_dead_lettered", &[("event_id", "nacked-1")], WAIT);
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("after-nack-1"),
    );
    client.wait_count(&observer, 3, WAIT);
    let events = client.drain(&observer);
    let ids = event_ids(&events);
    assert_eq!(ids[..2], ["good-1", "good-2"], "{ids:?}");
    assert_eq!(events[2].2["correlation_ids"], json!(["after-nack-1"]));
    let letter = the_one_dead_letter(&dead, &outbox, "nacked-1");
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nack")),
        "{letter}"
    );
    assert_connected_once(&host.lines());
    assert!(host.terminate(WAIT).success());
}

#[test]
fn an_event_the_broker_keeps_closing_the_channel_on_is_dead_lettered_as_poison() {
    // The broker refuses bodies over 4 KiB (closing the publishing channel,
    // 406 PRECONDITION_FAILED) while the host would send up to 1 MiB: the
    // host's own check lets the big event through, so only the broker's
    // closes can tell it is poison.
    let _broker = exclusive_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("toobig", |agent| format!("agent.{agent}.check.completed"));
    let _limit = BrokerMaxMessageSize::set(4096);
    let dir = tempfile::tempdir().expect("tempdir");
    let completed = format!("agent.{agent}.check.completed");
    let (config, outbox, dead) = outbox_with(
        dir.path(),
        &agent,
        (&completed, "big-1"),
        &["good-1", "good-2"],
    );
    // Make big-1's body 8 KiB.
    let text = std::fs::read_to_string(&outbox).expect("outbox");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut big: Value = serde_json::from_str(&lines[1]).expect("record");
    let mut body: Value = serde_json::from_str(big["body"].as_str().expect("body")).expect("body");
    body["payload"]["pad"] = json!("x".repeat(8192));
    big["body"] = json!(body.to_string());
    lines[1] = big.to_string();
    std::fs::write(&outbox, lines.join("\n") + "\n").expect("write outbox");

    let url = format!("{URL}?max_message_size=1048576");
    let mut host = start_on_broker(&config, &url, &exchange, &["--tick-interval", "30s"]);
    client.wait_count(&observer, 2, WAIT);
    host.wait_for_event("outbox_dead_lettered", &[("event_id", "big-1")], WAIT);
    // A bus tick after it: its result goes out behind whatever the outbox
    // still held, so once it is in, anything else would be too.
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("after-big-1"),
    );
    client.wait_count(&observer, 3, WAIT);
    let events = client.drain(&observer);
    assert_eq!(event_ids(&events)[..2], ["good-1", "good-2"]);
    assert_eq!(events.len(), 3, "{:?}", event_ids(&events));
    assert_eq!(events[2].2["correlation_ids"], json!(["after-big-1"]));
    let letter = the_one_dead_letter(&dead, &outbox, "big-1");
    let reason = letter["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("3 sessions in a row") && reason.contains("PRECONDITION"),
        "{reason}"
    );
    // Three losses to convict it, then none: no reconnect loop.
    host.holds_for(Duration::from_millis(1000), "three broker losses", |l| {
        records(l, "broker_lost", &[]).len() == 3
    });
    assert!(host.terminate(WAIT).success());
}
