//! `wearhouse-api migrate` as an operator runs it.

use std::process::Command;

use wearhouse_core::testing::{TestDb, timescaledb_available};

fn migrate(url: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse-api"))
        .arg("migrate")
        .args(extra)
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn migrate_names_the_backend_and_a_second_run_applies_nothing() {
    let (_, url) = TestDb::empty().await;
    let (ok, first) = migrate(&url, &[]);
    assert!(ok, "{first}");
    let expected = if timescaledb_available() {
        "backend: timescaledb"
    } else {
        "backend: postgres"
    };
    // Every migration in migrations/ is applied on a fresh database.
    let applied = format!(
        "applied {} migration(s)",
        wearhouse_core::store::MIGRATOR.iter().count()
    );
    assert!(
        first.contains(&applied) && first.contains(expected),
        "{first}"
    );
    let (ok, second) = migrate(&url, &[]);
    assert!(ok, "{second}");
    assert!(
        second.contains("schema is current") && second.contains(expected),
        "{second}"
    );
}

#[tokio::test]
async fn migrate_can_be_told_to_build_the_plain_postgresql_schema() {
    let (_, url) = TestDb::empty().await;
    let (ok, out) = migrate(&url, &["--no-timescaledb"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("backend: postgres") && out.contains("rollup tables"),
        "{out}"
    );
}

#[test]
fn an_unreachable_database_gets_a_message_that_says_what_to_fix() {
    let (ok, out) = migrate("postgres://nobody@127.0.0.1:1/none", &["--log", "off"]);
    assert!(!ok);
    assert!(out.contains("check DATABASE_URL"), "{out}");
}
