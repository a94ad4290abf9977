//! `grants.secrets`: their values read from their files at each run, and
//! redacted from everything the run reports.

use std::path::PathBuf;

use heartbeat_core::model::RunReport;

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

/// What replaces a secret's value wherever a handler repeats it.
pub(super) const REDACTED: &str = "[redacted]";

/// Replaces every granted secret's value in what the run produced (log
/// messages and fields, event payloads, details, the reason) before any of
/// it is logged, published or stored.
pub(super) fn redact(report: &mut RunReport, secrets: &[(String, GrantedValue)]) {
    let values: Vec<&str> = secrets
        .iter()
        .map(|(_, v)| v.0.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return;
    }
    let clean = |text: &mut String| {
        for value in &values {
            if text.contains(value) {
                *text = text.replace(value, REDACTED);
            }
        }
    };
    for record in &mut report.logs {
        clean(&mut record.message);
        for (key, value) in &mut record.fields {
            clean(key);
            clean(value);
        }
    }
    for event in &mut report.events {
        redact_json(&mut event.payload, &clean);
    }
    redact_json(&mut report.details, &clean);
    if let Some(error) = &mut report.error {
        clean(error);
    }
}

/// [`redact`] over every string and key of a JSON value.
pub(super) fn redact_json(value: &mut serde_json::Value, clean: &impl Fn(&mut String)) {
    match value {
        serde_json::Value::String(s) => clean(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, clean)),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (mut key, mut v) in entries {
                clean(&mut key);
                redact_json(&mut v, clean);
                map.insert(key, v);
            }
        }
        _ => {}
    }
}
