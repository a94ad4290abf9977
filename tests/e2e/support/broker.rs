//! The real RabbitMQ at 127.0.0.1:5672 (guest/guest), as the tests reach
//! it: a plain AMQP client (lapin), `rabbitmqctl`, names unique to a test,
//! the lock that keeps every other broker test off while one stops it, and
//! the host started on a broker.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};

use super::{RunningHost, start_run};

pub(crate) const URL: &str = "amqp://guest:guest@127.0.0.1:5672/";
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Shared by every broker test; taken exclusively by the one that stops it.
pub(crate) static BROKER: RwLock<()> = RwLock::new(());

pub(crate) fn shared_broker() -> RwLockReadGuard<'static, ()> {
    BROKER.read().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn exclusive_broker() -> RwLockWriteGuard<'static, ()> {
    BROKER.write().unwrap_or_else(|p| p.into_inner())
}

/// `heartbeat-host run --config CONFIG --amqp-url URL --exchange EXCHANGE
/// EXTRA…`, not waited on: for a host on another URL (no broker there, or
/// other parameters) or one that is not to log `connected` (a standby).
pub(crate) fn start_on_broker(
    config: &Path,
    url: &str,
    exchange: &str,
    extra: &[&str],
) -> RunningHost {
    let broker = ["--amqp-url", url, "--exchange", exchange];
    start_run(config, &[&broker[..], extra].concat(), &[])
}

/// [`start_on_broker`] on the real broker ([`URL`]), once it has logged
/// `connected`.
pub(crate) fn start_connected(config: &Path, exchange: &str, extra: &[&str]) -> RunningHost {
    let mut host = start_on_broker(config, URL, exchange, extra);
    host.wait_for_event("connected", &[], WAIT);
    host
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
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
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
            .block_on(heartbeat_host::bus::declare_exchange(&self.channel, name))
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
pub(crate) fn observed_agent(
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
