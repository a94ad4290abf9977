//! Reading a `meta` object field by field, with errors that name the field
//! and say what was expected and what was found, and with unknown fields
//! refused (a misspelt `maxLatncyMs` would otherwise silently check nothing).

use serde_json::{Map, Value};

use super::{MetaError, duration, join};

/// One JSON object being read: each getter marks its key as known, and
/// [`Fields::finish`] refuses any key no getter asked for.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// The object's path relative to `meta` (empty for `meta` itself).
    path: String,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// Reads `object`, found at `path` (relative to `meta`).
    pub fn new(object: &'a Map<String, Value>, path: impl Into<String>) -> Fields<'a> {
        Fields {
            object,
            path: path.into(),
            known: Vec::new(),
        }
    }

    /// Reads `value` at `path`, which must be an object.
    pub fn object(value: &'a Value, path: impl Into<String>) -> Result<Fields<'a>, MetaError> {
        let path = path.into();
        match value {
            Value::Object(object) => Ok(Fields::new(object, path)),
            other => Err(MetaError::new(
                path,
                format!("expected an object, found {}", describe(other)),
            )),
        }
    }

    /// The path of `key` in this object.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> MetaError {
        MetaError::new(self.path_of(key), message)
    }

    /// The raw value of `key`, if present (`null` counts as absent).
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.object.get(key).filter(|v| !v.is_null())
    }

    /// `key`, which must be present.
    pub fn required(&mut self, key: &'static str, expected: &str) -> Result<&'a Value, MetaError> {
        self.get(key)
            .ok_or_else(|| self.error(key, format!("expected {expected}, found none")))
    }

    /// A string, if present.
    pub fn string(&mut self, key: &'static str) -> Result<Option<&'a str>, MetaError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.error(key, format!("expected a string, found {}", describe(other))))
            }
        }
    }

    /// A non-empty string, which must be present.
    pub fn required_string(&mut self, key: &'static str) -> Result<&'a str, MetaError> {
        match self.string(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.error(key, "expected a non-empty string, found \"\"")),
            None => Err(self.error(key, "expected a string, found none")),
        }
    }

    /// A non-negative integer (an integral float such as `5.0` is accepted),
    /// if present.
    pub fn unsigned(&mut self, key: &'static str) -> Result<Option<u64>, MetaError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => as_unsigned(value).map(Some).ok_or_else(|| {
                self.error(
                    key,
                    format!("expected a non-negative integer, found {}", describe(value)),
                )
            }),
        }
    }

    /// A boolean, if present.
    pub fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, MetaError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.error(
                key,
                format!("expected true or false, found {}", describe(other)),
            )),
        }
    }

    /// A duration (`"26h"`, see [`duration`]) in milliseconds, if present.
    pub fn duration_ms(&mut self, key: &'static str) -> Result<Option<u64>, MetaError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => duration::parse_ms(s).map(Some).ok_or_else(|| {
                self.error(key, format!("expected {}, found {s:?}", duration::EXPECTED))
            }),
            Some(other) => Err(self.error(
                key,
                format!("expected {}, found {}", duration::EXPECTED, describe(other)),
            )),
        }
    }

    /// Refuses any key no getter asked for, naming the keys that are known.
    pub fn finish(self) -> Result<(), MetaError> {
        match self
            .object
            .keys()
            .find(|key| !self.known.contains(&key.as_str()))
        {
            None => Ok(()),
            Some(key) => {
                let mut known = self.known.clone();
                known.sort_unstable();
                known.dedup();
                Err(self.error(
                    key,
                    format!(
                        "unknown field, expected one of {}",
                        known
                            .iter()
                            .map(|k| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
    }
}

/// A JSON number that is a non-negative integer, or an integral float.
pub fn as_unsigned(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // Beyond 2^53 a float no longer names one integer.
    (f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&f)).then_some(f as u64)
}

/// A value as it would be written in JSON, shortened: `"15m"`, `-5`,
/// `an object`, `an array`, `null`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Object(_) => "an object".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::String(s) if s.chars().count() > 40 => {
            let cut: String = s.chars().take(40).collect();
            format!("{cut:?}…")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::super::test_object as object;

    #[test]
    fn getters_name_the_field_and_what_was_found() {
        let meta = object(json!({"url": 5, "maxAge": "26 hours", "n": -1, "ok": "yes"}));
        let mut f = Fields::new(&meta, "");
        assert_eq!(
            f.required_string("url").expect_err("number").to_string(),
            "meta.url: expected a string, found 5"
        );
        assert!(
            f.duration_ms("maxAge")
                .expect_err("bad")
                .to_string()
                .starts_with("meta.maxAge: expected a duration such as")
        );
        assert_eq!(
            f.unsigned("n").expect_err("negative").to_string(),
            "meta.n: expected a non-negative integer, found -1"
        );
        assert_eq!(
            f.boolean("ok").expect_err("string").to_string(),
            "meta.ok: expected true or false, found \"yes\""
        );
        assert_eq!(
            f.required_string("missing").expect_err("none").path,
            "missing"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_the_known_ones_listed() {
        let meta = object(json!({"url": "x", "maxLatncyMs": 5}));
        let mut f = Fields::new(&meta, "");
        f.string("url").expect("string");
        f.unsigned("maxLatencyMs").expect("absent");
        let e = f.finish().expect_err("typo");
        assert_eq!(e.path, "maxLatncyMs");
        assert_eq!(
            e.message,
            "unknown field, expected one of \"maxLatencyMs\", \"url\""
        );
    }

    #[test]
    fn nested_objects_carry_their_path() {
        let meta = object(json!({"headers": {"X": 1}}));
        let mut f = Fields::new(&meta, "");
        let headers = f.get("headers").expect("present");
        let mut h = Fields::object(headers, f.path_of("headers")).expect("object");
        assert_eq!(h.string("X").expect_err("number").path, "headers.X");
        assert_eq!(
            Fields::object(&json!([1]), "expectJson")
                .err()
                .map(|e| e.to_string()),
            Some("meta.expectJson: expected an object, found an array".to_string())
        );
        assert_eq!(as_unsigned(&json!(5.0)), Some(5));
        assert_eq!(as_unsigned(&json!(5.5)), None);
    }
}
