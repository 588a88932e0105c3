//! Bringing TimescaleDB's continuous aggregates up to date after a load: the refresh windows,
//! one at a time or several side by side, with retries of catalogue collisions and progress
//! reports. Refreshing is not writing: the writer leaves the aggregates to this module, and
//! where the rollups are tables (the writer keeps them current) every call here is a no-op.

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use sqlx::{ConnectOptions, PgConnection, PgPool};

use crate::error::{Error, Result};
use crate::store::Backend;
use crate::store::writer::floor_to;
use crate::time::TimeRange;

/// How often a long refresh reports its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The continuous aggregates, finest first (each coarser one is built from the one before):
/// bucket width and the longest window one refresh call materialises, in seconds. A day of
/// 1-minute buckets is a few hundred thousand rows at 1,000 participants, so a refresh's sort
/// and memory stay bounded and a day's windows can be refreshed side by side; daily buckets
/// are few, and each call has a fixed cost, so they go a month at a time.
const AGGREGATES: [(&str, i64, i64); 3] = [
    ("data_1m", 60, 86_400),
    ("data_1h", 3_600, 86_400),
    ("data_1d", 86_400, 30 * 86_400),
];

/// Brings TimescaleDB's continuous aggregates up to date for `range`, finest first, one
/// window after the other. Call it after a load into an older range than the refresh policies
/// cover; a no-op where the rollups are tables (the writer already kept them current).
pub async fn refresh_rollups(
    conn: &mut PgConnection,
    backend: &Backend,
    range: TimeRange,
) -> Result<()> {
    if backend.rollups_are_tables {
        return Ok(());
    }
    let mode = RefreshMode::detect(conn).await?;
    for (view, width, window) in AGGREGATES {
        for (start, end) in refresh_windows(&[range], width, window) {
            refresh_window(conn, view, start, end, mode.single_pass).await?;
        }
    }
    Ok(())
}

/// [`refresh_rollups`] for several ranges, with up to `parallel` windows of the same aggregate
/// refreshed at once on connections from `pool` (TimescaleDB refreshes disjoint windows of one
/// aggregate concurrently). Each aggregate is complete before the next coarser one starts.
///
/// `bulk`: the ranges hold a large load whose raw samples have fresh planner statistics
/// ([`crate::store::analyze_samples`]). Where the server can, the 1-minute buckets are then
/// compressed as they are materialised, about twice as fast as row by row; a small daily load
/// is better left row-stored for the compression policy to compress once it is complete.
pub async fn refresh_rollups_concurrently(
    pool: &PgPool,
    backend: &Backend,
    ranges: &[TimeRange],
    parallel: usize,
    bulk: bool,
) -> Result<()> {
    if backend.rollups_are_tables || ranges.is_empty() {
        return Ok(());
    }
    let mode = RefreshMode::detect(&mut *pool.acquire().await?).await?;
    // Each window gets a connection of its own, like the pool's but for one thing: a window
    // that takes seconds is expected here, so sqlx's slow-statement warning (one per window,
    // hundreds in a backfill) waits for a minute and is information, not a warning.
    let mut options = pool
        .connect_options()
        .as_ref()
        .clone()
        .log_slow_statements(log::LevelFilter::Info, std::time::Duration::from_secs(60));
    if bulk && mode.can_compress {
        // TimescaleDB warns about every window whose estimate is too small to compress (it
        // then materialises that window row by row, as it would anyway): expected, so these
        // connections report only errors.
        options = options.options([
            ("timescaledb.enable_direct_compress_on_cagg_refresh", "on"),
            ("client_min_messages", "error"),
        ]);
    }
    let options = &options;
    for (view, width, window) in AGGREGATES {
        let windows = refresh_windows(ranges, width, window);
        let total = windows.len();
        let mut refreshes = futures::stream::iter(windows)
            .map(|(start, end)| async move {
                let mut conn = <PgConnection as sqlx::Connection>::connect_with(options).await?;
                // Windows of one aggregate refreshed side by side now and then collide in
                // TimescaleDB's catalogue ("tuple concurrently deleted"); a refresh is
                // idempotent, so that window simply goes again.
                let mut attempt = 1;
                loop {
                    match refresh_window(&mut conn, view, start, end, mode.single_pass).await {
                        Err(e) if attempt < 3 && is_catalogue_collision(&e) => {
                            tracing::debug!(aggregate = view, %start, attempt, "refresh collided; again");
                            tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                            attempt += 1;
                        }
                        done => break done?,
                    }
                }
                sqlx::Connection::close(conn).await?;
                Ok::<_, Error>(())
            })
            .buffer_unordered(parallel.max(1));
        // A backfill of a large cohort can take minutes here: say how far it is, every few
        // seconds.
        let (mut done, mut last_report) = (0, std::time::Instant::now());
        while let Some(refreshed) = refreshes.next().await {
            refreshed?;
            done += 1;
            if last_report.elapsed() >= PROGRESS_EVERY && done < total {
                tracing::info!(aggregate = view, windows = done, of = total, "refreshing");
                last_report = std::time::Instant::now();
            }
        }
    }
    Ok(())
}

/// The windows covering `ranges` for buckets of `width` seconds: each range widened to whole
/// buckets and cut at multiples of `window` seconds (a multiple of `width`), so windows of
/// different ranges never overlap when the ranges themselves are more than a bucket apart.
fn refresh_windows(
    ranges: &[TimeRange],
    width: i64,
    window: i64,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut windows = Vec::new();
    for range in ranges {
        let start = floor_to(range.start, width);
        let end = floor_to(range.end - chrono::Duration::microseconds(1), width)
            + chrono::Duration::seconds(width);
        let mut from = start;
        while from < end {
            let cut = floor_to(from, window) + chrono::Duration::seconds(window);
            let to = cut.min(end);
            windows.push((from, to));
            from = to;
        }
    }
    windows.sort();
    windows.dedup();
    windows
}

/// Whether `e` is PostgreSQL's report of two transactions changing one catalogue row, which
/// concurrent refreshes of one continuous aggregate occasionally meet.
fn is_catalogue_collision(e: &Error) -> bool {
    let Error::Database(sqlx::Error::Database(db)) = e else {
        return false;
    };
    db.code().as_deref() == Some("XX000") && db.message().starts_with("tuple concurrently")
}

/// What the server's `refresh_continuous_aggregate` can do beyond the basic call.
#[derive(Debug, Clone, Copy)]
struct RefreshMode {
    /// It takes an options argument (TimescaleDB 2.21 and later). Without
    /// `buckets_per_batch = 0` a manual refresh materialises ten buckets per transaction,
    /// several times slower for a day of 1-minute buckets.
    single_pass: bool,
    /// It can compress while it materialises into a compressed aggregate (the 1-minute one,
    /// see migration 20261122000032) when the session asks it to.
    can_compress: bool,
}

impl RefreshMode {
    async fn detect(conn: &mut PgConnection) -> Result<Self> {
        let (single_pass, can_compress): (bool, bool) = sqlx::query_as(
            "select coalesce((select bool_or(pronargs >= 5) from pg_proc
                              where proname = 'refresh_continuous_aggregate'), false),
                    current_setting('timescaledb.enable_direct_compress_on_cagg_refresh', true)
                      is not null",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(Self {
            single_pass,
            can_compress,
        })
    }
}

async fn refresh_window(
    conn: &mut PgConnection,
    view: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    single_pass: bool,
) -> Result<()> {
    let options = if single_pass {
        r#", options => '{"buckets_per_batch": 0}'"#
    } else {
        ""
    };
    // refresh_continuous_aggregate refuses to run inside a transaction block, so it goes
    // as a simple-protocol statement; the bounds are formatted by us, not user input.
    let sql = format!(
        "call refresh_continuous_aggregate('{view}', timestamptz '{}', timestamptz '{}'{options})",
        start.to_rfc3339(),
        end.to_rfc3339()
    );
    sqlx::raw_sql(&sql).execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn refresh_windows_cover_whole_buckets_cut_at_day_boundaries() {
        let range = TimeRange::new(at(86_400 + 90), at(3 * 86_400 + 30)).unwrap();
        let minutes = refresh_windows(&[range], 60, 86_400);
        assert_eq!(
            minutes,
            vec![
                (at(86_400 + 60), at(2 * 86_400)),
                (at(2 * 86_400), at(3 * 86_400)),
                (at(3 * 86_400), at(3 * 86_400 + 60)),
            ]
        );
        let days = refresh_windows(&[range, range], 86_400, 86_400);
        assert_eq!(
            days,
            vec![
                (at(86_400), at(2 * 86_400)),
                (at(2 * 86_400), at(3 * 86_400)),
                (at(3 * 86_400), at(4 * 86_400)),
            ]
        );
    }
}
