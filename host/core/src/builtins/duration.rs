//! Durations as people write them in a `meta`: `"90s"`, `"15m"`, `"26h"`,
//! `"7d"`, `"1h30m"`, `"250ms"`.

/// The units a duration may use, longest suffix first so that `ms` is not
/// read as `m` followed by garbage.
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// What a duration should look like, for error messages.
pub const EXPECTED: &str =
    "a duration such as \"90s\", \"15m\", \"26h\", \"7d\" or \"1h30m\" (units ms, s, m, h, d, w)";

/// Parses a duration into milliseconds: one or more `<integer><unit>`
/// parts, added up. `None` for anything else (no unit, an unknown unit,
/// a sign, a fraction, an empty string, or a sum past `u64::MAX` ms).
pub fn parse_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = UNITS.iter().find(|(unit, _)| {
            rest.starts_with(unit)
                // `m` must not swallow the `m` of `ms`.
                && !(unit == &"m" && rest.starts_with("ms"))
        })?;
        rest = &rest[unit.len()..];
        total = total.checked_add(amount.checked_mul(*scale)?)?;
    }
    Some(total)
}

/// A duration for people: the largest units that divide it, `26h`,
/// `1h30m`, `250ms`, `0s`.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, scale) in UNITS.iter().rev() {
        if rest >= *scale {
            out.push_str(&format!("{}{unit}", rest / scale));
            rest %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_add_up() {
        assert_eq!(parse_ms("250ms"), Some(250));
        assert_eq!(parse_ms("90s"), Some(90_000));
        assert_eq!(parse_ms("15m"), Some(900_000));
        assert_eq!(parse_ms("26h"), Some(93_600_000));
        assert_eq!(parse_ms("7d"), Some(604_800_000));
        assert_eq!(parse_ms("1w"), Some(604_800_000));
        assert_eq!(parse_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_ms("1m5ms"), Some(60_005));
        assert_eq!(parse_ms(" 2h "), Some(7_200_000));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "26",
            "h",
            "26x",
            "-1h",
            "1.5h",
            "1h 30m",
            "26hours",
            "1h30",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for ms in [
            0,
            250,
            1_000,
            90_000,
            5_400_000,
            93_600_000,
            604_800_000,
            60_005,
        ] {
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms), "{ms}");
        }
        assert_eq!(format_ms(93_600_000), "1d2h");
    }
}
