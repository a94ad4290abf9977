//! The file's shape, as serde reads it. Field types carry their own
//! "expected ..." wording so that errors read well; every optional field
//! refuses an explicit `null` ([`present`]).

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::grants::RawGrants;
use super::numbers::{Integer, Millis, NonNegativeInt, PositiveInt, present};
use crate::model::{Limits, Quarter};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawConfig {
    #[serde(rename = "$schema", default, deserialize_with = "present")]
    pub(super) schema: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(super) agent: Option<String>,
    #[serde(default)]
    pub(super) checks: IndexMap<String, RawCheck>,
    #[serde(default)]
    pub(super) paused: BTreeMap<String, RawPause>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_per_tick: Option<PositiveInt>,
    #[serde(default)]
    pub(super) defaults: RawLimits,
    #[serde(default, deserialize_with = "present")]
    pub(super) watch: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawCheck {
    // `present`: a field given as `null` is an error, not the default
    // (heartbeat-consumer could not run such a file either; the schema agrees).
    #[serde(default, deserialize_with = "present")]
    pub(super) cadence_ms: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) handler: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(super) priority: Option<Integer>,
    #[serde(default, deserialize_with = "present")]
    pub(super) enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub(super) last_run: Option<Millis>,
    #[serde(default, deserialize_with = "present")]
    pub(super) window: Option<RawWindow>,
    #[serde(default, deserialize_with = "present")]
    pub(super) trigger_on_quarters: Option<Vec<Quarter>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) meta: Option<serde_json::Map<String, serde_json::Value>>,
    // The limit fields of `RawLimits`, spelled out: `#[serde(flatten)]` would
    // lose error positions and unknown-field warnings.
    #[serde(default, deserialize_with = "present")]
    pub(super) timeout_ms: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) memory_mb: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_log_lines: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_events: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_output_bytes: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) grants: Option<RawGrants>,
}

impl RawCheck {
    pub(super) fn limits(&self) -> RawLimits {
        RawLimits {
            timeout_ms: self.timeout_ms,
            memory_mb: self.memory_mb,
            max_log_lines: self.max_log_lines,
            max_events: self.max_events,
            max_output_bytes: self.max_output_bytes,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RawWindow {
    pub(super) start: String,
    pub(super) end: String,
    #[serde(default, deserialize_with = "present")]
    pub(super) tz: Option<String>,
}

pub(super) enum RawPause {
    Flag(bool),
    Until {
        until: Millis,
        reason: Option<String>,
    },
}

/// Written by hand rather than `#[serde(untagged)]`: untagged enums lose the
/// error's field path and position and drop unknown fields silently.
impl<'de> Deserialize<'de> for RawPause {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPause;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or {\"until\": <ms since epoch>, \"reason\": \"...\"}")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawPause, E> {
                Ok(RawPause::Flag(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawPause, A::Error> {
                let mut until = None;
                let mut reason = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "until" if until.is_some() => {
                            return Err(de::Error::duplicate_field("until"));
                        }
                        "until" => until = Some(map.next_value::<Millis>()?),
                        "reason" if reason.is_some() => {
                            return Err(de::Error::duplicate_field("reason"));
                        }
                        "reason" => reason = Some(map.next_value::<String>()?),
                        // Through the deserializer, so that serde_ignored reports it.
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let until = until.ok_or_else(|| de::Error::missing_field("until"))?;
                Ok(RawPause::Until { until, reason })
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawLimits {
    #[serde(default, deserialize_with = "present")]
    pub(super) timeout_ms: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) memory_mb: Option<PositiveInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_log_lines: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_events: Option<NonNegativeInt>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_output_bytes: Option<NonNegativeInt>,
}

impl RawLimits {
    pub(super) fn over(&self, base: Limits) -> Limits {
        let clamp32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Limits {
            timeout_ms: self.timeout_ms.map_or(base.timeout_ms, |v| v.0),
            memory_mb: self.memory_mb.map_or(base.memory_mb, |v| v.0),
            max_log_lines: self
                .max_log_lines
                .map_or(base.max_log_lines, |v| clamp32(v.0)),
            max_events: self.max_events.map_or(base.max_events, |v| clamp32(v.0)),
            max_output_bytes: self.max_output_bytes.map_or(base.max_output_bytes, |v| v.0),
        }
    }
}
