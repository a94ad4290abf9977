//! End to end against the real RabbitMQ at 127.0.0.1:5672 (guest/guest):
//! the real binary, a plain AMQP client (lapin) on the other side, and
//! `rabbitmqctl` to inspect and to stop and start the broker.
//!
//! Isolation: every test has its own agent name and (but for the one that
//! checks the default) its own exchange, so ticks of one test never reach
//! another's inbox; queues and exchanges a test creates are deleted when it
//! ends. The test that stops the broker takes [`BROKER`] exclusively, every
//! other test shares it, so nothing else talks to the broker while it is
//! down; a guard restarts the broker even when that test fails.
//!
//! Delivery guarantee pinned here: result events are **at least once**.
//! Every run's result event reaches the exchange (none lost across a broker
//! restart); an event whose confirm was lost with the connection is sent
//! again from the outbox with the same `event_id`, so a consumer can drop
//! duplicates by `event_id`.
//!
//! What the host did is read from its JSON log records (`event` and fields).

//!
//! One file per feature: `topology`, `control`, `outbox`, `faults`,
//! `beats`, `states`; the broker helpers are `support::broker`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::{Value, json};

use crate::support::{
    self, RunningHost, event, field, message, number, read_json, records, render, render_line,
    text, write_config,
};

pub(crate) use crate::support::broker::*;

/// A control message in the envelope.
pub(crate) fn control(agent: &str, verb: &str, payload: Value) -> Value {
    json!({
        "event_id": unique("ctl"),
        "event_type": format!("agent.{agent}.control.{verb}"),
        "timestamp": "2025-06-01T12:00:00+00:00",
        "version": "1.0.0",
        "source": {"host": "local", "type": "manual", "app": "test"},
        "payload": payload
    })
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

pub(crate) fn header<'a>(properties: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
}

/// Waits until `queue` has nothing ready and nothing unacknowledged.
pub(crate) fn wait_idle(queue: &str) {
    wait_queue_counts(queue, 0, 0);
}

/// Waits until `queue` holds exactly `ready` ready and `unacked`
/// unacknowledged messages.
pub(crate) fn wait_queue_counts(queue: &str, ready: u32, unacked: u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = ctl(&[
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ]);
        if out
            .lines()
            .any(|l| l == format!("{queue}\t{ready}\t{unacked}"))
        {
            return;
        }
        let now: Vec<&str> = out.lines().filter(|l| l.starts_with(queue)).collect();
        assert!(
            Instant::now() < deadline,
            "{queue}: expected {ready} ready, {unacked} unacknowledged; now {}",
            now.join("; ")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until a beat whose body is `body` arrives on the observer queue
/// `beats`, calling `between` before each look (every 200 ms).
pub(crate) fn wait_for_beat(
    client: &Client,
    beats: &str,
    body: &str,
    mut between: impl FnMut(&Client),
) {
    let deadline = Instant::now() + WAIT;
    loop {
        between(client);
        let bodies: Vec<Value> = client.drain(beats).into_iter().map(|(_, _, b)| b).collect();
        if bodies.contains(&Value::String(body.into())) {
            return;
        }
        assert!(Instant::now() < deadline, "no {body} beat: {bodies:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn runs_finished(lines: &[Value]) -> usize {
    records(lines, "run_finished", &[]).len()
}

/// Whether the `tick` field of `line` starts with `prefix`.
pub(crate) fn tick_starts(line: &Value, prefix: &str) -> bool {
    field(line, "tick").is_some_and(|t| t.starts_with(prefix))
}

/// Whether `line` is a `run_finished` of a tick whose id starts with `prefix`.
pub(crate) fn run_on(line: &Value, prefix: &str) -> bool {
    event(line) == Some("run_finished") && tick_starts(line, prefix)
}

/// Whether `line` says how a tick was handled: a check selected, or none due.
pub(crate) fn tick_handled(line: &Value) -> bool {
    matches!(event(line), Some("selected" | "no_check_due"))
}

/// Records, one readable line each.
pub(crate) fn shown(lines: &[&Value]) -> String {
    lines
        .iter()
        .map(|l| render_line(l))
        .collect::<Vec<_>>()
        .join("\n")
}

mod beats;
mod control;
mod faults;
mod outbox;
mod states;
mod topology;
