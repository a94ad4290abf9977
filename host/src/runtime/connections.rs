//! The descriptors guests may hold: at most `maxConnections` open at once
//! per run (HTTP connections the host makes for it, and sockets it
//! creates), and, across every run of the process, at most what the
//! host's descriptor limit leaves after a reserve for the host's own files
//! (state, outbox, kv stores, the cache, the broker connection), so that
//! no guest can make the host fail to write what it must.
//!
//! A connection past either bound is refused to the guest (an error from
//! its call, not a trap) and fails the run, with the bound in its reason.
//! An HTTP connection counts until it closes; a socket counts from its
//! creation until the run ends (wasmtime-wasi does not tell the host when
//! a guest drops one), so a run may create at most `maxConnections`
//! sockets in all.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::refusals::Refusals;

/// The descriptors the host keeps for itself, at least: the soft limit
/// minus this (or a quarter of it, whichever is more) is what guests share.
const HOST_RESERVE: u64 = 256;

/// The process-wide share of descriptors for guests' connections.
#[derive(Debug, Clone)]
pub struct GuestDescriptors {
    permits: Arc<Semaphore>,
    size: usize,
}

impl GuestDescriptors {
    /// Raises the soft descriptor limit to the hard one (as most servers
    /// do: it costs nothing until used), and gives guests what it leaves
    /// after the host's reserve.
    pub fn from_process_limit() -> GuestDescriptors {
        let limit = raise_descriptor_limit();
        let reserve = HOST_RESERVE.max(limit / 4);
        let size = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
        tracing::debug!(
            descriptors = limit,
            guests = size,
            "descriptors for guests' connections"
        );
        GuestDescriptors::sized(size)
    }

    /// A share of `size` descriptors (tests, and the limit's result).
    pub fn sized(size: usize) -> GuestDescriptors {
        let size = size.min(Semaphore::MAX_PERMITS);
        GuestDescriptors {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// How many descriptors guests share.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.size
    }
}

/// The soft `RLIMIT_NOFILE` after raising it to the hard limit (kept as it
/// was when it cannot be raised); 1024 when it cannot be read.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given, nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    limit.rlim_cur
}

/// One run's connections: its own bound and the process-wide share.
#[derive(Debug, Clone)]
pub struct Connections {
    run: Arc<Semaphore>,
    limit: u32,
    process: GuestDescriptors,
    refusals: Refusals,
}

/// One open connection or socket of a run; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    _run: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

impl Connections {
    /// The connections of one run, at most `limit` at once, within `process`.
    pub(super) fn new(limit: u32, process: GuestDescriptors, refusals: Refusals) -> Connections {
        Connections {
            run: Arc::new(Semaphore::new(limit as usize)),
            limit,
            process,
            refusals,
        }
    }

    /// Where the run's refusals go.
    pub(super) fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// A place for one more connection (`what`: "http connection to …",
    /// "tcp socket"), or `None` after recording a refusal that fails the
    /// run.
    pub(super) fn open(&self, what: &str) -> Option<ConnectionPermit> {
        let Ok(run) = Arc::clone(&self.run).try_acquire_owned() else {
            self.refusals.refuse_and_fail(
                "connection refused: the run holds maxConnections already",
                format!(
                    "{what}: over maxConnections ({} open at once per run)",
                    self.limit
                ),
            );
            return None;
        };
        let Ok(process) = Arc::clone(&self.process.permits).try_acquire_owned() else {
            self.refusals.refuse_and_fail(
                "connection refused: guests hold every descriptor the host can spare",
                format!(
                    "{what}: the host's guests hold all {} descriptors it gives them (the rest are kept for its own files)",
                    self.process.size
                ),
            );
            return None;
        };
        Some(ConnectionPermit {
            _run: run,
            _process: process,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_gets_at_most_its_bound_and_a_closed_one_frees_its_place() {
        let refusals = Refusals::default();
        let connections = Connections::new(2, GuestDescriptors::sized(100), refusals.clone());
        let first = connections.open("a").expect("first");
        let _second = connections.open("b").expect("second");
        assert!(connections.open("c").is_none());
        assert!(refusals.fails_the_run());
        assert_eq!(
            refusals.list(),
            ["c: over maxConnections (2 open at once per run)"]
        );
        drop(first);
        assert!(connections.open("d").is_some());
    }

    #[test]
    fn runs_together_get_no_more_than_the_process_share() {
        let process = GuestDescriptors::sized(3);
        let one = Connections::new(2, process.clone(), Refusals::default());
        let refusals = Refusals::default();
        let other = Connections::new(2, process, refusals.clone());
        let _held = (one.open("a"), one.open("b"), other.open("c"));
        assert!(other.open("d").is_none(), "the share is spent");
        assert!(refusals.list()[0].contains("all 3 descriptors"));
    }

    #[test]
    fn the_host_keeps_a_reserve_of_its_descriptor_limit() {
        let share = GuestDescriptors::from_process_limit();
        let limit = raise_descriptor_limit() as usize;
        assert!(share.size() + 256 <= limit, "{} of {limit}", share.size());
        assert!(share.size() <= limit - limit / 4);
    }
}
