//! Half-open time ranges and the date formats callers may use.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// `[start, end)`: `start` is included, `end` is not. Always non-empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl TimeRange {
    /// A range; the error names `end_date` when it is empty or reversed.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, Error> {
        if end <= start {
            return Err(Error::invalid(
                "end_date",
                format!(
                    "the range [{}, {}) is empty or reversed; end_date must be after start_date",
                    start.to_rfc3339(),
                    end.to_rfc3339()
                ),
            ));
        }
        Ok(TimeRange { start, end })
    }

    /// The whole UTC days `[first, last]`.
    pub fn days(first: NaiveDate, last: NaiveDate) -> Result<Self, Error> {
        Self::new(midnight_utc(first), midnight_utc(last) + Duration::days(1))
    }

    /// Length in seconds.
    pub fn seconds(&self) -> i64 {
        (self.end - self.start).num_seconds()
    }

    /// Whether `t` falls inside.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// Midnight UTC at the start of `d`.
pub fn midnight_utc(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// Parses an ISO 8601 date (`2025-06-01`, midnight UTC), a date-time with an offset
/// (`2025-06-01T08:00:00+02:00`, `…Z`), or a date-time without one (taken as UTC).
/// The error names `parameter`.
pub fn parse_instant(parameter: &'static str, raw: &str) -> Result<DateTime<Utc>, Error> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(midnight_utc(d));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    Err(Error::invalid(
        parameter,
        format!("{s:?} is not an ISO 8601 date (2025-06-01) or date-time (2025-06-01T08:00:00Z)"),
    ))
}

/// Appends `t` in RFC 3339 UTC exactly as chrono's serde form writes it
/// (`2025-06-01T08:00:00Z`, fractions only when non-zero), without going through
/// `fmt`: series answers format one timestamp per point, and this is their hottest part.
pub fn push_rfc3339(buf: &mut String, t: &DateTime<Utc>) {
    use chrono::{Datelike as _, Timelike as _};
    let year = t.year();
    if t.nanosecond() != 0 || !(0..=9999).contains(&year) {
        buf.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        return;
    }
    let mut out = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    buf.push_str(std::str::from_utf8(&out).expect("ASCII digits"));
}

/// `serialize_with` for a UTC timestamp, in the same form as chrono's serde, faster.
pub fn serialize_utc<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = String::with_capacity(32);
    push_rfc3339(&mut buf, t);
    s.serialize_str(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_date_times_with_offsets_are_understood() {
        let t = parse_instant("start_date", "2025-06-01").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-06-01T00:00:00+00:00");
        let t = parse_instant("start_date", "2025-06-01T08:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-06-01T06:00:00+00:00");
        let t = parse_instant("start_date", "2025-06-01T08:00:00.5Z").unwrap();
        assert_eq!(t.timestamp_millis() % 1000, 500);
    }

    #[test]
    fn fast_timestamps_match_chronos_serde_form() {
        let base = parse_instant("x", "1999-12-31T23:59:59Z").unwrap();
        for (i, step) in [0i64, 1, 59, 3_600, 86_399, 40_000_000, 900_000_000]
            .into_iter()
            .enumerate()
        {
            for frac in [0i64, 500, 123_456] {
                let t = base + Duration::seconds(step) + Duration::microseconds(frac);
                let mut fast = String::new();
                push_rfc3339(&mut fast, &t);
                let chrono_form = serde_json::to_value(t).unwrap();
                assert_eq!(fast, chrono_form.as_str().unwrap(), "case {i}");
                let mut json = Vec::new();
                serialize_utc(&t, &mut serde_json::Serializer::new(&mut json)).unwrap();
                assert_eq!(serde_json::from_slice::<String>(&json).unwrap(), fast);
            }
        }
    }

    #[test]
    fn garbage_dates_name_the_parameter() {
        let e = parse_instant("end_date", "yesterday").unwrap_err();
        assert_eq!(e.parameter(), Some("end_date"));
    }

    #[test]
    fn empty_and_reversed_ranges_are_rejected() {
        let t = parse_instant("x", "2025-06-01").unwrap();
        assert!(TimeRange::new(t, t).is_err());
        assert!(TimeRange::new(t, t - Duration::seconds(1)).is_err());
        assert!(TimeRange::new(t, t + Duration::seconds(1)).is_ok());
    }
}
