//! Idempotency-Key records (see migration 0005).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// A stored first response.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub fingerprint: String,
    pub response_status: i32,
    pub response_body: String,
    pub response_headers: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
}

/// A 64-bit advisory lock key for (user, key).
fn lock_key(user: Uuid, key: &str) -> i64 {
    let d = Sha256::new()
        .chain_update(user.as_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

/// Try to become the one request processing (user, key) until this
/// transaction ends. `false`: another request with that key is running.
pub async fn try_lock(conn: &mut PgConnection, user: Uuid, key: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(lock_key(user, key))
        .fetch_one(conn)
        .await
}

pub async fn find(conn: &mut PgConnection, user: Uuid, key: &str) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as(
        "SELECT fingerprint, response_status, response_body, response_headers \
         FROM booking.idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// Keep the first answer for the caller's key (`booking.remember_response`:
/// the database stamps it, bounds it and keeps only the allowed headers).
pub async fn store(
    conn: &mut PgConnection,
    key: &str,
    fingerprint: &str,
    status: u16,
    body: &str,
    headers: &serde_json::Map<String, serde_json::Value>,
) -> sqlx::Result<()> {
    sqlx::query("SELECT booking.remember_response($1, $2, $3, $4, $5)")
        .bind(key)
        .bind(fingerprint)
        .bind(i32::from(status))
        .bind(body)
        .bind(sqlx::types::Json(headers))
        .execute(conn)
        .await?;
    Ok(())
}

/// Delete up to `batch` records created before `older_than`; returns how
/// many. Small batches keep each statement short, so traffic never waits.
pub async fn sweep(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
    batch: i64,
) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "DELETE FROM booking.idempotency_keys WHERE ctid = ANY (ARRAY( \
           SELECT ctid FROM booking.idempotency_keys WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
    )
    .bind(older_than)
    .bind(batch)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Every record created before `older_than` at once (a Citus coordinator,
/// where the batched form cannot be planned).
pub async fn sweep_all(conn: &mut PgConnection, older_than: DateTime<Utc>) -> sqlx::Result<u64> {
    let r = sqlx::query("DELETE FROM booking.idempotency_keys WHERE created_at < $1")
        .bind(older_than)
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}
