//! What an operator watches from outside: the Prometheus metrics
//! ([`metrics`]), the `/status` picture ([`status`]) and its HTML page
//! ([`page`]), and the HTTP endpoint that serves them with `/healthz` and
//! `/readyz` ([`endpoint`]). This room defines its own input values
//! (figures, samples, the endpoint's [`endpoint::HostView`]) and imports no
//! other room: the daemon's one adapter (`daemon/observed.rs`) turns what
//! happened into them. Per-check gauges (overdue ratio, last success,
//! failures in a row) are computed from the pipeline's state at each
//! scrape, so they are never stale.

pub mod endpoint;
pub mod metrics;
pub mod page;
pub mod status;
