//! The built-in `rabbitmq_queue` handler.
//!
//! Asks the RabbitMQ management HTTP API for one queue
//! (`GET {url}/api/queues/{vhost}/{queue}`, basic auth, through the check's
//! `grants.http`) and fails when it holds more than `maxMessages` messages
//! or `maxUnacked` unacknowledged ones, has fewer than `minConsumers`
//! consumers, does not exist, or the credentials are refused. The
//! password comes from a granted secret (`{"secret": "NAME"}` in `meta`,
//! `grants.secrets.NAME` in the check), which the handler sees as the
//! environment variable `NAME`; it never appears in details, errors or logs.
//! The rule and the `meta` are `heartbeat_core::builtins::rabbitmq_queue`.

use std::time::Duration;

use handler_sdk::log::LogLevel;
use handler_sdk::{Check, Handler, Outcome, Status, Tick};
use heartbeat_core::builtins::rabbitmq_queue::{self, Credential, Meta};

/// How long one request to the management API may take; the run's own
/// `timeoutMs` bounds it too.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The handler.
pub struct RabbitmqQueue;

impl Handler for RabbitmqQueue {
    fn run(_tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta = heartbeat_core::builtins::parse_text(&check.meta, Meta::parse)?;
        let user = credential(&meta.username, "username")?;
        let password = credential(&meta.password, "password")?;
        let url = meta.api_url();
        let response = handler_sdk::http::Request::new("GET", &url)
            .header("accept", "application/json")
            .header(
                "authorization",
                &rabbitmq_queue::basic_auth(&user, &password),
            )
            .timeout(REQUEST_TIMEOUT)
            .send();
        let verdict = match response {
            Ok(response) => rabbitmq_queue::judge(&meta, response.status, &response.text()),
            Err(e) => {
                let error = if e.is_denied() {
                    format!(
                        "GET {url}: the management API's origin is not in this check's grants.http ({})",
                        e.message
                    )
                } else {
                    format!("GET {url}: {}", e.message)
                };
                let details = serde_json::json!({
                    "queue": meta.queue,
                    "vhost": meta.vhost,
                    "failed": "api",
                    "error": error,
                });
                rabbitmq_queue::Verdict { ok: false, details }
            }
        };
        let message = verdict
            .details
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("queue within its expectations");
        let number = |key: &str| {
            verdict
                .details
                .get(key)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        handler_sdk::log::write(
            if verdict.ok {
                LogLevel::Info
            } else {
                LogLevel::Warn
            },
            message,
            &[
                ("queue", &meta.queue),
                ("vhost", &meta.vhost),
                ("messages", &number("messages")),
                ("consumers", &number("consumers")),
                ("unacked", &number("unacked")),
            ],
        );
        let status = if verdict.ok {
            Status::Success
        } else {
            Status::Failed
        };
        Ok(Outcome::with_details(status, verdict.details.to_string()))
    }
}

/// A credential's value: as written, or the granted secret's.
fn credential(credential: &Credential, field: &str) -> Result<String, String> {
    match credential {
        Credential::Plain(value) => Ok(value.clone()),
        Credential::Secret(name) => handler_sdk::env::var(name).ok_or_else(|| {
            format!(
                "meta.{field}: secret {name} is not granted to this check (add it to grants.secrets)"
            )
        }),
    }
}

handler_sdk::export_handler!(RabbitmqQueue);
