//! `heartbeat-host tick`: publishes heartbeat ticks in the consumer's
//! envelope, the one-line replacement for the consumer README's snippet,
//! and a load driver fast enough not to be the bottleneck of a throughput
//! measurement: publishes go out in batches (one wake of lapin's I/O thread
//! per batch) and at most `in_flight` of them await their confirm at once,
//! so a million ticks hold a bounded window, not a million futures.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::{BasicProperties, Channel};

use super::envelope::{self, TICK_KEY};
use super::{BusError, connect, topology};

/// Publishes whose confirm may be awaited at once by default: the window
/// of heartbeat-consumer's Python driver (`tick_throughput.py`).
pub const DEFAULT_IN_FLIGHT: usize = 1000;

/// Most publishes queued together before any is awaited.
const BATCH: usize = 128;

/// What `tick` sent.
#[derive(Debug, Clone, PartialEq)]
pub struct TickReport {
    /// Ticks the broker confirmed.
    pub confirmed: u64,
    /// Ticks the exchange routed to no queue (no agent is bound).
    pub unroutable: u64,
    /// From the first publish to the last confirm.
    pub elapsed: Duration,
    /// This process's CPU (user + system) over the same span, when
    /// `/proc/self/stat` could be read.
    pub cpu: Option<Duration>,
}

impl TickReport {
    /// Confirmed ticks per second of [`TickReport::elapsed`].
    pub fn ticks_per_s(&self) -> f64 {
        self.confirmed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The process's CPU per confirmed tick, in microseconds.
    pub fn cpu_us_per_tick(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.confirmed > 0).then(|| cpu.as_secs_f64() * 1e6 / self.confirmed as f64)
    }
}

/// Publishes `count` ticks to `exchange` (declared topic and durable, as the
/// consumer's snippet does) with publisher confirms, at most `in_flight`
/// (at least 1) unconfirmed at a time. `confirmed` is called with each
/// tick's `event_id` once the broker confirmed it, in publishing order.
pub async fn publish_ticks(
    url: &str,
    exchange: &str,
    count: u32,
    in_flight: usize,
    mut confirmed: impl FnMut(&str),
) -> Result<TickReport, BusError> {
    let uri = connect::parse_url(url)?;
    let amqp = |e: lapin::Error| BusError::Broker(format!("{}: {e}", connect::redact(url)));
    let connection = connect::connect(&uri, "heartbeat-host tick")
        .await
        .map_err(amqp)?;
    let channel = connection.create_channel().await.map_err(amqp)?;
    topology::declare_exchange(&channel, exchange)
        .await
        .map_err(amqp)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(amqp)?;
    let in_flight = in_flight.max(1);
    let batch_size = BATCH.min(in_flight);
    let source = super::source("manual");
    let mut report = TickReport {
        confirmed: 0,
        unroutable: 0,
        elapsed: Duration::ZERO,
        cpu: None,
    };
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut window: VecDeque<(String, PublisherConfirm)> = VecDeque::with_capacity(in_flight);
    let mut left = count as usize;
    while left > 0 {
        // Room for a whole batch: confirms come back in order, so waiting
        // for the oldest frees the window from its front.
        while window.len() + batch_size > in_flight {
            if let Some((event_id, confirm)) = window.pop_front() {
                settle(&event_id, confirm.await.map_err(amqp)?, &mut report)?;
                confirmed(&event_id);
            }
        }
        let take = batch_size.min(left);
        let ticks: Vec<(String, Vec<u8>)> = (0..take)
            .map(|_| {
                let event_id = uuid::Uuid::new_v4().to_string();
                let tick_id: String = uuid::Uuid::new_v4()
                    .simple()
                    .to_string()
                    .chars()
                    .take(8)
                    .collect();
                let body = envelope::tick(&event_id, &tick_id, jiff::Timestamp::now(), &source);
                let bytes =
                    serde_json::to_vec(&body).map_err(|e| BusError::Broker(e.to_string()))?;
                Ok((event_id, bytes))
            })
            .collect::<Result<_, BusError>>()?;
        let sent = publish_batch(&channel, exchange, &ticks).await;
        for ((event_id, _), confirm) in ticks.into_iter().zip(sent) {
            window.push_back((event_id, confirm.map_err(amqp)?));
        }
        left -= take;
    }
    while let Some((event_id, confirm)) = window.pop_front() {
        settle(&event_id, confirm.await.map_err(amqp)?, &mut report)?;
        confirmed(&event_id);
    }
    report.elapsed = started.elapsed();
    report.cpu = cpu_before
        .zip(process_cpu())
        .map(|(before, after)| after.saturating_sub(before));
    let _ = connect::close(connection, 200, "ticks sent").await;
    Ok(report)
}

/// Queues every tick's frames (in order: `join_all` polls the publishes in
/// order, each queuing its frames when first polled) before awaiting any.
async fn publish_batch(
    channel: &Channel,
    exchange: &str,
    ticks: &[(String, Vec<u8>)],
) -> Vec<Result<PublisherConfirm, lapin::Error>> {
    futures_util::future::join_all(ticks.iter().map(|(event_id, bytes)| {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(event_id.as_str().into())
            .with_type(TICK_KEY.into());
        channel.basic_publish(
            exchange,
            TICK_KEY,
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            bytes,
            properties,
        )
    }))
    .await
}

/// Counts one confirm; a nack ends the run.
fn settle(
    event_id: &str,
    confirmation: Confirmation,
    report: &mut TickReport,
) -> Result<(), BusError> {
    match confirmation {
        Confirmation::Ack(returned) => {
            if returned.is_some() {
                report.unroutable += 1;
            }
        }
        Confirmation::NotRequested => {}
        Confirmation::Nack(_) => {
            return Err(BusError::Broker(format!(
                "the broker refused tick {event_id}"
            )));
        }
    }
    report.confirmed += 1;
    Ok(())
}

/// This process's user + system CPU so far (`/proc/self/stat`, fields 14
/// and 15, in clock ticks); `None` where that file cannot be read.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_of_stat(&stat, clock_ticks_per_s())
}

/// utime + stime of a `/proc/<pid>/stat` line, at `hz` ticks per second.
pub fn cpu_of_stat(stat: &str, hz: u64) -> Option<Duration> {
    // The command name is in parentheses and may hold spaces: count the
    // fields after its closing one (field 3 onward).
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    let hz = hz.max(1);
    Some(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/<pid>/stat`'s times (100 on
/// Linux where it cannot be asked).
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_utime_plus_stime_after_a_command_name_with_spaces() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0 12345 0 0";
        assert_eq!(cpu_of_stat(stat, 100), Some(Duration::from_millis(3250)));
        assert_eq!(cpu_of_stat(stat, 1000), Some(Duration::from_millis(325)));
        assert_eq!(cpu_of_stat("garbage", 100), None);
        assert_eq!(cpu_of_stat("1 (x) S 1 2", 100), None);
    }

    #[test]
    fn rates_come_from_confirmed_ticks() {
        let report = TickReport {
            confirmed: 2000,
            unroutable: 0,
            elapsed: Duration::from_millis(500),
            cpu: Some(Duration::from_millis(100)),
        };
        assert!((report.ticks_per_s() - 4000.0).abs() < 1e-6);
        assert_eq!(report.cpu_us_per_tick(), Some(50.0));
    }
}
