//! Everything the host keeps on disk, and the one way it writes a file:
//! atomically ([`write_atomically`]). [`state`] is the state file and its
//! writer thread, [`liveness`] the kstlib-format liveness file and its probe,
//! [`kv`] the checks' key-value stores.
//! Reading `heartbeat.json` goes through [`load_config`], so that every
//! command reads it the same way; a host about to run it reads it through
//! [`load_config_to_run`], which also refuses what [`vet_for_run`] refuses
//! (as a live reload does).

pub mod kv;
pub mod liveness;
pub mod read;
pub mod state;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use heartbeat_core::config::dir_grants::{self, PathKind};
use heartbeat_core::config::{self, ConfigError, HeartbeatConfig, Loaded};

/// The directory a file path lives in: its parent, or `.` for a bare
/// file name. Relative grant paths resolve against the config's, and the
/// config watcher watches it.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// What is at `path` now, for a directory grant (links followed).
pub fn path_kind(path: &Path) -> PathKind {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => PathKind::Directory,
        Ok(_) => PathKind::NotADirectory,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PathKind::Missing,
        Err(e) => PathKind::Unreadable(e.to_string()),
    }
}

/// What a host checks of the `heartbeat.json` at `config_path` before it
/// runs it, at start and at every reload: its directory grants name
/// directories (`heartbeat_core::config::dir_grants`, relative paths from
/// the file's directory).
pub fn vet_for_run(
    config_path: &Path,
) -> impl Fn(&str, &HeartbeatConfig) -> Result<(), ConfigError> + Send + 'static {
    let file = config_path.display().to_string();
    let dir = dir_of(config_path).to_path_buf();
    move |text, config| dir_grants::validate(text, &file, config, &dir, path_kind)
}

/// [`load_config`], refused as a reload refuses it ([`vet_for_run`]).
pub fn load_config_to_run(path: &Path) -> Result<Loaded, ConfigError> {
    let (text, loaded) = load_config_text(path)?;
    vet_for_run(path)(&text, &loaded.config)?;
    Ok(loaded)
}

/// Reads and validates the `heartbeat.json` at `path`.
pub fn load_config(path: &Path) -> Result<Loaded, ConfigError> {
    load_config_text(path).map(|(_, loaded)| loaded)
}

/// [`load_config`], also giving the text it parsed (to position errors
/// found later, such as a built-in check's bad `meta`).
pub fn load_config_text(path: &Path) -> Result<(String, Loaded), ConfigError> {
    let text = read::read_regular_text(path, read::MAX_CONFIG_BYTES, "heartbeat.json").map_err(
        |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
    )?;
    let loaded = config::parse(&text, &path.display().to_string())?;
    Ok((text, loaded))
}

/// A file beside the state file `state_path`, named after its stem:
/// `x.state.json` (or `x.json`, or `x`) with `suffix` `.kv` gives `x.kv`.
/// The outbox and the key-value stores are found this way.
pub fn beside_state(state_path: &Path, suffix: &str) -> PathBuf {
    let name = state_path
        .file_name()
        .map_or_else(|| "heartbeat".into(), |n| n.to_string_lossy().into_owned());
    let stem = name
        .strip_suffix(".state.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(&name);
    state_path.with_file_name(format!("{stem}{suffix}"))
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

/// Removes the temp files [`write_atomically`] left beside `path` when a
/// process was killed between writing and renaming (`.NAME.tmp.PID`, for
/// a PID that is not running): nothing else ever removes them. Returns how
/// many went; failures are logged, not fatal.
pub fn remove_stale_temps(path: &Path) -> usize {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return 0;
    };
    let prefix = format!(".{name}.tmp.");
    let Ok(entries) = std::fs::read_dir(dir_of(path)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if alive {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(file = %entry.path().display(), "cannot remove a stale temp file: {e}")
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            event = "stale_temps_removed",
            file = %path.display(),
            removed,
            "removed {removed} temp file(s) a killed host left beside {}",
            path.display()
        );
    }
    removed
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("heartbeat.state.json");
        std::fs::write(&state, "{}").expect("state");
        // PID 4194304 is past Linux's pid_max ceiling: never running.
        let dead = dir.path().join(".heartbeat.state.json.tmp.4194304");
        let ours = dir
            .path()
            .join(format!(".heartbeat.state.json.tmp.{}", std::process::id()));
        let other = dir.path().join(".other.json.tmp.4194304");
        let odd = dir.path().join(".heartbeat.state.json.tmp.notapid");
        for f in [&dead, &ours, &other, &odd] {
            std::fs::write(f, "x").expect("temp");
        }
        assert_eq!(remove_stale_temps(&state), 1);
        assert!(!dead.exists());
        assert!(ours.exists() && other.exists() && odd.exists() && state.exists());
    }
}
