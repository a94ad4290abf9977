//! What the host refused one run (an HTTP origin, a name lookup, a socket
//! peer, a connection past the run's bound): each refusal is logged as a
//! warning naming the check and becomes a line of the run's failure
//! reason, so that an operator sees which grant or limit was hit even when
//! the handler's own message does not say. What was refused is chosen by
//! the guest, so both the warning and the line are redacted first.

use std::sync::{Arc, Mutex};

use super::redact::Redactor;

/// The most distinct refusals kept for the reason.
const KEPT: usize = 8;

/// The refusals of one run; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    inner: Arc<Mutex<Kept>>,
    check: Arc<str>,
    redactor: Redactor,
}

#[derive(Debug, Default)]
struct Kept {
    lines: Vec<String>,
    /// A refusal that fails the run even when the handler says success
    /// (a limit it ran into, not a grant it lacks).
    fatal: bool,
}

impl Refusals {
    /// The refusals of a run of `check`, redacted with `redactor`.
    pub(super) fn new(check: &str, redactor: Redactor) -> Refusals {
        Refusals {
            inner: Arc::default(),
            check: Arc::from(check),
            redactor,
        }
    }

    /// Logs `warning` with what was refused and keeps `what` for the
    /// run's reason (the first [`KEPT`] distinct ones).
    pub fn refuse(&self, warning: &str, what: String) {
        self.log_and_keep(warning, what, false);
    }

    /// [`Refusals::refuse`], and the run fails whatever the handler says.
    pub fn refuse_and_fail(&self, warning: &str, what: String) {
        self.log_and_keep(warning, what, true);
    }

    fn log_and_keep(&self, warning: &str, what: String, fatal: bool) {
        let what = self.redactor.text(&what).into_owned();
        tracing::warn!(check = %self.check, refused = %what, "{warning}");
        self.keep(what, fatal);
    }

    /// Logs a warning about the run whose text may hold guest-chosen
    /// parts (an origin the guest picked under a wildcard grant), redacted.
    pub fn warn(&self, text: &str) {
        tracing::warn!(check = %self.check, "{}", self.redactor.text(text));
    }

    /// Keeps `what` for the reason without logging it (a cap the guest
    /// ran into, reported by the guest's own call too).
    pub fn note(&self, what: String) {
        let what = self.redactor.text(&what).into_owned();
        self.keep(what, false);
    }

    fn keep(&self, what: String, fatal: bool) {
        if let Ok(mut kept) = self.inner.lock() {
            kept.fatal |= fatal;
            if kept.lines.len() < KEPT && !kept.lines.contains(&what) {
                kept.lines.push(what);
            }
        }
    }

    /// The refusals so far, in order.
    pub fn list(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|kept| kept.lines.clone())
            .unwrap_or_default()
    }

    /// Whether a refusal so far fails the run.
    pub fn fails_the_run(&self) -> bool {
        self.inner.lock().map(|kept| kept.fatal).unwrap_or(false)
    }
}
