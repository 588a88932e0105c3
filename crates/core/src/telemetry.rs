//! Logging and metrics. [`init_tracing`] sets up structured logs once per process; a
//! [`MetricsRegistry`] collects the Prometheus metrics a service registers and renders them for
//! `/metrics`. [`ops_router`] serves `/health` and `/metrics` for services that have no other
//! HTTP surface.

use std::sync::{Arc, Mutex};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, TelemetryArgs};

/// Installs the global tracing subscriber. Calling it twice is harmless (the second call
/// keeps the first subscriber), so tests and binaries can both call it.
pub fn init_tracing(args: &TelemetryArgs) {
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match args.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init(),
    };
}

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
