//! Sleep stages as `sleep_stage` samples, the same from every provider: one sample every 30 s
//! from the start of each stage segment, and the short wakes a provider reports separately
//! (Fitbit's `shortData`, Google Health's `shortAwakenings`) applied over them. One night
//! served by either provider therefore stores the same rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use wearhouse_core::{ParticipantId, Sample};

/// One stretch of a night in one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start: DateTime<Utc>,
    /// Length in seconds (a partial 30-second slot at the end still counts as one).
    pub seconds: i64,
    /// Stored label, e.g. `light`, `wake`.
    pub label: String,
}

/// Expands `stages` into 30-second slots (where two stages claim one slot the first keeps it)
/// and writes every slot of `short_wakes` over them.
pub fn samples(
    participant: &ParticipantId,
    stages: &[Segment],
    short_wakes: &[Segment],
) -> Vec<Sample> {
    let mut slots: BTreeMap<DateTime<Utc>, &str> = BTreeMap::new();
    for (list, overlay) in [(stages, false), (short_wakes, true)] {
        for seg in list {
            let n = (seg.seconds.max(0) + 29) / 30;
            for k in 0..n {
                let t = seg.start + Duration::seconds(30 * k);
                if overlay || !slots.contains_key(&t) {
                    slots.insert(t, &seg.label);
                }
            }
        }
    }
    slots
        .into_iter()
        .map(|(t, label)| Sample::sleep_stage(participant.clone(), t, label))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: &str, seconds: i64, label: &str) -> Segment {
        Segment {
            start: start.parse().unwrap(),
            seconds,
            label: label.into(),
        }
    }

    #[test]
    fn a_short_wake_replaces_the_slots_it_covers_and_nothing_else() {
        let p = ParticipantId::parse("P1").unwrap();
        let got = samples(
            &p,
            &[seg("2025-01-01T00:00:00Z", 150, "light")],
            &[seg("2025-01-01T00:01:00Z", 60, "wake")],
        );
        let labels: Vec<_> = got.iter().map(|s| s.value_text.clone().unwrap()).collect();
        assert_eq!(labels, ["light", "light", "wake", "wake", "light"]);
    }
}
