//! A single measurement as stored in `raw_data`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metric::Metric;
use crate::participant::ParticipantId;

/// One value of one metric for one participant at one instant. The key is
/// `(participant_id, metric, timestamp)`; writing a sample with an existing key replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub participant_id: ParticipantId,
    pub metric: Metric,
    pub timestamp: DateTime<Utc>,
    pub value_numeric: Option<f64>,
    pub value_text: Option<String>,
}

impl Sample {
    /// A numeric sample.
    pub fn numeric(
        participant_id: ParticipantId,
        metric: Metric,
        timestamp: DateTime<Utc>,
        value: f64,
    ) -> Self {
        Sample {
            participant_id,
            metric,
            timestamp,
            value_numeric: Some(value),
            value_text: None,
        }
    }

    /// A sleep-stage sample: the label in `value_text`, its code in `value_numeric`.
    pub fn sleep_stage(
        participant_id: ParticipantId,
        timestamp: DateTime<Utc>,
        label: &str,
    ) -> Self {
        Sample {
            participant_id,
            metric: Metric::SleepStage,
            timestamp,
            value_numeric: crate::metric::sleep::stage_code(label),
            value_text: Some(label.to_owned()),
        }
    }
}
