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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};

use crate::support::{
    self, RunningHost, event, field, message, number, read_json, records, render, render_line, text,
};

pub(crate) const URL: &str = "amqp://guest:guest@127.0.0.1:5672/";
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Shared by every broker test; taken exclusively by the one that stops it.
static BROKER: RwLock<()> = RwLock::new(());

pub(crate) fn shared_broker() -> RwLockReadGuard<'static, ()> {
    BROKER.read().unwrap_or_else(|p| p.into_inner())
}

fn exclusive_broker() -> RwLockWriteGuard<'static, ()> {
    BROKER.write().unwrap_or_else(|p| p.into_inner())
}

/// A name no other test (or earlier run) uses.
pub(crate) fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "e2e-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `rabbitmqctl ARGS`, bounded; its stdout.
pub(crate) fn ctl(args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("120")
        .arg("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A plain AMQP client: what a Bloodbank producer or consumer would be.
pub(crate) struct Client {
    rt: tokio::runtime::Runtime,
    connection: Connection,
    channel: Channel,
}

impl Client {
    /// Connects, retrying for a while (the broker may be starting).
    pub(crate) fn connect() -> Client {
        Client::try_connect(WAIT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects, retrying until `timeout`.
    pub(crate) fn try_connect(timeout: Duration) -> Result<Client, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        let (connection, channel) = loop {
            let attempt = rt.block_on(async {
                let properties = ConnectionProperties::default()
                    .with_executor(tokio_executor_trait::Tokio::current())
                    .with_reactor(tokio_reactor_trait::Tokio::current());
                let connection =
                    Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", properties)
                        .await?;
                let channel = connection.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                Ok::<_, lapin::Error>((connection, channel))
            });
            match attempt {
                Ok(pair) => break pair,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("cannot reach RabbitMQ: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        };
        Ok(Client {
            rt,
            connection,
            channel,
        })
    }

    pub(crate) fn exchange(&self, name: &str) {
        self.rt
            .block_on(self.channel.exchange_declare(
                name,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            ))
            .expect("exchange.declare");
    }

    pub(crate) fn queue(&self, name: &str, arguments: FieldTable) {
        self.rt
            .block_on(self.channel.queue_declare(
                name,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            ))
            .expect("queue.declare");
    }

    pub(crate) fn bind(&self, queue: &str, exchange: &str, key: &str) {
        self.rt
            .block_on(self.channel.queue_bind(
                queue,
                exchange,
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            ))
            .expect("queue.bind");
    }

    /// A durable queue bound to `key` on `exchange`, to watch what the host sends.
    pub(crate) fn observer(&self, exchange: &str, key: &str) -> String {
        let name = unique("observer");
        self.queue(&name, FieldTable::default());
        self.bind(&name, exchange, key);
        name
    }

    /// Publishes and waits for the broker's confirm.
    pub(crate) fn publish(&self, exchange: &str, key: &str, body: &[u8]) {
        let confirm = self.rt.block_on(async {
            self.channel
                .basic_publish(
                    exchange,
                    key,
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await?
                .await
        });
        assert!(confirm.expect("publish").is_ack(), "broker nacked");
    }

    /// Publishes persistent messages back to back, then waits for the confirms.
    pub(crate) fn publish_burst(&self, exchange: &str, key: &str, bodies: &[Value]) {
        self.rt.block_on(async {
            let mut confirms = Vec::new();
            for body in bodies {
                let confirm = self
                    .channel
                    .basic_publish(
                        exchange,
                        key,
                        BasicPublishOptions::default(),
                        body.to_string().as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .expect("publish");
                confirms.push(confirm);
            }
            for confirm in confirms {
                assert!(confirm.await.expect("confirm").is_ack(), "broker nacked");
            }
        });
    }

    pub(crate) fn publish_json(&self, exchange: &str, key: &str, body: &Value) {
        self.publish(exchange, key, body.to_string().as_bytes());
    }

    /// Publishes `body` with the AMQP `headers` and waits for the confirm.
    pub(crate) fn publish_with_headers(
        &self,
        exchange: &str,
        key: &str,
        body: &Value,
        headers: FieldTable,
    ) {
        let confirm = self.rt.block_on(async {
            self.channel
                .basic_publish(
                    exchange,
                    key,
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    BasicProperties::default()
                        .with_content_type("application/json".into())
                        .with_headers(headers),
                )
                .await?
                .await
        });
        assert!(confirm.expect("publish").is_ack(), "broker nacked");
    }

    /// Messages ready in `queue`.
    pub(crate) fn count(&self, queue: &str) -> u32 {
        self.rt
            .block_on(self.channel.queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ))
            .expect("passive queue.declare")
            .message_count()
    }

    /// Waits until `queue` holds at least `n` ready messages.
    pub(crate) fn wait_count(&self, queue: &str, n: u32, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.count(queue);
            if count >= n {
                return count;
            }
            assert!(
                Instant::now() < deadline,
                "{queue} holds {count} message(s), expected {n} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Takes (and acks) every message in `queue`: (routing key, properties, body).
    pub(crate) fn drain(&self, queue: &str) -> Vec<(String, BasicProperties, Value)> {
        let mut out = Vec::new();
        loop {
            let got = self
                .rt
                .block_on(
                    self.channel
                        .basic_get(queue, BasicGetOptions { no_ack: true }),
                )
                .expect("basic.get");
            let Some(message) = got else { return out };
            let body = serde_json::from_slice(&message.delivery.data).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&message.delivery.data).into_owned())
            });
            out.push((
                message.delivery.routing_key.to_string(),
                message.delivery.properties.clone(),
                body,
            ));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.connection.close(200, "test done"));
    }
}

/// Deletes the queues and exchanges a test made, even when it fails.
pub(crate) struct Cleanup {
    pub(crate) queues: Vec<String>,
    pub(crate) exchanges: Vec<String>,
}

impl Cleanup {
    pub(crate) fn agent(agent: &str, exchange: Option<&str>) -> Cleanup {
        Cleanup {
            queues: vec![format!("agent.{agent}.inbox"), format!("agent.{agent}.dlq")],
            exchanges: exchange.map(str::to_string).into_iter().collect(),
        }
    }
}

/// A test's own agent and exchange, a client with the exchange declared,
/// and a queue observing the routing key `key(agent)`: (agent, exchange,
/// client, observer queue, cleanup that removes all of them on drop).
fn observed_agent(
    prefix: &str,
    key: impl FnOnce(&str) -> String,
) -> (String, String, Client, String, Cleanup) {
    let agent = unique(prefix);
    let exchange = unique("ex");
    let client = Client::connect();
    client.exchange(&exchange);
    let observer = client.observer(&exchange, &key(&agent));
    let mut cleanup = Cleanup::agent(&agent, Some(&exchange));
    cleanup.queues.push(observer.clone());
    (agent, exchange, client, observer, cleanup)
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Never panics: this may run while a failed test unwinds.
        let Ok(client) = Client::try_connect(WAIT) else {
            return;
        };
        for queue in &self.queues {
            let _ = client.rt.block_on(
                client
                    .channel
                    .queue_delete(queue, QueueDeleteOptions::default()),
            );
        }
        for exchange in &self.exchanges {
            let _ = client.rt.block_on(
                client
                    .channel
                    .exchange_delete(exchange, ExchangeDeleteOptions::default()),
            );
        }
    }
}

/// The consumer README's tick, as its Python snippet sends it.
pub(crate) fn readme_tick(event_id: &str) -> Value {
    json!({
        "event_id": event_id,
        "event_type": "system.heartbeat.tick",
        "timestamp": "2025-06-01T12:00:00.000000+00:00",
        "version": "1.0.0",
        "source": {"host": "local", "type": "manual", "app": "test"},
        "payload": {"tick_id": &event_id[..event_id.len().min(8)]}
    })
}

/// A control message in the envelope.
fn control(agent: &str, verb: &str, payload: Value) -> Value {
    json!({
        "event_id": unique("ctl"),
        "event_type": format!("agent.{agent}.control.{verb}"),
        "timestamp": "2025-06-01T12:00:00+00:00",
        "version": "1.0.0",
        "source": {"host": "local", "type": "manual", "app": "test"},
        "payload": payload
    })
}

fn write_config(dir: &Path, agent: &str, checks: Value) -> std::path::PathBuf {
    let path = dir.join("heartbeat.json");
    let config = json!({"$schema": "heartbeat.v1", "agent": agent, "checks": checks});
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json"))
        .expect("write config");
    path
}

fn start_host(config: &Path, exchange: &str, extra: &[&str]) -> RunningHost {
    let mut args = vec![
        "run",
        "--config",
        config.to_str().expect("utf-8"),
        "--amqp-url",
        URL,
        "--exchange",
        exchange,
    ];
    args.extend_from_slice(extra);
    let mut host = RunningHost::start(&args, &[]);
    host.wait_for_event("connected", &[], WAIT);
    host
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn header<'a>(properties: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
}

/// Waits until `queue` has nothing ready and nothing unacknowledged.
fn wait_idle(queue: &str) {
    wait_queue_counts(queue, 0, 0);
}

/// Waits until `queue` holds exactly `ready` ready and `unacked`
/// unacknowledged messages.
fn wait_queue_counts(queue: &str, ready: u32, unacked: u32) {
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
fn wait_for_beat(client: &Client, beats: &str, body: &str, mut between: impl FnMut(&Client)) {
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

fn runs_finished(lines: &[Value]) -> usize {
    records(lines, "run_finished", &[]).len()
}

/// Whether the `tick` field of `line` starts with `prefix`.
fn tick_starts(line: &Value, prefix: &str) -> bool {
    field(line, "tick").is_some_and(|t| t.starts_with(prefix))
}

/// Whether `line` is a `run_finished` of a tick whose id starts with `prefix`.
fn run_on(line: &Value, prefix: &str) -> bool {
    event(line) == Some("run_finished") && tick_starts(line, prefix)
}

/// Whether `line` says how a tick was handled: a check selected, or none due.
fn tick_handled(line: &Value) -> bool {
    matches!(event(line), Some("selected" | "no_check_due"))
}

/// Records, one readable line each.
fn shown(lines: &[&Value]) -> String {
    lines
        .iter()
        .map(|l| render_line(l))
        .collect::<Vec<_>>()
        .join("\n")
}

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
    let mut host = start_host(&config, "bloodbank.events.v1", &[]);
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
    let mut host = start_host(&config, &exchange, &[]);
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
    let mut host = start_host(&config, &exchange, &[]);

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
    let mut host = start_host(&config, &exchange, &[]);

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
    // The host is alive and still runs checks.
    client.publish_json(&exchange, tick, &readme_tick("good-tick-after-bad-ones"));
    client.wait_count(&observer, 1, WAIT);
    std::thread::sleep(Duration::from_millis(500));

    let lines = host.lines();
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
    let mut host = start_host(&config, &exchange, &[]);
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
            &heartbeat_host::core::states::Verdict {
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
fn outbox_over_its_bound_drops_the_oldest_counted_and_publishes_the_rest_in_order_later() {
    let _broker = shared_broker();
    let agent = unique("outbox");
    let exchange = unique("ex");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 0}}));
    let outbox = dir.path().join("heartbeat.outbox.jsonl");

    // No broker at this address: the host runs on its own timer (degraded)
    // and its events go to the outbox, which keeps the newest 3.
    let mut offline = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/",
            "--exchange",
            &exchange,
            "--tick-interval",
            "150ms",
            "--outbox-max",
            "3",
        ],
        &[],
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
    let mut online = start_host(&config, &exchange, &["--tick-interval", "30s"]);
    online.wait_for_event("outbox_drained", &[], WAIT);
    client.wait_count(&observer, 3, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    let events = client.drain(&observer);
    let got: Vec<String> = events
        .iter()
        .map(|(_, _, e)| e["event_id"].as_str().expect("event_id").to_string())
        .collect();
    assert_eq!(
        got, expected,
        "in order, nothing else (the timer is idle while connected)"
    );
    assert!(online.terminate(WAIT).success());
    assert!(!outbox.exists() || read_outbox_records(&outbox) == 0);
}

fn read_outbox_records(path: &Path) -> usize {
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

/// Asserts the host never lost its connection: one `connected`, no
/// `broker_lost`, no `broker_back` (no reconnect loop).
fn assert_connected_once(lines: &[Value]) {
    assert_eq!(
        records(lines, "connected", &[]).len(),
        1,
        "{}",
        render(lines)
    );
    assert!(
        records(lines, "broker_lost", &[]).is_empty()
            && records(lines, "broker_back", &[]).is_empty(),
        "{}",
        render(lines)
    );
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
    let mut host = start_host(&config, &exchange, &["--tick-interval", "30s"]);
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

    // Stay connected a little longer: no reconnect loop.
    std::thread::sleep(Duration::from_millis(1500));
    let lines = host.lines();
    assert_connected_once(&lines);
    assert_eq!(
        records(&lines, "outbox_dead_lettered", &[]).len(),
        1,
        "logged once: {}",
        render(&lines)
    );
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let stopped = records(&lines, "bus_stopped", &[]);
    let stopped = stopped.first().expect("a bus_stopped record");
    assert_eq!(number(stopped, "dead_lettered"), Some(1), "{stopped}");

    // A restart sends nothing again, the bad event included.
    let mut again = start_host(&config, &exchange, &["--tick-interval", "30s"]);
    client.publish_json(
        &exchange,
        "system.heartbeat.tick",
        &readme_tick("after-restart-1"),
    );
    client.wait_count(&observer, 1, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let events = client.drain(&observer);
    assert_eq!(events.len(), 1, "{:?}", event_ids(&events));
    assert_eq!(events[0].2["correlation_ids"], json!(["after-restart-1"]));
    let lines = again.lines();
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
    let mut host = start_host(&config, &exchange, &["--tick-interval", "30s"]);
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
    let mut host = RunningHost::start(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--amqp-url",
            &url,
            "--exchange",
            &exchange,
            "--tick-interval",
            "30s",
        ],
        &[],
    );
    client.wait_count(&observer, 2, WAIT);
    host.wait_for_event("outbox_dead_lettered", &[("event_id", "big-1")], WAIT);
    std::thread::sleep(Duration::from_millis(1000));
    let events = client.drain(&observer);
    assert_eq!(event_ids(&events), ["good-1", "good-2"]);
    let letter = the_one_dead_letter(&dead, &outbox, "big-1");
    let reason = letter["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("3 sessions in a row") && reason.contains("PRECONDITION"),
        "{reason}"
    );
    // Three losses to convict it, then none: no reconnect loop.
    let lines = host.lines();
    assert_eq!(
        records(&lines, "broker_lost", &[]).len(),
        3,
        "{}",
        render(&lines)
    );
    assert!(host.terminate(WAIT).success());
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
    let mut host = start_host(&config, &exchange, &["--tick-interval", "30s"]);

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
    let mut host = start_host(
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
    let mut host = start_host(&config, &exchange, &["--prefetch", "32"]);
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
    let mut host = start_host(&config, &exchange, &["--tick-interval", "300ms"]);

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
    std::thread::sleep(Duration::from_millis(1000));
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let timer_after_back: Vec<&Value> = records(
        &lines[back_at..],
        "fallback_tick",
        &[("cause", "broker_unreachable")],
    );
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

/// The host's own beats (beatit convention) on `heartbeat.<process>`: `start/<warmup>`
/// once connected, `beat/<period>` while healthy, `degraded/<period>` while the config
/// on disk is invalid, and `stop` on SIGTERM, with exactly those raw bodies.
#[test]
fn the_host_beats_start_beat_degraded_and_stop_on_the_bus() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("beats", |_| "heartbeat.#".to_string());

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &agent,
        json!({"later": {"cadenceMs": 3_600_000, "handler": "default", "lastRun": now_ms()}}),
    );
    let mut host = start_host(
        &config,
        &exchange,
        &["--beat-period", "1s", "--beat-warmup", "2s"],
    );
    // start + two beats.
    client.wait_count(&observer, 3, Duration::from_secs(20));
    // An invalid config on disk: degraded from the next beat.
    std::fs::write(
        &config,
        r#"{"$schema": "heartbeat.v1", "checks": {"a": {"cadenceMs": "soon"}}}"#,
    )
    .expect("write config");
    host.wait_for_event("config_refused", &[], WAIT);
    let before = client.count(&observer);
    client.wait_count(&observer, before + 2, Duration::from_secs(20));
    let status = host.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let messages = client.drain(&observer);
    let key = format!("heartbeat.heartbeat-host.{agent}");
    let bodies: Vec<String> = messages
        .iter()
        .map(|(routing_key, properties, body)| {
            assert_eq!(routing_key, &key);
            assert!(header(properties, heartbeat_host::bus::OWN_HEADER).is_some());
            match body {
                Value::String(s) => s.clone(),
                other => panic!("not a raw beat body: {other}"),
            }
        })
        .collect();
    assert_eq!(
        bodies.first().map(String::as_str),
        Some("start/2"),
        "{bodies:?}"
    );
    assert_eq!(
        bodies.last().map(String::as_str),
        Some("stop"),
        "{bodies:?}"
    );
    let middle = &bodies[1..bodies.len() - 1];
    let first_degraded = middle
        .iter()
        .position(|b| b == "degraded/1")
        .unwrap_or_else(|| panic!("no degraded/1: {bodies:?}"));
    assert!(first_degraded >= 2, "{bodies:?}");
    assert!(
        middle[..first_degraded].iter().all(|b| b == "beat/1"),
        "{bodies:?}"
    );
    assert!(
        middle[first_degraded..].iter().all(|b| b == "degraded/1"),
        "{bodies:?}"
    );
}

/// Drives `tests/scripts/beatit_publisher.py` (the real `beatit` package over pika).
struct BeatitProcess {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl BeatitProcess {
    fn start(exchange: &str, process: &str) -> BeatitProcess {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scripts/beatit_publisher.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([URL, exchange, process])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 (tests/run.sh installs beatit and pika)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        BeatitProcess {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command and waits for its confirm (`ok`).
    fn send(&mut self, command: &str) {
        use std::io::{BufRead as _, Write as _};
        writeln!(self.stdin, "{command}").expect("write to the beatit driver");
        self.stdin.flush().expect("flush");
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .expect("read the beatit driver");
        assert_eq!(answer.trim(), "ok", "beatit driver: {command}: {answer:?}");
    }
}

impl Drop for BeatitProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Beats published by the real beatit package take a sub-process through
/// starting → alive → degraded → late → dead and → stopped, as the
/// `sub_health` built-in sees it through the host's table; a malformed body
/// is acknowledged (not dead-lettered) and the host's own beats are not tracked.
#[test]
fn beatit_beats_drive_the_sub_process_table_seen_by_sub_health() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("subs", |agent| format!("agent.{agent}.sub_health"));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    // The watched-by-pattern process lives outside heartbeat.<agent>.#.
    let other = format!("{agent}-other");
    std::fs::write(
        &config,
        json!({"$schema": "heartbeat.v1", "agent": agent,
               "checks": {"subs": {"cadenceMs": 0, "handler": "sub_health"}},
               "watch": [format!("heartbeat.{other}")]})
        .to_string(),
    )
    .expect("write config");
    let live = dir.path().join("host.liveness.json");
    let mut host = start_host(
        &config,
        &exchange,
        &[
            "--beat-period",
            "1s",
            "--liveness-file",
            live.to_str().expect("utf-8"),
            "--liveness-period",
            "100ms",
        ],
    );
    let worker = format!("{agent}.worker");
    let mut beats = BeatitProcess::start(&exchange, &worker);
    let mut watched = BeatitProcess::start(&exchange, &other);
    let mut n = 0;
    // One bus tick; the sub_health event's processes, by name.
    let mut tick = || -> BTreeMap<String, String> {
        n += 1;
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("subs-{n}-{agent}")),
        );
        client.wait_count(&observer, 1, WAIT);
        let events = client.drain(&observer);
        assert_eq!(events.len(), 1, "{events:?}");
        let payload = &events[0].2["payload"];
        payload["processes"]
            .as_array()
            .unwrap_or_else(|| panic!("no processes: {payload}"))
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let status = |table: &BTreeMap<String, String>, name: &str| {
        table
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {table:?}"))
    };

    beats.send("start 2");
    watched.send("start 60");
    let table = tick();
    assert_eq!(status(&table, &worker), "starting");
    assert_eq!(status(&table, &other), "starting");
    assert!(
        !table.keys().any(|k| k.starts_with("heartbeat-host.")),
        "the host's own beats are not tracked: {table:?}"
    );
    assert_eq!(table.len(), 2, "{table:?}");

    beats.send("beat 2");
    assert_eq!(status(&tick(), &worker), "alive");
    // Malformed: counted, acknowledged, not dead-lettered, the entry unchanged.
    beats.send("raw pulse/5");
    beats.send("degraded 2");
    let degraded_at = Instant::now();
    assert_eq!(status(&tick(), &worker), "degraded");
    // Next message due within 2 s × 1.5; dead after 3 × 2 s.
    std::thread::sleep(Duration::from_millis(4000).saturating_sub(degraded_at.elapsed()));
    assert_eq!(status(&tick(), &worker), "late");
    std::thread::sleep(Duration::from_millis(7000).saturating_sub(degraded_at.elapsed()));
    assert_eq!(status(&tick(), &worker), "dead");
    beats.send("stop");
    let table = tick();
    assert_eq!(status(&table, &worker), "stopped");
    assert_eq!(status(&table, &other), "starting");

    let dlq = format!("agent.{agent}.dlq");
    assert_eq!(
        client.count(&dlq),
        0,
        "a malformed beat is not dead-lettered"
    );

    // `heartbeat-host status` shows the table from the liveness file.
    let deadline = Instant::now() + WAIT;
    let shown = loop {
        let out = Command::new(support::host_bin())
            .args(["status", live.to_str().expect("utf-8")])
            .output()
            .expect("status");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success()
            && text
                .lines()
                .any(|l| l.starts_with(&worker) && l.contains(" stopped "))
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed {worker} stopped: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        shown.starts_with(&format!("agent {agent} (pid ")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&other) && l.contains(" starting ") && l.contains("start/60")),
        "{shown}"
    );
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let stopped = records(&lines, "bus_stopped", &[]);
    let stopped = stopped.last().expect("a bus_stopped record");
    assert_eq!(number(stopped, "malformed_beats"), Some(1), "{stopped}");
}

/// The tick-source monitor: connected but no bus tick within 2 × the tick
/// interval → degraded (the beats say so) and the host's own timer takes
/// over; bus ticks coming back silence the timer again, logged both ways.
#[test]
fn a_silent_tick_source_degrades_and_the_timer_takes_over_until_bus_ticks_return() {
    let _broker = shared_broker();
    let (agent, exchange, client, beats, _cleanup) = observed_agent("silent", |agent| {
        format!("heartbeat.heartbeat-host.{agent}")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 0}}));
    let mut host = start_host(
        &config,
        &exchange,
        &["--tick-interval", "500ms", "--beat-period", "1s"],
    );
    let lines = host.wait_for("the timer taking over", WAIT, |l| {
        !records(l, "tick_source_silent", &[]).is_empty()
            && l.iter().filter(|x| run_on(x, "timer-")).count() >= 2
    });
    assert!(
        !records(&lines, "fallback_tick", &[("cause", "tick_source_silent")]).is_empty(),
        "{}",
        render(&lines)
    );
    // The host's beats say degraded.
    wait_for_beat(&client, &beats, "degraded/1", |_| {});

    // Bus ticks again, every 200 ms: the timer falls silent.
    let mut i = 0;
    let mut tick = |client: &Client| {
        i += 1;
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("back-{i}")),
        );
    };
    tick(&client);
    let lines = host.wait_for_event("bus_ticks_back", &[], WAIT);
    let back_at = lines.len();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        tick(&client);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Healthy again: beats, not degraded.
    client.drain(&beats);
    wait_for_beat(&client, &beats, "beat/1", tick);
    let lines = host.lines();
    let timer_after_back: Vec<&Value> = records(&lines[back_at..], "fallback_tick", &[]);
    assert!(
        timer_after_back.is_empty(),
        "timer ticks while bus ticks flow:\n{}",
        shown(&timer_after_back)
    );
    assert!(host.terminate(WAIT).success());
}

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
    let mut host = start_host(
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
    let active = start_host(&active_config, &exchange, &["--exclusive"]);
    let mut standby = RunningHost::start(
        &[
            "run",
            "--config",
            standby_config.to_str().expect("utf-8"),
            "--amqp-url",
            URL,
            "--exchange",
            &exchange,
            "--exclusive",
        ],
        &[],
    );
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
    assert!(
        records(&standby.lines(), "state_reloaded", &[]).len() == 1,
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
    let mut host = start_host(
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
