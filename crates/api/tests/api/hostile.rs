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

#[tokio::test]
async fn path_parameters_that_are_not_utf8_or_hold_nul_get_a_json_400_naming_them() {
    let app = spawn_app().await;
    for path in [
        "/participants/%FF",
        "/participants/%00",
        "/participants/P0%0001",
        "/participants/%C3%28/consent-links",
        "/participants/P001%00/export",
        "/data/imputation_jobs/%FF",
        "/data/imputation_jobs/%00",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_names(path, status, &body, "id");
    }
    let (status, body) = send(
        &app,
        Method::DELETE,
        "/participants/P001/consent-links/%FF",
        None,
    )
    .await;
    assert_names("link id", status, &body, "link_id");
    let (status, body) = post_json(
        &app,
        Method::POST,
        "/participants/%FF/withdraw",
        &json!({"reason": "moved away"}),
    )
    .await;
    assert_names("withdraw", status, &body, "id");
}

#[tokio::test]
async fn nul_in_any_query_parameter_gets_a_400_naming_it_not_a_503() {
    let app = spawn_app().await;
    let ok = format!("{DATA}&start_date=2025-06-01&end_date=2025-06-02");
    for (path, parameter) in [
        (format!("/data?{ok}&cursor=a%00"), "cursor"),
        (format!("/data.csv?{ok}&resolution=raw%00"), "resolution"),
        (
            "/data?participant_id=P0%0001&metric=steps&start_date=2025-06-01&end_date=2025-06-02"
                .to_owned(),
            "participant_id",
        ),
        ("/audit?actor=ada%00".to_owned(), "actor"),
        ("/audit?action=%00&participant_id=P001".to_owned(), "action"),
        ("/audit?participant_id=P%00".to_owned(), "participant_id"),
        ("/participants?limit=5%00".to_owned(), "limit"),
        (format!("/data?{ok}&colour=%00"), "colour"),
        ("/auth/oidc/start?return_to=/%00".to_owned(), "return_to"),
        (
            "/contact?participant_id=P001%00".to_owned(),
            "participant_id",
        ),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_names(&path, status, &body, parameter);
    }
    let (status, body) = send(
        &app,
        Method::POST,
        "/data/run_imputation?user_id=P001&metric=heart_rate%00",
        None,
    )
    .await;
    assert_names("run_imputation", status, &body, "metric");
    // Nothing above broke the pool or the schema.
    let (status, _) = app.get_json(&format!("/data?{ok}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn nul_in_any_json_field_gets_a_400_naming_the_field_not_a_503() {
    let app = spawn_app().await;
    for (method, path, body, field) in [
        (
            Method::POST,
            "/auth/login",
            json!({"email": "ada\u{0}@example.org", "password": "x"}),
            "email",
        ),
        (
            Method::POST,
            "/participants",
            json!({"study_id": "default\u{0}", "timezone": "UTC"}),
            "study_id",
        ),
        (
            Method::PATCH,
            "/participants/P001",
            json!({"contact_name": "Ada\u{0}"}),
            "contact_name",
        ),
        (
            Method::POST,
            "/participants/P001/consent-links",
            json!({"provider": "fitbit\u{0}"}),
            "provider",
        ),
        (
            Method::POST,
            "/participants/P001/withdraw",
            json!({"reason": "moved\u{0}away"}),
            "reason",
        ),
        (
            Method::POST,
            "/participants/P001/erase",
            json!({"confirm": "P001\u{0}"}),
            "confirm",
        ),
    ] {
        let (status, answer) = post_json(&app, method.clone(), path, &body).await;
        assert_names(&format!("{method} {path}"), status, &answer, field);
    }
    let status: String =
        sqlx::query_scalar("select status from participants where participant_id = 'P001'")
            .fetch_one(&app.db.as_ref().unwrap().pool)
            .await
            .unwrap();
    assert_eq!(status, "active", "nothing was withdrawn or erased");
}

#[tokio::test]
async fn bodies_that_are_not_json_of_another_type_or_too_large_get_json_errors() {
    let app = spawn_app().await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/auth/login",
        Some(("application/json", b"{not json".to_vec())),
    )
    .await;
    assert_names("syntax", status, &body, "body");
    let (status, body) = post_json(&app, Method::POST, "/auth/login", &json!({"email": 5})).await;
    assert_names("type", status, &body, "email");

    for (path, content_type) in [
        ("/auth/login", "text/plain"),
        ("/participants", "application/x-www-form-urlencoded"),
        ("/participants/P001/withdraw", "text/plain"),
        ("/contact", "application/json"),
        ("/contact", "text/plain"),
    ] {
        let (status, body) = send(
            &app,
            Method::POST,
            path,
            Some((content_type, b"{}".to_vec())),
        )
        .await;
        assert_eq!(status, 415, "{path} {content_type}: {body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type");
        assert_eq!(body["error"]["parameter"], "content-type");
    }

    // Beyond axum's default limit of 2 MB.
    let huge =
        json!({"study_id": "default", "timezone": "UTC", "contact_name": "x".repeat(3 << 20)});
    for (method, path) in [
        (Method::POST, "/participants"),
        (Method::POST, "/participants/P001/withdraw"),
    ] {
        let (status, body) = post_json(&app, method, path, &huge).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["error"]["code"], "payload_too_large");
    }
}
