//! Faults of a trial's operations, with the real `wearhouse-api` binary: its database server
//! restarted under load, and SIGTERM while a large export is still streaming.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::{OwnCluster, TestDb, grant_test_admin};
use wearhouse_core::{Metric, ParticipantId, Sample};

use crate::process::ApiProcess;
use crate::support::*;

/// What one request of the load got.
#[derive(Debug)]
struct Seen {
    /// When the request was sent.
    sent: Instant,
    /// Status and JSON body, or why there was no answer.
    answer: Result<(u16, serde_json::Value), String>,
}

/// Counts of the load's answers so far, for the test to wait on.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    unavailable: AtomicUsize,
}

/// Waits (at most a minute, a bound for a hung test) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_the_database_server_under_load_gives_json_503s_then_200s_and_the_api_lives_on()
 {
    let cluster = OwnCluster::start();
    let db = cluster.database().await;
    seed(&db).await;
    grant_test_admin(&db.pool).await;
    db.pool.close().await;
    let mut api = ApiProcess::serve(&db.url, &["--db-acquire-timeout-secs", "2"]).await;
    let q = "/data?participant_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02";

    // Four clients ask in a loop until told to stop (each at most 20,000 times).
    let stop = CancellationToken::new();
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (api.client.clone(), format!("{}{q}", api.base));
            let (stop, tally) = (stop.clone(), tally.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..20_000 {
                    if stop.is_cancelled() {
                        break;
                    }
                    let sent = Instant::now();
                    let answer = match client.get(&url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            r.json::<serde_json::Value>()
                                .await
                                .map(|body| (status, body))
                                .map_err(|e| format!("{status} without a JSON body: {e}"))
                        }
                        Err(e) => Err(format!("no answer: {e}")),
                    };
                    match &answer {
                        Ok((200, _)) => tally.ok.fetch_add(1, Ordering::SeqCst),
                        Ok((503, _)) => tally.unavailable.fetch_add(1, Ordering::SeqCst),
                        _ => 0,
                    };
                    seen.push(Seen { sent, answer });
                }
                seen
            })
        })
        .collect();

    until("a steady load", || tally.ok.load(Ordering::SeqCst) >= 20).await;
    let down_at = Instant::now();
    let c = Arc::new(cluster);
    let c2 = c.clone();
    tokio::task::spawn_blocking(move || c2.stop())
        .await
        .unwrap();
    // The server stays down until the load has met it: a request needs a new connection and
    // finds the port closed.
    until("a 503 while the server is down", || {
        tally.unavailable.load(Ordering::SeqCst) >= 1
    })
    .await;
    let c2 = c.clone();
    tokio::task::spawn_blocking(move || c2.start_again())
        .await
        .unwrap();
    let back_at = Instant::now();
    let ok_before = tally.ok.load(Ordering::SeqCst);
    until("200s after the restart", || {
        tally.ok.load(Ordering::SeqCst) >= ok_before + 40
    })
    .await;
    stop.cancel();
    let mut seen = Vec::new();
    for c in clients {
        seen.extend(c.await.unwrap());
    }

    let mut unavailable = 0;
    for s in &seen {
        match &s.answer {
            Ok((200, _)) => {}
            Ok((503, body)) => {
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                assert!(
                    s.sent < back_at,
                    "a request sent after the server was back got 503: {body}"
                );
                unavailable += 1;
            }
            Ok((status, body)) => panic!("{status}: {body}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(unavailable >= 1);
    assert!(api.is_running(), "the API died with its database server");
    let first_ok_after = seen
        .iter()
        .filter(|s| s.sent >= back_at && matches!(s.answer, Ok((200, _))))
        .map(|s| s.sent)
        .min()
        .expect("200s after the restart");
    println!(
        "database server restart under 4 clients: {unavailable} of {} requests answered 503; \
         server down for {:.2} s; first 200 {:.3} s after it was back",
        seen.len(),
        (back_at - down_at).as_secs_f64(),
        (first_ok_after - back_at).as_secs_f64()
    );
    api.signal("TERM");
    let status = api.child.wait().await.unwrap();
    assert!(status.success(), "the API exited with {status}");
}

/// The number a `select count(*) …` answers.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Heart-rate samples of the large export: one a second.
const EXPORT_ROWS: i64 = 400_000;

#[tokio::test]
async fn sigterm_lets_a_large_csv_export_in_flight_finish_before_the_api_exits() {
    let db = TestDb::new(preferred_backend().await).await;
    seed(&db).await;
    grant_test_admin(&db.pool).await;
    let p = ParticipantId::parse("P004").unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: p.clone(),
            timezone: chrono_tz::UTC,
            provider: Some("fitbit".into()),
            enrolled_at: None,
            study_id: None,
        },
    )
    .await
    .unwrap();
    let start = t("2025-07-01T00:00:00Z");
    let samples: Vec<Sample> = (0..EXPORT_ROWS)
        .map(|k| {
            Sample::numeric(
                p.clone(),
                Metric::HeartRate,
                start + chrono::Duration::seconds(k),
                60.0 + (k % 40) as f64,
            )
        })
        .collect();
    SampleWriter::new(&db.backend)
        .write(&mut conn, &samples)
        .await
        .unwrap();
    drop(conn);
    let mut api = ApiProcess::serve(&db.url, &[]).await;

    let r = api
        .client
        .get(format!(
            "{}/data.csv?participant_id=P004&metric=heart_rate&resolution=raw\
             &start_date=2025-07-01&end_date=2025-07-10",
            api.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();
    // The export is far larger than every buffer between the database and this client, so
    // the API is still sending rows while this client does not read.
    let sending: i64 = count(
        &db.pool,
        "select count(*) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and state = 'active' and query ilike '%raw_data%'",
    )
    .await;
    assert_eq!(sending, 1, "the export is in flight");

    let before_sigterm = received.len();
    api.signal("TERM");
    // Draining: new connections are refused while the export goes on.
    let address = api.base.trim_start_matches("http://").to_owned();
    let mut refused = false;
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(&address).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the API kept accepting connections after SIGTERM");
    assert!(
        api.is_running(),
        "the API exited with the export unfinished"
    );
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.expect("the export is not cut off"));
    }
    println!(
        "SIGTERM with a CSV export in flight: {before_sigterm} bytes read before it, all {} \
         bytes ({} rows) after it",
        received.len(),
        EXPORT_ROWS
    );
    let text = String::from_utf8(received).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as i64, EXPORT_ROWS + 1, "header and every row");
    assert!(lines[0].starts_with("participant_id,timestamp,value"));
    let last = start + chrono::Duration::seconds(EXPORT_ROWS - 1);
    assert!(
        lines
            .last()
            .unwrap()
            .contains(&last.format("%Y-%m-%dT%H:%M:%S").to_string()),
        "{}",
        lines.last().unwrap()
    );
    let status = api.child.wait().await.unwrap();
    assert!(status.success(), "the API exited with {status}");
}
