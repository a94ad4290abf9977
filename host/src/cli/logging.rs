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
    let directive = directive(&level);
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
            // An agent's lines carry `"span": {"name": "agent", "agent": NAME}`
            // (several agents in one process); other spans are not shown.
            .with_current_span(true)
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

/// The `tracing` filter for `LOG_LEVEL`. A level name applies to the
/// host's own target (`heartbeat_host`); dependencies (wasmtime, Cranelift,
/// lapin) stay at `warn` or quieter, since at `DEBUG` they write hundreds of
/// thousands of lines a minute about compiler internals. lapin's warning for
/// a returned message (a `Debug` dump of its bytes) is left out: the host
/// reports unroutable ticks itself. Anything else is taken as a full filter,
/// so `LOG_LEVEL=info,wasmtime=debug` still reaches the dependencies.
fn directive(level: &str) -> String {
    let own = match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        _ => return level.to_string(),
    };
    let others = if own == "error" { "error" } else { "warn" };
    format!("{others},heartbeat_host={own},lapin::returned_messages=error")
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

#[cfg(test)]
mod tests {
    use super::directive;

    #[test]
    fn log_level_debug_keeps_dependencies_at_warn() {
        assert_eq!(
            directive("DEBUG"),
            "warn,heartbeat_host=debug,lapin::returned_messages=error"
        );
        assert_eq!(
            directive("warning"),
            "warn,heartbeat_host=warn,lapin::returned_messages=error"
        );
    }

    #[test]
    fn log_level_error_quiets_dependencies_too() {
        assert_eq!(
            directive("CRITICAL"),
            "error,heartbeat_host=error,lapin::returned_messages=error"
        );
    }

    #[test]
    fn a_full_filter_is_taken_as_written() {
        assert_eq!(directive("info,wasmtime=debug"), "info,wasmtime=debug");
    }
}
