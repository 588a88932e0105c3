//! Request limits: a user reading participants' data faster than the configured pace gets 429
//! with `Retry-After` (other users and other routes are not slowed), one request may name at
//! most 100 participants, and one CSV answer streams at most `WEARHOUSE_CSV_MAX_ROWS` rows.

use wearhouse_api::startup::ServeArgs;
use wearhouse_core::store::users::Role;

use crate::access::user_with_token;
use crate::support::*;

const DATA: &str =
    "/data?participant_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02";

#[tokio::test]
async fn a_user_reading_faster_than_the_pace_gets_429_and_no_one_else_is_slowed() {
    let mut args = ServeArgs::default();
    args.auth.read_burst = 3;
    args.auth.read_per_minute = 1;
    let app = spawn_with(preferred_backend().await, args).await;
    for _ in 0..3 {
        assert_eq!(app.get_json(DATA).await.0, 200);
    }
    let r = app.get(DATA).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // The CSV export and the participant archive are data reads too.
    assert_eq!(
        app.get(&DATA.replace("/data?", "/data.csv?"))
            .await
            .status(),
        429
    );
    assert_eq!(app.get("/participants/P001/export").await.status(), 429);
    // Listing participants is not a data read.
    assert_eq!(app.get_json("/participants").await.0, 200);

    // Another user has a pace of their own.
    let token = user_with_token(&app, "r@test.invalid", Role::Researcher, &["default"]).await;
    let other = app
        .client
        .get(format!("{}{DATA}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn one_request_names_at_most_100_participants() {
    let app = spawn_app().await;
    let ids = |n: usize| {
        (0..n)
            .map(|i| format!("X{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let q = |n| {
        format!(
            "/data?participant_id={}&metric=steps&start_date=2025-06-01&end_date=2025-06-02",
            ids(n)
        )
    };
    let (status, body) = app.get_json(&q(101)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["parameter"], "participant_id", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 100"),
        "{body}"
    );
    // A hundred is within the limit: unknown participants are a 404, not a 400.
    assert_eq!(app.get_json(&q(100)).await.0, 404);
    let (status, body) = app
        .get_json(&q(101).replace("participant_id=", "user_id="))
        .await;
    assert_eq!(
        (status, &body["error"]["parameter"]),
        (400, &"user_id".into()),
        "{body}"
    );
}

/// A CSV answer over the row cap is refused before its first byte with a 400 naming
/// `end_date`, and the refusal is in the audit trail; one at the cap streams whole, and
/// `limit` or a coarser resolution brings a larger range within it.
#[tokio::test]
async fn a_csv_answer_over_the_row_cap_is_refused_before_it_starts() {
    let args = ServeArgs {
        // One participant's day of minute steps, exactly.
        csv_max_rows: 1_440,
        ..ServeArgs::default()
    };
    let app = spawn_with(preferred_backend().await, args).await;
    let csv = |who: &str, resolution: &str, end: &str| {
        format!(
            "/data.csv?participant_id={who}&metric=steps&start_date=2025-06-01&end_date={end}\
             &resolution={resolution}"
        )
    };

    let r = app.get(&csv("P001", "raw", "2025-06-02")).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(
        body.lines().count(),
        1 + 1_440,
        "header and every row at the cap"
    );

    for path in [
        csv("P001,P002", "raw", "2025-06-02"),
        csv("P001", "raw", "2025-06-03"),
        // A minute rollup's bound (2 x 1,440 buckets) exceeds the cap, so its rows are counted.
        csv("P001,P002", "1m", "2025-06-02"),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["parameter"], "end_date", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("more than 1440 rows") && message.contains("WEARHOUSE_CSV_MAX_ROWS"),
            "{message}"
        );
    }
    // Through /data with `Accept: text/csv` too.
    let r = app
        .client
        .get(format!(
            "{}{}",
            app.base,
            csv("P001", "raw", "2025-06-03").replace("/data.csv", "/data")
        ))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let pool = &app.db.as_ref().unwrap().pool;
    let outcomes: Vec<String> = sqlx::query_scalar(
        "select outcome from audit_log where action = 'export' order by audit_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(outcomes, ["ok", "failed", "failed", "failed", "failed"]);

    // Pages, and a rollup whose buckets fit, are within the cap.
    let r = app
        .get(&format!(
            "{}&limit=1000&offset=2000",
            csv("P001,P002", "raw", "2025-06-02")
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().lines().count(), 1 + 880);
    let r = app.get(&csv("P001,P002", "1h", "2025-06-04")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().lines().count(), 1 + 2 * 72);
}
