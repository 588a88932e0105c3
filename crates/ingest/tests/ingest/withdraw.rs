//! Withdrawal against the fake providers: the grant is revoked at the provider (the old
//! tokens stop working there) and its row deleted, the data stays, and a run afterwards
//! fetches nothing; a provider that cannot be reached keeps the tokens until a later sweep
//! revokes them; the command line withdraws and revokes at once.

use std::sync::Arc;

use chrono_tz::Europe::Berlin;
use tokio_util::sync::CancellationToken;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::lifecycle;
use wearhouse_fakes::{FakeGoogleUser, FakeUser};
use wearhouse_ingest::metrics::IngestMetrics;
use wearhouse_ingest::pipeline::{Pipeline, PipelineArgs};
use wearhouse_ingest::sources::Source;
use wearhouse_ingest::sources::fitbit::{FitbitSource, NoopObserver};
use wearhouse_ingest::sources::registry::Sources;
use wearhouse_ingest::withdraw::{self, Revokers};

use crate::support::{fitbit, google};

const USER: &str = "7QX2LB";

async fn grant_rows(pool: &sqlx::PgPool, p: &str) -> i64 {
    sqlx::query_scalar("select count(*) from oauth_tokens where participant_id = $1")
        .bind(p)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What the fake answers a data request made with `token`.
async fn fitbit_status(env: &fitbit::Env, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/1/user/-/devices.json", env.fake.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_sweep_revokes_a_withdrawn_participants_grant_and_a_run_then_fetches_nothing() {
    let env = fitbit::env(vec![
        FakeUser::new(USER, Berlin).last_sync("2026-10-08T06:00:00"),
    ])
    .await;
    let p = env.enrol("P001", USER, Berlin).await;
    let token = env.token_row(&p).await.access_token;
    assert_eq!(fitbit_status(&env, &token).await, 200);
    let pool = &env.db.pool;
    let metrics = IngestMetrics::unregistered();
    let revokers = Revokers::from_managers([env.source.api().tokens().clone()]);

    // Nobody withdrawn: the sweep leaves the grant alone.
    let report = withdraw::sweep(pool, &revokers, &metrics).await.unwrap();
    assert_eq!(report, withdraw::SweepReport::default());
    assert_eq!(grant_rows(pool, "P001").await, 1);

    // The API marks the participant withdrawn; the next sweep revokes and deletes.
    let mut conn = pool.acquire().await.unwrap();
    lifecycle::withdraw(&mut conn, &p.id, "withdrew consent", "coord@example.org")
        .await
        .unwrap();
    assert!(lifecycle::grant_pending(&mut *conn, &p.id).await.unwrap());
    drop(conn);
    let report = withdraw::sweep(pool, &revokers, &metrics).await.unwrap();
    assert_eq!(report.revoked, 1, "{report:?}");
    assert_eq!(grant_rows(pool, "P001").await, 0);
    assert_eq!(
        fitbit_status(&env, &token).await,
        401,
        "revoked at the provider"
    );
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action = 'grant_revoked'
           and participant_ids = '{P001}' and actor = 'wearhouse-ingest daemon'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // A run afterwards asks the provider nothing about the participant.
    let before = env.fake.requests().len();
    let source: Arc<dyn Source> = Arc::new(env.worker());
    let report = Pipeline::new(
        pool.clone(),
        Sources::from_sources([source]),
        metrics.clone(),
        PipelineArgs::default(),
    )
    .await
    .unwrap()
    .run(&CancellationToken::new())
    .await
    .unwrap();
    assert_eq!(report.participants, 0);
    assert_eq!(env.fake.requests().len(), before);
}

#[tokio::test]
async fn an_unreachable_provider_keeps_the_tokens_until_a_later_sweep_revokes_them() {
    let env = fitbit::env(vec![
        FakeUser::new(USER, Berlin).last_sync("2026-10-08T06:00:00"),
    ])
    .await;
    let p = env.enrol("P001", USER, Berlin).await;
    let token = env.token_row(&p).await.access_token;
    let pool = &env.db.pool;
    let metrics = IngestMetrics::unregistered();
    let mut conn = pool.acquire().await.unwrap();
    lifecycle::withdraw(&mut conn, &p.id, "r", "cli x")
        .await
        .unwrap();
    drop(conn);

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut args = fitbit::args_for(&env.fake);
    args.api_url = dead_url.parse().unwrap();
    let dead = FitbitSource::new(
        pool.clone(),
        crate::support::token_key(),
        &args,
        Arc::new(NoopObserver),
    )
    .unwrap();
    let report = withdraw::sweep(
        pool,
        &Revokers::from_managers([dead.api().tokens().clone()]),
        &metrics,
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(
        grant_rows(pool, "P001").await,
        1,
        "the tokens stay until revoked"
    );
    assert_eq!(fitbit_status(&env, &token).await, 200);

    let live = Revokers::from_managers([env.source.api().tokens().clone()]);
    let report = withdraw::sweep(pool, &live, &metrics).await.unwrap();
    assert_eq!(report.revoked, 1, "{report:?}");
    assert_eq!(grant_rows(pool, "P001").await, 0);
    assert_eq!(fitbit_status(&env, &token).await, 401);
}

#[tokio::test]
async fn the_command_withdraws_and_revokes_a_google_health_grant_at_once() {
    const HEALTH_USER: &str = "1173016576421350648";
    let env = google::env(vec![
        FakeGoogleUser::new(HEALTH_USER, Berlin).last_sync("2026-10-08T06:00:00Z"),
    ])
    .await;
    env.enrol("P002", HEALTH_USER, Berlin).await;
    let g = env.fake.url();
    let g = g.trim_end_matches('/');
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["participant", "withdraw", "--participant", "P002"])
        .args(["--reason", "asked by phone", "--database-url", &env.db.url])
        .arg("--token-key-file")
        .arg(crate::support::token_key_file())
        .args(["--google-client-id", google::CLIENT_ID])
        .args(["--google-client-secret", google::SECRET])
        .args(["--google-api-url", g])
        .args(["--google-token-url", &format!("{g}/token")])
        .args(["--google-revoke-url", &format!("{g}/revoke")])
        .args(["--google-retry-base-ms", "10"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("participant P002 withdrawn"), "{stdout}");
    assert!(
        stdout.contains("grant at google-health revoked and deleted"),
        "{stdout}"
    );
    assert!(env.fake.is_revoked(HEALTH_USER));
    assert_eq!(grant_rows(&env.db.pool, "P002").await, 0);
    let mut conn = env.db.pool.acquire().await.unwrap();
    let w = lifecycle::withdrawal(&mut conn, &ParticipantId::parse("P002").unwrap())
        .await
        .unwrap();
    assert_eq!(w.status, "withdrawn");
    assert_eq!(w.withdrawal_reason.as_deref(), Some("asked by phone"));
    assert!(w.withdrawn_by.unwrap().starts_with("cli "));

    // An unknown participant gets a clear error.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["participant", "withdraw", "--participant", "NOBODY"])
        .args(["--reason", "x", "--database-url", &env.db.url])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no participant NOBODY"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
