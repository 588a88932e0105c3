//! FHIR R4: a `Bundle` of type `collection` whose entries are `Observation`s. Codes are LOINC,
//! units UCUM; vital signs (heart rate, oxygen saturation, respiratory rate) carry the
//! vital-signs category and the profile of the R4 vital-signs family they meet. Samples have
//! `effectiveDateTime` in the participant's local offset; values per local day and sleep
//! episodes have `effectivePeriod`. The subject is the pseudonymous participant id as an
//! identifier (no Patient resource holds anything else about them). A field no LOINC code
//! fits (distance, floors, active zone minutes, HRV as RMSSD, skin temperature deviation) is
//! left out; docs/exports.md lists each code with its source.

use serde_json::{Value, json};
use wearhouse_core::Metric;
use wearhouse_core::store::observations::DailyAggregate;

use super::{Item, Part, Subject, number};

/// What a FHIR export writes.
pub const PARTS: &[Part] = &[
    Part::Samples(Metric::HeartRate),
    Part::Samples(Metric::Spo2),
    Part::Daily(Metric::Steps, DailyAggregate::Sum),
    Part::Daily(Metric::RestingHeartRate, DailyAggregate::Mean),
    Part::Daily(Metric::BreathingRate, DailyAggregate::Mean),
    Part::Sleep,
];

/// The identifier system of the pseudonymous participant ids.
pub const SUBJECT_SYSTEM: &str = "urn:wearhouse:participant";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// The Bundle up to its entries.
pub fn begin(buf: &mut Vec<u8>, created: &str) -> serde_json::Result<()> {
    buf.extend_from_slice(b"{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"timestamp\":");
    serde_json::to_writer(&mut *buf, created)
}

/// How one kind of observation is coded.
struct Coding {
    /// LOINC codes and displays, the one naming the observation first.
    codes: &'static [(&'static str, &'static str)],
    /// `vital-signs`, `activity`, or none.
    category: Option<(&'static str, &'static str)>,
    /// The R4 profile the observation meets, if any.
    profile: Option<&'static str>,
    /// UCUM code and the unit as people read it.
    ucum: &'static str,
    unit: &'static str,
}

const VITAL_SIGNS: Option<(&str, &str)> = Some(("vital-signs", "Vital Signs"));

const HEART_RATE: Coding = Coding {
    codes: &[("8867-4", "Heart rate")],
    category: VITAL_SIGNS,
    profile: Some("http://hl7.org/fhir/StructureDefinition/heartrate"),
    ucum: "/min",
    unit: "beats/minute",
};
const RESTING_HEART_RATE: Coding = Coding {
    codes: &[
        ("8867-4", "Heart rate"),
        ("40443-4", "Heart rate --resting"),
    ],
    category: VITAL_SIGNS,
    profile: Some("http://hl7.org/fhir/StructureDefinition/heartrate"),
    ucum: "/min",
    unit: "beats/minute",
};
const OXYGEN_SATURATION: Coding = Coding {
    codes: &[
        ("2708-6", "Oxygen saturation in Arterial blood"),
        (
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
        ),
    ],
    category: VITAL_SIGNS,
    profile: Some("http://hl7.org/fhir/StructureDefinition/oxygensat"),
    ucum: "%",
    unit: "%",
};
const RESPIRATORY_RATE: Coding = Coding {
    codes: &[("9279-1", "Respiratory rate")],
    category: VITAL_SIGNS,
    profile: Some("http://hl7.org/fhir/StructureDefinition/resprate"),
    ucum: "/min",
    unit: "breaths/minute",
};
const STEPS_PER_DAY: Coding = Coding {
    codes: &[("41950-7", "Number of steps in 24 hour Measured")],
    category: Some(("activity", "Activity")),
    profile: None,
    ucum: "/(24.h)",
    unit: "steps/day",
};
const SLEEP_DURATION: Coding = Coding {
    codes: &[("93832-4", "Sleep duration")],
    category: None,
    profile: None,
    ucum: "min",
    unit: "min",
};

/// The Bundle entry for `item`; `None` for what FHIR does not export.
pub fn entry(s: &Subject, item: Item<'_>) -> Option<Value> {
    let (coding, effective, value) = match item {
        Item::Sample(metric, row) => {
            let coding = match metric {
                Metric::HeartRate => HEART_RATE,
                Metric::Spo2 => OXYGEN_SATURATION,
                _ => return None,
            };
            let at = json!({"effectiveDateTime": s.local(&row.timestamp)});
            (coding, at, row.value)
        }
        Item::Daily(metric, row) => {
            let coding = match metric {
                Metric::Steps => STEPS_PER_DAY,
                Metric::RestingHeartRate => RESTING_HEART_RATE,
                Metric::BreathingRate => RESPIRATORY_RATE,
                _ => return None,
            };
            let period = json!({"effectivePeriod": {
                "start": s.local(&row.day_start),
                "end": s.local(&row.day_end),
            }});
            (coding, period, row.value)
        }
        Item::Sleep(e) => {
            let period = json!({"effectivePeriod": {
                "start": s.local(&e.started),
                "end": s.local(&e.ended),
            }});
            (SLEEP_DURATION, period, e.asleep_secs as f64 / 60.0)
        }
    };
    let mut resource = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": coding.codes.iter()
                .map(|(code, display)| json!({"system": LOINC, "code": code, "display": display}))
                .collect::<Vec<_>>(),
            "text": coding.codes[0].1,
        },
        "subject": {
            "type": "Patient",
            "identifier": {"system": SUBJECT_SYSTEM, "value": s.participant_id.as_str()},
        },
        "device": {"display": s.source()},
        "valueQuantity": {
            "value": number(value),
            "unit": coding.unit,
            "system": UCUM,
            "code": coding.ucum,
        },
    });
    let fields = resource.as_object_mut().expect("an object");
    if let Some(profile) = coding.profile {
        fields.insert("meta".into(), json!({"profile": [profile]}));
    }
    if let Some((code, display)) = coding.category {
        fields.insert(
            "category".into(),
            json!([{"coding": [{"system": CATEGORY, "code": code, "display": display}]}]),
        );
    }
    if let Value::Object(effective) = effective {
        fields.extend(effective);
    }
    Some(json!({
        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "resource": resource,
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
        let tz: Tz = "Europe/London".parse().unwrap();
        Subject {
            participant_id: ParticipantId::parse("P001").unwrap(),
            provider: Some("fitbit".into()),
            days: LocalDays::new(
                "2025-03-30".parse().unwrap(),
                "2025-03-31".parse().unwrap(),
                tz,
            )
            .unwrap(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_heart_rate_sample_is_a_vital_sign_at_its_local_time() {
        let row = SampleRow {
            timestamp: t("2025-03-30T12:00:00Z"),
            value: 61.5,
        };
        let e = entry(&subject(), Item::Sample(Metric::HeartRate, &row)).unwrap();
        let r = &e["resource"];
        assert_eq!(r["code"]["coding"][0]["code"], "8867-4");
        assert_eq!(r["category"][0]["coding"][0]["code"], "vital-signs");
        assert_eq!(r["effectiveDateTime"], "2025-03-30T13:00:00+01:00");
        assert_eq!(r["valueQuantity"]["code"], "/min");
        assert_eq!(r["valueQuantity"]["value"], 61.5);
        assert_eq!(r["subject"]["identifier"]["value"], "P001");
        assert_eq!(r["device"]["display"], "fitbit");
        assert!(e["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
    }

    #[test]
    fn a_day_of_steps_has_a_period_between_local_midnights() {
        let row = DailyRow {
            day: "2025-03-30".parse().unwrap(),
            day_start: t("2025-03-30T00:00:00Z"),
            day_end: t("2025-03-30T23:00:00Z"),
            value: 8000.0,
        };
        let e = entry(&subject(), Item::Daily(Metric::Steps, &row)).unwrap();
        let r = &e["resource"];
        assert_eq!(r["code"]["coding"][0]["code"], "41950-7");
        assert_eq!(r["category"][0]["coding"][0]["code"], "activity");
        assert_eq!(r["effectivePeriod"]["start"], "2025-03-30T00:00:00+00:00");
        assert_eq!(r["effectivePeriod"]["end"], "2025-03-31T00:00:00+01:00");
        assert_eq!(r["valueQuantity"]["value"].to_string(), "8000");
        assert!(r.get("effectiveDateTime").is_none());
    }

    #[test]
    fn sleep_is_its_duration_in_minutes_and_metrics_without_a_code_are_left_out() {
        let e = SleepEpisode {
            started: t("2025-03-29T23:00:00Z"),
            ended: t("2025-03-30T06:00:00Z"),
            asleep_secs: 6 * 3600 + 30,
            awake_secs: 3570,
            is_main: true,
        };
        let out = entry(&subject(), Item::Sleep(&e)).unwrap();
        assert_eq!(out["resource"]["code"]["coding"][0]["code"], "93832-4");
        assert_eq!(out["resource"]["valueQuantity"]["value"], 360.5);
        assert!(out["resource"].get("category").is_none());
        let row = DailyRow {
            day: "2025-03-30".parse().unwrap(),
            day_start: t("2025-03-30T00:00:00Z"),
            day_end: t("2025-03-30T23:00:00Z"),
            value: 1200.0,
        };
        assert!(entry(&subject(), Item::Daily(Metric::Distance, &row)).is_none());
    }
}
