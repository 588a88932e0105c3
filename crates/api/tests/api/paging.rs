//! Pages by cursor and by offset agree with one unpaginated read, on every backend.

use serde_json::Value;
use wearhouse_core::testing::backends;

use crate::support::*;

#[tokio::test]
async fn cursor_pages_and_offset_pages_agree_with_an_unpaginated_read() {
    for backend in backends().await {
        let app = spawn_seeded(backend).await;
        for (metric, resolution) in [
            ("heart_rate", "raw"),
            ("heart_rate", "1m"),
            ("steps", "1h"),
            ("steps", "1d"),
        ] {
            let q = format!(
                "/data?user_id=P002&participant_id=P001&metric={metric}&start_date=2025-06-01T06:00:00Z&end_date=2025-06-03T21:30:00Z&resolution={resolution}"
            );
            let (status, whole) = app.get_json(&format!("{q}&limit=20000")).await;
            assert_eq!(status, 200, "{whole}");
            let all = points(&whole);
            assert_eq!(whole["total_count"], all.len());
            assert!(whole["next_cursor"].is_null());
            assert!(all.len() >= 4, "{metric} {resolution}: {}", all.len());

            let limit = all.len() / 9 + 1;
            let mut by_cursor = Vec::new();
            let mut cursor = String::new();
            loop {
                let (_, page) = app.get_json(&format!("{q}&limit={limit}{cursor}")).await;
                assert_eq!(page["total_count"], whole["total_count"]);
                by_cursor.extend(points(&page));
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = format!("&cursor={c}"),
                    None => break,
                }
            }
            assert_eq!(
                by_cursor, all,
                "cursor pages of {metric} at {resolution} on {backend:?}"
            );

            let mut by_offset: Vec<(String, Value)> = Vec::new();
            for offset in (0..all.len()).step_by(limit) {
                let (_, page) = app
                    .get_json(&format!("{q}&limit={limit}&offset={offset}"))
                    .await;
                assert_eq!(page["total_count"], whole["total_count"]);
                by_offset.extend(points(&page));
            }
            assert_eq!(
                by_offset, all,
                "offset pages of {metric} at {resolution} on {backend:?}"
            );
        }
    }
}

#[tokio::test]
async fn without_a_limit_an_answer_holds_at_most_the_budget_per_series() {
    let app = spawn_app().await;
    let (_, body) = app
        .get_json("/data?participant_id=P001,P002&metric=steps&start_date=2025-06-01&end_date=2025-06-04&resolution=raw&max_points=500")
        .await;
    assert_eq!(points(&body).len(), 1_000);
    assert_eq!(body["total_count"], 2 * STEP_MINUTES);
    assert!(body["next_cursor"].is_string());
}
