//! Reaching the broker: reading `RABBIT_URL` the way heartbeat-consumer's
//! Python client does, and opening a lapin connection on tokio.

use std::time::Duration;

use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};

use super::wire;

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame the host asks for unless the URL says
/// (`?frame_max=`). lapin keeps two buffers of 32 frames each, so the
/// broker's usual 128 KiB would cost 8 MiB of resident memory for messages
/// that are a few hundred bytes; bigger messages span several frames.
pub const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// Why a broker URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an AMQP URL.
    #[error("{url}: not an AMQP URL: {reason}")]
    Invalid {
        /// The URL, password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// `amqps://`: this build has no TLS.
    #[error("{0}: amqps:// (TLS) is not supported by this build; use amqp://")]
    Tls(String),
}

/// Parses an AMQP URL as heartbeat-consumer's client (aio-pika) reads it:
/// an empty path (`amqp://host:5672/`) means the vhost `/`, and numeric
/// hosts (`127.0.0.1`, `[::1]`) are kept as written.
pub fn parse_url(text: &str) -> Result<AMQPUri, UrlError> {
    let shown = redact(text);
    let invalid = |reason: String| UrlError::Invalid {
        url: shown.clone(),
        reason,
    };
    let mut uri: AMQPUri = text.parse().map_err(invalid)?;
    if uri.scheme == AMQPScheme::AMQPS {
        return Err(UrlError::Tls(shown));
    }
    let parsed = url::Url::parse(text).map_err(|e| invalid(e.to_string()))?;
    if let Some(host) = parsed.host_str() {
        uri.authority.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
    }
    if uri.vhost.is_empty() {
        uri.vhost = "/".to_string();
    }
    Ok(uri)
}

/// The wire limits a URL sets: `?max_message_size=BYTES` (RabbitMQ's
/// setting of that name; at least 1) bounds the bodies the host sends,
/// [`wire::DEFAULT_MAX_BODY_BYTES`] without it.
pub fn limits(text: &str) -> Result<wire::Limits, UrlError> {
    let mut limits = wire::Limits::default();
    let parsed = url::Url::parse(text).map_err(|e| UrlError::Invalid {
        url: redact(text),
        reason: e.to_string(),
    })?;
    if let Some((_, value)) = parsed.query_pairs().find(|(k, _)| k == "max_message_size") {
        limits.max_body_bytes =
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| UrlError::Invalid {
                    url: redact(text),
                    reason: format!("max_message_size={value}: not a positive number of bytes"),
                })?;
    }
    Ok(limits)
}

/// The URL with its password replaced by `***`, for logs.
pub fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparsable URL)".to_string(),
    }
}

/// `uri` with the host's defaults for what it leaves open ([`DEFAULT_FRAME_MAX`]).
pub fn tuned(uri: &AMQPUri) -> AMQPUri {
    let mut uri = uri.clone();
    uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
    uri
}

/// Opens a connection on the current tokio runtime, named for the
/// broker's connection list, within `CONNECT_TIMEOUT`.
pub async fn connect(uri: &AMQPUri, name: &str) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default()
        .with_connection_name(name.into())
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect_uri(tuned(uri), properties),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(lapin::Error::from(lapin::ErrorKind::IOError(
            std::sync::Arc::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            )),
        ))),
    }
}

/// How long [`close`] waits for lapin's I/O thread to finish after the
/// broker confirmed the close.
pub const CLOSE_JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes `connection` and waits (at most [`CLOSE_JOIN_TIMEOUT`]) for
/// lapin's I/O thread to end. That thread does its I/O through the tokio
/// runtime's reactor: a runtime dropped under it makes it log `error doing
/// IO ... A Tokio 1.x context was found, but it is being shutdown` after a
/// clean close (drop-in item 8), so it is joined while the runtime lives.
pub async fn close(
    connection: Connection,
    code: lapin::types::ReplyCode,
    text: &str,
) -> Result<(), lapin::Error> {
    let closed = connection.close(code, text).await;
    let joined = tokio::task::spawn_blocking(move || connection.run());
    match tokio::time::timeout(CLOSE_JOIN_TIMEOUT, joined).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::debug!("the broker connection's I/O thread ended with: {e}"),
        Ok(Err(e)) => tracing::debug!("waiting for the broker connection's I/O thread: {e}"),
        Err(_) => tracing::debug!(
            "the broker connection's I/O thread did not end within {}s",
            CLOSE_JOIN_TIMEOUT.as_secs()
        ),
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_means_the_default_vhost_as_in_the_consumer() {
        let uri = parse_url("amqp://delorenj:delorenj@localhost:5673/").expect("url");
        assert_eq!(uri.vhost, "/");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.authority.userinfo.username, "delorenj");
        assert_eq!(parse_url("amqp://h").expect("url").vhost, "/");
        assert_eq!(parse_url("amqp://h/%2f").expect("url").vhost, "/");
        assert_eq!(parse_url("amqp://h/prod").expect("url").vhost, "prod");
    }

    #[test]
    fn numeric_hosts_are_kept_not_replaced_by_localhost() {
        assert_eq!(
            parse_url("amqp://guest:guest@127.0.0.1:5672/")
                .expect("url")
                .authority
                .host,
            "127.0.0.1"
        );
        assert_eq!(
            parse_url("amqp://10.1.2.3").expect("url").authority.host,
            "10.1.2.3"
        );
        assert_eq!(
            parse_url("amqp://[::1]:5672/").expect("url").authority.host,
            "::1"
        );
        assert_eq!(
            parse_url("amqp://rabbit.internal")
                .expect("url")
                .authority
                .host,
            "rabbit.internal"
        );
    }

    #[test]
    fn refuses_tls_and_nonsense_without_showing_the_password() {
        let err = parse_url("amqps://u:secret@h/")
            .expect_err("tls")
            .to_string();
        assert!(err.contains("amqps") && !err.contains("secret"), "{err}");
        let err = parse_url("http://u:secret@h/")
            .expect_err("scheme")
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn frame_max_defaults_small_unless_the_url_sets_it() {
        let uri = parse_url("amqp://h/").expect("url");
        assert_eq!(tuned(&uri).query.frame_max, Some(DEFAULT_FRAME_MAX));
        let uri = parse_url("amqp://h/?frame_max=131072").expect("url");
        assert_eq!(tuned(&uri).query.frame_max, Some(131_072));
    }

    #[test]
    fn max_message_size_in_the_url_bounds_the_bodies_sent() {
        assert_eq!(
            limits("amqp://h/").expect("url").max_body_bytes,
            wire::DEFAULT_MAX_BODY_BYTES
        );
        assert_eq!(
            limits("amqp://h/?frame_max=131072&max_message_size=4096")
                .expect("url")
                .max_body_bytes,
            4096
        );
        for bad in ["0", "-1", "lots"] {
            let err = limits(&format!("amqp://u:secret@h/?max_message_size={bad}"))
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains("max_message_size") && !err.contains("secret"),
                "{err}"
            );
        }
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/"),
            "amqp://guest:***@127.0.0.1:5672/"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672/"), "amqp://127.0.0.1:5672/");
    }
}
