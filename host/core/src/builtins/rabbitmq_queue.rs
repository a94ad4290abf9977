//! The built-in `rabbitmq_queue`: a queue's depth, unacknowledged count and
//! consumers, read from the RabbitMQ management HTTP API
//! (`GET {url}/api/queues/{vhost}/{queue}`, basic auth).
//!
//! `meta`: `url` (required, the management origin such as
//! `http://127.0.0.1:15672`, optionally with a path prefix), `vhost`
//! (default `/`), `queue` (required), `maxMessages`, `minConsumers`,
//! `maxUnacked` (each optional), `username` (a string or `{"secret":
//! NAME}`, default `guest`) and `password` (`{"secret": NAME}` only; absent,
//! it is RabbitMQ's default `guest`, which only goes with the default
//! user). The handler makes the request; [`judge`] reads the answer.

use serde_json::{Map, Value, json};

use super::fields::{as_unsigned, describe};
use super::{Fields, MetaError};

/// RabbitMQ's default account, which the broker admits from localhost only.
pub const DEFAULT_USER: &str = "guest";

/// Where a credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Written in the config (a user name; never a password).
    Plain(String),
    /// The granted secret of this name (`grants.secrets`), which the
    /// handler sees as the environment variable `NAME`.
    Secret(String),
}

/// A `rabbitmq_queue` check's `meta`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The management API's base URL, without a trailing `/`.
    pub url: String,
    /// The virtual host.
    pub vhost: String,
    /// The queue's name.
    pub queue: String,
    /// At most this many messages (ready and unacknowledged).
    pub max_messages: Option<u64>,
    /// At least this many consumers.
    pub min_consumers: Option<u64>,
    /// At most this many unacknowledged messages.
    pub max_unacked: Option<u64>,
    /// The user name.
    pub username: Credential,
    /// The password: `Plain` only for the default `guest` account.
    pub password: Credential,
}

impl Meta {
    /// Validates a `rabbitmq_queue` `meta`.
    pub fn parse(meta: &Map<String, Value>) -> Result<Meta, MetaError> {
        let mut f = Fields::new(meta, "");
        let url = f.required_string("url")?;
        let url = check_url(url).map_err(|why| f.error("url", why))?;
        let vhost = match f.string("vhost")? {
            None => "/".to_string(),
            Some("") => {
                return Err(f.error("vhost", "expected a virtual host such as \"/\", found \"\""));
            }
            Some(v) => v.to_string(),
        };
        let queue = f.required_string("queue")?.to_string();
        let max_messages = f.unsigned("maxMessages")?;
        let min_consumers = f.unsigned("minConsumers")?;
        let max_unacked = f.unsigned("maxUnacked")?;
        let username = match f.get("username") {
            None => Credential::Plain(DEFAULT_USER.to_string()),
            Some(Value::String(s)) if !s.is_empty() => Credential::Plain(s.clone()),
            Some(value @ Value::Object(_)) => secret(value, &f.path_of("username"))?,
            Some(other) => {
                return Err(f.error(
                    "username",
                    format!(
                        "expected a user name or {{\"secret\": \"NAME\"}}, found {}",
                        describe(other)
                    ),
                ));
            }
        };
        let password = match f.get("password") {
            Some(value @ Value::Object(_)) => secret(value, &f.path_of("password"))?,
            Some(Value::String(_)) => {
                return Err(f.error(
                    "password",
                    "a password is never written in the config: expected {\"secret\": \"NAME\"} naming one of grants.secrets",
                ));
            }
            Some(other) => {
                return Err(f.error(
                    "password",
                    format!(
                        "expected {{\"secret\": \"NAME\"}}, found {}",
                        describe(other)
                    ),
                ));
            }
            None if username == Credential::Plain(DEFAULT_USER.to_string()) => {
                Credential::Plain(DEFAULT_USER.to_string())
            }
            None => {
                return Err(f.error(
                    "password",
                    "expected {\"secret\": \"NAME\"} for a user other than the default guest, found none",
                ));
            }
        };
        f.finish()?;
        Ok(Meta {
            url,
            vhost,
            queue,
            max_messages,
            min_consumers,
            max_unacked,
            username,
            password,
        })
    }

    /// The queue's URL in the management API, vhost and queue percent-encoded.
    pub fn api_url(&self) -> String {
        format!(
            "{}/api/queues/{}/{}",
            self.url,
            percent_encode(&self.vhost),
            percent_encode(&self.queue)
        )
    }

    /// The user for messages: the name, or the secret it comes from (a
    /// user name kept in a secret is not written out).
    pub fn user_words(&self) -> String {
        match &self.username {
            Credential::Plain(name) => format!("user {name:?}"),
            Credential::Secret(secret) => format!("the user in secret {secret}"),
        }
    }
}

/// `{"secret": "NAME"}` at `path`.
fn secret(value: &Value, path: &str) -> Result<Credential, MetaError> {
    let mut f = Fields::object(value, path)?;
    let name = f.required_string("secret")?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(f.error(
            "secret",
            format!(
                "expected the name of one of grants.secrets (letters, digits, _), found {name:?}"
            ),
        ));
    }
    f.finish()?;
    Ok(Credential::Secret(name.to_string()))
}

/// An `http://` or `https://` URL with a host, no credentials, query or
/// fragment; returned without its trailing `/`.
fn check_url(url: &str) -> Result<String, String> {
    let expected = "expected the management API's URL such as \"http://127.0.0.1:15672\"";
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{expected}, found {url:?}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{expected} (with a host), found {url:?}"));
    }
    if authority.contains('@') {
        return Err(
            "credentials do not go in the URL: use username and password ({\"secret\": \"NAME\"})"
                .to_string(),
        );
    }
    if url.contains(['?', '#']) {
        return Err(format!("{expected} (no query or fragment), found {url:?}"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so
/// that the vhost `/` is `%2F`, as the management API wants it.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `Authorization` header's value for basic auth.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What [`judge`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether every expectation holds.
    pub ok: bool,
    /// `queue`, `vhost`, `messages`, `consumers`, `unacked`, `ready`,
    /// `state`, and on failure `failed` (the first failed expectation:
    /// `maxMessages`, `maxUnacked`, `minConsumers`; or `queue` for a queue
    /// that does not exist, `credentials` for a 401, `api` for another
    /// answer, `stats` while the broker has no message counts yet) and
    /// `error` (every failed expectation, in words).
    pub details: Value,
}

/// Judges the management API's answer (`status`, `body`) to
/// [`Meta::api_url`].
pub fn judge(meta: &Meta, status: u16, body: &str) -> Verdict {
    let base = || json!({"queue": meta.queue, "vhost": meta.vhost});
    let fail = |failed: &str, error: String| {
        let mut details = base();
        if let Value::Object(map) = &mut details {
            map.insert("failed".into(), failed.into());
            map.insert("error".into(), error.into());
        }
        Verdict { ok: false, details }
    };
    match status {
        200 => {}
        404 => {
            return fail(
                "queue",
                format!(
                    "queue {:?} does not exist in vhost {:?} (the management API answered 404)",
                    meta.queue, meta.vhost
                ),
            );
        }
        401 => {
            return fail(
                "credentials",
                format!(
                    "the management API refused the credentials of {} (401)",
                    meta.user_words()
                ),
            );
        }
        other => {
            return fail(
                "api",
                format!(
                    "the management API answered {other}{}",
                    error_reason(body)
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
    let queue: Map<String, Value> = match serde_json::from_str(body) {
        Ok(Value::Object(map)) => map,
        _ => {
            return fail(
                "api",
                "the management API's answer is not a queue object".to_string(),
            );
        }
    };
    let count = |key: &str| queue.get(key).and_then(as_unsigned);
    let (messages, unacked, ready) = (
        count("messages"),
        count("messages_unacknowledged"),
        count("messages_ready"),
    );
    let consumers = count("consumers").unwrap_or(0);
    let mut details = base();
    if let Value::Object(map) = &mut details {
        map.insert("messages".into(), json!(messages));
        map.insert("consumers".into(), json!(consumers));
        map.insert("unacked".into(), json!(unacked));
        map.insert("ready".into(), json!(ready));
        if let Some(state) = queue.get("state") {
            map.insert("state".into(), state.clone());
        }
    }
    let q = &meta.queue;
    let mut failures: Vec<(&str, String)> = Vec::new();
    let needs_counts = meta.max_messages.is_some() || meta.max_unacked.is_some();
    if needs_counts && (messages.is_none() || unacked.is_none()) {
        failures.push((
            "stats",
            format!(
                "the management API has no message counts for queue {q:?} yet (statistics are collected every few seconds)"
            ),
        ));
    }
    if let (Some(max), Some(n)) = (meta.max_messages, messages)
        && n > max
    {
        failures.push((
            "maxMessages",
            format!(
                "queue {q:?} holds {n} message{}, more than maxMessages {max}",
                plural(n)
            ),
        ));
    }
    if let (Some(max), Some(n)) = (meta.max_unacked, unacked)
        && n > max
    {
        failures.push((
            "maxUnacked",
            format!(
                "queue {q:?} has {n} unacknowledged message{}, more than maxUnacked {max}",
                plural(n)
            ),
        ));
    }
    if let Some(min) = meta.min_consumers
        && consumers < min
    {
        failures.push((
            "minConsumers",
            format!(
                "queue {q:?} has {consumers} consumer{}, fewer than minConsumers {min}",
                plural(consumers)
            ),
        ));
    }
    let ok = failures.is_empty();
    if let (Some((first, _)), Value::Object(map)) = (failures.first(), &mut details) {
        map.insert("failed".into(), (*first).into());
        let words: Vec<&str> = failures.iter().map(|(_, w)| w.as_str()).collect();
        map.insert("error".into(), words.join("; ").into());
    }
    Verdict { ok, details }
}

/// The `reason` (or `error`) of a management API error body, shortened.
fn error_reason(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let reason = value
        .get("reason")
        .or_else(|| value.get("error"))?
        .as_str()?;
    Some(reason.chars().take(200).collect())
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(value: Value) -> Result<Meta, MetaError> {
        Meta::parse(&super::super::test_object(value))
    }

    fn orders() -> Meta {
        meta(json!({
            "url": "http://127.0.0.1:15672/",
            "queue": "orders",
            "maxMessages": 10,
            "minConsumers": 1,
            "maxUnacked": 2
        }))
        .expect("valid")
    }

    #[test]
    fn defaults_and_the_api_url() {
        let m = orders();
        assert_eq!(m.url, "http://127.0.0.1:15672");
        assert_eq!(m.vhost, "/");
        assert_eq!(m.username, Credential::Plain("guest".into()));
        assert_eq!(m.password, Credential::Plain("guest".into()));
        assert_eq!(m.api_url(), "http://127.0.0.1:15672/api/queues/%2F/orders");
        let m = meta(
            json!({"url": "https://mq.example/rabbit", "vhost": "prod eu", "queue": "a/b#c",
            "username": {"secret": "MQ_USER"}, "password": {"secret": "MQ_PASSWORD"}}),
        )
        .expect("valid");
        assert_eq!(
            m.api_url(),
            "https://mq.example/rabbit/api/queues/prod%20eu/a%2Fb%23c"
        );
        assert_eq!(m.password, Credential::Secret("MQ_PASSWORD".into()));
        assert_eq!(m.user_words(), "the user in secret MQ_USER");
    }

    #[test]
    fn bad_metas_name_their_field() {
        for (value, path, words) in [
            (json!({"queue": "q"}), "url", "found none"),
            (
                json!({"url": "127.0.0.1:15672", "queue": "q"}),
                "url",
                "such as",
            ),
            (
                json!({"url": "http://u:p@h:15672", "queue": "q"}),
                "url",
                "credentials do not go in the URL",
            ),
            (
                json!({"url": "http://h", "queue": ""}),
                "queue",
                "non-empty",
            ),
            (json!({"url": "http://h"}), "queue", "found none"),
            (
                json!({"url": "http://h", "queue": "q", "vhost": ""}),
                "vhost",
                "virtual host",
            ),
            (
                json!({"url": "http://h", "queue": "q", "maxMessages": "10"}),
                "maxMessages",
                "non-negative",
            ),
            (
                json!({"url": "http://h", "queue": "q", "minConsumers": 1.5}),
                "minConsumers",
                "non-negative",
            ),
            (
                json!({"url": "http://h", "queue": "q", "password": "hunter2"}),
                "password",
                "never written",
            ),
            (
                json!({"url": "http://h", "queue": "q", "username": "ops"}),
                "password",
                "found none",
            ),
            (
                json!({"url": "http://h", "queue": "q", "password": {"secret": "bad name"}}),
                "password.secret",
                "grants.secrets",
            ),
            (
                json!({"url": "http://h", "queue": "q", "password": {"secret": "P", "x": 1}}),
                "password.x",
                "unknown field",
            ),
            (
                json!({"url": "http://h", "queue": "q", "username": 5}),
                "username",
                "user name",
            ),
            (
                json!({"url": "http://h", "queue": "q", "maxMessage": 5}),
                "maxMessage",
                "unknown field",
            ),
        ] {
            let e = meta(value.clone()).expect_err("invalid");
            assert_eq!(e.path, path, "{value}");
            assert!(e.message.contains(words), "{value}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn encoding_helpers() {
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(basic_auth("guest", "guest"), "Basic Z3Vlc3Q6Z3Vlc3Q=");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    fn body(messages: u64, unacked: u64, consumers: u64) -> String {
        json!({"name": "orders", "vhost": "/", "state": "running", "messages": messages,
            "messages_ready": messages - unacked, "messages_unacknowledged": unacked, "consumers": consumers})
        .to_string()
    }

    #[test]
    fn counts_within_the_expectations_pass() {
        let v = judge(&orders(), 200, &body(10, 2, 1));
        assert!(v.ok, "{}", v.details);
        assert_eq!(v.details["messages"], 10);
        assert_eq!(v.details["unacked"], 2);
        assert_eq!(v.details["ready"], 8);
        assert_eq!(v.details["consumers"], 1);
        assert_eq!(v.details["state"], "running");
    }

    #[test]
    fn each_expectation_fails_in_words() {
        let v = judge(&orders(), 200, &body(11, 0, 1));
        assert_eq!(v.details["failed"], "maxMessages");
        assert_eq!(
            v.details["error"],
            "queue \"orders\" holds 11 messages, more than maxMessages 10"
        );
        let v = judge(&orders(), 200, &body(3, 3, 1));
        assert_eq!(v.details["failed"], "maxUnacked");
        assert_eq!(
            v.details["error"],
            "queue \"orders\" has 3 unacknowledged messages, more than maxUnacked 2"
        );
        let v = judge(&orders(), 200, &body(0, 0, 0));
        assert_eq!(v.details["failed"], "minConsumers");
        assert_eq!(
            v.details["error"],
            "queue \"orders\" has 0 consumers, fewer than minConsumers 1"
        );
        let v = judge(&orders(), 200, &body(20, 0, 0));
        assert!(!v.ok);
        assert_eq!(v.details["failed"], "maxMessages");
        assert!(
            v.details["error"]
                .as_str()
                .is_some_and(|e| e.contains("; queue \"orders\" has 0 consumers"))
        );
    }

    #[test]
    fn missing_queue_bad_credentials_and_other_answers() {
        let v = judge(
            &orders(),
            404,
            r#"{"error":"Object Not Found","reason":"Not Found"}"#,
        );
        assert_eq!(v.details["failed"], "queue");
        assert_eq!(
            v.details["error"],
            "queue \"orders\" does not exist in vhost \"/\" (the management API answered 404)"
        );
        let v = judge(&orders(), 401, "");
        assert_eq!(v.details["failed"], "credentials");
        assert_eq!(
            v.details["error"],
            "the management API refused the credentials of user \"guest\" (401)"
        );
        let v = judge(&orders(), 500, r#"{"error":"internal","reason":"boom"}"#);
        assert_eq!(v.details["error"], "the management API answered 500: boom");
        let v = judge(&orders(), 200, "[]");
        assert_eq!(v.details["failed"], "api");
    }

    #[test]
    fn a_queue_without_stats_yet_is_not_taken_for_empty() {
        let fresh = json!({"name": "orders", "vhost": "/", "consumers": 0}).to_string();
        let v = judge(&orders(), 200, &fresh);
        assert_eq!(v.details["failed"], "stats");
        let consumers_only =
            meta(json!({"url": "http://h", "queue": "orders", "minConsumers": 0})).expect("valid");
        assert!(judge(&consumers_only, 200, &fresh).ok);
    }
}
