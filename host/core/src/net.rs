//! `grants.net` patterns: the TCP/UDP peers a handler may reach, written
//! `host:port`. The host is an IP address (`127.0.0.1`, `[::1]`), a CIDR
//! block (`10.0.0.0/8`) or a DNS name (`db.internal`, resolved by the host at
//! each run); the port is a number or `*`.

use std::net::IpAddr;

/// One allowed peer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPattern {
    /// Which hosts.
    pub host: NetHost,
    /// Which port; `None` for `*`.
    pub port: Option<u16>,
}

/// The host part of a [`NetPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetHost {
    /// One address.
    Ip(IpAddr),
    /// A block: the network address and its prefix length.
    Cidr(IpAddr, u8),
    /// A DNS name, matched by the addresses it resolves to at run time.
    Name(String),
}

impl NetPattern {
    /// Parses `host:port` (IPv6 in brackets); the error says what was expected.
    pub fn parse(text: &str) -> Result<NetPattern, String> {
        let expected = || {
            format!(
                "expected host:port such as \"db.internal:5432\", \"10.0.0.0/8:*\" or \"[::1]:80\", found {text:?}"
            )
        };
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']').ok_or_else(expected)?;
                (host, after.strip_prefix(':').ok_or_else(expected)?)
            }
            None => text.rsplit_once(':').ok_or_else(expected)?,
        };
        let port = match port {
            "*" => None,
            digits => Some(digits.parse::<u16>().map_err(|_| expected())?),
        };
        let host = if let Some((net, bits)) = host.split_once('/') {
            let net: IpAddr = net.parse().map_err(|_| expected())?;
            let bits: u8 = bits.parse().map_err(|_| expected())?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            if bits > max {
                return Err(expected());
            }
            NetHost::Cidr(net, bits)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            NetHost::Ip(ip)
        } else if is_dns_name(host) {
            NetHost::Name(host.to_ascii_lowercase())
        } else {
            return Err(expected());
        };
        Ok(NetPattern { host, port })
    }

    /// Whether `ip:port` is allowed by this pattern, with `resolved` the
    /// addresses a [`NetHost::Name`] pattern's name resolved to.
    pub fn allows(&self, ip: IpAddr, port: u16, resolved: &[IpAddr]) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            NetHost::Ip(allowed) => canonical(*allowed) == canonical(ip),
            NetHost::Cidr(net, bits) => in_block(canonical(ip), canonical(*net), *bits),
            NetHost::Name(_) => resolved.iter().any(|r| canonical(*r) == canonical(ip)),
        }
    }
}

/// As written in a grant (IPv6 in brackets, `*` for any port): parses back
/// to the same pattern.
impl std::fmt::Display for NetPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            NetHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            NetHost::Ip(ip) => write!(f, "{ip}")?,
            NetHost::Cidr(net, bits) => write!(f, "{net}/{bits}")?,
            NetHost::Name(name) => f.write_str(name)?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => f.write_str(":*"),
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Letters, digits, `-` and `.`, labels not empty: what the host will resolve.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn patterns_parse_as_spin_writes_them() {
        assert_eq!(
            NetPattern::parse("db.internal:5432"),
            Ok(NetPattern {
                host: NetHost::Name("db.internal".into()),
                port: Some(5432)
            })
        );
        assert_eq!(
            NetPattern::parse("10.0.0.0/8:*"),
            Ok(NetPattern {
                host: NetHost::Cidr(ip("10.0.0.0"), 8),
                port: None
            })
        );
        assert_eq!(
            NetPattern::parse("[::1]:80"),
            Ok(NetPattern {
                host: NetHost::Ip(ip("::1")),
                port: Some(80)
            })
        );
        for bad in [
            "db.internal",
            "x:99999",
            "10.0.0.0/33:1",
            "a b:1",
            ":80",
            "[::1]80",
        ] {
            assert!(NetPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pattern_shows_as_written_and_parses_back() {
        for text in [
            "db.internal:5432",
            "10.0.0.0/8:*",
            "[::1]:80",
            "127.0.0.1:8080",
        ] {
            let pattern = NetPattern::parse(text).expect("valid");
            assert_eq!(pattern.to_string(), text);
            assert_eq!(NetPattern::parse(&pattern.to_string()), Ok(pattern));
        }
    }

    #[test]
    fn addresses_match_by_ip_block_port_and_resolved_name() {
        let one = NetPattern::parse("127.0.0.1:8080").expect("valid");
        assert!(one.allows(ip("127.0.0.1"), 8080, &[]));
        assert!(one.allows(ip("::ffff:127.0.0.1"), 8080, &[]));
        assert!(!one.allows(ip("127.0.0.1"), 8081, &[]));
        assert!(!one.allows(ip("127.0.0.2"), 8080, &[]));
        let block = NetPattern::parse("10.0.0.0/8:*").expect("valid");
        assert!(block.allows(ip("10.200.3.4"), 1, &[]));
        assert!(!block.allows(ip("11.0.0.1"), 1, &[]));
        let all = NetPattern::parse("0.0.0.0/0:53").expect("valid");
        assert!(all.allows(ip("8.8.8.8"), 53, &[]));
        let name = NetPattern::parse("db.internal:5432").expect("valid");
        assert!(name.allows(ip("10.1.1.1"), 5432, &[ip("10.1.1.1")]));
        assert!(!name.allows(ip("10.1.1.2"), 5432, &[ip("10.1.1.1")]));
    }
}
