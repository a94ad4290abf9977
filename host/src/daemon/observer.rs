//! What the daemon's rooms say as things happen, in their own values: a
//! tick taken, a tick planned, a run recorded, heartbeat.json read again,
//! a handler file taken in. They are told as they happen (a run is
//! counted before its log line, so whoever reads the log can scrape it),
//! to an [`Observer`]; the one the host runs with is the process's
//! metrics, in `observed.rs`. Every method does nothing unless
//! implemented, so a test observes only what it asserts on.

use heartbeat_core::config::CheckConfig;
use heartbeat_core::config::reload::ReloadOutcome;
use heartbeat_core::model::RunReport;
use heartbeat_core::schedule::Plan;
use heartbeat_core::soft_hard::Verdict;

use crate::observe::metrics::TickSource;
use crate::source::Tick;
use crate::watch::handlers::HandlerFileOutcome;

/// Told of what happens, on the thread where it happens.
pub trait Observer: Send + Sync {
    /// A tick was taken from `source`, before its pipeline saw it.
    fn tick_taken(&self, _source: TickSource) {}

    /// `plan` is what a tick's selection decided.
    fn tick_planned(&self, _plan: &Plan) {}

    /// `agent`'s run of `check` on `tick` ended as `report`, and the
    /// state records it as `verdict`.
    fn run_recorded(
        &self,
        _agent: &str,
        _tick: &Tick,
        _check: &CheckConfig,
        _report: &RunReport,
        _verdict: &Verdict,
    ) {
    }

    /// An agent's heartbeat.json was read again and came to `outcome`.
    fn config_read(&self, _outcome: &ReloadOutcome) {}

    /// A file of a handler directory was taken in.
    fn handler_file(&self, _outcome: HandlerFileOutcome) {}
}

/// Observes nothing: what a config watch started without a host (the
/// benches) reports to.
pub struct Unobserved;

impl Observer for Unobserved {}
