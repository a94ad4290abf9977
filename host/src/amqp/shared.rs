//! One broker connection for many agents (`run --agents`, a repeated
//! `--config`). Each agent's bus keeps its own two channels (consuming its
//! inbox, publishing with confirms), its outbox and its reconnect loop; what
//! it shares is the TCP connection, its I/O thread and its frame buffers
//! (about 1 MiB each). A connection carries at most `per_connection`
//! agents (`--agents-per-connection`, at most [`AGENTS_PER_CONNECTION`]:
//! two channels each, within RabbitMQ's default `channel_max` of 2047);
//! more agents open another. lapin checks every channel of a connection
//! for flow control before each frame it writes, so a frame costs more the
//! more channels share its connection: see BENCHMARKS.md for the default.
//!
//! When the connection is lost every agent's session ends; the first agent
//! to try again opens the new connection and the others take it. A failed
//! attempt is remembered for [`RETRY_FLOOR`], so that a thousand agents
//! finding the broker down make one attempt, not a thousand.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lapin::Connection;
use lapin::uri::AMQPUri;
use tracing::{debug, info};

use super::connect;

/// The most agents one connection can carry: two channels each, under
/// RabbitMQ's default `channel_max` (2047).
pub const AGENTS_PER_CONNECTION: usize = 1000;

/// The agents on one connection unless `--agents-per-connection` says.
pub const DEFAULT_AGENTS_PER_CONNECTION: usize = 100;

/// How long a failed connection attempt stands for every agent of its
/// connection before one of them tries again.
pub const RETRY_FLOOR: Duration = Duration::from_millis(500);

/// The connections the agents of one process share.
pub struct SharedConnections {
    uri: AMQPUri,
    per_connection: usize,
    lanes: std::sync::Mutex<Vec<Arc<Lane>>>,
}

impl std::fmt::Debug for SharedConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnections")
            .field("connections", &self.lanes().len())
            .finish_non_exhaustive()
    }
}

/// One shared connection and the agents assigned to it.
pub(crate) struct Lane {
    index: usize,
    uri: AMQPUri,
    members: AtomicUsize,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    connection: Option<Arc<Connection>>,
    failed: Option<(Instant, String)>,
}

impl SharedConnections {
    /// Connections to `url` for the agents to come, `per_connection` on
    /// each (1 to [`AGENTS_PER_CONNECTION`]); none is opened yet.
    pub fn new(
        url: &str,
        per_connection: usize,
    ) -> Result<Arc<SharedConnections>, connect::UrlError> {
        Ok(Arc::new(SharedConnections {
            uri: connect::parse_url(url)?,
            per_connection: per_connection.clamp(1, AGENTS_PER_CONNECTION),
            lanes: std::sync::Mutex::new(Vec::new()),
        }))
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Lane>>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one more agent: the first connection with room.
    pub(crate) fn assign(&self) -> Arc<Lane> {
        let mut lanes = self.lanes();
        if let Some(lane) = lanes
            .iter()
            .find(|l| l.members.load(Ordering::Relaxed) < self.per_connection)
        {
            lane.members.fetch_add(1, Ordering::Relaxed);
            return Arc::clone(lane);
        }
        let lane = Arc::new(Lane {
            index: lanes.len(),
            uri: self.uri.clone(),
            members: AtomicUsize::new(1),
            slot: tokio::sync::Mutex::new(Slot::default()),
        });
        lanes.push(Arc::clone(&lane));
        lane
    }

    /// Closes every connection; call once every agent's bus has shut down.
    pub async fn close(&self) {
        let lanes: Vec<Arc<Lane>> = self.lanes().drain(..).collect();
        for lane in lanes {
            let Some(connection) = lane.slot.lock().await.connection.take() else {
                continue;
            };
            let closed = match Arc::try_unwrap(connection) {
                Ok(connection) => connect::close(connection, 200, "shutting down").await,
                // A session still holds it (it is ending): close without the join.
                Err(connection) => connection.close(200, "shutting down").await,
            };
            match closed {
                Ok(()) => {
                    info!(
                        event = "connection_closed",
                        connection = lane.index,
                        "closed the shared broker connection"
                    );
                }
                Err(e) => debug!("closing the shared connection: {e}"),
            }
        }
    }
}

impl Lane {
    /// The lane's connection, opened (or opened again) if it is not
    /// connected; a failure within [`RETRY_FLOOR`] of the last is returned
    /// without a new attempt.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, String> {
        let mut slot = self.slot.lock().await;
        if let Some(connection) = &slot.connection {
            if connection.status().connected() {
                return Ok(Arc::clone(connection));
            }
            slot.connection = None;
        }
        if let Some((at, why)) = &slot.failed
            && at.elapsed() < RETRY_FLOOR
        {
            return Err(why.clone());
        }
        let name = format!("heartbeat-host agents #{}", self.index);
        match connect::connect(&self.uri, &name).await {
            Ok(connection) => {
                let connection = Arc::new(connection);
                slot.connection = Some(Arc::clone(&connection));
                slot.failed = None;
                info!(
                    event = "shared_connection_open",
                    connection = self.index,
                    agents = self.members.load(Ordering::Relaxed),
                    "opened the broker connection the agents share"
                );
                Ok(connection)
            }
            Err(e) => {
                let why = e.to_string();
                slot.failed = Some((Instant::now(), why.clone()));
                Err(why)
            }
        }
    }

    /// One agent less on this connection (its bus has shut down).
    pub(crate) fn leave(&self) {
        let _ = self
            .members
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}
