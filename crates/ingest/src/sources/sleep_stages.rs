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

/// The longest segment of a night: a night is shorter than a day, and each segment becomes one
/// sample per 30 s, so a longer segment is a malformed answer, not sleep.
pub const MAX_SEGMENT_SECONDS: i64 = 86_400;

/// `Err` says why a segment of `seconds` cannot be a stretch of one night.
pub fn check_length(seconds: i64) -> Result<(), String> {
    if (0..=MAX_SEGMENT_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(format!(
            "a sleep segment of {seconds} seconds; segments are at most a day"
        ))
    }
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
                // At the end of the calendar's range there are no more slots to fill.
                let Some(t) = seg.start.checked_add_signed(Duration::seconds(30 * k)) else {
                    break;
                };
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

    #[test]
    fn a_segment_longer_than_a_day_is_refused_and_the_calendars_end_is_not_passed() {
        assert!(check_length(86_400).is_ok());
        assert!(check_length(86_401).unwrap_err().contains("86401 seconds"));
        assert!(check_length(-30).is_err());
        let p = ParticipantId::parse("P1").unwrap();
        let end = Segment {
            start: DateTime::<Utc>::MAX_UTC - Duration::seconds(45),
            seconds: 3_600,
            label: "light".into(),
        };
        assert_eq!(samples(&p, &[end], &[]).len(), 2);
    }
}
