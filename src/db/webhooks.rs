//! Webhook endpoints (the service role's, under its grants) and the outbox
//! worker's calls (the SECURITY DEFINER functions of migration 0007).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// An endpoint as the API shows it. `secret` only in the answers that create
/// or rotate it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    /// The subscribed events; null = all.
    pub events: Option<Vec<String>>,
    /// Only this resource's events; null = every resource.
    pub resource_id: Option<Uuid>,
    pub description: Option<String>,
    /// `whsec_` + base64 of 32 random bytes: only when created or rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub active: bool,
    /// Why the endpoint was disabled (a 410, or failing for days); null while active.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, url, events, resource_id, description, NULL::text AS secret, active, disabled_reason, created_at, updated_at";

/// What an endpoint is made of (validated by the HTTP layer).
#[derive(Debug, Clone)]
pub struct EndpointFields {
    pub url: String,
    pub events: Option<Vec<String>>,
    pub resource_id: Option<Uuid>,
    pub description: Option<String>,
    pub active: bool,
}

pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM booking.webhook_endpoints")
        .fetch_one(conn)
        .await
}

pub async fn insert(
    conn: &mut PgConnection,
    f: &EndpointFields,
    secret: &str,
) -> sqlx::Result<Endpoint> {
    sqlx::query_as(
        "INSERT INTO booking.webhook_endpoints (url, events, resource_id, description, secret, active) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING id, url, events, resource_id, description, secret, active, disabled_reason, created_at, updated_at",
    )
    .bind(&f.url)
    .bind(&f.events)
    .bind(f.resource_id)
    .bind(&f.description)
    .bind(secret)
    .bind(f.active)
    .fetch_one(conn)
    .await
}

pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM booking.webhook_endpoints ORDER BY created_at, id LIMIT 1000"
    ))
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM booking.webhook_endpoints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Replace the fields; turning an endpoint back on clears why it was off and
/// its failure streak.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    f: &EndpointFields,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(&format!(
        "UPDATE booking.webhook_endpoints SET url = $2, events = $3, resource_id = $4, description = $5, \
           active = $6, \
           disabled_reason = CASE WHEN $6 THEN NULL ELSE coalesce(disabled_reason, 'disabled by an administrator') END, \
           failing_since = CASE WHEN $6 AND NOT active THEN NULL ELSE failing_since END, \
           updated_at = clock_timestamp() \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&f.url)
    .bind(&f.events)
    .bind(f.resource_id)
    .bind(&f.description)
    .bind(f.active)
    .fetch_optional(conn)
    .await
}

/// Turn an endpoint off (the first step of deleting it); false if none.
pub async fn deactivate(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE booking.webhook_endpoints SET active = false, disabled_reason = 'being deleted', \
           updated_at = clock_timestamp() WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Delete up to `limit` of an endpoint's messages (and their log).
pub async fn purge_messages(conn: &mut PgConnection, id: Uuid, limit: i32) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT booking.webhook_purge_endpoint($1, $2)")
        .bind(id)
        .bind(limit)
        .fetch_one(conn)
        .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM booking.webhook_endpoints WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// A new secret; the current one becomes the previous, signing alongside for 24 hours.
pub async fn rotate(
    conn: &mut PgConnection,
    id: Uuid,
    secret: &str,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(
        "UPDATE booking.webhook_endpoints SET previous_secret = secret, \
           previous_secret_until = clock_timestamp() + interval '24 hours', secret = $2, updated_at = clock_timestamp() \
         WHERE id = $1 \
         RETURNING id, url, events, resource_id, description, secret, active, disabled_reason, created_at, updated_at",
    )
    .bind(id)
    .bind(secret)
    .fetch_optional(conn)
    .await
}

/// One attempt in the delivery log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    #[serde(skip)]
    pub seq: i64,
    pub message_id: Uuid,
    pub event: String,
    pub attempt: i32,
    /// The receiver's HTTP status; null when no answer came.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub at: DateTime<Utc>,
}

/// The log, newest first; `before` is the cursor (an attempt's sequence number).
pub async fn deliveries(
    conn: &mut PgConnection,
    endpoint: Uuid,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(
        "SELECT id AS seq, message_id, event, attempt, status_code, error, duration_ms, at \
           FROM booking.webhook_attempts \
          WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR id < $2) \
          ORDER BY id DESC LIMIT $3",
    )
    .bind(endpoint)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn resend(conn: &mut PgConnection, endpoint: Uuid, message: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT booking.webhook_resend($1, $2)")
        .bind(endpoint)
        .bind(message)
        .fetch_one(conn)
        .await
}

/// A claimed message, with what is needed to deliver it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub lease: Uuid,
    pub endpoint_id: Uuid,
    pub event: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub attempt: i32,
    pub round_attempt: i32,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
}

pub async fn claim(
    conn: &mut PgConnection,
    limit: i32,
    lease_seconds: i32,
    skip: &[Uuid],
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as("SELECT * FROM booking.webhook_claim($1, $2, $3)")
        .bind(limit)
        .bind(lease_seconds)
        .bind(skip)
        .fetch_all(conn)
        .await
}

/// An attempt's result, to be recorded.
pub struct Settle<'a> {
    pub id: Uuid,
    pub lease: Uuid,
    pub outcome: &'a str,
    pub status: Option<i32>,
    pub error: Option<&'a str>,
    pub duration_ms: i32,
    pub retry_seconds: Option<f64>,
}

/// Record a whole batch of attempts in one call.
pub async fn settle_batch(
    conn: &mut PgConnection,
    batch: &[Settle<'_>],
    disable_after_days: i32,
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = batch.iter().map(|s| s.id).collect();
    let leases: Vec<Uuid> = batch.iter().map(|s| s.lease).collect();
    let outcomes: Vec<&str> = batch.iter().map(|s| s.outcome).collect();
    let statuses: Vec<Option<i32>> = batch.iter().map(|s| s.status).collect();
    let errors: Vec<Option<&str>> = batch.iter().map(|s| s.error).collect();
    let durations: Vec<i32> = batch.iter().map(|s| s.duration_ms).collect();
    let retries: Vec<Option<f64>> = batch.iter().map(|s| s.retry_seconds).collect();
    sqlx::query("SELECT booking.webhook_settle_batch($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(ids)
        .bind(leases)
        .bind(outcomes)
        .bind(statuses)
        .bind(errors)
        .bind(durations)
        .bind(retries)
        .bind(disable_after_days)
        .execute(conn)
        .await?;
    Ok(())
}

/// (pending, due, age in seconds of the oldest due message).
pub async fn backlog(conn: &mut PgConnection) -> sqlx::Result<(i64, i64, f64)> {
    sqlx::query_as("SELECT pending, due, oldest_due_seconds FROM booking.webhook_backlog()")
        .fetch_one(conn)
        .await
}

pub async fn prune(conn: &mut PgConnection, limit: i32) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT booking.webhook_prune($1)")
        .bind(limit)
        .fetch_one(conn)
        .await
}
