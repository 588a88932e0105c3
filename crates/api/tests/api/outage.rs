//! The database goes away while requests arrive, and comes back: the API answers 503 while it
//! is gone and 200 once it returns, without a restart. A statement that runs too long is
//! cancelled by the database itself.

use std::net::SocketAddr;
use std::time::Duration;

use wearhouse_api::error::{ApiError, is_statement_timeout};
use wearhouse_api::startup::{ServeArgs, api_pool};
use wearhouse_core::testing::TestDb;

use crate::support::*;

#[tokio::test]
async fn the_api_answers_503_while_the_database_is_cut_off_and_recovers_by_itself() {
    let seeded = spawn_app().await;
    let db = seeded.db.as_ref().unwrap();
    let url: url::Url = db.url.parse().unwrap();
    let target: SocketAddr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
        .parse()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let mut via_proxy = url.clone();
    via_proxy.set_port(Some(proxy.addr.port())).unwrap();
    let scrape = ScrapeToken::new();
    let app = spawn_at(database(via_proxy.to_string()), scrape.args()).await;
    let q = "/data?participant_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02";

    let (status, before) = app.get_json(q).await;
    assert_eq!(status, 200, "{before}");

    // Requests keep arriving throughout; each gets 200 or a JSON 503, never anything else.
    let client = app.client.clone();
    let url = format!("{}{q}", app.base);
    let load = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..40 {
            let r = client
                .get(&url)
                .send()
                .await
                .expect("an answer, not a hang");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.expect("a JSON body");
            if status == 503 {
                assert_eq!(body["error"]["code"], "unavailable");
            } else {
                assert_eq!(status, 200, "{body}");
            }
            seen.push(status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    });

    proxy.cut().await;
    let (status, body) = app.get_json(q).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let (status, ready) = app.get_json("/ready").await;
    assert_eq!((status, &ready["database"]), (503, &"unreachable".into()));
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);
    // Prometheus' scrape token needs no database, so the metrics still answer.
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&scrape.token)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);

    proxy.restore();
    let mut recovered = None;
    for _ in 0..60 {
        let (status, body) = app.get_json(q).await;
        if status == 200 {
            recovered = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = recovered.expect("the API answers 200 again once the database is back");
    assert_eq!(after, before);
    let (status, _) = app.get_json("/ready").await;
    assert_eq!(status, 200);

    let seen = load.await.unwrap();
    assert!(seen.contains(&503), "{seen:?}");
}

#[tokio::test]
async fn a_statement_that_outlasts_the_statement_timeout_is_cancelled_by_the_database() {
    let (_, url) = TestDb::empty().await;
    let args = ServeArgs {
        statement_timeout_secs: 1,
        ..ServeArgs::default()
    };
    let pool = api_pool(&database(url.clone()), &args).unwrap();
    let setting: String = sqlx::query_scalar("show statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(setting, "1s");
    // Without the timeout this sleeps for a minute and succeeds.
    let e = sqlx::query("select pg_sleep(60)")
        .execute(&pool)
        .await
        .expect_err("the statement is cancelled");
    let e = wearhouse_core::Error::from(e);
    assert!(is_statement_timeout(&e), "{e:?}");
    let e = ApiError::from(e);
    assert!(matches!(e, ApiError::Timeout), "{e:?}");
    assert_eq!(e.status(), 503);
    // The connection stays usable for the next request.
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);

    let off = ServeArgs {
        statement_timeout_secs: 0,
        ..ServeArgs::default()
    };
    let pool = api_pool(&database(url), &off).unwrap();
    let setting: String = sqlx::query_scalar("show statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(setting, "0");
}
