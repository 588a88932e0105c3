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

//! Its parts: `server` (the server the tests use: `DATABASE_URL` or the throwaway cluster),
//! `cluster` (starting that cluster), `template` (the migrated template databases) and `lock`
//! (file locks shared by test processes).

mod cluster;
mod lock;
mod server;
mod template;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};

use crate::store::{self, Backend};

pub use cluster::{OwnCluster, pg_bin_dir};

use server::server;
use template::ensure_template;

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

/// The API token test clients send: an admin's, made by [`grant_test_admin`]. A fixed secret
/// so a client can be built before its database is; it exists only in test databases.
pub const TEST_ADMIN_TOKEN: &str = "wh_test-admin-token-for-test-databases-only";

/// Creates the admin `admin@test.invalid` with the API token [`TEST_ADMIN_TOKEN`]; running it
/// again changes nothing.
pub async fn grant_test_admin(pool: &PgPool) {
    let mut conn = pool.acquire().await.expect("a test connection");
    sqlx::query(
        "with u as (
           insert into users (email, role) values ('admin@test.invalid', 'admin')
           on conflict do nothing returning user_id)
         insert into api_tokens (user_id, name, token_hash)
         select user_id, 'tests', $1 from u",
    )
    .bind(store::credentials::hash(TEST_ADMIN_TOKEN))
    .execute(&mut *conn)
    .await
    .expect("the test admin");
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
