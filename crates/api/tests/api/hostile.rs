//! Hostile input: dates far outside any study, text with NUL characters, bytes that are not
//! UTF-8, bodies that are not JSON or too large. Each gets a JSON error (400 naming the
//! parameter, 413 or 415), never a 5xx or a plain-text answer, and the API keeps working.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const DATA: &str = "participant_id=P001&metric=steps";

/// A request with an optional body of `content_type`; status and JSON answer (the answer must
/// be JSON, with the JSON content type).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method.clone(), format!("{}{path}", app.base));
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: {status} {ct} is not JSON ({e}): {text}"));
    assert!(ct.starts_with("application/json"), "{method} {path}: {ct}");
    (status, body)
}

async fn post_json(app: &TestApp, method: Method, path: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    send(app, method, path, Some(("application/json", bytes))).await
}

/// Asserts a 400 `invalid_parameter` naming `parameter`, whose message names it too.
fn assert_names(what: &str, status: u16, body: &Value, parameter: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"]["code"], "invalid_parameter", "{what}: {body}");
    assert_eq!(body["error"]["parameter"], parameter, "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(parameter), "{what}: {message}");
}

#[tokio::test]
async fn dates_outside_the_years_0001_to_9999_get_a_400_naming_the_parameter_on_every_route() {
    let app = spawn_app().await;
    let too_early = "-4713-01-01";
    let too_late = ["10000-01-01", "%2B10000-01-01", "%2B10000-01-01T00:00:00Z"];
    let mut cases = vec![(
        format!("start_date={too_early}&end_date=2025-06-02"),
        "start_date",
    )];
    for late in too_late {
        cases.push((format!("start_date=2025-06-01&end_date={late}"), "end_date"));
    }
    for (dates, parameter) in &cases {
        for path in ["/data", "/data.csv"] {
            let (status, body) = app.get_json(&format!("{path}?{DATA}&{dates}")).await;
            assert_names(&format!("{path} {dates}"), status, &body, parameter);
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("0001") && message.contains("9999"),
                "{message}"
            );
        }
        // `/data` asked for CSV refuses it before any row is sent, too.
        let r = app
            .client
            .get(format!("{}/data?{DATA}&{dates}", app.base))
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{dates}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["parameter"], *parameter);

        let path = format!("/data/run_imputation?user_id=P001&metric=heart_rate&{dates}");
        let (status, body) = send(&app, Method::POST, &path, None).await;
        assert_names(&path, status, &body, parameter);
    }
    for (query, parameter) in [
        (format!("from={too_early}"), "from"),
        ("to=%2B10000-01-01".to_owned(), "to"),
    ] {
        let (status, body) = app.get_json(&format!("/audit?{query}")).await;
        assert_names(&query, status, &body, parameter);
    }
    let (status, body) = post_json(
        &app,
        Method::POST,
        "/participants",
        &json!({"study_id": "default", "timezone": "UTC", "backfill_from": too_early}),
    )
    .await;
    assert_names("new participant", status, &body, "backfill_from");
    let (status, body) = post_json(
        &app,
        Method::PATCH,
        "/participants/P001",
        &json!({"backfill_from": too_early}),
    )
    .await;
    assert_names("changed participant", status, &body, "backfill_from");
    let jobs: i64 = sqlx::query_scalar("select count(*) from imputation_jobs")
        .fetch_one(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);

    // The first and last days of the range are served, the CSV export to its end.
    let widest = "start_date=0001-01-01&end_date=9999-12-31";
    let (status, body) = app.get_json(&format!("/data?{DATA}&{widest}")).await;
    assert_eq!(status, 200, "{body}");
    let total: f64 = points(&body)
        .iter()
        .map(|(_, p)| p["sum"].as_f64().unwrap())
        .sum();
    assert_eq!(total, (0..STEP_MINUTES).map(|k| steps(0, k)).sum::<f64>());
    let r = app
        .get(&format!("/data.csv?{DATA}&{widest}&resolution=raw"))
        .await;
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert_eq!(
        csv.lines().count() as i64,
        STEP_MINUTES + 1,
        "header and every row"
    );
}
