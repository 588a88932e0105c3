//! `Idempotency-Key` on `POST /data/run_imputation`: a retry with the same key gets the first
//! answer and queues nothing new; the same key with another request is a 422; a key is the
//! caller's own and is forgotten after 24 hours. (`POST /contact`: tests/contact.)

use serde_json::Value;
use wearhouse_core::store::users::Role;

use crate::access::user_with_token;
use crate::support::*;

const RUN: &str =
    "/data/run_imputation?user_id=P001&metric=heart_rate&start_date=2025-06-01&end_date=2025-06-02";

/// POST `path` with an optional key and token (default: the test admin's): status, JSON answer,
/// and whether it was marked as a replay.
async fn post(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    token: Option<&str>,
) -> (u16, Value, bool) {
    let mut request = app.client.post(format!("{}{path}", app.base));
    if let Some(k) = key {
        request = request.header("idempotency-key", k);
    }
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, r.json().await.unwrap(), replayed)
}

async fn jobs(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from imputation_jobs")
        .fetch_one(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_queues_nothing_new() {
    let app = spawn_app().await;
    let (status, first, replayed) = post(&app, RUN, Some("retry-1"), None).await;
    assert_eq!((status, replayed), (202, false), "{first}");
    let (status, again, replayed) = post(&app, RUN, Some("retry-1"), None).await;
    assert_eq!((status, replayed), (202, true), "{again}");
    assert_eq!(again, first);
    assert_eq!(jobs(&app).await, 1);

    // The same key for another request: refused, nothing queued.
    let other = RUN.replace("2025-06-02", "2025-06-03");
    let (status, body, _) = post(&app, &other, Some("retry-1"), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(body["error"]["parameter"], "Idempotency-Key");
    assert_eq!(jobs(&app).await, 1);

    // Without a key, or with another one, each request queues a job.
    let (_, a, _) = post(&app, RUN, None, None).await;
    let (_, b, _) = post(&app, RUN, Some("retry-2"), None).await;
    assert_ne!(a["job_id"], first["job_id"]);
    assert_ne!(b["job_id"], first["job_id"]);
    assert_eq!(jobs(&app).await, 3);

    // A key is its caller's: another user's same key is a new request.
    let researcher = user_with_token(&app, "r@example.org", Role::Researcher, &["default"]).await;
    let (status, theirs, replayed) = post(&app, RUN, Some("retry-1"), Some(&researcher)).await;
    assert_eq!((status, replayed), (202, false), "{theirs}");
    assert_ne!(theirs["job_id"], first["job_id"]);
    assert_eq!(jobs(&app).await, 4);

    // After 24 hours the key is forgotten.
    sqlx::query("update idempotency_keys set created_at = now() - interval '25 hours'")
        .execute(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    let (status, later, replayed) = post(&app, RUN, Some("retry-1"), None).await;
    assert_eq!((status, replayed), (202, false), "{later}");
    assert_ne!(later["job_id"], first["job_id"]);
    assert_eq!(jobs(&app).await, 5);
}

#[tokio::test]
async fn a_retry_while_the_first_runs_is_a_409_bad_keys_are_a_400_and_refusals_are_replayed() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    let (status, _, _) = post(&app, RUN, Some("running"), None).await;
    assert_eq!(status, 202);
    // As if the first request had claimed the key and not answered yet.
    sqlx::query("update idempotency_keys set status = null, body = null where key = 'running'")
        .execute(pool)
        .await
        .unwrap();
    let (status, body, _) = post(&app, RUN, Some("running"), None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(jobs(&app).await, 1);

    for bad in ["", "with space", &"k".repeat(256)] {
        let (status, body, _) = post(&app, RUN, Some(bad), None).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(body["error"]["parameter"], "Idempotency-Key");
    }

    // A refusal (here: no such participant) is an answer too, and is replayed.
    let (status, first, _) = post(&app, &RUN.replace("P001", "P999"), Some("unknown"), None).await;
    assert_eq!(status, 404, "{first}");
    let (status, again, replayed) =
        post(&app, &RUN.replace("P001", "P999"), Some("unknown"), None).await;
    assert_eq!((status, replayed), (404, true));
    assert_eq!(again, first);
    assert_eq!(jobs(&app).await, 1);
}
