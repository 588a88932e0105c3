//! API read benchmark: `/data` latency (p50, p99) and requests per second per resolution on
//! loopback, next to the same SQL run directly through a pool of the same size, in one run
//! against one seeded database.
//!
//! ```sh
//! cargo bench -p wearhouse-api --bench api
//! WEARHOUSE_BENCH_PARTICIPANTS=20 WEARHOUSE_BENCH_DAYS=30 WEARHOUSE_BENCH_CLIENTS=8 \
//!   WEARHOUSE_BENCH_SECS=5 WEARHOUSE_BENCH_LOAD_PERCENT=25,50 cargo bench -p wearhouse-api --bench api
//! WEARHOUSE_BENCH_ONLY=1d cargo bench -p wearhouse-api --bench api   # scenarios labelled so
//! ```
//!
//! The bench writes its own data through the core writer (heart rate every
//! `WEARHOUSE_BENCH_HR_STEP_SECS` seconds, default 10, and steps every minute, per participant
//! and day) on the preferred backend (TimescaleDB where installed). "Direct SQL" runs exactly
//! what a `/data` request runs: the participant check and the series read (rows, and the count
//! when the page does not hold the whole result), decoding the rows as a client does. Requests
//! rotate over the participants so the cache sees the whole cohort.
//!
//! Each scenario is measured twice on each side:
//!
//! - saturated: `WEARHOUSE_BENCH_CLIENTS` closed loops (default 8), each sending its next
//!   request when the previous one is answered, for the most requests per second;
//! - at fixed rates, `WEARHOUSE_BENCH_LOAD_PERCENT` (default 25 and 50) of the direct SQL's
//!   saturated rate, the same rate for both sides, requests started on schedule whether or not earlier
//!   ones are answered: the latency a user sees on a busy but not overloaded server. With the
//!   cores saturated, the order in which the operating system runs eight database backends
//!   decides most of a request's latency, which is no longer the cost of the request itself.
//!
//! The HTTP side's load generator is a lean HTTP/1.1 keep-alive client (the request written by
//! hand, the answer read by its `Content-Length`), one connection per request in flight, so
//! that the client does not take the shared cores from the server: a general-purpose client
//! that decodes JSON would be charged to the API. Each scenario checks once, outside the timed
//! loop, that a full JSON answer holds as many points as the direct read; in the loop every
//! answer must be a 200 whose body is read to its last byte.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use wearhouse_api::startup::{Application, ServeArgs};
use wearhouse_core::config::{DatabaseArgs, ListenArgs};
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::series::{self, Page, Plan, SeriesQuery};
use wearhouse_core::store::writer::{SampleWriter, refresh_rollups};
use wearhouse_core::testing::{TEST_ADMIN_TOKEN, TestDb, backends, grant_test_admin};
use wearhouse_core::{Metric, ParticipantId, Resolution, Sample, TimeRange};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const START: &str = "2025-06-01T00:00:00Z";
const POOL: u32 = 10;

struct Scenario {
    label: &'static str,
    metric: Metric,
    days: i64,
    resolution: Option<Resolution>,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        label: "raw (steps, 1 day)",
        metric: Metric::Steps,
        days: 1,
        resolution: None,
    },
    Scenario {
        label: "1m (heart rate, 1 day)",
        metric: Metric::HeartRate,
        days: 1,
        resolution: None,
    },
    Scenario {
        label: "1h (heart rate, 30 days)",
        metric: Metric::HeartRate,
        days: 30,
        resolution: None,
    },
    Scenario {
        label: "1d (heart rate, 30 days)",
        metric: Metric::HeartRate,
        days: 30,
        resolution: Some(Resolution::Day),
    },
    Scenario {
        label: "raw (heart rate, 6 h)",
        metric: Metric::HeartRate,
        days: 0,
        resolution: Some(Resolution::Raw),
    },
];

fn range(s: &Scenario, start: DateTime<Utc>) -> TimeRange {
    let len = if s.days == 0 {
        chrono::Duration::hours(6)
    } else {
        chrono::Duration::days(s.days)
    };
    TimeRange::new(start, start + len).unwrap()
}

async fn seed(db: &TestDb, participants: u64, days: i64, hr_step: i64) {
    let start: DateTime<Utc> = START.parse().unwrap();
    let writer = SampleWriter::new(&db.backend);
    let mut conn = db.pool.acquire().await.unwrap();
    let began = Instant::now();
    let mut rows = 0usize;
    for i in 0..participants {
        let pid = ParticipantId::parse(&format!("B{i:03}")).unwrap();
        participants::upsert(
            &mut conn,
            &NewParticipant {
                participant_id: pid.clone(),
                timezone: chrono_tz::UTC,
                provider: Some("synthetic".into()),
                enrolled_at: Some(start),
                study_id: None,
            },
        )
        .await
        .unwrap();
        for d in 0..days {
            let day = start + chrono::Duration::days(d);
            let mut batch = Vec::new();
            for k in 0..(86_400 / hr_step) {
                let v = 60.0 + ((k * 7_919 + i as i64 * 31) % 600) as f64 / 10.0;
                let t = day + chrono::Duration::seconds(k * hr_step);
                batch.push(Sample::numeric(pid.clone(), Metric::HeartRate, t, v));
            }
            for m in 0..1_440 {
                let v = ((m * 11 + i as i64 * 3) % 97) as f64;
                let t = day + chrono::Duration::minutes(m);
                batch.push(Sample::numeric(pid.clone(), Metric::Steps, t, v));
            }
            rows += batch.len();
            writer.write(&mut conn, &batch).await.unwrap();
        }
    }
    refresh_rollups(
        &mut conn,
        &db.backend,
        TimeRange::new(start, start + chrono::Duration::days(days)).unwrap(),
    )
    .await
    .unwrap();
    sqlx::query("analyze").execute(&mut *conn).await.unwrap();
    eprintln!(
        "seeded {rows} rows ({participants} participants x {days} days) in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

struct Stats {
    p50_ms: f64,
    p99_ms: f64,
    per_sec: f64,
}

fn stats(mut lat: Vec<Duration>, elapsed: Duration) -> Stats {
    lat.sort();
    let q = |f: f64| lat[((lat.len() as f64 - 1.0) * f).round() as usize].as_secs_f64() * 1e3;
    Stats {
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// Closed loop: `clients` loops of `op` for `secs`, each sending its next request when the
/// previous one is answered; `op(i)` makes request number `i`. Measures the most requests per
/// second the shared cores can serve.
async fn load<F, Fut>(clients: u64, secs: u64, op: Arc<F>) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    // Warm-up: one pass over the participants, not measured.
    for i in 0..clients * 2 {
        op(i).await;
    }
    let began = Instant::now();
    let deadline = began + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut i) = (Vec::new(), c);
            while Instant::now() < deadline {
                let t = Instant::now();
                op(i).await;
                lat.push(t.elapsed());
                i += clients;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    stats(all, began.elapsed())
}

/// Open loop: requests started at a fixed `rate` per second for `secs`, each on its own task,
/// whether or not earlier ones have been answered (as independent users arrive); latency from
/// each request's start to its answer.
async fn paced<F, Fut>(rate: f64, secs: u64, op: Arc<F>) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let period = Duration::from_secs_f64(1.0 / rate);
    let began = tokio::time::Instant::now();
    let deadline = began + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0u64.. {
        let due = began + period.mul_f64(i as f64);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            op(i).await;
            t.elapsed()
        }));
    }
    let mut all = Vec::with_capacity(tasks.len());
    for t in tasks {
        all.push(t.await.unwrap());
    }
    stats(all, began.elapsed())
}

/// One keep-alive HTTP/1.1 connection of the load generator.
struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        HttpConn {
            stream,
            buf: Vec::with_capacity(1 << 18),
        }
    }

    /// GET `target` (path and query); the status and the body.
    async fn get(&mut self, target: &str) -> (u16, &[u8]) {
        let request = format!(
            "GET {target} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {TEST_ADMIN_TOKEN}\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
        self.buf.clear();
        let head_len = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more().await;
        };
        let head = std::str::from_utf8(&self.buf[..head_len]).unwrap();
        let status: u16 = head[9..12].parse().unwrap();
        let body_len: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .expect("an answer with a Content-Length");
        while self.buf.len() < head_len + body_len {
            self.read_more().await;
        }
        assert_eq!(
            self.buf.len(),
            head_len + body_len,
            "bytes beyond the answer"
        );
        (status, &self.buf[head_len..])
    }

    async fn read_more(&mut self) {
        self.buf.reserve(1 << 16);
        let n = self.stream.read_buf(&mut self.buf).await.unwrap();
        assert!(n > 0, "the server closed the connection");
    }
}

/// Keep-alive connections shared by the load clients: each request takes one (or opens one)
/// and puts it back, so there are as many connections as requests in flight.
#[derive(Clone)]
struct HttpConns {
    addr: SocketAddr,
    idle: Arc<Mutex<Vec<HttpConn>>>,
}

impl HttpConns {
    async fn take(&self) -> HttpConn {
        let idle = self.idle.lock().unwrap().pop();
        match idle {
            Some(c) => c,
            None => HttpConn::connect(self.addr).await,
        }
    }

    fn put(&self, c: HttpConn) {
        self.idle.lock().unwrap().push(c);
    }
}

/// Points in a `/data` JSON answer, counted by decoding it.
fn json_points(body: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["points"].as_array().unwrap().len())
        .sum()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let participants = env_num("WEARHOUSE_BENCH_PARTICIPANTS", 20);
    let days = env_num("WEARHOUSE_BENCH_DAYS", 30) as i64;
    let hr_step = env_num("WEARHOUSE_BENCH_HR_STEP_SECS", 10) as i64;
    let clients = env_num("WEARHOUSE_BENCH_CLIENTS", 8);
    let secs = env_num("WEARHOUSE_BENCH_SECS", 5);
    // The fixed request rates of the latency comparison, as shares of the direct SQL's
    // saturated rate, in percent.
    let load_shares: Vec<f64> = std::env::var("WEARHOUSE_BENCH_LOAD_PERCENT")
        .unwrap_or_else(|_| "25,50".into())
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .expect("WEARHOUSE_BENCH_LOAD_PERCENT: percentages such as 25,50")
                / 100.0
        })
        .collect();
    let backend = *backends().await.last().unwrap();
    let db = TestDb::new(backend).await;
    seed(&db, participants, days, hr_step).await;
    grant_test_admin(&db.pool).await;

    let mut database = DatabaseArgs::from_url(db.url.clone());
    database.db_max_connections = POOL;
    let listen = ListenArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let app = Application::build(&database, &listen, &ServeArgs::default())
        .await
        .unwrap();
    let conns = HttpConns {
        addr: app.local_addr(),
        idle: Arc::new(Mutex::new(Vec::new())),
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let direct: PgPool = PgPoolOptions::new()
        .max_connections(POOL)
        .connect(&db.url)
        .await
        .unwrap();
    let start: DateTime<Utc> = START.parse().unwrap();

    println!(
        "\nGET /data vs the same SQL on {}; {participants} participants x {days} days; \
         {clients} concurrent clients, {secs} s per side, pool {POOL}\n",
        db.backend
    );
    // Scenarios whose label contains this text, e.g. "1d" (for profiling one); default all.
    let only = std::env::var("WEARHOUSE_BENCH_ONLY").unwrap_or_default();
    let mut saturated = Vec::new();
    let mut at_rate = Vec::new();
    for s in SCENARIOS.iter().filter(|s| s.label.contains(only.as_str())) {
        let r = range(s, start);
        let (metric, res) = (s.metric, s.resolution);
        let n = participants;
        // What a /data request runs in the database, rows decoded; the points it read.
        let read = move |pool: PgPool, i: u64| async move {
            let pid = ParticipantId::parse(&format!("B{:03}", i % n)).unwrap();
            let plan = Plan::new(SeriesQuery {
                participants: vec![pid.clone()],
                metric,
                range: r,
                max_points: None,
                resolution: res,
                page: Page {
                    limit: Some(series::DEFAULT_MAX_POINTS),
                    ..Page::default()
                },
            })
            .unwrap();
            let mut conn = pool.acquire().await.unwrap();
            participants::existing(&mut conn, &[pid]).await.unwrap();
            let page = series::read(&mut conn, &plan).await.unwrap();
            page.series.iter().map(|s| s.points.len()).sum::<usize>()
        };
        let resolution = res.map_or("auto", |r| r.name());
        let target = move |i: u64| {
            format!(
                "/data?participant_id=B{:03}&metric={}&start_date={}&end_date={}&resolution={resolution}",
                i % n,
                metric.name(),
                r.start.format("%Y-%m-%dT%H:%M:%SZ"),
                r.end.format("%Y-%m-%dT%H:%M:%SZ")
            )
        };
        let points = read(direct.clone(), 0).await;
        let mut c = conns.take().await;
        let (status, body) = c.get(&target(0)).await;
        assert_eq!(status, 200, "{}", s.label);
        assert_eq!(json_points(body), points, "{}", s.label);
        conns.put(c);

        let pool = direct.clone();
        let sql_op = Arc::new(move |i| {
            let pool = pool.clone();
            async move {
                read(pool, i).await;
            }
        });
        let http = conns.clone();
        let api_op = Arc::new(move |i| {
            let http = http.clone();
            let target = target(i);
            async move {
                let mut c = http.take().await;
                let (status, body) = c.get(&target).await;
                assert!(status == 200 && !body.is_empty(), "{status}");
                http.put(c);
            }
        });
        let sql = load(clients, secs, sql_op.clone()).await;
        let api = load(clients, secs, api_op.clone()).await;
        saturated.push(format!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s.label,
            points,
            api.per_sec,
            sql.per_sec,
            sql.per_sec / api.per_sec,
            api.p50_ms,
            api.p99_ms,
            sql.p50_ms,
            sql.p99_ms,
        ));
        for &share in &load_shares {
            let rate = sql.per_sec * share;
            let sql = paced(rate, secs, sql_op.clone()).await;
            let api = paced(rate, secs, api_op.clone()).await;
            at_rate.push(format!(
                "| {} | {} | {:.0}% | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                s.label,
                points,
                share * 100.0,
                rate,
                api.p50_ms,
                api.p99_ms,
                sql.p50_ms,
                sql.p99_ms,
                api.p50_ms / sql.p50_ms
            ));
        }
    }
    println!(
        "Saturated: {clients} clients in closed loops, each sending its next request when \
         answered\n"
    );
    println!(
        "| scenario | points | API req/s | SQL req/s | SQL/API req/s | API p50 ms | API p99 ms | SQL p50 ms | SQL p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in saturated {
        println!("{row}");
    }
    println!(
        "\nLatency at a fixed request rate, a share of the direct SQL's saturated rate, the same \
         for both sides; requests started on schedule (open loop)\n"
    );
    println!(
        "| scenario | points | load | req/s | API p50 ms | API p99 ms | SQL p50 ms | SQL p99 ms | p50 API/SQL |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in at_rate {
        println!("{row}");
    }
    shutdown.cancel();
}
