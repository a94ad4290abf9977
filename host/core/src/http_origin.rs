//! `grants.http` origins: where a handler may send HTTP requests, written
//! the way Spin writes `allowed_outbound_hosts`: `scheme://host[:port]`.
//!
//! - the scheme is `http` or `https`;
//! - the host is a DNS name (`api.example.com`), a wildcard for its
//!   subdomains (`*.example.com`: `a.example.com` and `a.b.example.com`,
//!   not `example.com` itself), `*` for any host, an IPv4 address or an
//!   IPv6 address in brackets;
//! - the port is a number or `*`; without one, the scheme's default port
//!   (80, 443) and only that.
//!
//! Nothing else: a path, a query or user info in an origin is refused, so
//! a grant never looks narrower than it is.

use std::net::IpAddr;

/// One allowed origin pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOrigin {
    /// `https` when true, `http` otherwise.
    pub https: bool,
    /// Which hosts.
    pub host: OriginHost,
    /// Which port; `None` for `*`. Written without a port, the scheme's
    /// default port.
    pub port: Option<u16>,
    /// Whether the port was written (`:443` as opposed to nothing), kept so
    /// that the origin displays as written.
    pub port_written: bool,
}

/// The host part of an [`HttpOrigin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginHost {
    /// Any host (`*`).
    Any,
    /// Exactly this name or address (lowercase; IPv6 without brackets).
    Exact(String),
    /// Any subdomain of this name (`*.example.com` holds `example.com`).
    Subdomains(String),
}

/// The origin of a request, as the host sends it: what a grant is matched
/// against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin {
    /// Whether the request goes over TLS.
    pub https: bool,
    /// The host, lowercase, IPv6 without brackets.
    pub host: String,
    /// The port the request goes to (the scheme's default when the URL
    /// names none).
    pub port: u16,
}

impl RequestOrigin {
    /// The origin of a request to `scheme://authority`; `None` unless the
    /// scheme is `http` or `https` and the authority has a host.
    pub fn new(scheme: &str, authority: &str) -> Option<RequestOrigin> {
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        // User info never names the peer.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => default_port(https),
        };
        if host.is_empty() {
            return None;
        }
        Some(RequestOrigin {
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// `scheme://host:port`, IPv6 in brackets: how a refused origin is named in
/// logs and failure reasons.
impl std::fmt::Display for RequestOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn default_port(https: bool) -> u16 {
    if https { 443 } else { 80 }
}

/// `host[:port]` with IPv6 in brackets: (host without brackets, port text).
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

impl HttpOrigin {
    /// Parses `scheme://host[:port]`; the error says what was expected.
    pub fn parse(text: &str) -> Result<HttpOrigin, String> {
        let expected = |why: &str| {
            format!(
                "expected an origin such as \"https://api.example.com\", \"http://127.0.0.1:8080\", \"https://*.example.com\" or \"http://localhost:*\"{why}, found {text:?}"
            )
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| expected(" (scheme://host)"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(expected(" (the scheme is http or https)")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(expected(" (an origin has no path, query or user)"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| expected(""))?;
        let port_written = port.is_some();
        let port = match port {
            None => Some(default_port(https)),
            Some("*") => None,
            Some(digits) => Some(
                digits
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| expected(" (the port is 1 to 65535 or *)"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            OriginHost::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if !is_dns_name(domain) {
                return Err(expected(""));
            }
            OriginHost::Subdomains(domain.to_string())
        } else if host.parse::<IpAddr>().is_ok() {
            if !authority.starts_with('[') && host.contains(':') {
                return Err(expected(" (IPv6 in brackets)"));
            }
            OriginHost::Exact(host)
        } else if is_dns_name(&host) {
            OriginHost::Exact(host)
        } else {
            return Err(expected(""));
        };
        Ok(HttpOrigin {
            https,
            host,
            port,
            port_written,
        })
    }

    /// Whether a request to `origin` is allowed by this pattern.
    pub fn allows(&self, origin: &RequestOrigin) -> bool {
        if self.https != origin.https || self.port.is_some_and(|p| p != origin.port) {
            return false;
        }
        match &self.host {
            OriginHost::Any => true,
            OriginHost::Exact(host) => same_host(host, &origin.host),
            OriginHost::Subdomains(domain) => origin
                .host
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }

    /// Whether this pattern names a host that DNS resolves (a name or a
    /// wildcard, not an address): what a guest's own name lookups may ask.
    pub fn allows_name(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match &self.host {
            OriginHost::Any => true,
            OriginHost::Exact(host) => *host == name,
            OriginHost::Subdomains(domain) => name
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// Names compare as text; addresses as addresses (`::ffff:127.0.0.1` is
/// `127.0.0.1`, `::1` is `0:0::1`).
fn same_host(granted: &str, asked: &str) -> bool {
    match (granted.parse::<IpAddr>(), asked.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a.to_canonical() == b.to_canonical(),
        _ => granted == asked,
    }
}

/// As written (lowercased): parses back to the same pattern.
impl std::fmt::Display for HttpOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.https { "https://" } else { "http://" })?;
        match &self.host {
            OriginHost::Any => f.write_str("*")?,
            OriginHost::Exact(host) if host.contains(':') => write!(f, "[{host}]")?,
            OriginHost::Exact(host) => f.write_str(host)?,
            OriginHost::Subdomains(domain) => write!(f, "*.{domain}")?,
        }
        match (self.port, self.port_written) {
            (None, _) => f.write_str(":*"),
            (Some(port), true) => write!(f, ":{port}"),
            (Some(_), false) => Ok(()),
        }
    }
}

/// Letters, digits, `-` and `_`, and `.` between non-empty labels.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> HttpOrigin {
        HttpOrigin::parse(text).expect(text)
    }

    fn request(url: &str) -> RequestOrigin {
        let (scheme, rest) = url.split_once("://").expect("url");
        let authority = rest.split('/').next().expect("authority");
        RequestOrigin::new(scheme, authority).expect(url)
    }

    #[test]
    fn origins_parse_as_spin_writes_them_and_show_as_written() {
        for text in [
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "https://*.example.com",
            "http://localhost:*",
            "https://[::1]:8443",
            "http://*:*",
        ] {
            let parsed = origin(text);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(HttpOrigin::parse(&parsed.to_string()), Ok(parsed));
        }
        assert_eq!(
            origin("https://API.Example.com/").to_string(),
            "https://api.example.com"
        );
    }

    #[test]
    fn an_origin_that_would_look_narrower_than_it_is_is_refused() {
        for bad in [
            "api.example.com",
            "ftp://example.com",
            "https://example.com/v1",
            "https://example.com?x=1",
            "https://user@example.com",
            "https://example.com:0",
            "https://example.com:99999",
            "http://::1:80",
            "https://*.",
            "https://exa mple.com",
            "https://",
        ] {
            let error = HttpOrigin::parse(bad).expect_err(bad);
            assert!(error.contains("expected an origin"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_request_matches_by_scheme_host_and_port() {
        let exact = origin("https://api.example.com");
        assert!(exact.allows(&request("https://api.example.com/v1")));
        assert!(exact.allows(&request("https://API.example.com:443/")));
        assert!(!exact.allows(&request("http://api.example.com/")));
        assert!(!exact.allows(&request("https://api.example.com:8443/")));
        assert!(!exact.allows(&request("https://api.example.com.evil.net/")));

        let local = origin("http://127.0.0.1:8080");
        assert!(local.allows(&request("http://127.0.0.1:8080/x")));
        assert!(!local.allows(&request("http://127.0.0.1:8081/x")));
        assert!(local.allows(&request("http://[::ffff:127.0.0.1]:8080/x")));

        let any_port = origin("http://localhost:*");
        assert!(any_port.allows(&request("http://localhost:1/")));
        assert!(any_port.allows(&request("http://localhost/")));
        assert!(!any_port.allows(&request("http://localhost.example:1/")));

        let wild = origin("https://*.example.com");
        assert!(wild.allows(&request("https://a.example.com/")));
        assert!(wild.allows(&request("https://a.b.example.com/")));
        assert!(!wild.allows(&request("https://example.com/")));
        assert!(!wild.allows(&request("https://badexample.com/")));
    }

    #[test]
    fn name_lookups_are_allowed_for_granted_names_only() {
        assert!(origin("https://api.example.com").allows_name("API.example.com."));
        assert!(!origin("https://api.example.com").allows_name("example.com"));
        assert!(origin("https://*.example.com").allows_name("x.example.com"));
        assert!(!origin("https://*.example.com").allows_name("example.com"));
        assert!(!origin("http://127.0.0.1:80").allows_name("localhost"));
    }

    #[test]
    fn a_request_origin_names_its_default_port() {
        assert_eq!(
            request("https://a.example").to_string(),
            "https://a.example:443"
        );
        assert_eq!(request("http://[::1]/").to_string(), "http://[::1]:80");
        assert_eq!(RequestOrigin::new("gopher", "x"), None);
        assert_eq!(RequestOrigin::new("http", "x:notaport"), None);
    }
}
