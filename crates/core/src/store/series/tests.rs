use chrono::Duration;

use super::*;
use crate::time::parse_instant;

fn range(days: f64) -> TimeRange {
    let start = parse_instant("start_date", "2025-06-01").unwrap();
    TimeRange::new(start, start + Duration::seconds((days * 86_400.0) as i64)).unwrap()
}

#[test]
fn routing_picks_the_finest_resolution_that_fits_the_budget() {
    let cases = [
        (Metric::HeartRate, 1.0 / 24.0, Resolution::Minute),
        (Metric::HeartRate, 1.0, Resolution::Minute),
        (Metric::HeartRate, 7.0, Resolution::Hour),
        (Metric::HeartRate, 90.0, Resolution::Day),
        (Metric::HeartRate, 730.0, Resolution::Day),
        (Metric::Steps, 1.0 / 24.0, Resolution::Raw),
        (Metric::Steps, 1.0, Resolution::Raw),
        (Metric::Steps, 7.0, Resolution::Hour),
        (Metric::Steps, 90.0, Resolution::Day),
        (Metric::Steps, 730.0, Resolution::Day),
    ];
    for (metric, days, expected) in cases {
        let r = route(metric, &range(days), DEFAULT_MAX_POINTS, None);
        assert_eq!(
            r.resolution, expected,
            "{metric} over {days} days: {}",
            r.reason
        );
        assert!(r.estimated_points <= i64::from(DEFAULT_MAX_POINTS));
    }
}

#[test]
fn the_reason_says_why_finer_resolutions_were_passed_over() {
    let r = route(Metric::HeartRate, &range(7.0), DEFAULT_MAX_POINTS, None);
    assert!(r.reason.contains("raw ~604800"), "{}", r.reason);
    assert!(r.reason.contains("1m ~10080"), "{}", r.reason);
    assert!(r.reason.contains("1h ~168"), "{}", r.reason);
}

#[test]
fn a_forced_resolution_is_used_even_when_it_exceeds_the_budget() {
    let r = route(Metric::HeartRate, &range(7.0), 10, Some(Resolution::Raw));
    assert_eq!(r.resolution, Resolution::Raw);
    assert!(r.reason.starts_with("requested"));
}

#[test]
fn budgets_out_of_bounds_are_rejected() {
    assert_eq!(check_max_points(None).unwrap(), DEFAULT_MAX_POINTS);
    for bad in [0, MAX_POINTS_LIMIT + 1] {
        assert_eq!(
            check_max_points(Some(bad)).unwrap_err().parameter(),
            Some("max_points")
        );
    }
}

#[test]
fn cursors_round_trip_and_reject_tampering() {
    let t = parse_instant("x", "2025-06-01T10:00:00.123456Z").unwrap();
    let c = encode_cursor("P001", t, Resolution::Minute);
    assert_eq!(
        decode_cursor(&c, Resolution::Minute).unwrap(),
        ("P001".to_owned(), t)
    );
    let wrong_resolution = decode_cursor(&c, Resolution::Hour).unwrap_err();
    assert_eq!(wrong_resolution.parameter(), Some("cursor"));
    for bad in [
        "",
        "!!!",
        "djF8MW18eHx5",
        &URL_SAFE_NO_PAD.encode("v1|1m|12|bad id"),
    ] {
        assert_eq!(
            decode_cursor(bad, Resolution::Minute)
                .unwrap_err()
                .parameter(),
            Some("cursor")
        );
    }
}
