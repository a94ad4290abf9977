//! Everything the host keeps on disk, and the one way it writes a file:
//! atomically ([`write_atomically`]). [`state`] is the state file and its
//! writer thread, [`liveness`] the kstlib-format liveness file and its probe.
//! Reading `heartbeat.json` goes through [`load_config`], so that every
//! command reads it the same way.

pub mod liveness;
pub mod state;

use std::io::Write as _;
use std::path::Path;

use heartbeat_core::config::{self, ConfigError, Loaded};

/// The directory a file path lives in: its parent, or `.` for a bare
/// file name. Relative grant paths resolve against the config's, and the
/// config watcher watches it.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Reads and validates the `heartbeat.json` at `path`.
pub fn load_config(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    config::parse(&text, &path.display().to_string())
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `HOSTNAME`, or
/// `localhost`), as the liveness file and the envelopes name it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Replaces `path` with `bytes` so that readers see the old or the new
/// content, never a mix, and the new content survives a crash once this
/// returns: temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dir_of(path);
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
