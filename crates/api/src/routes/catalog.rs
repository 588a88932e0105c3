//! `GET /metrics-catalog`: the metrics wearhouse stores, for pickers and clients.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use wearhouse_core::Metric;

use crate::auth::Access;
use crate::routes::Routes;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new().get("/metrics-catalog", Access::SignedIn, catalog)
}

/// The metric catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Catalog {
    pub metrics: Vec<CatalogEntry>,
}

/// One metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogEntry {
    /// The name to pass as `metric` (the stored `data_type`).
    #[schema(example = "heart_rate")]
    pub name: &'static str,
    /// Unit of `value`.
    #[schema(example = "bpm")]
    pub unit: &'static str,
    /// The finest interval a device reports, in seconds (the spacing of `raw` points).
    #[schema(example = 1)]
    pub native_interval_secs: i64,
    /// `continuous`, `count`, `categorical` or `daily`.
    #[schema(example = "continuous")]
    pub kind: String,
    pub description: &'static str,
}

/// Every metric in the catalogue.
#[utoipa::path(get, path = "/metrics-catalog", tag = "catalog",
    responses((status = 200, description = "The catalogue", body = Catalog)))]
pub async fn catalog() -> Json<Catalog> {
    Json(Catalog {
        metrics: Metric::ALL
            .iter()
            .map(|m| {
                let i = m.info();
                CatalogEntry {
                    name: i.name,
                    unit: i.unit,
                    native_interval_secs: i.native_interval_secs,
                    kind: serde_json::to_value(i.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    description: i.description,
                }
            })
            .collect(),
    })
}
