//! A small blocking HTTP GET over `wasi:http/outgoing-handler`, with the
//! bindings `lib.rs` generates for the `handler-wasi` world.
//!
//! The host sends a request only to an origin in the check's `grants.http`
//! (or `invoke --grant-http ORIGIN`); anything else fails here with
//! `HttpRequestDenied`. Redirects are followed up to [`MAX_REDIRECTS`]
//! times, and the host checks every hop like the first request. Bodies are
//! capped by the check's `maxHttpBytes`, the whole run by its `timeoutMs`.

use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use crate::wasi::io::streams::StreamError;

/// How many redirects [`get`] follows.
pub const MAX_REDIRECTS: usize = 5;

/// A response, read whole.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url`, following redirects. The error names the URL and the WASI
/// error code, e.g. `GET http://10.0.0.1/: HttpRequestDenied`.
pub fn get(url: &str) -> Result<Response, String> {
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let (response, location) = get_once(&url).map_err(|e| format!("GET {url}: {e}"))?;
        match location {
            Some(next) if matches!(response.status, 301 | 302 | 303 | 307 | 308) => {
                url = resolve(&url, &next);
            }
            _ => return Ok(response),
        }
    }
    Err(format!("GET {url}: more than {MAX_REDIRECTS} redirects"))
}

/// `location` (an absolute URL, or a path on the same origin) against the
/// URL that sent it.
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find(['/', '?']).map(|i| start + i))
        .unwrap_or(base.len());
    format!(
        "{}/{}",
        &base[..origin_end],
        location.trim_start_matches('/')
    )
}

fn get_once(url: &str) -> Result<(Response, Option<String>), String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err("expected an http:// or https:// URL".into());
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(cut);
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };

    let request = OutgoingRequest::new(Fields::new());
    let invalid = |what: &str| format!("invalid {what}");
    request
        .set_method(&Method::Get)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("host"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("path"))?;
    let body = request.body().map_err(|()| invalid("body"))?;
    let future = outgoing_handler::handle(request, None).map_err(|code| describe(&code))?;
    OutgoingBody::finish(body, None).map_err(|code| describe(&code))?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(describe(&code)),
        Some(Err(())) | None => return Err("no response".into()),
    };
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response.consume().map_err(|()| "no body".to_string())?;
    let stream = incoming.stream().map_err(|()| "no body".to_string())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match crate::wasi::http::types::http_error_code(&e) {
                    Some(code) => describe(&code),
                    // wasmtime 48 gives a body over maxHttpBytes as text:
                    // "... body size exceeds limit: N bytes".
                    None => e.to_debug_string(),
                });
            }
        }
    }
    drop(stream);
    drop(incoming);
    Ok((
        Response {
            status,
            body: bytes,
        },
        location,
    ))
}

fn describe(code: &ErrorCode) -> String {
    format!("{code:?}")
}
