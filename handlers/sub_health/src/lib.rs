//! The built-in `sub_health` handler: heartbeat-consumer's "emits agent
//! status event with sub-agent health", made real.
//!
//! It reads the table of watched processes the host keeps from their beats
//! (`host.processes`), emits `agent.<agent>.sub_health` with each process's
//! status and an overall status, and reports `failed` when the agent is
//! unhealthy: a watched process is dead, or a process listed in
//! `meta.required` has never been seen.
//!
//! Overall: `unhealthy` (a process dead or a required one missing),
//! `degraded` (a process degraded or late), else `healthy`.

use handler_sdk::{Check, Handler, Outcome, Process, ProcessStatus, Status, Tick};

/// The handler.
pub struct SubHealth;

/// The overall verdict over the watched processes.
pub fn overall(processes: &[Process], missing: &[String]) -> &'static str {
    if !missing.is_empty() || processes.iter().any(|p| p.status == ProcessStatus::Dead) {
        "unhealthy"
    } else if processes
        .iter()
        .any(|p| matches!(p.status, ProcessStatus::Degraded | ProcessStatus::Late))
    {
        "degraded"
    } else {
        "healthy"
    }
}

fn status_name(status: ProcessStatus) -> &'static str {
    match status {
        ProcessStatus::Starting => "starting",
        ProcessStatus::Alive => "alive",
        ProcessStatus::Degraded => "degraded",
        ProcessStatus::Late => "late",
        ProcessStatus::Dead => "dead",
        ProcessStatus::Stopped => "stopped",
    }
}

impl Handler for SubHealth {
    fn run(tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: serde_json::Value =
            serde_json::from_str(&check.meta).map_err(|e| format!("meta is not JSON: {e}"))?;
        let required: Vec<String> = meta
            .get("required")
            .and_then(|v| v.as_array())
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let processes = handler_sdk::processes();
        let missing: Vec<String> = required
            .into_iter()
            .filter(|name| !processes.iter().any(|p| &p.name == name))
            .collect();
        let overall = overall(&processes, &missing);
        let listed: Vec<serde_json::Value> = processes
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "status": status_name(p.status),
                    "lastMessage": p.last_message,
                    "lastSeenMs": p.last_seen_ms,
                    "expectedByMs": p.expected_by_ms,
                })
            })
            .collect();
        let payload = serde_json::json!({
            "agent": tick.agent,
            "overall": overall,
            "processes": listed,
            "missing": missing,
        });
        handler_sdk::emit(
            &format!("agent.{}.sub_health", tick.agent),
            &payload.to_string(),
        )?;
        let dead: Vec<&str> = processes
            .iter()
            .filter(|p| p.status == ProcessStatus::Dead)
            .map(|p| p.name.as_str())
            .collect();
        let details = serde_json::json!({
            "overall": overall,
            "processes": processes.len(),
            "dead": dead,
            "missing": missing,
        });
        let status = if overall == "unhealthy" {
            Status::Failed
        } else {
            Status::Success
        };
        let mut details = details;
        if status == Status::Failed {
            details["error"] = serde_json::Value::String(format!(
                "unhealthy: dead {:?}, missing {:?}",
                dead, missing
            ));
        }
        Ok(Outcome::with_details(status, details.to_string()))
    }
}

handler_sdk::export_handler!(SubHealth);
