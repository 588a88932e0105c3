//! Every SQL query of every dashboard against a seeded database, at ranges that pick each of
//! the 1m, 1h and 1d rollups, run as `wearhouse_grafana`, the read-only role Grafana's
//! datasource logs in with.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use sqlx::{Column, Row};
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::adherence;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::writer::{SampleWriter, refresh_rollups};
use wearhouse_core::testing::{TestDb, backends};
use wearhouse_core::{Metric, ParticipantId, Sample, TimeRange};

use crate::dashboards::{self, sql_of};
use crate::macros::{Context, expand};

const PARTICIPANT: &str = "P001";

/// A pool on `db` working as Grafana's role.
pub async fn as_grafana(db: &TestDb) -> PgPool {
    DatabaseArgs::from_url(db.url.clone())
        .with_role("wearhouse_grafana")
        .connect()
        .await
        .unwrap()
}

/// Three days of heart rate and steps up to now, last night's sleep, an hour of imputed heart
/// rate, and the adherence days they make.
async fn seed(db: &TestDb, now: DateTime<Utc>) {
    let p = ParticipantId::parse(PARTICIPANT).unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: p.clone(),
            timezone: chrono_tz::Europe::London,
            provider: Some("synthetic".into()),
            enrolled_at: Some(now - Duration::days(30)),
            study_id: None,
        },
    )
    .await
    .unwrap();
    participants::set_last_device_sync(&mut conn, &p, now - Duration::hours(1))
        .await
        .unwrap();
    // Whole minutes, so a step sample falls on every minute.
    let start =
        DateTime::from_timestamp((now - Duration::days(3)).timestamp() / 60 * 60, 0).unwrap();
    let mut batch = Vec::new();
    let mut t = start;
    while t < now {
        batch.push(Sample::numeric(p.clone(), Metric::HeartRate, t, 70.0));
        if t.timestamp() % 60 == 0 {
            batch.push(Sample::numeric(p.clone(), Metric::Steps, t, 12.0));
        }
        t += Duration::seconds(30);
    }
    let labels = ["wake", "light", "deep", "light", "rem"];
    let mut t = now - Duration::hours(20);
    let mut i = 0;
    while t < now - Duration::hours(12) {
        batch.push(Sample::sleep_stage(
            p.clone(),
            t,
            labels[(i / 40) % labels.len()],
        ));
        t += Duration::seconds(30);
        i += 1;
    }
    let summary = SampleWriter::new(&db.backend)
        .write(&mut conn, &batch)
        .await
        .unwrap();
    refresh_rollups(&mut conn, &db.backend, summary.changed_range().unwrap())
        .await
        .unwrap();
    let job = uuid::Uuid::new_v4();
    sqlx::query(
        "insert into imputation_jobs (id, participant_id, data_type, range_start, range_end,
                                      status, method)
         values ($1, $2, 'heart_rate', $3, $4, 'succeeded', 'arima')",
    )
    .bind(job)
    .bind(PARTICIPANT)
    .bind(now - Duration::hours(2))
    .bind(now)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "insert into imputed_data (timestamp, participant_id, data_type, value_numeric,
                                   is_imputed, method, job_id)
         select t, $2, 'heart_rate', 72, true, 'arima', $1
         from generate_series($3::timestamptz, $4::timestamptz, interval '15 seconds') t",
    )
    .bind(job)
    .bind(PARTICIPANT)
    .bind(now - Duration::hours(2))
    .bind(now - Duration::hours(1))
    .execute(&mut *conn)
    .await
    .unwrap();
    adherence::refresh(&mut conn, TimeRange::new(start, now).unwrap(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn every_dashboard_sql_query_runs_and_returns_rows_at_every_resolution() {
    let boards = dashboards::load();
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let now = Utc::now();
        seed(&db, now).await;
        let grafana = as_grafana(&db).await;
        let mut ran = 0;
        // 1 day reads data_1m, 30 days data_1h, 400 days data_1d.
        for days in [1, 30, 400] {
            let cx = Context {
                from: now - Duration::days(days),
                to: now + Duration::minutes(1),
                variables: BTreeMap::from([("participant", PARTICIPANT.to_owned())]),
            };
            for (file, d) in &boards {
                for q in dashboards::queries(file, d) {
                    if q.datasource != "wearhouse-db" {
                        continue;
                    }
                    let sql = expand(&sql_of(&q).unwrap(), &cx);
                    let rows = sqlx::query(&sql)
                        .fetch_all(&grafana)
                        .await
                        .unwrap_or_else(|e| {
                            panic!(
                                "{} {} failed on {backend:?}: {e}\n{sql}",
                                q.dashboard, q.title
                            )
                        });
                    assert!(
                        !rows.is_empty(),
                        "{} {} returned no rows over {days} days on {backend:?}:\n{sql}",
                        q.dashboard,
                        q.title
                    );
                    if q.target["format"] == "time_series" {
                        let first = rows[0].columns()[0].name();
                        assert_eq!(
                            first, "time",
                            "{} {}: time series without a time column",
                            q.dashboard, q.title
                        );
                    }
                    ran += 1;
                }
            }
        }
        assert!(ran >= 3 * 10, "only {ran} queries ran");
    }
}

#[tokio::test]
async fn the_participant_charts_read_the_rollup_that_suits_the_range() {
    let boards = dashboards::load();
    let detail = boards
        .values()
        .find(|d| d["uid"] == "wearhouse-participant")
        .unwrap();
    let hr = dashboards::panels(detail)
        .into_iter()
        .find(|p| p["title"] == "Heart rate: measured and imputed")
        .unwrap();
    let measured = hr["targets"][0]["rawSql"].as_str().unwrap();
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let now = Utc::now();
        seed(&db, now).await;
        let grafana = as_grafana(&db).await;
        // Spacing of the points shows which rollup answered.
        for (days, width) in [(1, 60), (30, 3_600), (400, 86_400)] {
            let cx = Context {
                from: now - Duration::days(days),
                to: now + Duration::minutes(1),
                variables: BTreeMap::from([("participant", PARTICIPANT.to_owned())]),
            };
            let times: Vec<DateTime<Utc>> = sqlx::query(&expand(measured, &cx))
                .fetch_all(&grafana)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<DateTime<Utc>, _>(0))
                .collect();
            assert!(times.len() >= 2, "{days} days on {backend:?}: {times:?}");
            let spacing = times
                .windows(2)
                .map(|w| (w[1] - w[0]).num_seconds())
                .min()
                .unwrap();
            assert_eq!(spacing, width, "{days} days on {backend:?}");
        }
    }
}
