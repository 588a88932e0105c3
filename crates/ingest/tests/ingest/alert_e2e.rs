//! The operations alert path end to end with the real ingest daemon: Prometheus scrapes the
//! daemon, a run fails, AlertManager e-mails a local SMTP sink, and the mail names the alert.
//! Prometheus, AlertManager and the SMTP sink are driven by tests/monitoring/e2e_alert.py;
//! this test supplies the real daemon and the fault. Needs Debian's prometheus and
//! prometheus-alertmanager packages (monitoring/install-deps.sh).

use std::path::PathBuf;
use std::process::Command;

use wearhouse_core::testing::{TestBackend, TestDb};

use crate::support::process::{daemon, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_ingest_run_reaches_operations_by_email() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let db = TestDb::new(TestBackend::Postgres).await;
    let port = free_port();
    let (daemon, mut logs) = daemon(&db.url, port, &["--schedule", "*/2 * * * * *"]);
    logs.until("serving /health and /metrics").await;
    // The fault an operator would meet: the database no longer has what a run needs.
    let trigger = format!(
        "psql '{}' -v ON_ERROR_STOP=1 -qc 'alter table participants rename to participants_gone'",
        db.url
    );
    let out = Command::new("python3")
        .arg(repo.join("tests/monitoring/e2e_alert.py"))
        .args(["--ingest-target", &format!("127.0.0.1:{port}")])
        .args(["--trigger-command", &trigger])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&repo)
        .output()
        .expect("run tests/monitoring/e2e_alert.py (python3)");
    drop(daemon);
    assert!(
        out.status.success(),
        "alert e-mail test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
