//! Sends the host's events with publisher confirms. While the broker is
//! unreachable (or a publish fails) events go to the on-disk [`Outbox`];
//! once a channel is back the outbox is published first, in order, then
//! new events. A job is answered once each of its events is confirmed by
//! the broker, safely in the outbox, or set aside in the dead-letter file.
//!
//! Nothing the broker refuses for what it is can wedge the outbox: an
//! event that fails [`wire::check`] is never published, one the broker
//! nacks is not retried, and one that is first among the unconfirmed each
//! time the broker closes the connection or channel on it
//! ([`wire::POISON_STRIKES`] sessions in a row, [`wire::Suspect`]) is
//! poison. Each goes to the dead-letter file beside the outbox, counted
//! (`dead_lettered`) and logged once (`outbox_dead_lettered`); the events
//! behind it keep their order. An event lost with an unreachable broker
//! is kept and sent again (at least once).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use lapin::Channel;
use lapin::options::BasicPublishOptions;
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use super::outbox::Outbox;
use super::wire::{self, Record};
use super::{BusContext, Phase};

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

/// Why a published event was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The broker refused it (basic.nack): not sent again.
    Nacked,
    /// The channel or connection went before the confirm (or none came in
    /// time): sent again from the outbox.
    Lost {
        /// What happened.
        reason: String,
        /// The reply code when the broker closed the channel or the
        /// connection with an error.
        closed_with: Option<u16>,
    },
}

impl Failure {
    /// A loss, with the broker's close code if `error` carries one.
    fn lost(reason: String, error: &lapin::Error) -> Failure {
        let closed_with = match error.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
            _ => None,
        };
        Failure::Lost {
            reason,
            closed_with,
        }
    }

    /// Whether the broker closed on it with an error that can be the
    /// message's fault ([`wire::blames_the_message`]).
    fn blamed(&self) -> bool {
        matches!(self, Failure::Lost { closed_with: Some(code), .. } if wire::blames_the_message(*code))
    }

    /// What the dead-letter file and the log say about it.
    fn reason(&self) -> String {
        match self {
            Failure::Nacked => "the broker refused it (basic.nack under publisher confirms)".into(),
            Failure::Lost { reason, .. } => reason.clone(),
        }
    }

    /// Why a poison event is set aside, this being its last loss.
    fn poison_reason(&self) -> String {
        format!(
            "in flight each time the broker closed the connection or channel, {} sessions in a row; last: {}",
            wire::POISON_STRIKES,
            self.reason()
        )
    }
}

/// What became of one publish.
type Outcome = Result<(), Failure>;

/// A job whose events are published and whose confirms are awaited:
/// the job, one outcome per event, and the session it was published on.
type Confirmed = (Job, Vec<Outcome>, u64);

/// The publisher task's state.
pub(crate) struct Publisher {
    ctx: Arc<BusContext>,
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
    /// The event the broker may be closing the connection on.
    suspect: wire::Suspect,
}

impl Publisher {
    /// A publisher and the handle to feed it.
    pub fn new(
        ctx: Arc<BusContext>,
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
            suspect: wire::Suspect::default(),
        };
        (publisher, PublisherHandle { tx })
    }

    /// Runs until the bus is flushed at shutdown.
    pub async fn run(mut self) {
        loop {
            self.take_queued();
            self.pump().await;
            self.ctx
                .metrics
                .outbox_depth
                .store(self.outbox.len() as u64, Ordering::Relaxed);
            if *self.phase.borrow() >= Phase::Flush {
                self.flush().await;
                return;
            }
            tokio::select! {
                job = self.rx.recv() => match job {
                    Some(job) => self.admit(job),
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
            self.admit(job);
        }
    }

    /// Takes a job in: its events the wire cannot carry are dead-lettered
    /// at once (never published), the rest wait to be published in order.
    fn admit(&mut self, mut job: Job) {
        let (sendable, unsendable) =
            wire::split_sendable(std::mem::take(&mut job.records), &self.ctx.limits);
        if !unsendable.is_empty() {
            self.dead_letter(
                unsendable
                    .into_iter()
                    .map(|(record, why)| (record, why.to_string()))
                    .collect(),
            );
        }
        if sendable.is_empty() {
            let _ = job.done.send(());
            return;
        }
        job.records = sendable;
        self.pending.push_back(job);
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
                    let refs: Vec<&Record> = batch.iter().collect();
                    let started = start_publish(&self.ctx, &channel, &refs).await;
                    let results = await_confirms(started).await;
                    let settled = settle(&results);
                    for record in settled.confirmed.iter().filter_map(|&i| batch.get(i)) {
                        self.suspect.cleared(&record.event_id);
                    }
                    self.ctx
                        .metrics
                        .published
                        .fetch_add(settled.confirmed.len() as u64, Ordering::Relaxed);
                    let mut remove = settled.prefix;
                    let mut letters: Vec<(Record, String)> = settled
                        .refused
                        .iter()
                        .filter_map(|(i, reason)| Some((batch.get(*i)?.clone(), reason.clone())))
                        .collect();
                    let loss = settled
                        .loss
                        .and_then(|i| Some((batch.get(i)?, results.get(i)?)));
                    if let Some((record, Err(failure))) = loss
                        && self
                            .suspect
                            .lost(generation, &record.event_id, failure.blamed())
                    {
                        // Poison: first in line at every one of the last
                        // sessions the broker closed on it.
                        letters.push((record.clone(), failure.poison_reason()));
                        remove += 1;
                    }
                    // The dead-letter file first, then out of the outbox.
                    self.dead_letter(letters);
                    if let Err(e) = self.outbox.pop_front(remove) {
                        error!("{e}; confirmed events may be published again");
                    }
                    if let Some((_, Err(failure))) = loss {
                        self.channel_failed(generation, &failure.reason());
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

    /// A job's confirms are in: answers it, spooling what was lost and
    /// dead-lettering what the broker refused (nacked, or poison: the
    /// first lost of this session, for the last time in a row).
    fn confirmed(&mut self, (job, results, generation): Confirmed) {
        let mut failed = Vec::new();
        let mut refused = Vec::new();
        let mut first_loss = None;
        for (record, result) in job.records.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    self.ctx.metrics.published.fetch_add(1, Ordering::Relaxed);
                    self.suspect.cleared(&record.event_id);
                }
                Err(Failure::Nacked) => {
                    let reason = Failure::Nacked.reason();
                    refused.push((record, reason));
                }
                Err(lost) => {
                    // Only the session's first loss counts (see Suspect).
                    if self
                        .suspect
                        .lost(generation, &record.event_id, lost.blamed())
                    {
                        refused.push((record, lost.poison_reason()));
                    } else {
                        failed.push(record);
                    }
                    first_loss.get_or_insert(lost);
                }
            }
        }
        self.dead_letter(refused);
        if !failed.is_empty() {
            self.spool(failed);
        }
        let _ = job.done.send(());
        if let Some(lost) = first_loss
            && self.broken != Some(generation)
        {
            self.channel_failed(generation, &lost.reason());
        }
    }

    /// Moves `letters` (each event with why) to the dead-letter file,
    /// counts and logs each once. They are never sent again, even when the
    /// file cannot be written (that is logged as an error): a message that
    /// cannot go out must not hold up the ones behind it.
    fn dead_letter(&mut self, letters: Vec<(Record, String)>) {
        if letters.is_empty() {
            return;
        }
        let written = self.outbox.dead_letter(&letters, jiff::Timestamp::now());
        if let Err(e) = &written {
            error!(
                events = letters.len(),
                "{e}; the events set aside below are dropped, not kept"
            );
        }
        for (record, reason) in &letters {
            self.suspect.cleared(&record.event_id);
            self.ctx
                .metrics
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            log_dead_letter(record, reason, self.outbox.dead_path(), written.is_ok());
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

/// Logs an event set aside for good (`outbox_dead_lettered`), once: its
/// id, routing key (shortened) and sizes, why, and where it went.
pub(crate) fn log_dead_letter(record: &Record, reason: &str, dead_path: &Path, written: bool) {
    warn!(
        event = "outbox_dead_lettered",
        event_id = %shorten(&record.event_id),
        routing_key = %shorten(&record.routing_key),
        routing_key_bytes = record.routing_key.len(),
        body_bytes = record.body.len(),
        reason = %reason,
        dead_letters = %dead_path.display(),
        written,
        "event set aside in the dead-letter file, never to be sent: {reason}"
    );
}

/// At most 96 bytes of `text` (cut at a character boundary, `…` added).
fn shorten(text: &str) -> String {
    const MAX: usize = 96;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// How an outbox batch's outcomes settle: the prefix before the first loss
/// leaves the outbox (its confirmed events done, its nacked ones to be
/// dead-lettered, each with why); the first lost event (if any) and those
/// after it stay, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Settled {
    /// Outcomes before the first loss.
    prefix: usize,
    /// Indices of the confirmed events.
    confirmed: Vec<usize>,
    /// Indices of the nacked events, with why.
    refused: Vec<(usize, String)>,
    /// Index of the first event lost.
    loss: Option<usize>,
}

/// Reads a published outbox batch's outcomes, in order, as [`Settled`].
fn settle(results: &[Outcome]) -> Settled {
    let mut settled = Settled::default();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(()) => settled.confirmed.push(i),
            Err(Failure::Nacked) => settled.refused.push((i, Failure::Nacked.reason())),
            Err(Failure::Lost { .. }) => {
                settled.loss = Some(i);
                break;
            }
        }
        settled.prefix = i + 1;
    }
    settled
}

/// Publishes `records` in order on `channel`; one entry per record: its
/// pending confirm, or why it was not sent. The records must have passed
/// [`wire::check`] (every way in does: [`Publisher::admit`], [`Outbox::open`]).
///
/// Every publish's frames are queued (in order: each future queues its
/// frames when first polled, and `join_all` polls them in order) before
/// any is awaited, so a batch costs one wake of lapin's I/O thread, not
/// one per event. The frames go out in that order on one socket: once one
/// fails to go out, those after it fail too, so nothing later overtakes an
/// event that goes to the outbox.
async fn start_publish(
    ctx: &BusContext,
    channel: &Channel,
    records: &[&Record],
) -> Vec<Result<PublisherConfirm, Failure>> {
    futures_util::future::join_all(records.iter().map(|record| async move {
        channel
            .basic_publish(
                &ctx.names.exchange,
                &record.routing_key,
                BasicPublishOptions::default(),
                record.body.as_bytes(),
                ctx.identity
                    .event_properties(record, crate::source::now_ms() / 1000),
            )
            .await
            .map_err(|e| Failure::lost(format!("publish: {e}"), &e))
    }))
    .await
}

/// Waits for each confirm (at most [`CONFIRM_TIMEOUT`]); one outcome per record.
async fn await_confirms(started: Vec<Result<PublisherConfirm, Failure>>) -> Vec<Outcome> {
    futures_util::future::join_all(started.into_iter().map(|sent| async move {
        let confirm = sent?;
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(Confirmation::Ack(_) | Confirmation::NotRequested)) => Ok(()),
            Ok(Ok(Confirmation::Nack(_))) => Err(Failure::Nacked),
            Ok(Err(e)) => Err(Failure::lost(format!("confirm: {e}"), &e)),
            Err(_) => Err(Failure::Lost {
                reason: format!("no confirm within {CONFIRM_TIMEOUT:?}"),
                closed_with: None,
            }),
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError};

    fn lost(closed_with: Option<u16>) -> Failure {
        Failure::Lost {
            reason: "gone".into(),
            closed_with,
        }
    }

    #[test]
    fn a_broker_close_keeps_its_code_and_a_frame_error_blames_the_message() {
        let frame = lapin::Error::from(lapin::ErrorKind::ProtocolError(AMQPError::new(
            AMQPErrorKind::Hard(AMQPHardError::FRAMEERROR),
            "FRAME_ERROR - type 3, all octets = <<>>".into(),
        )));
        let failure = Failure::lost("confirm: closed".into(), &frame);
        assert_eq!(failure, lost_with("confirm: closed", Some(501)));
        assert!(failure.blamed());
        let forced = lapin::Error::from(lapin::ErrorKind::ProtocolError(AMQPError::new(
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED),
            "broker forced connection closure".into(),
        )));
        assert!(!Failure::lost("x".into(), &forced).blamed());
        let io = lapin::Error::from(std::io::Error::other("reset"));
        assert!(!Failure::lost("x".into(), &io).blamed());
        assert!(!Failure::Nacked.blamed());
        assert!(Failure::Nacked.reason().contains("nack"));
    }

    fn lost_with(reason: &str, closed_with: Option<u16>) -> Failure {
        Failure::Lost {
            reason: reason.into(),
            closed_with,
        }
    }

    #[test]
    fn a_nacked_event_leaves_the_outbox_with_the_confirmed_and_the_first_loss_stops_it() {
        let results = [
            Ok(()),
            Err(Failure::Nacked),
            Ok(()),
            Err(lost(None)),
            Ok(()),
        ];
        let settled = settle(&results);
        assert_eq!(settled.prefix, 3);
        assert_eq!(settled.confirmed, [0, 2]);
        assert_eq!(settled.refused.len(), 1);
        assert_eq!(settled.refused[0].0, 1);
        assert_eq!(settled.loss, Some(3));
        let all_fine = settle(&[Ok(()), Err(Failure::Nacked)]);
        assert_eq!((all_fine.prefix, all_fine.loss), (2, None));
        let first_lost = settle(&[Err(lost(Some(501))), Ok(())]);
        assert_eq!((first_lost.prefix, first_lost.loss), (0, Some(0)));
        assert!(first_lost.confirmed.is_empty());
    }

    #[test]
    fn shorten_cuts_long_text_at_a_character_boundary() {
        assert_eq!(shorten("agent.a.x"), "agent.a.x");
        let long = "é".repeat(100);
        let short = shorten(&long);
        assert!(
            short.ends_with('…') && short.len() <= 96 + '…'.len_utf8(),
            "{short}"
        );
    }
}
