//! The throwaway PostgreSQL cluster: found or started (initdb on a free port, as the
//! `postgres` user when the tests run as root) and shared by every test process.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::postgres::PgConnectOptions;

use super::lock::{FileLock, lock_dir};

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
