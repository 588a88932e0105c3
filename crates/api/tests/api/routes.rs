//! Every resource route, including the original system's query shapes.

use serde_json::Value;
use wearhouse_core::Metric;

use crate::support::*;

#[tokio::test]
async fn the_original_systems_query_shape_answers_with_total_count() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json("/data?user_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02&limit=100&offset=0")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_count"], 1_440);
    assert_eq!(body["resolution"], "raw");
    assert_eq!(body["metric"], "steps");
    assert_eq!(body["unit"], Metric::Steps.info().unit);
    assert_eq!(body["limit"], 100);
    assert_eq!(body["offset"], 0);
    let pts = points(&body);
    assert_eq!(pts.len(), 100);
    assert_eq!(pts[0].1["timestamp"], "2025-06-01T00:00:00Z");
    for (k, (id, p)) in pts.iter().enumerate() {
        assert_eq!(id, "P001");
        assert_eq!(p["value"].as_f64(), Some(steps(0, k as i64)));
        assert_eq!(p["count"], 1);
    }
    let (_, next) = app
        .get_json("/data?user_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02&limit=100&offset=100")
        .await;
    assert_eq!(next["total_count"], 1_440);
    assert_eq!(points(&next)[0].1["value"].as_f64(), Some(steps(0, 100)));
    assert_eq!(points(&next)[0].1["timestamp"], "2025-06-01T01:40:00Z");
}

#[tokio::test]
async fn several_participants_get_one_series_each_in_id_order() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json("/data?participant_id=P002,P001&participant_id=P001&metric=steps&start_date=2025-06-01T00:00:00Z&end_date=2025-06-01T01:00:00%2B00:00")
        .await;
    assert_eq!(status, 200, "{body}");
    let series = body["series"].as_array().unwrap();
    let ids: Vec<&str> = series
        .iter()
        .map(|s| s["participant_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["P001", "P002"]);
    for (n, s) in series.iter().enumerate() {
        let values: Vec<f64> = s["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect();
        let expected: Vec<f64> = (0..60).map(|k| steps(n, k)).collect();
        assert_eq!(values, expected);
    }
    assert_eq!(body["total_count"], 120);
}

#[tokio::test]
async fn automatic_resolution_fits_the_budget_and_says_why() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json("/data?participant_id=P001&metric=heart_rate&start_date=2025-06-01&end_date=2025-06-03&resolution=auto&max_points=2000")
        .await;
    assert_eq!(status, 200, "{body}");
    // Two days of 1-second heart rate: raw and 1m exceed 2,000 points; 1h fits.
    assert_eq!(body["resolution"], "1h");
    let reason = body["resolution_reason"].as_str().unwrap();
    assert!(reason.contains("1m") && reason.contains("2000"), "{reason}");
    assert!(body["next_cursor"].is_null());
    let pts = points(&body);
    assert_eq!(body["total_count"], pts.len());
    // The first hour's average, minimum and count, computed from the seed.
    let first_hour: Vec<f64> = (0..HR_SAMPLES)
        .take_while(|k| k * HR_STEP_SECS < 3_600)
        .map(|k| heart_rate(0, k))
        .collect();
    let avg = first_hour.iter().sum::<f64>() / first_hour.len() as f64;
    let p = &pts[0].1;
    assert_eq!(p["timestamp"], "2025-06-01T00:00:00Z");
    assert!((p["value"].as_f64().unwrap() - avg).abs() < 1e-9, "{p}");
    assert_eq!(p["count"], first_hour.len());
    assert_eq!(
        p["min"].as_f64().unwrap(),
        first_hour.iter().cloned().fold(f64::INFINITY, f64::min)
    );
}

#[tokio::test]
async fn a_forced_resolution_beyond_the_budget_pages_with_a_cursor() {
    let app = spawn_app().await;
    let q = "/data?participant_id=P001&metric=heart_rate&start_date=2025-06-01&end_date=2025-06-03&resolution=raw&max_points=1000";
    let (status, body) = app.get_json(q).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolution"], "raw");
    assert_eq!(body["total_count"], HR_SAMPLES);
    assert_eq!(points(&body).len(), 1_000);
    let cursor = body["next_cursor"].as_str().unwrap();
    let (_, next) = app.get_json(&format!("{q}&cursor={cursor}")).await;
    let first = &points(&next)[0].1;
    assert_eq!(first["value"].as_f64(), Some(heart_rate(0, 1_000)));
}

#[tokio::test]
async fn categorical_points_carry_their_label() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json("/data?participant_id=P001&metric=sleep_stage&start_date=2025-06-01T00:00:00Z&end_date=2025-06-01T00:01:00Z&resolution=raw")
        .await;
    assert_eq!(status, 200, "{body}");
    let pts = points(&body);
    assert_eq!(pts.len(), 2);
    assert_eq!(pts[0].1["text"], "light");
}

#[tokio::test]
async fn participants_are_listed_in_pages_with_their_last_samples() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/participants?limit=2&offset=0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_count"], 3);
    assert_eq!(body["limit"], 2);
    let list = body["participants"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let p1 = &list[0];
    assert_eq!(p1["participant_id"], "P001");
    assert_eq!(p1["timezone"], "Europe/London");
    assert_eq!(p1["status"], "active");
    assert_eq!(p1["provider"], "fitbit");
    assert_eq!(p1["needs_reconsent"], false);
    assert_eq!(p1["enrolled_at"], "2025-05-02T00:00:00Z");
    let last_hr = t(SEED_START) + chrono::Duration::seconds((HR_SAMPLES - 1) * HR_STEP_SECS);
    assert_eq!(
        p1["last_sample"]["heart_rate"].as_str().map(t),
        Some(last_hr)
    );
    assert_eq!(
        p1["last_sample"]["steps"].as_str().map(t),
        Some(t(SEED_START) + chrono::Duration::minutes(STEP_MINUTES - 1))
    );
    let (_, rest) = app.get_json("/participants?limit=2&offset=2").await;
    let rest = rest["participants"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["participant_id"], WITHOUT_DATA);
    assert_eq!(rest[0]["last_sample"], serde_json::json!({}));
}

#[tokio::test]
async fn one_participant_is_shown_with_its_watermarks() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/participants/P002").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["participant_id"], "P002");
    assert_eq!(body["timezone"], "America/New_York");
    assert!(body["last_sample"]["steps"].is_string());
    assert_eq!(body["watermarks"], serde_json::json!([]));
}

#[tokio::test]
async fn the_metrics_catalog_lists_every_metric_with_its_unit_and_interval() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/metrics-catalog").await;
    assert_eq!(status, 200);
    let metrics = body["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), Metric::ALL.len());
    for (m, entry) in Metric::ALL.iter().zip(metrics) {
        let info = m.info();
        assert_eq!(entry["name"], info.name);
        assert_eq!(entry["unit"], info.unit);
        assert_eq!(entry["native_interval_secs"], info.native_interval_secs);
        assert_eq!(entry["kind"], serde_json::to_value(info.kind).unwrap());
        assert_eq!(entry["description"], info.description);
    }
}

#[tokio::test]
async fn csv_export_holds_the_same_rows_as_json() {
    let app = spawn_app().await;
    let q = "participant_id=P001,P002&metric=sleep_stage&start_date=2025-06-01&end_date=2025-06-02&resolution=raw&limit=20000";
    let (_, json) = app.get_json(&format!("/data?{q}")).await;
    let by_path = app.get(&format!("/data.csv?{q}")).await;
    assert_eq!(by_path.status(), 200);
    assert!(
        by_path.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = by_path.text().await.unwrap();
    let by_accept = app
        .client
        .get(format!("{}/data?{q}", app.base))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv, by_accept);
    assert_csv_equals_json(&csv, &points(&json));
    for metric in ["heart_rate", "steps"] {
        let q = format!(
            "participant_id=P001,P002&metric={metric}&start_date=2025-06-01&end_date=2025-06-02&resolution=1m&limit=20000"
        );
        let (_, json) = app.get_json(&format!("/data?{q}")).await;
        let csv = app
            .get(&format!("/data.csv?{q}"))
            .await
            .text()
            .await
            .unwrap();
        assert_csv_equals_json(&csv, &points(&json));
    }
}

#[tokio::test]
async fn csv_export_without_a_limit_streams_every_row_of_the_range() {
    let app = spawn_app().await;
    let q = "participant_id=P001,P002&metric=heart_rate&start_date=2025-06-01&end_date=2025-06-04&resolution=raw&max_points=100";
    let csv = app
        .get(&format!("/data.csv?{q}"))
        .await
        .text()
        .await
        .unwrap();
    let rows = csv.lines().count() - 1;
    assert_eq!(rows as i64, 2 * HR_SAMPLES);
    // Every row equals the JSON answer read page by page.
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, page) = app.get_json(&format!("/data?{q}&limit=5000{cursor}")).await;
        all.extend(points(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_csv_equals_json(&csv, &all);
}

fn assert_csv_equals_json(csv: &str, json: &[(String, Value)]) {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("participant_id,timestamp,value,min,max,sum,count,text")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), json.len());
    assert!(!rows.is_empty());
    let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().unwrap());
    for (row, (id, p)) in rows.iter().zip(json) {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f.len(), 8, "{row}");
        assert_eq!(f[0], id);
        assert_eq!(t(f[1]), t(p["timestamp"].as_str().unwrap()));
        for (i, key) in [(2, "value"), (3, "min"), (4, "max"), (5, "sum")] {
            assert_eq!(num(f[i]), p[key].as_f64(), "{key} in {row}");
        }
        assert_eq!(f[6].parse::<i64>().ok(), p["count"].as_i64());
        assert_eq!(f[7], p["text"].as_str().unwrap_or(""));
    }
}
