//! Fitbit's local times carry no UTC offset. Where the API offers `?timezone=UTC` (heart rate
//! and activity intraday) we ask for UTC; everything else (sleep, SpO2, HRV, breathing rate,
//! temperature, devices) is converted with the participant's IANA zone.
//!
//! Daylight-saving rule, for the two local times that do not map to one instant:
//! - a time in the spring-forward gap (e.g. 02:30 on 2025-03-09 in America/New_York) does not
//!   exist; it is read with the offset in force before the gap, i.e. shifted forward by the
//!   gap (02:30 EST = 07:30 UTC = 03:30 EDT), as a clock that missed the change would mean it;
//! - a time in the repeated fall-back hour (01:30 on 2025-11-02) happens twice; it is the
//!   earlier instant, unless the series being read has already passed that instant (a sleep
//!   or SpO2 series runs forward in time), in which case it is the later one.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant of local time `t` in `tz`, for a series that is at or after `not_before`.
pub fn to_utc(tz: Tz, t: NaiveDateTime, not_before: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match tz.from_local_datetime(&t) {
        LocalResult::Single(x) => x.with_timezone(&Utc),
        LocalResult::Ambiguous(early, late) => {
            let early = early.with_timezone(&Utc);
            match not_before {
                Some(floor) if early < floor => late.with_timezone(&Utc),
                _ => early,
            }
        }
        LocalResult::None => {
            // The offset before the gap: gaps are at most a few hours long, so three hours
            // earlier is on the old side of it.
            let before = t - chrono::Duration::hours(3);
            let offset = match tz.from_local_datetime(&before) {
                LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => x.offset().to_owned(),
                LocalResult::None => tz.offset_from_utc_datetime(&before),
            };
            let secs = chrono::Offset::fix(&offset).local_minus_utc();
            Utc.from_utc_datetime(&(t - chrono::Duration::seconds(i64::from(secs))))
        }
    }
}

/// The instant local day `d` starts in `tz` (midnight, or the first instant after a gap).
pub fn day_start(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    to_utc(tz, d.and_hms_opt(0, 0, 0).expect("midnight"), None)
}

/// Parses Fitbit's local date-times: `yyyy-MM-ddTHH:mm:ss` with optional `.SSS`.
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        parse_local(s).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const NY: Tz = chrono_tz::America::New_York;

    #[test]
    fn a_time_in_the_spring_gap_is_shifted_forward_by_the_gap() {
        assert_eq!(
            to_utc(NY, local("2025-03-09T02:30:00"), None),
            utc("2025-03-09T07:30:00Z")
        );
        assert_eq!(
            to_utc(NY, local("2025-03-09T03:30:00"), None),
            utc("2025-03-09T07:30:00Z")
        );
        assert_eq!(
            to_utc(NY, local("2025-03-09T01:59:30"), None),
            utc("2025-03-09T06:59:30Z")
        );
    }

    #[test]
    fn a_repeated_time_is_the_first_unless_the_series_has_passed_it() {
        let t = local("2025-11-02T01:30:00.000");
        assert_eq!(to_utc(NY, t, None), utc("2025-11-02T05:30:00Z"));
        assert_eq!(
            to_utc(NY, t, Some(utc("2025-11-02T05:59:30Z"))),
            utc("2025-11-02T06:30:00Z")
        );
    }

    #[test]
    fn a_dst_day_starts_at_local_midnight() {
        assert_eq!(
            day_start(NY, "2025-03-09".parse().unwrap()),
            utc("2025-03-09T05:00:00Z")
        );
        assert_eq!(
            day_start(NY, "2025-03-10".parse().unwrap()),
            utc("2025-03-10T04:00:00Z")
        );
    }
}
