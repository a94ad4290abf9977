//! The state file on disk: read at start-up, written atomically after
//! every change by a writer thread of its own that coalesces snapshots
//! queued behind a write (group commit). Beside the config by default
//! (`<stem>.state.json`).

use std::path::{Path, PathBuf};

use heartbeat_core::state::State;
use tokio::sync::oneshot;
use tracing::error;

use super::write_atomically;

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists but is not a state file this host can read.
    #[error(
        "state file {path}:{line}:{column}: {message} (move it aside to start afresh; the host will not overwrite it)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// The default state file for a config: `<dir>/<stem>.state.json`.
pub fn default_path(config_path: &Path) -> PathBuf {
    let stem = config_path
        .file_stem()
        .map_or_else(|| "heartbeat".into(), |s| s.to_string_lossy().into_owned());
    config_path.with_file_name(format!("{stem}.state.json"))
}

/// Reads the state file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<State, StateError> {
    let text =
        match super::read::read_regular_text(path, super::read::MAX_STATE_BYTES, "state file") {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
    State::parse(&text).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    })
}

/// Writes the state file atomically.
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    write_atomically(path, &state.to_text()).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The answer to a [`Store::persist`]: `Ok` once a snapshot at least as
/// new is durable, or why it is not.
pub type Saved = oneshot::Receiver<Result<(), String>>;

/// Where the pipeline's state snapshots go: the seam that lets the pipeline
/// run on a test's in-memory store.
pub trait Store: Send + Sync {
    /// Makes `snapshot` durable. Snapshots are handed over in the order
    /// they were taken; the store may skip one that a newer one supersedes.
    fn persist(&self, snapshot: State) -> Saved;
}

/// State files written at once in the process, all agents together.
pub const CONCURRENT_STATE_WRITES: usize = 8;

static WRITE_SLOTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(CONCURRENT_STATE_WRITES);

/// Writes state snapshots to disk off the tick path, coalescing snapshots
/// that queue up behind a write into one (group commit): every caller is
/// answered once a snapshot at least as new as its own is durable. A task
/// on the tokio runtime waits for snapshots and does each write on a
/// blocking thread, so an idle agent costs no thread of its own (a host
/// serving a thousand agents has a thousand writers). The task ends once
/// every handle is dropped.
pub struct StateWriter {
    tx: tokio::sync::mpsc::UnboundedSender<(State, oneshot::Sender<Result<(), String>>)>,
}

impl StateWriter {
    /// Starts the writer for the state file at `path` on the current tokio
    /// runtime (an error outside one).
    pub fn spawn(path: PathBuf) -> std::io::Result<StateWriter> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            std::io::Error::other(format!("the state writer needs a tokio runtime: {e}"))
        })?;
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(State, oneshot::Sender<Result<(), String>>)>();
        let path = std::sync::Arc::new(path);
        runtime.spawn(async move {
            while let Some((mut latest, first)) = rx.recv().await {
                // A write slot first: many agents' writes at once would
                // each take a blocking thread and contend for the same
                // directory; a few at a time go as fast, with less churn.
                // Snapshots that came while waiting are written with it.
                let slot = WRITE_SLOTS.acquire().await;
                let mut waiters = vec![first];
                while let Ok((newer, waiter)) = rx.try_recv() {
                    latest = newer;
                    waiters.push(waiter);
                }
                let path = std::sync::Arc::clone(&path);
                let result = tokio::task::spawn_blocking(move || {
                    save(&path, &latest).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(format!("the state write did not finish: {e}")));
                drop(slot);
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Ok(StateWriter { tx })
    }
}

impl Store for StateWriter {
    fn persist(&self, snapshot: State) -> Saved {
        let (done, wait) = oneshot::channel();
        if self.tx.send((snapshot, done)).is_err() {
            error!("state writer has stopped; state not saved");
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use heartbeat_core::model::{Pause, RunStatus};
    use heartbeat_core::schedule::record_outcome;

    use super::*;

    #[test]
    fn default_path_sits_beside_the_config() {
        assert_eq!(
            default_path(Path::new("/etc/agent/heartbeat.json")),
            Path::new("/etc/agent/heartbeat.state.json")
        );
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.state.json");
        let mut state = State::default();
        record_outcome(
            state.checks.entry("a".into()).or_default(),
            42,
            10,
            &heartbeat_core::model::RetryPolicy::default(),
            RunStatus::Success,
            3,
            None,
        );
        state.paused.insert("b".into(), Pause::Flag(true));
        save(&path, &state).expect("save");
        assert_eq!(load(&path).expect("load"), state);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("h.state.json")]);
    }

    #[test]
    fn missing_file_is_empty_and_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.json");
        assert_eq!(load(&path).expect("missing is fine"), State::default());
        std::fs::write(&path, "{\"checks\": [").expect("write");
        let err = load(&path).expect_err("corrupt").to_string();
        assert!(err.contains("s.json:1:"), "{err}");
    }
}
