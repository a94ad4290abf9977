//! Handler names → compiled handlers: the built-ins embedded in the binary,
//! overridden by `*.wasm` files in the handler directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{LoadError, LoadedHandler, Runtime};

include!(concat!(env!("OUT_DIR"), "/builtin_handlers.rs"));

/// The names of the built-in handlers.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN_HANDLERS.iter().map(|(name, _)| *name)
}

/// The component bytes of a built-in handler.
pub fn builtin_bytes(name: &str) -> Option<&'static [u8]> {
    BUILTIN_HANDLERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The handler name a file in the handler directory provides: the stem of
/// `NAME.wasm`. The one rule for which files count, at start-up, in the
/// watcher, in `check` and in `invoke`: hidden files (`.NAME.wasm`, the
/// temporary files of editors and deploy tools) provide none.
pub fn handler_name_of(path: &Path) -> Option<String> {
    if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
        return None;
    }
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|stem| !stem.is_empty() && !stem.starts_with('.'))
        .map(str::to_string)
}

/// The handlers in service, shared between the tick path and the loaders.
#[derive(Default)]
pub struct Registry {
    handlers: RwLock<BTreeMap<String, Arc<LoadedHandler>>>,
}

/// Why a handler name did not resolve.
#[derive(Debug, Clone, thiserror::Error)]
#[error("handler {name:?} not found (built-in: {builtins}; {dir})")]
pub struct NotFound {
    name: String,
    builtins: String,
    dir: String,
}

impl NotFound {
    /// `name` is neither a built-in nor a file in `dir`.
    pub fn new(name: &str, dir: Option<&Path>) -> NotFound {
        NotFound {
            name: name.to_string(),
            builtins: builtin_names().collect::<Vec<_>>().join(", "),
            dir: match dir {
                Some(d) => format!("no {name}.wasm in {}", d.display()),
                None => "no handler directory given".to_string(),
            },
        }
    }
}

impl Registry {
    /// A registry holding every built-in handler, compiled (or taken from
    /// the compiled-code cache).
    pub fn with_builtins(runtime: &Runtime) -> Result<Registry, LoadError> {
        let registry = Registry::default();
        for name in builtin_names() {
            if let Some(handler) = load_builtin(runtime, name) {
                registry.insert(handler?);
            }
        }
        Ok(registry)
    }

    /// The handler in service under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedHandler>> {
        self.read().get(name).cloned()
    }

    /// Resolves `name`, or says what exists instead.
    pub fn resolve(&self, name: &str, dir: Option<&Path>) -> Result<Arc<LoadedHandler>, NotFound> {
        self.get(name).ok_or_else(|| NotFound::new(name, dir))
    }

    /// Puts a handler in service, replacing any of the same name; returns the one it replaced.
    pub fn insert(&self, handler: LoadedHandler) -> Option<Arc<LoadedHandler>> {
        let mut map = self.handlers.write().unwrap_or_else(|p| p.into_inner());
        map.insert(handler.name.clone(), Arc::new(handler))
    }

    /// Takes a handler out of service.
    pub fn remove(&self, name: &str) -> Option<Arc<LoadedHandler>> {
        let mut map = self.handlers.write().unwrap_or_else(|p| p.into_inner());
        map.remove(name)
    }

    /// The names in service, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<LoadedHandler>>> {
        self.handlers.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The [`LoadedHandler::origin`](crate::runtime::LoadedHandler) of a
/// built-in handler.
pub const BUILTIN_ORIGIN: &str = "built-in";

/// Where a handler comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerSource {
    /// Embedded in the binary.
    BuiltIn,
    /// A `NAME.wasm` in the handler directory (which wins over a built-in).
    File(PathBuf),
}

/// What provides handler `name`: `NAME.wasm` among the handler directory's
/// `files` first, then a built-in of that name. The one resolution order
/// of the host, `check` and `invoke`.
pub fn source_of(name: &str, builtins: &[&str], files: &[PathBuf]) -> Option<HandlerSource> {
    match files
        .iter()
        .find(|f| handler_name_of(f).as_deref() == Some(name))
    {
        Some(path) => Some(HandlerSource::File(path.clone())),
        None if builtins.contains(&name) => Some(HandlerSource::BuiltIn),
        None => None,
    }
}

/// Compiles one built-in handler.
pub fn load_builtin(runtime: &Runtime, name: &str) -> Option<Result<LoadedHandler, LoadError>> {
    builtin_bytes(name).map(|bytes| runtime.load(name, BUILTIN_ORIGIN, bytes))
}

/// The `*.wasm` files of a handler directory, sorted by path.
pub fn handler_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && handler_name_of(path).is_some())
        .collect();
    files.sort();
    Ok(files)
}

/// Compiles one handler file.
pub fn load_file(runtime: &Runtime, path: &Path) -> Result<LoadedHandler, LoadError> {
    let origin = path.display().to_string();
    let name = handler_name_of(path).ok_or_else(|| LoadError::Compile {
        origin: origin.clone(),
        reason: "not a .wasm file".into(),
    })?;
    let bytes = runtime
        .read_handler_file(path)
        .map_err(|e| LoadError::Compile {
            origin: origin.clone(),
            reason: format!("cannot read: {e}"),
        })?;
    runtime.load(&name, &origin, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_built_in() {
        assert!(builtin_names().any(|n| n == "default"));
        assert!(builtin_bytes("default").is_some_and(|b| b.starts_with(b"\0asm")));
    }

    #[test]
    fn only_wasm_files_name_handlers() {
        assert_eq!(
            handler_name_of(Path::new("/h/disk_usage.wasm")).as_deref(),
            Some("disk_usage")
        );
        assert_eq!(handler_name_of(Path::new("/h/notes.txt")), None);
        assert_eq!(handler_name_of(Path::new("/h/.disk.wasm.swp")), None);
        assert_eq!(handler_name_of(Path::new("/h/.disk.wasm")), None);
    }
}
