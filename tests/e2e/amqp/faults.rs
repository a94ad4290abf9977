//! The environment failing under the host: a thousand queued ticks drained in bounded memory; the broker stopped and restarted mid-run, no result event lost.

use super::outbox::read_outbox_records;
use super::*;

#[test]
fn a_thousand_queued_ticks_drain_with_bounded_memory() {
    let _broker = shared_broker();
    let agent = unique("drain");
    let exchange = unique("ex");
    let client = Client::connect();
    client.exchange(&exchange);
    let inbox = format!("agent.{agent}.inbox");
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from("")),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(format!("agent.{agent}.dlq"))),
    );
    client.queue(&format!("agent.{agent}.dlq"), FieldTable::default());
    client.queue(&inbox, args);
    client.bind(&inbox, &exchange, "system.heartbeat.#");
    let _cleanup = Cleanup::agent(&agent, Some(&exchange));
    let publish_ticks = |n: usize, prefix: &str| {
        for i in 0..n {
            client.publish_json(
                &exchange,
                "system.heartbeat.tick",
                &readme_tick(&format!("{prefix}-{i:04}")),
            );
        }
    };
    publish_ticks(1000, "first");
    assert_eq!(client.count(&inbox), 1000);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 0}}));
    let started = Instant::now();
    let mut host = start_connected(&config, &exchange, &["--prefetch", "32"]);
    let pid = host.pid();
    // Manual acks and a prefetch of 32: the broker hands over at most 32 at once.
    let consumers = ctl(&[
        "list_consumers",
        "queue_name",
        "ack_required",
        "prefetch_count",
    ]);
    assert!(
        consumers.lines().any(|l| l == format!("{inbox}\ttrue\t32")),
        "{consumers}"
    );
    let drained = |client: &Client, host: &mut RunningHost, what: &str, max_unacked: &mut u32| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = ctl(&[
                "list_queues",
                "name",
                "messages_ready",
                "messages_unacknowledged",
            ]);
            let row = out
                .lines()
                .find(|l| l.starts_with(&format!("{inbox}\t")))
                .unwrap_or_else(|| panic!("{inbox} not listed: {out}"))
                .to_string();
            let cols: Vec<u32> = row
                .split('\t')
                .skip(1)
                .map(|c| c.parse().expect("count"))
                .collect();
            *max_unacked = (*max_unacked).max(cols[1]);
            if cols == [0, 0] && client.count(&inbox) == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not drained: {row}; log tail:\n{}",
                {
                    let lines = host.lines();
                    render(&lines[lines.len().saturating_sub(5)..])
                }
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut max_unacked = 0;
    drained(&client, &mut host, "first 1000", &mut max_unacked);
    let first_drain = started.elapsed();
    let peak_after_1000 = vm_kib(pid, "VmHWM");
    publish_ticks(1000, "second");
    drained(&client, &mut host, "second 1000", &mut max_unacked);
    let peak_after_2000 = vm_kib(pid, "VmHWM");
    eprintln!(
        "1000 queued ticks drained in {first_drain:?} (host start included); peak RSS {peak_after_1000} KiB after 1000, {peak_after_2000} KiB after 2000; max unacked seen {max_unacked}"
    );
    assert!(
        max_unacked <= 32,
        "prefetch bounds what is in flight: {max_unacked}"
    );
    assert!(
        peak_after_1000 < 200 * 1024,
        "peak RSS {peak_after_1000} KiB"
    );
    assert!(
        peak_after_2000 <= peak_after_1000 + 16 * 1024,
        "memory grows with the backlog: {peak_after_1000} KiB -> {peak_after_2000} KiB"
    );
    let lines = host.lines();
    let ticks_seen = lines
        .iter()
        .filter(|l| tick_handled(l))
        .filter_map(|l| field(l, "tick"))
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(ticks_seen, 2000, "every tick handled once");
    assert!(host.terminate(WAIT).success());
    assert_eq!(client.count(&format!("agent.{agent}.dlq")), 0);
}

/// A `Vm*` line of /proc/PID/status, in KiB.
fn vm_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} not in {status}"))
}

/// Restarts the broker when dropped, so a failing test never leaves it down.
struct RestartBrokerOnDrop;

impl Drop for RestartBrokerOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["120", "rabbitmqctl", "start_app"])
            .status();
        let _ = Command::new("timeout")
            .args(["120", "rabbitmqctl", "await_startup", "--timeout", "110"])
            .status();
    }
}

#[test]
fn broker_stopped_and_restarted_mid_run_reconnects_timer_fills_in_and_no_result_event_is_lost() {
    let _broker = exclusive_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("restart", |agent| format!("agent.{agent}.check.completed"));
    drop(client);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 0}}));
    let outbox = dir.path().join("heartbeat.outbox.jsonl");
    let mut host = start_connected(&config, &exchange, &["--tick-interval", "300ms"]);

    // Bus ticks before the outage.
    let client = Client::connect();
    for i in 0..5 {
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("before-{i}")),
        );
    }
    host.wait_for("runs on bus ticks", WAIT, |l| {
        l.iter().any(|x| run_on(x, "before-"))
            && l.iter()
                .filter(|x| tick_handled(x) && tick_starts(x, "before-"))
                .count()
                >= 5
    });
    // A burst still being worked through when the broker goes: runs whose
    // confirms are lost with the connection, ticks redelivered after it.
    let burst: Vec<Value> = (0..200)
        .map(|i| readme_tick(&format!("burst-{i:03}")))
        .collect();
    client.publish_burst(&exchange, "system.heartbeat.tick", &burst);
    drop(client);

    let restart = RestartBrokerOnDrop;
    ctl(&["stop_app"]);
    let lines = host.wait_for_event("broker_lost", &[], WAIT);
    let lost_at = lines.len();
    // The host's own timer keeps the check running meanwhile; events wait in the outbox.
    host.wait_for("timer runs while the broker is down", WAIT, |l| {
        l[lost_at..].iter().filter(|x| run_on(x, "timer-")).count() >= 3
    });
    assert!(
        read_outbox_records(&outbox) >= 3,
        "events wait in the outbox"
    );
    ctl(&["start_app"]);
    ctl(&["await_startup", "--timeout", "110"]);
    drop(restart);
    let lines = host.wait_for("the reconnect", WAIT, |l| {
        !records(l, "broker_back", &[]).is_empty() && !records(l, "outbox_drained", &[]).is_empty()
    });
    let back_at = lines
        .iter()
        .position(|l| event(l) == Some("broker_back"))
        .expect("broker_back record");

    // Bus ticks after the outage; the timer stays quiet while connected.
    let client = Client::connect();
    for i in 0..5 {
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("after-{i}")),
        );
    }
    host.wait_for("runs on the new bus ticks", WAIT, |l| {
        l.iter()
            .filter(|x| tick_handled(x) && tick_starts(x, "after-"))
            .count()
            >= 5
    });
    // Over more than three of its intervals, the timer stays quiet.
    let unreachable = [("cause", "broker_unreachable")];
    host.holds_for(
        Duration::from_millis(1000),
        "no timer tick while connected",
        |l| records(&l[back_at..], "fallback_tick", &unreachable).is_empty(),
    );
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let timer_after_back: Vec<&Value> = records(&lines[back_at..], "fallback_tick", &unreachable);
    assert!(
        timer_after_back.is_empty(),
        "timer ticks while connected:\n{}",
        shown(&timer_after_back)
    );

    // Every run's result event reached the exchange at least once.
    let runs: Vec<&Value> = records(&lines, "run_finished", &[]);
    let events = client.drain(&observer);
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, event) in &events {
        *by_id
            .entry(event["event_id"].as_str().expect("event_id").to_string())
            .or_default() += 1;
    }
    let duplicates: usize = by_id.values().map(|n| n - 1).sum();
    eprintln!(
        "runs {}, result events received {}, distinct {}, duplicates {duplicates}",
        runs.len(),
        events.len(),
        by_id.len()
    );
    assert_eq!(
        by_id.len(),
        runs.len(),
        "one distinct result event per run, none lost"
    );
    // Each bus tick that ran has its result, correlated by the tick's event_id.
    let correlated: BTreeSet<String> = events
        .iter()
        .filter_map(|(_, _, e)| e["correlation_ids"][0].as_str().map(str::to_string))
        .collect();
    for run in &runs {
        let tick = field(run, "tick").expect("tick field");
        if !tick.starts_with("timer-") {
            assert!(correlated.contains(tick), "no result event for {tick}");
        }
    }
    assert!(
        runs.iter().any(|r| run_on(r, "timer-")),
        "the timer filled in"
    );
    assert_eq!(read_outbox_records(&outbox), 0, "outbox empty at the end");
}
