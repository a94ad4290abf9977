//! `grants.net` on a run's WASI context: which peers its sockets may reach
//! and which names it may look up.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::SocketResult;
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};

use super::refusals::Refusals;
use super::request::RunRequest;

/// The addresses the DNS names of `patterns` resolve to now; names that do
/// not resolve add nothing (their pattern then allows nothing).
pub(super) async fn resolve_names(
    patterns: &[heartbeat_core::net::NetPattern],
) -> Vec<std::net::IpAddr> {
    let mut resolved = Vec::new();
    for pattern in patterns {
        if let heartbeat_core::net::NetHost::Name(name) = &pattern.host {
            match tokio::net::lookup_host((name.as_str(), 0)).await {
                Ok(addrs) => resolved.extend(addrs.map(|a| a.ip())),
                Err(e) => tracing::warn!(name = %name, "grants.net name does not resolve: {e}"),
            }
        }
    }
    resolved
}

/// Sockets under `grants.net`, checked by wasmtime-wasi on every bind,
/// connect, send and receive: implicit binds to the wildcard address,
/// connects, sends and receives with a granted peer; never a listener.
/// Without a grant every peer is refused, through the same check, so that
/// the refusal is logged and named in the run's reason; name lookups are
/// allowed only with a grant.
pub(super) fn grant_sockets(
    wasi: &mut WasiCtxBuilder,
    request: &RunRequest,
    resolved: Vec<std::net::IpAddr>,
    refusals: Refusals,
) {
    use wasmtime_wasi::sockets::SocketAddrUse;
    let patterns = Arc::new(request.net.clone());
    let resolved = Arc::new(resolved);
    wasi.allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(!patterns.is_empty() || !request.http.is_empty())
        .socket_addr_check(move |addr, usage| {
            let allowed = match usage {
                // The implicit bind before a connect or send; a listener
                // is refused at `TcpListen`.
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                    addr.ip().is_unspecified() && addr.port() == 0
                }
                SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                    patterns
                        .iter()
                        .any(|p| p.allows(addr.ip(), addr.port(), &resolved))
                }
                _ => false,
            };
            if !allowed {
                refusals.refuse(
                    "socket use refused: not in grants.net",
                    format!("socket peer {addr} is not in grants.net"),
                );
            }
            Box::pin(std::future::ready(allowed))
        });
}

/// Socket creation under the run's connection bound: past it the guest
/// gets `new-socket-limit` and the run fails naming `maxConnections`.
impl wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host
    for super::names::SocketsView<'_>
{
    fn create_tcp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<wasmtime_wasi::p2::TcpSocket>> {
        let permit = self
            .connections
            .open("tcp socket")
            .ok_or(ErrorCode::NewSocketLimit)?;
        let socket = self.inner.create_tcp_socket(family)?;
        self.sockets.push(permit);
        Ok(socket)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::udp_create_socket::Host
    for super::names::SocketsView<'_>
{
    async fn create_udp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<wasmtime_wasi::p2::UdpSocket>> {
        let permit = self
            .connections
            .open("udp socket")
            .ok_or(ErrorCode::NewSocketLimit)?;
        let socket = self.inner.create_udp_socket(family).await?;
        self.sockets.push(permit);
        Ok(socket)
    }
}
