//! What the host declares on the broker, exactly as heartbeat-consumer does,
//! so a host can take over the consumer's queue without touching the broker:
//! the topic exchange, `agent.{name}.inbox` with the consumer's
//! dead-letter arguments, the dead-letter queue and the consumer's two
//! bindings, plus the bindings for the beats of watched processes.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

/// Every name the host uses on the broker for one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The topic exchange (`EXCHANGE_NAME`).
    pub exchange: String,
    /// `agent.{name}.inbox`.
    pub inbox: String,
    /// `agent.{name}.dlq`.
    pub dlq: String,
    /// The inbox's binding keys: `agent.{name}.#`, `system.heartbeat.#`,
    /// `heartbeat.{name}.#` (the agent's sub-processes' beats) and the
    /// config's `watch` patterns.
    pub bindings: Vec<String>,
}

impl Names {
    /// The names for `agent` on `exchange`, watching `watch` beyond
    /// `heartbeat.{agent}.#` (duplicates bound once).
    pub fn new(agent: &str, exchange: &str, watch: &[String]) -> Names {
        let mut bindings = vec![
            format!("agent.{agent}.#"),
            "system.heartbeat.#".to_string(),
            format!("heartbeat.{agent}.#"),
        ];
        for pattern in watch {
            if !bindings.contains(pattern) {
                bindings.push(pattern.clone());
            }
        }
        Names {
            exchange: exchange.to_string(),
            inbox: format!("agent.{agent}.inbox"),
            dlq: format!("agent.{agent}.dlq"),
            bindings,
        }
    }

    /// The bindings that bring messages at a pace of their own (ticks,
    /// beats, watched patterns): all but `agent.{name}.#`, which carries
    /// only what is addressed to the agent and stays bound while its queue
    /// waits for a later consumer.
    pub fn paced_bindings(&self) -> &[String] {
        self.bindings.get(1..).unwrap_or_default()
    }

    /// The inbox's arguments, exactly the consumer's: rejected messages go
    /// through the default exchange to the dead-letter queue.
    pub fn inbox_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from(self.dlq.as_str())),
        );
        args
    }
}

/// Declares `exchange` as heartbeat-consumer does: a durable topic exchange
/// (idempotent; the broker refuses it, closing the channel, when an exchange
/// of that name exists with another type or durability). The one
/// declaration of the exchange: the bus, `tick`, the benches and the tests
/// all declare it here.
pub async fn declare_exchange(channel: &Channel, exchange: &str) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Declares the exchange ([`declare_exchange`]), both queues and the
/// bindings (idempotent).
pub async fn declare(channel: &Channel, names: &Names) -> Result<(), lapin::Error> {
    let durable = |mut o: QueueDeclareOptions| {
        o.durable = true;
        o
    };
    declare_exchange(channel, &names.exchange).await?;
    channel
        .queue_declare(
            &names.dlq,
            durable(QueueDeclareOptions::default()),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            &names.inbox,
            durable(QueueDeclareOptions::default()),
            names.inbox_arguments(),
        )
        .await?;
    for key in &names.bindings {
        channel
            .queue_bind(
                &names.inbox,
                &names.exchange,
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// What [`unbind_paced`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbound {
    /// The paced bindings are gone; the queue and `agent.{name}.#` stay.
    Unbound(Vec<String>),
    /// Another consumer still reads the inbox (a second host serving the
    /// agent): its bindings stay, or its ticks would stop.
    StillConsumed(u32),
}

/// Unbinds the inbox's paced bindings ([`Names::paced_bindings`]), so
/// that the queue of an agent no longer served stops filling with ticks
/// and beats; left alone while another consumer reads the queue. Call
/// after this host's consumer is cancelled. Serving the agent again
/// binds them again ([`declare`]).
pub async fn unbind_paced(channel: &Channel, names: &Names) -> Result<Unbound, lapin::Error> {
    let queue = channel
        .queue_declare(
            &names.inbox,
            QueueDeclareOptions {
                passive: true,
                durable: true,
                ..QueueDeclareOptions::default()
            },
            names.inbox_arguments(),
        )
        .await?;
    if queue.consumer_count() > 0 {
        return Ok(Unbound::StillConsumed(queue.consumer_count()));
    }
    for key in names.paced_bindings() {
        channel
            .queue_unbind(&names.inbox, &names.exchange, key, FieldTable::default())
            .await?;
    }
    Ok(Unbound::Unbound(names.paced_bindings().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arguments_are_the_consumers() {
        let names = Names::new("cack", "bloodbank.events.v1", &[]);
        assert_eq!(names.inbox, "agent.cack.inbox");
        assert_eq!(names.dlq, "agent.cack.dlq");
        assert_eq!(
            names.bindings,
            ["agent.cack.#", "system.heartbeat.#", "heartbeat.cack.#"]
        );
        assert_eq!(
            names.paced_bindings(),
            ["system.heartbeat.#", "heartbeat.cack.#"]
        );
        let watching = Names::new(
            "cack",
            "x",
            &["heartbeat.db.*".to_string(), "heartbeat.cack.#".to_string()],
        );
        assert_eq!(
            watching.bindings,
            [
                "agent.cack.#",
                "system.heartbeat.#",
                "heartbeat.cack.#",
                "heartbeat.db.*"
            ]
        );
        let args = names.inbox_arguments();
        let inner = args.inner();
        assert_eq!(inner.len(), 2);
        assert_eq!(
            inner.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("".into()))
        );
        assert_eq!(
            inner.get("x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("agent.cack.dlq".into()))
        );
    }
}
