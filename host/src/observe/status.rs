//! `/status`, as one type: the endpoint serialises it, the status page
//! renders it, and `heartbeat-host status --url` reads it back. The JSON
//! names are camelCase and every value a host may not have is `null`, so
//! the wire shape is what it always was; reading is lenient (every field
//! has a default), so that an older host's answer still reads.

use serde::{Deserialize, Serialize};

/// What `/status` answers: one agent's picture, or every agent's of a host
/// serving several (`/status` without `?agent=` there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusReply {
    /// A host serving several agents, all of them. Tried first when read:
    /// only it has `agents`.
    Host(HostStatus),
    /// One agent.
    Agent(Box<AgentStatus>),
}

/// Every agent of a host serving several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    /// When the picture was taken (RFC 3339).
    #[serde(default)]
    pub at: String,
    /// Each agent's, by name.
    pub agents: Vec<AgentStatus>,
}

/// One agent's live picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentStatus {
    /// The agent's name.
    pub agent: String,
    /// When the picture was taken (RFC 3339).
    pub at: String,
    /// Healthy or degraded, and why.
    pub health: HealthStatus,
    /// The config's `maxPerTick`.
    pub max_per_tick: usize,
    /// The checks a tick now would run.
    pub selected_now: Vec<String>,
    /// Every check of the config in force, in its order.
    pub checks: Vec<CheckStatus>,
    /// The agent's last runs, newest first.
    pub recent_runs: Vec<RunStatus>,
    /// The watched sub-processes.
    pub processes: Vec<ProcessStatus>,
    /// The broker's figures; `null` without a broker.
    pub bus: Option<BusStatus>,
}

/// `healthy` or `degraded`, with the reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthStatus {
    /// `healthy` or `degraded`.
    pub status: String,
    /// Why degraded (empty while healthy).
    pub reasons: Vec<String>,
}

/// One check as the schedule sees it now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckStatus {
    /// The check's name.
    pub name: String,
    /// Its handler.
    pub handler: String,
    /// What the schedule says of it (`due`, `waiting`, `paused`, ...).
    pub status: String,
    /// Why, for people.
    pub reason: String,
    /// How overdue: `(now - lastRun) / cadenceMs`; `null` for infinite
    /// (`cadenceMs` 0, or never run).
    pub ratio: Option<f64>,
    /// A run of it is in flight.
    pub running: bool,
    /// Its last success or skip (RFC 3339); `null` when never.
    pub last_run: Option<String>,
    /// When it is next due (RFC 3339), if the schedule knows.
    pub next_due: Option<String>,
    /// Its last outcome (`success`, `failed`, `skipped`).
    pub last_status: Option<String>,
    /// Why its last run failed.
    pub last_error: Option<String>,
    /// Failed runs in a row.
    pub consecutive_failures: u32,
    /// `ok`, `soft` or `hard`.
    pub state: String,
    /// The state for people (`hard 1/1`, `soft 2/3`, `ok`, with flapping).
    pub state_text: String,
    /// Failures in a row counted toward `max_attempts`.
    pub attempt: u32,
    /// The check's `maxAttempts`.
    pub max_attempts: u32,
    /// Flapping now.
    pub flapping: bool,
    /// Since when it is in its state (RFC 3339).
    pub state_since: Option<String>,
}

/// One finished run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunStatus {
    /// The tick's time (RFC 3339).
    pub at: String,
    /// The check.
    pub check: String,
    /// Its handler.
    pub handler: String,
    /// `success`, `failed` or `skipped`.
    pub status: String,
    /// How long it took, in ms.
    pub duration_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// One watched sub-process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProcessStatus {
    /// Its name (the routing key after `heartbeat.`).
    pub name: String,
    /// Where it stands (`alive`, `late`, ...).
    pub status: String,
    /// Its last message, e.g. `beat/5`.
    pub last_message: String,
    /// When that arrived (RFC 3339).
    pub last_seen: String,
}

/// The broker connection's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BusStatus {
    /// Connected now.
    pub connected: bool,
    /// Reconnections after a loss.
    pub reconnects: u64,
    /// Events the broker confirmed.
    pub events_published: u64,
    /// Events written to the outbox.
    pub outbox_spooled: u64,
    /// Events in the outbox now.
    pub outbox_events: u64,
    /// Events dropped over the outbox's bound.
    pub outbox_dropped: u64,
    /// Events set aside in the dead-letter file.
    pub outbox_dead_lettered: u64,
}

impl BusStatus {
    /// The figures as (JSON name, value) rows, in wire order: what the
    /// status page shows.
    pub fn rows(&self) -> [(&'static str, String); 7] {
        [
            ("connected", self.connected.to_string()),
            ("reconnects", self.reconnects.to_string()),
            ("eventsPublished", self.events_published.to_string()),
            ("outboxSpooled", self.outbox_spooled.to_string()),
            ("outboxEvents", self.outbox_events.to_string()),
            ("outboxDropped", self.outbox_dropped.to_string()),
            ("outboxDeadLettered", self.outbox_dead_lettered.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_is_camel_case_with_nulls_and_reads_back() {
        let agent = AgentStatus {
            agent: "a".into(),
            at: "2026-01-01T00:00:00Z".into(),
            health: HealthStatus {
                status: "healthy".into(),
                reasons: Vec::new(),
            },
            max_per_tick: 1,
            checks: vec![CheckStatus {
                name: "ping".into(),
                ..CheckStatus::default()
            }],
            bus: Some(BusStatus::default()),
            ..AgentStatus::default()
        };
        let json = serde_json::to_value(StatusReply::Agent(Box::new(agent.clone()))).expect("json");
        assert_eq!(json["maxPerTick"], 1);
        assert_eq!(json["checks"][0]["ratio"], serde_json::Value::Null);
        assert_eq!(json["checks"][0]["lastRun"], serde_json::Value::Null);
        assert_eq!(json["bus"]["outboxDeadLettered"], 0);
        assert!(
            json.get("recentRuns")
                .is_some_and(serde_json::Value::is_array)
        );
        let keys: Vec<&str> = json["bus"]
            .as_object()
            .expect("bus")
            .keys()
            .map(String::as_str)
            .collect();
        let rows: Vec<&str> = BusStatus::default()
            .rows()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(keys, rows, "the page shows the bus in wire order");
        let back: StatusReply = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, StatusReply::Agent(Box::new(agent.clone())));
        let host =
            serde_json::json!({"at": "t", "agents": [serde_json::to_value(&agent).expect("json")]});
        assert!(matches!(
            serde_json::from_value::<StatusReply>(host).expect("host"),
            StatusReply::Host(HostStatus { agents, .. }) if agents == [agent]
        ));
    }
}
