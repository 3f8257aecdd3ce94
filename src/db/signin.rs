//! Sign-in tables (see `migrations/0004_auth.sql`): the server key, one-time
//! codes and their send log, sessions, refresh tokens, rate-limit counters.
//! Every function needs a service_role transaction. Times come from the
//! caller (the server clock), never from `now()`.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use sqlx::PgConnection;
use uuid::Uuid;

/// The name of the OTP HMAC key in `booking.server_keys`.
const OTP_KEY_NAME: &str = "otp_hmac";
const KEY_BYTES: usize = 32;

/// The key sign-in codes are hashed with, shared by every instance on this
/// database: created from the OS CSPRNG by whoever needs it first.
pub async fn otp_key(conn: &mut PgConnection) -> sqlx::Result<Vec<u8>> {
    if let Some(k) = read_key(conn).await? {
        return Ok(k);
    }
    let mut fresh = vec![0u8; KEY_BYTES];
    OsRng.fill_bytes(&mut fresh);
    // On a race the first insert wins; ON CONFLICT waits for it to commit, so
    // the read below (a new statement, a new snapshot) sees the winner.
    sqlx::query(
        "INSERT INTO booking.server_keys (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(OTP_KEY_NAME)
    .bind(&fresh)
    .execute(&mut *conn)
    .await?;
    read_key(conn).await?.ok_or(sqlx::Error::RowNotFound)
}

async fn read_key(conn: &mut PgConnection) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT secret FROM booking.server_keys WHERE name = $1")
        .bind(OTP_KEY_NAME)
        .fetch_optional(conn)
        .await
}

/// Serialise everything about one phone's codes until the transaction ends.
/// Serialise the sign-in steps of one phone. The advisory lock's key is seeded
/// from the server key: any database role may take any advisory lock, and a
/// guessable key would let one block every sign-in of a phone.
pub async fn lock_phone(conn: &mut PgConnection, phone: &str, key: &[u8]) -> sqlx::Result<()> {
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&key[..8.min(key.len())]);
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('booking.otp:' || $1, $2))")
        .bind(phone)
        .bind(i64::from_be_bytes(seed))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The sends of the last hour of a phone.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendWindow {
    pub count: i64,
    pub oldest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
}

pub async fn send_window(
    conn: &mut PgConnection,
    phone: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<SendWindow> {
    let (count, oldest, latest): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT count(*), min(sent_at), max(sent_at) FROM booking.otp_sends \
             WHERE phone = $1 AND sent_at > $2",
        )
        .bind(phone)
        .bind(now - Duration::hours(1))
        .fetch_one(conn)
        .await?;
    Ok(SendWindow {
        count,
        oldest,
        latest,
    })
}

/// Log a send and store its code (replacing the phone's previous one).
/// Returns the ids of the send and of the code, to undo them if delivery fails.
pub async fn store_code(
    conn: &mut PgConnection,
    phone: &str,
    code_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<(Uuid, Uuid)> {
    let send_id: Uuid = sqlx::query_scalar(
        "INSERT INTO booking.otp_sends (phone, sent_at) VALUES ($1, $2) RETURNING id",
    )
    .bind(phone)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let code_id: Uuid = sqlx::query_scalar(
        "INSERT INTO booking.otp_codes (phone, id, code_hash, attempts, created_at, expires_at) \
         VALUES ($1, gen_random_uuid(), $2, 0, $3, $4) \
         ON CONFLICT (phone) DO UPDATE SET id = excluded.id, code_hash = excluded.code_hash, \
           attempts = 0, created_at = excluded.created_at, expires_at = excluded.expires_at \
         RETURNING id",
    )
    .bind(phone)
    .bind(code_hash)
    .bind(now)
    .bind(expires_at)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM booking.otp_sends WHERE phone = $1 AND sent_at <= $2")
        .bind(phone)
        .bind(now - Duration::hours(1))
        .execute(conn)
        .await?;
    Ok((send_id, code_id))
}

/// Undo [`store_code`] after a failed delivery: the code never reached
/// anyone, so it must not be usable, and the send must not count.
pub async fn forget_send(
    conn: &mut PgConnection,
    send_id: Uuid,
    code_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM booking.otp_codes WHERE id = $1")
        .bind(code_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM booking.otp_sends WHERE id = $1")
        .bind(send_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A phone's current code.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredCode {
    pub id: Uuid,
    pub code_hash: Vec<u8>,
    pub attempts: i32,
    pub expires_at: DateTime<Utc>,
}

/// The phone's code, locked until the transaction ends (concurrent checks of
/// one code take turns, so a code is used at most once).
pub async fn code_for_update(
    conn: &mut PgConnection,
    phone: &str,
) -> sqlx::Result<Option<StoredCode>> {
    sqlx::query_as(
        "SELECT id, code_hash, attempts, expires_at FROM booking.otp_codes WHERE phone = $1 FOR UPDATE",
    )
    .bind(phone)
    .fetch_optional(conn)
    .await
}

/// Count a wrong try; the code dies at `max` wrong tries.
pub async fn wrong_try(conn: &mut PgConnection, id: Uuid, max: i32) -> sqlx::Result<()> {
    let tries: Option<i32> = sqlx::query_scalar(
        "UPDATE booking.otp_codes SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    if tries.is_some_and(|n| n >= max) {
        delete_code(conn, id).await?;
    }
    Ok(())
}

pub async fn delete_code(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM booking.otp_codes WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn create_session(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO booking.auth_sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(id)
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    session_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO booking.refresh_tokens (token_hash, session_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// A presented refresh token, read under its session's lock.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshState {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub session_revoked: bool,
    pub used: bool,
    pub used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

/// Whether a refresh token exists (and if so, whether it was used).
pub async fn refresh_token_used(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar(
        "SELECT used_at IS NOT NULL FROM booking.refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// Find the token, lock its session row (every check and rotation of a
/// session's tokens takes turns), then read the token's state afresh.
pub async fn refresh_token_for_update(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<RefreshState>> {
    let session: Option<Uuid> =
        sqlx::query_scalar("SELECT session_id FROM booking.refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(session) = session else {
        return Ok(None);
    };
    sqlx::query("SELECT 1 FROM booking.auth_sessions WHERE id = $1 FOR UPDATE")
        .bind(session)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(
        "SELECT t.session_id, s.user_id, s.revoked_at IS NOT NULL AS session_revoked, \
                t.used_at IS NOT NULL AS used, t.used_at, t.expires_at \
         FROM booking.refresh_tokens t JOIN booking.auth_sessions s ON s.id = t.session_id \
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

pub async fn mark_refresh_used(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE booking.refresh_tokens SET used_at = $2 WHERE token_hash = $1")
        .bind(token_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Revoke a session (all its refresh tokens stop working). With `user_id`,
/// only if the session is that user's. Returns whether a session was revoked.
pub async fn revoke_session(
    conn: &mut PgConnection,
    session_id: Uuid,
    user_id: Option<Uuid>,
    reason: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE booking.auth_sessions SET revoked_at = $3, revoked_reason = $4 \
         WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Count one hit in `bucket`'s window; returns the hits so far in it.
pub async fn hit(
    conn: &mut PgConnection,
    bucket: &str,
    window_start: DateTime<Utc>,
) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO booking.rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1) \
         ON CONFLICT (bucket, window_start) DO UPDATE SET hits = booking.rate_limits.hits + 1 \
         RETURNING hits",
    )
    .bind(bucket)
    .bind(window_start)
    .fetch_one(conn)
    .await
}

/// Delete what no longer decides anything: expired codes, sends and
/// counters older than an hour, refresh tokens past their expiry.
pub async fn housekeeping(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<()> {
    let hour_ago = now - Duration::hours(1);
    sqlx::query("DELETE FROM booking.otp_codes WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM booking.otp_sends WHERE sent_at < $1")
        .bind(hour_ago)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM booking.rate_limits WHERE window_start < $1")
        .bind(hour_ago)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM booking.refresh_tokens WHERE expires_at < $1")
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ())
}
