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
    connections: std::sync::Mutex<Vec<Arc<SharedConnection>>>,
}

impl std::fmt::Debug for SharedConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnections")
            .field("connections", &self.connections().len())
            .finish_non_exhaustive()
    }
}

/// One connection that up to `per_connection` agents' buses use, and how
/// many are assigned to it. Opened by the first bus that needs it, opened
/// again by the first that finds it lost.
pub(crate) struct SharedConnection {
    /// Its place among the process's connections (in its name and logs).
    index: usize,
    uri: AMQPUri,
    /// The agents assigned to it whose bus has not shut down.
    members: AtomicUsize,
    state: tokio::sync::Mutex<ConnectionState>,
}

/// Where a shared connection stands: open, or when and why the last attempt
/// to open it failed (so that others wait [`RETRY_FLOOR`]), or neither yet.
#[derive(Default)]
struct ConnectionState {
    /// The connection, once opened (it may since have been lost).
    connection: Option<Arc<Connection>>,
    /// The last failed attempt, when there is no connection.
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
            connections: std::sync::Mutex::new(Vec::new()),
        }))
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<Arc<SharedConnection>>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one more agent: the first connection with room.
    pub(crate) fn assign(&self) -> Arc<SharedConnection> {
        let mut connections = self.connections();
        if let Some(shared) = connections
            .iter()
            .find(|c| c.members.load(Ordering::Relaxed) < self.per_connection)
        {
            shared.members.fetch_add(1, Ordering::Relaxed);
            return Arc::clone(shared);
        }
        let shared = Arc::new(SharedConnection {
            index: connections.len(),
            uri: self.uri.clone(),
            members: AtomicUsize::new(1),
            state: tokio::sync::Mutex::new(ConnectionState::default()),
        });
        connections.push(Arc::clone(&shared));
        shared
    }

    /// Closes every connection; call once every agent's bus has shut down.
    pub async fn close(&self) {
        let connections: Vec<Arc<SharedConnection>> = self.connections().drain(..).collect();
        for shared in connections {
            let Some(connection) = shared.state.lock().await.connection.take() else {
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
                        connection = shared.index,
                        "closed the shared broker connection"
                    );
                }
                Err(e) => debug!("closing the shared connection: {e}"),
            }
        }
    }
}

impl SharedConnection {
    /// The connection, opened (or opened again) if it is not connected; a
    /// failure within [`RETRY_FLOOR`] of the last is returned without a new
    /// attempt.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, String> {
        let mut state = self.state.lock().await;
        if let Some(connection) = &state.connection {
            if connection.status().connected() {
                return Ok(Arc::clone(connection));
            }
            state.connection = None;
        }
        if let Some((at, why)) = &state.failed
            && at.elapsed() < RETRY_FLOOR
        {
            return Err(why.clone());
        }
        let name = format!("heartbeat-host agents #{}", self.index);
        match connect::connect(&self.uri, &name).await {
            Ok(connection) => {
                let connection = Arc::new(connection);
                state.connection = Some(Arc::clone(&connection));
                state.failed = None;
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
                state.failed = Some((Instant::now(), why.clone()));
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
