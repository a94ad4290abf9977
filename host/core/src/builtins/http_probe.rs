//! `http_probe`: one HTTP request, judged against the check's expectations
//! (status, body, JSON conditions, latency).
//!
//! This module is the probe without its I/O: [`Meta::parse`] reads the
//! `meta` (for `heartbeat-host check` and for the handler alike),
//! [`Meta::resolve_headers`] fills in the headers that name a secret,
//! [`Meta::judge`] decides what a response means and [`details`] writes
//! what the run reports. The handler (`handlers/http_probe`) only sends
//! the request and measures it.

use serde_json::{Map, Value, json};

use super::expect::{self, Condition};
use super::fields::describe;
use super::{Fields, MetaError, join};

/// The methods a probe may use.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers the host's HTTP client sets itself (or refuses, as
/// wasmtime-wasi-http does), so a `meta` may not give them.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// How much of a body the details quote when an expectation on it failed.
pub const BODY_EXCERPT_CHARS: usize = 200;

/// What `expectStatus` should look like, for error messages.
const STATUS_EXPECTED: &str = "a status code (100–599) or a class such as \"2xx\"";

/// A parsed `http_probe` meta.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The URL requested (`http://` or `https://`).
    pub url: String,
    /// The method, upper case (one of [`METHODS`]).
    pub method: &'static str,
    /// The request headers, in the order written.
    pub headers: Vec<Header>,
    /// The request body.
    pub body: Option<String>,
    /// The statuses that pass (default `2xx`).
    pub expect_status: Vec<StatusRule>,
    /// What the body must contain.
    pub expect_body: Option<BodyExpectation>,
    /// Conditions on the body read as JSON (none: the body need not be JSON).
    pub expect_json: Vec<Condition>,
    /// The slowest acceptable answer, in ms.
    pub max_latency_ms: Option<u64>,
    /// How long to wait to connect and then for the response to begin, in
    /// ms (none: as long as the run's own time limit allows).
    pub timeout_ms: Option<u64>,
    /// Whether redirects are followed (each hop checked against
    /// `grants.http` by the host).
    pub follow_redirects: bool,
}

/// One request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name as written.
    pub name: String,
    /// Its value, or the secret it comes from.
    pub value: HeaderValue,
}

/// Where a header's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Written in the `meta`.
    Text(String),
    /// The value of the secret `name` (granted through `grants.secrets`,
    /// seen by the handler as an environment variable), after `prefix`.
    Secret {
        /// The secret's name in `grants.secrets`.
        name: String,
        /// Text put before the secret's value (`"Bearer "`).
        prefix: String,
    },
}

/// One entry of `expectStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusRule {
    /// Exactly this code.
    Code(u16),
    /// Any code of this hundred: `Class(2)` is `2xx`.
    Class(u16),
}

impl StatusRule {
    /// Whether `status` passes this rule.
    pub fn allows(self, status: u16) -> bool {
        match self {
            StatusRule::Code(code) => code == status,
            StatusRule::Class(class) => status / 100 == class,
        }
    }
}

impl std::fmt::Display for StatusRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusRule::Code(code) => write!(f, "{code}"),
            StatusRule::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// What `expectBody` asks of the body (read as UTF-8, invalid bytes
/// replaced).
#[derive(Debug, Clone)]
pub enum BodyExpectation {
    /// This text must appear in it.
    Contains(String),
    /// This regular expression must match somewhere in it.
    Regex(regex::Regex),
}

/// Which expectation a run failed, as the details' `failed` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// No response came back (refused, unreachable, timed out, bad headers).
    Request,
    /// The status is not in `expectStatus`.
    ExpectStatus,
    /// The body does not satisfy `expectBody`.
    ExpectBody,
    /// The body is not JSON, or a condition of `expectJson` does not hold.
    ExpectJson,
    /// The answer took longer than `maxLatencyMs`.
    MaxLatencyMs,
}

impl Expectation {
    /// The name in the details: `"expectStatus"`, `"request"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Expectation::Request => "request",
            Expectation::ExpectStatus => "expectStatus",
            Expectation::ExpectBody => "expectBody",
            Expectation::ExpectJson => "expectJson",
            Expectation::MaxLatencyMs => "maxLatencyMs",
        }
    }
}

/// Why a run failed: which expectation, and in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The expectation that did not hold.
    pub failed: Expectation,
    /// What was measured against what was expected.
    pub error: String,
}

/// What one request measured.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The status of the (last, after redirects) response.
    pub status: u16,
    /// Its body.
    pub body: &'a [u8],
    /// From sending the request to the whole body read, in ms.
    pub latency_ms: u64,
}

impl Meta {
    /// Reads a `meta` object; the first problem, with its path.
    pub fn parse(meta: &Map<String, Value>) -> Result<Meta, MetaError> {
        let mut fields = Fields::new(meta, "");
        let url = parse_url(&mut fields)?;
        let method = match fields.string("method")? {
            None => "GET",
            Some(written) => METHODS
                .iter()
                .copied()
                .find(|m| m.eq_ignore_ascii_case(written))
                .ok_or_else(|| {
                    fields.error(
                        "method",
                        format!(
                            "expected one of {}, found {written:?}",
                            METHODS
                                .iter()
                                .map(|m| format!("\"{m}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?,
        };
        let headers = match fields.get("headers") {
            None => Vec::new(),
            Some(value) => parse_headers(value, &fields.path_of("headers"))?,
        };
        let body = fields.string("body")?.map(str::to_string);
        let expect_status = match fields.get("expectStatus") {
            None => vec![StatusRule::Class(2)],
            Some(value) => parse_status(value, &fields.path_of("expectStatus"))?,
        };
        let expect_body = match fields.get("expectBody") {
            None => None,
            Some(value) => Some(parse_body(value, &fields.path_of("expectBody"))?),
        };
        let expect_json = match fields.get("expectJson") {
            None => Vec::new(),
            Some(value) => expect::parse_conditions(value, &fields.path_of("expectJson"))?,
        };
        let max_latency_ms = positive_ms(&mut fields, "maxLatencyMs")?;
        let timeout_ms = positive_ms(&mut fields, "timeoutMs")?;
        let follow_redirects = fields.boolean("followRedirects")?.unwrap_or(false);
        fields.finish()?;
        Ok(Meta {
            url,
            method,
            headers,
            body,
            expect_status,
            expect_body,
            expect_json,
            max_latency_ms,
            timeout_ms,
            follow_redirects,
        })
    }

    /// The headers to send, secrets filled in through `lookup` (the
    /// handler's granted environment). A secret not granted is named, with
    /// the header it was for; no value ever appears in the error.
    pub fn resolve_headers(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, String> {
        self.headers
            .iter()
            .map(|header| match &header.value {
                HeaderValue::Text(text) => Ok((header.name.clone(), text.clone())),
                HeaderValue::Secret { name, prefix } => match lookup(name) {
                    Some(value) => Ok((header.name.clone(), format!("{prefix}{value}"))),
                    None => Err(format!(
                        "meta.{}: secret {name:?} is not granted to this check (grants.secrets)",
                        join("headers", &header.name)
                    )),
                },
            })
            .collect()
    }

    /// Judges a response against the expectations, in the order status,
    /// body, JSON, latency; the first that does not hold.
    pub fn judge(&self, observed: &Observed<'_>) -> Result<(), Failure> {
        let fail = |failed, error| Err(Failure { failed, error });
        if !self.expect_status.iter().any(|r| r.allows(observed.status)) {
            return fail(
                Expectation::ExpectStatus,
                format!(
                    "status {} is not in {}",
                    observed.status,
                    show_rules(&self.expect_status)
                ),
            );
        }
        let text = || String::from_utf8_lossy(observed.body);
        match &self.expect_body {
            Some(BodyExpectation::Contains(needle)) if !text().contains(needle.as_str()) => {
                return fail(
                    Expectation::ExpectBody,
                    format!("body does not contain {needle:?}"),
                );
            }
            Some(BodyExpectation::Regex(regex)) if !regex.is_match(&text()) => {
                return fail(
                    Expectation::ExpectBody,
                    format!("body does not match {:?}", regex.as_str()),
                );
            }
            _ => {}
        }
        if !self.expect_json.is_empty() {
            let document: Value = match serde_json::from_slice(observed.body) {
                Ok(document) => document,
                Err(e) => {
                    return fail(Expectation::ExpectJson, format!("body is not JSON: {e}"));
                }
            };
            if let Err(error) = expect::evaluate(&self.expect_json, &document) {
                return fail(Expectation::ExpectJson, error);
            }
        }
        if let Some(max) = self.max_latency_ms
            && observed.latency_ms > max
        {
            return fail(
                Expectation::MaxLatencyMs,
                format!("latency {} ms over maxLatencyMs {max}", observed.latency_ms),
            );
        }
        Ok(())
    }
}

/// The details of a run: `url`, `method`, and what was measured (`status`,
/// `latencyMs`, `bytes`) when a response came; on failure `failed`,
/// `error`, and the start of the body when an expectation on it failed.
pub fn details(
    meta: &Meta,
    observed: Option<&Observed<'_>>,
    latency_ms: u64,
    failure: Option<&Failure>,
) -> Value {
    let mut details = json!({
        "url": meta.url,
        "method": meta.method,
        "latencyMs": latency_ms,
    });
    if let Some(observed) = observed {
        details["status"] = json!(observed.status);
        details["bytes"] = json!(observed.body.len());
    }
    if let Some(failure) = failure {
        details["failed"] = json!(failure.failed.name());
        details["error"] = json!(failure.error);
        if let Some(observed) = observed
            && matches!(
                failure.failed,
                Expectation::ExpectBody | Expectation::ExpectJson
            )
        {
            let start: String = String::from_utf8_lossy(observed.body)
                .chars()
                .take(BODY_EXCERPT_CHARS)
                .collect();
            details["bodyStart"] = json!(start);
        }
    }
    details
}

/// `2xx`, or `[200, 204, 3xx]` for more than one rule.
fn show_rules(rules: &[StatusRule]) -> String {
    match rules {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn parse_url(fields: &mut Fields<'_>) -> Result<String, MetaError> {
    let url = fields.required_string("url")?;
    let expected = || {
        fields.error(
            "url",
            format!(
                "expected an absolute http:// or https:// URL, found {}",
                describe(&Value::String(url.to_string()))
            ),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(expected)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(expected());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(expected());
    }
    Ok(url.to_string())
}

fn positive_ms(fields: &mut Fields<'_>, key: &'static str) -> Result<Option<u64>, MetaError> {
    match fields.unsigned(key)? {
        Some(0) => Err(fields.error(key, "expected a positive number of milliseconds, found 0")),
        other => Ok(other),
    }
}

/// A header name: an HTTP token (RFC 9110).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_headers(value: &Value, path: &str) -> Result<Vec<Header>, MetaError> {
    let Value::Object(object) = value else {
        return Err(MetaError::new(
            path,
            format!(
                "expected an object of header names and values, found {}",
                describe(value)
            ),
        ));
    };
    object
        .iter()
        .map(|(name, value)| {
            let at = join(path, name);
            if !is_token(name) {
                return Err(MetaError::new(
                    at,
                    format!("expected a header name (letters, digits, and !#$%&'*+-.^_`|~), found {name:?}"),
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(MetaError::new(
                    at,
                    format!("header {name:?} is set by the host's HTTP client and cannot be given"),
                ));
            }
            let value = match value {
                Value::String(text) => {
                    if text.contains(['\r', '\n', '\0']) {
                        return Err(MetaError::new(
                            at,
                            "expected a header value without line breaks",
                        ));
                    }
                    HeaderValue::Text(text.clone())
                }
                Value::Object(_) => {
                    let mut secret = Fields::object(value, at.clone())?;
                    let name = secret.required_string("secret")?.to_string();
                    let prefix = secret.string("prefix")?.unwrap_or_default().to_string();
                    if prefix.contains(['\r', '\n', '\0']) {
                        return Err(secret.error("prefix", "expected text without line breaks"));
                    }
                    secret.finish()?;
                    HeaderValue::Secret { name, prefix }
                }
                other => {
                    return Err(MetaError::new(
                        at,
                        format!(
                            "expected a string or {{\"secret\": \"NAME\"}}, found {}",
                            describe(other)
                        ),
                    ));
                }
            };
            Ok(Header {
                name: name.clone(),
                value,
            })
        })
        .collect()
}

fn parse_status(value: &Value, path: &str) -> Result<Vec<StatusRule>, MetaError> {
    match value {
        Value::Array(items) if items.is_empty() => Err(MetaError::new(
            path,
            format!("expected {STATUS_EXPECTED}, or a list of them, found []"),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| status_rule(item, &join(path, &format!("[{i}]"))))
            .collect(),
        one => Ok(vec![status_rule(one, path)?]),
    }
}

fn status_rule(value: &Value, path: &str) -> Result<StatusRule, MetaError> {
    let refused = || {
        MetaError::new(
            path,
            format!("expected {STATUS_EXPECTED}, found {}", describe(value)),
        )
    };
    match value {
        Value::Number(_) => super::fields::as_unsigned(value)
            .filter(|code| (100..=599).contains(code))
            .and_then(|code| u16::try_from(code).ok())
            .map(StatusRule::Code)
            .ok_or_else(refused),
        Value::String(class) => match class.as_bytes() {
            [digit @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                Ok(StatusRule::Class(u16::from(digit - b'0')))
            }
            _ => Err(refused()),
        },
        _ => Err(refused()),
    }
}

fn parse_body(value: &Value, path: &str) -> Result<BodyExpectation, MetaError> {
    match value {
        Value::String(text) if text.is_empty() => Err(MetaError::new(
            path,
            "expected a non-empty string, found \"\"",
        )),
        Value::String(text) => Ok(BodyExpectation::Contains(text.clone())),
        Value::Object(_) => {
            let mut fields = Fields::object(value, path)?;
            let pattern = fields.required_string("regex")?;
            let regex =
                expect::compile(pattern).map_err(|message| fields.error("regex", message))?;
            fields.finish()?;
            Ok(BodyExpectation::Regex(regex))
        }
        other => Err(MetaError::new(
            path,
            format!(
                "expected a string to find in the body or {{\"regex\": \"…\"}}, found {}",
                describe(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(value: Value) -> Result<Meta, MetaError> {
        Meta::parse(&super::super::test_object(value))
    }

    fn ok(value: Value) -> Meta {
        meta(value).expect("valid meta")
    }

    fn refused(value: Value) -> MetaError {
        meta(value).expect_err("refused")
    }

    fn seen(status: u16, body: &str, latency_ms: u64) -> Observed<'_> {
        Observed {
            status,
            body: body.as_bytes(),
            latency_ms,
        }
    }

    fn judged(
        meta: &Meta,
        status: u16,
        body: &str,
        latency_ms: u64,
    ) -> Result<(), (String, String)> {
        meta.judge(&seen(status, body, latency_ms))
            .map_err(|f| (f.failed.name().to_string(), f.error))
    }

    const URL: &str = "http://127.0.0.1:8080/health";

    #[test]
    fn defaults() {
        let m = ok(json!({"url": URL}));
        assert_eq!(m.url, URL);
        assert_eq!(m.method, "GET");
        assert!(m.headers.is_empty() && m.body.is_none() && m.expect_json.is_empty());
        assert_eq!(m.expect_status, [StatusRule::Class(2)]);
        assert!(m.expect_body.is_none());
        assert_eq!((m.max_latency_ms, m.timeout_ms), (None, None));
        assert!(!m.follow_redirects);
    }

    #[test]
    fn everything_written_is_read() {
        let m = ok(json!({
            "url": "https://api.example.com/x?y=1", "method": "post",
            "headers": {"X-Trace": "1", "Authorization": {"secret": "API_TOKEN", "prefix": "Bearer "}},
            "body": "{}", "expectStatus": [200, "3xx"], "expectBody": {"regex": "^o"},
            "expectJson": {"/ok": true}, "maxLatencyMs": 500, "timeoutMs": 2000,
            "followRedirects": true
        }));
        assert_eq!(m.method, "POST");
        assert_eq!(
            m.headers,
            [
                Header {
                    name: "X-Trace".into(),
                    value: HeaderValue::Text("1".into())
                },
                Header {
                    name: "Authorization".into(),
                    value: HeaderValue::Secret {
                        name: "API_TOKEN".into(),
                        prefix: "Bearer ".into()
                    }
                },
            ]
        );
        assert_eq!(m.body.as_deref(), Some("{}"));
        assert_eq!(
            m.expect_status,
            [StatusRule::Code(200), StatusRule::Class(3)]
        );
        assert!(matches!(m.expect_body, Some(BodyExpectation::Regex(_))));
        assert_eq!(m.expect_json.len(), 1);
        assert_eq!((m.max_latency_ms, m.timeout_ms), (Some(500), Some(2000)));
        assert!(m.follow_redirects);
        for method in METHODS {
            assert_eq!(ok(json!({"url": URL, "method": method})).method, *method);
        }
    }

    #[test]
    fn bad_metas_are_refused_with_their_path() {
        let cases = [
            (json!({}), "url", "expected a string, found none"),
            (json!({"url": 5}), "url", "expected a string, found 5"),
            (
                json!({"url": "ftp://x/"}),
                "url",
                "expected an absolute http:// or https:// URL, found \"ftp://x/\"",
            ),
            (
                json!({"url": "http:///x"}),
                "url",
                "expected an absolute http:// or https:// URL, found \"http:///x\"",
            ),
            (
                json!({"url": "example.com"}),
                "url",
                "expected an absolute http:// or https:// URL, found \"example.com\"",
            ),
            (
                json!({"url": URL, "method": "FETCH"}),
                "method",
                "expected one of \"GET\", \"HEAD\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\", \"OPTIONS\", found \"FETCH\"",
            ),
            (
                json!({"url": URL, "expectStatus": [200, 700]}),
                "expectStatus[1]",
                "expected a status code (100–599) or a class such as \"2xx\", found 700",
            ),
            (
                json!({"url": URL, "expectStatus": "2xy"}),
                "expectStatus",
                "expected a status code (100–599) or a class such as \"2xx\", found \"2xy\"",
            ),
            (
                json!({"url": URL, "expectStatus": 200.5}),
                "expectStatus",
                "expected a status code (100–599) or a class such as \"2xx\", found 200.5",
            ),
            (
                json!({"url": URL, "expectStatus": []}),
                "expectStatus",
                "expected a status code (100–599) or a class such as \"2xx\", or a list of them, found []",
            ),
            (
                json!({"url": URL, "expectBody": 5}),
                "expectBody",
                "expected a string to find in the body or {\"regex\": \"…\"}, found 5",
            ),
            (
                json!({"url": URL, "expectBody": ""}),
                "expectBody",
                "expected a non-empty string, found \"\"",
            ),
            (
                json!({"url": URL, "expectBody": {"regex": 1}}),
                "expectBody.regex",
                "expected a string, found 1",
            ),
            (
                json!({"url": URL, "expectBody": {"re": "x"}}),
                "expectBody.regex",
                "expected a string, found none",
            ),
            (
                json!({"url": URL, "expectJson": {"/queue/depth": {"lt": "x"}}}),
                "expectJson./queue/depth.lt",
                "expected a number, found \"x\"",
            ),
            (
                json!({"url": URL, "headers": []}),
                "headers",
                "expected an object of header names and values, found an array",
            ),
            (
                json!({"url": URL, "headers": {"X": 1}}),
                "headers.X",
                "expected a string or {\"secret\": \"NAME\"}, found 1",
            ),
            (
                json!({"url": URL, "headers": {"X": "a\r\nB: c"}}),
                "headers.X",
                "expected a header value without line breaks",
            ),
            (
                json!({"url": URL, "headers": {"Bad Name": "x"}}),
                "headers.Bad Name",
                "expected a header name (letters, digits, and !#$%&'*+-.^_`|~), found \"Bad Name\"",
            ),
            (
                json!({"url": URL, "headers": {"Host": "x"}}),
                "headers.Host",
                "header \"Host\" is set by the host's HTTP client and cannot be given",
            ),
            (
                json!({"url": URL, "headers": {"A": {"secret": ""}}}),
                "headers.A.secret",
                "expected a non-empty string, found \"\"",
            ),
            (
                json!({"url": URL, "headers": {"A": {"secret": "T", "suffix": "x"}}}),
                "headers.A.suffix",
                "unknown field, expected one of \"prefix\", \"secret\"",
            ),
            (
                json!({"url": URL, "maxLatencyMs": -1}),
                "maxLatencyMs",
                "expected a non-negative integer, found -1",
            ),
            (
                json!({"url": URL, "maxLatencyMs": 0}),
                "maxLatencyMs",
                "expected a positive number of milliseconds, found 0",
            ),
            (
                json!({"url": URL, "timeoutMs": "2s"}),
                "timeoutMs",
                "expected a non-negative integer, found \"2s\"",
            ),
            (
                json!({"url": URL, "followRedirects": "yes"}),
                "followRedirects",
                "expected true or false, found \"yes\"",
            ),
            (
                json!({"url": URL, "body": {}}),
                "body",
                "expected a string, found an object",
            ),
        ];
        for (value, path, message) in cases {
            let e = refused(value.clone());
            assert_eq!(
                (e.path.as_str(), e.message.as_str()),
                (path, message),
                "{value}"
            );
        }
        let e = refused(json!({"url": URL, "maxLatncyMs": 5}));
        assert_eq!(e.path, "maxLatncyMs");
        assert!(
            e.message
                .starts_with("unknown field, expected one of \"body\""),
            "{e}"
        );
    }

    #[test]
    fn status_exact_list_and_class() {
        let exact = ok(json!({"url": URL, "expectStatus": 204}));
        assert_eq!(judged(&exact, 204, "", 1), Ok(()));
        assert_eq!(
            judged(&exact, 200, "", 1),
            Err(("expectStatus".into(), "status 200 is not in 204".into()))
        );
        let list = ok(json!({"url": URL, "expectStatus": [200, 204, "3xx"]}));
        assert_eq!(judged(&list, 204, "", 1), Ok(()));
        assert_eq!(judged(&list, 301, "", 1), Ok(()));
        assert_eq!(
            judged(&list, 404, "", 1),
            Err((
                "expectStatus".into(),
                "status 404 is not in [200, 204, 3xx]".into()
            ))
        );
        let default = ok(json!({"url": URL}));
        assert_eq!(judged(&default, 299, "", 1), Ok(()));
        assert_eq!(
            judged(&default, 500, "", 1),
            Err(("expectStatus".into(), "status 500 is not in 2xx".into()))
        );
        let upper = ok(json!({"url": URL, "expectStatus": "5XX"}));
        assert_eq!(judged(&upper, 503, "", 1), Ok(()));
    }

    #[test]
    fn body_substring_and_regex() {
        let sub = ok(json!({"url": URL, "expectBody": "ok"}));
        assert_eq!(judged(&sub, 200, "all ok here", 1), Ok(()));
        assert_eq!(
            judged(&sub, 200, "all bad", 1),
            Err(("expectBody".into(), "body does not contain \"ok\"".into()))
        );
        let re = ok(json!({"url": URL, "expectBody": {"regex": "^v\\d+\\.\\d+$"}}));
        assert_eq!(judged(&re, 200, "v2.14", 1), Ok(()));
        assert_eq!(
            judged(&re, 200, "version 2", 1),
            Err((
                "expectBody".into(),
                "body does not match \"^v\\\\d+\\\\.\\\\d+$\"".into()
            ))
        );
        // The status is judged first.
        assert_eq!(
            judged(&sub, 500, "ok", 1).map_err(|e| e.0),
            Err("expectStatus".into())
        );
    }

    #[test]
    fn json_conditions_and_a_body_that_is_not_json() {
        let m =
            ok(json!({"url": URL, "expectJson": {"/status": "ok", "/queue/depth": {"lt": 1000}}}));
        assert_eq!(
            judged(&m, 200, r#"{"status":"ok","queue":{"depth":3}}"#, 1),
            Ok(())
        );
        assert_eq!(
            judged(&m, 200, r#"{"status":"ok","queue":{"depth":5000}}"#, 1),
            Err((
                "expectJson".into(),
                "/queue/depth is 5000, expected < 1000".into()
            ))
        );
        let (failed, error) = judged(&m, 200, "<html>", 1).expect_err("not JSON");
        assert_eq!(failed, "expectJson");
        assert!(error.starts_with("body is not JSON: "), "{error}");
    }

    #[test]
    fn latency_over_the_maximum() {
        let m = ok(json!({"url": URL, "maxLatencyMs": 500}));
        assert_eq!(judged(&m, 200, "", 500), Ok(()));
        assert_eq!(
            judged(&m, 200, "", 812),
            Err((
                "maxLatencyMs".into(),
                "latency 812 ms over maxLatencyMs 500".into()
            ))
        );
    }

    #[test]
    fn secrets_are_looked_up_and_a_missing_one_is_named_without_a_value() {
        let m = ok(json!({"url": URL, "headers": {
            "Authorization": {"secret": "API_TOKEN", "prefix": "Bearer "},
            "X-Key": {"secret": "KEY"}, "Accept": "application/json"}}));
        let granted =
            |name: &str| (name == "API_TOKEN" || name == "KEY").then(|| format!("s3cr3t-{name}"));
        assert_eq!(
            m.resolve_headers(granted),
            Ok(vec![
                ("Authorization".into(), "Bearer s3cr3t-API_TOKEN".into()),
                ("X-Key".into(), "s3cr3t-KEY".into()),
                ("Accept".into(), "application/json".into()),
            ])
        );
        let only_token = |name: &str| (name == "API_TOKEN").then(|| "s3cr3t".to_string());
        let e = m.resolve_headers(only_token).expect_err("KEY missing");
        assert_eq!(
            e,
            "meta.headers.X-Key: secret \"KEY\" is not granted to this check (grants.secrets)"
        );
        assert!(!e.contains("s3cr3t"));
    }

    #[test]
    fn details_say_what_was_measured_and_what_failed() {
        let m = ok(json!({"url": URL, "expectBody": "ok"}));
        let observed = seen(200, "nope", 12);
        let failure = m.judge(&observed).expect_err("no ok");
        assert_eq!(
            details(&m, Some(&observed), 12, Some(&failure)),
            json!({"url": URL, "method": "GET", "latencyMs": 12, "status": 200, "bytes": 4,
                   "failed": "expectBody", "error": "body does not contain \"ok\"", "bodyStart": "nope"})
        );
        assert_eq!(
            details(&m, Some(&seen(200, "ok", 3)), 3, None),
            json!({"url": URL, "method": "GET", "latencyMs": 3, "status": 200, "bytes": 2})
        );
        let refused = Failure {
            failed: Expectation::Request,
            error: "denied".into(),
        };
        assert_eq!(
            details(&m, None, 1, Some(&refused)),
            json!({"url": URL, "method": "GET", "latencyMs": 1, "failed": "request", "error": "denied"})
        );
    }
}
