//! The environment a check grants (`grants.env`, `grants.secrets`): a
//! handler sees the variables its check names and nothing else of the
//! host's environment.
//!
//! ```ignore
//! let token = handler_sdk::env::var("API_TOKEN").ok_or("API_TOKEN is not granted")?;
//! ```
//!
//! A secret's value is redacted by the host wherever the handler writes it
//! (logs, events, details, its failure reason); do not try to encode it.

/// The granted variable `name`, or `None` when the check grants no such
/// variable (or grants it and the host's variable is unset).
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Every variable the check grants, as `(name, value)`.
pub fn vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}
