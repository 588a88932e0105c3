//! Session-level advisory locks. The ingest pipeline holds one per participant while it loads
//! them, so two workers (in this or another process) never load the same participant. A
//! session lock is released on unlock or when the connection closes, so a killed process never
//! leaves it held.

use sqlx::PgConnection;

/// Takes the ingest lock on `participant` if nobody holds it; false when someone does.
pub async fn try_lock_ingest(conn: &mut PgConnection, participant: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select pg_try_advisory_lock(hashtextextended('wearhouse-ingest:' || $1, 0)) as "held!""#,
        participant
    )
    .fetch_one(conn)
    .await
}

/// Takes the ingest lock on `participant`, waiting for a load in progress to finish (a
/// withdrawal revokes the grant only once no worker is using it).
pub async fn lock_ingest(conn: &mut PgConnection, participant: &str) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        r#"select true as "held!" from pg_advisory_lock(hashtextextended('wearhouse-ingest:' || $1, 0))"#,
        participant
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Releases the ingest lock on `participant`; false when this session did not hold it.
pub async fn unlock_ingest(conn: &mut PgConnection, participant: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select pg_advisory_unlock(hashtextextended('wearhouse-ingest:' || $1, 0)) as "released!""#,
        participant
    )
    .fetch_one(conn)
    .await
}
