//! The built-in `tcp_probe` check: a TCP connection to `meta.address`,
//! optionally `meta.send` written and `meta.expect` looked for in the first
//! bytes read, within `meta.maxLatencyMs`; see docs/checks.md.
//!
//! Sockets are `std::net` over `wasi:sockets`, so the host lets the
//! connection through only to a peer in the check's `grants.net` (and
//! resolves only the names that grant names). The `meta` is read by
//! `heartbeat_core::builtins::tcp_probe`, the code `heartbeat-host check`
//! validates it with, and the measurements are judged there too.
//!
//! Bounding the waits on wasm32-wasip2 (Rust 1.95, wasmtime 48), as found
//! by trying: `set_read_timeout` works (a read past it fails with
//! `WouldBlock`), but `connect_timeout` can return `Ok` before the
//! connection is settled, a refusal left waiting in `SO_ERROR`. So after
//! it, [`connect_within`] asks `take_error` and `peer_addr` until the
//! connection is up, refused, or the timeout has passed. Should a runtime
//! refuse the read timeout, the reads fall back to a non-blocking loop that
//! checks the clock between attempts. Without `timeoutMs`, connecting and
//! reading are bounded only by the check's own time limit.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use handler_sdk::{Check, Handler, Outcome, Status, Tick};
use heartbeat_core::builtins::tcp_probe::{
    self, Failure, MAX_READ_BYTES, Meta, Observed, ReadEnd, Stage,
};

/// The handler.
pub struct TcpProbe;

/// How long the non-blocking fallbacks wait between attempts.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Whole milliseconds of `d`, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn connect_failure(error: String) -> Failure {
    Failure {
        failed: Stage::Connect,
        error,
    }
}

/// Resolves the address (a name through the host's lookup, which answers
/// only for granted names) and connects to the first address that takes
/// the connection.
fn connect(meta: &Meta, timeout: Option<Duration>) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = (meta.host.as_str(), meta.port)
        .to_socket_addrs()
        .map_err(|e| connect_failure(format!("cannot resolve {}: {e}", meta.host)))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        let attempt = match timeout {
            Some(timeout) => connect_within(addr, timeout),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(format!("cannot connect to {addr}: {e}")),
        }
    }
    Err(connect_failure(last.unwrap_or_else(|| {
        format!("{} resolved to no address", meta.host)
    })))
}

/// Connects to `addr` within `timeout`: `connect_timeout`, then (because
/// on wasm32-wasip2 it may return before the connection is settled) the
/// socket's pending error and its peer, asked until one of them answers or
/// the timeout has passed.
fn connect_within(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect_timeout(addr, timeout)?;
    loop {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => return Ok(stream),
            Err(e) if e.kind() == ErrorKind::NotConnected && Instant::now() < deadline => {
                std::thread::sleep(POLL_INTERVAL);
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    format!("not connected within {} ms", timeout.as_millis()),
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads until `meta.expect` is in what was read, the peer closes, the
/// deadline passes or [`MAX_READ_BYTES`] are in.
fn read_answer(
    meta: &Meta,
    stream: &mut TcpStream,
    deadline: Option<Instant>,
) -> Result<(Vec<u8>, ReadEnd), String> {
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    // Whether the read timeout is honoured; if not, poll without blocking.
    let mut polling = false;
    loop {
        if meta.found(&read) {
            return Ok((read, ReadEnd::Found));
        }
        if read.len() >= MAX_READ_BYTES {
            read.truncate(MAX_READ_BYTES);
            return Ok((read, ReadEnd::Full));
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok((read, ReadEnd::TimedOut));
            }
            if !polling && stream.set_read_timeout(Some(left)).is_err() {
                stream
                    .set_nonblocking(true)
                    .map_err(|e| format!("cannot bound the read: {e}"))?;
                polling = true;
            }
        }
        let room = (MAX_READ_BYTES - read.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Ok((read, ReadEnd::Closed)),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if polling && e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL_INTERVAL);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok((read, ReadEnd::TimedOut));
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Ok((read, ReadEnd::Closed));
            }
            Err(e) => return Err(format!("reading failed after {} bytes: {e}", read.len())),
        }
    }
}

impl Handler for TcpProbe {
    fn run(_tick: Tick, check: Check) -> Result<Outcome, String> {
        // A bad `meta` fails the run with the words `heartbeat-host check` uses.
        let meta = heartbeat_core::builtins::parse_text(&check.meta, Meta::parse)?;
        let timeout = meta.timeout_ms.map(Duration::from_millis);
        let started = Instant::now();
        let mut stream = match connect(&meta, timeout) {
            Ok(stream) => stream,
            Err(failure) => {
                let details = tcp_probe::details(&meta, None, Some(&failure));
                return Ok(Outcome::with_details(Status::Failed, details.to_string()));
            }
        };
        let connect_ms = ms(started.elapsed());
        let mut failure = None;
        let mut read = Vec::new();
        let mut end = ReadEnd::Found;
        if let Some(send) = &meta.send
            && let Err(e) = stream
                .write_all(send.as_bytes())
                .and_then(|()| stream.flush())
        {
            failure = Some(Failure {
                failed: Stage::Expect,
                error: format!("sending {} bytes failed: {e}", send.len()),
            });
        }
        if failure.is_none() && meta.expect.is_some() {
            let deadline = timeout.map(|t| Instant::now() + t);
            match read_answer(&meta, &mut stream, deadline) {
                Ok((bytes, why)) => (read, end) = (bytes, why),
                Err(error) => {
                    failure = Some(Failure {
                        failed: Stage::Expect,
                        error,
                    });
                }
            }
        }
        let observed = Observed {
            connect_ms,
            latency_ms: ms(started.elapsed()),
            read: &read,
            end,
        };
        let failure = failure.or_else(|| meta.judge(&observed).err());
        let details = tcp_probe::details(&meta, Some(&observed), failure.as_ref());
        let status = if failure.is_some() {
            Status::Failed
        } else {
            Status::Success
        };
        Ok(Outcome::with_details(status, details.to_string()))
    }
}

handler_sdk::export_handler!(TcpProbe);
