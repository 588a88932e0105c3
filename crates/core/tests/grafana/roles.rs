//! What Grafana's role may not read: participants' OAuth grants, contact details, sign-in data
//! and the audit trail, on every backend.

use wearhouse_core::testing::{TestDb, backends};

use crate::queries::as_grafana;

#[tokio::test]
async fn the_grafana_role_cannot_read_grants_contact_details_sign_in_or_the_audit_trail() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let grafana = as_grafana(&db).await;
        let me: String = sqlx::query_scalar("select current_user::text")
            .fetch_one(&grafana)
            .await
            .unwrap();
        assert_eq!(me, "wearhouse_grafana");
        for sql in [
            "select * from oauth_tokens",
            "select * from participants",
            "select contact_name from participants",
            "select contact_email from participants",
            "select provider_user_id from participants",
            "select * from contact_requests",
            "select * from sessions",
            "select * from users",
            "select * from api_tokens",
            "select * from audit_log",
            "insert into imputed_data (timestamp, participant_id, data_type, is_imputed, method)
             values (now(), 'P001', 'heart_rate', true, 'x')",
            "delete from raw_data",
        ] {
            let e = sqlx::query(sql)
                .fetch_all(&grafana)
                .await
                .expect_err(sql)
                .into_database_error()
                .unwrap_or_else(|| panic!("{sql}: not a database error"));
            assert_eq!(
                e.code().as_deref(),
                Some("42501"),
                "{sql} on {backend:?}: {e}"
            );
        }
        // What the participant variable needs: the pseudonymous id.
        sqlx::query("select participant_id, status, timezone from participants")
            .fetch_all(&grafana)
            .await
            .unwrap();
    }
}
