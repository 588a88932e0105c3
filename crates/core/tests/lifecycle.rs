//! The participant lifecycle on a real database, on every backend this machine has:
//! withdrawal keeps the data, erasure leaves no row naming the participant in any table with
//! a `participant_id` column (found through the catalogue, so a table added later is covered
//! too) while another participant's rows stay, and the archive's manifest matches its files
//! and the database.

use std::collections::BTreeMap;
use std::io::Read as _;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use wearhouse_core::store::audit::Actor;
use wearhouse_core::store::lifecycle::{self, export};
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::pending_refresh;
use wearhouse_core::store::writer::{SampleWriter, refresh_rollups, refresh_rollups_concurrently};
use wearhouse_core::store::{adherence, audit};
use wearhouse_core::testing::{TestDb, backends};
use wearhouse_core::time::{TimeRange, parse_instant};
use wearhouse_core::{ErrorKind, Metric, ParticipantId, Sample};

fn pid(s: &str) -> ParticipantId {
    ParticipantId::parse(s).unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    parse_instant("t", s).unwrap()
}

/// Enrols `p` in Europe/Berlin and gives them two hours of heart rate and steps, a night of
/// sleep stages, adherence days, an imputation job with output, a watermark, a contact
/// request and a grant: a row in every kind of table.
async fn populate(db: &TestDb, p: &str, offset: f64) {
    let id = pid(p);
    let mut conn = db.pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: id.clone(),
            timezone: chrono_tz::Europe::Berlin,
            provider: Some("fitbit".into()),
            enrolled_at: None,
            study_id: None,
        },
    )
    .await
    .unwrap();
    let from = t("2026-06-01T22:00:00Z");
    let mut samples = Vec::new();
    for s in (0..7_200).step_by(10) {
        samples.push(Sample::numeric(
            id.clone(),
            Metric::HeartRate,
            from + Duration::seconds(s),
            60.0 + offset + (s % 7) as f64,
        ));
    }
    for m in 0..120 {
        samples.push(Sample::numeric(
            id.clone(),
            Metric::Steps,
            from + Duration::minutes(m),
            (m % 13) as f64,
        ));
    }
    for k in 0..200 {
        let label = ["light", "deep", "rem", "wake"][k % 4];
        samples.push(Sample::sleep_stage(
            id.clone(),
            from + Duration::seconds(30 * k as i64),
            label,
        ));
    }
    let summary = SampleWriter::new(&db.backend)
        .write(&mut conn, &samples)
        .await
        .unwrap();
    let range = summary.changed_range().unwrap();
    refresh_rollups(&mut conn, &db.backend, range)
        .await
        .unwrap();
    adherence::refresh(&mut conn, range, Some(&id))
        .await
        .unwrap();
    sqlx::query(
        "with j as (
           insert into imputation_jobs (id, participant_id, data_type, range_start, range_end,
                                        status, method)
           values (gen_random_uuid(), $1, 'steps', $2, $2 + interval '1 hour', 'succeeded',
                   'forward_back_fill')
           returning id)
         insert into imputed_data (timestamp, participant_id, data_type, value_numeric,
                                   is_imputed, method, job_id)
         select $2 + make_interval(mins => g), $1, 'steps', g, g % 2 = 0, 'forward_back_fill',
                j.id
         from j, generate_series(0, 59) g",
    )
    .bind(p)
    .bind(from)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "insert into ingest_state (participant_id, source, data_type, watermark)
         values ($1, 'fitbit', 'steps', $2)",
    )
    .bind(p)
    .bind(from)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "insert into contact_requests (participant_id, requester_name, requester_email, subject,
                                       message)
         values ($1, 'R', 'r@example.org', 's', 'm')",
    )
    .bind(p)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "insert into oauth_tokens (participant_id, provider, access_token_sealed, token_key_id,
                                   expires_at)
         values ($1, 'fitbit', '\\x00', 'test-key', now())",
    )
    .bind(p)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Rows naming `p` in every base table of the schema with a `participant_id` column, but the
/// audit trail, by table; tables without any are absent.
async fn rows_naming(pool: &PgPool, p: &str) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select c.table_name::text from information_schema.columns c
         join information_schema.tables t using (table_schema, table_name)
         where c.table_schema = current_schema() and c.column_name = 'participant_id'
           and t.table_type = 'BASE TABLE' and c.table_name <> 'audit_log'
         order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    // Continuous aggregates are views over their materialisations: counted through the view.
    let views: Vec<String> = sqlx::query_scalar(
        "select c.table_name::text from information_schema.columns c
         join information_schema.tables t using (table_schema, table_name)
         where c.table_schema = current_schema() and c.column_name = 'participant_id'
           and t.table_type = 'VIEW' and c.table_name in ('data_1m', 'data_1h', 'data_1d')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for table in tables.into_iter().chain(views) {
        let n: i64 = sqlx::query_scalar(&format!(
            "select count(*) from {} where participant_id = $1",
            quote(&table)
        ))
        .bind(p)
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            out.insert(table, n);
        }
    }
    out
}

/// Compresses every chunk of raw_data and of the 1-minute aggregate (the compressed ones), and
/// names the hypertables (aggregates by their view) that then hold compressed chunks.
async fn compress_all(pool: &PgPool) -> Vec<String> {
    sqlx::raw_sql(
        "select count(compress_chunk(c, if_not_compressed => true)) from show_chunks('raw_data') c;
         select count(compress_chunk(c, if_not_compressed => true)) from show_chunks('data_1m') c;
         select count(compress_chunk(c, if_not_compressed => true)) from show_chunks('data_1h') c;",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "select distinct coalesce(a.view_name, c.hypertable_name)::text
         from timescaledb_information.chunks c
         left join timescaledb_information.continuous_aggregates a
           on a.materialization_hypertable_name = c.hypertable_name
         where c.is_compressed order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[tokio::test]
async fn erasure_leaves_no_row_naming_the_participant_and_keeps_the_others() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        populate(&db, "ERASE1", 0.0).await;
        populate(&db, "KEEP1", 5.0).await;
        // A table added by a later migration is found through the catalogue.
        sqlx::raw_sql(
            "create table later_links (participant_id text not null, token text);
             insert into later_links values ('ERASE1', 'a'), ('KEEP1', 'b');",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        if db.backend.timescaledb_version.is_some() {
            // The compression policy's work, done by hand: the erasure must reach into
            // compressed chunks of the samples and of the 1-minute and 1-hour aggregates.
            let compressed = compress_all(&db.pool).await;
            for relation in ["raw_data", "data_1m", "data_1h"] {
                assert!(
                    compressed.contains(&relation.to_string()),
                    "{relation}: {compressed:?}"
                );
            }
        }
        let before = rows_naming(&db.pool, "ERASE1").await;
        for table in [
            "raw_data",
            "data_1m",
            "data_1h",
            "imputed_data",
            "imputation_jobs",
            "adherence_days",
            "ingest_state",
            "contact_requests",
            "oauth_tokens",
            "participants",
            "later_links",
        ] {
            assert!(
                before.contains_key(table),
                "{backend:?}: no {table} rows to erase: {before:?}"
            );
        }
        let kept = rows_naming(&db.pool, "KEEP1").await;
        let mut conn = db.pool.acquire().await.unwrap();

        // A grant not yet revoked at the provider stops the erasure, saying what to do.
        let e = lifecycle::erase(
            &db.pool,
            &db.backend,
            &pid("ERASE1"),
            &Actor::cli(),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("withdraw"), "{e}");
        assert_eq!(rows_naming(&db.pool, "ERASE1").await, before);

        lifecycle::delete_grant(&mut *conn, &pid("ERASE1"), "fitbit")
            .await
            .unwrap();
        let erased = lifecycle::erase(
            &db.pool,
            &db.backend,
            &pid("ERASE1"),
            &Actor::cli(),
            None,
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            rows_naming(&db.pool, "ERASE1").await,
            BTreeMap::new(),
            "{backend:?}"
        );
        assert_eq!(rows_naming(&db.pool, "KEEP1").await, kept, "{backend:?}");
        assert_eq!(erased.rows["raw_data"], before["raw_data"]);
        assert_eq!(erased.rows["later_links"], 1);
        assert_eq!(erased.rows["participants"], 1);
        if db.backend.timescaledb_version.is_some() {
            // The span is queued for the aggregates' owner, and refreshing it as the ingest
            // does brings no bucket of the erased participant back.
            let queued = pending_refresh::list(&db.pool).await.unwrap();
            assert!(
                queued
                    .iter()
                    .any(|s| s.range_start <= t("2026-06-01T22:00:00Z")
                        && s.range_end > t("2026-06-01T23:59:00Z")),
                "{queued:?}"
            );
            let spans: Vec<TimeRange> = queued
                .iter()
                .map(|s| TimeRange::new(s.range_start, s.range_end).unwrap())
                .collect();
            refresh_rollups_concurrently(&db.pool, &db.backend, &spans, 2, false)
                .await
                .unwrap();
            assert_eq!(rows_naming(&db.pool, "ERASE1").await, BTreeMap::new());
            assert_eq!(rows_naming(&db.pool, "KEEP1").await, kept);
        }

        // The audit trail says that it happened, who did it and how many rows went; the
        // chain stays intact.
        let rows = audit::list(
            &mut conn,
            &audit::Filter {
                participant: Some("ERASE1".into()),
                action: Some(lifecycle::action::ERASED.into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].actor.starts_with("cli "));
        assert_eq!(rows[0].detail["rows"]["raw_data"], before["raw_data"]);
        assert_eq!(
            rows[0]
                .detail
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["rows"]
        );
        assert!(
            audit::verify(&mut conn)
                .await
                .unwrap()
                .first_broken
                .is_none()
        );

        // Erasing again finds nobody.
        let e = lifecycle::erase(
            &db.pool,
            &db.backend,
            &pid("ERASE1"),
            &Actor::cli(),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}

#[tokio::test]
async fn withdrawal_keeps_the_data_and_a_second_one_answers_the_first() {
    let db = TestDb::new(wearhouse_core::testing::TestBackend::Postgres).await;
    populate(&db, "W1", 0.0).await;
    let before = rows_naming(&db.pool, "W1").await;
    let mut conn = db.pool.acquire().await.unwrap();
    let (first, newly) = lifecycle::withdraw(&mut conn, &pid("W1"), "moved away", "cli a")
        .await
        .unwrap();
    assert!(newly);
    assert_eq!(first.status, "withdrawn");
    assert_eq!(first.withdrawal_reason.as_deref(), Some("moved away"));
    let (second, newly) = lifecycle::withdraw(&mut conn, &pid("W1"), "other", "cli b")
        .await
        .unwrap();
    assert!(!newly);
    assert_eq!(second, first);
    assert_eq!(rows_naming(&db.pool, "W1").await, before);
    assert!(
        lifecycle::grant_pending(&mut *conn, &pid("W1"))
            .await
            .unwrap()
    );
    assert!(!lifecycle::is_loadable(&mut *conn, "W1").await.unwrap());
    assert_eq!(
        lifecycle::withdrawn_grants(&mut *conn).await.unwrap(),
        vec![lifecycle::GrantKey {
            participant_id: "W1".into(),
            provider: "fitbit".into()
        }]
    );
    let e = lifecycle::withdraw(&mut conn, &pid("NOBODY"), "x", "cli a")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Unzips an archive into name → bytes.
pub fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        out.insert(f.name().unwrap().to_string(), buf);
    }
    out
}

#[tokio::test]
async fn the_archive_manifest_matches_its_files_and_the_csv_matches_the_database() {
    let db = TestDb::new(wearhouse_core::testing::TestBackend::Postgres).await;
    populate(&db, "X1", 0.0).await;
    populate(&db, "X2", 3.0).await;
    let mut stream = Box::pin(export::archive(db.pool.clone(), pid("X1")));
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let files = unzip(&bytes);
    let manifest: export::Manifest = serde_json::from_slice(&files[export::MANIFEST]).unwrap();
    assert_eq!(manifest.participant_id, "X1");
    assert_eq!(manifest.timezone, "Europe/Berlin");
    let mut names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    names.push(export::MANIFEST);
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>().len(),
        names.len()
    );
    for f in &manifest.files {
        let body = &files[&f.name];
        assert_eq!(hex::encode(Sha256::digest(body)), f.sha256, "{}", f.name);
        assert_eq!(body.len() as u64, f.bytes, "{}", f.name);
        if f.name.ends_with(".csv") {
            let lines = body.iter().filter(|b| **b == b'\n').count() as u64;
            assert_eq!(lines, f.rows + 1, "{}: header and rows", f.name);
        }
    }
    let entry = |name: &str| manifest.files.iter().find(|f| f.name == name).unwrap();
    assert_eq!(
        entry("raw/steps.csv").unit,
        Some(serde_json::json!("steps"))
    );
    assert_eq!(entry("raw/heart_rate.csv").rows, 720);
    assert_eq!(entry("imputed.csv").rows, 60);

    // Every raw step sample, in order, with its UTC and Berlin time.
    let db_rows: Vec<(DateTime<Utc>, Option<f64>)> = sqlx::query_as(
        "select timestamp, value_numeric from raw_data
         where participant_id = 'X1' and data_type = 'steps' order by timestamp",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut csv = csv::Reader::from_reader(&files["raw/steps.csv"][..]);
    assert_eq!(
        csv.headers().unwrap(),
        vec!["timestamp_utc", "timestamp_local", "value", "text"]
    );
    let csv_rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(csv_rows.len(), db_rows.len());
    for (r, (ts, v)) in csv_rows.iter().zip(&db_rows) {
        assert_eq!(r[0].parse::<DateTime<Utc>>().unwrap(), *ts);
        let local = chrono::DateTime::parse_from_rfc3339(&r[1]).unwrap();
        assert_eq!(local, *ts);
        assert_eq!(local.offset().local_minus_utc(), 7_200, "Berlin in summer");
        assert_eq!(r[2].parse::<f64>().ok(), *v);
    }
    let sleep = String::from_utf8(files["raw/sleep_stage.csv"].clone()).unwrap();
    assert_eq!(
        sleep.lines().nth(1).unwrap().rsplit(',').next(),
        Some("light")
    );

    // The record has no token, and nothing of the other participant is in the archive.
    let record = String::from_utf8(files["participant.json"].clone()).unwrap();
    assert!(!record.contains("secret"));
    assert!(record.contains("\"participant_id\": \"X1\""));
    for body in files.values() {
        assert!(!String::from_utf8_lossy(body).contains("X2"));
    }
}

#[tokio::test]
async fn the_api_role_withdraws_and_erases_without_being_able_to_read_grants() {
    for backend in backends().await {
        the_api_role_withdraws_and_erases(backend).await;
    }
}

async fn the_api_role_withdraws_and_erases(backend: wearhouse_core::testing::TestBackend) {
    let db = TestDb::new(backend).await;
    populate(&db, "R1", 0.0).await;
    if db.backend.timescaledb_version.is_some() {
        compress_all(&db.pool).await;
    }
    // Every connection works as the API's role, as the API's own pool does.
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let api = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("role", "wearhouse_api")]))
        .await
        .unwrap();
    let mut conn = api.acquire().await.unwrap();
    let refused = sqlx::query("select access_token_sealed from oauth_tokens")
        .fetch_all(&mut *conn)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    lifecycle::withdraw(&mut conn, &pid("R1"), "r", "a@example.org")
        .await
        .unwrap();
    assert!(
        lifecycle::grant_pending(&mut *conn, &pid("R1"))
            .await
            .unwrap()
    );
    // Revoked by the ingest (its own role), then erased by the API's.
    sqlx::query("delete from oauth_tokens where participant_id = 'R1'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(
        !lifecycle::grant_pending(&mut *conn, &pid("R1"))
            .await
            .unwrap()
    );
    drop(conn);
    lifecycle::erase(&api, &db.backend, &pid("R1"), &Actor::cli(), None, None)
        .await
        .unwrap();
    assert_eq!(rows_naming(&db.pool, "R1").await, BTreeMap::new());
}
