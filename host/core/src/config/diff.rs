//! What changed between two configs, field by field, as the reload log
//! reports it: `added: c; removed: b; changed: a.cadenceMs 1000 → 2000`.

use std::collections::HashMap;
use std::fmt;

use super::{CheckConfig, HeartbeatConfig};
use crate::model::{Limits, Pause, Quarter, Window};

/// One field whose value changed, with both values as a person reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field path, e.g. `cadenceMs` within a check, `maxPerTick` at the top.
    pub field: String,
    /// The value before (`none` when absent).
    pub old: String,
    /// The value after (`none` when absent).
    pub new: String,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} → {}", self.field, self.old, self.new)
    }
}

/// A check present in both configs whose fields changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckChange {
    /// The check's name.
    pub name: String,
    /// Its changed fields, in a fixed order.
    pub fields: Vec<FieldChange>,
}

/// What changed between two configs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Checks only in the new config, in its file order.
    pub added: Vec<String>,
    /// Checks only in the old config, in its file order.
    pub removed: Vec<String>,
    /// Checks in both whose fields changed, in the new file order.
    pub changed: Vec<CheckChange>,
    /// Top-level fields that changed (`$schema`, `agent`, `maxPerTick`,
    /// `paused.NAME`, `defaults.FIELD`, and the order of the checks, which
    /// breaks ties).
    pub top_level: Vec<FieldChange>,
}

impl ConfigDiff {
    /// Whether nothing the host uses changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.top_level.is_empty()
    }
}

impl fmt::Display for ConfigDiff {
    /// One line: `added: c; removed: b; changed: a.cadenceMs 1000 → 2000; maxPerTick 1 → 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added: {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed: {}", self.removed.join(", ")));
        }
        if !self.changed.is_empty() {
            let fields: Vec<String> = self
                .changed
                .iter()
                .flat_map(|c| c.fields.iter().map(move |f| format!("{}.{f}", c.name)))
                .collect();
            parts.push(format!("changed: {}", fields.join(", ")));
        }
        for change in &self.top_level {
            parts.push(change.to_string());
        }
        if parts.is_empty() {
            f.write_str("no change the host uses")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// What changed from `old` to `new`: checks added, removed, and changed
/// field by field, then the top-level fields.
pub fn diff(old: &HeartbeatConfig, new: &HeartbeatConfig) -> ConfigDiff {
    // By name, so that a config of thousands of checks diffs in linear time.
    let (old_by_name, new_by_name) = (by_name(old), by_name(new));
    let added = new
        .checks
        .iter()
        .filter(|c| !old_by_name.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let removed = old
        .checks
        .iter()
        .filter(|c| !new_by_name.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let changed = new
        .checks
        .iter()
        .filter_map(|n| {
            let o = old_by_name.get(n.name.as_str())?;
            if *o == n {
                return None;
            }
            let fields = check_fields(o, n);
            (!fields.is_empty()).then(|| CheckChange {
                name: n.name.clone(),
                fields,
            })
        })
        .collect();

    let mut top_level = Vec::new();
    push_change(
        &mut top_level,
        "$schema",
        show_opt_str(&old.schema),
        show_opt_str(&new.schema),
    );
    push_change(
        &mut top_level,
        "agent",
        show_opt_str(&old.agent),
        show_opt_str(&new.agent),
    );
    push_change(
        &mut top_level,
        "maxPerTick",
        old.max_per_tick.to_string(),
        new.max_per_tick.to_string(),
    );
    let paused_names: std::collections::BTreeSet<&String> =
        old.paused.keys().chain(new.paused.keys()).collect();
    for name in paused_names {
        push_change(
            &mut top_level,
            &format!("paused.{name}"),
            show_pause(old.paused.get(name)),
            show_pause(new.paused.get(name)),
        );
    }
    for (field, o, n) in limit_fields(&old.defaults, &new.defaults) {
        push_change(&mut top_level, &format!("defaults.{field}"), o, n);
    }
    // The order of the checks both have breaks ties between equal ratios.
    let old_order: Vec<&str> = old
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| new_by_name.contains_key(name))
        .collect();
    let new_order: Vec<&str> = new
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| old_by_name.contains_key(name))
        .collect();
    if let Some(first) = old_order.iter().zip(&new_order).position(|(o, n)| o != n) {
        push_change(
            &mut top_level,
            "order",
            excerpt(&old_order, first),
            excerpt(&new_order, first),
        );
    }
    ConfigDiff {
        added,
        removed,
        changed,
        top_level,
    }
}

fn by_name(config: &HeartbeatConfig) -> HashMap<&str, &CheckConfig> {
    config.checks.iter().map(|c| (c.name.as_str(), c)).collect()
}

/// Up to five names from `from` on, comma-separated, `…` around what is left out.
fn excerpt(names: &[&str], from: usize) -> String {
    const SHOWN: usize = 5;
    let shown = &names[from..names.len().min(from + SHOWN)];
    format!(
        "{}{}{}",
        if from > 0 { "…," } else { "" },
        shown.join(","),
        if from + SHOWN < names.len() {
            ",…"
        } else {
            ""
        }
    )
}

fn push_change(out: &mut Vec<FieldChange>, field: &str, old: String, new: String) {
    if old != new {
        out.push(FieldChange {
            field: field.to_string(),
            old,
            new,
        });
    }
}

/// The changed fields of one check, in the file format's names.
fn check_fields(old: &CheckConfig, new: &CheckConfig) -> Vec<FieldChange> {
    let mut out = Vec::new();
    push_change(
        &mut out,
        "cadenceMs",
        old.cadence_ms.to_string(),
        new.cadence_ms.to_string(),
    );
    push_change(
        &mut out,
        "handler",
        format!("{:?}", old.handler),
        format!("{:?}", new.handler),
    );
    push_change(
        &mut out,
        "priority",
        old.priority.to_string(),
        new.priority.to_string(),
    );
    push_change(
        &mut out,
        "enabled",
        old.enabled.to_string(),
        new.enabled.to_string(),
    );
    push_change(
        &mut out,
        "lastRun",
        (old.last_run_ms as f64 + old.last_run_fraction_ms).to_string(),
        (new.last_run_ms as f64 + new.last_run_fraction_ms).to_string(),
    );
    push_change(
        &mut out,
        "window",
        show_window(old.window.as_ref()),
        show_window(new.window.as_ref()),
    );
    push_change(
        &mut out,
        "triggerOnQuarters",
        show_quarters(old.trigger_on_quarters.as_deref()),
        show_quarters(new.trigger_on_quarters.as_deref()),
    );
    push_change(
        &mut out,
        "meta",
        serde_json::Value::Object(old.meta.clone()).to_string(),
        serde_json::Value::Object(new.meta.clone()).to_string(),
    );
    for (field, o, n) in limit_fields(&old.limits, &new.limits) {
        push_change(&mut out, field, o, n);
    }
    let (o, n) = (&old.retry, &new.retry);
    push_change(
        &mut out,
        "maxAttempts",
        o.max_attempts.to_string(),
        n.max_attempts.to_string(),
    );
    let interval = |ms: Option<u64>| ms.map_or_else(|| "backoff".to_string(), |ms| ms.to_string());
    push_change(
        &mut out,
        "retryIntervalMs",
        interval(o.retry_interval_ms),
        interval(n.retry_interval_ms),
    );
    push_change(
        &mut out,
        "flapThreshold",
        o.flap_threshold.to_string(),
        n.flap_threshold.to_string(),
    );
    push_change(
        &mut out,
        "grants",
        show_grants(&old.grants),
        show_grants(&new.grants),
    );
    out
}

/// Every kind of grant, names and paths only (a secret's file, never its
/// value): `dirs [...], emit [...]`, then `env`, `secrets`, `net` and
/// `http` when there are any.
fn show_grants(grants: &super::Grants) -> String {
    if *grants == super::Grants::default() {
        return "none".to_string();
    }
    let dirs: Vec<String> = grants
        .dirs
        .iter()
        .map(|d| {
            format!(
                "{}={}{}",
                d.guest_path,
                d.host_path.display(),
                if d.read_only { " (read-only)" } else { "" }
            )
        })
        .collect();
    let mut out = format!(
        "dirs [{}], emit [{}]",
        dirs.join(", "),
        grants.emit.join(", ")
    );
    let mut part = |name: &str, items: Vec<String>| {
        if !items.is_empty() {
            out.push_str(&format!(", {name} [{}]", items.join(", ")));
        }
    };
    part(
        "env",
        grants
            .env
            .iter()
            .map(|e| {
                if e.guest == e.host {
                    e.guest.clone()
                } else {
                    format!("{}=${}", e.guest, e.host)
                }
            })
            .collect(),
    );
    part(
        "secrets",
        grants
            .secrets
            .iter()
            .map(|s| format!("{} from {}", s.name, s.file.display()))
            .collect(),
    );
    part("net", grants.net.iter().map(ToString::to_string).collect());
    part(
        "http",
        grants
            .http
            .iter()
            .map(|h| match &h.ca_file {
                Some(ca) => format!("{} (CA {})", h.origin, ca.display()),
                None => h.origin.to_string(),
            })
            .collect(),
    );
    out
}

fn limit_fields(old: &Limits, new: &Limits) -> [(&'static str, String, String); 8] {
    [
        (
            "timeoutMs",
            old.timeout_ms.to_string(),
            new.timeout_ms.to_string(),
        ),
        (
            "memoryMb",
            old.memory_mb.to_string(),
            new.memory_mb.to_string(),
        ),
        (
            "maxLogLines",
            old.max_log_lines.to_string(),
            new.max_log_lines.to_string(),
        ),
        (
            "maxEvents",
            old.max_events.to_string(),
            new.max_events.to_string(),
        ),
        (
            "maxOutputBytes",
            old.max_output_bytes.to_string(),
            new.max_output_bytes.to_string(),
        ),
        (
            "maxHttpBytes",
            old.max_http_bytes.to_string(),
            new.max_http_bytes.to_string(),
        ),
        (
            "maxKvBytes",
            old.max_kv_bytes.to_string(),
            new.max_kv_bytes.to_string(),
        ),
        (
            "maxConnections",
            old.max_connections.to_string(),
            new.max_connections.to_string(),
        ),
    ]
}

fn show_opt_str(value: &Option<String>) -> String {
    value
        .as_ref()
        .map_or_else(|| "none".to_string(), |v| format!("{v:?}"))
}

fn show_window(window: Option<&Window>) -> String {
    window.map_or_else(
        || "none".to_string(),
        |w| {
            format!(
                "{:02}:{:02}-{:02}:{:02} {}{}",
                w.start_minute / 60,
                w.start_minute % 60,
                w.end_minute / 60,
                w.end_minute % 60,
                w.tz_name,
                if w.tz_defaulted { " (default)" } else { "" }
            )
        },
    )
}

fn show_quarters(quarters: Option<&[Quarter]>) -> String {
    quarters.map_or_else(
        || "none".to_string(),
        |qs| {
            let names: Vec<String> = qs.iter().map(ToString::to_string).collect();
            format!("[{}]", names.join(","))
        },
    )
}

fn show_pause(pause: Option<&Pause>) -> String {
    match pause {
        None => "none".to_string(),
        Some(Pause::Flag(flag)) => flag.to_string(),
        Some(Pause::Until { until, reason }) => {
            let mut text = format!("until {}", crate::time::format_ms(*until));
            if let Some(reason) = reason {
                text.push_str(&format!(" ({reason})"));
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> HeartbeatConfig {
        super::super::parse(json, "test.json")
            .expect("valid")
            .config
    }

    #[test]
    fn identical_configs_have_an_empty_diff() {
        let a = parsed(r#"{"checks": {"a": {"cadenceMs": 5}}}"#);
        let d = diff(&a, &a.clone());
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "no change the host uses");
    }

    #[test]
    fn diff_lists_added_removed_and_changed_fields() {
        let old = parsed(
            r#"{"checks": {
            "keep": {"cadenceMs": 1000},
            "gone": {},
            "tweak": {"cadenceMs": 1000, "handler": "x", "priority": 1}}}"#,
        );
        let new = parsed(
            r#"{"maxPerTick": 2, "checks": {
            "keep": {"cadenceMs": 1000},
            "tweak": {"cadenceMs": 2000, "handler": "y", "priority": 1, "timeoutMs": 50},
            "fresh": {}}}"#,
        );
        let d = diff(&old, &new);
        assert_eq!(d.added, ["fresh"]);
        assert_eq!(d.removed, ["gone"]);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].name, "tweak");
        let fields: Vec<&str> = d.changed[0]
            .fields
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, ["cadenceMs", "handler", "timeoutMs"]);
        assert_eq!(
            d.to_string(),
            "added: fresh; removed: gone; changed: tweak.cadenceMs 1000 → 2000, \
             tweak.handler \"x\" → \"y\", tweak.timeoutMs 10000 → 50; maxPerTick 1 → 2"
        );
    }

    #[test]
    fn diff_covers_windows_quarters_meta_enabled_and_last_run() {
        let old = parsed(
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "17:00", "tz": "UTC"}}}}"#,
        );
        let new = parsed(
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "18:30"},
            "triggerOnQuarters": ["Q1"], "meta": {"k": 1}, "enabled": false, "lastRun": 7}}}"#,
        );
        let fields = &diff(&old, &new).changed[0].fields;
        let window = fields
            .iter()
            .find(|f| f.field == "window")
            .expect("window changed");
        assert_eq!(window.old, "09:00-17:00 UTC");
        assert_eq!(window.new, "09:00-18:30 America/New_York (default)");
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            ["enabled", "lastRun", "window", "triggerOnQuarters", "meta"]
        );
    }

    #[test]
    fn diff_reports_pauses_defaults_and_reordering() {
        let old = parsed(r#"{"checks": {"a": {}, "b": {}}, "paused": {"a": true}}"#);
        let new = parsed(
            r#"{"defaults": {"memoryMb": 8}, "checks": {"b": {}, "a": {}},
            "paused": {"b": {"until": 0, "reason": "ops"}}}"#,
        );
        let d = diff(&old, &new);
        let top: Vec<String> = d.top_level.iter().map(ToString::to_string).collect();
        assert_eq!(
            top,
            [
                "paused.a true → none",
                "paused.b none → until 1970-01-01T00:00:00Z (ops)",
                "defaults.memoryMb 64 → 8",
                "order a,b → b,a",
            ]
        );
        // The per-check limits changed too, through the defaults.
        assert_eq!(d.changed.len(), 2);
    }

    #[test]
    fn a_change_of_net_or_http_grants_alone_shows_in_the_diff() {
        let old = parsed(r#"{"checks": {"g": {"grants": {"net": ["db:5432"]}}}}"#);
        let new = parsed(
            r#"{"checks": {"g": {"grants": {"net": ["db:5432"], "http": ["https://api.example.com"]}}}}"#,
        );
        assert_eq!(
            diff(&old, &new).changed[0].fields[0].to_string(),
            "grants dirs [], emit [], net [db:5432] → dirs [], emit [], net [db:5432], http [https://api.example.com]"
        );
    }

    #[test]
    fn diff_shows_grants_and_keeps_a_long_reordering_short() {
        let old = parsed(
            r#"{"checks": {"a": {}, "b": {}, "c": {}, "d": {}, "e": {}, "f": {}, "g": {}}}"#,
        );
        let new = parsed(
            r#"{"checks": {"a": {}, "c": {}, "b": {}, "d": {}, "e": {}, "f": {},
            "g": {"grants": {"dirs": {"/data": {"path": "mem", "readOnly": true}}, "emit": ["alerts.#"]}}}}"#,
        );
        let d = diff(&old, &new);
        assert_eq!(
            d.top_level[0].to_string(),
            "order …,b,c,d,e,f,… → …,c,b,d,e,f,…"
        );
        assert_eq!(
            d.changed[0].fields[0].to_string(),
            "grants none → dirs [/data=mem (read-only)], emit [alerts.#]"
        );
    }

    #[test]
    fn retry_policy_changes_are_named() {
        let a = parsed(r#"{"checks": {"api": {"cadenceMs": 5}}}"#);
        let b = parsed(
            r#"{"checks": {"api": {"cadenceMs": 5, "maxAttempts": 3, "retryIntervalMs": 1000, "flapThreshold": 4}}}"#,
        );
        let d = diff(&a, &b);
        assert_eq!(
            d.to_string(),
            "changed: api.maxAttempts 1 → 3, api.retryIntervalMs backoff → 1000, api.flapThreshold 10 → 4"
        );
    }
}
