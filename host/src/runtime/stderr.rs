//! A handler's stderr, kept for the failure reason: the last few KiB of what
//! it wrote (a Rust panic message, a Python traceback, a JavaScript error).
//! Writes never fail and never block; older bytes are dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of the end of stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// The tail of a run's stderr; clones share it.
#[derive(Debug, Clone, Default)]
pub struct StderrTail {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl StderrTail {
    fn append(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        if buf.len() > STDERR_TAIL_BYTES {
            let excess = buf.len() - STDERR_TAIL_BYTES;
            buf.drain(..excess);
        }
    }

    /// The last non-empty lines kept, joined with ` | `, at most `max_chars` long.
    pub fn summary(&self, max_chars: usize) -> Option<String> {
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return None;
        }
        let joined = lines.join(" | ");
        let start = joined.len().saturating_sub(max_chars);
        let start = (start..=joined.len())
            .find(|&i| joined.is_char_boundary(i))
            .unwrap_or(0);
        Some(joined[start..].to_string())
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_end_and_summarises_lines() {
        let tail = StderrTail::default();
        assert_eq!(tail.summary(100), None);
        tail.append(&vec![b'x'; 5000]);
        tail.append(b"\nthread 'main' panicked at src/lib.rs:3:5:\nboom\n\n");
        let summary = tail.summary(60).expect("summary");
        assert!(
            summary.ends_with("panicked at src/lib.rs:3:5: | boom"),
            "{summary}"
        );
        assert!(summary.len() <= 60);
        assert!(tail.buf.lock().expect("lock").len() <= STDERR_TAIL_BYTES);
    }
}
