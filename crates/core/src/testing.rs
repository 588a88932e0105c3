//! Test support: a real PostgreSQL for every test.
//!
//! With `DATABASE_URL` set, tests use that server (its user must be allowed to create
//! databases). Without it, the first test starts a throwaway cluster (initdb in the temporary
//! folder, run as the `postgres` user when the tests run as root, on a free port) and later
//! tests, in any process, reuse it. Each test gets a fresh database cloned from a migrated
//! template, so a test costs a `create database`, not a migration.
//!
//! Where TimescaleDB is installed, the cluster preloads it and [`backends`] lists it next to
//! plain PostgreSQL, so storage tests run against both.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool};

use crate::store::{self, Backend, MigrateSettings};

/// A storage backend a test can run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// Plain PostgreSQL (TimescaleDB switched off for the database even when installed).
    Postgres,
    /// TimescaleDB community: hypertable, compression, continuous aggregates.
    Timescaledb,
}

impl TestBackend {
    fn slug(self) -> &'static str {
        match self {
            TestBackend::Postgres => "pg",
            TestBackend::Timescaledb => "ts",
        }
    }
}

/// The backends available to this test run: always plain PostgreSQL, and TimescaleDB when the
/// server can load it.
pub async fn backends() -> Vec<TestBackend> {
    let mut out = vec![TestBackend::Postgres];
    if server().timescaledb {
        out.push(TestBackend::Timescaledb);
    }
    out
}

/// Whether the test server can run TimescaleDB.
pub fn timescaledb_available() -> bool {
    server().timescaledb
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    pub pool: PgPool,
    /// Connection URL of this database, for spawning binaries against it.
    pub url: String,
    pub name: String,
    pub backend: Backend,
}

impl TestDb {
    /// A new migrated database on `backend`.
    pub async fn new(backend: TestBackend) -> TestDb {
        let s = server();
        let template = ensure_template(s, backend).await;
        let name = database_name(backend.slug());
        let mut admin = s.admin().await;
        sweep_leftovers(&mut admin).await;
        sqlx::raw_sql(&format!("create database {name} template {template}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let opts = s.options.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .expect("connect to test database");
        let mut conn = pool.acquire().await.expect("acquire");
        let backend = store::detect_backend(&mut conn)
            .await
            .expect("detect backend");
        drop(conn);
        eprintln!("test database {name} on {backend}");
        TestDb {
            pool,
            url: s.url_for(&name),
            name,
            backend,
        }
    }

    /// A new, empty database (not migrated) on the test server, for migration tests.
    pub async fn empty() -> (PgPool, String) {
        let s = server();
        let name = database_name("empty");
        let mut admin = s.admin().await;
        sweep_leftovers(&mut admin).await;
        sqlx::raw_sql(&format!("create database {name}"))
            .execute(&mut admin)
            .await
            .expect("create empty database");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(s.options.clone().database(&name))
            .await
            .expect("connect");
        (pool, s.url_for(&name))
    }
}

/// A test database's name: its kind, the id of the test process (so a later process can tell
/// a finished one's leftovers) and a random part.
fn database_name(kind: &str) -> String {
    format!(
        "t_{kind}_p{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The process id in a name made by [`database_name`].
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("t_")?;
    let (_, after) = rest.split_once("_p")?;
    after.split('_').next()?.parse().ok()
}

/// Once per process, on the throwaway cluster only: drops the test databases whose process is
/// gone. A test's database outlives the test so that a failure can be inspected, but a long
/// session of test runs would otherwise fill the disk. Databases of live test processes, and
/// any database on a server given by `DATABASE_URL`, are left alone.
async fn sweep_leftovers(admin: &mut PgConnection) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if std::env::var_os("DATABASE_URL").is_some() || SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname ~ '^t_[a-z]+_p[0-9]+_'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Another process may be sweeping the same leftovers; losing that race is fine.
        let _ = sqlx::raw_sql(&format!("drop database if exists {name} with (force)"))
            .execute(&mut *admin)
            .await;
    }
}

struct Server {
    options: PgConnectOptions,
    timescaledb: bool,
}

impl Server {
    async fn admin(&self) -> PgConnection {
        self.options
            .clone()
            .database("postgres")
            .connect()
            .await
            .expect("connect to the test server's postgres database")
    }

    fn url_for(&self, db: &str) -> String {
        let o = &self.options;
        format!(
            "postgres://{}@{}:{}/{db}",
            o.get_username(),
            o.get_host(),
            o.get_port()
        )
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let options = match std::env::var("DATABASE_URL") {
            Ok(url) => url
                .parse()
                .expect("DATABASE_URL is not a valid PostgreSQL URL"),
            Err(_) => throwaway_cluster(),
        };
        let timescaledb = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let mut c: PgConnection = options
                            .clone()
                            .connect()
                            .await
                            .expect("connect to test server");
                        sqlx::query_scalar::<_, bool>(
                            "select exists (select 1 from pg_available_extensions
                                            where name = 'timescaledb')
                                and coalesce(current_setting('shared_preload_libraries', true), '')
                                    ~ 'timescaledb'",
                        )
                        .fetch_one(&mut c)
                        .await
                        .expect("probe timescaledb")
                    })
            })
            .join()
            .unwrap()
        });
        Server {
            options,
            timescaledb,
        }
    })
}

/// Creates (once per migration set, across processes) a migrated template database.
async fn ensure_template(s: &Server, backend: TestBackend) -> String {
    let name = format!("tpl_{}_{}", backend.slug(), migrations_fingerprint());
    let _lock = FileLock::acquire(&lock_dir().join(format!("{name}.lock")));
    let mut admin = s.admin().await;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if exists {
        return name;
    }
    let building = format!("{name}_building");
    sqlx::raw_sql(&format!("drop database if exists {building}"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("create database {building}"))
        .execute(&mut admin)
        .await
        .unwrap();
    {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(s.options.clone().database(&building))
            .await
            .unwrap();
        let settings = MigrateSettings {
            timescaledb: backend == TestBackend::Timescaledb,
            ..MigrateSettings::default()
        };
        store::migrate(&pool, &settings)
            .await
            .expect("migrate the template database");
        pool.close().await;
    }
    sqlx::raw_sql(&format!(
        "alter database {building} rename to {name}; alter database {name} is_template true"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    name
}

fn migrations_fingerprint() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in store::MIGRATOR.iter() {
        m.version.hash(&mut h);
        m.checksum.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("wearhouse-test");
    fs::create_dir_all(&dir).expect("create the test lock folder");
    dir
}

struct FileLock(File);

impl FileLock {
    fn acquire(path: &Path) -> FileLock {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("open lock file");
        f.lock().expect("lock");
        FileLock(f)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Finds PostgreSQL's server programs: `WEARHOUSE_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else `PATH`.
pub fn pg_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("WEARHOUSE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

fn program(name: &str) -> PathBuf {
    pg_bin_dir().map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs a server program, as `postgres` when we are root (PostgreSQL refuses to run as root).
fn run_pg(name: &str, args: &[&str]) -> std::process::Output {
    let prog = program(name);
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&prog);
        c
    } else {
        Command::new(&prog)
    };
    cmd.args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {}: {e}; install PostgreSQL's server packages",
            prog.display()
        )
    })
}

fn throwaway_cluster() -> PgConnectOptions {
    let root = lock_dir().join("cluster");
    let _lock = FileLock::acquire(&lock_dir().join("cluster.lock"));
    let data = root.join("data");
    let port_file = root.join("port");
    if let Ok(port) = fs::read_to_string(&port_file)
        && let Ok(port) = port.trim().parse::<u16>()
        && run_pg("pg_ctl", &["-D", data.to_str().unwrap(), "status"])
            .status
            .success()
    {
        return cluster_options(port);
    }
    let _ = run_pg(
        "pg_ctl",
        &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
    );
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).expect("create cluster folder");
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root)
            .status()
            .expect("chown");
        assert!(status.success(), "chown of the cluster folder failed");
        // The postgres user must be able to reach the folder.
        let _ = Command::new("chmod")
            .args(["o+rx"])
            .arg(lock_dir())
            .status();
    }
    let out = run_pg(
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
    );
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let timescaledb = timescaledb_installed();
    let mut conf = format!(
        "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         max_connections = 300\nshared_buffers = 128MB\nfsync = off\nsynchronous_commit = off\n\
         full_page_writes = off\nmax_locks_per_transaction = 256\n",
        root.display()
    );
    if timescaledb {
        conf.push_str(
            "shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\n\
             timescaledb.max_background_workers = 0\n",
        );
    }
    // initdb made the file as postgres; root may append.
    OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .expect("configure the test cluster");
    let log = root.join("server.log");
    let out = run_pg(
        "pg_ctl",
        &[
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "start",
        ],
    );
    assert!(
        out.status.success(),
        "pg_ctl start failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(&log).unwrap_or_default()
    );
    fs::write(&port_file, port.to_string()).expect("write port file");
    eprintln!(
        "started a throwaway PostgreSQL cluster on port {port} in {} (TimescaleDB: {})",
        root.display(),
        if timescaledb { "yes" } else { "no" }
    );
    cluster_options(port)
}

fn timescaledb_installed() -> bool {
    let Some(bin) = pg_bin_dir() else {
        return false;
    };
    let out = Command::new(bin.join("pg_config"))
        .arg("--pkglibdir")
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            Path::new(&dir).join("timescaledb.so").exists()
        }
        _ => bin
            .parent()
            .is_some_and(|p| p.join("lib/timescaledb.so").exists()),
    }
}

fn cluster_options(port: u16) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_database_name_carries_its_process_id() {
        let name = database_name("pg");
        assert_eq!(owner_pid(&name), Some(std::process::id()));
        assert_eq!(owner_pid("t_empty_p42_0123abcd"), Some(42));
        assert_eq!(owner_pid("t_pg_0123abcd"), None);
        assert_eq!(owner_pid("tpl_pg_0123"), None);
    }
}
