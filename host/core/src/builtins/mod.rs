//! The `meta` of the built-in checks, parsed by the same code in two
//! places: `heartbeat-host check`, which refuses a bad `meta` with its
//! file:line:column before anything runs, and the built-in handler itself
//! (this crate compiles to `wasm32-wasip2` too), which fails a run with the
//! same words when it is given one anyway. Each built-in has its module
//! here; [`validate`] picks the one for a handler name.
//!
//! What a `meta` means is documented in `docs/checks.md`, and each
//! built-in's JSON Schema fragment is under `schemas/checks/`.

use serde_json::{Map, Value};

pub mod duration;
pub mod expect;
pub mod fields;
pub mod file_freshness;
pub mod glob;
pub mod http_probe;
pub mod liveness_file;
pub mod rabbitmq_queue;
pub mod tcp_probe;

pub use fields::Fields;

/// Why a check's `meta` is not what its built-in handler reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("meta{}: {message}", display_path(path))]
pub struct MetaError {
    /// Where in `meta`, in the config's path syntax (`expectStatus[1]`,
    /// `headers.Authorization`); empty for `meta` itself.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

impl MetaError {
    /// An error about the value at `path` (relative to `meta`).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> MetaError {
        MetaError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path under a check's entry: `meta`, `meta.url`, `meta[0]`.
    pub fn meta_path(&self) -> String {
        format!("meta{}", display_path(&self.path))
    }
}

/// `path` joined to a parent: `.url`, `[1]`, nothing for the parent itself.
fn display_path(path: &str) -> String {
    if path.is_empty() || path.starts_with('[') {
        path.to_string()
    } else {
        format!(".{path}")
    }
}

/// Joins a child key or index to a parent path in the config's syntax.
pub fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.starts_with('[')) {
        (true, _) => child.to_string(),
        (false, true) => format!("{parent}{child}"),
        (false, false) => format!("{parent}.{child}"),
    }
}

/// Reads a check's `meta` as the host hands it to a handler (JSON text)
/// and parses it with `parse` (a built-in's `Meta::parse`); the error is
/// the text `heartbeat-host check` prints for the same `meta`, without
/// the file position.
pub fn parse_text<T>(
    text: &str,
    parse: impl FnOnce(&Map<String, Value>) -> Result<T, MetaError>,
) -> Result<T, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("meta is not JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err(MetaError::new("", "expected an object").to_string());
    };
    parse(&object).map_err(|e| e.to_string())
}

/// Validates `meta` for the built-in `handler`; `None` when `handler` is
/// not a built-in with a validated `meta` (a user's handler, or `default`).
pub fn validate(handler: &str, meta: &Map<String, Value>) -> Option<Result<(), MetaError>> {
    match handler {
        "http_probe" => Some(http_probe::Meta::parse(meta).map(drop)),
        "tcp_probe" => Some(tcp_probe::Meta::parse(meta).map(drop)),
        "file_freshness" => Some(file_freshness::Meta::parse(meta).map(drop)),
        "liveness_file" => Some(liveness_file::Meta::parse(meta).map(drop)),
        "rabbitmq_queue" => Some(rabbitmq_queue::Meta::parse(meta).map(drop)),
        _ => None,
    }
}

/// A `json!` object as the map a `Meta::parse` takes, for the tests.
#[cfg(test)]
pub(crate) fn test_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        other => panic!("the tests pass objects, not {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_reads_its_meta_text_with_checks_words() {
        let parse = |m: &Map<String, Value>| {
            let mut f = Fields::new(m, "");
            let url = f.required_string("url")?.to_string();
            f.finish()?;
            Ok(url)
        };
        assert_eq!(parse_text(r#"{"url": "x"}"#, parse), Ok("x".to_string()));
        assert_eq!(
            parse_text(r#"{"url": 1}"#, parse),
            Err("meta.url: expected a string, found 1".to_string())
        );
        assert_eq!(
            parse_text("[]", parse),
            Err("meta: expected an object".to_string())
        );
        assert!(parse_text("{", parse).is_err_and(|e| e.starts_with("meta is not JSON")));
    }

    #[test]
    fn paths_join_in_the_configs_syntax() {
        assert_eq!(join("", "url"), "url");
        assert_eq!(join("headers", "Authorization"), "headers.Authorization");
        assert_eq!(join("expectStatus", "[1]"), "expectStatus[1]");
        assert_eq!(MetaError::new("", "x").meta_path(), "meta");
        assert_eq!(MetaError::new("[0]", "x").meta_path(), "meta[0]");
        assert_eq!(
            MetaError::new("expectStatus[1]", "expected a status").to_string(),
            "meta.expectStatus[1]: expected a status"
        );
    }
}
