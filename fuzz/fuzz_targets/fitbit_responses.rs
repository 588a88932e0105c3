//! Any bytes as a Fitbit Web API response body, through every parser the Fitbit source uses:
//! none may panic, whatever the JSON holds (an error is the right answer to a bad body).
#![no_main]

use chrono::NaiveDate;
use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wearhouse_core::{Metric, ParticipantId};
use wearhouse_ingest::sources::fitbit::parse;

const INTRADAY: [(Metric, &str, f64); 6] = [
    (Metric::HeartRate, "heart", 1.0),
    (Metric::Steps, "steps", 1.0),
    (Metric::Calories, "calories", 1.0),
    (Metric::Distance, "distance", 1000.0),
    (Metric::Floors, "floors", 1.0),
    (Metric::ActiveZoneMinutes, "active-zone-minutes", 1.0),
];

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let p = ParticipantId::parse("fuzz").unwrap();
    let day = NaiveDate::from_ymd_opt(2025, 3, 30).unwrap();
    // A zone with a daylight-saving change on that day, and one far from UTC.
    for tz in [Tz::Europe__London, Tz::Pacific__Kiritimati] {
        for (metric, resource, scale) in INTRADAY {
            let _ = parse::intraday(&p, metric, &body, resource, day, scale);
        }
        let _ = parse::resting_heart_rate(&p, tz, &body);
        let _ = parse::sleep(&p, tz, &body);
        let _ = parse::spo2(&p, tz, &body);
        let _ = parse::hrv(&p, tz, &body);
        let _ = parse::breathing_rate(&p, tz, &body);
        let _ = parse::skin_temperature(&p, tz, &body);
        let _ = parse::last_sync(tz, &body);
    }
});
