//! A real HTTP/1.1 server on 127.0.0.1 for the tests of `grants.http`: one
//! thread per connection, a fixed set of routes, every request recorded.
//!
//! Routes (the query is ignored unless said):
//! - `GET /ok`: 200, body `hello from the test server`;
//! - `GET /json`: 200, `{"status":"ok","queue":{"depth":3}}`;
//! - `GET /status/<code>`: that status, body `status <code>`;
//! - `GET /big/<bytes>`: 200 with a body of that many `x`;
//! - `GET /redirect?to=<url>`: 302 to `<url>` (percent-encoding not needed
//!   for the URLs the tests use);
//! - `GET /hang`: reads the request and never answers (until the server is
//!   dropped);
//! - `POST /echo`: 200, body `received <n> bytes`;
//! - `GET /slow/<ms>`: waits that many milliseconds, then 200, body `slow`;
//! - `GET /health.json`: 200, [`HEALTH_JSON`];
//! - `GET /auth`: 200 `authorized` when the request carries
//!   `Authorization: Bearer` [`BEARER_TOKEN`], else 401 `unauthorized`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The body of `GET /health.json`.
pub const HEALTH_JSON: &str = r#"{"status":"ok","queue":{"depth":3,"max":1000},"version":"2.4.1","uptime":12.5,"tags":["a","b"]}"#;

/// The bearer token `GET /auth` accepts.
pub const BEARER_TOKEN: &str = "e2e-t0ken-5f1c9a";

/// A running server; stops accepting when dropped.
pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test http server");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (seen, stopping) = (Arc::clone(&seen), Arc::clone(&stopping));
                std::thread::spawn(move || serve(stream, &seen, &stopping));
            }
        });
        TestServer {
            addr,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// The request lines received so far (`GET /ok`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut length = 0usize;
        let mut authorization = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("authorization") {
                    authorization = Some(value.trim().to_string());
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(mut list) = seen.lock() {
            list.push(format!("{method} {target}"));
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (status, extra, payload): (u16, String, Vec<u8>) = match (method.as_str(), path) {
            ("GET", "/ok") => (200, String::new(), b"hello from the test server".to_vec()),
            ("GET", "/json") => (
                200,
                "content-type: application/json\r\n".into(),
                br#"{"status":"ok","queue":{"depth":3}}"#.to_vec(),
            ),
            ("GET", "/redirect") => {
                let to = query.strip_prefix("to=").unwrap_or("/ok");
                (302, format!("location: {to}\r\n"), Vec::new())
            }
            ("GET", "/hang") => {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            ("POST", "/echo") => (
                200,
                String::new(),
                format!("received {} bytes", body.len()).into_bytes(),
            ),
            ("GET", "/health.json") => (
                200,
                "content-type: application/json\r\n".into(),
                HEALTH_JSON.as_bytes().to_vec(),
            ),
            ("GET", "/auth") => {
                if authorization.as_deref() == Some(&format!("Bearer {BEARER_TOKEN}")) {
                    (200, String::new(), b"authorized".to_vec())
                } else {
                    (401, String::new(), b"unauthorized".to_vec())
                }
            }
            ("GET", p) if p.starts_with("/slow/") => {
                let ms = p["/slow/".len()..].parse().unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                (200, String::new(), b"slow".to_vec())
            }
            ("GET", p) if p.starts_with("/status/") => {
                let code = p["/status/".len()..].parse().unwrap_or(500);
                (code, String::new(), format!("status {code}").into_bytes())
            }
            ("GET", p) if p.starts_with("/big/") => {
                let n = p["/big/".len()..].parse().unwrap_or(0);
                (200, String::new(), vec![b'x'; n])
            }
            _ => (404, String::new(), b"not found".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{extra}\r\n",
            payload.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&payload).is_err() {
            return;
        }
    }
}
