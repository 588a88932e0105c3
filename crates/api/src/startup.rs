//! Wiring: builds the application from its configuration, binds the listener, and serves until
//! told to stop. Tests call [`Application::build`] with port 0 and talk to the real thing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use clap::Args;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use wearhouse_core::config::{self, DatabaseArgs, ListenArgs};
use wearhouse_core::process::Shutdown;

use crate::auth::{self, Auth, AuthArgs};
use crate::client::{self, TrustedProxies};
use crate::contact::ContactService;
use crate::contact::settings::ContactArgs;
use crate::error::ApiError;
use crate::idempotency::{self, Idempotency};
use crate::metrics::{self, ApiMetrics};
use crate::oidc::{Oidc, OidcArgs};
use crate::routes;
use crate::routes::data::DataLimits;
use crate::routes::enrolment::{EnrolmentArgs, PublicUrl};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Settings of `wearhouse-api serve` beyond the database and listen address.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Seconds a request may take until its response starts; slower ones get 503 "timeout".
    #[arg(long, env = "WEARHOUSE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT before closing anyway.
    #[arg(long, env = "WEARHOUSE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Browser origin allowed to call the API (CORS), e.g. https://dashboard.example.org;
    /// repeat or separate with commas; `*` allows any. Default: none (same origin only, as
    /// when nginx serves the dashboard and proxies the API).
    #[arg(
        long = "cors-origin",
        env = "WEARHOUSE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Seconds one SQL statement of the API may run before the database cancels it (the
    /// server-side `statement_timeout`), so the query of a request that timed out does not
    /// run on; 0 turns it off.
    #[arg(long, env = "WEARHOUSE_STATEMENT_TIMEOUT_SECS", default_value_t = 30)]
    pub statement_timeout_secs: u64,

    /// Proxies whose `X-Real-IP` header names the client (for the per-address rate limits
    /// and the audit trail): a comma-separated list of IP addresses and CIDR networks, e.g.
    /// the nginx in front. A request from any other peer is taken to come from the peer
    /// itself, whatever header it sends. `--trusted-proxies ''` trusts none.
    #[arg(
        long = "trusted-proxies",
        env = "WEARHOUSE_TRUSTED_PROXIES",
        default_value = TrustedProxies::DEFAULT,
    )]
    pub trusted_proxies: TrustedProxies,

    /// The study gauge counts active participants with no sample for this many days.
    #[arg(long, env = "WEARHOUSE_STALE_AFTER_DAYS", default_value_t = 3)]
    pub stale_after_days: u32,

    /// Most rows one CSV answer (`/data.csv`, or `/data` asked for `text/csv`) streams
    /// without `limit`; a larger one is refused with a 400 before the first row, so a single
    /// request cannot hold a connection and the database for hours.
    #[arg(long, env = "WEARHOUSE_CSV_MAX_ROWS", default_value_t = 10_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub csv_max_rows: u64,

    /// The database role the API works as (`SET ROLE` at connect): by default the
    /// least-privileged `wearhouse_api` the migrations create, which cannot read participants'
    /// OAuth grants nor change the audit trail. Empty: the connecting user's own rights.
    #[arg(long, env = "WEARHOUSE_API_DB_ROLE", default_value = "wearhouse_api")]
    pub db_role: String,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub oidc: OidcArgs,

    #[command(flatten)]
    pub contact: ContactArgs,

    #[command(flatten)]
    pub enrolment: EnrolmentArgs,
}

/// The defaults of the command line (environment variables aside).
impl Default for ServeArgs {
    fn default() -> Self {
        config::defaults()
    }
}

/// A bound, ready-to-run API server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    contact: Arc<ContactService>,
    grace: Duration,
}

impl Application {
    /// Builds the app and binds its listener. The database pool connects lazily: the API
    /// starts while the database is down, answers 503 meanwhile, and recovers by itself.
    pub async fn build(
        database: &DatabaseArgs,
        listen: &ListenArgs,
        args: &ServeArgs,
    ) -> anyhow::Result<Self> {
        let pool = api_pool(database, args)?;
        let listener = TcpListener::bind(listen.listen)
            .await
            .with_context(|| format!("cannot listen on {}", listen.listen))?;
        let contact = Arc::new(
            ContactService::new(pool.clone(), &args.contact)
                .context("invalid contact form settings")?,
        );
        let oidc = Oidc::discover(&args.oidc).await?;
        if let Some(o) = &oidc {
            tracing::info!(issuer = o.issuer(), "single sign-on configured");
        }
        let router = app_with(pool.clone(), args, contact.clone(), oidc)?;
        Ok(Application {
            listener,
            router,
            pool,
            contact,
            grace: Duration::from_secs(args.shutdown_grace_secs),
        })
    }

    /// The address the server listens on (with the port picked when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight requests
    /// finish for the grace period, lets the outbox finish the e-mail in hand, and closes the
    /// database pool.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr(), "serving the API");
        let tasks = Shutdown::with_token(shutdown.clone());
        tasks.spawn(self.contact.outbox.clone().run(shutdown.clone()));
        let token = shutdown.clone();
        // Without TCP_NODELAY the last segment of an answer can wait for the client's
        // delayed ACK. The peer address is the client's (the contact form's rate-limit key)
        // unless the peer is a trusted proxy that sets X-Real-IP.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let server = axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { token.cancelled().await });
        let grace = self.grace;
        tokio::select! {
            result = server => result.context("server failed")?,
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; closing");
            }
        }
        shutdown.cancel();
        if !tasks.drain(Duration::from_secs(25)).await {
            tracing::warn!("contact outbox did not stop in time");
        }
        if tokio::time::timeout(Duration::from_secs(5), self.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("database pool did not close in time");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The API's database pool: connects lazily, and every connection carries the statement
/// timeout as a startup parameter, so it costs no extra round trip.
pub fn api_pool(database: &DatabaseArgs, args: &ServeArgs) -> anyhow::Result<PgPool> {
    let options = database
        .clone()
        .with_role(&args.db_role)
        .connect_options()
        .context("invalid database settings; check DATABASE_URL or --database-url")?
        .options([(
            "statement_timeout",
            format!("{}s", args.statement_timeout_secs),
        )]);
    Ok(database.pool_options().connect_lazy_with(options))
}

/// The complete router: resources, metrics, request ids, logs, CORS and the request timeout.
pub fn app(pool: PgPool, args: &ServeArgs) -> anyhow::Result<Router> {
    let contact = Arc::new(
        ContactService::new(pool.clone(), &args.contact)
            .context("invalid contact form settings")?,
    );
    app_with(pool, args, contact, None)
}

/// [`app`] with a given contact service (whose outbox the caller runs) and single sign-on.
pub fn app_with(
    pool: PgPool,
    args: &ServeArgs,
    contact: Arc<ContactService>,
    oidc: Option<Oidc>,
) -> anyhow::Result<Router> {
    let routes = routes::routes();
    let metrics = Arc::new(ApiMetrics::new(
        args.stale_after_days,
        pool.options().get_max_connections(),
        routes.get_templates(),
    ));
    let auth = Arc::new(Auth::new(
        pool.clone(),
        routes.access().clone(),
        &args.auth,
        oidc.map(|o| (o, &args.oidc)),
    )?);
    let state = AppState {
        pool,
        metrics,
        contact,
        auth,
        public_url: PublicUrl(args.enrolment.public_url.clone()),
        data_limits: DataLimits {
            csv_max_rows: args.csv_max_rows,
        },
    };
    let timeout = Duration::from_secs(args.request_timeout_secs);
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let route = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or(metrics::UNMATCHED_ROUTE, |m| m.as_str());
            let request_id = request
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %request.method(), route, path = %request.uri().path(), request_id)
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    let idempotency = Idempotency {
        pool: state.pool.clone(),
        abandoned_after: timeout + Duration::from_secs(30),
    };
    let mut router = routes
        .into_router()
        // Inside the guard: a key belongs to the caller the guard names.
        .route_layer(middleware::from_fn_with_state(
            idempotency,
            idempotency::middleware,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::guard,
        ))
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(args.trusted_proxies.clone()),
            client::identify,
        ));
    if let Some(cors) = cors(&args.cors_origins)? {
        router = router.layer(cors);
    }
    Ok(router
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state))
}

async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).with_context(|| format!("invalid --cors-origin {o:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::ACCEPT, header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([REQUEST_ID]),
    ))
}
