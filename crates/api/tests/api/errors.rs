//! Every error path: each invalid parameter gets a 400 naming it, unknown participants and
//! routes a 404, all as JSON.

use crate::support::*;

const OK: &str = "participant_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02";

/// Replaces or adds `name=value` in the valid query.
fn with(name: &str, value: &str) -> String {
    let mut parts: Vec<String> = OK
        .split('&')
        .filter(|p| !p.starts_with(&format!("{name}=")))
        .map(str::to_owned)
        .collect();
    parts.push(format!("{name}={value}"));
    parts.join("&")
}

fn without(name: &str) -> String {
    OK.split('&')
        .filter(|p| !p.starts_with(&format!("{name}=")))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn each_invalid_data_parameter_gets_a_400_that_names_it() {
    let app = spawn_app().await;
    let cases: Vec<(String, &str)> = vec![
        (without("participant_id"), "participant_id"),
        (with("participant_id", "P%20001"), "participant_id"),
        (
            format!("{}&user_id=P001'--", without("participant_id")),
            "user_id",
        ),
        (without("metric"), "metric"),
        (with("metric", "blood_pressure"), "metric"),
        (
            with("metric", "steps'%3B%20drop%20table%20raw_data%3B--"),
            "metric",
        ),
        (without("start_date"), "start_date"),
        (with("start_date", "yesterday"), "start_date"),
        (with("start_date", "2025-13-01"), "start_date"),
        (without("end_date"), "end_date"),
        (with("end_date", "2025-06-01T25:00:00Z"), "end_date"),
        (with("end_date", "2025-05-01"), "end_date"),
        (with("end_date", "2025-06-01"), "end_date"),
        (with("resolution", "5m"), "resolution"),
        (with("max_points", "many"), "max_points"),
        (with("max_points", "0"), "max_points"),
        (with("max_points", "20001"), "max_points"),
        (with("max_points", "-5"), "max_points"),
        (with("limit", "ten"), "limit"),
        (with("limit", "0"), "limit"),
        (with("limit", "20001"), "limit"),
        (with("limit", "1.5"), "limit"),
        (with("offset", "-1"), "offset"),
        (with("offset", "x"), "offset"),
        (with("offset", "99999999999999999999999"), "offset"),
        (with("cursor", "not-a-cursor"), "cursor"),
        (format!("{OK}&limit=10&offset=10&cursor=abc"), "cursor"),
        (format!("{OK}&metric=steps"), "metric"),
    ];
    for (query, parameter) in cases {
        for path in ["/data", "/data.csv"] {
            let (status, body) = app.get_json(&format!("{path}?{query}")).await;
            assert_eq!(status, 400, "{path}?{query}: {body}");
            assert_eq!(body["error"]["code"], "invalid_parameter", "{query}");
            assert_eq!(body["error"]["parameter"], parameter, "{query}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(parameter), "{query}: {message}");
        }
    }
    // The schema survived the attempts above.
    let (status, _) = app.get_json(&format!("/data?{OK}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_cursor_from_another_resolution_is_refused() {
    let app = spawn_app().await;
    let (_, body) = app
        .get_json(&format!("/data?{OK}&resolution=raw&limit=10"))
        .await;
    let cursor = body["next_cursor"].as_str().unwrap();
    let (status, body) = app
        .get_json(&format!(
            "/data?{OK}&resolution=1h&limit=10&cursor={cursor}"
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["parameter"], "cursor");
}

#[tokio::test]
async fn invalid_participant_list_parameters_are_named() {
    let app = spawn_app().await;
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("offset=-2", "offset"),
    ] {
        let (status, body) = app.get_json(&format!("/participants?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["parameter"], parameter);
    }
    let (status, body) = app.get_json("/participants/bad%20id").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["parameter"], "id");
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json(&format!("/data?{OK}&colour=blue&limit=5"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(points(&body).len(), 5);
}

#[tokio::test]
async fn unknown_participants_and_routes_get_a_json_404() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json(
            "/data?participant_id=P001,P999&metric=steps&start_date=2025-06-01&end_date=2025-06-02",
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("P999") && !message.contains("P001"),
        "{message}"
    );
    let (status, _) = app
        .get_json("/data.csv?user_id=P999&metric=steps&start_date=2025-06-01&end_date=2025-06-02")
        .await;
    assert_eq!(status, 404);
    let (status, body) = app.get_json("/participants/P999").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = app.get_json("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let r = app
        .client
        .delete(format!("{}/participants", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn an_unreachable_database_gets_a_503_that_says_nothing_internal() {
    // Nothing listens on port 1: every connection attempt is refused.
    let app = spawn_at(
        database("postgres://wearhouse:secret@127.0.0.1:1/none"),
        Default::default(),
    )
    .await;
    for path in [
        format!("/data?{OK}"),
        format!("/data.csv?{OK}"),
        "/participants".to_owned(),
        "/participants/P001".to_owned(),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 503, "{path}");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "unavailable", "message": "database unavailable"}})
        );
    }
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "unreachable");
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);
    // The caller is authenticated before the input is looked at, and that needs the database:
    // invalid input then gets the same 503, never a hint to an unauthenticated client.
    let (status, body) = app.get_json("/data?metric=steps").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "unavailable");
}
