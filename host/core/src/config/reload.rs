//! What a re-read of `heartbeat.json` means, decided without touching the
//! file: the watcher reads, [`Reloader::consider`] decides, and only a
//! valid file that changes something replaces the config in force. A broken
//! or deleted file never does; the last good config stays.

use std::path::PathBuf;
use std::sync::Arc;

use super::diff::{ConfigDiff, diff};
use super::{ConfigError, ConfigWarning, HeartbeatConfig};

/// What a re-read of the file came to.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A valid file that differs from the config in force.
    Applied {
        /// The new config.
        config: Arc<HeartbeatConfig>,
        /// What changed.
        diff: ConfigDiff,
        /// The new file's warnings.
        warnings: Vec<ConfigWarning>,
    },
    /// The file is valid and means the same as the config in force
    /// (same bytes, or only formatting or unknown fields changed).
    Unchanged,
    /// The file is back after being deleted or refused, and means the same
    /// as the config in force.
    Restored,
    /// The file is invalid; the config in force stays.
    Refused(ConfigError),
    /// The file has just been deleted; the config in force stays.
    Missing,
    /// The file is still missing (already reported).
    StillMissing,
}

/// What the host checks of a parsed config beyond the file itself (its
/// directory grants name directories, `dir_grants`): the text and the
/// config, or the error that refuses it.
pub type Vet = dyn Fn(&str, &HeartbeatConfig) -> Result<(), ConfigError> + Send;

/// Tracks the config in force and decides what each re-read means.
pub struct Reloader {
    path: PathBuf,
    current: Arc<HeartbeatConfig>,
    /// The bytes last read, to skip re-parsing a file that did not change.
    last_bytes: Option<Vec<u8>>,
    missing: bool,
    refused: bool,
    vet: Option<Box<Vet>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("missing", &self.missing)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Starts from the config in force, loaded from `path`.
    pub fn new(path: PathBuf, current: Arc<HeartbeatConfig>) -> Reloader {
        Reloader {
            path,
            current,
            last_bytes: None,
            missing: false,
            refused: false,
            vet: None,
        }
    }

    /// Refuses, as it refuses an invalid file, a changed config that
    /// `vet` refuses, so that a reload applies what `run` would start on.
    pub fn vetted_by(
        mut self,
        vet: impl Fn(&str, &HeartbeatConfig) -> Result<(), ConfigError> + Send + 'static,
    ) -> Reloader {
        self.vet = Some(Box::new(vet));
        self
    }

    /// The config in force.
    pub fn current(&self) -> &Arc<HeartbeatConfig> {
        &self.current
    }

    /// The file this reloader stands for.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Decides what the result of reading the file means, and makes a valid
    /// new config the one in force.
    pub fn consider(&mut self, read: std::io::Result<Vec<u8>>) -> ReloadOutcome {
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.last_bytes = None;
                return if std::mem::replace(&mut self.missing, true) {
                    ReloadOutcome::StillMissing
                } else {
                    ReloadOutcome::Missing
                };
            }
            Err(source) => {
                self.last_bytes = None;
                self.refused = true;
                return ReloadOutcome::Refused(ConfigError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let was_missing = std::mem::replace(&mut self.missing, false);
        if self.last_bytes.as_deref() == Some(bytes.as_slice()) {
            return ReloadOutcome::Unchanged;
        }
        self.last_bytes = Some(bytes.clone());
        let was_bad = was_missing || std::mem::replace(&mut self.refused, false);
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                self.refused = true;
                return ReloadOutcome::Refused(ConfigError::Invalid {
                    file: self.path.display().to_string(),
                    line: 0,
                    column: 0,
                    field: ".".into(),
                    message: format!("expected UTF-8 text, found invalid bytes ({e})"),
                });
            }
        };
        match super::parse(&text, &self.path.display().to_string()) {
            Err(e) => {
                self.refused = true;
                ReloadOutcome::Refused(e)
            }
            Ok(loaded) if loaded.config == *self.current => {
                if was_bad {
                    ReloadOutcome::Restored
                } else {
                    ReloadOutcome::Unchanged
                }
            }
            Ok(loaded) => {
                if let Some(Err(e)) = self.vet.as_ref().map(|vet| vet(&text, &loaded.config)) {
                    // What the vet saw may change with the file unchanged
                    // (the directory is created): read it whole next time.
                    self.last_bytes = None;
                    self.refused = true;
                    return ReloadOutcome::Refused(e);
                }
                let diff = diff(&self.current, &loaded.config);
                self.current = Arc::new(loaded.config);
                ReloadOutcome::Applied {
                    config: Arc::clone(&self.current),
                    diff,
                    warnings: loaded.warnings,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> HeartbeatConfig {
        super::super::parse(json, "test.json")
            .expect("valid")
            .config
    }

    fn reloader(json: &str) -> Reloader {
        Reloader::new(PathBuf::from("heartbeat.json"), Arc::new(parsed(json)))
    }

    const A: &str = r#"{"checks": {"a": {"cadenceMs": 1000}}}"#;
    const B: &str = r#"{"checks": {"a": {"cadenceMs": 2000}}}"#;

    #[test]
    fn a_change_the_vet_refuses_is_refused_and_read_again_once_it_passes() {
        let allowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = Arc::clone(&allowed);
        let mut r = reloader(r#"{"checks": {"a": {}}}"#).vetted_by(move |_, _| {
            if gate.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    file: "heartbeat.json".into(),
                    line: 1,
                    column: 1,
                    field: "checks.b.grants.dirs./d.path".into(),
                    message: "/d does not exist".into(),
                })
            }
        });
        let changed = br#"{"checks": {"a": {}, "b": {}}}"#.to_vec();
        assert!(matches!(
            r.consider(Ok(changed.clone())),
            ReloadOutcome::Refused(_)
        ));
        assert_eq!(r.current().checks.len(), 1, "the last good config stays");
        allowed.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            r.consider(Ok(changed)),
            ReloadOutcome::Applied { .. }
        ));
        assert_eq!(r.current().checks.len(), 2);
    }

    #[test]
    fn a_valid_change_is_applied_with_its_diff() {
        let mut r = reloader(A);
        match r.consider(Ok(B.as_bytes().to_vec())) {
            ReloadOutcome::Applied { config, diff, .. } => {
                assert_eq!(config.checks[0].cadence_ms, 2000);
                assert_eq!(diff.to_string(), "changed: a.cadenceMs 1000 → 2000");
            }
            other => panic!("expected Applied, got {other:?}"),
        }
        assert_eq!(r.current().checks[0].cadence_ms, 2000);
        assert!(matches!(
            r.consider(Ok(B.as_bytes().to_vec())),
            ReloadOutcome::Unchanged
        ));
    }

    #[test]
    fn reformatting_alone_is_unchanged() {
        let mut r = reloader(A);
        let reformatted = "{\n  \"checks\": {\"a\": {\"cadenceMs\": 1000, \"note\": 1}}\n}\n";
        assert!(matches!(
            r.consider(Ok(reformatted.as_bytes().to_vec())),
            ReloadOutcome::Unchanged
        ));
    }

    #[test]
    fn an_invalid_file_is_refused_and_the_last_good_config_stays() {
        let mut r = reloader(A);
        match r.consider(Ok(br#"{"checks": {"a": {"cadenceMs": "soon"}}}"#.to_vec())) {
            ReloadOutcome::Refused(e) => assert_eq!(e.field(), Some("checks.a.cadenceMs")),
            other => panic!("expected Refused, got {other:?}"),
        }
        assert_eq!(r.current().checks[0].cadence_ms, 1000);
        assert!(matches!(
            r.consider(Ok(b"{\"checks\": ".to_vec())),
            ReloadOutcome::Refused(_)
        ));
        assert!(matches!(
            r.consider(Ok(vec![0xff, 0xfe])),
            ReloadOutcome::Refused(_)
        ));
        // Putting the good file back is worth saying, though nothing changes.
        assert!(matches!(
            r.consider(Ok(A.as_bytes().to_vec())),
            ReloadOutcome::Restored
        ));
        assert!(matches!(
            r.consider(Ok(B.as_bytes().to_vec())),
            ReloadOutcome::Applied { .. }
        ));
    }

    #[test]
    fn a_deleted_file_keeps_the_config_until_it_reappears() {
        let mut r = reloader(A);
        let gone = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(matches!(r.consider(gone()), ReloadOutcome::Missing));
        assert!(matches!(r.consider(gone()), ReloadOutcome::StillMissing));
        assert_eq!(r.current().checks[0].cadence_ms, 1000);
        assert!(matches!(
            r.consider(Ok(A.as_bytes().to_vec())),
            ReloadOutcome::Restored
        ));
        assert!(matches!(r.consider(gone()), ReloadOutcome::Missing));
        assert!(matches!(
            r.consider(Ok(B.as_bytes().to_vec())),
            ReloadOutcome::Applied { .. }
        ));
    }

    #[test]
    fn an_unreadable_file_is_refused() {
        let mut r = reloader(A);
        let denied = Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(r.consider(denied), ReloadOutcome::Refused(_)));
    }
}
