//! `grants.secrets`: their values read from their files at each run, and
//! redacted from everything the run reports.

use std::path::PathBuf;

use super::request::GrantedValue;

/// The largest secret file read.
pub(super) const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The granted secrets' values (one trailing newline removed), or why one
/// cannot be read: the reason names the secret and its file, never a value.
pub(super) fn read_secrets(
    files: &[(String, PathBuf)],
) -> Result<Vec<(String, GrantedValue)>, String> {
    let mut secrets = Vec::with_capacity(files.len());
    let mut refused = Vec::new();
    for (name, file) in files {
        match crate::store::read::read_regular_text(file, MAX_SECRET_BYTES, "secret file") {
            Ok(text) => {
                let value = text.strip_suffix('\n').unwrap_or(&text);
                let value = value.strip_suffix('\r').unwrap_or(value);
                secrets.push((name.clone(), GrantedValue(value.to_string())));
            }
            Err(e) => refused.push(format!(
                "secret {name}: cannot read {}: {e}",
                file.display()
            )),
        }
    }
    if refused.is_empty() {
        Ok(secrets)
    } else {
        Err(refused.join("; "))
    }
}
