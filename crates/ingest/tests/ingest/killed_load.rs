//! `kill -9` of `wearhouse-ingest synthetic` (the cohort load through the real pipeline and
//! sink) at a chosen point of the load, not at a random moment: once its first participant is
//! loaded and the others are being written. One more run completes, and the database then holds
//! exactly what a clean single run leaves.

use std::process::Stdio;

use sqlx::PgPool;

use crate::support::process::{Logs, run_ok};
use crate::support::tables;
use wearhouse_core::testing::{TestDb, backends};

fn synthetic(url: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"));
    cmd.args(["synthetic", "--start", "2025-06-01"])
        .args(["--participants", "4", "--days", "3", "--seed", "9"])
        .args(["--workers", "1", "--database-url", url]);
    cmd
}

/// Server sessions of the test's database, other than the asking one, that are not idle: a
/// killed client's statement runs on until it next talks to the gone client.
async fn busy_sessions(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_load_killed_after_its_first_participant_and_run_once_more_equals_a_clean_run() {
    for b in backends().await {
        let clean = TestDb::new(b).await;
        let mut cmd = synthetic(&clean.url);
        cmd.env("WEARHOUSE_LOG", "warn").stdout(Stdio::null());
        run_ok(cmd);
        tables::refresh_all(&clean.pool).await;
        let expected = tables::checksums(&clean.pool).await;

        let db = TestDb::new(b).await;
        let mut child = tokio::process::Command::from(synthetic(&db.url))
            .env("WEARHOUSE_LOG", "info")
            .env("WEARHOUSE_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut logs = Logs::of(&mut child);
        logs.until("participant done").await;
        // SIGKILL: no chance to clean up.
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let partial = tables::checksums(&db.pool).await;
        assert!(
            partial[0].1 < expected[0].1,
            "the kill landed after the load on {b:?}: {partial:?}"
        );
        let mut ended = false;
        for _ in 0..600 {
            if busy_sessions(&db.pool).await == 0 {
                ended = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ended, "the killed load's sessions never ended on {b:?}");

        let mut again = synthetic(&db.url);
        again.env("WEARHOUSE_LOG", "warn").stdout(Stdio::null());
        run_ok(again);
        tables::refresh_all(&db.pool).await;
        let got = tables::checksums(&db.pool).await;
        println!(
            "killed after the first participant ({} raw rows then), completed by one more run on \
             {b:?}: {got:?}",
            partial[0].1
        );
        assert_eq!(got, expected, "rows and checksums differ on {b:?}");
        let (got, want) = (
            tables::snapshot(&db.pool).await,
            tables::snapshot(&clean.pool).await,
        );
        assert!(got.raw == want.raw, "raw_data differs on {b:?}");
        assert!(got.rollups == want.rollups, "rollups differ on {b:?}");
        assert_eq!(got.watermarks, want.watermarks, "on {b:?}");
        let pending: i64 = sqlx::query_scalar("select count(*) from rollup_refresh_pending")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(pending, 0);
        let mismatches = tables::rollup_mismatches(&db.pool).await;
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
}
