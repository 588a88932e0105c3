//! The series reader: picks the resolution for a request (the finest whose point count over
//! the range fits the budget), reads one page of points for one or more participants, and
//! counts the whole result. Pages are ordered by (participant, time); keyset cursors make any
//! page O(page), and concatenated pages equal the unpaginated read.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::participant::ParticipantId;
use crate::resolution::Resolution;
use crate::time::TimeRange;

/// Default point budget.
pub const DEFAULT_MAX_POINTS: u32 = 2_000;
/// Largest point budget and page size a caller may ask for.
pub const MAX_POINTS_LIMIT: u32 = 20_000;

/// Which resolution a request is answered from, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routing {
    pub resolution: Resolution,
    /// Points the range holds at that resolution, at most (one series).
    pub estimated_points: i64,
    pub reason: String,
}

/// Upper bound of points one series has over `range` at `resolution` for `metric`.
pub fn estimate_points(metric: Metric, range: &TimeRange, resolution: Resolution) -> i64 {
    let step = resolution
        .bucket_secs()
        .unwrap_or(metric.info().native_interval_secs);
    let secs = range.seconds();
    // A range that starts mid-bucket touches one more bucket than its length suggests.
    (secs + step - 1) / step + i64::from(resolution != Resolution::Raw && secs % step != 0)
}

/// Validates a point budget; `None` means the default.
pub fn check_max_points(max_points: Option<u32>) -> Result<u32> {
    match max_points {
        None => Ok(DEFAULT_MAX_POINTS),
        Some(n) if (1..=MAX_POINTS_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(
            "max_points",
            format!("{n} is out of bounds; use 1 to {MAX_POINTS_LIMIT}"),
        )),
    }
}

/// Chooses the resolution: `forced` when given, else the finest whose point count fits.
pub fn route(
    metric: Metric,
    range: &TimeRange,
    max_points: u32,
    forced: Option<Resolution>,
) -> Routing {
    let describe = |r: Resolution| {
        let n = estimate_points(metric, range, r);
        match r {
            Resolution::Raw => format!(
                "raw ~{n} points at the {} s native interval",
                metric.info().native_interval_secs
            ),
            r => format!("{r} ~{n} points"),
        }
    };
    if let Some(r) = forced {
        return Routing {
            resolution: r,
            estimated_points: estimate_points(metric, range, r),
            reason: format!("requested by the caller: {}", describe(r)),
        };
    }
    let mut too_big = Vec::new();
    for r in Resolution::ALL {
        let n = estimate_points(metric, range, r);
        if n <= i64::from(max_points) {
            let reason = if too_big.is_empty() {
                format!(
                    "finest resolution fits the budget of {max_points}: {}",
                    describe(r)
                )
            } else {
                format!(
                    "{} exceed the budget of {max_points}; {}",
                    too_big.join(", "),
                    describe(r)
                )
            };
            return Routing {
                resolution: r,
                estimated_points: n,
                reason,
            };
        }
        too_big.push(describe(r));
    }
    Routing {
        resolution: Resolution::Day,
        estimated_points: estimate_points(metric, range, Resolution::Day),
        reason: format!(
            "even 1d exceeds the budget of {max_points}; answering from the coarsest rollup: {}",
            describe(Resolution::Day)
        ),
    }
}

/// Where a page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Rows per page; `None` reads to the end.
    pub limit: Option<u32>,
    /// Rows to skip (compatibility with limit/offset clients).
    pub offset: u64,
    /// Opaque keyset cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A series request.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    pub participants: Vec<ParticipantId>,
    pub metric: Metric,
    pub range: TimeRange,
    pub max_points: Option<u32>,
    pub resolution: Option<Resolution>,
    pub page: Page,
}

/// One point. Rollup points carry the bucket's average as `value`; raw points carry the
/// sample as `value` (and as min = max = sum, count 1) and the label as `text`.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct Point {
    #[serde(skip)]
    pub participant_id: String,
    #[serde(serialize_with = "crate::time::serialize_utc")]
    pub timestamp: DateTime<Utc>,
    pub value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub sum: Option<f64>,
    pub count: i64,
    pub text: Option<String>,
}

/// The points of one participant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub participant_id: ParticipantId,
    pub points: Vec<Point>,
}

/// One page of a series request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPage {
    pub routing: Routing,
    pub max_points: u32,
    /// Rows in the whole result, across participants and pages.
    pub total_count: i64,
    /// One entry per requested participant, in request order (empty `points` when a
    /// participant has no rows on this page).
    pub series: Vec<Series>,
    /// Cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A validated request, ready to run: the SQL pieces are fixed text, every value is bound.
#[derive(Debug, Clone)]
pub struct Plan {
    pub participants: Vec<ParticipantId>,
    pub metric: Metric,
    pub range: TimeRange,
    pub routing: Routing,
    pub max_points: u32,
    pub page: Page,
    after: Option<(String, DateTime<Utc>)>,
}

impl Plan {
    /// Validates `q` and routes it.
    pub fn new(q: SeriesQuery) -> Result<Self> {
        if q.participants.is_empty() {
            return Err(Error::invalid(
                "participant_id",
                "at least one participant is required",
            ));
        }
        let max_points = check_max_points(q.max_points)?;
        if let Some(limit) = q.page.limit
            && !(1..=MAX_POINTS_LIMIT).contains(&limit)
        {
            return Err(Error::invalid(
                "limit",
                format!("{limit} is out of bounds; use 1 to {MAX_POINTS_LIMIT}"),
            ));
        }
        let mut participants = q.participants;
        participants.sort();
        participants.dedup();
        let routing = route(q.metric, &q.range, max_points, q.resolution);
        let after = match &q.page.cursor {
            None => None,
            Some(_) if q.page.offset > 0 => {
                return Err(Error::invalid(
                    "cursor",
                    "use either cursor or offset, not both",
                ));
            }
            Some(c) => Some(decode_cursor(c, routing.resolution)?),
        };
        Ok(Plan {
            participants,
            metric: q.metric,
            range: q.range,
            routing,
            max_points,
            page: q.page,
            after,
        })
    }

    /// The SELECT for this plan's rows (page bounds included). Binds: $1 participants,
    /// $2 data_type, $3 start, $4 end, then $5/$6 cursor participant/time when paging by
    /// cursor. Exposed so the CSV export can stream the same rows.
    pub fn rows_sql(&self) -> String {
        let (rel, ts, cols) = match self.routing.resolution {
            Resolution::Raw => (
                "raw_data",
                "timestamp",
                "value_numeric as value, value_numeric as min, value_numeric as max, \
                 value_numeric as sum, (value_numeric is not null)::int::int8 as count, \
                 value_text as text",
            ),
            r => (
                r.relation(),
                "bucket",
                "avg_value_numeric as value, min_value_numeric as min, \
                 max_value_numeric as max, sum_value_numeric as sum, \
                 count_value_numeric::int8 as count, null::text as text",
            ),
        };
        let mut sql = format!(
            "select participant_id, {ts} as timestamp, {cols} from {rel} \
             where participant_id = any($1) and data_type = $2 and {ts} >= $3 and {ts} < $4"
        );
        if self.after.is_some() {
            sql.push_str(&format!(" and (participant_id, {ts}) > ($5, $6)"));
        }
        sql.push_str(&format!(" order by participant_id, {ts}"));
        if let Some(limit) = self.page.limit {
            // One extra row tells whether another page follows.
            sql.push_str(&format!(" limit {}", u64::from(limit) + 1));
        }
        if self.page.offset > 0 {
            sql.push_str(&format!(" offset {}", self.page.offset));
        }
        sql
    }

    /// Most rows the answer can hold without counting, when the relation bounds it: one row
    /// per bucket and participant in a rollup. Raw samples have no such bound (a provider may
    /// send them denser than the metric's native interval).
    pub fn row_bound(&self) -> Option<u64> {
        if self.routing.resolution == Resolution::Raw {
            return None;
        }
        let per_series = u64::try_from(self.routing.estimated_points).unwrap_or(0);
        Some(per_series.saturating_mul(self.participants.len() as u64))
    }

    /// The rows of the answer (after `offset` and the cursor, ignoring `limit`), counted only
    /// up to `cap + 1`: `Some(n)` when there are `n <= cap`, `None` when there are more. The
    /// count stops early, so it never costs more than reading `cap` index entries, and it
    /// costs nothing when [`Plan::row_bound`] already fits.
    pub async fn rows_within(&self, conn: &mut PgConnection, cap: u64) -> Result<Option<u64>> {
        if self.row_bound().is_some_and(|bound| bound <= cap) {
            return Ok(self.row_bound());
        }
        let ts = self.time_column();
        let mut inner = format!(
            "select 1 from {} where participant_id = any($1) and data_type = $2 \
             and {ts} >= $3 and {ts} < $4",
            self.routing.resolution.relation()
        );
        if self.after.is_some() {
            inner.push_str(&format!(" and (participant_id, {ts}) > ($5, $6)"));
        }
        let sql = format!(
            "select count(*) from ({inner} offset {} limit {}) counted",
            self.page.offset,
            cap.saturating_add(1)
        );
        let ids: Vec<&str> = self.participants.iter().map(|p| p.as_str()).collect();
        let q = sqlx::query_scalar::<_, i64>(&sql)
            .bind(ids)
            .bind(self.metric.name())
            .bind(self.range.start)
            .bind(self.range.end);
        let q = match &self.after {
            Some((p, t)) => q.bind(p.as_str()).bind(*t),
            None => q,
        };
        let n = u64::try_from(q.fetch_one(&mut *conn).await?).unwrap_or(0);
        Ok((n <= cap).then_some(n))
    }

    fn time_column(&self) -> &'static str {
        if self.routing.resolution == Resolution::Raw {
            "timestamp"
        } else {
            "bucket"
        }
    }

    fn count_sql(&self) -> String {
        let r = self.routing.resolution;
        let ts = self.time_column();
        format!(
            "select count(*) from {} where participant_id = any($1) and data_type = $2 \
             and {ts} >= $3 and {ts} < $4",
            r.relation()
        )
    }

    /// Binds this plan's values to a query built from [`Plan::rows_sql`].
    pub fn bind_rows<'q, O>(
        &'q self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        let ids: Vec<&str> = self.participants.iter().map(|p| p.as_str()).collect();
        let q = q
            .bind(ids)
            .bind(self.metric.name())
            .bind(self.range.start)
            .bind(self.range.end);
        match &self.after {
            Some((p, t)) => q.bind(p.as_str()).bind(*t),
            None => q,
        }
    }

    /// Streams the rows of [`Plan::rows_sql`] (given as `sql`) from a server-side cursor, so
    /// memory stays flat however long the series.
    pub fn stream_rows<'a>(
        &'a self,
        sql: &'a str,
        conn: &'a mut PgConnection,
    ) -> futures::stream::BoxStream<'a, sqlx::Result<Point>> {
        self.bind_rows(sqlx::query_as::<_, Point>(sql)).fetch(conn)
    }
}

/// Reads one page.
pub async fn read(conn: &mut PgConnection, plan: &Plan) -> Result<SeriesPage> {
    let sql = plan.rows_sql();
    let mut rows: Vec<Point> = plan
        .bind_rows(sqlx::query_as::<_, Point>(&sql))
        .fetch_all(&mut *conn)
        .await?;
    // When this page reaches the end of the result (no cursor before it, and no row beyond
    // it) the total is known without counting: the rows skipped plus the rows read. An empty
    // page after an offset says nothing about the total, so it is counted.
    let last_page = plan.page.limit.is_none_or(|l| rows.len() <= l as usize);
    let total_count: i64 =
        if last_page && plan.after.is_none() && (plan.page.offset == 0 || !rows.is_empty()) {
            i64::try_from(plan.page.offset).unwrap_or(i64::MAX) + rows.len() as i64
        } else {
            let ids: Vec<&str> = plan.participants.iter().map(|p| p.as_str()).collect();
            sqlx::query_scalar(&plan.count_sql())
                .bind(ids)
                .bind(plan.metric.name())
                .bind(plan.range.start)
                .bind(plan.range.end)
                .fetch_one(&mut *conn)
                .await?
        };
    let next_cursor = match plan.page.limit {
        Some(limit) if rows.len() > limit as usize => {
            rows.truncate(limit as usize);
            rows.last()
                .map(|p| encode_cursor(&p.participant_id, p.timestamp, plan.routing.resolution))
        }
        _ => None,
    };
    let mut series: Vec<Series> = plan
        .participants
        .iter()
        .map(|p| Series {
            participant_id: p.clone(),
            points: Vec::new(),
        })
        .collect();
    for row in rows {
        if let Some(s) = series
            .iter_mut()
            .find(|s| s.participant_id.as_str() == row.participant_id)
        {
            s.points.push(row);
        }
    }
    Ok(SeriesPage {
        routing: plan.routing.clone(),
        max_points: plan.max_points,
        total_count,
        series,
        next_cursor,
    })
}

const CURSOR_VERSION: &str = "v1";

fn encode_cursor(participant: &str, t: DateTime<Utc>, r: Resolution) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{CURSOR_VERSION}|{}|{}|{participant}",
        r.name(),
        t.timestamp_micros()
    ))
}

fn decode_cursor(c: &str, expected: Resolution) -> Result<(String, DateTime<Utc>)> {
    let malformed = || Error::invalid("cursor", "malformed cursor; pass next_cursor unchanged");
    let bytes = URL_SAFE_NO_PAD.decode(c.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let mut parts = text.splitn(4, '|');
    let (Some(CURSOR_VERSION), Some(res), Some(micros), Some(participant)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let res = Resolution::parse(res).map_err(|_| malformed())?;
    if res != expected {
        return Err(Error::invalid(
            "cursor",
            format!("the cursor belongs to a {res} read, but this request reads {expected}"),
        ));
    }
    let t = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(malformed)?;
    let participant = ParticipantId::parse(participant).map_err(|_| malformed())?;
    Ok((participant.into(), t))
}

#[cfg(test)]
mod tests;
