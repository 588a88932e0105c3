use chrono::{Duration, NaiveDate, Timelike};
use wearhouse_core::ParticipantId;

use super::*;

fn participant(tz: chrono_tz::Tz) -> SourceParticipant {
    SourceParticipant {
        id: ParticipantId::parse("SYN0001").unwrap(),
        timezone: tz,
        provider_user_id: Some(device_id(7)),
        handed_over: Default::default(),
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, d).unwrap()
}

async fn fetch(
    src: &SyntheticSource,
    p: &SourceParticipant,
    m: Metric,
    d: NaiveDate,
) -> Vec<wearhouse_core::Sample> {
    src.fetch(p, m, d, d).await.unwrap().samples
}

#[tokio::test]
async fn a_day_comes_out_the_same_whether_fetched_alone_or_in_a_range() {
    let src = SyntheticSource::study(day(1), 5);
    let p = participant(chrono_tz::Europe::Berlin);
    let alone = fetch(&src, &p, Metric::HeartRate, day(3)).await;
    let range = src
        .fetch(&p, Metric::HeartRate, day(2), day(4))
        .await
        .unwrap()
        .samples;
    assert!(!alone.is_empty());
    let start = local_day_start(day(3), p.timezone);
    let end = local_day_start(day(4), p.timezone);
    let from_range: Vec<_> = range
        .into_iter()
        .filter(|s| s.timestamp >= start && s.timestamp < end)
        .collect();
    assert_eq!(alone, from_range);
}

#[tokio::test]
async fn heart_rate_is_physiological_sparse_and_faster_in_activity_bouts() {
    let src = SyntheticSource::study(day(1), 3);
    let p = participant(chrono_tz::UTC);
    let hr = fetch(&src, &p, Metric::HeartRate, day(2)).await;
    assert!(
        hr.iter()
            .all(|s| (35.0..=220.0).contains(&s.value_numeric.unwrap()))
    );
    let gaps: Vec<i64> = hr
        .windows(2)
        .map(|w| (w[1].timestamp - w[0].timestamp).num_seconds())
        .collect();
    assert!(gaps.iter().all(|g| *g >= 5), "never denser than every 5 s");
    assert!(
        gaps.iter().any(|g| *g <= 15),
        "second-level detail somewhere"
    );
    let night: Vec<f64> = hr
        .iter()
        .filter(|s| s.timestamp.hour() < 4)
        .map(|s| s.value_numeric.unwrap())
        .collect();
    let max = hr
        .iter()
        .map(|s| s.value_numeric.unwrap())
        .fold(0.0, f64::max);
    let night_avg = night.iter().sum::<f64>() / night.len() as f64;
    assert!(
        max > night_avg + 30.0,
        "bouts raise the heart rate well above the night's"
    );
}

#[tokio::test]
async fn calories_and_distance_follow_the_steps_of_the_same_minute() {
    let src = SyntheticSource::study(day(1), 3);
    let p = participant(chrono_tz::Asia::Tokyo);
    let steps = fetch(&src, &p, Metric::Steps, day(2)).await;
    let distance = fetch(&src, &p, Metric::Distance, day(2)).await;
    let calories = fetch(&src, &p, Metric::Calories, day(2)).await;
    assert_eq!(steps.len(), distance.len());
    for (s, d) in steps.iter().zip(&distance) {
        assert_eq!(s.timestamp, d.timestamp);
        let stride = d.value_numeric.unwrap() / s.value_numeric.unwrap();
        assert!((0.55..0.9).contains(&stride), "stride {stride}");
    }
    let kcal = |t| {
        calories
            .iter()
            .find(|c| c.timestamp == t)
            .and_then(|c| c.value_numeric)
    };
    let busiest = steps
        .iter()
        .max_by(|a, b| a.value_numeric.partial_cmp(&b.value_numeric).unwrap())
        .unwrap();
    let resting = calories
        .iter()
        .map(|c| c.value_numeric.unwrap())
        .fold(f64::MAX, f64::min);
    assert!(kcal(busiest.timestamp).unwrap() > resting * 2.0);
}

#[tokio::test]
async fn sleep_is_thirty_second_stages_between_bedtime_and_waking() {
    let src = SyntheticSource::study(day(1), 5);
    let p = participant(chrono_tz::America::New_York);
    let mut found = false;
    for d in 1..=5 {
        let stages = fetch(&src, &p, Metric::SleepStage, day(d)).await;
        if stages.is_empty() {
            continue;
        }
        found = true;
        let hours =
            (stages.last().unwrap().timestamp - stages[0].timestamp).num_minutes() as f64 / 60.0;
        assert!((5.5..11.0).contains(&hours), "{hours} h of sleep");
        assert!(
            stages
                .windows(2)
                .all(|w| w[1].timestamp - w[0].timestamp == Duration::seconds(30))
        );
        let labels: std::collections::BTreeSet<_> = stages
            .iter()
            .filter_map(|s| s.value_text.as_deref())
            .collect();
        assert!(labels.is_superset(&["deep", "light", "rem", "wake"].into()));
    }
    assert!(found);
}

#[tokio::test]
async fn nothing_after_the_last_sync_or_the_end_of_the_study_is_delivered() {
    let src = SyntheticSource::study(day(1), 2);
    for n in 1..=20 {
        let mut p = participant(chrono_tz::UTC);
        p.id = ParticipantId::parse(&format!("SYN{n:04}")).unwrap();
        let sync = src.last_sync(&p).await.unwrap().unwrap();
        let hr = src
            .fetch(&p, Metric::HeartRate, day(1), day(5))
            .await
            .unwrap()
            .samples;
        assert!(hr.iter().all(|s| s.timestamp <= sync));
        assert!(
            hr.iter()
                .all(|s| s.timestamp < local_day_start(day(3), p.timezone))
        );
    }
}

#[tokio::test]
async fn a_daylight_saving_day_has_twenty_three_hours_of_minutes() {
    let p = participant(chrono_tz::Europe::London);
    let spring = NaiveDate::from_ymd_opt(2025, 3, 30).unwrap();
    let src = SyntheticSource::study(spring, 1);
    let calories = fetch(&src, &p, Metric::Calories, spring).await;
    let start = local_day_start(spring, p.timezone);
    assert!(
        calories
            .iter()
            .all(|c| c.timestamp < start + Duration::hours(23))
    );
}

#[tokio::test]
async fn a_participant_without_a_seed_is_not_enrolled() {
    let mut p = participant(chrono_tz::UTC);
    p.provider_user_id = None;
    let err = SyntheticSource::live().last_sync(&p).await.unwrap_err();
    assert!(matches!(err, SourceError::NotEnrolled { .. }));
}
