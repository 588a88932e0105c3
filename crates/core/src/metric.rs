//! The metric catalogue: every `data_type` wearhouse stores, with its unit, native sampling
//! interval, kind and default gap-filling strategy. Adding a metric means adding a variant here
//! and teaching a source to produce it; the schema does not change.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How a metric's values behave, which decides how they aggregate and how gaps are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A physiological signal sampled over time (heart rate, SpO2): average it.
    Continuous,
    /// An amount per interval (steps per minute): sum it.
    Count,
    /// A label per interval (sleep stage): `value_text` holds the label, `value_numeric` a code.
    Categorical,
    /// One value per night or day (resting heart rate).
    Daily,
}

/// How gaps in a metric are filled by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImputationStrategy {
    /// ARIMA fitted by exact maximum likelihood, gaps filled by the Kalman smoother.
    Arima,
    /// Forward fill, then back fill, limited to short gaps.
    ForwardBackFill,
    /// Straight line between the neighbouring observations, limited to short gaps.
    Linear,
    /// Never filled.
    None,
}

/// A metric in the catalogue. The wire and database name is [`Metric::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    HeartRate,
    Steps,
    Calories,
    Distance,
    Floors,
    ActiveZoneMinutes,
    SleepStage,
    Spo2,
    HrvRmssd,
    BreathingRate,
    SkinTempDelta,
    RestingHeartRate,
}

/// Catalogue entry for a metric.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MetricInfo {
    /// The `data_type` stored in the database.
    pub name: &'static str,
    /// Unit of `value_numeric`.
    pub unit: &'static str,
    /// The finest interval a device reports, in seconds.
    pub native_interval_secs: i64,
    pub kind: MetricKind,
    pub imputation: ImputationStrategy,
    /// Values outside these bounds are not physiological; imputed values are clipped to them.
    pub min_value: f64,
    pub max_value: f64,
    /// What the metric is, for people.
    pub description: &'static str,
}

const fn info(
    name: &'static str,
    unit: &'static str,
    native_interval_secs: i64,
    kind: MetricKind,
    imputation: ImputationStrategy,
    (min_value, max_value): (f64, f64),
    description: &'static str,
) -> MetricInfo {
    MetricInfo {
        name,
        unit,
        native_interval_secs,
        kind,
        imputation,
        min_value,
        max_value,
        description,
    }
}

use ImputationStrategy as I;
use MetricKind as K;

impl Metric {
    /// Every metric, in catalogue order.
    pub const ALL: [Metric; 12] = [
        Metric::HeartRate,
        Metric::Steps,
        Metric::Calories,
        Metric::Distance,
        Metric::Floors,
        Metric::ActiveZoneMinutes,
        Metric::SleepStage,
        Metric::Spo2,
        Metric::HrvRmssd,
        Metric::BreathingRate,
        Metric::SkinTempDelta,
        Metric::RestingHeartRate,
    ];

    /// The catalogue entry.
    pub const fn info(self) -> MetricInfo {
        match self {
            Metric::HeartRate => info(
                "heart_rate",
                "bpm",
                1,
                K::Continuous,
                I::Arima,
                (25.0, 250.0),
                "heart rate; sparse second-level samples during the day",
            ),
            Metric::Steps => info(
                "steps",
                "steps",
                60,
                K::Count,
                I::ForwardBackFill,
                (0.0, 300.0),
                "steps per minute",
            ),
            Metric::Calories => info(
                "calories",
                "kcal",
                60,
                K::Count,
                I::ForwardBackFill,
                (0.0, 50.0),
                "energy expenditure per minute",
            ),
            Metric::Distance => info(
                "distance",
                "m",
                60,
                K::Count,
                I::ForwardBackFill,
                (0.0, 500.0),
                "distance per minute",
            ),
            Metric::Floors => info(
                "floors",
                "floors",
                60,
                K::Count,
                I::None,
                (0.0, 30.0),
                "floors climbed per minute",
            ),
            Metric::ActiveZoneMinutes => info(
                "active_zone_minutes",
                "min",
                60,
                K::Count,
                I::None,
                (0.0, 2.0),
                "active zone minutes earned per minute (cardio and peak count double)",
            ),
            Metric::SleepStage => info(
                "sleep_stage",
                "stage",
                30,
                K::Categorical,
                I::None,
                (0.0, 3.0),
                "sleep stage per 30 s: wake/light/deep/rem (stages) or awake/restless/asleep (classic)",
            ),
            Metric::Spo2 => info(
                "spo2",
                "%",
                60,
                K::Continuous,
                I::Linear,
                (50.0, 100.0),
                "blood oxygen saturation during sleep",
            ),
            Metric::HrvRmssd => info(
                "hrv_rmssd",
                "ms",
                300,
                K::Continuous,
                I::Linear,
                (1.0, 300.0),
                "heart rate variability (RMSSD) in 5-minute windows during sleep",
            ),
            Metric::BreathingRate => info(
                "breathing_rate",
                "breaths/min",
                86_400,
                K::Daily,
                I::None,
                (4.0, 40.0),
                "nightly breathing rate",
            ),
            Metric::SkinTempDelta => info(
                "skin_temp_delta",
                "°C",
                86_400,
                K::Daily,
                I::None,
                (-10.0, 10.0),
                "nightly skin temperature relative to the participant's baseline",
            ),
            Metric::RestingHeartRate => info(
                "resting_heart_rate",
                "bpm",
                86_400,
                K::Daily,
                I::None,
                (25.0, 150.0),
                "daily resting heart rate",
            ),
        }
    }

    /// The `data_type` name.
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// Parses a catalogue name; the error names `metric` and lists the valid names.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let s = raw.trim();
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
                Error::invalid(
                    "metric",
                    format!("unknown metric {s:?}; expected one of {}", names.join(", ")),
                )
            })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Metric::parse(s)
    }
}

/// Sleep stage labels and the numeric codes stored next to them in `value_numeric`.
pub mod sleep {
    /// Code for a stage or classic label; `None` for an unknown label.
    pub fn stage_code(label: &str) -> Option<f64> {
        Some(match label {
            "wake" | "awake" => 0.0,
            "light" | "restless" => 1.0,
            "deep" | "asleep" => 2.0,
            "rem" => 3.0,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_parses_back_from_its_name() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()).unwrap(), m);
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
            assert!(m.info().min_value < m.info().max_value);
        }
    }

    #[test]
    fn an_unknown_metric_is_rejected_with_the_valid_names() {
        let e = Metric::parse("heartrate").unwrap_err();
        assert_eq!(e.parameter(), Some("metric"));
        assert!(e.to_string().contains("heart_rate"));
    }
}
