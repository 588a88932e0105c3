//! The main sleep of a night, generated once and served by both fakes: the Fitbit fake as a
//! v1.2 sleep log (`levels.data` and `shortData`), the Google Health fake as a `sleep` data
//! point (`stages` and `shortAwakenings`). A Google account moved from Fitbit draws its nights
//! from its Fitbit user id, so one night reads the same from either provider, as it does for
//! a real account whose history Google took over.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::localtime::to_utc;
use crate::rng::Rng;

/// A night's main sleep, its levels named as the Fitbit Web API names them.
pub(crate) struct Night {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// A classic log (`awake|restless|asleep`) rather than stages (`wake|light|deep|rem`).
    pub classic: bool,
    /// Consecutive segments: start, level, seconds.
    pub segments: Vec<(DateTime<Utc>, &'static str, i64)>,
    /// Short wakes of at most 3 minutes that overlap `segments` (stages nights only).
    pub short: Vec<(DateTime<Utc>, &'static str, i64)>,
}

/// The main sleep that ends on local date `d` of a user drawn from `seed`.
pub(crate) fn night(seed: &str, tz: Tz, d: NaiveDate) -> Night {
    let mut r = Rng::new(seed, "sleep", i64::from(d.num_days_from_ce()));
    let local = (d - Days::new(1)).and_hms_opt(22, 30, 0).expect("22:30")
        + Duration::seconds(60 * r.below(90) + 30 * r.below(2));
    let start = to_utc(tz, local);
    let classic = r.below(4) == 0;
    let mut segments = Vec::new();
    let mut short = Vec::new();
    let mut t = start;
    let push = |segments: &mut Vec<_>, t: &mut DateTime<Utc>, level: &'static str, secs: i64| {
        segments.push((*t, level, secs));
        *t += Duration::seconds(secs);
    };
    push(
        &mut segments,
        &mut t,
        if classic { "awake" } else { "wake" },
        30 * (4 + r.below(8)),
    );
    let cycle: [&str; 4] = if classic {
        ["asleep", "restless", "asleep", "asleep"]
    } else {
        ["light", "deep", "light", "rem"]
    };
    let mut i = 0;
    while t - start < Duration::hours(7) {
        let level = cycle[i % 4];
        let secs = 30 * (20 + r.below(60));
        if level == "light" && !classic && short.len() < 3 {
            short.push((t + Duration::seconds(300), "wake", 30 * (1 + r.below(6))));
        }
        push(&mut segments, &mut t, level, secs);
        i += 1;
    }
    push(
        &mut segments,
        &mut t,
        if classic { "awake" } else { "wake" },
        180,
    );
    Night {
        start,
        end: t,
        classic,
        segments,
        short,
    }
}
