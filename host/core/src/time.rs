//! Instants as the host handles them (milliseconds since the Unix epoch,
//! `u64`) and the ways they are written. No clock here: the time is always
//! passed in.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The instant `ms` milliseconds after the epoch; `None` past what jiff
/// represents (year 9999), which only a corrupt value reaches.
pub fn timestamp(ms: u64) -> Option<Timestamp> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
}

/// RFC 3339 in UTC (`2026-01-01T09:30:00Z`), for people; `<ms> ms` for an
/// instant out of range.
pub fn format_ms(ms: u64) -> String {
    timestamp(ms).map_or_else(|| format!("{ms} ms"), |t| t.to_string())
}

/// Python's `datetime.isoformat()` of an aware UTC datetime
/// (`2026-01-12T10:00:00.123000+00:00`): what heartbeat-consumer and kstlib
/// write, so what the host writes where they read.
pub fn python_isoformat(time: Timestamp) -> String {
    time.to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")
        .to_string()
}

/// [`python_isoformat`] of `ms`; the epoch for an instant out of range.
pub fn iso_utc(ms: u64) -> String {
    python_isoformat(timestamp(ms).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_utc_matches_pythons_isoformat() {
        assert_eq!(
            iso_utc(1_768_212_000_000 + 123),
            "2026-01-12T10:00:00.123000+00:00"
        );
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn out_of_range_instants_are_written_plainly() {
        assert_eq!(format_ms(u64::MAX), format!("{} ms", u64::MAX));
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
    }
}
