//! Open mHealth (the schemas IEEE 1752.1 grew from): data points of `header` and `body`, the
//! body in the schema the header's `schema_id` names. Samples have a `date_time` time frame in
//! the participant's local offset; values per local day and sleep episodes a `time_interval`.
//! docs/exports.md lists each metric's schema.

use serde_json::{Value, json};
use wearhouse_core::Metric;
use wearhouse_core::store::observations::DailyAggregate;

use super::{Item, Part, Subject, number};

/// What an Open mHealth export writes.
pub const PARTS: &[Part] = &[
    Part::Samples(Metric::HeartRate),
    Part::Samples(Metric::Spo2),
    Part::Daily(Metric::Steps, DailyAggregate::Sum),
    Part::Daily(Metric::Distance, DailyAggregate::Sum),
    Part::Daily(Metric::RestingHeartRate, DailyAggregate::Mean),
    Part::Daily(Metric::BreathingRate, DailyAggregate::Mean),
    Part::Sleep,
];

/// The activity name of a day's movement in `physical-activity`: the day's distance counts
/// every movement the device saw, not one kind of exercise.
pub const DAILY_ACTIVITY: &str = "daily movement";

/// The data point for `item`; `None` for what Open mHealth does not export.
pub fn data_point(s: &Subject, created: &str, item: Item<'_>) -> Option<Value> {
    let interval = |start, end| json!({"time_interval": {"start_date_time": s.local(start), "end_date_time": s.local(end)}});
    let (schema, version, body) = match item {
        Item::Sample(Metric::HeartRate, row) => (
            "heart-rate",
            "2.0",
            json!({
                "heart_rate": {"value": number(row.value), "unit": "beats/min"},
                "effective_time_frame": {"date_time": s.local(&row.timestamp)},
            }),
        ),
        Item::Sample(Metric::Spo2, row) => (
            "oxygen-saturation",
            "2.0",
            json!({
                "oxygen_saturation": {"value": number(row.value), "unit": "%"},
                "effective_time_frame": {"date_time": s.local(&row.timestamp)},
                "system": "peripheral capillary",
                "measurement_method": "pulse oximetry",
            }),
        ),
        Item::Daily(Metric::Steps, row) => (
            "step-count",
            "3.0",
            json!({
                "step_count": {"value": number(row.value), "unit": "steps"},
                "effective_time_frame": interval(&row.day_start, &row.day_end),
            }),
        ),
        Item::Daily(Metric::Distance, row) => (
            "physical-activity",
            "1.2",
            json!({
                "activity_name": DAILY_ACTIVITY,
                "effective_time_frame": interval(&row.day_start, &row.day_end),
                "distance": {"value": number(row.value), "unit": "m"},
            }),
        ),
        Item::Daily(Metric::RestingHeartRate, row) => (
            "heart-rate",
            "2.0",
            json!({
                "heart_rate": {"value": number(row.value), "unit": "beats/min"},
                "effective_time_frame": interval(&row.day_start, &row.day_end),
                "temporal_relationship_to_physical_activity": "at rest",
            }),
        ),
        Item::Daily(Metric::BreathingRate, row) => (
            "respiratory-rate",
            "2.0",
            json!({
                "respiratory_rate": {"value": number(row.value), "unit": "breaths/min"},
                "effective_time_frame": interval(&row.day_start, &row.day_end),
                "descriptive_statistic": "average",
            }),
        ),
        Item::Sleep(e) => {
            let span = (e.ended - e.started).num_seconds().max(1) as f64;
            (
                "sleep-episode",
                "1.1",
                json!({
                    "effective_time_frame": interval(&e.started, &e.ended),
                    "total_sleep_time": {"value": number(e.asleep_secs as f64 / 60.0), "unit": "min"},
                    "is_main_sleep": e.is_main,
                    "sleep_maintenance_efficiency_percentage": {
                        "value": number((e.asleep_secs as f64 / span * 1000.0).round() / 10.0),
                        "unit": "%",
                    },
                }),
            )
        }
        _ => return None,
    };
    Some(json!({
        "header": {
            "id": uuid::Uuid::new_v4().to_string(),
            "creation_date_time": created,
            "schema_id": {"namespace": "omh", "name": schema, "version": version},
            "acquisition_provenance": {"source_name": s.source(), "modality": "sensed"},
            "user_id": s.participant_id.as_str(),
        },
        "body": body,
    }))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use chrono_tz::Tz;
    use wearhouse_core::ParticipantId;
    use wearhouse_core::store::observations::{DailyRow, LocalDays, SampleRow, SleepEpisode};

    use super::*;

    fn subject() -> Subject {
        let tz: Tz = "America/New_York".parse().unwrap();
        Subject {
            participant_id: ParticipantId::parse("P002").unwrap(),
            provider: None,
            days: LocalDays::new(
                "2025-06-01".parse().unwrap(),
                "2025-06-02".parse().unwrap(),
                tz,
            )
            .unwrap(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_sample_is_a_data_point_at_its_local_time() {
        let row = SampleRow {
            timestamp: t("2025-06-01T12:00:00Z"),
            value: 97.0,
        };
        let p = data_point(&subject(), "now", Item::Sample(Metric::Spo2, &row)).unwrap();
        assert_eq!(p["header"]["schema_id"]["name"], "oxygen-saturation");
        assert_eq!(p["header"]["user_id"], "P002");
        assert_eq!(
            p["body"]["effective_time_frame"]["date_time"],
            "2025-06-01T08:00:00-04:00"
        );
        assert_eq!(p["body"]["oxygen_saturation"]["value"], 97);
    }

    #[test]
    fn steps_per_day_and_sleep_have_intervals() {
        let row = DailyRow {
            day: "2025-06-01".parse().unwrap(),
            day_start: t("2025-06-01T04:00:00Z"),
            day_end: t("2025-06-02T04:00:00Z"),
            value: 4321.0,
        };
        let p = data_point(&subject(), "now", Item::Daily(Metric::Steps, &row)).unwrap();
        assert_eq!(p["header"]["schema_id"]["version"], "3.0");
        assert_eq!(
            p["body"]["effective_time_frame"]["time_interval"]["end_date_time"],
            "2025-06-02T00:00:00-04:00"
        );
        let e = SleepEpisode {
            started: t("2025-06-01T03:00:00Z"),
            ended: t("2025-06-01T11:00:00Z"),
            asleep_secs: 7 * 3600,
            awake_secs: 3600,
            is_main: true,
        };
        let p = data_point(&subject(), "now", Item::Sleep(&e)).unwrap();
        assert_eq!(p["body"]["total_sleep_time"]["value"], 420);
        assert_eq!(
            p["body"]["sleep_maintenance_efficiency_percentage"]["value"],
            87.5
        );
        assert_eq!(p["body"]["is_main_sleep"], true);
        assert!(data_point(&subject(), "now", Item::Daily(Metric::Floors, &row)).is_none());
    }
}
