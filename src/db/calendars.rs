//! Calendar feeds (migration 0009): tokens stored hashed.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::calendar::Entry;
use crate::domain::{BookingId, ResourceId};

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new feed for the caller (or the caller's resource); false if not allowed.
pub async fn create(
    conn: &mut PgConnection,
    resource: Option<ResourceId>,
    token: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT booking.create_calendar_feed($1, $2)")
        .bind(resource)
        .bind(token_hash(token))
        .fetch_one(conn)
        .await
}

pub async fn revoke(conn: &mut PgConnection, resource: Option<ResourceId>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT booking.revoke_calendar_feed($1)")
        .bind(resource)
        .fetch_one(conn)
        .await
}

/// The feed's bookings, or None when no feed has this token.
pub async fn feed(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<Vec<Entry>>> {
    let hash = token_hash(token);
    let exists: bool = sqlx::query_scalar("SELECT booking.calendar_feed_exists($1)")
        .bind(&hash)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    let rows = sqlx::query_as(
        "SELECT id, resource_name, starts_at, ends_at, status, version, updated_at, created_at \
           FROM booking.calendar_feed($1)",
    )
    .bind(&hash)
    .fetch_all(conn)
    .await?;
    Ok(Some(rows))
}

/// One booking the caller may see, as a calendar entry.
pub async fn entry(conn: &mut PgConnection, id: BookingId) -> sqlx::Result<Option<Entry>> {
    sqlx::query_as(
        "SELECT b.id, coalesce(r.name, 'Booking') AS resource_name, lower(b.period) AS starts_at, \
                upper(b.period) AS ends_at, b.status, b.version, b.updated_at, b.created_at \
           FROM booking.bookings b LEFT JOIN booking.resources r ON r.id = b.resource_id \
          WHERE b.id = $1 AND NOT b.is_hold",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Whether the resource exists and who owns it (for 404 vs 403).
pub async fn resource_owner(
    conn: &mut PgConnection,
    id: ResourceId,
) -> sqlx::Result<Option<Option<Uuid>>> {
    sqlx::query_scalar("SELECT owner_id FROM booking.resources WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}
