//! Metrics. (Logs are set up by [`crate::process::init_telemetry`].) A
//! [`MetricsRegistry`] collects the Prometheus metrics a service registers and renders them for
//! `/metrics`. [`ops_router`] serves `/health` and `/metrics` for services that have no other
//! HTTP surface.

use std::sync::{Arc, Mutex};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// A Prometheus registry shared by the parts of one service. Metrics are registered at
/// start-up; the registry is encoded on every scrape.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `metric` as `name` (the `wearhouse_` prefix is added by the caller's name).
    pub fn register<M>(&self, name: &str, help: &str, metric: M)
    where
        M: prometheus_client::registry::Metric,
    {
        self.inner
            .lock()
            .expect("metrics registry poisoned")
            .register(name, help, metric);
    }

    /// Runs `f` with the underlying registry, for collectors and sub-registries.
    pub fn with<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.inner.lock().expect("metrics registry poisoned"))
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(
            &mut out,
            &self.inner.lock().expect("metrics registry poisoned"),
        )
        .expect("writing to a String cannot fail");
        out
    }
}

/// Content type of the OpenMetrics text format that [`MetricsRegistry::render`] produces.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An axum handler body for `/metrics`.
pub fn metrics_response(registry: &MetricsRegistry) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        registry.render(),
    )
}

/// `/health` (always 200 while the process runs) and `/metrics`.
pub fn ops_router(registry: MetricsRegistry) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { metrics_response(&registry) }
            }),
        )
}
