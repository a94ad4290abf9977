//! Conditions on a JSON document, addressed by JSON pointer (RFC 6901), as
//! `http_probe`'s `expectJson` writes them:
//!
//! ```json
//! {"/status": "ok", "/queue/depth": {"lt": 1000}, "/version": {"matches": "^2\\."}}
//! ```
//!
//! A value that is not an object means equality. An object is a set of
//! operators that must all hold: `eq`, `ne` (any JSON value), `lt`, `le`,
//! `gt`, `ge` (numbers), `exists` (a boolean) and `matches` (a regular
//! expression the string at the pointer must match). Numbers compare by
//! value, so `1` equals `1.0`.

use serde_json::{Map, Value};

use super::fields::describe;
use super::{Fields, MetaError, join};

/// The operators an object condition may use, in the order they are listed
/// in error messages.
pub const OPERATORS: &[&str] = &["eq", "ne", "lt", "le", "gt", "ge", "exists", "matches"];

/// One test of the value at a pointer.
#[derive(Debug, Clone)]
pub enum Op {
    /// Equal to this value.
    Eq(Value),
    /// Not equal to this value (a missing value is not equal).
    Ne(Value),
    /// A number below this one.
    Lt(f64),
    /// A number at most this one.
    Le(f64),
    /// A number above this one.
    Gt(f64),
    /// A number at least this one.
    Ge(f64),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
    /// A string this regular expression matches (anywhere, unless anchored).
    Matches(regex::Regex),
}

/// All the operators written for one pointer.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The JSON pointer, as written (`/queue/depth`).
    pub pointer: String,
    /// The tests, all of which must hold.
    pub ops: Vec<Op>,
}

/// Parses the conditions object found at `path` (relative to `meta`),
/// keeping the order in which they are written.
pub fn parse_conditions(value: &Value, path: &str) -> Result<Vec<Condition>, MetaError> {
    let Value::Object(object) = value else {
        return Err(MetaError::new(
            path,
            format!(
                "expected an object of JSON pointers such as {{\"/status\": \"ok\"}}, found {}",
                describe(value)
            ),
        ));
    };
    if object.is_empty() {
        return Err(MetaError::new(
            path,
            "expected at least one JSON pointer condition, found {}",
        ));
    }
    object
        .iter()
        .map(|(pointer, condition)| {
            let at = join(path, pointer);
            if !pointer.starts_with('/') {
                return Err(MetaError::new(
                    at,
                    format!("expected a JSON pointer starting with \"/\", found {pointer:?}"),
                ));
            }
            check_escapes(pointer).map_err(|message| MetaError::new(at.clone(), message))?;
            let ops = match condition {
                Value::Object(operators) => parse_operators(operators, &at)?,
                other => vec![Op::Eq(other.clone())],
            };
            Ok(Condition {
                pointer: pointer.clone(),
                ops,
            })
        })
        .collect()
}

/// A `~` in a pointer must start `~0` (for `~`) or `~1` (for `/`).
fn check_escapes(pointer: &str) -> Result<(), String> {
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "expected a JSON pointer (a \"~\" is written \"~0\", a \"/\" inside a key \"~1\"), found {pointer:?}"
            ));
        }
    }
    Ok(())
}

fn parse_operators(operators: &Map<String, Value>, at: &str) -> Result<Vec<Op>, MetaError> {
    if operators.is_empty() {
        return Err(MetaError::new(
            at,
            format!(
                "expected at least one operator ({}), found {{}}; to compare with an empty object write {{\"eq\": {{}}}}",
                OPERATORS.join(", ")
            ),
        ));
    }
    let mut fields = Fields::new(operators, at);
    let mut ops = Vec::new();
    if let Some(v) = fields.get("eq") {
        ops.push(Op::Eq(v.clone()));
    }
    if let Some(v) = fields.get("ne") {
        ops.push(Op::Ne(v.clone()));
    }
    for (key, make) in [
        ("lt", Op::Lt as fn(f64) -> Op),
        ("le", Op::Le),
        ("gt", Op::Gt),
        ("ge", Op::Ge),
    ] {
        if let Some(v) = fields.get(key) {
            let n = v.as_f64().ok_or_else(|| {
                fields.error(key, format!("expected a number, found {}", describe(v)))
            })?;
            ops.push(make(n));
        }
    }
    if let Some(exists) = fields.boolean("exists")? {
        ops.push(Op::Exists(exists));
    }
    if let Some(pattern) = fields.string("matches")? {
        let regex = compile(pattern).map_err(|message| fields.error("matches", message))?;
        ops.push(Op::Matches(regex));
    }
    fields.finish()?;
    Ok(ops)
}

/// The largest compiled program a regular expression of a `meta` may
/// need (regex's default is 10 MiB): a check's patterns are small.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a regular expression from a `meta`, or says why not.
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // regex's message spans lines (the pattern, a caret, the
            // reason); the last line is the reason.
            let said = e.to_string();
            let reason = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(&said)
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            format!("expected a regular expression, found {pattern:?} ({reason})")
        })
}

/// Checks every condition against `document`; the first that does not
/// hold, in words: `/queue/depth is 5000, expected < 1000`.
pub fn evaluate(conditions: &[Condition], document: &Value) -> Result<(), String> {
    for condition in conditions {
        let found = document.pointer(&condition.pointer);
        for op in &condition.ops {
            if let Some(expected) = failure(op, found) {
                let is = found.map_or_else(|| "missing".to_string(), describe);
                return Err(format!(
                    "{} is {is}, expected {expected}",
                    condition.pointer
                ));
            }
        }
    }
    Ok(())
}

/// What `op` expected, when `found` does not satisfy it.
fn failure(op: &Op, found: Option<&Value>) -> Option<String> {
    let number = found.and_then(Value::as_f64);
    let compare = |symbol: &str, limit: f64, holds: fn(f64, f64) -> bool| match number {
        Some(n) if holds(n, limit) => None,
        Some(_) => Some(format!("{symbol} {}", show_number(limit))),
        None => Some(format!("a number {symbol} {}", show_number(limit))),
    };
    match op {
        Op::Eq(want) => match found {
            Some(v) if json_eq(v, want) => None,
            _ => Some(describe(want)),
        },
        Op::Ne(unwanted) => match found {
            Some(v) if json_eq(v, unwanted) => Some(format!("anything but {}", describe(unwanted))),
            _ => None,
        },
        Op::Lt(limit) => compare("<", *limit, |n, l| n < l),
        Op::Le(limit) => compare("<=", *limit, |n, l| n <= l),
        Op::Gt(limit) => compare(">", *limit, |n, l| n > l),
        Op::Ge(limit) => compare(">=", *limit, |n, l| n >= l),
        Op::Exists(true) => found.is_none().then(|| "it to exist".to_string()),
        Op::Exists(false) => found.is_some().then(|| "it to be absent".to_string()),
        Op::Matches(regex) => match found {
            Some(Value::String(s)) if regex.is_match(s) => None,
            Some(Value::String(_)) => Some(format!("a match of {:?}", regex.as_str())),
            _ => Some(format!("a string matching {:?}", regex.as_str())),
        },
    }
}

/// A limit as it was most likely written: `1000`, not `1000.0`.
fn show_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), in
/// arrays and objects too.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conditions(value: Value) -> Vec<Condition> {
        parse_conditions(&value, "expectJson").expect("valid conditions")
    }

    fn judge(value: Value, document: Value) -> Result<(), String> {
        evaluate(&conditions(value), &document)
    }

    fn refused(value: Value) -> MetaError {
        parse_conditions(&value, "expectJson").expect_err("refused")
    }

    const DOC: &str = r#"{"status": "ok", "queue": {"depth": 3}, "version": "2.4.1",
        "ratio": 0.5, "tags": ["a", "b"], "a/b": 1, "m~n": 2, "empty": null}"#;

    fn doc() -> Value {
        serde_json::from_str(DOC).expect("json")
    }

    #[test]
    fn a_plain_value_means_equality() {
        assert_eq!(judge(json!({"/status": "ok"}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/status": "down"}), doc()),
            Err(r#"/status is "ok", expected "down""#.into())
        );
        assert_eq!(judge(json!({"/queue/depth": 3.0}), doc()), Ok(()));
        assert_eq!(judge(json!({"/tags": ["a", "b"]}), doc()), Ok(()));
        assert_eq!(judge(json!({"/empty": null}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/missing": 1}), doc()),
            Err("/missing is missing, expected 1".into())
        );
        // Escaped keys, as RFC 6901 writes them.
        assert_eq!(judge(json!({"/a~1b": 1, "/m~0n": 2}), doc()), Ok(()));
    }

    #[test]
    fn eq_and_ne() {
        assert_eq!(judge(json!({"/status": {"eq": "ok"}}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/status": {"eq": "degraded"}}), doc()),
            Err(r#"/status is "ok", expected "degraded""#.into())
        );
        assert_eq!(
            judge(json!({"/queue": {"eq": {"depth": 3}}}), doc()),
            Ok(())
        );
        assert_eq!(judge(json!({"/status": {"ne": "down"}}), doc()), Ok(()));
        assert_eq!(judge(json!({"/missing": {"ne": "down"}}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/status": {"ne": "ok"}}), doc()),
            Err(r#"/status is "ok", expected anything but "ok""#.into())
        );
    }

    #[test]
    fn numeric_comparisons() {
        assert_eq!(judge(json!({"/queue/depth": {"lt": 1000}}), doc()), Ok(()));
        let deep = json!({"queue": {"depth": 5000}});
        assert_eq!(
            evaluate(&conditions(json!({"/queue/depth": {"lt": 1000}})), &deep),
            Err("/queue/depth is 5000, expected < 1000".into())
        );
        assert!(judge(json!({"/queue/depth": {"lt": 3}}), doc()).is_err());
        assert_eq!(judge(json!({"/queue/depth": {"le": 3}}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/queue/depth": {"le": 2}}), doc()),
            Err("/queue/depth is 3, expected <= 2".into())
        );
        assert_eq!(judge(json!({"/ratio": {"gt": 0.25}}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/ratio": {"gt": 0.5}}), doc()),
            Err("/ratio is 0.5, expected > 0.5".into())
        );
        assert_eq!(judge(json!({"/ratio": {"ge": 0.5}}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/ratio": {"ge": 1}}), doc()),
            Err("/ratio is 0.5, expected >= 1".into())
        );
        // Both bounds at once: all must hold.
        assert_eq!(
            judge(json!({"/queue/depth": {"gt": 0, "lt": 10}}), doc()),
            Ok(())
        );
        assert_eq!(
            judge(json!({"/queue/depth": {"gt": 5, "lt": 10}}), doc()),
            Err("/queue/depth is 3, expected > 5".into())
        );
        // Not a number, or missing.
        assert_eq!(
            judge(json!({"/status": {"lt": 10}}), doc()),
            Err(r#"/status is "ok", expected a number < 10"#.into())
        );
        assert_eq!(
            judge(json!({"/nope": {"ge": 1}}), doc()),
            Err("/nope is missing, expected a number >= 1".into())
        );
    }

    #[test]
    fn exists_and_matches() {
        assert_eq!(judge(json!({"/queue": {"exists": true}}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/nope": {"exists": true}}), doc()),
            Err("/nope is missing, expected it to exist".into())
        );
        assert_eq!(judge(json!({"/nope": {"exists": false}}), doc()), Ok(()));
        assert_eq!(
            judge(json!({"/status": {"exists": false}}), doc()),
            Err(r#"/status is "ok", expected it to be absent"#.into())
        );
        assert_eq!(
            judge(json!({"/version": {"matches": "^2\\."}}), doc()),
            Ok(())
        );
        assert_eq!(
            judge(json!({"/version": {"matches": "^3\\."}}), doc()),
            Err(r#"/version is "2.4.1", expected a match of "^3\\.""#.into())
        );
        assert_eq!(
            judge(json!({"/queue/depth": {"matches": "3"}}), doc()),
            Err(r#"/queue/depth is 3, expected a string matching "3""#.into())
        );
    }

    #[test]
    fn conditions_are_checked_in_the_order_written() {
        let result = judge(
            json!({"/status": "ok", "/queue/depth": {"lt": 1}, "/nope": 1}),
            doc(),
        );
        assert_eq!(result, Err("/queue/depth is 3, expected < 1".into()));
    }

    #[test]
    fn bad_conditions_are_refused_with_their_path() {
        let e = refused(json!({"/queue/depth": {"lt": "1000"}}));
        assert_eq!(e.path, "expectJson./queue/depth.lt");
        assert_eq!(
            e.to_string(),
            r#"meta.expectJson./queue/depth.lt: expected a number, found "1000""#
        );
        let e = refused(json!({"status": "ok"}));
        assert_eq!(e.path, "expectJson.status");
        assert!(e.message.contains("starting with \"/\""), "{e}");
        let e = refused(json!({"/a": {"below": 3}}));
        assert_eq!(e.path, "expectJson./a.below");
        assert!(
            e.message.starts_with("unknown field, expected one of"),
            "{e}"
        );
        let e = refused(json!({"/a": {"exists": "yes"}}));
        assert_eq!(e.path, "expectJson./a.exists");
        let e = refused(json!({"/a": {"matches": "("}}));
        assert_eq!(e.path, "expectJson./a.matches");
        assert!(
            e.message
                .starts_with(r#"expected a regular expression, found "(""#),
            "{e}"
        );
        let e = refused(json!({"/a": {"matches": 5}}));
        assert_eq!(e.message, "expected a string, found 5");
        let e = refused(json!({"/a": {}}));
        assert_eq!(e.path, "expectJson./a");
        let e = refused(json!({"/a~2": 1}));
        assert_eq!(e.path, "expectJson./a~2");
        assert_eq!(refused(json!({})).path, "expectJson");
        assert_eq!(refused(json!(["/a"])).path, "expectJson");
    }
}
