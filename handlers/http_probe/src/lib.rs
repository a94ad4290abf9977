//! The built-in `http_probe` check: one HTTP request to `meta.url`, judged
//! against the check's expectations (`expectStatus`, `expectBody`,
//! `expectJson`, `maxLatencyMs`); see docs/checks.md.
//!
//! The request goes through `handler_sdk::http` (`wasi:http`), so the host
//! sends it only to an origin in the check's `grants.http`, and a header
//! written `{"secret": "NAME"}` takes its value from the secret the check
//! grants as `NAME` (`grants.secrets`). The `meta` is read by
//! `heartbeat_core::builtins::http_probe`, the code `heartbeat-host check`
//! validates it with, and the response is judged there too: this crate
//! only sends, times and reports.

use std::time::{Duration, Instant};

use handler_sdk::{Check, Handler, Outcome, Status, Tick};
use heartbeat_core::builtins::http_probe::{self, Expectation, Failure, Meta, Observed};

/// The handler.
pub struct HttpProbe;

/// Whole milliseconds of `d`, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Handler for HttpProbe {
    fn run(_tick: Tick, check: Check) -> Result<Outcome, String> {
        // A bad `meta` fails the run with the words `heartbeat-host check` uses.
        let meta = heartbeat_core::builtins::parse_text(&check.meta, Meta::parse)?;
        let headers = meta.resolve_headers(handler_sdk::env::var)?;
        let mut request = handler_sdk::http::Request::new(meta.method, &meta.url)
            .follow_redirects(meta.follow_redirects);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        if let Some(body) = &meta.body {
            request = request.body(body.as_bytes().to_vec());
        }
        if let Some(timeout) = meta.timeout_ms {
            request = request.timeout(Duration::from_millis(timeout));
        }
        let started = Instant::now();
        let sent = request.send();
        let latency_ms = ms(started.elapsed());
        let (details, failed) = match &sent {
            Err(e) => {
                let failure = Failure {
                    failed: Expectation::Request,
                    error: e.to_string(),
                };
                (
                    http_probe::details(&meta, None, latency_ms, Some(&failure)),
                    true,
                )
            }
            Ok(response) => {
                let observed = Observed {
                    status: response.status,
                    body: &response.body,
                    latency_ms,
                };
                let verdict = meta.judge(&observed);
                let failure = verdict.as_ref().err();
                (
                    http_probe::details(&meta, Some(&observed), latency_ms, failure),
                    failure.is_some(),
                )
            }
        };
        let status = if failed {
            Status::Failed
        } else {
            Status::Success
        };
        Ok(Outcome::with_details(status, details.to_string()))
    }
}

handler_sdk::export_handler!(HttpProbe);
