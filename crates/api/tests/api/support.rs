//! Test support: the real app on port 0 against a fresh seeded database, an HTTP client, the
//! seed data's generator (so tests compute expected values from it, not from the API), and a
//! TCP proxy that can cut the API off from the database and restore it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use wearhouse_api::startup::{Application, ServeArgs};
use wearhouse_core::config::{DatabaseArgs, ListenArgs};
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::writer::{SampleWriter, refresh_rollups};
use wearhouse_core::testing::{TEST_ADMIN_TOKEN, TestBackend, TestDb, backends, grant_test_admin};
use wearhouse_core::{Metric, ParticipantId, Sample, TimeRange};

/// Start of the seeded data.
pub const SEED_START: &str = "2025-06-01T00:00:00Z";
/// Heart rate is seeded every this many seconds (sparse seconds, as devices report).
pub const HR_STEP_SECS: i64 = 37;
/// Heart-rate samples per participant (about two days).
pub const HR_SAMPLES: i64 = 4_670;
/// Minutes of steps per participant (three days).
pub const STEP_MINUTES: i64 = 3 * 1_440;

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The seeded heart rate of participant number `n` (0-based) at sample `k`.
pub fn heart_rate(n: usize, k: i64) -> f64 {
    55.0 + ((k * 7 + n as i64 * 13) % 60) as f64 + 0.5
}

/// The seeded steps of participant number `n` at minute `k`.
pub fn steps(n: usize, k: i64) -> f64 {
    ((k * 11 + n as i64 * 3) % 97) as f64
}

/// Participants with data, in id order.
pub const WITH_DATA: [&str; 2] = ["P001", "P002"];
/// A participant enrolled but without any data.
pub const WITHOUT_DATA: &str = "P003";

/// A running app and the database behind it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: Option<TestDb>,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// Asks the server to stop, as SIGTERM does, and waits until it has.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.take().expect("running").await.unwrap()
    }

    /// GET `path` (with query) and return status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: {status} {ct} is not JSON ({e}): {text}"));
        assert!(
            ct.starts_with("application/json"),
            "{path}: content-type {ct}"
        );
        (status, body)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// The preferred backend: TimescaleDB where installed, else plain PostgreSQL.
pub async fn preferred_backend() -> TestBackend {
    *backends().await.last().unwrap()
}

/// The app against a fresh seeded database on the preferred backend.
pub async fn spawn_app() -> TestApp {
    spawn_seeded(preferred_backend().await).await
}

/// The app against a fresh seeded database on `backend`.
pub async fn spawn_seeded(backend: TestBackend) -> TestApp {
    spawn_with(backend, ServeArgs::default()).await
}

/// [`spawn_seeded`] with these settings.
pub async fn spawn_with(backend: TestBackend, args: ServeArgs) -> TestApp {
    spawn_seeded_on(backend, args, 0).await
}

/// [`spawn_with`] listening on `port` (0: any).
pub async fn spawn_seeded_on(backend: TestBackend, args: ServeArgs, port: u16) -> TestApp {
    let db = TestDb::new(backend).await;
    seed(&db).await;
    grant_test_admin(&db.pool).await;
    let mut app = spawn_listening(database(db.url.clone()), args, port).await;
    app.db = Some(db);
    app
}

/// Database settings for `url` as the tests use them: a small pool that gives up on an
/// unreachable database after 2 s.
pub fn database(url: impl Into<String>) -> DatabaseArgs {
    let mut database = DatabaseArgs::from_url(url);
    database.db_acquire_timeout_secs = 2;
    database.db_max_connections = 5;
    database
}

/// The app against whatever `database` points at.
pub async fn spawn_at(database: DatabaseArgs, args: ServeArgs) -> TestApp {
    spawn_listening(database, args, 0).await
}

async fn spawn_listening(database: DatabaseArgs, args: ServeArgs, port: u16) -> TestApp {
    let listen = ListenArgs {
        listen: ([127, 0, 0, 1], port).into(),
    };
    let app = Application::build(&database, &listen, &args).await.unwrap();
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    let server = Some(tokio::spawn(app.run(shutdown.clone())));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .default_headers(admin_headers())
            .build()
            .unwrap(),
        db: None,
        shutdown,
        server,
    }
}

/// A metrics scrape token in a file, as Prometheus is given one.
pub struct ScrapeToken {
    dir: tempfile::TempDir,
    pub token: String,
}

impl ScrapeToken {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = "scrape-token-of-the-tests-0123456789".to_owned();
        std::fs::write(dir.path().join("metrics-token"), &token).unwrap();
        ScrapeToken { dir, token }
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("metrics-token")
    }

    /// Serve settings that accept this token on `/metrics`.
    pub fn args(&self) -> ServeArgs {
        let mut args = ServeArgs::default();
        args.auth.metrics_token_file = Some(self.path());
        args
    }
}

/// The headers of a client signed in as the test admin (see [`grant_test_admin`]).
pub fn admin_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TEST_ADMIN_TOKEN}").parse().unwrap(),
    );
    headers
}

/// Writes the seed: heart rate and steps for P001 and P002, a night of sleep stages for P001,
/// and P003 enrolled without data.
pub async fn seed(db: &TestDb) {
    let mut conn = db.pool.acquire().await.unwrap();
    let start = t(SEED_START);
    for (id, tz) in [
        ("P001", chrono_tz_name("Europe/London")),
        ("P002", chrono_tz_name("America/New_York")),
        (WITHOUT_DATA, chrono_tz_name("UTC")),
    ] {
        participants::upsert(
            &mut conn,
            &NewParticipant {
                participant_id: ParticipantId::parse(id).unwrap(),
                timezone: tz,
                provider: Some("fitbit".into()),
                enrolled_at: Some(start - chrono::Duration::days(30)),
                study_id: None,
            },
        )
        .await
        .unwrap();
    }
    let mut samples = Vec::new();
    for (n, id) in WITH_DATA.iter().enumerate() {
        let pid = ParticipantId::parse(id).unwrap();
        for k in 0..HR_SAMPLES {
            samples.push(Sample::numeric(
                pid.clone(),
                Metric::HeartRate,
                start + chrono::Duration::seconds(k * HR_STEP_SECS),
                heart_rate(n, k),
            ));
        }
        for k in 0..STEP_MINUTES {
            samples.push(Sample::numeric(
                pid.clone(),
                Metric::Steps,
                start + chrono::Duration::minutes(k),
                steps(n, k),
            ));
        }
    }
    let p1 = ParticipantId::parse("P001").unwrap();
    for k in 0..120 {
        let label = ["light", "deep", "rem", "wake"][(k / 30) as usize];
        samples.push(Sample::sleep_stage(
            p1.clone(),
            start + chrono::Duration::seconds(k * 30),
            label,
        ));
    }
    let writer = SampleWriter::new(&db.backend);
    writer.write(&mut conn, &samples).await.unwrap();
    refresh_rollups(
        &mut conn,
        &db.backend,
        TimeRange::new(start, start + chrono::Duration::days(4)).unwrap(),
    )
    .await
    .unwrap();
}

fn chrono_tz_name(name: &str) -> chrono_tz::Tz {
    name.parse().unwrap()
}

/// A TCP proxy between the API and the database that can be cut and restored.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let pipes: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, pipes2) = (up.clone(), pipes.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    // Cut: the connection is closed at once, as by a database that is down.
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                pipes2.lock().await.push(task.abort_handle());
            }
        });
        Proxy { addr, up, pipes }
    }

    /// Drops every open connection and refuses new ones.
    pub async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for p in self.pipes.lock().await.drain(..) {
            p.abort();
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Points of every series of a `/data` answer, flattened, each tagged with its participant.
pub fn points(body: &Value) -> Vec<(String, Value)> {
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            let id = s["participant_id"].as_str().unwrap().to_owned();
            s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |p| (id.clone(), p.clone()))
        })
        .collect()
}
