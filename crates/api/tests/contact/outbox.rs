//! The outbox across replicas: a replica that dies mid-send holds only the request it was
//! sending, and only for the lease; a slow send keeps its lease; every request is e-mailed once,
//! under a `Message-ID` derived from the request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wearhouse_api::contact::mailer::Mailer;
use wearhouse_api::contact::outbox::Outbox;
use wearhouse_api::contact::settings::ContactArgs;
use wearhouse_core::store::contact::{self, NewRequest};
use wearhouse_core::testing::{TestBackend, TestDb};

use crate::sink::{self, Mail, Sink};
use crate::support::settings;

/// An outbox replica sending to `smtp_port` with a lease of `lease_secs`.
fn replica(db: &TestDb, smtp_port: u16, lease_secs: u64) -> Arc<Outbox> {
    let args = ContactArgs {
        contact_lease_secs: lease_secs,
        ..settings(smtp_port)
    };
    Arc::new(Outbox::new(
        db.pool.clone(),
        Mailer::new(&args).unwrap(),
        &args,
    ))
}

/// Stores `n` requests and returns their ids.
async fn store(db: &TestDb, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let subject = format!("Request {i}");
        let id = contact::insert(
            &db.pool,
            NewRequest {
                participant_id: "P001",
                requester_name: "Dr Ada Example",
                requester_email: "ada@example.org",
                subject: &subject,
                message: "Could you check the charger?",
            },
        )
        .await
        .unwrap();
        ids.push(id);
    }
    ids
}

/// The request a message is about, from its body.
fn request_of(mail: &Mail) -> i64 {
    let at = mail
        .data
        .find("Request: #")
        .expect("the request id in the body")
        + 10;
    let digits: String = mail.data[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// The message's `Message-ID` header value.
fn message_id(mail: &Mail) -> String {
    mail.data
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("a Message-ID header")
        .trim()
        .to_owned()
}

/// Waits (up to 30 s) until `sql`, a count, returns `want`.
async fn until_count(db: &TestDb, sql: &str, want: i64) {
    for _ in 0..300 {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap();
        if n == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql} did not reach {want}");
}

/// (id, status, attempts) of every request, oldest first.
async fn rows(db: &TestDb) -> Vec<(i64, String, i32)> {
    sqlx::query_as("select id, status, attempts from contact_requests order by id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replica_killed_mid_send_holds_only_that_request_and_another_sends_each_once() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let ids = store(&db, 3).await;

    // The first replica's mail server never answers: it is stuck in its first send.
    let (silent, silent_task) = sink::start_silent().await;
    let first = replica(&db, silent.port(), 2);
    let first_task = tokio::spawn(first.clone().run(CancellationToken::new()));
    until_count(
        &db,
        "select least(count(*), 1) from contact_requests where attempts > 0",
        1,
    )
    .await;
    // Mid-send it holds only the request it is sending: the others are due for any replica.
    let due: i64 = sqlx::query_scalar(
        "select count(*) from contact_requests where status <> 'sent' and next_attempt_at <= now()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(due, 2, "{:?}", rows(&db).await);
    let (held, _, _) = rows(&db).await.into_iter().find(|r| r.2 == 1).unwrap();

    // The replica dies; another (or the restarted API) sends everything, the held request
    // once its two-second lease has run out.
    first_task.abort();
    let _ = first_task.await;
    drop(first);
    let mut sink = Sink::start("127.0.0.1:0").await;
    let second = replica(&db, sink.addr.port(), 2);
    let stop = CancellationToken::new();
    tokio::spawn(second.run(stop.clone()));
    let mut per_request = BTreeMap::<i64, Vec<String>>::new();
    for _ in 0..3 {
        let mail = sink.next(30).await;
        per_request
            .entry(request_of(&mail))
            .or_default()
            .push(message_id(&mail));
    }
    until_count(
        &db,
        "select count(*) from contact_requests where status = 'sent'",
        3,
    )
    .await;
    stop.cancel();
    silent_task.abort();

    assert_eq!(per_request.keys().copied().collect::<Vec<_>>(), ids);
    for (id, message_ids) in &per_request {
        assert_eq!(message_ids.len(), 1, "request {id} e-mailed once");
        assert!(
            message_ids[0].starts_with(&format!("<contact-request.{id}."))
                && message_ids[0].ends_with("@example.org>"),
            "{message_ids:?}"
        );
    }
    assert!(sink.try_next().is_none(), "no further e-mail");
    // The held request took a second attempt; the others were sent on their first.
    for (id, status, attempts) in rows(&db).await {
        assert_eq!(status, "sent");
        assert_eq!(attempts, if id == held { 2 } else { 1 }, "request {id}");
    }
}

#[tokio::test]
async fn a_send_slower_than_the_lease_keeps_it_and_no_other_replica_sends_the_request_too() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let ids = store(&db, 1).await;
    // The mail server takes three leases to accept a message.
    let mut sink = Sink::start_slow("127.0.0.1:0", Duration::from_secs(6)).await;
    let stop = CancellationToken::new();
    tokio::spawn(replica(&db, sink.addr.port(), 2).run(stop.clone()));
    until_count(
        &db,
        "select count(*) from contact_requests where attempts = 1",
        1,
    )
    .await;
    // A second replica runs while the first is sending.
    tokio::spawn(replica(&db, sink.addr.port(), 2).run(stop.clone()));

    let mail = sink.next(30).await;
    assert_eq!(request_of(&mail), ids[0]);
    until_count(
        &db,
        "select count(*) from contact_requests where status = 'sent'",
        1,
    )
    .await;
    stop.cancel();
    // The first replica renewed its lease throughout: the second never claimed the request.
    assert_eq!(rows(&db).await, [(ids[0], "sent".to_owned(), 1)]);
    assert!(sink.try_next().is_none(), "e-mailed once");
}

#[tokio::test]
async fn an_email_sent_again_after_a_crash_before_it_was_recorded_keeps_its_message_id() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let ids = store(&db, 2).await;
    let mut sink = Sink::start("127.0.0.1:0").await;
    let outbox = replica(&db, sink.addr.port(), 2);
    assert_eq!(outbox.deliver_due().await.unwrap(), 2);
    let mut first = BTreeMap::new();
    for _ in 0..2 {
        let mail = sink.next(30).await;
        first.insert(request_of(&mail), message_id(&mail));
    }
    assert_ne!(first[&ids[0]], first[&ids[1]], "one id per request");

    // A sent request is never sent again.
    assert_eq!(outbox.deliver_due().await.unwrap(), 0);
    assert!(sink.try_next().is_none());

    // What a crash between the server's acceptance and the record leaves: the request unsent.
    sqlx::query(
        "update contact_requests set status = 'pending', sent_at = null,
                                next_attempt_at = now() where id = $1",
    )
    .bind(ids[0])
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(outbox.deliver_due().await.unwrap(), 1);
    let again = sink.next(30).await;
    assert_eq!(request_of(&again), ids[0]);
    assert_eq!(
        message_id(&again),
        first[&ids[0]],
        "the copy can be recognised"
    );
}

#[tokio::test]
async fn a_replica_whose_lease_was_taken_over_changes_nothing_when_its_send_ends() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let ids = store(&db, 1).await;
    let first = contact::claim_next(&db.pool, 2.0).await.unwrap().unwrap();
    // The first replica's lease runs out (its database connection was lost, say) and another
    // claims the request and sends it.
    sqlx::query("update contact_requests set next_attempt_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    let second = contact::claim_next(&db.pool, 2.0).await.unwrap().unwrap();
    assert_eq!((first.attempts, second.attempts), (1, 2));
    assert!(
        contact::renew_lease(&db.pool, ids[0], second.attempts, 2.0)
            .await
            .unwrap()
    );
    contact::mark_sent(&db.pool, ids[0]).await.unwrap();

    // The first replica's heartbeat learns it lost the request, and its late failure does not
    // turn the sent request back into one to send again.
    assert!(
        !contact::renew_lease(&db.pool, ids[0], first.attempts, 2.0)
            .await
            .unwrap()
    );
    contact::mark_failed(&db.pool, ids[0], first.attempts, "timed out", 1.0)
        .await
        .unwrap();
    assert_eq!(rows(&db).await, [(ids[0], "sent".to_owned(), 2)]);
    assert_eq!(contact::next_due(&db.pool).await.unwrap(), None);
}
