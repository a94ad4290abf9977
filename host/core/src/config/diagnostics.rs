//! Errors and warnings of a `heartbeat.json`, worded as "expected …, found
//! …" and positioned at the offending value's line and column.

use std::fmt;
use std::path::PathBuf;

use super::spans::Spans;

/// A warning about a file that is still valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The field path, e.g. `checks.sub_health.window.tz`.
    pub path: String,
    /// What is worth knowing about it.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a `heartbeat.json` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON or a field has the wrong shape.
    #[error("{file}:{line}:{column}: {field}: {message}")]
    Invalid {
        /// The file name as given.
        file: String,
        /// 1-based line of the offending token (0 when unknown).
        line: usize,
        /// 1-based column of the offending token (0 when unknown).
        column: usize,
        /// The field path (`.` when the whole document is at fault).
        field: String,
        /// What was expected and what was found.
        message: String,
    },
}

impl ConfigError {
    /// The field path the error is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Read { .. } => None,
        }
    }
}

/// Positions errors in one document: the first error scans the text once
/// ([`Spans`]), so a valid file pays nothing for it.
pub(super) struct Locator<'a> {
    text: &'a str,
    file: &'a str,
    spans: std::cell::OnceCell<Spans>,
}

impl<'a> Locator<'a> {
    /// A locator for `text`, named `file` in errors.
    pub(super) fn new(text: &'a str, file: &'a str) -> Locator<'a> {
        Locator {
            text,
            file,
            spans: std::cell::OnceCell::new(),
        }
    }

    /// Where the value at `field` starts, from the parse of the document's
    /// structure (never a text search, which a look-alike key in an earlier
    /// `meta` would capture).
    fn position(&self, field: &str) -> Option<(usize, usize)> {
        self.spans
            .get_or_init(|| Spans::scan(self.text))
            .locate(field)
    }

    /// An error about the value at `field`, at its position ((0, 0) when the
    /// field is not in the document).
    pub(super) fn invalid(&self, field: String, message: String) -> ConfigError {
        let (line, column) = self.position(&field).unwrap_or((0, 0));
        self.at(line, column, field, message)
    }

    /// serde's error, worded as "expected …, found …" and pointed at the
    /// start of the offending value (serde points after it) when it can be.
    pub(super) fn serde(&self, e: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
        let field = display_path(&e.path().to_string());
        let inner = e.into_inner();
        let (line, column) = self
            .position(&field)
            .unwrap_or_else(|| self.serde_position(&inner));
        self.at(line, column, field, clean_serde_message(&inner))
    }

    /// A syntax error after the document (trailing characters).
    pub(super) fn trailing(&self, e: &serde_json::Error) -> ConfigError {
        let (line, column) = self.serde_position(e);
        self.at(line, column, ".".into(), clean_serde_message(e))
    }

    /// serde_json's position in the terms of [`Spans`]: serde_json counts
    /// columns in bytes, and gives column 0 at the very start of a line
    /// (an empty file, or the end of input just after a newline); here
    /// columns count characters and start at 1.
    fn serde_position(&self, e: &serde_json::Error) -> (usize, usize) {
        let bytes = e.column();
        let column = e
            .line()
            .checked_sub(1)
            .and_then(|i| self.text.split('\n').nth(i))
            .map_or(bytes, |line| {
                line.char_indices()
                    .take_while(|&(at, _)| at < bytes)
                    .count()
            });
        (e.line(), column.max(1))
    }

    fn at(&self, line: usize, column: usize, field: String, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            field,
            message,
        }
    }
}

/// serde_path_to_error writes `?` for the root.
fn display_path(path: &str) -> String {
    if path.is_empty() || path == "?" {
        ".".to_string()
    } else {
        path.to_string()
    }
}

/// serde_json appends " at line L column C"; the location is reported
/// apart. serde's "invalid type: X, expected Y" is turned around to say
/// first what was expected: "expected Y, found X".
fn clean_serde_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => &message,
    };
    expected_found(message)
}

/// Rewrites serde's error wording as "expected …, found …"; other messages
/// are returned as they are.
fn expected_found(message: &str) -> String {
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some((found, expected)) = mismatch.and_then(|m| m.split_once(", expected ")) {
        return format!("expected {expected}, found {}", describe_unexpected(found));
    }
    if let Some((variant, expected)) = message
        .strip_prefix("unknown variant ")
        .and_then(|m| m.split_once(", expected "))
    {
        return format!(
            "expected {}, found \"{}\"",
            expected.replace('`', "\""),
            variant.trim_matches('`')
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!(
            "expected a field \"{}\", found none",
            field.trim_matches('`')
        );
    }
    if let Some((length, expected)) = message
        .strip_prefix("invalid length ")
        .and_then(|m| m.split_once(", expected "))
    {
        return format!("expected {expected}, found {length} elements");
    }
    message.to_string()
}

/// serde's description of a value (`string "15m"`, `integer `-5``, `map`)
/// as it would be written in JSON (`"15m"`, `-5`, `an object`).
fn describe_unexpected(found: &str) -> String {
    if let Some(string) = found.strip_prefix("string ") {
        return string.to_string();
    }
    if let (Some(open), Some(close)) = (found.find('`'), found.rfind('`'))
        && open < close
    {
        return found[open + 1..close].to_string();
    }
    match found {
        "map" => "an object".to_string(),
        "sequence" => "an array".to_string(),
        "unit value" => "null".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, parse};

    fn position(text: &str) -> (usize, usize) {
        match parse(text, "heartbeat.json") {
            Err(ConfigError::Invalid { line, column, .. }) => (line, column),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_at_the_start_of_a_line_are_at_column_1_not_0() {
        assert_eq!(position(""), (1, 1));
        assert_eq!(position("   \n"), (2, 1));
        // A control character in a key: the error is serde_json's own.
        assert_eq!(position("{\"checks\": {\"a\n"), (2, 1));
    }

    #[test]
    fn syntax_error_columns_count_characters_not_bytes() {
        // "é" is 2 bytes, "😀" 4; the stray `x` is the 11th character.
        assert_eq!(position("{\"é😀\": 1} x"), (1, 11));
        // Inside the document too, where no value starts at the error.
        assert_eq!(position("{\"a\": \"é\",\n \"日本\": x}"), (2, 8));
    }
}
