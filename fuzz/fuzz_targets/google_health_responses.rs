//! Any bytes as a Google Health API response, through every parser the Google Health source
//! uses: a list page of each data type, the daily calorie rollup, and an error answer with
//! any HTTP status. None may panic.
#![no_main]

use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wearhouse_core::ParticipantId;
use wearhouse_ingest::sources::google_health::api::ApiStatus;
use wearhouse_ingest::sources::google_health::{fetch, parse};

fuzz_target!(|data: &[u8]| {
    if let Some((&status, rest)) = data.split_first() {
        let _ = ApiStatus::parse(400 + u16::from(status % 200), rest);
    }
    let Ok(page) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let p = ParticipantId::parse("fuzz").unwrap();
    for tz in [Tz::UTC, Tz::America__St_Johns] {
        for metric in fetch::METRICS {
            if let Some(spec) = fetch::spec(metric) {
                let _ = parse::points(&p, tz, metric, spec.key, &page);
            }
        }
    }
    let _ = parse::calories(&p, &page);
});
