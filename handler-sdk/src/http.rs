//! A small blocking HTTP client over `wasi:http`, for handlers whose check
//! grants the origin (`grants.http`).
//!
//! ```ignore
//! let response = handler_sdk::http::get("https://api.example.com/health")?;
//! if response.status != 200 {
//!     return Ok(Outcome::failed());
//! }
//! let body = response.text();
//! ```
//!
//! The host sends every request after checking its origin: a request to
//! an origin the check was not granted fails with
//! [`HttpError::is_denied`]. Redirects (301, 302, 303, 307, 308) are
//! followed up to [`MAX_REDIRECTS`] times, each hop a new request the host
//! checks the same way, so a redirect to an origin not granted fails too.
//! Bodies are capped by the check's `maxHttpBytes`, and the whole request
//! by the run's time limit.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// How many redirects [`Request::send`] follows before it gives up.
pub const MAX_REDIRECTS: u32 = 5;

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request did not come back with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The URL asked for.
    pub url: String,
    /// The WASI HTTP error code (e.g. `HttpRequestDenied`), when the
    /// failure came from `wasi:http`.
    pub code: Option<String>,
    /// What went wrong, in words.
    pub message: String,
}

impl HttpError {
    fn new(url: &str, code: Option<&ErrorCode>, message: impl Into<String>) -> HttpError {
        HttpError {
            url: url.to_string(),
            code: code.map(|c| code_name(c).to_string()),
            message: message.into(),
        }
    }

    /// Whether the host refused the request: its origin is not in the
    /// check's `grants.http`.
    pub fn is_denied(&self) -> bool {
        self.code.as_deref() == Some("HttpRequestDenied")
    }

    /// Whether a body was over the check's `maxHttpBytes`.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("HttpResponseBodySize" | "HttpRequestBodySize")
        )
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.url, self.message)
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for String {
    fn from(e: HttpError) -> String {
        e.to_string()
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::new("GET", url).send()
}

/// `POST url` with `body` of type `content_type`.
pub fn post(
    url: &str,
    content_type: &str,
    body: impl Into<Vec<u8>>,
) -> Result<Response, HttpError> {
    Request::new("POST", url)
        .header("content-type", content_type)
        .body(body)
        .send()
}

/// A request to build: method, URL, headers, body.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    follow_redirects: bool,
    timeout: Option<std::time::Duration>,
}

impl Request {
    /// A request with no headers and no body; `method` as written
    /// (`GET`, `POST`, `PUT`, ...).
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            follow_redirects: true,
            timeout: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    /// Whether redirects are followed (they are unless this says no; a
    /// redirect not followed comes back as the 3xx response).
    pub fn follow_redirects(mut self, follow: bool) -> Request {
        self.follow_redirects = follow;
        self
    }

    /// How long to wait to connect, and then for the response to begin
    /// (`wasi:http` request options; the run's own time limit holds in
    /// any case).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        for _ in 0..=MAX_REDIRECTS {
            let response = send_once(&method, &url, &self.headers, body.as_deref(), self.timeout)?;
            let location = match response.status {
                301 | 302 | 303 | 307 | 308 if self.follow_redirects => {
                    response.header("location").map(str::to_string)
                }
                _ => None,
            };
            let Some(location) = location else {
                return Ok(response);
            };
            url = resolve(&url, &location).ok_or_else(|| {
                HttpError::new(&url, None, format!("bad redirect to {location:?}"))
            })?;
            if response.status == 303
                || (response.status != 307 && response.status != 308 && method == "POST")
            {
                method = "GET".into();
                body = None;
            }
        }
        Err(HttpError::new(
            &self.url,
            None,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }
}

/// The parts of an absolute `http(s)://` URL.
struct Url<'a> {
    https: bool,
    authority: &'a str,
    path: &'a str,
}

fn parse(url: &str) -> Option<Url<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(cut);
    if authority.is_empty() {
        return None;
    }
    Some(Url {
        https,
        authority,
        path,
    })
}

/// `location` (absolute, or a path) against the URL that sent it.
fn resolve(base: &str, location: &str) -> Option<String> {
    if parse(location).is_some() {
        return Some(location.to_string());
    }
    let url = parse(base)?;
    let scheme = if url.https { "https" } else { "http" };
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{}{location}", url.authority));
    }
    let dir = url.path.rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{}{dir}/{location}", url.authority))
}

fn send_once(
    method: &str,
    url_text: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout: Option<std::time::Duration>,
) -> Result<Response, HttpError> {
    let fail = |code: Option<&ErrorCode>, message: String| HttpError::new(url_text, code, message);
    let url = parse(url_text)
        .ok_or_else(|| fail(None, "expected an absolute http:// or https:// URL".into()))?;
    let mut entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    // A body of known length goes out with its length, not chunked.
    if let Some(bytes) = body
        && !entries.iter().any(|(k, _)| k == "content-length")
    {
        entries.push((
            "content-length".into(),
            bytes.len().to_string().into_bytes(),
        ));
    }
    let fields =
        Fields::from_list(&entries).map_err(|e| fail(None, format!("bad header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    };
    let invalid = |what: &str| fail(None, format!("invalid {what}"));
    request
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(if url.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(url.authority))
        .map_err(|()| invalid("host"))?;
    let path = if url.path.is_empty() { "/" } else { url.path };
    request
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    let outgoing = request.body().map_err(|()| invalid("body"))?;
    let options = timeout.map(|t| {
        let options = wasip2::http::types::RequestOptions::new();
        let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        // Refused only by a host that does not support the option; the
        // run's own limit then holds alone.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        options
    });
    let future = outgoing_handler::handle(request, options)
        .map_err(|code| fail(Some(&code), describe(&code)))?;
    if let Some(bytes) = body {
        let stream = outgoing.write().map_err(|()| invalid("body"))?;
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| stream_error(url_text, e))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| fail(Some(&code), describe(&code)))?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(fail(Some(&code), describe(&code))),
        Some(Err(())) | None => return Err(fail(None, "no response".into())),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| fail(None, "no body".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| fail(None, "no body".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(stream_error(url_text, e)),
        }
    }
    drop(stream);
    let trailers = IncomingBody::finish(incoming);
    trailers.subscribe().block();
    if let Some(Ok(Err(code))) = trailers.get() {
        return Err(fail(Some(&code), describe(&code)));
    }
    Ok(Response {
        status,
        headers,
        body: bytes,
        url: url_text.to_string(),
    })
}

fn stream_error(url: &str, error: StreamError) -> HttpError {
    match error {
        StreamError::Closed => HttpError::new(url, None, "connection closed"),
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(&e) {
            Some(code) => HttpError::new(url, Some(&code), describe(&code)),
            // wasmtime-wasi-http 48 gives a body's error as text only; the
            // host's body cap says "body size exceeds limit: N bytes".
            None => {
                let said = e.to_debug_string();
                match said.split_once("body size exceeds limit: ") {
                    Some((head, max)) => {
                        let max = max.trim_end_matches(" bytes").parse().ok();
                        let code = if head.contains("request") {
                            ErrorCode::HttpRequestBodySize(max)
                        } else {
                            ErrorCode::HttpResponseBodySize(max)
                        };
                        HttpError::new(url, Some(&code), describe(&code))
                    }
                    None => HttpError::new(url, None, said),
                }
            }
        },
    }
}

/// The error code's name, as the WIT spells it in Rust.
fn code_name(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::HttpRequestDenied => "HttpRequestDenied",
        ErrorCode::HttpResponseBodySize(_) => "HttpResponseBodySize",
        ErrorCode::HttpRequestBodySize(_) => "HttpRequestBodySize",
        ErrorCode::ConnectionRefused => "ConnectionRefused",
        ErrorCode::ConnectionTimeout => "ConnectionTimeout",
        ErrorCode::ConnectionReadTimeout => "ConnectionReadTimeout",
        ErrorCode::HttpResponseTimeout => "HttpResponseTimeout",
        ErrorCode::DnsError(_) => "DnsError",
        ErrorCode::TlsProtocolError => "TlsProtocolError",
        ErrorCode::TlsCertificateError => "TlsCertificateError",
        _ => "Other",
    }
}

/// The error code in words.
fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => {
            "request denied by the host: the origin is not in the check's grants.http".into()
        }
        ErrorCode::HttpResponseBodySize(max) | ErrorCode::HttpRequestBodySize(max) => match max {
            Some(max) => format!("body over the check's maxHttpBytes ({max} bytes)"),
            None => "body over the check's maxHttpBytes".into(),
        },
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations_resolve_against_the_url_that_sent_them() {
        let base = "http://127.0.0.1:8080/a/b?x=1";
        assert_eq!(
            resolve(base, "http://other:1/z").as_deref(),
            Some("http://other:1/z")
        );
        assert_eq!(
            resolve(base, "/root").as_deref(),
            Some("http://127.0.0.1:8080/root")
        );
        assert_eq!(
            resolve(base, "sibling").as_deref(),
            Some("http://127.0.0.1:8080/a/sibling")
        );
        assert_eq!(
            resolve("https://h/p", "//cdn.example/x").as_deref(),
            Some("https://cdn.example/x")
        );
    }

    #[test]
    fn urls_split_into_origin_and_path() {
        let url = parse("https://api.example.com:8443/v1/health?full=1#top").expect("url");
        assert!(url.https);
        assert_eq!(url.authority, "api.example.com:8443");
        assert_eq!(url.path, "/v1/health?full=1");
        let bare = parse("http://h").expect("url");
        assert_eq!(bare.path, "");
        assert!(parse("ftp://h/x").is_none());
        assert!(parse("http:///x").is_none());
    }
}
