//! What a write changed: counts of inserted and updated rows and the span they cover.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::time::TimeRange;

/// What a write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteSummary {
    /// Rows whose key was new.
    pub inserted: u64,
    /// Rows whose key existed with a different value.
    pub updated: u64,
    /// Earliest and latest timestamp among changed rows (`None` when nothing changed).
    pub changed_from: Option<DateTime<Utc>>,
    pub changed_to: Option<DateTime<Utc>>,
}

impl WriteSummary {
    /// Adds another write's counts and span to this one.
    pub fn absorb(&mut self, other: WriteSummary) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.changed_from = min_opt(self.changed_from, other.changed_from);
        self.changed_to = max_opt(self.changed_to, other.changed_to);
    }

    /// The half-open span of changed rows, for refreshing continuous aggregates.
    pub fn changed_range(&self) -> Option<TimeRange> {
        let (from, to) = (self.changed_from?, self.changed_to?);
        TimeRange::new(from, to + chrono::Duration::microseconds(1)).ok()
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
