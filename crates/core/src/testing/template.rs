//! Migrated template databases, one per backend and migration set, built once across test
//! processes so that a test's database is a `create database … template`, not a migration.

use sqlx::postgres::PgPoolOptions;

use super::TestBackend;
use super::lock::{FileLock, lock_dir};
use super::server::Server;
use crate::store::{self, MigrateSettings};

/// Creates (once per migration set, across processes) a migrated template database.
pub(super) async fn ensure_template(s: &Server, backend: TestBackend) -> String {
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
