//! Half-open time ranges and the date formats callers may use.

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
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

/// The years a date or instant may fall in. PostgreSQL stores nothing before 4713 BC and
/// chrono and RFC 3339 write years outside 0000–9999 with a sign or a fifth digit, so an
/// instant outside these years fails late (a 500, or a CSV export cut off after its header)
/// instead of as the caller's mistake. No study has data outside them.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Parses an ISO 8601 date (`2025-06-01`, midnight UTC), a date-time with an offset
/// (`2025-06-01T08:00:00+02:00`, `…Z`), or a date-time without one (taken as UTC), in the
/// years [`YEARS`] (checked in UTC). The error names `parameter`.
pub fn parse_instant(parameter: &'static str, raw: &str) -> Result<DateTime<Utc>, Error> {
    let s = raw.trim();
    let t = parse_any_instant(s).ok_or_else(|| {
        Error::invalid(
            parameter,
            format!(
                "{s:?} is not an ISO 8601 date (2025-06-01) or date-time \
                 (2025-06-01T08:00:00Z) in the years 0001 to 9999"
            ),
        )
    })?;
    check_year(parameter, s, t.year())?;
    Ok(t)
}

/// Parses a calendar day `YYYY-MM-DD` in the years [`YEARS`]; the error names `parameter`.
pub fn parse_day(parameter: &'static str, raw: &str) -> Result<NaiveDate, Error> {
    let s = raw.trim();
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::invalid(parameter, format!("{s:?} is not a day such as 2026-01-31")))?;
    check_year(parameter, s, day.year())?;
    Ok(day)
}

fn parse_any_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(midnight_utc(d));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .into_iter()
    .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
    .map(|t| Utc.from_utc_datetime(&t))
}

fn check_year(parameter: &'static str, raw: &str, year: i32) -> Result<(), Error> {
    if YEARS.contains(&year) {
        return Ok(());
    }
    Err(Error::invalid(
        parameter,
        format!(
            "{raw:?} is out of range; give a date between 0001-01-01 and 9999-12-31 \
             (years {:04} to {:04}, in UTC)",
            YEARS.start(),
            YEARS.end()
        ),
    ))
}

/// Appends `t` in RFC 3339 UTC exactly as chrono's serde form writes it
/// (`2025-06-01T08:00:00Z`, fractions only when non-zero), without going through
/// `fmt`: series answers format one timestamp per point, and this is their hottest part.
pub fn push_rfc3339(buf: &mut String, t: &DateTime<Utc>) {
    use chrono::Timelike as _;
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
    fn instants_outside_the_years_0001_to_9999_are_refused_naming_the_parameter() {
        for raw in [
            "-4713-01-01",
            "0000-12-31",
            "0000-06-01T00:00:00Z",
            // 00:00 at +05:00 is still 31 December of year 0 in UTC.
            "0001-01-01T00:00:00+05:00",
            "+10000-01-01",
            "10000-01-01",
            "+10000-01-01T00:00:00Z",
            "9999-12-31T23:00:00-05:00",
            "262143-12-31",
        ] {
            let e = parse_instant("start_date", raw).unwrap_err();
            assert_eq!(e.parameter(), Some("start_date"), "{raw}");
            let message = e.to_string();
            assert!(
                message.contains("0001") && message.contains("9999"),
                "{raw}: {message}"
            );
        }
        for raw in [
            "0001-01-01",
            "0001-01-01T00:00:00Z",
            "9999-12-31",
            "9999-12-31T23:59:59.999Z",
        ] {
            assert!(parse_instant("end_date", raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn days_outside_the_years_0001_to_9999_are_refused_naming_the_parameter() {
        assert_eq!(
            parse_day("backfill_from", "2026-01-31").unwrap(),
            NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()
        );
        for raw in ["-4713-01-01", "0000-01-01", "+10000-01-01", "tomorrow"] {
            let e = parse_day("backfill_from", raw).unwrap_err();
            assert_eq!(e.parameter(), Some("backfill_from"), "{raw}");
        }
    }

    #[test]
    fn empty_and_reversed_ranges_are_rejected() {
        let t = parse_instant("x", "2025-06-01").unwrap();
        assert!(TimeRange::new(t, t).is_err());
        assert!(TimeRange::new(t, t - Duration::seconds(1)).is_err());
        assert!(TimeRange::new(t, t + Duration::seconds(1)).is_ok());
    }
}
