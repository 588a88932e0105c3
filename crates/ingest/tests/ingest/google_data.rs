//! Google Health data against the fake server: every metric read into the catalogue, page
//! tokens followed through an empty page and a `{}` last page, and only filters the API
//! accepts (the fake refuses the others with Google's exact body).

use std::collections::BTreeSet;

use crate::support::google::*;
use chrono::{Duration, NaiveTime};
use chrono_tz::Europe::Berlin;
use wearhouse_core::Metric;
use wearhouse_fakes::FakeGoogleUser;
use wearhouse_ingest::sources::Source;
use wearhouse_ingest::sources::fitbit::localtime::day_start;

const USER: &str = "1173016576421350648";
const SYNC: &str = "2026-10-08T06:00:00Z";

#[tokio::test]
async fn every_metric_is_read_into_the_catalogue_with_utc_instants_and_int64_strings() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    let (from, to) = (day("2026-10-05"), day("2026-10-06"));
    let (lo, hi) = (
        day_start(Berlin, from),
        day_start(Berlin, to + Duration::days(1)),
    );
    for metric in env.source.metrics() {
        let fetched = env.source.fetch(&p, metric, from, to).await.unwrap();
        let s = &fetched.samples;
        assert!(!s.is_empty(), "{metric}: no samples");
        let info = metric.info();
        for x in s {
            let v = x.value_numeric.unwrap();
            assert!(
                v >= info.min_value && v <= info.max_value,
                "{metric}: {v} out of range"
            );
        }
        match metric {
            Metric::SleepStage => {
                let labels: BTreeSet<_> = s.iter().map(|x| x.value_text.clone().unwrap()).collect();
                assert!(
                    labels.iter().all(|l| [
                        "wake", "light", "deep", "rem", "asleep", "restless", "awake"
                    ]
                    .contains(&l.as_str())),
                    "{labels:?}"
                );
                // One sample every 30 s within each night.
                let mut t: Vec<_> = s.iter().map(|x| x.timestamp).collect();
                t.sort();
                let steps: BTreeSet<i64> = t
                    .windows(2)
                    .map(|w| (w[1] - w[0]).num_seconds())
                    .filter(|d| *d < 3600)
                    .collect();
                assert_eq!(steps, BTreeSet::from([30]));
            }
            Metric::RestingHeartRate | Metric::HrvRmssd | Metric::BreathingRate => {
                let days: Vec<_> = s.iter().map(|x| x.timestamp).collect();
                assert_eq!(days.len(), 2, "{metric}");
                for t in days {
                    assert_eq!(
                        t.with_timezone(&Berlin).time(),
                        NaiveTime::MIN,
                        "{metric} at local midnight"
                    );
                }
            }
            _ => {
                assert!(
                    s.iter().all(|x| lo <= x.timestamp && x.timestamp < hi),
                    "{metric} outside the days"
                );
            }
        }
        if metric == Metric::HeartRate || metric == Metric::Steps {
            assert!(
                s.iter().all(|x| x.value_numeric.unwrap().fract() == 0.0),
                "{metric}: int64 values"
            );
        }
        if metric == Metric::Calories {
            // Two full days of one-minute rollup windows.
            assert_eq!(s.len(), 2 * 1440);
        }
    }
    assert!(
        env.fake.requests().iter().all(|r| r.status == 200),
        "a request was refused"
    );
}

#[tokio::test]
async fn left_out_zero_counts_are_stored_as_zero_and_distance_is_in_metres() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    let d = day("2026-10-05");
    let steps = env
        .source
        .fetch(&p, Metric::Steps, d, d)
        .await
        .unwrap()
        .samples;
    let distance = env
        .source
        .fetch(&p, Metric::Distance, d, d)
        .await
        .unwrap()
        .samples;
    assert!(
        steps.iter().any(|s| s.value_numeric == Some(0.0)),
        "a zero-step minute"
    );
    assert_eq!(steps.len(), distance.len());
    for (s, m) in steps.iter().zip(&distance) {
        assert_eq!(s.timestamp, m.timestamp);
        // The fake's stride is 762 mm.
        assert!((m.value_numeric.unwrap() - s.value_numeric.unwrap() * 0.762).abs() < 1e-9);
    }
}

#[tokio::test]
async fn pages_are_followed_through_an_empty_page_with_a_token_and_an_empty_last_page() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    // 30 nights at Google's maximum of 25 sleep sessions per page.
    let fetched = env
        .source
        .fetch(&p, Metric::SleepStage, day("2026-09-08"), day("2026-10-07"))
        .await
        .unwrap();
    let log = env.fake.requests();
    let points: Vec<usize> = log.iter().map(|r| r.points).collect();
    assert_eq!(
        points,
        vec![0, 25, 5, 0],
        "empty first page, two pages, `{{}}`"
    );
    assert!(log[0].next_page && !log[3].next_page);
    assert!(log.iter().all(|r| r.param("pageSize") == Some("25")));
    let mut t: Vec<_> = fetched.samples.iter().map(|s| s.timestamp).collect();
    t.sort();
    let nights = 1 + t
        .windows(2)
        .filter(|w| w[1] - w[0] > Duration::hours(1))
        .count();
    assert_eq!(nights, 30);
}

#[tokio::test]
async fn the_fake_refuses_filters_the_api_refuses_and_our_filters_pass() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    let (status, body) = env
        .raw(
            &p,
            "/v4/users/me/dataTypes/sleep/dataPoints",
            &[(
                "filter",
                "sleep.interval.civil_start_time >= \"2026-10-01T00:00:00\"",
            )],
        )
        .await;
    assert_eq!(status, 400);
    let e = &body["error"];
    assert_eq!(e["code"], 400);
    assert_eq!(e["status"], "INVALID_ARGUMENT");
    assert_eq!(
        e["message"],
        "Invalid data point filter: INVALID_DATA_POINT_FILTER_DATA_TYPE_MEMBER"
    );
    assert_eq!(e["details"][0]["reason"], "INVALID_DATA_POINT_FILTER");
    assert_eq!(e["details"][0]["domain"], "health.googleapis.com");
    assert_eq!(
        e["details"][1]["fieldViolations"][0]["description"],
        "Member 'sleep.interval.civil_start_time' is not supported for filtering. (at line 1, column 1)"
    );
    let (status, _) = env
        .raw(
            &p,
            "/v4/users/me/dataTypes/heart-rate/dataPoints",
            &[(
                "filter",
                "heart_rate.sample_time.civil_time >= \"2026-10-01T00:00:00\"",
            )],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = env
        .raw(
            &p,
            "/v4/users/me/dataTypes/heart-rate/dataPoints",
            &[(
                "filter",
                "heart_rate.sample_time.physical_time >= \"10/01/2026\"",
            )],
        )
        .await;
    assert_eq!(status, 400, "physical time must be RFC 3339");
    let (status, body) = env
        .raw(&p, "/v4/users/me/dataTypes/total-calories/dataPoints", &[])
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "rollup-only"
    );

    env.fake.clear_requests();
    for metric in env.source.metrics() {
        env.source
            .fetch(&p, metric, day("2026-10-05"), day("2026-10-05"))
            .await
            .unwrap();
    }
    let log = env.fake.requests();
    assert!(
        log.iter().all(|r| r.status == 200),
        "{:?}",
        log.iter().find(|r| r.status != 200)
    );
    assert!(
        log.iter()
            .filter(|r| r.method == "GET")
            .all(|r| r.param("filter").is_some_and(|f| !f.is_empty()))
    );
}

#[tokio::test]
async fn the_fake_serves_int64_as_strings_newest_first_and_leaves_out_zero_fields() {
    let env = env(vec![FakeGoogleUser::new(USER, Berlin).last_sync(SYNC)]).await;
    let p = env.enrol("P001", USER, Berlin).await;
    let filter = "steps.interval.start_time >= \"2026-10-05T05:00:00Z\" AND steps.interval.start_time < \"2026-10-05T20:00:00Z\"";
    let (_, first) = env
        .raw(
            &p,
            "/v4/users/me/dataTypes/steps/dataPoints",
            &[("filter", filter), ("pageSize", "10000")],
        )
        .await;
    assert!(first.get("dataPoints").is_none(), "the first page is empty");
    let token = first["nextPageToken"].as_str().unwrap();
    let (_, page) = env
        .raw(
            &p,
            "/v4/users/me/dataTypes/steps/dataPoints",
            &[
                ("filter", filter),
                ("pageSize", "10000"),
                ("pageToken", token),
            ],
        )
        .await;
    let points = page["dataPoints"].as_array().unwrap();
    let starts: Vec<&str> = points
        .iter()
        .map(|x| x["steps"]["interval"]["startTime"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(
        points
            .iter()
            .filter_map(|x| x["steps"].get("count"))
            .all(|c| c.is_string())
    );
    assert!(
        points.iter().any(|x| x["steps"].get("count").is_none()),
        "a zero count is left out"
    );
}
