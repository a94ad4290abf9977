//! Logging setup: `LOG_LEVEL` (heartbeat-consumer's Python level names, or
//! a `tracing` filter) and `LOG_FORMAT` (`text`, or `json` for one object a
//! line with the host's `event` names).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// Logs to stderr at `LOG_LEVEL` (heartbeat-consumer's Python names work:
/// DEBUG, INFO, WARNING, ERROR, CRITICAL), or a full `tracing` filter.
/// `LOG_FORMAT=json` writes one JSON object a line (`timestamp`, `level`,
/// `message` and the fields, `event` among them where the line is one of the
/// host's named events); the text format leaves `event` out.
pub(super) fn init() {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "INFO".into());
    let directive = match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace".to_string(),
        "DEBUG" => "debug".to_string(),
        "INFO" => "info".to_string(),
        "WARNING" | "WARN" => "warn".to_string(),
        "ERROR" | "CRITICAL" | "FATAL" => "error".to_string(),
        _ => level,
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directive).unwrap_or_else(|e| {
        eprintln!(
            "heartbeat-host: LOG_LEVEL={directive:?} is not a level or filter ({e}); using INFO"
        );
        tracing_subscriber::EnvFilter::new("info")
    });
    let json = match std::env::var("LOG_FORMAT") {
        Ok(format) if format.eq_ignore_ascii_case("json") => true,
        Ok(format) if format.is_empty() || format.eq_ignore_ascii_case("text") => false,
        Ok(format) => {
            eprintln!(
                "heartbeat-host: LOG_FORMAT={format:?} is neither `text` nor `json`; using text"
            );
            false
        }
        Err(_) => false,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .init();
    } else {
        builder
            .fmt_fields(WithoutEvent)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// tracing-subscriber's default fields, less `event`: the event name is
/// for machines (`LOG_FORMAT=json`); people read the message.
pub(super) struct WithoutEvent;

impl<'a> MakeVisitor<Writer<'a>> for WithoutEvent {
    type Visitor = Visitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Visitor<'a> {
        Visitor(DefaultVisitor::new(target, true))
    }
}

/// Forwards every field to the default visitor but `event`.
pub(super) struct Visitor<'a>(DefaultVisitor<'a>);

fn shown(field: &Field) -> bool {
    field.name() != "event"
}

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if shown(field) {
            self.0.record_debug(field, value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if shown(field) {
            self.0.record_str(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if shown(field) {
            self.0.record_error(field, value);
        }
    }
}

impl VisitOutput<fmt::Result> for Visitor<'_> {
    fn finish(self) -> fmt::Result {
        self.0.finish()
    }
}

impl VisitFmt for Visitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        self.0.writer()
    }
}
