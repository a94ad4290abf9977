//! The one way the host reads a file it did not write in this process:
//! [`read_regular`], bounded in size and refusing anything but a regular
//! file, so that a FIFO cannot hang a thread (and with it shutdown) and a
//! link to `/dev/zero` cannot grow memory until the kernel kills the host.

use std::fs::{File, Metadata};
use std::io::{self, Read as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// The largest `heartbeat.json` read (a config of 10,000 checks is ~3 MiB).
pub const MAX_CONFIG_BYTES: u64 = 16 * MIB;
/// The largest state file read.
pub const MAX_STATE_BYTES: u64 = 64 * MIB;
/// The largest handler component read, unless `--max-handler-bytes` says.
pub const DEFAULT_MAX_HANDLER_BYTES: u64 = 256 * MIB;
/// The largest outbox read at start-up (10,000 events of a few KiB is
/// tens of MiB; past this it is refused, with the way out in the message).
pub const MAX_OUTBOX_BYTES: u64 = 1024 * MIB;
/// The largest liveness file read (the host writes a few hundred bytes).
pub const MAX_LIVENESS_BYTES: u64 = MIB;

/// Reads the regular file at `path` (following links), at most `limit`
/// bytes; `what` names the file in the error ("heartbeat.json", "handler
/// component").
///
/// The file is opened non-blocking and checked on the open descriptor, so
/// a FIFO, a device, a socket or a directory is refused at once (kind
/// `InvalidInput`), and one larger than `limit` is refused (kind
/// `FileTooLarge`) after reading at most `limit + 1` bytes. A missing file
/// keeps kind `NotFound`, so callers can tell "gone" from "refused".
pub fn read_regular(path: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}, not a regular file", kind_of(&metadata)),
        ));
    }
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "larger than {} (the limit for a {what})",
                bytes_shown(limit)
            ),
        )
    };
    if metadata.len() > limit {
        return Err(too_large());
    }
    // The size can change under us (a file still being written): read at
    // most one byte past the limit whatever the metadata said.
    let capacity = usize::try_from(metadata.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64, what: &str) -> io::Result<String> {
    String::from_utf8(read_regular(path, limit, what)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")))
}

/// What kind of file `metadata` describes, in words.
fn kind_of(metadata: &Metadata) -> &'static str {
    let kind = metadata.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// `limit` in the unit a person would write it in.
fn bytes_shown(limit: u64) -> String {
    if limit >= MIB && limit.is_multiple_of(MIB) {
        format!("{} MiB", limit / MIB)
    } else {
        format!("{limit} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_hanging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("heartbeat.json");
        mkfifo(&fifo);
        let started = Instant::now();
        let e = read_regular(&fifo, MAX_CONFIG_BYTES, "heartbeat.json").expect_err("refused");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "a named pipe (FIFO), not a regular file");
    }

    #[test]
    fn a_link_to_dev_zero_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        let e = read_regular(&link, DEFAULT_MAX_HANDLER_BYTES, "handler component")
            .expect_err("refused");
        assert!(e.to_string().contains("a character device"), "{e}");
    }

    #[test]
    fn a_directory_and_a_link_loop_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = read_regular(dir.path(), 10, "state file").expect_err("refused");
        assert!(e.to_string().contains("a directory"), "{e}");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).expect("symlink");
        std::os::unix::fs::symlink(&a, &b).expect("symlink");
        let e = read_regular(&a, 10, "state file").expect_err("refused");
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    }

    #[test]
    fn a_file_past_the_limit_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'x'; 2048]).expect("write");
        assert_eq!(
            read_regular(&path, 2048, "f").expect("at the limit").len(),
            2048
        );
        let e = read_regular(&path, 2047, "state file").expect_err("past it");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            e.to_string(),
            "larger than 2047 bytes (the limit for a state file)"
        );
        let e = read_regular(&path, MIB / 2, "f").map(|b| b.len());
        assert_eq!(e.expect("under"), 2048);
        assert_eq!(bytes_shown(16 * MIB), "16 MiB");
    }

    #[test]
    fn a_missing_file_keeps_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = read_regular(&dir.path().join("gone"), 10, "f").expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
