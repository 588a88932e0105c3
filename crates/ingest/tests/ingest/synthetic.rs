//! `wearhouse-ingest synthetic` as a user runs it: the binary against a migrated database on
//! each backend. The cohort is reproducible, a second run changes nothing, the rollups match
//! the raw data, and a load killed at any moment and run again ends equal to a clean load.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::process::run_ok;
use crate::support::tables;
use rand::{Rng, SeedableRng};
use wearhouse_core::testing::{TestBackend, TestDb, backends};

fn synthetic(url: &str, participants: u32, days: u32, seed: u64) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"));
    cmd.args(["synthetic", "--start", "2025-06-01"])
        .args(["--participants", &participants.to_string()])
        .args(["--days", &days.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--database-url", url])
        .env("WEARHOUSE_LOG", "warn")
        .stdout(Stdio::null());
    cmd
}

#[tokio::test]
async fn the_issue_example_fills_a_database_whose_rollups_match_its_raw_data_and_a_rerun_changes_nothing()
 {
    for b in backends().await {
        let db = TestDb::new(b).await;
        run_ok(synthetic(&db.url, 5, 3, 7));
        let first = tables::snapshot(&db.pool).await;
        assert!(
            first.raw.len() > 5 * 3 * 1000,
            "a realistic amount of data on {b:?}"
        );
        let types: std::collections::BTreeSet<&str> =
            first.raw.iter().map(|r| r.2.as_str()).collect();
        for t in [
            "heart_rate",
            "steps",
            "calories",
            "distance",
            "sleep_stage",
            "spo2",
            "hrv_rmssd",
            "breathing_rate",
            "skin_temp_delta",
            "resting_heart_rate",
        ] {
            assert!(types.contains(t), "{t} missing on {b:?}");
        }
        let participants: i64 = sqlx::query_scalar(
            "select count(*) from participants where provider = 'synthetic' and participant_id like 'SYN000_'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(participants, 5);

        run_ok(synthetic(&db.url, 5, 3, 7));
        let second = tables::snapshot(&db.pool).await;
        assert!(
            first.raw == second.raw,
            "a second run changed raw_data on {b:?}"
        );
        assert!(
            first.rollups == second.rollups,
            "a second run changed the rollups on {b:?}"
        );

        tables::refresh_all(&db.pool).await;
        let mismatches = tables::rollup_mismatches(&db.pool).await;
        assert!(
            mismatches.is_empty(),
            "rollups differ from raw data on {b:?}: {mismatches:#?}"
        );
    }
}

#[tokio::test]
async fn the_same_seed_gives_the_same_cohort_and_another_seed_a_different_one() {
    let a = TestDb::new(TestBackend::Postgres).await;
    let b = TestDb::new(TestBackend::Postgres).await;
    let c = TestDb::new(TestBackend::Postgres).await;
    run_ok(synthetic(&a.url, 3, 2, 11));
    run_ok(synthetic(&b.url, 3, 2, 11));
    run_ok(synthetic(&c.url, 3, 2, 12));
    let (a, b, c) = (
        tables::snapshot(&a.pool).await,
        tables::snapshot(&b.pool).await,
        tables::snapshot(&c.pool).await,
    );
    assert!(a == b, "same seed, different data");
    assert!(a.raw != c.raw, "another seed gave the same data");
}

#[tokio::test]
async fn a_load_killed_at_random_moments_and_run_again_equals_a_clean_load() {
    for b in backends().await {
        let clean = TestDb::new(b).await;
        let mut cmd = synthetic(&clean.url, 4, 3, 5);
        cmd.args(["--workers", "2"]);
        run_ok(cmd);
        let expected = tables::snapshot(&clean.pool).await;

        let db = TestDb::new(b).await;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        for _ in 0..4 {
            let mut child = synthetic(&db.url, 4, 3, 5)
                .args(["--workers", "2"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Not a wait for an event: the kill lands at a random moment of the load.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1500))).await;
            // SIGKILL: no chance to clean up.
            let _ = child.kill();
            let _ = child.wait();
        }
        // A killed client's statement may still be running on the server, holding its
        // participant's lock until it ends; the command says so and is run again. Nothing
        // announces the end of a killed client's statement on the server, so this is a bounded
        // poll (at most a minute).
        let mut finished = false;
        for _ in 0..120 {
            let mut cmd = synthetic(&db.url, 4, 3, 5);
            cmd.args(["--workers", "2"]).stderr(Stdio::null());
            if cmd.status().unwrap().success() {
                finished = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            finished,
            "the load never completed after the kills on {b:?}"
        );
        let got = tables::snapshot(&db.pool).await;
        assert!(
            got.raw == expected.raw,
            "raw_data differs after kills on {b:?}"
        );
        assert!(
            got.rollups == expected.rollups,
            "rollups differ after kills on {b:?}"
        );
        assert_eq!(got.watermarks, expected.watermarks, "on {b:?}");
        let pending: i64 = sqlx::query_scalar("select count(*) from rollup_refresh_pending")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(pending, 0);
    }
}

#[tokio::test]
async fn a_synthetic_load_on_plain_postgresql_leaves_adherence_days_for_every_participant() {
    let db = TestDb::new(TestBackend::Postgres).await;
    run_ok(synthetic(&db.url, 2, 3, 11));
    let days: Vec<(String, i64, i64)> = sqlx::query_as(
        "select participant_id, count(*), count(*) filter (where wear_minutes > 0)
         from participant_adherence_daily group by participant_id order by participant_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(days.len(), 2, "{days:?}");
    for (participant, n, worn) in &days {
        assert!(
            *n >= 1 && *worn >= 1,
            "{participant}: {n} adherence days, {worn} worn"
        );
    }
}

#[tokio::test]
async fn the_synthetic_cohort_joins_the_demo_study_or_the_one_named_and_an_unknown_study_is_refused()
 {
    let db = TestDb::new(TestBackend::Postgres).await;
    run_ok(synthetic(&db.url, 2, 1, 3));
    let studies: Vec<(String, String)> =
        sqlx::query_as("select participant_id, study_id from participants order by 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        studies,
        [
            ("SYN0001".into(), "demo".into()),
            ("SYN0002".into(), "demo".into())
        ]
    );

    let out = synthetic(&db.url, 1, 1, 3)
        .args(["--study", "trial-9"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("no study \"trial-9\"") && text.contains("wearhouse-api study add"),
        "{text}"
    );

    sqlx::query("insert into studies (study_id, name) values ('trial-9', 'Trial 9')")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut again = synthetic(&db.url, 1, 1, 3);
    again.args(["--study", "trial-9"]);
    run_ok(again);
    let study: String =
        sqlx::query_scalar("select study_id from participants where participant_id = 'SYN0001'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(study, "trial-9");
}

/// A load of over 100,000 rows takes the bulk path: statistics before the refresh, and on
/// TimescaleDB the 1-minute buckets compressed as they are materialised. The run itself
/// leaves every rollup materialised and equal to raw data (read here without real-time
/// aggregation, so nothing is filled in at query time).
#[tokio::test]
async fn a_large_load_leaves_its_rollups_materialised_and_exact() {
    for b in backends().await {
        let db = TestDb::new(b).await;
        run_ok(synthetic(&db.url, 10, 3, 3));
        if b == TestBackend::Timescaledb {
            // Switched off, the same load materialises row by row, exactly as well.
            let plain = TestDb::new(b).await;
            let mut cmd = synthetic(&plain.url, 10, 3, 3);
            cmd.env("WEARHOUSE_NO_COMPRESS_ON_REFRESH", "true");
            run_ok(cmd);
            let compressed: i64 = sqlx::query_scalar(
                "select count(*) from timescaledb_information.chunks c
                 join timescaledb_information.continuous_aggregates a
                   on a.materialization_hypertable_name = c.hypertable_name
                 where a.view_name = 'data_1m' and c.is_compressed",
            )
            .fetch_one(&plain.pool)
            .await
            .unwrap();
            assert_eq!(compressed, 0);
            tables::materialized_only(&plain.pool).await;
            let mismatches = tables::rollup_mismatches(&plain.pool).await;
            assert!(mismatches.is_empty(), "{mismatches:#?}");
        }
        let rows: i64 = sqlx::query_scalar("select count(*) from raw_data")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert!(rows > 100_000, "{rows} rows is not a large load");
        if b == TestBackend::Timescaledb {
            tables::materialized_only(&db.pool).await;
            // Whole days are compressed; an edge window that the planner expects to hold
            // fewer than ten rows is materialised row by row, as TimescaleDB does then.
            let states: Vec<(i64, bool)> = sqlx::query_as(
                "select (select count(*) from data_1m
                         where bucket >= c.range_start and bucket < c.range_end),
                        c.is_compressed
                 from timescaledb_information.chunks c
                 join timescaledb_information.continuous_aggregates a
                   on a.materialization_hypertable_name = c.hypertable_name
                 where a.view_name = 'data_1m' order by c.range_start",
            )
            .fetch_all(&db.pool)
            .await
            .unwrap();
            let whole_days: Vec<bool> = states
                .iter()
                .filter(|(buckets, _)| *buckets >= 20_000)
                .map(|&(_, compressed)| compressed)
                .collect();
            assert!(
                whole_days.len() >= 2 && whole_days.iter().all(|&c| c),
                "1-minute chunks (buckets, compressed): {states:?}"
            );
        }
        let analyzed: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_user_tables
             where relname = 'raw_data' and last_analyze is not null",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(analyzed, 1, "raw_data analysed after the load on {b:?}");
        let mismatches = tables::rollup_mismatches(&db.pool).await;
        assert!(
            mismatches.is_empty(),
            "rollups differ from raw data on {b:?}: {mismatches:#?}"
        );
    }
}
