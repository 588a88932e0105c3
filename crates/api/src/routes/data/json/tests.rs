//! The hand-written answer must be exactly what serde_json writes for the same response.

use chrono::{DateTime, TimeZone as _, Utc};
use wearhouse_core::ParticipantId;
use wearhouse_core::store::series::{Point, Series};

use super::super::DataResponse;
use super::to_vec;

fn point(t: DateTime<Utc>, value: Option<f64>, text: Option<&str>) -> Point {
    Point {
        participant_id: String::new(),
        timestamp: t,
        value,
        min: value.map(|v| v - 1.5),
        max: value,
        sum: value.map(|v| v * 3.0),
        count: 3,
        text: text.map(str::to_owned),
    }
}

fn response(series: Vec<Series>, next_cursor: Option<&str>) -> DataResponse {
    DataResponse {
        metric: "heart_rate",
        unit: "bpm",
        start_date: Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap(),
        end_date: Utc.with_ymd_and_hms(2025, 6, 2, 0, 0, 0).unwrap(),
        resolution: "1m",
        resolution_reason: "finest resolution fits the budget of 2000: \"1m\" ~1440 points".into(),
        max_points: 2_000,
        total_count: 123_456_789_012,
        limit: Some(2_000),
        offset: 0,
        next_cursor: next_cursor.map(str::to_owned),
        series,
    }
}

fn assert_same(body: &DataResponse) {
    let by_hand = String::from_utf8(to_vec(body).unwrap()).unwrap();
    let by_serde = serde_json::to_string(body).unwrap();
    assert_eq!(by_hand, by_serde);
}

#[test]
fn every_kind_of_point_is_written_as_serde_writes_it() {
    let day = Utc.with_ymd_and_hms(2025, 6, 1, 23, 59, 58).unwrap();
    let mut points = vec![
        point(day, Some(61.25), None),
        point(day + chrono::Duration::seconds(1), Some(-0.1), None),
        // The next day, so the date changes within one series.
        point(day + chrono::Duration::seconds(2), Some(1e21), None),
        point(
            day + chrono::Duration::seconds(3),
            None,
            Some("deep \"sleep\"\n"),
        ),
        point(
            day + chrono::Duration::milliseconds(4_500),
            Some(f64::NAN),
            None,
        ),
        point(
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 0, 1).unwrap(),
            Some(0.0),
            None,
        ),
        point(
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Some(5e-324),
            None,
        ),
        point(
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Some(f64::MAX),
            None,
        ),
    ];
    // A raw sample: its own min, max and sum.
    let mut raw = point(day, Some(72.0), Some("awake"));
    (raw.min, raw.max, raw.sum, raw.count) = (raw.value, raw.value, raw.value, 1);
    points.push(raw);
    points.push(Point {
        count: i64::MIN,
        ..point(day, Some(f64::INFINITY), None)
    });
    let series = vec![
        Series {
            participant_id: ParticipantId::parse("P001").unwrap(),
            points,
        },
        Series {
            participant_id: ParticipantId::parse("P002").unwrap(),
            points: Vec::new(),
        },
    ];
    assert_same(&response(
        series,
        Some("djF8MW18MTc0ODczNjAwMDAwMDAwMHxQMDAx"),
    ));
}

#[test]
fn an_answer_without_series_or_points_is_written_as_serde_writes_it() {
    assert_same(&response(Vec::new(), None));
    let empty = Series {
        participant_id: ParticipantId::parse("P003").unwrap(),
        points: Vec::new(),
    };
    assert_same(&response(vec![empty], None));
}
