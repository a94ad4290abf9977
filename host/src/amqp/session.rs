//! The connection to the broker: an outer loop that (re)connects with capped
//! exponential backoff and jitter, declares the topology, and consumes
//! `agent.{name}.inbox`, turning deliveries into ticks and control requests
//! and acknowledging each once it has been dealt with.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer, Event};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::acks::{Acker, Settle};
use super::identity::Inbound;
use super::publisher::ChannelSlot;
use heartbeat_core::control;
use heartbeat_core::envelope::{self, Route};

use super::{BusContext, BusStatus, ControlRequest, Phase, connect, topology};
use crate::source::{Tick, TickDone};

/// Where deliveries go.
pub(crate) struct Links {
    /// The daemon's tick channel.
    pub ticks: mpsc::Sender<Tick>,
    /// The daemon's control channel.
    pub controls: mpsc::Sender<ControlRequest>,
}

/// The supervisor's handles on the rest of the bus.
pub(crate) struct Supervisor {
    pub ctx: Arc<BusContext>,
    pub links: Links,
    pub channel: watch::Sender<ChannelSlot>,
    pub failed: watch::Receiver<u64>,
    pub phase: watch::Receiver<Phase>,
    pub status: watch::Sender<BusStatus>,
}

/// Why a session could not be opened.
enum OpenError {
    /// Another consumer holds the inbox and this host asked for exclusive
    /// use (`--exclusive`): stand by.
    InUse(String),
    /// Anything else: the broker is unreachable or refused the setup.
    Failed(String),
}

/// How a session ended.
enum End {
    /// The host is shutting down.
    Closed,
    /// The connection or a channel was lost.
    Lost(String),
}

/// One connection with its two channels.
struct Session {
    connection: Arc<Connection>,
    /// The connection is the session's own (closed with it), not one
    /// shared with other agents (only the channels are closed).
    owned: bool,
    consume: Channel,
    /// Answers the consuming channel's deliveries.
    acker: Acker,
    publish: Channel,
    consumer: Option<Consumer>,
    lost: mpsc::UnboundedReceiver<String>,
}

impl Supervisor {
    /// Connects, consumes, and reconnects after losses until the bus is
    /// closed.
    pub async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut generation: u64 = 0;
        let mut was_lost = false;
        let mut standing_by = false;
        loop {
            if *self.phase.borrow() >= Phase::Closed {
                return;
            }
            let consuming = *self.phase.borrow() == Phase::Running;
            match open(&self.ctx, consuming).await {
                Ok(mut session) => {
                    generation += 1;
                    attempt = 0;
                    if standing_by {
                        standing_by = false;
                        info!(event = "took_over",
                            broker = %self.ctx.url_shown,
                            queue = %self.ctx.names.inbox,
                            "took over {}: the host that consumed it is gone; ticks come from the bus",
                            self.ctx.names.inbox
                        );
                    } else if was_lost {
                        self.ctx.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                        info!(event = "broker_back",
                            broker = %self.ctx.url_shown,
                            queue = %self.ctx.names.inbox,
                            "broker is back: bus ticks take over from the host's own timer"
                        );
                    } else {
                        info!(event = "connected",
                            broker = %self.ctx.url_shown,
                            exchange = %self.ctx.names.exchange,
                            queue = %self.ctx.names.inbox,
                            prefetch = self.ctx.prefetch,
                            "connected; ticks come from the bus"
                        );
                    }
                    let _ = self.status.send(BusStatus::Connected);
                    let _ = self
                        .channel
                        .send(Some((generation, session.publish.clone())));
                    let end = self.serve(&mut session, generation).await;
                    let _ = self.channel.send(None);
                    match end {
                        End::Closed => {
                            if self.ctx.retired.load(Ordering::Relaxed) {
                                unbind_paced(&session.consume, &self.ctx.names).await;
                            }
                            session.close().await;
                            let _ = self.status.send(BusStatus::Disconnected);
                            return;
                        }
                        End::Lost(reason) => {
                            was_lost = true;
                            let _ = self.status.send(BusStatus::Disconnected);
                            warn!(
                                event = "broker_lost",
                                "lost the broker ({reason}); degraded: checks run on the host's own timer until it is back"
                            );
                            session.abandon().await;
                        }
                    }
                }
                Err(OpenError::InUse(reason)) => {
                    // Not a fault: another host is active. Asked again at a
                    // short fixed pace (no backoff), so the takeover follows
                    // the active host's end closely.
                    attempt = 0;
                    if !standing_by {
                        standing_by = true;
                        info!(event = "standby",
                            broker = %self.ctx.url_shown,
                            queue = %self.ctx.names.inbox,
                            retry_every = %format!("{}ms", super::STANDBY_RETRY.as_millis()),
                            "standing by: another host consumes {} exclusively ({reason}); this host runs nothing until it takes over",
                            self.ctx.names.inbox
                        );
                    }
                    let _ = self.status.send(BusStatus::Standby);
                    if self.wait_or_close(super::STANDBY_RETRY).await {
                        return;
                    }
                    continue;
                }
                Err(OpenError::Failed(reason)) => {
                    standing_by = false;
                    let _ = self.status.send(BusStatus::Disconnected);
                    was_lost = true;
                    let delay = self.ctx.backoff.delay(attempt, fastrand::f64());
                    warn!(event = "broker_unreachable",
                        broker = %self.ctx.url_shown,
                        retry_in = %format!("{}ms", delay.as_millis()),
                        "cannot use the broker: {reason}; degraded: checks run on the host's own timer"
                    );
                    attempt = attempt.saturating_add(1);
                    if self.wait_or_close(delay).await {
                        return;
                    }
                    continue;
                }
            }
            let delay = self.ctx.backoff.delay(attempt, fastrand::f64());
            attempt = attempt.saturating_add(1);
            if self.wait_or_close(delay).await {
                return;
            }
        }
    }

    /// Sleeps `delay`; true when the bus was closed meanwhile.
    async fn wait_or_close(&mut self, delay: std::time::Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            if *self.phase.borrow() >= Phase::Closed {
                return true;
            }
            tokio::select! {
                () = &mut sleep => return false,
                changed = self.phase.changed() => if changed.is_err() { return true },
            }
        }
    }

    /// Consumes until the session is lost or the bus closed.
    async fn serve(&mut self, session: &mut Session, generation: u64) -> End {
        loop {
            let phase = *self.phase.borrow();
            if phase >= Phase::Closed {
                return End::Closed;
            }
            if phase >= Phase::StopConsuming
                && let Some(consumer) = session.consumer.take()
            {
                let tag = consumer.tag();
                if let Err(e) = session
                    .consume
                    .basic_cancel(tag.as_str(), BasicCancelOptions::default())
                    .await
                {
                    debug!("cancelling the consumer: {e}");
                }
                info!(event = "stopped_consuming", queue = %self.ctx.names.inbox, "stopped consuming");
            }
            tokio::select! {
                delivery = next_delivery(&mut session.consumer) => match delivery {
                    Some(Ok(delivery)) => self.handle(delivery, &session.acker).await,
                    Some(Err(e)) => return End::Lost(format!("consumer: {e}")),
                    None => return End::Lost("the broker cancelled the consumer".to_string()),
                },
                reason = session.lost.recv() => {
                    return End::Lost(reason.unwrap_or_else(|| "connection closed".to_string()));
                }
                changed = self.failed.changed() => {
                    if changed.is_ok() && *self.failed.borrow() == generation {
                        return End::Lost("a publish failed".to_string());
                    }
                }
                changed = self.phase.changed() => if changed.is_err() { return End::Closed },
            }
        }
    }

    /// Deals with one delivery. Never blocks on a run: a tick or control
    /// request is settled through `acker` once the daemon is done with it.
    async fn handle(&self, delivery: Delivery, acker: &Acker) {
        let ctx = &self.ctx;
        let tag = delivery.delivery_tag;
        let route = match ctx
            .identity
            .screen(&delivery.properties, delivery.routing_key.as_str())
        {
            Inbound::Own => {
                ctx.metrics.own_skipped.fetch_add(1, Ordering::Relaxed);
                acker.settle(tag, Settle::Ack);
                return;
            }
            Inbound::ControlFromThisHost(control) => {
                refuse(ctx, &delivery, acker, &control.to_string());
                return;
            }
            Inbound::Route(route) => route,
        };
        match route {
            Route::Tick => match envelope::parse_envelope(&delivery.data) {
                Ok(envelope) => self.tick(tag, envelope, acker).await,
                Err(reason) => refuse(ctx, &delivery, acker, &reason.to_string()),
            },
            Route::Control(verb) => match control::parse(verb, &delivery.data) {
                Ok(command) => self.control(delivery, command, acker).await,
                Err(reason) => refuse(ctx, &delivery, acker, &reason.to_string()),
            },
            Route::Beat(process) => {
                self.beat(&delivery, process);
                acker.settle(tag, Settle::Ack);
            }
            Route::Ignore => {
                ctx.metrics.ignored.fetch_add(1, Ordering::Relaxed);
                debug!(routing_key = %delivery.routing_key, "not for the host: acknowledged and ignored");
                acker.settle(tag, Settle::Ack);
            }
        }
    }

    /// Records a watched process's beat (a raw beatit body). Malformed
    /// bodies are counted and logged at debug; either way the delivery is
    /// acknowledged, never dead-lettered.
    fn beat(&self, delivery: &Delivery, process: &str) {
        let ctx = &self.ctx;
        if ctx.own_beats.as_deref() == Some(delivery.routing_key.as_str()) {
            ctx.metrics.own_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let observed = ctx
            .tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(process, &delivery.data, crate::source::now_ms());
        match observed {
            Ok(beat) => {
                ctx.metrics.beats.fetch_add(1, Ordering::Relaxed);
                debug!(process, ?beat, "beat recorded");
            }
            Err(reason) => {
                ctx.metrics.malformed_beats.fetch_add(1, Ordering::Relaxed);
                debug!(process, routing_key = %delivery.routing_key, "malformed beat ignored: {reason}");
            }
        }
    }

    /// Hands a tick to the daemon; it is acknowledged once handled, or
    /// requeued if the daemon drops it (stopping) before.
    async fn tick(&self, tag: u64, envelope: envelope::Envelope, acker: &Acker) {
        self.ctx.metrics.ticks.fetch_add(1, Ordering::Relaxed);
        let acker = acker.clone();
        let tick = Tick {
            id: envelope.event_id,
            time_ms: crate::source::now_ms(),
            envelope: envelope.raw,
            done: Some(TickDone::new(move |handled| {
                acker.settle(
                    tag,
                    if handled {
                        Settle::Ack
                    } else {
                        Settle::Requeue
                    },
                );
            })),
        };
        // On failure (the daemon is stopping) the tick is dropped, and
        // with it its TickDone: the tick goes back to the queue.
        let _ = self.links.ticks.send(tick).await;
    }

    async fn control(&self, delivery: Delivery, command: control::Command, acker: &Acker) {
        let (reply, answer) = oneshot::channel();
        let verb = command.verb();
        let check = command.check().to_string();
        if self
            .links
            .controls
            .send(ControlRequest { command, reply })
            .await
            .is_err()
        {
            acker.settle(delivery.delivery_tag, Settle::Requeue);
            return;
        }
        let ctx = Arc::clone(&self.ctx);
        let acker = acker.clone();
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                match answer.await {
                    Ok(Ok(applied)) => {
                        ctx.metrics.controls.fetch_add(1, Ordering::Relaxed);
                        info!(event = "control_applied", control = verb, check = %check, "control applied: {}", applied.summary);
                        if let Some(caveat) = applied.caveat {
                            warn!(control = verb, check = %check, "{caveat}");
                        }
                        acker.settle(delivery.delivery_tag, Settle::Ack);
                    }
                    Ok(Err(refused)) => refuse(&ctx, &delivery, &acker, &refused.to_string()),
                    Err(_) => acker.settle(delivery.delivery_tag, Settle::Requeue),
                }
            },
            span,
        ));
    }
}

async fn next_delivery(consumer: &mut Option<Consumer>) -> Option<lapin::Result<Delivery>> {
    match consumer {
        Some(consumer) => consumer.next().await,
        None => std::future::pending().await,
    }
}

/// Opens a connection, declares the topology, sets the prefetch, puts the
/// publishing channel in confirm mode and (when `consuming`) starts the
/// consumer.
async fn open(ctx: &BusContext, consuming: bool) -> Result<Session, OpenError> {
    let (connection, owned) = match &ctx.shared_connection {
        Some(shared) => (
            shared
                .connection()
                .await
                .map_err(|e| OpenError::Failed(format!("connect: {e}")))?,
            false,
        ),
        None => {
            let name = format!("heartbeat-host agent.{}", ctx.identity.agent);
            let connection = connect::connect(&ctx.uri, &name)
                .await
                .map_err(|e| OpenError::Failed(format!("connect: {e}")))?;
            (Arc::new(connection), true)
        }
    };
    let (lost_tx, lost) = mpsc::unbounded_channel();
    let mut events = connection.events_listener();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Event::Error(e)) => {
                        let _ = lost_tx.send(format!("connection: {e}"));
                    }
                    Some(Event::ConnectionBlocked(reason)) => {
                        warn!("the broker blocks this connection: {reason}");
                    }
                    Some(Event::ConnectionUnblocked) => info!("the broker unblocked this connection"),
                    Some(_) => {}
                    None => return,
                },
                () = lost_tx.closed() => return,
            }
        }
    });
    // The channels opened so far, closed again if the setup fails (on a
    // shared connection they would otherwise stay open, one pair per retry).
    let mut opened: Vec<Channel> = Vec::new();
    let setup = async {
        let consume = connection.create_channel().await?;
        opened.push(consume.clone());
        topology::declare(&consume, &ctx.names).await?;
        consume
            .basic_qos(ctx.prefetch, BasicQosOptions::default())
            .await?;
        let publish = connection.create_channel().await?;
        opened.push(publish.clone());
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let consumer = if consuming {
            Some(
                consume
                    .basic_consume(
                        &ctx.names.inbox,
                        "",
                        BasicConsumeOptions {
                            exclusive: ctx.exclusive,
                            ..BasicConsumeOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?,
            )
        } else {
            None
        };
        Ok::<_, lapin::Error>((consume, publish, consumer))
    };
    match setup.await {
        Ok((consume, publish, consumer)) => Ok(Session {
            connection,
            owned,
            acker: Acker::spawn(consume.clone()),
            consume,
            publish,
            consumer,
            lost,
        }),
        Err(e) => {
            if owned {
                let _ = connection.close(200, "setup failed").await;
            } else {
                for channel in opened {
                    if channel.status().connected() {
                        let _ = channel.close(200, "setup failed").await;
                    }
                }
            }
            let reason = format!("setting up {}: {e}", ctx.names.inbox);
            if ctx.exclusive && is_exclusive_refusal(&e) {
                Err(OpenError::InUse(e.to_string()))
            } else {
                Err(OpenError::Failed(reason))
            }
        }
    }
}

/// Whether the broker refused a consume because the queue is in exclusive
/// use (RabbitMQ: `ACCESS_REFUSED - queue '…' in vhost '/' in exclusive
/// use`), rather than for a permission or anything else.
fn is_exclusive_refusal(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            matches!(
                amqp.kind(),
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
            ) && amqp.get_message().as_str().contains("exclusive")
        }
        _ => false,
    }
}

impl Session {
    /// Closes cleanly (shutdown): the acknowledgements still queued (at
    /// most 5 s), the channels, then the connection.
    async fn close(self) {
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.acker.flush())
            .await
            .is_err()
        {
            warn!("acknowledgements not all sent within 5 s; the broker redelivers those ticks");
        }
        let _ = self.publish.close(200, "shutting down").await;
        let _ = self.consume.close(200, "shutting down").await;
        if !self.owned {
            // The connection is shared: the last agent's shutdown closes it.
            return;
        }
        let Ok(connection) = Arc::try_unwrap(self.connection) else {
            return;
        };
        match super::connect::close(connection, 200, "shutting down").await {
            Ok(()) => info!(event = "connection_closed", "closed the broker connection"),
            Err(e) => debug!("closing the connection: {e}"),
        }
    }

    /// Drops a session that failed; closes the connection if it still can
    /// (only its channels, on a shared connection another agent may still use).
    async fn abandon(self) {
        if !self.owned {
            for channel in [&self.publish, &self.consume] {
                if channel.status().connected() {
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(2),
                        channel.close(320, "reconnecting"),
                    )
                    .await;
                }
            }
            return;
        }
        if self.connection.status().connected() {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                self.connection.close(320, "reconnecting"),
            )
            .await;
        }
    }
}

/// Removes a retired agent's paced bindings ([`super::topology::unbind_paced`])
/// within 5 s, and says what was done.
async fn unbind_paced(channel: &lapin::Channel, names: &super::topology::Names) {
    let unbound = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        super::topology::unbind_paced(channel, names),
    )
    .await;
    match unbound {
        Ok(Ok(super::topology::Unbound::Unbound(keys))) => {
            info!(event = "ticks_unbound", queue = %names.inbox, bindings = ?keys,
                "{} no longer bound to {}: no ticks or beats pile up while no one serves it; the queue and agent.*.# stay",
                names.inbox, keys.join(", "));
        }
        Ok(Ok(super::topology::Unbound::StillConsumed(consumers))) => {
            info!(event = "ticks_left_bound", queue = %names.inbox, consumers,
                "{} keeps its bindings: {consumers} other consumer(s) still read it", names.inbox);
        }
        Ok(Err(e)) => {
            warn!(queue = %names.inbox, "cannot unbind {}: {e}; it keeps filling until served again or unbound by hand", names.inbox)
        }
        Err(_) => {
            warn!(queue = %names.inbox, "unbinding {} took over 5 s; it may keep filling", names.inbox)
        }
    }
}

/// Rejects without requeue (the inbox dead-letters it to the DLQ) and logs
/// the reason, once.
fn refuse(ctx: &BusContext, delivery: &Delivery, acker: &Acker, reason: &str) {
    ctx.metrics.rejected.fetch_add(1, Ordering::Relaxed);
    let event_id = envelope::parse_object(&delivery.data)
        .ok()
        .and_then(|v| {
            v.get("event_id")
                .and_then(|id| id.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    warn!(event = "message_refused",
        routing_key = %delivery.routing_key,
        event_id = %event_id,
        redelivered = delivery.redelivered,
        dlq = %ctx.names.dlq,
        "message refused, dead-lettered: {reason}"
    );
    acker.settle(delivery.delivery_tag, Settle::Reject);
}
