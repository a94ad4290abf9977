//! The file's shape, as serde reads it. Field types carry their own
//! "expected ..." wording so that errors read well; every optional field
//! refuses an explicit `null` ([`present`]), and every struct is read from
//! a JSON object only (`objects_only!`).

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::grants::RawGrants;
use super::numbers::{Integer, Millis, NonNegativeInt, PositiveInt, present};
use super::objects_only::objects_only;
use crate::model::{Limits, Quarter, RetryPolicy};

objects_only!(RawConfig, RawCheck, RawWindow, RawLimits);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
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
    #[serde(default, deserialize_with = "present")]
    pub(super) handlers_dir: Option<String>,
}

/// Calls `$then! { {$($args)*} NAME: TYPE, ... }` with the fields a check
/// and `defaults` share (limits and retry policy), so that they are listed
/// here once. They are written into each struct rather than kept in one
/// struct read with `#[serde(flatten)]`: a flattened struct is read from a
/// buffered map, which loses the error positions and the unknown-field
/// warnings of the fields it holds.
macro_rules! with_limit_fields {
    ($then:ident! { $($args:tt)* }) => {
        $then! {
            { $($args)* }
            timeout_ms: PositiveInt,
            memory_mb: PositiveInt,
            max_log_lines: NonNegativeInt,
            max_events: NonNegativeInt,
            max_output_bytes: NonNegativeInt,
            max_http_bytes: NonNegativeInt,
            max_kv_bytes: NonNegativeInt,
            max_connections: PositiveInt,
            max_attempts: PositiveInt,
            retry_interval_ms: PositiveInt,
            flap_threshold: NonNegativeInt,
        }
    };
}

/// A struct of the file (camelCase, read from an object only) with its own
/// fields, then the limit fields, each optional and refusing `null`; and
/// its `limits()`.
macro_rules! raw_struct_with_limits {
    (
        { $(#[$attr:meta])* struct $name:ident { $($own:tt)* } }
        $($limit:ident: $ty:ty,)*
    ) => {
        $(#[$attr])*
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", remote = "Self")]
        pub(super) struct $name {
            $($own)*
            $(
                #[serde(default, deserialize_with = "present")]
                pub(super) $limit: Option<$ty>,
            )*
        }

        impl $name {
            /// The limit fields given here.
            pub(super) fn limits(&self) -> LimitFields {
                LimitFields { $($limit: self.$limit,)* }
            }
        }
    };
}

/// The limit fields as given (by a check or by `defaults`), each `None`
/// when left out.
macro_rules! limit_fields_struct {
    ({} $($limit:ident: $ty:ty,)*) => {
        /// The limit and retry fields of a check or of `defaults`, as
        /// written; [`LimitFields::over`] and [`LimitFields::retry_over`]
        /// fill what is left out.
        #[derive(Clone, Copy, Default)]
        pub(super) struct LimitFields {
            $(pub(super) $limit: Option<$ty>,)*
        }
    };
}

with_limit_fields!(limit_fields_struct! {});

with_limit_fields!(raw_struct_with_limits! {
    struct RawCheck {
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
        #[serde(default, deserialize_with = "present")]
        pub(super) grants: Option<RawGrants>,
    }
});

#[derive(Deserialize)]
#[serde(remote = "Self")]
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

with_limit_fields!(raw_struct_with_limits! {
    /// `defaults`: the limit fields every check inherits, and grants.
    #[derive(Default)]
    struct RawLimits {
        /// Only under `defaults`: grants every check gets besides its own.
        #[serde(default, deserialize_with = "present")]
        pub(super) grants: Option<RawGrants>,
    }
});

impl LimitFields {
    /// The retry policy these fields give over `base`.
    pub(super) fn retry_over(&self, base: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.map_or(base.max_attempts, |v| {
                u32::try_from(v.0).unwrap_or(u32::MAX)
            }),
            retry_interval_ms: self
                .retry_interval_ms
                .map(|v| v.0)
                .or(base.retry_interval_ms),
            flap_threshold: self.flap_threshold.map_or(base.flap_threshold, |v| {
                u32::try_from(v.0).unwrap_or(u32::MAX)
            }),
        }
    }

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
            max_http_bytes: self.max_http_bytes.map_or(base.max_http_bytes, |v| v.0),
            max_kv_bytes: self.max_kv_bytes.map_or(base.max_kv_bytes, |v| v.0),
            max_connections: self
                .max_connections
                .map_or(base.max_connections, |v| clamp32(v.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, parse};

    #[test]
    fn an_array_is_not_read_as_an_object_of_fields() {
        // Found by fuzz::config_documents_of_real_fields_are_accepted_or_refused_at_the_value_at_fault
        // (`[""]` was refused at 0:0, as a `$schema` of ""). Each was
        // accepted, its array read as the fields in declaration order.
        for (text, field, column) in [
            ("[]", ".", 1),
            (r#"["heartbeat.v1"]"#, ".", 1),
            (r#"{"checks": {"a": [1000]}}"#, "checks.a", 18),
            (
                r#"{"checks": {"a": {"window": ["09:00", "17:00", "UTC"]}}}"#,
                "checks.a.window",
                29,
            ),
            (r#"{"defaults": [500]}"#, "defaults", 14),
        ] {
            match parse(text, "heartbeat.json") {
                Err(ConfigError::Invalid {
                    line: 1,
                    column: c,
                    field: f,
                    message,
                    ..
                }) => {
                    assert_eq!((f.as_str(), c), (field, column), "{text}");
                    assert_eq!(message, "expected an object, found an array", "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // Objects still read, unknown fields still warned about.
        let loaded = parse(
            r#"{"checks": {"a": {"window": {"start": "09:00", "end": "17:00", "tz": "UTC", "x": 1}}}}"#,
            "heartbeat.json",
        )
        .expect("valid");
        assert_eq!(loaded.warnings[0].path, "checks.a.window.x");
    }
}
