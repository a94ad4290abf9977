//! http_get: GETs meta.url (its origin granted in grants.http), with the
//! token of grants.env (API_TOKEN) when the check has one, and reports the
//! status and the start of the body; a refused or failed request is a
//! `failed` outcome naming the WASI error code.
//!
//! ```json
//! "meta": {"url": "http://127.0.0.1:8080/health"},
//! "grants": {"http": ["http://127.0.0.1:8080"], "env": ["API_TOKEN"]}
//! ```

use handler_sdk::{Check, Handler, Outcome, Status, Tick, env, http};
use serde_json::{Value, json};

struct HttpGet;

impl Handler for HttpGet {
    fn run(_tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: Value = serde_json::from_str(&check.meta).map_err(|e| e.to_string())?;
        let url = meta["url"].as_str().ok_or("meta.url must be a URL")?;
        let token = env::var("API_TOKEN"); // present only when granted
        let mut request = http::Request::new("GET", url);
        if let Some(token) = &token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let response = match request.send() {
            Ok(response) => response,
            // e.code: Some("HttpRequestDenied"), Some("ConnectionRefused"), ...
            Err(e) => {
                let details = json!({"error": e.to_string(), "code": e.code});
                return Ok(Outcome::with_details(Status::Failed, details.to_string()));
            }
        };
        let excerpt: String = response.text().chars().take(200).collect();
        let details =
            json!({"status": response.status, "tokenSent": token.is_some(), "excerpt": excerpt});
        let status = if response.status < 400 {
            Status::Success
        } else {
            Status::Failed
        };
        Ok(Outcome::with_details(status, details.to_string()))
    }
}

handler_sdk::export_handler!(HttpGet);
