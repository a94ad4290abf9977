//! Sends the host's events with publisher confirms. While the broker is
//! unreachable (or a publish fails) events go to the on-disk [`Outbox`];
//! once a channel is back the outbox is published first, in order, then
//! new events. A job is answered once each of its events is confirmed by
//! the broker or safely in the outbox.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use lapin::options::BasicPublishOptions;
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use super::outbox::{Outbox, Record};
use super::{Ctx, Phase};

/// The AMQP header naming the agent whose host published a message: how
/// the host recognises its own events coming back on its inbox.
pub const OWN_HEADER: &str = "x-heartbeat-host-agent";

/// The AMQP `app_id` of everything the host publishes.
pub const APP_ID: &str = "heartbeat-host";

/// How long the broker may take to confirm a publish.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a shutdown may spend publishing what is left.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Events published from the outbox per round.
const OUTBOX_BATCH: usize = 256;

/// The channel the publisher should use, tagged with its session number.
pub(crate) type ChannelSlot = Option<(u64, Channel)>;

/// Events to send, and who to tell once they are safe.
pub(crate) struct Job {
    pub records: Vec<Record>,
    pub done: oneshot::Sender<()>,
}

/// Hands jobs to the publisher task.
#[derive(Clone)]
pub(crate) struct PublisherHandle {
    tx: mpsc::UnboundedSender<Job>,
}

impl PublisherHandle {
    /// Queues events; the receiver resolves once they are confirmed or in
    /// the outbox (or errors when the publisher has stopped).
    pub fn submit(&self, records: Vec<Record>) -> oneshot::Receiver<()> {
        let (done, wait) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job { records, done }) {
            error!(
                events = job.records.len(),
                "event publisher has stopped; events not sent"
            );
        }
        wait
    }
}

/// A job whose events are published and whose confirms are awaited:
/// the job, one result per event, and the session it was published on.
type Confirmed = (Job, Vec<Result<(), String>>, u64);

/// The publisher task's state.
pub(crate) struct Publisher {
    ctx: Arc<Ctx>,
    rx: mpsc::UnboundedReceiver<Job>,
    channel: watch::Receiver<ChannelSlot>,
    /// Tells the session which channel failed, so it reconnects.
    failed: watch::Sender<u64>,
    phase: watch::Receiver<Phase>,
    outbox: Outbox,
    /// Jobs not yet published, in order.
    pending: VecDeque<Job>,
    /// Jobs published and waiting for their confirms, in publishing order.
    /// New jobs are published without waiting for earlier confirms.
    in_flight: FuturesOrdered<BoxFuture<'static, Confirmed>>,
    /// The session whose channel failed a publish; not used again.
    broken: Option<u64>,
    /// Whether the current outage has been logged.
    outage_logged: bool,
}

impl Publisher {
    /// A publisher and the handle to feed it.
    pub fn new(
        ctx: Arc<Ctx>,
        outbox: Outbox,
        channel: watch::Receiver<ChannelSlot>,
        failed: watch::Sender<u64>,
        phase: watch::Receiver<Phase>,
    ) -> (Publisher, PublisherHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let publisher = Publisher {
            ctx,
            rx,
            channel,
            failed,
            phase,
            outbox,
            pending: VecDeque::new(),
            in_flight: FuturesOrdered::new(),
            broken: None,
            outage_logged: false,
        };
        (publisher, PublisherHandle { tx })
    }

    /// Runs until the bus is flushed at shutdown.
    pub async fn run(mut self) {
        loop {
            self.take_queued();
            self.pump().await;
            if *self.phase.borrow() >= Phase::Flush {
                self.flush().await;
                return;
            }
            tokio::select! {
                job = self.rx.recv() => match job {
                    Some(job) => self.pending.push_back(job),
                    None => {
                        // Every handle is gone: nothing more will come.
                        self.flush().await;
                        return;
                    }
                },
                Some(confirmed) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.confirmed(confirmed);
                }
                changed = self.channel.changed() => {
                    if changed.is_err() {
                        self.flush().await;
                        return;
                    }
                }
                _ = self.phase.changed() => {}
            }
        }
    }

    fn take_queued(&mut self) {
        while let Ok(job) = self.rx.try_recv() {
            self.pending.push_back(job);
        }
    }

    /// The channel to publish on, unless there is none or it failed.
    fn usable_channel(&self) -> Option<(u64, Channel)> {
        let slot = self.channel.borrow().clone();
        slot.filter(|(generation, channel)| {
            Some(*generation) != self.broken && channel.status().connected()
        })
    }

    /// Moves what it can along. With a usable channel and an empty outbox,
    /// pending jobs are published at once (their confirms are awaited in
    /// the background). Otherwise, once every confirm in flight is in (so
    /// that failed events reach the outbox before later ones), pending jobs
    /// go to the outbox and, with a usable channel, the outbox is published
    /// from its oldest event.
    async fn pump(&mut self) {
        loop {
            let usable = self.usable_channel();
            match usable {
                Some((generation, channel)) if self.outbox.is_empty() => {
                    // Every pending job's events in one go: the frames are
                    // queued in order and written together.
                    let jobs: Vec<Job> = self.pending.drain(..).collect();
                    let records: Vec<&Record> = jobs.iter().flat_map(|j| &j.records).collect();
                    let mut started = start_publish(&self.ctx, &channel, &records)
                        .await
                        .into_iter();
                    let mut failed_now = false;
                    for job in jobs {
                        let mine: Vec<_> = started.by_ref().take(job.records.len()).collect();
                        failed_now |= mine.iter().any(Result::is_err);
                        self.in_flight.push_back(Box::pin(async move {
                            (job, await_confirms(mine).await, generation)
                        }));
                    }
                    if failed_now {
                        self.channel_failed(generation, "publish refused by the channel");
                    }
                    return;
                }
                _ if !self.in_flight.is_empty() => return,
                None => {
                    self.spool_pending();
                    return;
                }
                Some((generation, channel)) => {
                    // New events queue behind the outbox to keep the order.
                    self.spool_pending();
                    let batch = self.outbox.front(OUTBOX_BATCH);
                    let batch: Vec<&Record> = batch.iter().collect();
                    let started = start_publish(&self.ctx, &channel, &batch).await;
                    let results = await_confirms(started).await;
                    let confirmed = results.iter().take_while(|r| r.is_ok()).count();
                    self.ctx
                        .metrics
                        .published
                        .fetch_add(confirmed as u64, Ordering::Relaxed);
                    if let Err(e) = self.outbox.pop_front(confirmed) {
                        error!("{e}; confirmed events may be published again");
                    }
                    if let Some(Err(reason)) = results.into_iter().find(Result::is_err) {
                        self.channel_failed(generation, &reason);
                        return;
                    }
                    if self.outbox.is_empty() {
                        info!(event = "outbox_drained",
                            outbox = %self.outbox.path().display(),
                            "outbox drained: every waiting event published, in order"
                        );
                        self.outage_logged = false;
                    }
                }
            }
        }
    }

    /// A job's confirms are in: answers it, spooling what was not confirmed.
    fn confirmed(&mut self, (job, results, generation): Confirmed) {
        let mut failed = Vec::new();
        let mut first_error = None;
        for (record, result) in job.records.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    self.ctx.metrics.published.fetch_add(1, Ordering::Relaxed);
                }
                Err(reason) => {
                    first_error.get_or_insert(reason);
                    failed.push(record);
                }
            }
        }
        if !failed.is_empty() {
            self.spool(failed);
        }
        let _ = job.done.send(());
        if let Some(reason) = first_error
            && self.broken != Some(generation)
        {
            self.channel_failed(generation, &reason);
        }
    }

    /// At shutdown: waits for the confirms in flight, then publishes what
    /// is left while the broker is reachable (bounded by [`FLUSH_TIMEOUT`]);
    /// the rest stays in the outbox.
    async fn flush(&mut self) {
        self.take_queued();
        while let Some(confirmed) = self.in_flight.next().await {
            self.confirmed(confirmed);
        }
        // Into the outbox first: an interrupted publish then loses nothing.
        self.outage_logged = true;
        self.spool_pending();
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        if self.usable_channel().is_some()
            && tokio::time::timeout_at(deadline.into(), self.pump())
                .await
                .is_err()
        {
            warn!(
                "flush at shutdown took longer than {FLUSH_TIMEOUT:?}; the rest stays in the outbox"
            );
        }
        self.take_queued();
        self.spool_pending();
        if !self.outbox.is_empty() {
            warn!(
                waiting = self.outbox.len(),
                outbox = %self.outbox.path().display(),
                "events left in the outbox; they are published when the host next reaches the broker"
            );
        }
    }

    fn channel_failed(&mut self, generation: u64, reason: &str) {
        warn!("publishing failed ({reason}); events go to the outbox until the broker is back");
        self.broken = Some(generation);
        let _ = self.failed.send(generation);
    }

    /// Moves every pending job's events to the outbox and answers the jobs.
    fn spool_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let jobs: Vec<Job> = self.pending.drain(..).collect();
        let records: Vec<Record> = jobs
            .iter()
            .flat_map(|j| j.records.iter().cloned())
            .collect();
        self.spool(records);
        for job in jobs {
            let _ = job.done.send(());
        }
    }

    fn spool(&mut self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let count = records.len() as u64;
        match self.outbox.push(records) {
            Ok(dropped) => {
                if dropped > 0 {
                    self.ctx
                        .metrics
                        .outbox_dropped
                        .store(self.outbox.dropped_total(), Ordering::Relaxed);
                    warn!(
                        event = "outbox_full",
                        dropped,
                        outbox_dropped_total = self.outbox.dropped_total(),
                        max = self.outbox.max(),
                        "outbox full: dropped the oldest events"
                    );
                }
            }
            Err(e) => error!("{e}; events kept in memory only"),
        }
        self.ctx.metrics.spooled.fetch_add(count, Ordering::Relaxed);
        if !self.outage_logged {
            self.outage_logged = true;
            warn!(
                waiting = self.outbox.len(),
                max = self.outbox.max(),
                outbox = %self.outbox.path().display(),
                "broker unreachable: events wait in the outbox"
            );
        } else {
            debug!(waiting = self.outbox.len(), "events added to the outbox");
        }
    }
}

/// The AMQP properties of an event the host publishes.
fn properties(ctx: &Ctx, record: &Record) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        OWN_HEADER.into(),
        AMQPValue::LongString(LongString::from(ctx.agent.as_str())),
    );
    let now_s = crate::source::now_ms() / 1000;
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(record.event_id.as_str().into())
        .with_type(record.routing_key.as_str().into())
        .with_app_id(APP_ID.into())
        .with_timestamp(now_s)
        .with_headers(headers)
}

/// The AMQP properties of a beat: a raw text body, transient, marked as
/// the host's own (so its inbox skips it should a binding match).
pub(crate) fn beat_properties(ctx: &Ctx) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        OWN_HEADER.into(),
        AMQPValue::LongString(LongString::from(ctx.agent.as_str())),
    );
    BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_app_id(APP_ID.into())
        .with_timestamp(crate::source::now_ms() / 1000)
        .with_headers(headers)
}

/// Publishes `records` in order on `channel`; one entry per record: its
/// pending confirm, or why it was not sent.
///
/// Every publish's frames are queued (in order: each future queues its
/// frames when first polled, and `join_all` polls them in order) before
/// any is awaited, so a batch costs one wake of lapin's I/O thread, not
/// one per event. The frames go out in that order on one socket: once one
/// fails to go out, those after it fail too, so nothing later overtakes an
/// event that goes to the outbox.
async fn start_publish(
    ctx: &Ctx,
    channel: &Channel,
    records: &[&Record],
) -> Vec<Result<PublisherConfirm, String>> {
    futures_util::future::join_all(records.iter().map(|record| async move {
        channel
            .basic_publish(
                &ctx.names.exchange,
                &record.routing_key,
                BasicPublishOptions::default(),
                record.body.as_bytes(),
                properties(ctx, record),
            )
            .await
            .map_err(|e| format!("publish: {e}"))
    }))
    .await
}

/// Waits for each confirm (at most [`CONFIRM_TIMEOUT`]); one result per record.
async fn await_confirms(started: Vec<Result<PublisherConfirm, String>>) -> Vec<Result<(), String>> {
    futures_util::future::join_all(started.into_iter().map(|sent| async move {
        let confirm = sent?;
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(Confirmation::Ack(_) | Confirmation::NotRequested)) => Ok(()),
            Ok(Ok(Confirmation::Nack(_))) => Err("the broker refused (nack)".to_string()),
            Ok(Err(e)) => Err(format!("confirm: {e}")),
            Err(_) => Err(format!("no confirm within {CONFIRM_TIMEOUT:?}")),
        }
    }))
    .await
}
