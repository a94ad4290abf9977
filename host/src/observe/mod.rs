//! What an operator watches from outside: Prometheus metrics ([`metrics`])
//! and the HTTP endpoint that serves them with `/healthz` and `/readyz`
//! ([`http`]). Counters are fed where things happen (the pipeline, the
//! watchers, the tick loop); per-check gauges (overdue ratio, last success,
//! failures in a row) are computed from the pipeline's state at each scrape,
//! so they are never stale. Touches the pipeline and the bus only to read.

pub mod http;
pub mod metrics;
pub mod page;

pub use metrics::METRICS;
