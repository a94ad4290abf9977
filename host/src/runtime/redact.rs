//! Redaction of a run's granted secrets from everything the guest chose
//! that the host shows (see [`Redactor`]).

use std::borrow::Cow;
use std::sync::Arc;

use heartbeat_core::model::RunReport;

/// What replaces a secret's value wherever a handler repeats it.
pub(super) const REDACTED: &str = "[redacted]";

/// The granted secrets' values of one run, to cut out of everything the
/// guest chose that the host shows: the run's report (log records, event
/// types and payloads, details, the reason) and the host's own warnings
/// about the run (a refused origin, name or peer is guest-chosen text).
/// A JSON number whose digits hold a value becomes the string
/// [`REDACTED`]. Cheap to clone; empty when nothing is granted.
#[derive(Debug, Clone, Default)]
pub struct Redactor(Arc<[String]>);

impl Redactor {
    /// The redactor of a run granted secrets of these `values` (empty
    /// values cut nothing).
    pub(super) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        Redactor(
            values
                .into_iter()
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// `text` with every value replaced by [`REDACTED`].
    pub(super) fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.0.iter().any(|value| text.contains(value.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut clean = text.to_string();
        for value in self.0.iter() {
            clean = clean.replace(value.as_str(), REDACTED);
        }
        Cow::Owned(clean)
    }

    fn clean(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.text(text) {
            *text = clean;
        }
    }

    /// Every string, key and number of `value`, redacted.
    pub(super) fn json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => self.clean(s),
            serde_json::Value::Number(n) => {
                if let Cow::Owned(_) = self.text(&n.to_string()) {
                    *value = serde_json::Value::String(REDACTED.to_string());
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut key, mut v) in entries {
                    self.clean(&mut key);
                    self.json(&mut v);
                    map.insert(key, v);
                }
            }
            serde_json::Value::Bool(_) | serde_json::Value::Null => {}
        }
    }

    /// Redacts what the run produced (log messages and fields, event types
    /// and payloads, details, the reason) before any of it is logged,
    /// published or stored.
    pub(super) fn report(&self, report: &mut RunReport) {
        if self.0.is_empty() {
            return;
        }
        for record in &mut report.logs {
            self.clean(&mut record.message);
            for (key, value) in &mut record.fields {
                self.clean(key);
                self.clean(value);
            }
        }
        for event in &mut report.events {
            self.clean(&mut event.event_type);
            self.json(&mut event.payload);
        }
        self.json(&mut report.details);
        if let Some(error) = &mut report.error {
            self.clean(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbeat_core::model::{EmittedEvent, LogRecord, RunStatus};
    use serde_json::json;

    fn redactor(values: &[&str]) -> Redactor {
        Redactor::new(values.iter().copied())
    }

    #[test]
    fn a_secret_is_cut_from_event_types_numbers_keys_and_the_reason() {
        let mut report = RunReport {
            status: RunStatus::Failed,
            details: json!({"pin": 1234567890123456u64, "nested": [{"hunter2": 1.5}], "n": 7}),
            error: Some("refused: http origin http://hunter2.example:80".into()),
            duration_us: 0,
            logs: vec![LogRecord {
                level: "info",
                message: "pin 1234567890123456".into(),
                fields: vec![("hunter2".into(), "x".into())],
            }],
            events: vec![EmittedEvent {
                event_type: "agent.a.leak.hunter2".into(),
                payload: json!({"pin": 1234567890123456u64}),
            }],
            dropped_logs: 0,
        };
        redactor(&["hunter2", "1234567890123456"]).report(&mut report);
        let shown = serde_json::to_string(&(
            &report.details,
            &report.error,
            &report.events[0].event_type,
            &report.events[0].payload,
            &report.logs[0].message,
            &report.logs[0].fields,
        ))
        .expect("json");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("1234567890123456"), "{shown}");
        assert_eq!(report.events[0].event_type, "agent.a.leak.[redacted]");
        assert_eq!(report.details["pin"], json!("[redacted]"));
        assert_eq!(report.details["n"], json!(7), "other numbers stay numbers");
    }

    #[test]
    fn without_secrets_nothing_changes() {
        assert!(matches!(redactor(&[""]).text("hunter2"), Cow::Borrowed(_)));
        assert_eq!(
            redactor(&["x"]).text("a x b x"),
            "a [redacted] b [redacted]"
        );
    }
}
