//! The storage contract on a real database, on every backend this machine has (plain
//! PostgreSQL always; TimescaleDB where installed). Each test prints the backend it ran on.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use wearhouse_core::store::series::{self, Page, Plan, SeriesQuery};
use wearhouse_core::store::writer::{
    SampleWriter, WriteSummary, refresh_rollups, refresh_rollups_concurrently,
};
use wearhouse_core::store::{self, MigrateSettings};
use wearhouse_core::testing::{TestDb, backends};
use wearhouse_core::time::parse_instant;
use wearhouse_core::{Metric, ParticipantId, Resolution, Sample, TimeRange};

fn pid(s: &str) -> ParticipantId {
    ParticipantId::parse(s).unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    parse_instant("t", s).unwrap()
}

/// Heart rate every 7 s and steps every minute for `p` over `[from, from + hours)`, with a
/// deterministic pattern so sums are easy to check.
fn samples(p: &str, from: DateTime<Utc>, hours: i64, offset: f64) -> Vec<Sample> {
    let p = pid(p);
    let mut out = Vec::new();
    let mut s = 0;
    while s < hours * 3_600 {
        let v = 60.0 + offset + ((s / 7) % 40) as f64 * 0.5;
        out.push(Sample::numeric(
            p.clone(),
            Metric::HeartRate,
            from + Duration::seconds(s),
            v,
        ));
        s += 7;
    }
    for m in 0..hours * 60 {
        let v = ((m * 37) % 120) as f64;
        out.push(Sample::numeric(
            p.clone(),
            Metric::Steps,
            from + Duration::minutes(m),
            v,
        ));
    }
    out
}

async fn write(db: &TestDb, batch: &[Sample]) -> WriteSummary {
    let mut conn = db.pool.acquire().await.unwrap();
    let summary = SampleWriter::new(&db.backend)
        .write(&mut conn, batch)
        .await
        .unwrap();
    if let Some(range) = summary.changed_range() {
        refresh_rollups(&mut conn, &db.backend, range)
            .await
            .unwrap();
    }
    summary
}

async fn raw_snapshot(
    pool: &PgPool,
) -> Vec<(DateTime<Utc>, String, String, Option<f64>, Option<String>)> {
    sqlx::query_as(
        "select timestamp, participant_id, data_type, value_numeric, value_text from raw_data
         order by participant_id, data_type, timestamp",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrating_twice_changes_nothing_and_names_the_backend() {
    for backend in backends().await {
        let (pool, _) = TestDb::empty().await;
        let settings = MigrateSettings {
            timescaledb: backend == wearhouse_core::testing::TestBackend::Timescaledb,
            ..MigrateSettings::default()
        };
        let first = store::migrate(&pool, &settings).await.unwrap();
        eprintln!("migrated on {}", first.backend);
        assert_eq!(first.applied.len(), store::MIGRATOR.iter().count());
        let schema = |pool: PgPool| async move {
            sqlx::query_as::<_, (String, String, String)>(
                "select c.relname::text, c.relkind::text, coalesce(string_agg(a.attname || ':' ||
                        format_type(a.atttypid, a.atttypmod), ',' order by a.attnum), '')
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0
                 where n.nspname = 'public'
                 group by 1, 2 order by 1",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        };
        let before = schema(pool.clone()).await;
        for rel in [
            "raw_data",
            "data_1m",
            "data_1h",
            "data_1d",
            "participants",
            "ingest_state",
            "oauth_tokens",
            "imputed_data",
            "imputation_jobs",
            "contact_requests",
        ] {
            assert!(
                before.iter().any(|(n, _, _)| n == rel),
                "{rel} missing on {}",
                first.backend
            );
        }
        let second = store::migrate(&pool, &settings).await.unwrap();
        assert!(second.applied.is_empty());
        assert_eq!(second.backend, first.backend);
        assert_eq!(schema(pool.clone()).await, before);
        assert!(store::is_migrated(&pool).await.unwrap());
    }
}

#[tokio::test]
async fn loading_the_same_samples_twice_changes_nothing() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let mut batch = samples("P001", t("2025-06-01T22:00:00Z"), 4, 0.0);
        let mut odd = Sample::sleep_stage(pid("P001"), t("2025-06-01T23:00:00Z"), "deep");
        odd.value_text = Some("deep\tnap \\ \"note\"\né".into());
        batch.push(odd.clone());
        let first = write(&db, &batch).await;
        assert_eq!(first.inserted as usize, batch.len());
        assert_eq!(first.updated, 0);
        let before = raw_snapshot(&db.pool).await;
        let second = write(&db, &batch).await;
        assert_eq!(
            (second.inserted, second.updated),
            (0, 0),
            "on {}",
            db.backend
        );
        assert_eq!(raw_snapshot(&db.pool).await, before);
        assert!(
            before.iter().any(|r| r.4 == odd.value_text),
            "text survives the round trip"
        );
    }
}

#[tokio::test]
async fn a_revised_value_replaces_the_old_one() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let at = t("2025-06-01T10:00:00Z");
        let p = pid("P001");
        write(
            &db,
            &[Sample::numeric(p.clone(), Metric::HeartRate, at, 70.0)],
        )
        .await;
        let revised = write(
            &db,
            &[
                Sample::numeric(p.clone(), Metric::HeartRate, at, 71.0),
                Sample::numeric(
                    p.clone(),
                    Metric::HeartRate,
                    at + Duration::seconds(1),
                    72.0,
                ),
            ],
        )
        .await;
        assert_eq!(
            (revised.inserted, revised.updated),
            (1, 1),
            "on {}",
            db.backend
        );
        let rows = raw_snapshot(&db.pool).await;
        let values: Vec<f64> = rows.iter().map(|r| r.3.unwrap()).collect();
        assert_eq!(values, vec![71.0, 72.0]);
        let (avg, count): (f64, i64) = sqlx::query_as(
            "select avg_value_numeric, count_value_numeric from data_1m where participant_id = 'P001'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!((avg, count), (71.5, 2), "on {}", db.backend);
    }
}

/// Rollup rows as stored, next to the same aggregate computed directly from raw_data.
async fn rollup_mismatches(pool: &PgPool, relation: &str, width: &str) -> Vec<String> {
    let sql = format!(
        "with direct as (
           select date_bin('{width}', timestamp, timestamptz '2000-01-01 00:00:00+00') as bucket,
                  participant_id, data_type, avg(value_numeric) a, sum(value_numeric) s,
                  count(value_numeric) c, min(value_numeric) mn, max(value_numeric) mx
           from raw_data group by 1, 2, 3)
         select coalesce(d.bucket, r.bucket)::text || ' ' || coalesce(d.participant_id, r.participant_id)
                || ' ' || coalesce(d.data_type, r.data_type)
         from direct d full join {relation} r
           on r.bucket = d.bucket and r.participant_id = d.participant_id and r.data_type = d.data_type
         where r.bucket is null or d.bucket is null
            or abs(coalesce(r.avg_value_numeric, 0) - coalesce(d.a, 0)) > 1e-9 * greatest(1, abs(coalesce(d.a, 0)))
            or abs(coalesce(r.sum_value_numeric, 0) - coalesce(d.s, 0)) > 1e-9 * greatest(1, abs(coalesce(d.s, 0)))
            or r.count_value_numeric <> d.c
            or r.min_value_numeric is distinct from d.mn or r.max_value_numeric is distinct from d.mx
         order by 1"
    );
    sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn every_rollup_equals_the_aggregate_of_raw_data_after_late_and_revised_loads() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        // Two participants across a day boundary.
        write(&db, &samples("P001", t("2025-06-02T21:30:00Z"), 5, 0.0)).await;
        write(&db, &samples("P002", t("2025-06-02T23:10:00Z"), 2, 5.0)).await;
        // A late sync into an older range, overlapping existing buckets at their edges.
        write(&db, &samples("P001", t("2025-06-01T23:59:00Z"), 2, 1.0)).await;
        // Revisions that land in buckets already rolled up.
        let revised: Vec<Sample> = samples("P001", t("2025-06-02T23:00:00Z"), 1, 3.0)
            .into_iter()
            .step_by(5)
            .collect();
        let summary = write(&db, &revised).await;
        assert!(summary.updated > 0);
        // Two loads that meet inside one minute: the second adds to the first's bucket.
        write(&db, &samples("P003", t("2025-06-02T10:00:00Z"), 1, 0.0)).await;
        let adjacent = write(&db, &samples("P003", t("2025-06-02T10:59:59Z"), 1, 2.0)).await;
        assert_eq!(adjacent.updated, 0);
        for (rel, width) in [
            ("data_1m", "1 minute"),
            ("data_1h", "1 hour"),
            ("data_1d", "1 day"),
        ] {
            let bad = rollup_mismatches(&db.pool, rel, width).await;
            assert!(
                bad.is_empty(),
                "{rel} on {} differs from raw_data at {bad:?}",
                db.backend
            );
        }
        let buckets: i64 = sqlx::query_scalar("select count(*) from data_1d")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(
            buckets,
            2 * 3 + 2 * 2 + 2,
            "days per participant and metric on {}",
            db.backend
        );
    }
}

async fn read_all(db: &TestDb, q: &SeriesQuery) -> series::SeriesPage {
    let mut conn = db.pool.acquire().await.unwrap();
    series::read(&mut conn, &Plan::new(q.clone()).unwrap())
        .await
        .unwrap()
}

fn flatten(page: &series::SeriesPage) -> Vec<series::Point> {
    page.series.iter().flat_map(|s| s.points.clone()).collect()
}

#[tokio::test]
async fn cursor_pages_and_offset_pages_agree_with_one_unpaginated_read() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        write(&db, &samples("P001", t("2025-06-01T00:00:00Z"), 3, 0.0)).await;
        write(&db, &samples("P002", t("2025-06-01T01:00:00Z"), 3, 2.0)).await;
        for resolution in [Resolution::Raw, Resolution::Minute, Resolution::Hour] {
            let query = SeriesQuery {
                participants: vec![pid("P002"), pid("P001")],
                metric: Metric::HeartRate,
                range: TimeRange::new(t("2025-06-01T00:30:00Z"), t("2025-06-01T03:30:00Z"))
                    .unwrap(),
                max_points: None,
                resolution: Some(resolution),
                page: Page::default(),
            };
            let whole = read_all(&db, &query).await;
            let all = flatten(&whole);
            assert_eq!(all.len() as i64, whole.total_count);
            assert!(whole.next_cursor.is_none());
            assert_eq!(whole.series[0].participant_id.as_str(), "P001");
            assert!(!whole.series[1].points.is_empty());

            let limit = 97;
            let (mut by_cursor, mut cursor) = (Vec::new(), None);
            loop {
                let mut q = query.clone();
                q.page = Page {
                    limit: Some(limit),
                    offset: 0,
                    cursor: cursor.clone(),
                };
                let page = read_all(&db, &q).await;
                assert_eq!(page.total_count, whole.total_count);
                by_cursor.extend(flatten(&page));
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
            assert_eq!(
                by_cursor, all,
                "cursor pages at {resolution} on {}",
                db.backend
            );

            let mut by_offset = Vec::new();
            for offset in (0..whole.total_count as u64).step_by(limit as usize) {
                let mut q = query.clone();
                q.page = Page {
                    limit: Some(limit),
                    offset,
                    cursor: None,
                };
                let page = read_all(&db, &q).await;
                assert_eq!(page.total_count, whole.total_count, "offset {offset}");
                by_offset.extend(flatten(&page));
            }
            // A page past the end is empty but still reports the total.
            let mut q = query.clone();
            q.page = Page {
                limit: Some(limit),
                offset: whole.total_count as u64 + 5,
                cursor: None,
            };
            let beyond = read_all(&db, &q).await;
            assert!(flatten(&beyond).is_empty());
            assert_eq!(beyond.total_count, whole.total_count);
            assert_eq!(
                by_offset, all,
                "offset pages at {resolution} on {}",
                db.backend
            );
        }
    }
}

#[tokio::test]
async fn automatic_routing_reads_the_rollup_it_names() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        write(&db, &samples("P001", t("2025-06-01T00:00:00Z"), 30, 0.0)).await;
        let query = |start: &str, end: &str| SeriesQuery {
            participants: vec![pid("P001")],
            metric: Metric::HeartRate,
            range: TimeRange::new(t(start), t(end)).unwrap(),
            max_points: None,
            resolution: None,
            page: Page::default(),
        };
        let day = read_all(&db, &query("2025-06-01", "2025-06-02")).await;
        assert_eq!(day.routing.resolution, Resolution::Minute);
        assert_eq!(day.total_count, 1440);
        let week = read_all(&db, &query("2025-06-01", "2025-06-08")).await;
        assert_eq!(week.routing.resolution, Resolution::Hour);
        assert_eq!(week.total_count, 30);
        let hour = &week.series[0].points[0];
        let direct: (f64, i64) = sqlx::query_as(
            "select avg(value_numeric), count(*) from raw_data where data_type = 'heart_rate'
             and timestamp >= '2025-06-01T00:00:00Z' and timestamp < '2025-06-01T01:00:00Z'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!((hour.value.unwrap() - direct.0).abs() < 1e-9);
        assert_eq!(hour.count, direct.1);
    }
}

#[tokio::test]
async fn each_invalid_input_gets_its_typed_error() {
    let base = SeriesQuery {
        participants: vec![pid("P001")],
        metric: Metric::HeartRate,
        range: TimeRange::new(t("2025-06-01"), t("2025-06-02")).unwrap(),
        max_points: None,
        resolution: None,
        page: Page::default(),
    };
    assert_eq!(
        Metric::parse("heartrate").unwrap_err().parameter(),
        Some("metric")
    );
    assert_eq!(
        TimeRange::new(t("2025-06-02"), t("2025-06-01"))
            .unwrap_err()
            .parameter(),
        Some("end_date")
    );
    assert_eq!(
        TimeRange::new(t("2025-06-02"), t("2025-06-02"))
            .unwrap_err()
            .parameter(),
        Some("end_date")
    );
    let mut q = base.clone();
    q.max_points = Some(0);
    assert_eq!(Plan::new(q).unwrap_err().parameter(), Some("max_points"));
    let mut q = base.clone();
    q.max_points = Some(20_001);
    assert_eq!(Plan::new(q).unwrap_err().parameter(), Some("max_points"));
    let mut q = base.clone();
    q.page.cursor = Some("not-a-cursor".into());
    assert_eq!(Plan::new(q).unwrap_err().parameter(), Some("cursor"));
    let mut q = base.clone();
    q.page.limit = Some(0);
    assert_eq!(Plan::new(q).unwrap_err().parameter(), Some("limit"));
    let mut q = base;
    q.participants.clear();
    assert_eq!(
        Plan::new(q).unwrap_err().parameter(),
        Some("participant_id")
    );
}

#[tokio::test]
async fn statistics_are_refreshed_after_a_load_on_every_backend() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        write(&db, &samples("P001", t("2025-06-02T21:30:00Z"), 2, 0.0)).await;
        let mut conn = db.pool.acquire().await.unwrap();
        wearhouse_core::store::analyze_after_load(&mut conn)
            .await
            .unwrap();
        // ANALYZE on a hypertable records its statistics on the chunks that hold the rows.
        let analyzed: Vec<String> = sqlx::query_scalar(
            "select distinct case when relname like '%chunk%' then 'chunk' else relname end
             from pg_stat_user_tables where last_analyze is not null order by 1",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let expected: Vec<&str> = if db.backend.rollups_are_tables {
            vec!["data_1m", "participants", "raw_data"]
        } else {
            vec![
                "_materialized_hypertable_3",
                "chunk",
                "participants",
                "raw_data",
            ]
        };
        assert_eq!(analyzed, expected, "on {}", db.backend);
    }
}

/// Chunks of `hypertable` (raw_data, or a continuous aggregate) by compression state.
async fn chunk_states(pool: &PgPool, hypertable: &str) -> Vec<(String, bool)> {
    sqlx::query_as(
        "select c.range_start::date::text, c.is_compressed
         from timescaledb_information.chunks c
         left join timescaledb_information.continuous_aggregates a
           on a.materialization_hypertable_name = c.hypertable_name
         where coalesce(a.view_name, c.hypertable_name) = $1
         order by c.range_start",
    )
    .bind(hypertable)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// TimescaleDB stores old raw samples and the 1-minute and 1-hour aggregates in compressed
/// chunks: the ingest's refresh writes the 1-minute buckets compressed, the policies compress
/// the rest, and a late sync or a revision into a compressed day is still merged exactly.
#[tokio::test]
async fn late_and_revised_loads_into_compressed_chunks_keep_rollups_exact() {
    if !wearhouse_core::testing::timescaledb_available() {
        eprintln!("TimescaleDB not installed: nothing to test here");
        return;
    }
    let db = TestDb::new(wearhouse_core::testing::TestBackend::Timescaledb).await;
    // A bulk load, refreshed as the ingest refreshes one: statistics first, then the windows.
    let mut load = samples("P001", t("2025-06-01T20:00:00Z"), 8, 0.0);
    load.extend(samples("P002", t("2025-06-01T22:00:00Z"), 3, 4.0));
    let mut conn = db.pool.acquire().await.unwrap();
    let summary = SampleWriter::new(&db.backend)
        .write(&mut conn, &load)
        .await
        .unwrap();
    wearhouse_core::store::analyze_samples(&mut conn)
        .await
        .unwrap();
    let range = summary.changed_range().unwrap();
    refresh_rollups_concurrently(&db.pool, &db.backend, &[range], 2, true)
        .await
        .unwrap();
    // The refresh compressed the 1-minute buckets as it materialised them.
    let minutes = chunk_states(&db.pool, "data_1m").await;
    assert_eq!(
        minutes,
        vec![("2025-06-01".into(), true), ("2025-06-02".into(), true)]
    );
    // The compression policies' work, done by hand: raw samples and hourly buckets
    // compressed too.
    for relation in ["raw_data", "data_1h"] {
        sqlx::query(&format!(
            "select count(compress_chunk(c)) from show_chunks('{relation}') c"
        ))
        .execute(&db.pool)
        .await
        .unwrap();
        let states = chunk_states(&db.pool, relation).await;
        assert!(
            !states.is_empty() && states.iter().all(|(_, compressed)| *compressed),
            "{relation}: {states:?}"
        );
    }
    let before = raw_snapshot(&db.pool).await.len();

    // A late sync: a third participant's evening, inside both compressed days.
    let late = write(&db, &samples("P003", t("2025-06-01T23:00:00Z"), 2, 1.0)).await;
    // Heart rate every 7 s for two hours and steps every minute.
    assert_eq!(
        (late.inserted, late.updated),
        ((2 * 3_600u64).div_ceil(7) + 120, 0)
    );
    // Revisions of values already compressed, and the same samples again (no change).
    // (00:40 is 2,400 heart-rate intervals after 20:00, so every timestamp exists already.)
    let revised: Vec<Sample> = samples("P001", t("2025-06-02T00:40:00Z"), 1, 3.0)
        .into_iter()
        .step_by(4)
        .collect();
    let summary = write(&db, &revised).await;
    assert_eq!(
        (summary.inserted, summary.updated),
        (0, revised.len() as u64)
    );
    let again = write(&db, &revised).await;
    assert_eq!((again.inserted, again.updated), (0, 0));

    assert_eq!(
        raw_snapshot(&db.pool).await.len(),
        before + late.inserted as usize
    );
    for (rel, width) in [
        ("data_1m", "1 minute"),
        ("data_1h", "1 hour"),
        ("data_1d", "1 day"),
    ] {
        let bad = rollup_mismatches(&db.pool, rel, width).await;
        assert!(bad.is_empty(), "{rel} differs from raw_data at {bad:?}");
    }
}
