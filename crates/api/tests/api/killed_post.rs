//! `kill -9` of the real `wearhouse-api` in the middle of a request that creates something
//! (an imputation job, a contact request for the outbox): the client sees a connection error
//! and nothing is half-written.

use std::time::Duration;

use sqlx::PgPool;
use wearhouse_core::testing::{TestDb, grant_test_admin};

use crate::faults::count;
use crate::process::ApiProcess;
use crate::support::*;

/// The backends of the test's database, other than the asking one, that wait for a lock, with
/// whether each has written to `table` in its open transaction.
async fn waiting_for_a_lock(pool: &PgPool, table: &str) -> Vec<(i32, bool)> {
    sqlx::query_as(
        "select a.pid, exists (select 1 from pg_locks l join pg_class c on c.oid = l.relation
                              where l.pid = a.pid and c.relname = $1
                                and l.mode = 'RowExclusiveLock' and l.granted)
         from pg_stat_activity a
         where a.datname = current_database() and a.pid <> pg_backend_pid()
           and a.wait_event_type = 'Lock'",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Sends `request` to `api` and kills the API with SIGKILL while the request stands between
/// writing its row in `table` and its audit row (both in one transaction: holding the audit
/// trail stops it there). The client gets no answer, and once the killed API's server session
/// has ended neither row is there.
async fn kill_between_row_and_audit(
    db: &TestDb,
    api: &mut ApiProcess,
    table: &str,
    action: &str,
    request: reqwest::RequestBuilder,
) {
    let mut holder = db.pool.begin().await.unwrap();
    sqlx::query("lock table audit_log in share mode")
        .execute(&mut *holder)
        .await
        .unwrap();
    let request = tokio::spawn(request.send());
    let mut waiting = Vec::new();
    for _ in 0..600 {
        waiting = waiting_for_a_lock(&db.pool, table).await;
        if !waiting.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let [(backend, row_written)] = waiting[..] else {
        panic!("the request never reached the audit trail: {waiting:?}");
    };
    assert!(
        row_written,
        "the row in {table} is written before its audit row"
    );

    api.signal("KILL");
    api.child.wait().await.unwrap();
    let answer = request.await.unwrap();
    assert!(answer.is_err(), "the client got an answer: {answer:?}");
    holder.rollback().await.unwrap();
    // The killed client's server session ends when it next reads from the gone client.
    until_gone(&db.pool, backend).await;
    let rows = count(&db.pool, &format!("select count(*) from {table}")).await;
    assert_eq!(rows, 0, "a row in {table} without its audit row");
    let audited: i64 = sqlx::query_scalar("select count(*) from audit_log where action = $1")
        .bind(action)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        audited, 0,
        "an audit row of {action} without its row in {table}"
    );
}

#[tokio::test]
async fn an_api_killed_in_the_middle_of_queueing_a_job_leaves_neither_job_nor_audit_row() {
    let db = TestDb::new(preferred_backend().await).await;
    seed(&db).await;
    grant_test_admin(&db.pool).await;
    let mut api = ApiProcess::serve(&db.url, &[]).await;
    let job = "/data/run_imputation?participant_id=P001&metric=steps\
               &start_date=2025-06-01&end_date=2025-06-02";
    let request = api.client.post(format!("{}{job}", api.base));
    kill_between_row_and_audit(
        &db,
        &mut api,
        "imputation_jobs",
        "imputation_requested",
        request,
    )
    .await;

    // The client tries again against the restarted API: one job, audited once. (A retry after
    // a crash between the commit and the answer would queue a second job: requests carry no
    // idempotency key yet.)
    let api = ApiProcess::serve(&db.url, &[]).await;
    let r = api
        .client
        .post(format!("{}{job}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        count(&db.pool, "select count(*) from imputation_jobs").await,
        1
    );
    let audited = "select count(*) from audit_log where action = 'imputation_requested'";
    assert_eq!(count(&db.pool, audited).await, 1);
}

/// The contact form as a browser fills it in: its CSRF token, and the cookie that goes with it.
async fn contact_form(api: &ApiProcess) -> (Vec<(&'static str, String)>, String) {
    let r = api
        .client
        .get(format!("{}/contact?participant_id=P001", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = r.text().await.unwrap();
    let at = html.find("name=\"csrf_token\"").expect("a CSRF token");
    let token = html[at..].split("value=\"").nth(1).unwrap();
    let token = token[..token.find('"').unwrap()].to_owned();
    let fields = vec![
        ("csrf_token", token),
        ("participant_id", "P001".into()),
        ("requester_name", "Dr Ada Example".into()),
        ("requester_email", "ada@example.org".into()),
        ("subject", "Device not worn since Monday".into()),
        (
            "message",
            "Could you check whether the participant needs a new charger?".into(),
        ),
    ];
    (fields, cookie)
}

#[tokio::test]
async fn an_api_killed_in_the_middle_of_storing_a_contact_request_leaves_neither_request_nor_audit_row()
 {
    let db = TestDb::new(preferred_backend().await).await;
    seed(&db).await;
    grant_test_admin(&db.pool).await;
    let mut api = ApiProcess::serve(&db.url, &[]).await;
    let (fields, cookie) = contact_form(&api).await;
    let request = api
        .client
        .post(format!("{}/contact", api.base))
        .header("cookie", &cookie)
        .form(&fields);
    kill_between_row_and_audit(&db, &mut api, "contact_requests", "contact_sent", request).await;

    let api = ApiProcess::serve(&db.url, &[]).await;
    let (fields, cookie) = contact_form(&api).await;
    let r = api
        .client
        .post(format!("{}/contact", api.base))
        .header("cookie", &cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let page = r.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Request recorded"), "{page}");
    assert_eq!(
        count(&db.pool, "select count(*) from contact_requests").await,
        1
    );
    let audited = "select count(*) from audit_log where action = 'contact_sent'";
    assert_eq!(count(&db.pool, audited).await, 1);
}

/// Waits until the server session `pid` has ended.
async fn until_gone(pool: &PgPool, pid: i32) {
    for _ in 0..600 {
        let alive: bool =
            sqlx::query_scalar("select exists (select 1 from pg_stat_activity where pid = $1)")
                .bind(pid)
                .fetch_one(pool)
                .await
                .unwrap();
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server session {pid} did not end within a minute");
}
