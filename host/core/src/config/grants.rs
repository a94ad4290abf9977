//! Capability grants of a check (`"grants"` in `heartbeat.json`): what a
//! handler may touch beyond its own memory. Nothing is granted by default.
//!
//! ```json
//! "grants": {
//!   "dirs": {"/data": {"path": "/var/lib/agent/memory", "readOnly": false}},
//!   "emit": ["alerts.#"]
//! }
//! ```

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

/// The validated grants of one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Directories the handler sees, in file order.
    pub dirs: Vec<DirGrantConfig>,
    /// Event-type patterns (AMQP topic syntax) the handler may emit beyond
    /// its own `agent.<agent>.` namespace.
    pub emit: Vec<String>,
}

/// One granted directory, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrantConfig {
    /// The absolute path the handler opens, e.g. `/data`.
    pub guest_path: String,
    /// The host directory, as written (relative paths are relative to the
    /// config file's directory; see [`DirGrantConfig::host_path_from`]).
    pub host_path: PathBuf,
    /// Whether writes are refused.
    pub read_only: bool,
}

impl DirGrantConfig {
    /// The host directory, resolving a relative path against `config_dir`.
    pub fn host_path_from(&self, config_dir: &Path) -> PathBuf {
        if self.host_path.is_absolute() {
            self.host_path.clone()
        } else {
            config_dir.join(&self.host_path)
        }
    }
}

/// `grants` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawGrants {
    #[serde(default)]
    dirs: IndexMap<String, RawDirGrant>,
    #[serde(default)]
    emit: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDirGrant {
    path: String,
    #[serde(default)]
    read_only: bool,
}

impl RawGrants {
    /// Validates; errors are (field path below `grants`, message).
    pub(crate) fn validate(self) -> Result<Grants, (String, String)> {
        let mut dirs = Vec::with_capacity(self.dirs.len());
        for (guest, raw) in self.dirs {
            if !guest.starts_with('/') || guest.split('/').any(|part| part == "..") {
                return Err((
                    format!("dirs.{guest}"),
                    format!("expected an absolute guest path such as \"/data\", found {guest:?}"),
                ));
            }
            if raw.path.is_empty() {
                return Err((
                    format!("dirs.{guest}.path"),
                    "expected a host directory, found \"\"".into(),
                ));
            }
            dirs.push(DirGrantConfig {
                guest_path: guest,
                host_path: PathBuf::from(raw.path),
                read_only: raw.read_only,
            });
        }
        for (i, pattern) in self.emit.iter().enumerate() {
            if !crate::topic::is_pattern(pattern) {
                return Err((
                    format!("emit[{i}]"),
                    format!(
                        "expected a routing-key pattern such as \"alerts.#\", found {pattern:?}"
                    ),
                ));
            }
        }
        Ok(Grants {
            dirs,
            emit: self.emit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Grants, (String, String)> {
        serde_json::from_str::<RawGrants>(json)
            .expect("shape")
            .validate()
    }

    #[test]
    fn dirs_and_emit_patterns_are_read() {
        let g = validate(
            r#"{"dirs": {"/data": {"path": "mem", "readOnly": true}}, "emit": ["alerts.#"]}"#,
        )
        .expect("valid");
        assert_eq!(g.dirs[0].guest_path, "/data");
        assert!(g.dirs[0].read_only);
        assert_eq!(
            g.dirs[0].host_path_from(Path::new("/etc/agent")),
            Path::new("/etc/agent/mem")
        );
        assert_eq!(g.emit, ["alerts.#"]);
    }

    #[test]
    fn relative_or_escaping_guest_paths_are_refused() {
        assert_eq!(
            validate(r#"{"dirs": {"data": {"path": "/x"}}}"#)
                .expect_err("relative")
                .0,
            "dirs.data"
        );
        assert!(validate(r#"{"dirs": {"/a/../b": {"path": "/x"}}}"#).is_err());
        assert!(validate(r#"{"emit": ["alerts..x"]}"#).is_err());
    }
}
