//! systemd's notify protocol, written directly (sd_notify(3)): datagrams
//! of `KEY=value` lines to the socket named by `NOTIFY_SOCKET`, for
//! `Type=notify` units. `READY=1` once the host takes ticks, `STATUS=` with
//! its health, `WATCHDOG=1` from the tick loop itself (so a wedged loop stops
//! the pings and systemd restarts the host), `STOPPING=1` on shutdown.
//! Without `NOTIFY_SOCKET` every call is a no-op.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use heartbeat_core::health::HealthStatus;

/// A connection to the service manager's notify socket.
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for the abstract
    /// namespace); `None` when it is unset or empty. A socket that cannot
    /// be opened is logged once and treated as absent: the host runs the
    /// same without a service manager.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())?;
        let opened = (|| {
            let address = match target.as_encoded_bytes().strip_prefix(b"@") {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt as _;
                    SocketAddr::from_abstract_name(name)?
                }
                None => SocketAddr::from_pathname(&target)?,
            };
            Ok::<_, io::Error>(Notifier {
                socket: UnixDatagram::unbound()?,
                address,
            })
        })();
        match opened {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                tracing::warn!(socket = ?target, "NOTIFY_SOCKET unusable, not notifying systemd: {e}");
                None
            }
        }
    }

    /// Sends one message (`READY=1\nSTATUS=…`); failures are logged at
    /// debug: the service manager going away must not stop the host.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
            tracing::debug!("sd_notify {message:?}: {e}");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set
/// and `WATCHDOG_PID` (if set) is this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

/// `STATUS=` text for `health`: what `systemctl status` shows.
pub fn status_line(health: &HealthStatus) -> String {
    match health {
        HealthStatus::Healthy => "STATUS=healthy".to_string(),
        HealthStatus::Degraded(reasons) => {
            // One line: a newline would end the STATUS field.
            format!("STATUS=degraded: {}", reasons.join("; ").replace('\n', " "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_for_this_process_only() {
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
    }

    #[test]
    fn status_is_one_line() {
        assert_eq!(status_line(&HealthStatus::Healthy), "STATUS=healthy");
        assert_eq!(
            status_line(&HealthStatus::Degraded(vec!["a\nb".into(), "c".into()])),
            "STATUS=degraded: a b; c"
        );
    }

    #[test]
    fn messages_reach_the_datagram_socket_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier {
            socket: UnixDatagram::unbound().expect("socket"),
            address: SocketAddr::from_pathname(&path).expect("address"),
        };
        notifier.send("READY=1\nSTATUS=healthy");
        let mut buf = [0u8; 256];
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=healthy");
    }
}
