//! What a run came to: the guest's answer, or how it died (trap, deadline,
//! memory, output caps), turned into a [`RunReport`] with a bounded reason.

use heartbeat_core::model::{Limits, RunReport, RunStatus};
use wasmtime::Trap;

use super::bindings::heartbeat::handler::types as wit;
use super::refusals::Refusals;
use super::sandbox::RunState;
use super::stderr;

/// How much of a trapped handler's stderr goes into its failure reason.
const STDERR_IN_REASON: usize = 400;

/// Turns what the guest returned (or how it died) into a report.
pub(super) fn interpret(
    result: wasmtime::Result<Result<wit::Outcome, String>>,
    state: &RunState,
    limits: &Limits,
    stderr: &stderr::StderrTail,
) -> RunReport {
    // What logs and events left of the run's output cap: details and the
    // reason count toward it too.
    let budget = limits.max_output_bytes.saturating_sub(state.output.bytes);
    let (status, details, error) = match result {
        Ok(Ok(_)) if state.limiter.refused => (
            // The guest survived a refused allocation (and may have said
            // success): the run was over its limit all the same.
            RunStatus::Failed,
            serde_json::json!({}),
            Some(format!("memory limit {} MiB exceeded", limits.memory_mb)),
        ),
        Ok(Ok(outcome)) if outcome.details.len() as u64 > budget => (
            RunStatus::Failed,
            serde_json::json!({}),
            Some(format!(
                "details of {} bytes refused: over the output cap (maxOutputBytes {}, {} used by logs and events)",
                outcome.details.len(),
                limits.max_output_bytes,
                state.output.bytes
            )),
        ),
        Ok(Ok(outcome)) => {
            let status = match outcome.status {
                wit::Status::Success => RunStatus::Success,
                wit::Status::Failed => RunStatus::Failed,
                wit::Status::Skipped => RunStatus::Skipped,
            };
            match parse_details(&outcome.details) {
                Ok(details) => {
                    let left = budget.saturating_sub(outcome.details.len() as u64);
                    let error = (status == RunStatus::Failed)
                        .then(|| bounded_reason(failure_summary(&details), left));
                    (status, details, error)
                }
                Err(e) => (
                    RunStatus::Failed,
                    serde_json::json!({}),
                    Some(format!("handler returned details that are not JSON: {e}")),
                ),
            }
        }
        Ok(Err(message)) => (
            RunStatus::Failed,
            serde_json::json!({}),
            Some(bounded_reason(message, budget)),
        ),
        Err(e) => (
            RunStatus::Failed,
            serde_json::json!({}),
            Some(bounded_reason(
                match stderr.summary(STDERR_IN_REASON) {
                    Some(said) => format!("{}; stderr: {said}", trap_reason(&e, state, limits)),
                    None => trap_reason(&e, state, limits),
                },
                u64::MAX,
            )),
        ),
    };
    RunReport {
        status,
        details,
        error,
        duration_us: 0,
        logs: Vec::new(),
        events: Vec::new(),
        dropped_logs: 0,
    }
}

/// Adds what the host refused the run (origins, peers) to the reason of a
/// failed run: the handler's own message may not say which grant is missing.
/// A refusal that fails the run (a limit hit) fails it whatever the
/// handler returned.
pub(super) fn name_refusals(report: &mut RunReport, refusals: &Refusals) {
    if refusals.fails_the_run() {
        report.status = RunStatus::Failed;
    }
    if report.status != RunStatus::Failed {
        return;
    }
    let refused = refusals.list();
    if refused.is_empty() {
        return;
    }
    let refused = format!("refused by the host: {}", refused.join("; "));
    report.error = Some(match report.error.take() {
        Some(said) if !said.is_empty() => format!("{said}; {refused}"),
        _ => refused,
    });
}

/// The longest failure reason kept: it goes into every log line, event and
/// state file write about the run, so a line of text, not a document.
pub(super) const MAX_REASON_BYTES: usize = 4096;

/// `reason` cut to `budget` (what the guest has left of its output cap; the
/// host's own reasons pass `u64::MAX`) and [`MAX_REASON_BYTES`],
/// at a character boundary, with a marker saying how much was cut.
pub(super) fn bounded_reason(reason: String, budget: u64) -> String {
    let keep = usize::try_from(budget)
        .unwrap_or(usize::MAX)
        .min(MAX_REASON_BYTES);
    if reason.len() <= keep {
        return reason;
    }
    let mut cut = keep;
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… [reason truncated: {} of {} bytes kept]",
        &reason[..cut],
        cut,
        reason.len()
    )
}

/// The guest's details text as JSON (serde_json refuses nesting deeper than
/// 128 levels, so a deep document fails to parse instead of exhausting the
/// host's stack); its size was bounded by the output cap before this.
pub(super) fn parse_details(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    if text.trim().is_empty() {
        Ok(serde_json::json!({}))
    } else {
        serde_json::from_str(text)
    }
}

/// The reason recorded for a handler that returned `failed` itself.
pub(super) fn failure_summary(details: &serde_json::Value) -> String {
    for key in ["error", "reason", "message"] {
        if let Some(text) = details.get(key).and_then(|v| v.as_str()) {
            return text.to_string();
        }
    }
    "handler reported failure".to_string()
}

/// A plain reason for a run that ended in a trap or host error.
pub(super) fn trap_reason(error: &wasmtime::Error, state: &RunState, limits: &Limits) -> String {
    if state.limiter.refused {
        return format!("memory limit {} MiB exceeded", limits.memory_mb);
    }
    if let Some(cap) = &state.output.cap_hit {
        return cap.clone();
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("timeout after {} ms", limits.timeout_ms),
        Some(Trap::StackOverflow) => {
            "trap: call stack exhausted (unbounded recursion?)".to_string()
        }
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    }
}
