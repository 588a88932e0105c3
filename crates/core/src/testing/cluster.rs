//! The throwaway PostgreSQL cluster: found or started (initdb on a free port, as the
//! `postgres` user when the tests run as root) and shared by every test process; and
//! [`OwnCluster`], a cluster of one test's own, made the same way, for tests that stop or
//! restart the server.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::TestDb;
use super::lock::{FileLock, lock_dir};
use crate::store::{self, MigrateSettings};

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

pub(super) fn throwaway_cluster() -> PgConnectOptions {
    let root = lock_dir().join("cluster");
    let _lock = FileLock::acquire(&lock_dir().join("cluster.lock"));
    let data = root.join("data");
    let port_file = root.join("port");
    // A server answering on the recorded port is the running cluster: re-creating it would
    // cut off every other test process. `pg_ctl status` alone is not enough to tell, as running
    // it through `runuser` can fail on a machine under load.
    if let Ok(port) = fs::read_to_string(&port_file)
        && let Ok(port) = port.trim().parse::<u16>()
        && (accepts_connections(port)
            || run_pg("pg_ctl", &["-D", data.to_str().unwrap(), "status"])
                .status
                .success())
    {
        return cluster_options(port);
    }
    let _ = run_pg(
        "pg_ctl",
        &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
    );
    let port = init_and_start(&root);
    fs::write(&port_file, port.to_string()).expect("write port file");
    eprintln!(
        "started a throwaway PostgreSQL cluster on port {port} in {} (TimescaleDB: {})",
        root.display(),
        if timescaledb_installed() { "yes" } else { "no" }
    );
    cluster_options(port)
}

/// Whether a server accepts TCP connections on 127.0.0.1:`port`.
fn accepts_connections(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::time::Duration::from_secs(2),
    )
    .is_ok()
}

/// Makes a new cluster in `root/data` (anything in `root` before is removed), configured for
/// tests (TimescaleDB preloaded when installed) on a free port, and starts it with its log in
/// `root/server.log`. Returns the port.
fn init_and_start(root: &Path) -> u16 {
    let data = root.join("data");
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).expect("create cluster folder");
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(root)
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
    let mut conf = format!(
        "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         max_connections = 300\nshared_buffers = 128MB\nfsync = off\nsynchronous_commit = off\n\
         full_page_writes = off\nmax_locks_per_transaction = 256\n",
        root.display()
    );
    if timescaledb_installed() {
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
    start(root);
    port
}

/// Starts the cluster in `root/data` and waits until it accepts connections.
fn start(root: &Path) {
    let data = root.join("data");
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
}

/// Stops the cluster in `root/data` in `mode` (`fast`: sessions are terminated and the server
/// shuts down cleanly; `immediate`: as a crash) and waits until it has.
fn stop(root: &Path, mode: &str) -> std::process::Output {
    let data = root.join("data");
    run_pg(
        "pg_ctl",
        &[
            "-D",
            data.to_str().unwrap(),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "stop",
        ],
    )
}

/// A PostgreSQL cluster of one test's own, for faults that would disturb the tests sharing
/// the throwaway cluster: stopping or restarting the server. Stopped and removed when dropped.
pub struct OwnCluster {
    root: PathBuf,
    port: u16,
}

impl OwnCluster {
    /// Makes and starts a new cluster, configured as the throwaway one, on a free port.
    pub fn start() -> OwnCluster {
        let root = lock_dir()
            .join("own")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let port = init_and_start(&root);
        eprintln!(
            "started a PostgreSQL cluster of this test's own on port {port} in {}",
            root.display()
        );
        OwnCluster { root, port }
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as `pg_ctl stop -m fast` does (every session is terminated) and waits
    /// until it is down.
    pub fn stop(&self) {
        let out = stop(&self.root, "fast");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the stopped server again and waits until it accepts connections.
    pub fn start_again(&self) {
        start(&self.root);
    }

    /// `pg_ctl restart -m fast`: [`OwnCluster::stop`], then [`OwnCluster::start_again`].
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// A new database on this cluster, migrated for plain PostgreSQL.
    pub async fn database(&self) -> TestDb {
        let options = cluster_options(self.port);
        let mut admin = options
            .clone()
            .connect()
            .await
            .expect("connect to the test's own cluster");
        let name = format!("own_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(&format!("create database {name}"))
            .execute(&mut admin)
            .await
            .expect("create a database on the test's own cluster");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.database(&name))
            .await
            .expect("connect to the new database");
        let settings = MigrateSettings {
            timescaledb: false,
            ..MigrateSettings::default()
        };
        store::migrate(&pool, &settings)
            .await
            .expect("migrate the database of the test's own cluster");
        let mut conn = pool.acquire().await.expect("acquire");
        let backend = store::detect_backend(&mut conn)
            .await
            .expect("detect backend");
        drop(conn);
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
            pool,
            name,
            backend,
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = stop(&self.root, "immediate");
        let _ = fs::remove_dir_all(&self.root);
    }
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
