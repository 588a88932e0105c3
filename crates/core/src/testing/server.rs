//! The PostgreSQL server the tests use: the one `DATABASE_URL` names, else the throwaway
//! cluster, probed once per process for TimescaleDB.

use std::sync::OnceLock;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};

use super::cluster::throwaway_cluster;

/// Where the test databases are made, and what it can run.
pub(super) struct Server {
    pub(super) options: PgConnectOptions,
    pub(super) timescaledb: bool,
}

impl Server {
    pub(super) async fn admin(&self) -> PgConnection {
        self.options
            .clone()
            .database("postgres")
            .connect()
            .await
            .expect("connect to the test server's postgres database")
    }

    pub(super) fn url_for(&self, db: &str) -> String {
        let o = &self.options;
        format!(
            "postgres://{}@{}:{}/{db}",
            o.get_username(),
            o.get_host(),
            o.get_port()
        )
    }
}

pub(super) fn server() -> &'static Server {
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
