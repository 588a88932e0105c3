//! The real `wearhouse-impute worker` meets faults: `kill -9` in the middle of a queue (the job
//! it was writing is rolled back and taken again by the next worker, the queued ones are run,
//! and no job runs twice or writes its output twice), and a final write slow enough for a
//! heartbeat to fall due while it runs.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;
use wearhouse_core::Metric;

use crate::support::*;

/// Starts `wearhouse-impute worker` as `worker_id` with `extra` arguments and waits until it
/// has started; returns it and the address of its `/metrics`.
async fn worker(database_url: &str, worker_id: &str, extra: &[&str]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wearhouse-impute"))
        .args(["worker", "--database-url", database_url])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--worker-id", worker_id, "--concurrency", "1"])
        .args(extra)
        .env("WEARHOUSE_LOG", "info")
        .env("WEARHOUSE_LOG_FORMAT", "pretty")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("impute worker started") {
                return true;
            }
        }
        false
    };
    let started = tokio::time::timeout(Duration::from_secs(60), started).await;
    assert!(started.unwrap_or(false), "the worker never started");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://127.0.0.1:{port}/metrics"))
}

/// An uncommitted row with the key of `job`'s output at minute `minute`: the worker's insert of
/// that job's output waits on it, inside the transaction that would mark the job succeeded,
/// until the returned transaction ends.
async fn hold_output(
    db: &wearhouse_core::testing::TestDb,
    participant: &str,
    job: Uuid,
    minute: i64,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = db.pool.begin().await.unwrap();
    // Without the foreign key's check, which would lock the job's row and so stop the worker
    // earlier, when it locks that row to finish the job.
    sqlx::query("set local session_replication_role = replica")
        .execute(&mut *holder)
        .await
        .unwrap();
    sqlx::query(
        "insert into imputed_data (timestamp, participant_id, data_type, is_imputed, method, job_id)
         values ($1, $2, 'steps', false, 'held', $3)",
    )
    .bind(minutes(minute))
    .bind(participant)
    .bind(job)
    .execute(&mut *holder)
    .await
    .unwrap();
    holder
}

/// Waits (at most a minute) until at least `n` backends wait for a lock.
async fn until_waiting_for_a_lock(db: &wearhouse_core::testing::TestDb, n: i64) {
    for _ in 0..600 {
        if waiting_for_a_lock(db).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} backends ever waited for a lock");
}

/// The backends of the test's database that wait for a lock.
async fn waiting_for_a_lock(db: &wearhouse_core::testing::TestDb) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_worker_killed_in_the_middle_of_a_queue_loses_no_job_and_runs_none_twice() {
    let db = db().await;
    let p = enrol(&db.pool, "P020").await;
    write(
        &db,
        &steps_samples(&p, 6 * 60, &[(20, 25), (140, 150), (300, 302)]),
    )
    .await;
    let mut ids: Vec<Uuid> = Vec::new();
    for k in 0..6 {
        ids.push(queue(&db.pool, &p, Metric::Steps, k * 60, k * 60 + 60).await);
    }
    let holder = hold_output(&db, "P020", ids[2], 120).await;
    let (mut first, _) = worker(&db.url, "w-killed", &["--poll-secs", "1"]).await;
    until_waiting_for_a_lock(&db, 1).await;
    let before: Vec<_> = jobs_now(&db, &ids).await;
    assert_eq!(
        before.iter().map(|j| j.status.as_str()).collect::<Vec<_>>(),
        [
            "succeeded",
            "succeeded",
            "running",
            "queued",
            "queued",
            "queued"
        ]
    );

    first.start_kill().unwrap();
    first.wait().await.unwrap();
    holder.rollback().await.unwrap();
    // A short lease, so the killed worker's job is taken again soon.
    let (mut second, metrics) = worker(
        &db.url,
        "w-new",
        &[
            "--poll-secs",
            "1",
            "--lease-secs",
            "3",
            "--heartbeat-secs",
            "1",
        ],
    )
    .await;
    for (k, id) in ids.iter().enumerate() {
        let j = finished(&db.pool, *id).await;
        assert_eq!(j.status, "succeeded", "{j:?}");
        let rows = output(&db.pool, *id).await;
        assert_eq!(rows.len(), 60, "job {k}: one row per minute, once");
        assert!(rows.iter().all(|r| r.method != "held"));
        match k {
            // Done before the kill: not run again.
            0 | 1 => assert_eq!(j, before[k]),
            // Being written at the kill: taken again by the new worker.
            2 => assert_eq!((j.worker.as_deref(), j.attempts), (Some("w-new"), 2)),
            _ => assert_eq!((j.worker.as_deref(), j.attempts), (Some("w-new"), 1)),
        }
    }
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(
        text.contains("wearhouse_impute_jobs_total{outcome=\"succeeded\"} 4"),
        "the new worker ran each of the four unfinished jobs once:\n{text}"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &second.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(second.wait().await.unwrap().success());
}

async fn jobs_now(
    db: &wearhouse_core::testing::TestDb,
    ids: &[Uuid],
) -> Vec<wearhouse_core::store::jobs::JobRecord> {
    let mut out = Vec::new();
    for id in ids {
        out.push(job(&db.pool, *id).await);
    }
    out
}

/// A heartbeat that falls due while the job's output is being written waits for the row that
/// the writing transaction holds; the write must still be carried to its commit meanwhile, or
/// the two wait for each other for ever (the job stuck in `running`, its row locked, the slot
/// gone).
#[tokio::test]
async fn a_heartbeat_due_during_the_final_write_does_not_stall_the_job() {
    let db = db().await;
    let p = enrol(&db.pool, "P021").await;
    write(&db, &steps_samples(&p, 60, &[(20, 25)])).await;
    let id = queue(&db.pool, &p, Metric::Steps, 0, 60).await;
    let holder = hold_output(&db, "P021", id, 0).await;
    let (mut w, metrics) = worker(&db.url, "w-slow-write", &["--heartbeat-secs", "1"]).await;
    // The output's insert waits on the held row, and then a heartbeat on the job's row.
    until_waiting_for_a_lock(&db, 2).await;
    holder.rollback().await.unwrap();

    let j = finished(&db.pool, id).await;
    assert_eq!(j.status, "succeeded", "{j:?}");
    assert_eq!(j.attempts, 1);
    assert_eq!(output(&db.pool, id).await.len(), 60);
    // The heartbeat that waited finds the job no longer running once the write commits; the
    // worker still counts a success, not a lost lease.
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(
        text.contains("wearhouse_impute_jobs_total{outcome=\"succeeded\"} 1"),
        "{text}"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &w.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(w.wait().await.unwrap().success());
}
