//! What the exports in standard formats (FHIR R4, Open mHealth) read of one participant over
//! a range of their local days: samples as stored, values per local day computed between
//! local midnights in the participant's IANA zone (so a day of a clock change lasts 23 or 25
//! hours), and sleep episodes derived from the sleep-stage samples as the adherence summaries
//! derive them. Each reader streams from a server-side cursor, so memory stays flat whatever
//! the range; the formats themselves are the API's. The queries are checked at run time
//! (`query_as` with `FromRow`) and exercised against a real database by the API's export
//! tests.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use futures::{Stream, StreamExt as _};
use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::participant::ParticipantId;

/// How a metric's values make one value per local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyAggregate {
    /// Amounts per interval (steps): the day's total.
    Sum,
    /// One value per day as stored (resting heart rate, nightly breathing rate): their mean,
    /// which is the value itself when the day has one.
    Mean,
}

impl DailyAggregate {
    fn sql(self) -> &'static str {
        match self {
            DailyAggregate::Sum => "sum",
            DailyAggregate::Mean => "avg",
        }
    }
}

/// The local days `[first, last)` of a participant in their time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDays {
    pub first: NaiveDate,
    /// Excluded.
    pub last: NaiveDate,
    pub tz: Tz,
}

/// The most local days one export covers: ten years, far beyond any study, so that a typing
/// mistake in a year does not start a scan of centuries.
pub const MAX_DAYS: i64 = 3_660;

impl LocalDays {
    /// The days from `first` (included) to `last` (excluded); the error names `to` when the
    /// range is empty or reversed and when it spans more than [`MAX_DAYS`].
    pub fn new(first: NaiveDate, last: NaiveDate, tz: Tz) -> Result<Self> {
        if last <= first {
            return Err(Error::invalid(
                "to",
                format!("{last} is not after from ({first}); to is the first day not exported"),
            ));
        }
        if (last - first).num_days() > MAX_DAYS {
            return Err(Error::invalid(
                "to",
                format!("the range spans more than {MAX_DAYS} days; export it in parts"),
            ));
        }
        Ok(LocalDays { first, last, tz })
    }

    /// The instant the local day `d` starts (the first valid local time of a day whose
    /// midnight a clock change skips).
    pub fn start_of(&self, d: NaiveDate) -> DateTime<Utc> {
        let mut t = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        loop {
            if let Some(start) = self.tz.from_local_datetime(&t).earliest() {
                return start.with_timezone(&Utc);
            }
            // Clock changes skip at most a few hours; try the next minute.
            t += chrono::Duration::minutes(1);
        }
    }

    /// The instants `[start of first, start of last)`.
    pub fn instants(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.start_of(self.first), self.start_of(self.last))
    }
}

/// One stored sample.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SampleRow {
    pub timestamp: DateTime<Utc>,
    pub value: f64,
}

/// One local day's value.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DailyRow {
    pub day: NaiveDate,
    /// Local midnight starting the day.
    pub day_start: DateTime<Utc>,
    /// Local midnight ending it (excluded).
    pub day_end: DateTime<Utc>,
    pub value: f64,
}

/// One sleep episode: a run of sleep-stage samples.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SleepEpisode {
    pub started: DateTime<Utc>,
    /// The end of the last sample's 30 seconds.
    pub ended: DateTime<Utc>,
    /// Seconds labelled as sleep (light, deep, rem; asleep, restless).
    pub asleep_secs: i64,
    /// Seconds labelled wake or awake within the episode.
    pub awake_secs: i64,
    /// Whether it is the main sleep of the local day it ends on.
    pub is_main: bool,
}

/// The numeric samples of `metric` in the days, in time order.
pub fn samples<'c>(
    conn: &'c mut PgConnection,
    id: &ParticipantId,
    metric: Metric,
    days: &LocalDays,
) -> impl Stream<Item = Result<SampleRow>> + Send + 'c {
    let (start, end) = days.instants();
    sqlx::query_as::<_, SampleRow>(
        "select timestamp, value_numeric as value from raw_data
         where participant_id = $1 and data_type = $2 and timestamp >= $3 and timestamp < $4
           and value_numeric is not null
         order by timestamp",
    )
    .bind(id.as_str().to_owned())
    .bind(metric.name())
    .bind(start)
    .bind(end)
    .fetch(conn)
    .map(|r| r.map_err(Error::from))
}

/// One value per local day of `metric` (days without samples are left out), in day order.
pub fn daily<'c>(
    conn: &'c mut PgConnection,
    id: &ParticipantId,
    metric: Metric,
    aggregate: DailyAggregate,
    days: &LocalDays,
) -> impl Stream<Item = Result<DailyRow>> + Send + 'c {
    sqlx::query_as::<_, DailyRow>(include_str!("observations/daily.sql"))
        .bind(id.as_str().to_owned())
        .bind(days.tz.name())
        .bind(days.first)
        .bind(days.last)
        .bind(metric.name())
        .bind(aggregate.sql())
        .fetch(conn)
        .map(|r| r.map_err(Error::from))
}

/// The sleep episodes that end in the days, in time order.
pub fn sleep_episodes<'c>(
    conn: &'c mut PgConnection,
    id: &ParticipantId,
    days: &LocalDays,
) -> impl Stream<Item = Result<SleepEpisode>> + Send + 'c {
    sqlx::query_as::<_, SleepEpisode>(include_str!("observations/sleep.sql"))
        .bind(id.as_str().to_owned())
        .bind(days.tz.name())
        .bind(days.first)
        .bind(days.last)
        .fetch(conn)
        .map(|r| r.map_err(Error::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn local_days_start_at_local_midnight_across_a_clock_change() {
        let tz: Tz = "Europe/London".parse().unwrap();
        let days = LocalDays::new(day("2025-03-30"), day("2025-03-31"), tz).unwrap();
        let (start, end) = days.instants();
        assert_eq!(
            start,
            "2025-03-30T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            end,
            "2025-03-30T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!((end - start).num_hours(), 23);
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_at_the_first_valid_local_time() {
        // Chile moved its clocks from 00:00 to 01:00 on 2024-09-08.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let days = LocalDays::new(day("2024-09-08"), day("2024-09-09"), tz).unwrap();
        let start = days.start_of(day("2024-09-08"));
        assert_eq!(
            start.with_timezone(&tz).to_rfc3339(),
            "2024-09-08T01:00:00-03:00"
        );
    }

    #[test]
    fn an_empty_or_reversed_or_huge_range_names_to() {
        let tz = Tz::UTC;
        for (a, b) in [
            ("2025-06-02", "2025-06-02"),
            ("2025-06-02", "2025-06-01"),
            ("2000-01-01", "2020-01-01"),
        ] {
            let e = LocalDays::new(day(a), day(b), tz).unwrap_err();
            assert_eq!(e.parameter(), Some("to"), "{a} {b}: {e}");
        }
    }
}
