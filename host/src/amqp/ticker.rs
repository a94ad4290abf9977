//! `heartbeat-host tick`: publishes heartbeat ticks in the consumer's
//! envelope, the one-line replacement for the consumer README's snippet.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use super::envelope::{self, TICK_KEY};
use super::{BusError, connect};

/// What `tick` sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// The `event_id` of every tick the broker confirmed.
    pub event_ids: Vec<String>,
    /// Ticks the exchange routed to no queue (no agent is bound).
    pub unroutable: usize,
}

/// Publishes `count` ticks to `exchange` (declared topic and durable, as the
/// consumer's snippet does) with publisher confirms.
pub async fn publish_ticks(url: &str, exchange: &str, count: u32) -> Result<TickReport, BusError> {
    let uri = connect::parse_url(url)?;
    let amqp = |e: lapin::Error| BusError::Broker(format!("{}: {e}", connect::redact(url)));
    let connection = connect::connect(&uri, "heartbeat-host tick")
        .await
        .map_err(amqp)?;
    let channel = connection.create_channel().await.map_err(amqp)?;
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
        .map_err(amqp)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(amqp)?;
    let source = super::source("manual");
    let mut report = TickReport {
        event_ids: Vec::new(),
        unroutable: 0,
    };
    let mut confirms = Vec::new();
    for _ in 0..count {
        let event_id = uuid::Uuid::new_v4().to_string();
        let tick_id: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(8)
            .collect();
        let body = envelope::tick(&event_id, &tick_id, jiff::Timestamp::now(), &source);
        let bytes = serde_json::to_vec(&body).map_err(|e| BusError::Broker(e.to_string()))?;
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(event_id.as_str().into())
            .with_type(TICK_KEY.into());
        let confirm = channel
            .basic_publish(
                exchange,
                TICK_KEY,
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &bytes,
                properties,
            )
            .await
            .map_err(amqp)?;
        confirms.push((event_id, confirm));
    }
    for (event_id, confirm) in confirms {
        match confirm.await.map_err(amqp)? {
            Confirmation::Ack(returned) => {
                if returned.is_some() {
                    report.unroutable += 1;
                }
                report.event_ids.push(event_id);
            }
            Confirmation::NotRequested => report.event_ids.push(event_id),
            Confirmation::Nack(_) => {
                return Err(BusError::Broker(format!(
                    "the broker refused tick {event_id}"
                )));
            }
        }
    }
    let _ = connect::close(connection, 200, "ticks sent").await;
    Ok(report)
}
