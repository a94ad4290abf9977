//! Number types whose errors say what a person should write: integers
//! that accept integral floats (as JSON Schema and Python do), and
//! milliseconds since the epoch as heartbeat-consumer wrote them.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

macro_rules! number_type {
    ($name:ident, $expecting:literal, $accept:expr) => {
        #[derive(Debug, Clone, Copy)]
        pub(super) struct $name(pub(super) u64);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        let accept: fn(u64) -> bool = $accept;
                        if accept(v) {
                            Ok($name(v))
                        } else {
                            Err(E::invalid_value(de::Unexpected::Unsigned(v), &self))
                        }
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        match u64::try_from(v) {
                            Ok(v) => self.visit_u64(v),
                            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                        }
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        match integral(v) {
                            Some(i) => self.visit_i64(i),
                            None => Err(E::invalid_type(de::Unexpected::Float(v), &self)),
                        }
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}

number_type!(NonNegativeInt, "a non-negative integer", |_| true);
number_type!(PositiveInt, "a positive integer", |v| v > 0);

/// A float with no fractional part (`900000.0`, `9e5`) as an integer, as JSON
/// Schema's `integer` and Python's arithmetic treat it; `None` otherwise.
fn integral(v: f64) -> Option<i64> {
    // Beyond 2^53 a float no longer names one integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    (v.fract() == 0.0 && v.abs() <= EXACT).then_some(v as i64)
}

/// Any integer (`priority`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Integer(pub(super) i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Integer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
                Ok(Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
                i64::try_from(v)
                    .map(Integer)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Integer, E> {
                integral(v)
                    .map(Integer)
                    .ok_or_else(|| E::invalid_type(de::Unexpected::Float(v), &self))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// For optional fields: absent is `None` (through `#[serde(default)]`), but
/// an explicit `null` is refused like any other value of the wrong type.
pub(super) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Milliseconds since the epoch. heartbeat-consumer is Python and may have
/// written `time.time() * 1000`, a float: the whole milliseconds are `.0`,
/// and the fraction of a millisecond as written is kept in `.1` (in
/// `[0, 1)`) for the one place it can matter, the overdue ratio, where
/// dropping it could turn a clear ordering into a tie.
#[derive(Debug, Clone, Copy)]
pub(super) struct Millis(pub(super) u64, pub(super) f64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("milliseconds since the Unix epoch (a non-negative number)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
                Ok(Millis(v, 0.0))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
                u64::try_from(v)
                    .map(|v| Millis(v, 0.0))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Millis, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(Millis(v as u64, v.fract()))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}
