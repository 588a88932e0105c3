//! The services' database roles reach only what their service uses: the ingest neither
//! sign-in data nor the audit trail's rows (it appends through `audit_append`), impute neither
//! grants nor contact details.

use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::audit;
use wearhouse_core::testing::{TestDb, backends};

async fn as_role(db: &TestDb, role: &str) -> sqlx::PgPool {
    DatabaseArgs::from_url(db.url.clone())
        .with_role(role)
        .connect()
        .await
        .unwrap()
}

async fn assert_denied(pool: &sqlx::PgPool, role: &str, statements: &[&str]) {
    for sql in statements {
        let e = sqlx::query(sql)
            .fetch_all(pool)
            .await
            .expect_err(sql)
            .into_database_error()
            .unwrap_or_else(|| panic!("{sql}: not a database error"));
        assert_eq!(e.code().as_deref(), Some("42501"), "{role}: {sql}: {e}");
    }
}

#[tokio::test]
async fn the_ingest_role_reaches_no_sign_in_data_and_appends_to_the_audit_trail_only() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let ingest = as_role(&db, "wearhouse_ingest").await;
        assert_denied(
            &ingest,
            "wearhouse_ingest",
            &[
                "select * from sessions",
                "select * from users",
                "select * from api_tokens",
                "select * from user_studies",
                "select * from audit_log",
                "select * from contact_requests",
                "select * from imputation_jobs",
                "delete from audit_log",
            ],
        )
        .await;
        // Its own command-line audit rows go in through the function.
        audit::append_cli(
            &ingest,
            audit::action::PARTICIPANT_CHANGED,
            None,
            &[],
            serde_json::json!({}),
        )
        .await
        .unwrap();
        // And it reads and writes what the load needs.
        for sql in [
            "select count(*) from oauth_tokens",
            "select count(*) from raw_data",
            "select count(*) from ingest_state",
            "select count(*) from participants",
        ] {
            sqlx::query(sql).fetch_one(&ingest).await.unwrap();
        }
    }
}

#[tokio::test]
async fn the_impute_role_reaches_neither_grants_nor_contact_details() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let impute = as_role(&db, "wearhouse_impute").await;
        assert_denied(
            &impute,
            "wearhouse_impute",
            &[
                "select * from oauth_tokens",
                "select contact_name, contact_email from participants",
                "select * from contact_requests",
                "select * from sessions",
                "select * from users",
                "select * from api_tokens",
                "select * from audit_log",
                "delete from raw_data",
                "insert into ingest_state (participant_id, source, data_type, watermark)
                 values ('P001', 'x', 'steps', now())",
            ],
        )
        .await;
        for sql in [
            "select count(*) from imputation_jobs",
            "select count(*) from imputed_data",
            "select count(*) from data_1m",
            "select count(participant_id), max(timezone) from participants",
        ] {
            sqlx::query(sql).fetch_one(&impute).await.unwrap();
        }
    }
}
