//! Local wall-clock times of the fakes' users as instants, the way the providers read them.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset as _, TimeZone as _, Utc};
use chrono_tz::Tz;

/// The instant of local time `t` in `tz`: the earlier of a repeated time, and a time in a
/// spring-forward gap read with the offset in force before the gap.
pub(crate) fn to_utc(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    let at = |t: NaiveDateTime| tz.from_local_datetime(&t).earliest();
    match at(t) {
        Some(instant) => instant.with_timezone(&Utc),
        None => {
            // Gaps last at most a few hours: three hours earlier is before it.
            let before = at(t - Duration::hours(3))
                .expect("a local time before the gap")
                .offset()
                .fix();
            (t - Duration::seconds(before.local_minus_utc().into())).and_utc()
        }
    }
}

/// The instant local day `d` starts in `tz`.
pub(crate) fn day_start(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    to_utc(tz, d.and_hms_opt(0, 0, 0).expect("midnight"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NY: Tz = chrono_tz::America::New_York;

    fn local(s: &str) -> NaiveDateTime {
        s.parse().unwrap()
    }

    #[test]
    fn a_time_in_the_spring_gap_is_read_with_the_offset_before_it() {
        assert_eq!(
            to_utc(NY, local("2025-03-09T02:30:00")),
            "2025-03-09T07:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn a_repeated_time_is_the_earlier_instant() {
        assert_eq!(
            to_utc(NY, local("2025-11-02T01:30:00")),
            "2025-11-02T05:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
