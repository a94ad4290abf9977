//! The on-disk cache of compiled handlers: compiling a component takes
//! milliseconds for a small Rust handler and seconds for a Python one, so
//! the machine code is kept, keyed by the component's content hash and the
//! engine's fingerprint (wasmtime version, compiler settings, CPU features).

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled handlers are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_fingerprint: String,
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes
/// (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Hex of a SHA-256 digest.
fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl CompileCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> CompileCache {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_fingerprint = hex(&hasher.0.finalize())[..16].to_string();
        CompileCache {
            dir,
            engine_fingerprint,
        }
    }

    /// The default location: `$HEARTBEAT_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/heartbeat-host`, else `~/.cache/heartbeat-host`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("HEARTBEAT_CACHE_DIR").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|base| base.join("heartbeat-host"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, bytes: &[u8]) -> PathBuf {
        let key = hex(&Sha256::digest(bytes));
        self.dir
            .join(format!("{key}-{}.cwasm", self.engine_fingerprint))
    }

    /// The compiled form of `bytes`: from the cache when present and
    /// loadable, else compiled and stored. Returns whether it was a hit.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let entry = self.entry(bytes);
        // A regular file only: the entry is mapped, and a FIFO or device
        // placed in the cache must not hang or feed the loader.
        if std::fs::symlink_metadata(&entry).is_ok_and(|m| m.file_type().is_file()) {
            // SAFETY: the entry was written by `Component::serialize` of an
            // engine with the same fingerprint, into the host's own cache
            // directory, atomically (temp file + rename); wasmtime checks the
            // header and engine compatibility again before using it.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(entry = %entry.display(), "compiled-code cache entry unusable, recompiling: {e:#}")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&entry, &component) {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compiled-code cache: {e:#}");
        }
        Ok((component, false))
    }

    fn store(&self, entry: &Path, component: &Component) -> anyhow::Result<()> {
        let serialized = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        std::fs::create_dir_all(&self.dir)?;
        crate::store::write_atomically(entry, &serialized)?;
        Ok(())
    }
}
