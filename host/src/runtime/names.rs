//! The guest's own DNS lookups (`wasi:sockets/ip-name-lookup`), limited to
//! the names its check is granted.
//!
//! wasmtime-wasi can only allow lookups or not; so the host shadows its
//! `resolve-addresses` with [`SocketsView`], which refuses a name no grant
//! names (logged, and named in the run's reason) and hands the others to
//! wasmtime-wasi's own resolver. An IP literal is not a lookup and passes;
//! the connection to it is still checked against `grants.net`. Lookups are
//! off altogether for a check without a `net` or `http` grant.

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::SocketError;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::sockets::WasiSocketsCtxView;

use heartbeat_core::http_origin::HttpOrigin;
use heartbeat_core::net::{NetHost, NetPattern};

use super::outgoing_http::HttpGrant;
use super::refusals::Refusals;

/// Which names a run may look up: those of its `grants.net` patterns and
/// its `grants.http` origins.
#[derive(Debug, Clone, Default)]
pub struct NamePolicy {
    net: Vec<String>,
    http: Vec<HttpOrigin>,
    refusals: Refusals,
}

impl NamePolicy {
    /// The policy of one run.
    pub fn new(net: &[NetPattern], http: &[HttpGrant], refusals: Refusals) -> NamePolicy {
        NamePolicy {
            net: net
                .iter()
                .filter_map(|p| match &p.host {
                    NetHost::Name(name) => Some(name.clone()),
                    _ => None,
                })
                .collect(),
            http: http.iter().map(|g| g.origin.clone()).collect(),
            refusals,
        }
    }

    /// Whether `name` may be looked up.
    pub fn allows(&self, name: &str) -> bool {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        self.net.contains(&lower) || self.http.iter().any(|o| o.allows_name(&lower))
    }
}

/// `HasData` for the interfaces the host shadows: `ip-name-lookup` (here)
/// and `tcp-create-socket` / `udp-create-socket` (`runtime/sockets.rs`).
pub struct GrantedSockets;

impl HasData for GrantedSockets {
    type Data<'a> = SocketsView<'a>;
}

/// wasmtime-wasi's sockets view with what the host checks before handing
/// a call on: the run's name policy and its connection bound.
pub struct SocketsView<'a> {
    /// What wasmtime-wasi's resolver and sockets work on.
    pub inner: WasiSocketsCtxView<'a>,
    /// The names granted.
    pub policy: &'a NamePolicy,
    /// The run's connection bound.
    pub connections: &'a super::connections::Connections,
    /// The places of the sockets the run created, held until it ends.
    pub sockets: &'a mut Vec<super::connections::ConnectionPermit>,
}

/// Required by the bindings (the lookup interface uses the network's
/// types); only the lookup functions are linked from here.
impl network::Host for SocketsView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.inner, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::sockets::network::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.inner, err)
    }
}

impl network::HostNetwork for SocketsView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.inner, this)
    }
}

impl Host for SocketsView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !self.policy.allows(&name) {
            self.policy.refusals.refuse(
                "name lookup refused: no grant names it",
                format!("name lookup of {name:?} is not granted"),
            );
            return Err(ErrorCode::PermanentResolverFailure.into());
        }
        self.inner.resolve_addresses(network, name)
    }
}

impl HostResolveAddressStream for SocketsView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        self.inner.resolve_next_address(stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.inner, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.inner, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_net_and_http_grants_may_be_looked_up_and_no_others() {
        let policy = NamePolicy::new(
            &[
                NetPattern::parse("db.internal:5432").expect("net"),
                NetPattern::parse("10.0.0.0/8:*").expect("net"),
            ],
            &[HttpGrant {
                origin: HttpOrigin::parse("https://*.example.com").expect("origin"),
                ca_file: None,
            }],
            Refusals::default(),
        );
        assert!(policy.allows("db.internal"));
        assert!(policy.allows("DB.internal."));
        assert!(policy.allows("api.example.com"));
        assert!(policy.allows("10.1.2.3"));
        assert!(policy.allows("::1"));
        assert!(!policy.allows("example.com"));
        assert!(!policy.allows("exfiltrate.attacker.net"));
        assert!(!NamePolicy::default().allows("localhost"));
    }
}
