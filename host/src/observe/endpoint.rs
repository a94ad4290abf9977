//! The operations endpoint (`--metrics-addr`): `GET /metrics` (OpenMetrics
//! text), `/healthz` (200 while the host's tick loop turns) and `/readyz`
//! (200 when the config is valid, its handlers are loaded and ticks
//! arrive; else 503 with the reasons as JSON). What it serves comes from a
//! [`HostView`], so this file knows HTTP and nothing of the daemon.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::status::StatusReply;

/// What the endpoint reads from a running host.
pub trait HostView: Send + Sync + 'static {
    /// The metrics, rendered now.
    fn metrics(&self) -> String;
    /// `Ok` while the host's loops are alive; else why not.
    fn alive(&self) -> Result<(), String>;
    /// `Ok` when the host is ready to do its work; else the reasons.
    fn ready(&self) -> Result<(), Vec<String>>;
    /// The live picture of one agent (`/status?agent=NAME`, or `/status`
    /// when the host serves one; `/` renders it as HTML); `None` for an
    /// agent the host does not serve. `agent: None` on a host serving
    /// several: every agent's ([`StatusReply::Host`]).
    fn status(&self, agent: Option<&str>) -> Option<StatusReply>;
}

/// The `agent` of a `?agent=NAME` query, if any.
fn agent_of(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(key, _)| key == "agent")
        .map(|(_, value)| value.into_owned())
}

/// The OpenMetrics text format's content type, which Prometheus asks for.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` (at once, so a taken port is an error at start-up) and
/// returns the bound address with the server's future.
pub async fn bind(
    addr: SocketAddr,
    view: Arc<dyn HostView>,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/", get(page))
        .with_state(view);
    let serve = async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the operations endpoint stopped: {e}");
        }
    };
    Ok((bound, serve))
}

async fn metrics(State(view): State<Arc<dyn HostView>>) -> Response {
    let body = tokio::task::spawn_blocking(move || view.metrics())
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response()
}

async fn status(State(view): State<Arc<dyn HostView>>, uri: Uri) -> Response {
    let body = tokio::task::spawn_blocking(move || view.status(agent_of(&uri).as_deref()))
        .await
        .unwrap_or_default();
    match body.map(|body| serde_json::to_string_pretty(&body)) {
        Some(Ok(body)) => {
            ([(header::CONTENT_TYPE, "application/json")], body + "\n").into_response()
        }
        Some(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialise the status: {e}\n"),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such agent on this host\n").into_response(),
    }
}

async fn page(State(view): State<Arc<dyn HostView>>, uri: Uri) -> Response {
    let body = tokio::task::spawn_blocking(move || {
        view.status(agent_of(&uri).as_deref())
            .map(|status| super::page::render(&status))
    })
    .await
    .unwrap_or_default();
    match body {
        Some(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such agent on this host\n").into_response(),
    }
}

async fn healthz(State(view): State<Arc<dyn HostView>>) -> Response {
    match view.alive() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn readyz(State(view): State<Arc<dyn HostView>>) -> Response {
    let (status, ready, reasons) = match view.ready() {
        Ok(()) => (StatusCode::OK, true, Vec::new()),
        Err(reasons) => (StatusCode::SERVICE_UNAVAILABLE, false, reasons),
    };
    let body = serde_json::json!({"ready": ready, "reasons": reasons});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}
