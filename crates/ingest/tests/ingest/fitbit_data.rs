//! What the Fitbit source makes of the API's data: sparse 1-second heart rate, daylight-saving
//! days, sleep stages with short wakes, pending sleep, devices that have not synced, and every
//! catalogue metric, checked against the fake server's own responses.

use std::collections::BTreeMap;

use crate::support::fitbit::*;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::America::New_York;
use wearhouse_core::{Metric, Sample};
use wearhouse_fakes::{AzmShape, FakeUser};
use wearhouse_ingest::sources::Source;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn dataset(body: &serde_json::Value, key: &str) -> Vec<(NaiveTime, f64)> {
    body[key]["dataset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                NaiveTime::parse_from_str(p["time"].as_str().unwrap(), "%H:%M:%S").unwrap(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn sparse_one_second_heart_rate_is_read_exactly() {
    let env = env(vec![
        FakeUser::new("UTC001", chrono_tz::UTC).last_sync("2025-06-10T08:00:00"),
    ])
    .await;
    let p = env.enrol("P001", "UTC001", chrono_tz::UTC).await;
    let got = env
        .source
        .fetch(&p, Metric::HeartRate, day("2025-06-08"), day("2025-06-08"))
        .await
        .unwrap();
    let raw = env
        .raw(
            &p,
            "/1/user/-/activities/heart/date/2025-06-08/1d/1sec.json?timezone=UTC",
        )
        .await;
    assert_eq!(raw["activities-heart-intraday"]["datasetType"], "second");
    let expected: Vec<(DateTime<Utc>, f64)> = dataset(&raw, "activities-heart-intraday")
        .into_iter()
        .map(|(t, v)| (day("2025-06-08").and_time(t).and_utc(), v))
        .collect();
    let actual: Vec<(DateTime<Utc>, f64)> = got
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value_numeric.unwrap()))
        .collect();
    assert_eq!(actual, expected);
    // Sparse: far fewer than 86,400 readings, with gaps of several seconds.
    assert!(
        actual.len() > 3000 && actual.len() < 20_000,
        "{}",
        actual.len()
    );
    let gaps: Vec<i64> = actual
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).num_seconds())
        .collect();
    assert!(gaps.iter().all(|g| *g >= 1));
    // Readings come every 5-15 s; only where the fake's hours meet can two be closer.
    assert!(gaps.iter().filter(|g| **g < 5).count() <= 24);
}

#[tokio::test]
async fn a_spring_forward_day_is_read_in_utc_and_kept_to_the_local_day() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York).last_sync("2025-03-12T08:00:00"),
    ])
    .await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let got = env
        .source
        .fetch(&p, Metric::HeartRate, day("2025-03-09"), day("2025-03-09"))
        .await
        .unwrap();
    // The local day 2025-03-09 in New York is 23 hours long: 05:00Z to 04:00Z next day.
    let by_time: BTreeMap<DateTime<Utc>, f64> = got
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value_numeric.unwrap()))
        .collect();
    assert!(*by_time.keys().next().unwrap() >= utc("2025-03-09T05:00:00Z"));
    assert!(*by_time.keys().last().unwrap() < utc("2025-03-10T04:00:00Z"));
    // The same readings in Fitbit's local-time view: 01:59 EST is 06:59Z, 03:00 EDT is 07:00Z.
    let local = env
        .raw(
            &p,
            "/1/user/-/activities/heart/date/2025-03-09/1d/1sec.json",
        )
        .await;
    let local = dataset(&local, "activities-heart-intraday");
    assert_eq!(local.len(), by_time.len());
    let offset = |t: NaiveTime| {
        if t < NaiveTime::from_hms_opt(2, 0, 0).unwrap() {
            5
        } else {
            4
        }
    };
    for (t, v) in &local {
        let instant =
            day("2025-03-09").and_time(*t).and_utc() + chrono::Duration::hours(offset(*t));
        assert_eq!(by_time.get(&instant), Some(v), "local {t}");
    }
    let before = local
        .iter()
        .rfind(|(t, _)| t.format("%H").to_string() == "01")
        .unwrap();
    let after = local
        .iter()
        .find(|(t, _)| t.format("%H").to_string() == "03")
        .unwrap();
    assert!(by_time.contains_key(
        &(day("2025-03-09").and_time(before.0).and_utc() + chrono::Duration::hours(5))
    ));
    assert!(by_time.contains_key(
        &(day("2025-03-09").and_time(after.0).and_utc() + chrono::Duration::hours(4))
    ));
}

fn sleep_instants(samples: &[Sample]) -> Vec<DateTime<Utc>> {
    samples.iter().map(|s| s.timestamp).collect()
}

#[tokio::test]
async fn a_night_across_the_fall_back_hour_keeps_every_30_second_stage() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York).last_sync("2025-11-05T08:00:00"),
    ])
    .await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let got = env
        .source
        .fetch(&p, Metric::SleepStage, day("2025-11-02"), day("2025-11-02"))
        .await
        .unwrap();
    let raw = env.raw(&p, "/1.2/user/-/sleep/date/2025-11-02.json").await;
    let log = &raw["sleep"][0];
    let total: i64 = log["levels"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seconds"].as_i64().unwrap())
        .sum();
    let t = sleep_instants(&got.samples);
    // One sample per 30 s of the log, none lost to the repeated hour, evenly spaced.
    assert_eq!(t.len() as i64, total / 30);
    assert!(t.windows(2).all(|w| (w[1] - w[0]).num_seconds() == 30));
    // The log starts before the change, in EDT (UTC-4), and runs 7+ hours of real time.
    let start = chrono::NaiveDateTime::parse_from_str(
        log["startTime"].as_str().unwrap(),
        "%Y-%m-%dT%H:%M:%S%.3f",
    )
    .unwrap();
    assert_eq!(t[0], start.and_utc() + chrono::Duration::hours(4));
    assert!(t[t.len() - 1] > utc("2025-11-02T06:00:00Z"));
}

#[tokio::test]
async fn short_wakes_are_applied_over_the_long_sleep_levels() {
    let env = env(vec![
        FakeUser::new("UTC001", chrono_tz::UTC).last_sync("2025-06-20T08:00:00"),
    ])
    .await;
    let p = env.enrol("P001", "UTC001", chrono_tz::UTC).await;
    let got = env
        .source
        .fetch(&p, Metric::SleepStage, day("2025-06-01"), day("2025-06-14"))
        .await
        .unwrap();
    let by_time: BTreeMap<DateTime<Utc>, String> = got
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value_text.clone().unwrap()))
        .collect();
    let raw = env
        .raw(&p, "/1.2/user/-/sleep/date/2025-06-01/2025-06-14.json")
        .await;
    let mut checked = 0;
    let mut classic = 0;
    for log in raw["sleep"].as_array().unwrap() {
        if log["type"] == "classic" {
            classic += 1;
            continue;
        }
        for short in log["levels"]["shortData"].as_array().unwrap() {
            let t = chrono::NaiveDateTime::parse_from_str(
                short["dateTime"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S%.3f",
            )
            .unwrap()
            .and_utc();
            // The long level at that moment was light; the short wake wins.
            assert_eq!(by_time.get(&t).map(String::as_str), Some("wake"), "{t}");
            checked += 1;
        }
    }
    assert!(
        checked > 10 && classic > 0,
        "{checked} short wakes, {classic} classic logs"
    );
    assert!(got.samples.iter().all(|s| s.value_numeric.is_some()));
}

#[tokio::test]
async fn a_pending_sleep_log_makes_its_date_incomplete_so_it_is_fetched_again() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York)
            .last_sync("2025-06-10T08:00:00")
            .pending_sleep("2025-06-09"),
    ])
    .await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let got = env
        .source
        .fetch(&p, Metric::SleepStage, day("2025-06-07"), day("2025-06-09"))
        .await
        .unwrap();
    assert_eq!(got.incomplete_from, Some(day("2025-06-09")));
    assert!(!got.samples.is_empty());
    // Nothing of the pending night: every sample ends before the evening of the 8th.
    assert!(
        got.samples
            .iter()
            .all(|s| s.timestamp < utc("2025-06-09T01:00:00Z"))
    );
}

#[tokio::test]
async fn a_device_that_has_not_synced_reports_its_old_sync_and_nothing_after_it() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York).last_sync("2025-06-05T09:00:00"),
        FakeUser::new("NODEV1", New_York).without_tracker(),
    ])
    .await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let last = env.source.last_sync(&p).await.unwrap();
    // 09:00 EDT; the scale that synced just now does not count.
    assert_eq!(last, Some(utc("2025-06-05T13:00:00Z")));
    for metric in [
        Metric::HeartRate,
        Metric::Steps,
        Metric::SleepStage,
        Metric::Spo2,
    ] {
        let got = env
            .source
            .fetch(&p, metric, day("2025-06-04"), day("2025-06-07"))
            .await
            .unwrap();
        assert!(!got.samples.is_empty(), "{metric}");
        assert!(
            got.samples.iter().all(|s| s.timestamp < last.unwrap()),
            "{metric} has data after the last sync"
        );
    }
    let q = env.enrol("P002", "NODEV1", New_York).await;
    assert_eq!(env.source.last_sync(&q).await.unwrap(), None);
}

#[tokio::test]
async fn every_catalogue_metric_is_delivered_in_its_unit() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York).last_sync("2025-06-10T08:00:00"),
    ])
    .await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let (from, to) = (day("2025-06-02"), day("2025-06-08"));
    let mut fetched = BTreeMap::new();
    for metric in Metric::ALL {
        let got = env.source.fetch(&p, metric, from, to).await.unwrap();
        assert!(!got.samples.is_empty(), "{metric}");
        assert!(got.samples.iter().all(|s| s.metric == metric));
        let info = metric.info();
        for s in &got.samples {
            if let Some(v) = s.value_numeric {
                assert!(v >= info.min_value && v <= info.max_value, "{metric} {v}");
            }
        }
        fetched.insert(metric, got.samples);
    }
    // Distance arrives in kilometres and is stored in metres: 0.75 m per step in the fake.
    let steps: BTreeMap<_, _> = fetched[&Metric::Steps]
        .iter()
        .map(|s| (s.timestamp, s.value_numeric.unwrap()))
        .collect();
    for d in &fetched[&Metric::Distance] {
        let expected = steps[&d.timestamp] * 0.75;
        assert!((d.value_numeric.unwrap() - expected).abs() < 1e-6);
    }
    // One nightly value per date, at local midnight.
    for s in &fetched[&Metric::BreathingRate] {
        assert_eq!(
            s.timestamp
                .with_timezone(&New_York)
                .format("%H:%M")
                .to_string(),
            "00:00"
        );
    }
    // Resting heart rate is missing on some days, as Fitbit omits it.
    assert!(fetched[&Metric::RestingHeartRate].len() < 7);
}

#[tokio::test]
async fn both_active_zone_minute_shapes_give_the_same_samples() {
    let mut results = Vec::new();
    for shape in [AzmShape::Minutes, AzmShape::Dataset] {
        let env = env(vec![
            FakeUser::new("7QX2LB", New_York)
                .last_sync("2025-06-10T08:00:00")
                .azm_shape(shape),
        ])
        .await;
        let p = env.enrol("P001", "7QX2LB", New_York).await;
        let got = env
            .source
            .fetch(
                &p,
                Metric::ActiveZoneMinutes,
                day("2025-06-05"),
                day("2025-06-05"),
            )
            .await
            .unwrap();
        assert!(!got.samples.is_empty());
        results.push(got.samples);
    }
    assert_eq!(results[0], results[1]);
}
