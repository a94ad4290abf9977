//! Where a run's outcome goes once it is recorded: the seam between the
//! pipeline and a transport. A [`Sink`] takes each finished run and answers
//! with a [`Receipt`] that resolves once the run's events are safe (for the
//! bus: confirmed by the broker, or in the on-disk outbox). The bus is one
//! sink (`impl Sink for Bus` lives with the bus, in `amqp/sink.rs`: this
//! room knows no transport), the JSON-lines events log another
//! ([`events_log`]); without either, [`Discard`].
//!
//! Adding a transport means implementing [`Sink`] and choosing it in
//! `daemon::run`; the pipeline does not change.

pub mod events_log;

use tokio::sync::oneshot;

use heartbeat_core::config::CheckConfig;

use heartbeat_core::soft_hard::Verdict;

use crate::source::Tick;
use heartbeat_core::model::RunReport;

/// One finished run, as a sink sees it.
#[derive(Debug, Clone, Copy)]
pub struct FinishedRun<'a> {
    /// The tick it ran on.
    pub tick: &'a Tick,
    /// The check, as configured when the run was selected.
    pub check: &'a CheckConfig,
    /// What the run came to.
    pub report: &'a RunReport,
    /// What the run did to the check's state (ok, soft, hard), and the
    /// change to report, if any.
    pub verdict: &'a Verdict,
}

/// Takes finished runs somewhere: the bus, a file, a test's recorder.
pub trait Sink: Send + Sync {
    /// Hands over one run's events. Called as each run ends, once its
    /// outcome is recorded (the state is being saved meanwhile); the tick
    /// is answered only once every receipt has resolved.
    fn publish(&self, run: FinishedRun<'_>) -> Receipt;
}

/// Resolves once a run's events are safe (confirmed by the broker or in the
/// outbox, appended to a file, ...).
#[derive(Debug)]
pub struct Receipt(Option<oneshot::Receiver<()>>);

impl Receipt {
    /// Already safe: the sink finished its work before returning.
    pub fn done() -> Receipt {
        Receipt(None)
    }

    /// Safe once `confirmed` fires; lost if its sender is dropped first.
    pub fn pending(confirmed: oneshot::Receiver<()>) -> Receipt {
        Receipt(Some(confirmed))
    }

    /// Waits; false when the sink stopped first (the events were lost).
    pub async fn wait(self) -> bool {
        match self.0 {
            None => true,
            Some(confirmed) => confirmed.await.is_ok(),
        }
    }
}

/// The sink without a broker or an events log: events go nowhere (they
/// are still counted in the run's log line).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Sink for Discard {
    fn publish(&self, _run: FinishedRun<'_>) -> Receipt {
        Receipt::done()
    }
}
