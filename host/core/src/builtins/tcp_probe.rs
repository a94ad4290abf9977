//! `tcp_probe`: connect to `host:port`, optionally send a line and look for
//! an answer in the first bytes read, within a latency bound.
//!
//! This module is the probe without its I/O: [`Meta::parse`] reads the
//! `meta` (for `heartbeat-host check` and for the handler alike),
//! [`Meta::judge`] decides what a connection's measurements mean, and
//! [`details`] writes what the run reports. The handler
//! (`handlers/tcp_probe`) connects, writes and reads.

use std::net::Ipv6Addr;

use serde_json::{Map, Value, json};

use super::fields::describe;
use super::{Fields, MetaError};

/// The most bytes read while looking for `expect`.
pub const MAX_READ_BYTES: usize = 64 * 1024;

/// How much of what was read the details quote when `expect` was not found.
pub const EXCERPT_CHARS: usize = 200;

/// A parsed `tcp_probe` meta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The peer, as written (`db.internal:5432`, `[::1]:6379`).
    pub address: String,
    /// Its host part: a name, an IPv4 address, or an IPv6 address without
    /// its brackets.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The slowest acceptable probe (connect, send, and reading until
    /// `expect` is found), in ms.
    pub max_latency_ms: Option<u64>,
    /// How long connecting, and then reading, may each take, in ms (none:
    /// as long as the run's own time limit allows).
    pub timeout_ms: Option<u64>,
    /// Written once connected.
    pub send: Option<String>,
    /// Text the first bytes read must contain.
    pub expect: Option<String>,
}

/// Which part of the probe failed, as the details' `failed` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No connection (refused, unreachable, not granted, timed out), or
    /// the name did not resolve.
    Connect,
    /// Sending failed, or `expect` was not in what was read.
    Expect,
    /// The probe took longer than `maxLatencyMs`.
    MaxLatencyMs,
}

impl Stage {
    /// The name in the details: `"connect"`, `"expect"`, `"maxLatencyMs"`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Expect => "expect",
            Stage::MaxLatencyMs => "maxLatencyMs",
        }
    }
}

/// Why a run failed: which stage, and in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The stage that failed.
    pub failed: Stage,
    /// What happened, or what was measured against what was expected.
    pub error: String,
}

/// Why reading stopped, as the handler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// `expect` was found (or nothing was expected and nothing read).
    Found,
    /// The peer closed the connection.
    Closed,
    /// The read timed out.
    TimedOut,
    /// [`MAX_READ_BYTES`] were read.
    Full,
}

/// What one probe measured once connected.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Connecting took this long, in ms.
    pub connect_ms: u64,
    /// The whole probe took this long, in ms.
    pub latency_ms: u64,
    /// What was read (at most [`MAX_READ_BYTES`]).
    pub read: &'a [u8],
    /// Why reading stopped.
    pub end: ReadEnd,
}

impl Meta {
    /// Reads a `meta` object; the first problem, with its path.
    pub fn parse(meta: &Map<String, Value>) -> Result<Meta, MetaError> {
        let mut fields = Fields::new(meta, "");
        let address = fields.required_string("address")?.to_string();
        let (host, port) =
            split_address(&address).map_err(|message| fields.error("address", message))?;
        let max_latency_ms = positive_ms(&mut fields, "maxLatencyMs")?;
        let timeout_ms = positive_ms(&mut fields, "timeoutMs")?;
        let send = fields.string("send")?.map(str::to_string);
        if send.as_deref() == Some("") {
            return Err(fields.error("send", "expected a non-empty string, found \"\""));
        }
        let expect = fields.string("expect")?.map(str::to_string);
        if expect.as_deref() == Some("") {
            return Err(fields.error("expect", "expected a non-empty string, found \"\""));
        }
        fields.finish()?;
        Ok(Meta {
            address,
            host,
            port,
            max_latency_ms,
            timeout_ms,
            send,
            expect,
        })
    }

    /// Whether reading may stop: `expect` is in `read`. Without `expect`
    /// nothing needs to be read.
    pub fn found(&self, read: &[u8]) -> bool {
        match &self.expect {
            None => true,
            Some(expect) => contains(read, expect.as_bytes()),
        }
    }

    /// Judges a connected probe: `expect` found, then latency.
    pub fn judge(&self, observed: &Observed<'_>) -> Result<(), Failure> {
        if let Some(expect) = &self.expect
            && !contains(observed.read, expect.as_bytes())
        {
            let why = match observed.end {
                ReadEnd::Closed => "before the connection closed".to_string(),
                ReadEnd::TimedOut => "before the read timed out".to_string(),
                ReadEnd::Full => format!("in the first {MAX_READ_BYTES} bytes"),
                ReadEnd::Found => "in what was read".to_string(),
            };
            return Err(Failure {
                failed: Stage::Expect,
                error: format!(
                    "expected {expect:?} {why}; read {} bytes",
                    observed.read.len()
                ),
            });
        }
        if let Some(max) = self.max_latency_ms
            && observed.latency_ms > max
        {
            return Err(Failure {
                failed: Stage::MaxLatencyMs,
                error: format!("latency {} ms over maxLatencyMs {max}", observed.latency_ms),
            });
        }
        Ok(())
    }
}

/// The details of a run: `address`, and what was measured (`connectMs`,
/// `latencyMs`, `bytesRead`); on failure `failed`, `error`, and the start
/// of what was read when `expect` was not found in it.
pub fn details(meta: &Meta, observed: Option<&Observed<'_>>, failure: Option<&Failure>) -> Value {
    let mut details = json!({ "address": meta.address });
    if let Some(observed) = observed {
        details["connectMs"] = json!(observed.connect_ms);
        details["latencyMs"] = json!(observed.latency_ms);
        details["bytesRead"] = json!(observed.read.len());
    }
    if let Some(failure) = failure {
        details["failed"] = json!(failure.failed.name());
        details["error"] = json!(failure.error);
        if let Some(observed) = observed
            && failure.failed == Stage::Expect
        {
            let start: String = String::from_utf8_lossy(observed.read)
                .chars()
                .take(EXCERPT_CHARS)
                .collect();
            details["readStart"] = json!(start);
        }
    }
    details
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn positive_ms(fields: &mut Fields<'_>, key: &'static str) -> Result<Option<u64>, MetaError> {
    match fields.unsigned(key)? {
        Some(0) => Err(fields.error(key, "expected a positive number of milliseconds, found 0")),
        other => Ok(other),
    }
}

/// What an address should look like, for error messages.
const ADDRESS_EXPECTED: &str = "an address host:port (a name, an IPv4 address, or an IPv6 address in brackets as [::1]:6379; port 1–65535)";

/// `host:port` into its parts; IPv6 in brackets.
pub fn split_address(address: &str) -> Result<(String, u16), String> {
    let refused = || {
        format!(
            "expected {ADDRESS_EXPECTED}, found {}",
            describe(&Value::String(address.to_string()))
        )
    };
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(refused)?;
        inside.parse::<Ipv6Addr>().map_err(|_| refused())?;
        (inside, after.strip_prefix(':').ok_or_else(refused)?)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or_else(refused)?;
        if host.contains(':') || !is_host(host) {
            return Err(refused());
        }
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(refused)?;
    Ok((host.to_string(), port))
}

/// A DNS name or IPv4 address: labels of letters, digits, `-` and `_`,
/// separated by dots, none empty, none starting or ending with `-`.
fn is_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(value: Value) -> Result<Meta, MetaError> {
        Meta::parse(&super::super::test_object(value))
    }

    fn refused(value: Value) -> MetaError {
        meta(value).expect_err("refused")
    }

    #[test]
    fn addresses_of_every_kind() {
        for (address, host, port) in [
            ("127.0.0.1:6379", "127.0.0.1", 6379),
            ("db.internal:5432", "db.internal", 5432),
            ("localhost:1", "localhost", 1),
            ("[::1]:6379", "::1", 6379),
            ("[2001:db8::7]:65535", "2001:db8::7", 65535),
        ] {
            assert_eq!(
                split_address(address),
                Ok((host.to_string(), port)),
                "{address}"
            );
        }
        for bad in [
            "localhost",
            "::1:6379",
            "[::1]6379",
            "[::1]",
            "[nope]:1",
            "host:0",
            "host:65536",
            "host:+80",
            ":80",
            "a b:80",
            "-x.com:80",
            "x..com:80",
            "host:",
            "http://x:80",
        ] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn everything_written_is_read() {
        let m = meta(
            json!({"address": "[::1]:6379", "maxLatencyMs": 50, "timeoutMs": 1000,
                            "send": "PING\r\n", "expect": "+PONG"}),
        )
        .expect("valid");
        assert_eq!(
            m,
            Meta {
                address: "[::1]:6379".into(),
                host: "::1".into(),
                port: 6379,
                max_latency_ms: Some(50),
                timeout_ms: Some(1000),
                send: Some("PING\r\n".into()),
                expect: Some("+PONG".into()),
            }
        );
    }

    #[test]
    fn bad_metas_are_refused_with_their_path() {
        let e = refused(json!({}));
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("address", "expected a string, found none")
        );
        let e = refused(json!({"address": "::1:6379"}));
        assert_eq!(e.path, "address");
        assert_eq!(
            e.to_string(),
            "meta.address: expected an address host:port (a name, an IPv4 address, or an IPv6 address in brackets as [::1]:6379; port 1–65535), found \"::1:6379\""
        );
        for (value, path, message) in [
            (
                json!({"address": "h:1", "send": 5}),
                "send",
                "expected a string, found 5",
            ),
            (
                json!({"address": "h:1", "send": ""}),
                "send",
                "expected a non-empty string, found \"\"",
            ),
            (
                json!({"address": "h:1", "expect": ""}),
                "expect",
                "expected a non-empty string, found \"\"",
            ),
            (
                json!({"address": "h:1", "timeoutMs": 0}),
                "timeoutMs",
                "expected a positive number of milliseconds, found 0",
            ),
            (
                json!({"address": "h:1", "maxLatencyMs": 1.5}),
                "maxLatencyMs",
                "expected a non-negative integer, found 1.5",
            ),
            (
                json!({"address": "h:1", "expected": "x"}),
                "expected",
                "unknown field, expected one of \"address\", \"expect\", \"maxLatencyMs\", \"send\", \"timeoutMs\"",
            ),
        ] {
            let e = refused(value.clone());
            assert_eq!(
                (e.path.as_str(), e.message.as_str()),
                (path, message),
                "{value}"
            );
        }
    }

    fn probe(expect: Option<&str>, max: Option<u64>) -> Meta {
        Meta {
            address: "127.0.0.1:6379".into(),
            host: "127.0.0.1".into(),
            port: 6379,
            max_latency_ms: max,
            timeout_ms: None,
            send: Some("PING\r\n".into()),
            expect: expect.map(str::to_string),
        }
    }

    fn observed(read: &[u8], end: ReadEnd, latency_ms: u64) -> Observed<'_> {
        Observed {
            connect_ms: 1,
            latency_ms,
            read,
            end,
        }
    }

    #[test]
    fn expect_is_looked_for_in_what_was_read() {
        let m = probe(Some("+PONG"), None);
        assert!(!m.found(b"+PO"));
        assert!(m.found(b"junk+PONG\r\n"));
        assert!(probe(None, None).found(b""));
        assert_eq!(m.judge(&observed(b"+PONG\r\n", ReadEnd::Found, 3)), Ok(()));
        assert_eq!(
            m.judge(&observed(b"-ERR unknown\r\n", ReadEnd::Closed, 3)),
            Err(Failure {
                failed: Stage::Expect,
                error: "expected \"+PONG\" before the connection closed; read 14 bytes".into()
            })
        );
        assert_eq!(
            m.judge(&observed(b"", ReadEnd::TimedOut, 3))
                .map_err(|f| f.error),
            Err("expected \"+PONG\" before the read timed out; read 0 bytes".into())
        );
        assert_eq!(
            m.judge(&observed(b"x", ReadEnd::Full, 3))
                .map_err(|f| f.error),
            Err("expected \"+PONG\" in the first 65536 bytes; read 1 bytes".into())
        );
    }

    #[test]
    fn latency_over_the_maximum() {
        let m = probe(None, Some(100));
        assert_eq!(m.judge(&observed(b"", ReadEnd::Found, 100)), Ok(()));
        assert_eq!(
            m.judge(&observed(b"", ReadEnd::Found, 250)),
            Err(Failure {
                failed: Stage::MaxLatencyMs,
                error: "latency 250 ms over maxLatencyMs 100".into()
            })
        );
    }

    #[test]
    fn details_say_what_was_measured_and_what_failed() {
        let m = probe(Some("+PONG"), None);
        let seen = observed(b"-ERR", ReadEnd::Closed, 4);
        let failure = m.judge(&seen).expect_err("mismatch");
        assert_eq!(
            details(&m, Some(&seen), Some(&failure)),
            json!({"address": "127.0.0.1:6379", "connectMs": 1, "latencyMs": 4, "bytesRead": 4,
                   "failed": "expect", "error": failure.error, "readStart": "-ERR"})
        );
        let refused = Failure {
            failed: Stage::Connect,
            error: "connection refused".into(),
        };
        assert_eq!(
            details(&m, None, Some(&refused)),
            json!({"address": "127.0.0.1:6379", "failed": "connect", "error": "connection refused"})
        );
    }
}
