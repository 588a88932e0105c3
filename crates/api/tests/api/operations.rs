//! Operations routes: health, readiness, metrics, OpenAPI and its docs page, request ids, CORS.

use wearhouse_api::startup::ServeArgs;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::TestDb;
use wearhouse_core::{Metric, ParticipantId, Sample};

use crate::support::*;

#[tokio::test]
async fn health_and_readiness_report_a_migrated_database() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!((status, &body["status"]), (200, &"ok".into()));
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "current");
}

#[tokio::test]
async fn an_unmigrated_database_is_not_ready_and_says_so() {
    let (_, url) = TestDb::empty().await;
    // Before the first migration of a new server, the API's database role may not exist yet.
    let args = ServeArgs {
        db_role: String::new(),
        ..ServeArgs::default()
    };
    let app = spawn_at(database(url), args).await;
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "pending");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_docs_page_loads_locally() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/data",
        "/data.csv",
        "/participants",
        "/participants/{id}",
        "/metrics-catalog",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    let params: Vec<&str> = doc["paths"]["/data"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "participant_id",
        "user_id",
        "metric",
        "start_date",
        "end_date",
        "resolution",
        "max_points",
        "limit",
        "offset",
        "cursor",
    ] {
        assert!(params.contains(&p), "{p} not documented: {params:?}");
    }
    let page = app.get("/docs").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external reference in {html}"
    );
    for (asset, kind) in [
        ("docs/swagger-ui-bundle.js", "javascript"),
        ("docs/swagger-ui.css", "css"),
    ] {
        assert!(html.contains(asset));
        let r = app.get(&format!("/{asset}")).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().contains(kind));
        assert!(r.bytes().await.unwrap().len() > 10_000);
    }
}

fn sample_value(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_report_pool_and_study_gauges() {
    let app = spawn_app().await;
    // P002 synced an hour ago; P001 and P003 (no data at all) have been silent for days.
    let db = app.db.as_ref().unwrap();
    let recent = Sample::numeric(
        ParticipantId::parse("P002").unwrap(),
        Metric::HeartRate,
        chrono::Utc::now() - chrono::Duration::hours(1),
        70.0,
    );
    let mut conn = db.pool.acquire().await.unwrap();
    SampleWriter::new(&db.backend)
        .write(&mut conn, &[recent])
        .await
        .unwrap();
    drop(conn);
    for _ in 0..3 {
        app.get_json("/participants/P001").await;
    }
    app.get_json("/participants/P999").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(
        sample_value(
            &text,
            r#"wearhouse_http_requests_total{route="/participants/{id}",method="GET",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample_value(
            &text,
            r#"wearhouse_http_requests_total{route="/participants/{id}",method="GET",status="404"}"#
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("P001") && !text.contains("P999"),
        "raw paths leaked into labels"
    );
    assert!(text.contains(r#"wearhouse_http_request_duration_seconds_bucket{le="1.0",route="/participants/{id}",method="GET",status="200"} 3"#), "{text}");
    assert_eq!(
        sample_value(&text, "wearhouse_db_pool_max_connections"),
        Some(5.0)
    );
    assert!(sample_value(&text, r#"wearhouse_db_pool_connections{state="idle"}"#).is_some());
    assert!(sample_value(&text, r#"wearhouse_db_pool_connections{state="in_use"}"#).is_some());
    assert_eq!(
        sample_value(
            &text,
            r#"wearhouse_study_participants_without_data{days="3"}"#
        ),
        Some(2.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_freshly_started_api_meets_the_monitoring_metrics_contract() {
    let scrape = ScrapeToken::new();
    let app = spawn_with(preferred_backend().await, scrape.args()).await;
    let checker = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/monitoring/check_metric_contract.py"
    );
    // Asynchronously: the server runs on this test's runtime and must keep answering.
    let out = tokio::process::Command::new("python3")
        .arg(checker)
        .arg("--api")
        .arg(format!("{}/metrics", app.base))
        .arg("--api-token-file")
        .arg(scrape.path())
        .output()
        .await
        .expect("python3 runs the monitoring contract check");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn request_ids_are_made_or_propagated() {
    let app = spawn_app().await;
    let r = app.get("/health").await;
    let made = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "{made}");
    let r = app
        .client
        .get(format!("{}/health", app.base))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn cors_is_off_by_default_and_allows_configured_origins() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/health", app.base))
        .header("origin", "https://dash.example.org")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let db = app.db.as_ref().unwrap();
    let args = ServeArgs {
        cors_origins: vec!["https://dash.example.org".into()],
        ..ServeArgs::default()
    };
    let open = spawn_at(database(db.url.clone()), args).await;
    let r = open
        .client
        .get(format!("{}/health", open.base))
        .header("origin", "https://dash.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example.org"
    );
    let r = open
        .client
        .get(format!("{}/health", open.base))
        .header("origin", "https://elsewhere.example.org")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_request_that_outlives_the_request_timeout_gets_a_json_503() {
    // A "database" that accepts connections and never answers: the request hangs on it.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "postgres://wearhouse@127.0.0.1:{}/none",
        black_hole.local_addr().unwrap().port()
    );
    let mut slow = database(url);
    slow.db_acquire_timeout_secs = 30;
    let args = ServeArgs {
        request_timeout_secs: 1,
        ..ServeArgs::default()
    };
    let app = spawn_at(slow, args).await;
    let (status, body) = app.get_json("/participants").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_stopped_server_finishes_cleanly_and_refuses_new_connections() {
    let mut app = spawn_app().await;
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);
    app.stop().await.unwrap();
    let refused = app.client.get(format!("{}/health", app.base)).send().await;
    assert!(refused.is_err(), "{refused:?}");
}
