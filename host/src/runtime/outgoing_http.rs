//! `wasi:http` under `grants.http`: the host sends every request a handler
//! makes, after checking its origin against the check's grant.
//!
//! wasmtime-wasi-http parses what the guest built into an `http::Request`
//! and hands it to [`HttpPolicy::send_request`], the one place a request
//! leaves the sandbox. There:
//! - the origin (scheme, host, port) must match a granted pattern, or the
//!   guest gets `HTTP-request-denied`, the refusal is logged with the check
//!   and the origin, and the run's failure reason names the origin;
//! - redirects are not followed by the host: a guest that follows one makes
//!   a new request, checked here like the first;
//! - bodies, sent and received, are capped at the run's `maxHttpBytes`
//!   (`HTTP-request-body-size` / `HTTP-response-body-size` to the guest);
//! - connecting, the TLS handshake and the wait for the response are all
//!   bounded by the run's deadline (the run itself is stopped there too);
//! - TLS trusts the bundled web roots (webpki-roots), the system's roots,
//!   and a grant's own `caFile`.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use heartbeat_core::http_origin::{HttpOrigin, RequestOrigin};

use super::connections::{ConnectionPermit, Connections};
use super::refusals::Refusals;

/// One granted origin as a run uses it: the pattern and the CA bundle file
/// (absolute) its TLS connections also trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// Which origins.
    pub origin: HttpOrigin,
    /// An extra PEM bundle of CA certificates, read when a request to this
    /// origin is sent.
    pub ca_file: Option<PathBuf>,
}

/// The per-run hooks: the grant, the caps and the deadline.
pub struct HttpPolicy {
    grants: Arc<Vec<HttpGrant>>,
    max_bytes: u64,
    deadline: Instant,
    connections: Connections,
}

impl HttpPolicy {
    /// The policy of one run.
    pub fn new(
        grants: Vec<HttpGrant>,
        max_bytes: u64,
        deadline: Instant,
        connections: Connections,
    ) -> HttpPolicy {
        HttpPolicy {
            grants: Arc::new(grants),
            max_bytes,
            deadline,
            connections,
        }
    }

    /// The grant a request to `uri` falls under, or why it is refused.
    fn grant_for(&self, uri: &http::Uri) -> Result<(RequestOrigin, &HttpGrant), String> {
        let origin = uri
            .scheme_str()
            .zip(uri.authority())
            .and_then(|(scheme, authority)| RequestOrigin::new(scheme, authority.as_str()))
            .ok_or_else(|| format!("http request to {uri} has no http(s) origin"))?;
        match self.grants.iter().find(|g| g.origin.allows(&origin)) {
            Some(grant) => Ok((origin, grant)),
            None => Err(origin.to_string()),
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let (origin, grant) = match self.grant_for(request.uri()) {
            Ok(found) => found,
            Err(refused) => {
                self.connections.refusals().refuse(
                    "http request refused: origin not in grants.http",
                    format!("http origin {refused} is not in grants.http"),
                );
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        let Some(permit) = self
            .connections
            .open(&format!("http connection to {origin}"))
        else {
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        };
        let ca_file = grant.ca_file.clone();
        let (max_bytes, deadline) = (self.max_bytes, self.deadline);
        let refusals = self.connections.refusals().clone();
        Box::new(async move {
            let deadline = tokio::time::Instant::from_std(deadline);
            let limits = Limits {
                max_bytes,
                deadline,
                options: options.unwrap_or_default(),
            };
            match tokio::time::timeout_at(
                deadline,
                send(request, origin, ca_file, limits, refusals, permit),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(Error::ConnectionTimeout),
            }
        })
    }
}

/// What bounds one request: the body cap, the run's deadline, and the
/// guest's own `request-options` timeouts (each within the deadline).
struct Limits {
    max_bytes: u64,
    deadline: tokio::time::Instant,
    options: RequestOptions,
}

impl Limits {
    /// The earlier of the run's deadline and `timeout` from now.
    fn by(&self, timeout: Option<std::time::Duration>) -> tokio::time::Instant {
        timeout.map_or(self.deadline, |t| {
            self.deadline.min(tokio::time::Instant::now() + t)
        })
    }
}

/// Sends `request` to `origin` over one HTTP/1.1 connection (TLS for
/// https), with both bodies capped at `max_bytes`.
async fn send(
    request: http::Request<WasiBody>,
    origin: RequestOrigin,
    ca_file: Option<PathBuf>,
    limits: Limits,
    refusals: Refusals,
    permit: ConnectionPermit,
) -> SendResult {
    let (max_bytes, deadline) = (limits.max_bytes, limits.deadline);
    let authority = if origin.host.contains(':') {
        format!("[{}]:{}", origin.host, origin.port)
    } else {
        format!("{}:{}", origin.host, origin.port)
    };
    let connect_by = limits.by(limits.options.connect_timeout);
    let tcp = tokio::time::timeout_at(connect_by, tokio::net::TcpStream::connect(&authority))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let (mut parts, body) = request.into_parts();
    // The request line carries the path only (the origin went into the
    // connection and the Host header).
    parts.uri = http::Uri::builder()
        .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|e| Error::InternalError(Some(e.to_string())))?;
    let cut = |side: &str| {
        let refusals = refusals.clone();
        let what = format!("{side} body over maxHttpBytes ({max_bytes} bytes), {origin}");
        move || refusals.note(what.clone())
    };
    let body = Capped::new(body, max_bytes, Side::Request, cut("request")).boxed_unsync();
    let request = http::Request::from_parts(parts, body);
    let response = if origin.https {
        let config = tls_config(ca_file.as_deref()).map_err(|e| {
            refusals.warn(&format!("{origin}: {e}"));
            Error::InternalError(Some(e))
        })?;
        let name = server_name(&origin.host)?;
        let tls = tokio::time::timeout_at(
            connect_by,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Tls)?;
        let first_byte_by = limits.by(limits.options.first_byte_timeout);
        tokio::time::timeout_at(first_byte_by, exchange(tls, request, deadline, permit))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??
    } else {
        let first_byte_by = limits.by(limits.options.first_byte_timeout);
        tokio::time::timeout_at(first_byte_by, exchange(tcp, request, deadline, permit))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??
    };
    let response = response.map(|body| {
        Capped::new(
            body.map_err(Error::from),
            max_bytes,
            Side::Response,
            cut("response"),
        )
        .boxed_unsync()
    });
    Ok((response, Box::new(async { Ok(()) })))
}

/// One request and its response head over `io`; the connection is driven
/// by a task of its own, which ends when the body has been read or dropped,
/// and at the run's deadline in any case. The connection's place in the
/// run's bound (`permit`) is freed when that task ends.
async fn exchange<IO>(
    io: IO,
    request: http::Request<WasiBody>,
    deadline: tokio::time::Instant,
    permit: ConnectionPermit,
) -> Result<http::Response<hyper::body::Incoming>, Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(io)).await?;
    let driver = tokio::spawn(async move {
        let _permit = permit;
        match tokio::time::timeout_at(deadline, connection).await {
            Ok(Err(e)) => tracing::debug!("http connection ended: {e}"),
            Ok(Ok(())) => {}
            Err(_) => tracing::debug!("http connection closed at the run's deadline"),
        }
    });
    let response = sender.send_request(request).await;
    if response.is_err() {
        driver.abort();
    }
    Ok(response?)
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    use rustls::pki_types::ServerName;
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(ServerName::from(ip)),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid),
    }
}

/// The bundled web roots and the system's, loaded once per process.
fn default_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(
            system_roots = added,
            errors = native.errors.len(),
            "TLS roots loaded"
        );
        roots
    })
}

/// The client configuration for an https request: the default roots, plus
/// the certificates of `ca_file` (read now, so a renewed bundle is used
/// without a restart).
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let build = |roots: rustls::RootCertStore| {
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| format!("TLS configuration: {e}"))
    };
    let Some(file) = ca_file else {
        if let Some(config) = DEFAULT.get() {
            return Ok(Arc::clone(config));
        }
        let config = build(default_roots().clone())?;
        return Ok(Arc::clone(DEFAULT.get_or_init(|| config)));
    };
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = crate::store::read::read_regular(file, MAX_CA_FILE_BYTES, "CA bundle")
        .map_err(|e| format!("grants.http caFile {}: {e}", file.display()))?;
    let mut roots = default_roots().clone();
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("grants.http caFile {}: {e}", file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("grants.http caFile {}: {e}", file.display()))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!(
            "grants.http caFile {}: no PEM certificate in it",
            file.display()
        ));
    }
    build(roots)
}

/// The largest CA bundle read.
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

/// A body that fails once more than `max` bytes have passed through it,
/// calling `on_cut` then (the run's reason names the cut: the guest may
/// see only an I/O error).
struct Capped<B, F> {
    inner: B,
    left: u64,
    max: u64,
    side: Side,
    on_cut: F,
}

impl<B, F> Capped<B, F> {
    fn new(inner: B, max: u64, side: Side, on_cut: F) -> Capped<B, F> {
        Capped {
            inner,
            left: max,
            max,
            side,
            on_cut,
        }
    }
}

impl<B, F> Body for Capped<B, F>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
    F: Fn() + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let len = data.len() as u64;
            if len > self.left {
                let max = Some(self.max);
                self.left = 0;
                (self.on_cut)();
                return Poll::Ready(Some(Err(match self.side {
                    Side::Request => Error::HttpRequestBodySize(max),
                    Side::Response => Error::HttpResponseBodySize(max),
                })));
            }
            self.left -= len;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
