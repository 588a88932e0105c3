//! The API's Prometheus metrics: requests and their latency by route template, method and
//! status; database pool gauges; and the study gauge of participants without recent data.
//! Label values are bounded: the route is the matched template (`/participants/{id}`), never
//! the raw path, and unmatched paths share one label.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::PgPool;
use tokio::sync::Mutex;
use wearhouse_core::telemetry::MetricsRegistry;

/// Label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// How long a computed study gauge is reused before the next scrape recomputes it.
const STUDY_GAUGE_TTL: Duration = Duration::from_secs(30);
/// Longest a scrape waits for the study query before answering with the last value.
const STUDY_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Latency buckets in seconds, with a boundary at the 1 s alert threshold.
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DaysLabel {
    days: String,
}

/// The metrics of one API process.
pub struct ApiMetrics {
    registry: MetricsRegistry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pool_connections: Family<StateLabel, Gauge>,
    pool_max: Gauge,
    without_data: Gauge,
    stale_after_days: u32,
    study_refreshed: Mutex<Option<Instant>>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl ApiMetrics {
    /// Registers the API's metrics. `routes` are the route templates whose request series
    /// exist at 0 from the start, so a rate over the first errors after a restart is not lost.
    pub fn new(stale_after_days: u32, max_connections: u32, routes: &[&str]) -> Self {
        let registry = MetricsRegistry::new();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let pool_connections = Family::<StateLabel, Gauge>::default();
        let pool_max = Gauge::default();
        registry.register(
            "wearhouse_http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "wearhouse_http_request_duration_seconds",
            "Time to answer an HTTP request (until the response head), in seconds",
            durations.clone(),
        );
        registry.register(
            "wearhouse_db_pool_connections",
            "Database pool connections by state (idle, in_use)",
            pool_connections.clone(),
        );
        registry.register(
            "wearhouse_db_pool_max_connections",
            "Largest number of connections the database pool opens",
            pool_max.clone(),
        );
        let days = Family::<DaysLabel, Gauge>::default();
        registry.register(
            "wearhouse_study_participants_without_data",
            "Active participants, enrolled longer than `days` days, with no sample in the last \
             `days` days",
            days.clone(),
        );
        pool_max.set(i64::from(max_connections));
        for state in ["idle", "in_use"] {
            let _ = pool_connections.get_or_create(&StateLabel { state });
        }
        for route in routes {
            for status in ["200", "500", "503"] {
                let labels = RequestLabels {
                    route: (*route).to_owned(),
                    method: "GET".into(),
                    status: status.into(),
                };
                let _ = requests.get_or_create(&labels);
                let _ = durations.get_or_create(&labels);
            }
        }
        let without_data = days
            .get_or_create(&DaysLabel {
                days: stale_after_days.to_string(),
            })
            .clone();
        ApiMetrics {
            registry,
            requests,
            durations,
            pool_connections,
            pool_max,
            without_data,
            stale_after_days,
            study_refreshed: Mutex::new(None),
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            route: route.to_owned(),
            method: method.to_owned(),
            status: status.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Brings the gauges up to date and renders every metric.
    pub async fn render(&self, pool: &PgPool) -> String {
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.pool_connections
            .get_or_create(&StateLabel { state: "idle" })
            .set(idle);
        self.pool_connections
            .get_or_create(&StateLabel { state: "in_use" })
            .set((size - idle).max(0));
        self.pool_max
            .set(i64::from(pool.options().get_max_connections()));
        self.refresh_study_gauge(pool).await;
        self.registry.render()
    }

    /// Recomputes the study gauge when the cached value is older than its time to live. A
    /// database that does not answer in time leaves the last value in place.
    async fn refresh_study_gauge(&self, pool: &PgPool) {
        let mut refreshed = self.study_refreshed.lock().await;
        if refreshed.is_some_and(|t| t.elapsed() < STUDY_GAUGE_TTL) {
            return;
        }
        let days = self.stale_after_days;
        match tokio::time::timeout(STUDY_QUERY_TIMEOUT, participants_without_data(pool, days)).await
        {
            Ok(Ok(n)) => {
                self.without_data.set(n);
                *refreshed = Some(Instant::now());
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot count participants without data"),
            Err(_) => tracing::warn!("counting participants without data timed out"),
        }
    }
}

/// Active participants enrolled more than `days` days ago with no sample of any metric in the
/// last `days` days.
async fn participants_without_data(pool: &PgPool, days: u32) -> Result<i64, sqlx::Error> {
    wearhouse_core::store::participants::count_without_data(pool, days).await
}

/// Middleware that counts every request by its route template, method and status.
pub async fn track(
    State(metrics): State<Arc<ApiMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
