//! RabbitMQ, wire-compatible with heartbeat-consumer: ticks and control
//! messages come in on `agent.{name}.inbox`, result events and the events
//! handlers emit go out on the topic exchange.
//!
//! - the envelope and control messages are parsed in the core
//!   (`heartbeat_core::envelope`, `heartbeat_core::control`); here
//!   [`outbox`]'s format, [`wire`]'s records and bounds, `identity` (the
//!   headers marking what the host publishes, and what the inbox makes of
//!   them: its own events skipped, control messages this process published
//!   refused), [`backoff`] and [`acks`]' book of delivery tags are pure.
//! - [`topology`] declares what the consumer declared, [`connect`] reaches
//!   the broker, `session` consumes and reconnects, [`acks`] answers each
//!   delivery (batching acks), `publisher` sends with confirms and falls
//!   back to the on-disk outbox.
//!
//! The daemon starts a [`Bus`] with its tick and control channels, asks it
//! whether bus ticks are flowing ([`Bus::is_connected`]; while not, its own
//! timer runs the checks), hands it each run's outcome
//! ([`Bus::publish_run`]) and stops it in two steps at shutdown
//! ([`Bus::stop_consuming`], then [`Bus::shutdown`]).

pub mod acks;
pub mod backoff;
pub mod connect;
pub mod events;
mod identity;
pub mod outbox;
mod publisher;
mod session;
pub mod shared;
mod sink;
pub mod ticker;
pub mod topology;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use heartbeat_core::health::Health;
use heartbeat_core::model::RunReport;
use heartbeat_core::tick_monitor::{TickMonitor, Transition};
use heartbeat_core::{control, envelope};

use crate::publish::Receipt;
use crate::source::Tick;
use crate::source::timer::Admit;

pub use identity::{APP_ID, OWN_HEADER};

/// The default exchange (`EXCHANGE_NAME`), as in heartbeat-consumer.
pub const DEFAULT_EXCHANGE: &str = "bloodbank.events.v1";

/// Unacknowledged deliveries the broker may hand the host at once.
pub const DEFAULT_PREFETCH: u16 = 64;

/// Events the outbox keeps while the broker is unreachable.
pub const DEFAULT_OUTBOX_MAX: usize = 10_000;

/// How to reach the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusOptions {
    /// `RABBIT_URL`.
    pub url: String,
    /// `EXCHANGE_NAME`.
    pub exchange: String,
    /// The consumer's prefetch (basic.qos).
    pub prefetch: u16,
    /// The outbox file.
    pub outbox_path: PathBuf,
    /// The outbox's bound, in events.
    pub outbox_max: usize,
    /// Consume the inbox as its only consumer (`--exclusive`): while another
    /// host holds it, this one stands by ([`BusStatus::Standby`]) and takes
    /// over as soon as the other's connection ends.
    pub exclusive: bool,
    /// `--results-key-prefix`: publish the host's result events on
    /// `{prefix}{agent}.check.completed` and `.check.state_changed`, outside
    /// the inbox's bindings, instead of `agent.{agent}.check.…` (`None`).
    pub results_key_prefix: Option<String>,
}

/// How often a standby asks for the inbox again: a takeover comes at most
/// this long after the active host's connection ends.
pub const STANDBY_RETRY: Duration = Duration::from_millis(250);

/// The outbox beside a state file: `x.state.json` → `x.outbox.jsonl`.
pub fn default_outbox_path(state_path: &Path) -> PathBuf {
    crate::store::beside_state(state_path, ".outbox.jsonl")
}

/// Why the bus could not start or a tick could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The URL is not usable.
    #[error(transparent)]
    Url(#[from] connect::UrlError),
    /// The outbox file cannot be used.
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    /// The broker refused or could not be reached.
    #[error("broker {0}")]
    Broker(String),
}

/// Why a beat was not sent.
#[derive(Debug, thiserror::Error)]
pub enum BeatError {
    /// The bus is not connected; beats are not queued.
    #[error("not connected to the broker")]
    NotConnected,
    /// The publish or its confirm failed.
    #[error("publish failed: {0}")]
    Publish(String),
    /// The beat cannot go on the wire (its routing key is too long); it
    /// is not sent, so that it cannot cost the connection.
    #[error("not sent: {0}")]
    Unsendable(#[from] wire::Unsendable),
}

/// Whether bus ticks are flowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusStatus {
    /// Starting; the first connection attempt has not finished.
    Connecting,
    /// Consuming the inbox.
    Connected,
    /// Not connected; the host's own timer runs the checks.
    Disconnected,
    /// Connected, but another host consumes the inbox exclusively (both
    /// run with `--exclusive`): this one runs nothing, not even on its own
    /// timer, and asks for the inbox again every [`STANDBY_RETRY`].
    Standby,
}

/// Shutdown steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    StopConsuming,
    Flush,
    Closed,
}

/// A control message for the daemon to apply and persist.
#[derive(Debug)]
pub struct ControlRequest {
    /// What to do.
    pub command: control::Command,
    /// The answer: applied (and durably saved), or refused with the reason.
    pub reply: oneshot::Sender<Result<control::Applied, control::Refused>>,
}

/// Counters of what the bus did; logged when it stops.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Ticks received from the bus.
    pub ticks: AtomicU64,
    /// Control messages applied.
    pub controls: AtomicU64,
    /// Messages rejected to the DLQ.
    pub rejected: AtomicU64,
    /// Messages acknowledged and ignored.
    pub ignored: AtomicU64,
    /// The host's own events skipped on its inbox.
    pub own_skipped: AtomicU64,
    /// Events the broker confirmed.
    pub published: AtomicU64,
    /// Events put in the outbox.
    pub spooled: AtomicU64,
    /// Events in the outbox now, as of the publisher's last turn.
    pub outbox_depth: AtomicU64,
    /// Events dropped over the outbox's bound, ever (`outbox_dropped_total`).
    pub outbox_dropped: AtomicU64,
    /// Events set aside in the dead-letter file, never to be sent: the wire
    /// cannot carry them, the broker nacked them, or they were poison.
    pub dead_lettered: AtomicU64,
    /// Reconnections after a loss.
    pub reconnects: AtomicU64,
    /// Beats of watched processes recorded.
    pub beats: AtomicU64,
    /// Beats whose body was not the convention's (acknowledged, not recorded).
    pub malformed_beats: AtomicU64,
}

/// Everything one agent's bus is set up with, shared by its tasks (the
/// session that consumes and the publisher): who it publishes as, where
/// the broker is and what it declares there, how it consumes, and the
/// counters and beat table it writes into. Fixed once the bus starts, but
/// for [`BusContext::retired`].
pub(crate) struct BusContext {
    /// The agent and this process's instance id, as written into every
    /// message the bus sends and read off every delivery.
    identity: identity::Identity,
    /// What a message may carry (`?max_message_size=` in the URL).
    limits: wire::Limits,
    names: topology::Names,
    uri: lapin::uri::AMQPUri,
    url_shown: String,
    prefetch: u16,
    /// Consume exclusively; stand by while another host does.
    exclusive: bool,
    /// Where the result events go.
    result_keys: heartbeat_core::emit::ResultKeys,
    backoff: backoff::Backoff,
    source: envelope::Source,
    metrics: Arc<Metrics>,
    /// Where watched processes' beats are recorded.
    tracker: Arc<std::sync::Mutex<heartbeat_core::processes::Tracker>>,
    /// The routing key of the host's own beats (never tracked).
    own_beats: Option<String>,
    /// The connection shared with other agents, if any; `None`: a
    /// connection of the bus's own.
    shared_connection: Option<Arc<shared::SharedConnection>>,
    /// Set by [`Bus::retire`]: the agent is no longer served, so its
    /// inbox's paced bindings are removed when the session closes.
    retired: std::sync::atomic::AtomicBool,
}

/// What the bus watches besides its inbox's own bindings.
#[derive(Debug, Clone, Default)]
pub struct Watching {
    /// Extra binding patterns (the config's `watch`).
    pub patterns: Vec<String>,
    /// The table the beats go into.
    pub tracker: Arc<std::sync::Mutex<heartbeat_core::processes::Tracker>>,
    /// The routing key of the host's own beats, skipped.
    pub own_beats: Option<String>,
    /// Connections shared with the process's other agents; `None`: the
    /// bus opens a connection of its own.
    pub connections: Option<Arc<shared::SharedConnections>>,
}

/// The running bus.
pub struct Bus {
    ctx: Arc<BusContext>,
    status: watch::Receiver<BusStatus>,
    phase: watch::Sender<Phase>,
    publisher: publisher::PublisherHandle,
    /// The publishing channel while connected (beats go out on it directly).
    channel: watch::Receiver<publisher::ChannelSlot>,
    tasks: std::sync::Mutex<Option<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)>>,
}

impl Bus {
    /// Opens the outbox and starts connecting (in the background) on the
    /// current tokio runtime. Bus ticks go to `ticks`, control requests to
    /// `controls`; beats on `heartbeat.{agent}.#` go to a tracker of its own.
    pub fn start(
        options: &BusOptions,
        agent: &str,
        ticks: mpsc::Sender<Tick>,
        controls: mpsc::Sender<ControlRequest>,
    ) -> Result<Bus, BusError> {
        Bus::start_watching(options, agent, &Watching::default(), ticks, controls)
    }

    /// As [`Bus::start`], and also binds `watching.patterns` and feeds every
    /// beat (`heartbeat.{process}`, but the host's own) into `watching.tracker`.
    pub fn start_watching(
        options: &BusOptions,
        agent: &str,
        watching: &Watching,
        ticks: mpsc::Sender<Tick>,
        controls: mpsc::Sender<ControlRequest>,
    ) -> Result<Bus, BusError> {
        let uri = connect::parse_url(&options.url)?;
        let limits = connect::limits(&options.url)?;
        let outbox::Opened {
            outbox,
            skipped,
            dead_lettered,
        } = outbox::Outbox::open(&options.outbox_path, options.outbox_max, &limits)?;
        for (record, reason) in &dead_lettered {
            publisher::log_dead_letter(record, reason, outbox.dead_path(), true);
        }
        if skipped > 0 {
            warn!(outbox = %options.outbox_path.display(), skipped, "outbox lines that were not events were dropped (an interrupted write?)");
        }
        if !outbox.is_empty() {
            info!(outbox = %options.outbox_path.display(), waiting = outbox.len(), "events from an earlier run wait in the outbox");
        }
        let metrics = Arc::new(Metrics::default());
        metrics
            .outbox_dropped
            .store(outbox.dropped_total(), Ordering::Relaxed);
        metrics
            .dead_lettered
            .store(dead_lettered.len() as u64, Ordering::Relaxed);
        let ctx = Arc::new(BusContext {
            identity: identity::Identity::of(agent),
            limits,
            names: topology::Names::new(agent, &options.exchange, &watching.patterns),
            uri,
            url_shown: connect::redact(&options.url),
            prefetch: options.prefetch.max(1),
            exclusive: options.exclusive,
            result_keys: heartbeat_core::emit::ResultKeys::new(
                agent,
                options.results_key_prefix.as_deref(),
            ),
            backoff: backoff::Backoff::default(),
            source: source("agent"),
            metrics,
            tracker: Arc::clone(&watching.tracker),
            own_beats: watching.own_beats.clone(),
            shared_connection: watching.connections.as_ref().map(|c| c.assign()),
            retired: std::sync::atomic::AtomicBool::new(false),
        });
        if options.results_key_prefix.is_some() {
            // A `watch` pattern (or a prefix such as `agent.`) can still
            // bring the results back: say so, since the flag is for avoiding that.
            let keys = [&ctx.result_keys.completed, &ctx.result_keys.state_changed];
            for binding in &ctx.names.bindings {
                if let Some(key) = keys
                    .iter()
                    .find(|key| heartbeat_core::topic::matches(binding, key))
                {
                    warn!(event = "results_key_bound", binding = %binding, routing_key = %key,
                        "results go to {key}, which the inbox's binding {binding} brings back to the host (acknowledged unread)");
                }
            }
        }
        let (status_tx, status) = watch::channel(BusStatus::Connecting);
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let (channel_tx, channel_rx) = watch::channel(None);
        let (failed_tx, failed_rx) = watch::channel(0u64);
        let beat_channel = channel_rx.clone();
        let (task, publisher) = publisher::Publisher::new(
            Arc::clone(&ctx),
            outbox,
            channel_rx,
            failed_tx,
            phase_rx.clone(),
        );
        let span = tracing::Span::current();
        let publisher_task =
            tokio::spawn(tracing::Instrument::instrument(task.run(), span.clone()));
        let supervisor = session::Supervisor {
            ctx: Arc::clone(&ctx),
            links: session::Links { ticks, controls },
            channel: channel_tx,
            failed: failed_rx,
            phase: phase_rx,
            status: status_tx,
        };
        let supervisor_task = tokio::spawn(tracing::Instrument::instrument(supervisor.run(), span));
        Ok(Bus {
            ctx,
            status,
            phase,
            publisher,
            channel: beat_channel,
            tasks: std::sync::Mutex::new(Some((publisher_task, supervisor_task))),
        })
    }

    /// Whether bus ticks are flowing (while not, the host's timer runs checks).
    pub fn status(&self) -> BusStatus {
        *self.status.borrow()
    }

    /// Whether the bus is connected and consuming.
    pub fn is_connected(&self) -> bool {
        self.status() == BusStatus::Connected
    }

    /// Follows the bus status.
    pub fn watch_status(&self) -> watch::Receiver<BusStatus> {
        self.status.clone()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// Sends a run's events: first those the handler emitted (each with its
    /// own routing key), then the result event `agent.{name}.check.completed`,
    /// then `agent.{name}.check.state_changed` when the run changed the
    /// check's state (both under `--results-key-prefix` when given), all
    /// with `correlation_ids` holding the tick's `event_id`.
    pub fn publish_run(
        &self,
        tick_envelope: &serde_json::Value,
        check: &str,
        handler: &str,
        report: &RunReport,
        verdict: &heartbeat_core::soft_hard::Verdict,
    ) -> Receipt {
        let records = events::run_records(
            events::RunOutcome {
                keys: &self.ctx.result_keys,
                tick_envelope,
                check,
                handler,
                report,
                verdict,
            },
            &self.ctx.source,
            jiff::Timestamp::now(),
            || uuid::Uuid::new_v4().to_string(),
        );
        Receipt::pending(self.publisher.submit(records))
    }

    /// Publishes one beat (a raw beatit body such as `beat/10`) on
    /// `routing_key`, and waits for the broker's confirm (at most 5 s).
    /// Only while connected: beats are never queued in the outbox, a beat
    /// that cannot go out now is simply not sent, nor is one the wire cannot
    /// carry ([`wire::check_parts`]).
    pub async fn publish_beat(&self, routing_key: &str, body: &str) -> Result<(), BeatError> {
        wire::check_parts(routing_key, None, body.len(), &self.ctx.limits)?;
        if !self.is_connected() {
            return Err(BeatError::NotConnected);
        }
        let Some((_, channel)) = self.channel.borrow().clone() else {
            return Err(BeatError::NotConnected);
        };
        let confirm = channel
            .basic_publish(
                &self.ctx.names.exchange,
                routing_key,
                lapin::options::BasicPublishOptions::default(),
                body.as_bytes(),
                self.ctx
                    .identity
                    .beat_properties(crate::source::now_ms() / 1000),
            )
            .await
            .map_err(|e| BeatError::Publish(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(5), confirm).await {
            Ok(Ok(lapin::publisher_confirm::Confirmation::Nack(_))) => {
                Err(BeatError::Publish("the broker refused (nack)".to_string()))
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BeatError::Publish(e.to_string())),
            Err(_) => Err(BeatError::Publish("no confirm within 5 s".to_string())),
        }
    }

    /// Stops taking deliveries (the first step of a shutdown); the
    /// connection stays open so ticks in flight can still be acknowledged.
    pub fn stop_consuming(&self) {
        self.phase.send_if_modified(|phase| {
            let earlier = *phase < Phase::StopConsuming;
            if earlier {
                *phase = Phase::StopConsuming;
            }
            earlier
        });
    }

    /// Marks the agent as no longer served (removed from `--agents DIR`):
    /// at [`Bus::shutdown`] its inbox loses the bindings that keep filling
    /// it (ticks, beats, `watch`), unless another consumer still reads it;
    /// the queue and its `agent.{name}.#` binding stay for a later
    /// consumer. A plain shutdown leaves every binding, so that the ticks
    /// sent while the host restarts wait for it.
    pub fn retire(&self) {
        self.ctx.retired.store(true, Ordering::Relaxed);
    }

    /// Publishes what is left (bounded; the rest stays in the outbox) and
    /// closes the connection. Call once the runs in flight have finished;
    /// a second call does nothing.
    pub async fn shutdown(&self) {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((publisher_task, supervisor_task)) = tasks else {
            return;
        };
        self.stop_consuming();
        let _ = self.phase.send(Phase::Flush);
        let bound = publisher::FLUSH_TIMEOUT + Duration::from_secs(5);
        if tokio::time::timeout(bound, publisher_task).await.is_err() {
            warn!("event publisher did not stop in time");
        }
        let _ = self.phase.send(Phase::Closed);
        if tokio::time::timeout(Duration::from_secs(5), supervisor_task)
            .await
            .is_err()
        {
            warn!("broker connection did not close in time");
        }
        if let Some(shared) = &self.ctx.shared_connection {
            shared.leave();
        }
        let m = &self.ctx.metrics;
        info!(
            event = "bus_stopped",
            ticks = m.ticks.load(Ordering::Relaxed),
            controls = m.controls.load(Ordering::Relaxed),
            rejected = m.rejected.load(Ordering::Relaxed),
            ignored = m.ignored.load(Ordering::Relaxed),
            own_skipped = m.own_skipped.load(Ordering::Relaxed),
            published = m.published.load(Ordering::Relaxed),
            spooled = m.spooled.load(Ordering::Relaxed),
            outbox_dropped_total = m.outbox_dropped.load(Ordering::Relaxed),
            dead_lettered = m.dead_lettered.load(Ordering::Relaxed),
            reconnects = m.reconnects.load(Ordering::Relaxed),
            beats = m.beats.load(Ordering::Relaxed),
            malformed_beats = m.malformed_beats.load(Ordering::Relaxed),
            "bus stopped"
        );
    }
}

/// The host's own timer in broker mode ([`crate::source::timer`] with
/// this gate): its beats become ticks only while the bus is disconnected
/// (degraded mode) or its tick source is silent (no bus tick within 2 ×
/// the interval while connected, see [`TickMonitor`]; the daemon reports
/// bus ticks to `monitor`); otherwise bus ticks rule. Silence sets
/// `health`'s tick-source signal, logged both ways.
pub struct FallbackGate {
    /// The bus's connection status.
    pub status: watch::Receiver<BusStatus>,
    /// The gaps between bus ticks.
    pub monitor: Arc<std::sync::Mutex<TickMonitor>>,
    /// Told when the tick source falls silent.
    pub health: Arc<Health>,
    /// The timer's period (the monitor allows twice that).
    pub interval: Duration,
    /// `--exclusive`: never tick from the host's own timer. A host cut off
    /// from the broker cannot know whether its standby took over, and two
    /// hosts running one agent's checks is worse than a pause.
    pub exclusive: bool,
}

impl crate::source::timer::Gate for FallbackGate {
    fn admit(&mut self, now_ms: u64) -> Admit {
        let bus = *self.status.borrow();
        let (transition, silent) = {
            let mut monitor = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
            let transition = monitor.poll(bus == BusStatus::Connected, now_ms);
            (transition, monitor.is_silent())
        };
        if transition == Some(Transition::Silent) {
            self.health.set_tick_source_silent(true);
            warn!(
                event = "tick_source_silent",
                allowance = %humantime::format_duration(self.interval * 2),
                "tick source silent: no bus tick within 2 × the tick interval; degraded, the host's own timer takes over"
            );
        }
        match bus {
            _ if self.exclusive => Admit::Skip,
            BusStatus::Disconnected => Admit::Fallback {
                cause: "broker_unreachable",
                why: "degraded: broker unreachable, tick from the host's own timer",
            },
            BusStatus::Connected if silent => Admit::Fallback {
                cause: "tick_source_silent",
                why: "degraded: tick source silent, tick from the host's own timer",
            },
            // A standby runs nothing: the active host has the ticks.
            BusStatus::Standby | BusStatus::Connected | BusStatus::Connecting => Admit::Skip,
        }
    }
}

/// Who the host says it is in the envelopes it sends.
pub(crate) fn source(kind: &str) -> envelope::Source {
    envelope::Source {
        host: crate::store::hostname(),
        kind: kind.to_string(),
        app: APP_ID.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_sits_beside_the_state_file() {
        assert_eq!(
            default_outbox_path(Path::new("/a/heartbeat.state.json")),
            Path::new("/a/heartbeat.outbox.jsonl")
        );
        assert_eq!(
            default_outbox_path(Path::new("/a/custom.json")),
            Path::new("/a/custom.outbox.jsonl")
        );
        assert_eq!(
            default_outbox_path(Path::new("/a/state")),
            Path::new("/a/state.outbox.jsonl")
        );
    }

    fn gate(status: BusStatus, exclusive: bool) -> FallbackGate {
        let (_tx, status) = watch::channel(status);
        FallbackGate {
            status,
            monitor: Arc::new(std::sync::Mutex::new(TickMonitor::new(1_000))),
            health: Arc::new(Health::default()),
            interval: Duration::from_secs(1),
            exclusive,
        }
    }

    #[test]
    fn the_fallback_timer_ticks_only_for_a_host_cut_off_without_exclusive() {
        use crate::source::timer::Gate as _;
        let ticks = |status, exclusive| {
            matches!(
                gate(status, exclusive).admit(1_000_000),
                Admit::Fallback { .. }
            )
        };
        assert!(ticks(BusStatus::Disconnected, false));
        // A standby runs nothing, and with --exclusive a host cut off from
        // the broker does not either: its standby may have taken over.
        assert!(!ticks(BusStatus::Standby, true));
        assert!(!ticks(BusStatus::Disconnected, true));
        assert!(!ticks(BusStatus::Connected, false));
    }
}
