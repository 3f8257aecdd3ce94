//! Users, found by phone.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Phone, UserId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    /// E.164. Null for a user who signed in elsewhere (a Supabase project)
    /// without a phone.
    pub phone: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Race-safe get-or-create (the original script's getOrCreateUser): the
/// unique key on phone decides; concurrent first sign-ins all get the one row.
/// Returns the user and whether this call created it. Needs service_role.
pub async fn get_or_create(
    conn: &mut PgConnection,
    phone: &Phone,
    display_name: Option<&str>,
) -> sqlx::Result<(User, bool)> {
    // the common case, a known phone, reads only (on Citus `users` is a
    // reference table: a write there locks it on every node)
    if let Some(u) = by_phone(&mut *conn, phone).await? {
        return Ok((u, false));
    }
    let created: Option<User> = sqlx::query_as(
        "INSERT INTO booking.users (phone, display_name) VALUES ($1, $2) ON CONFLICT (phone) DO NOTHING \
         RETURNING id, phone, display_name, created_at",
    )
    .bind(phone.as_str())
    .bind(display_name)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(u) = created {
        return Ok((u, true));
    }
    let existing = by_phone(conn, phone)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((existing, false))
}

/// The caller's own user, created from their verified claims if this is their
/// first act here (a user who signed in through another issuer, such as a
/// Supabase project's Auth: their id is the token's `sub`). See `booking.me()`.
pub async fn me(conn: &mut PgConnection) -> sqlx::Result<Option<User>> {
    let v: Option<sqlx::types::Json<User>> = sqlx::query_scalar("SELECT booking.me()")
        .fetch_one(conn)
        .await?;
    Ok(v.map(|j| j.0))
}

pub async fn by_phone(conn: &mut PgConnection, phone: &Phone) -> sqlx::Result<Option<User>> {
    sqlx::query_as("SELECT id, phone, display_name, created_at FROM booking.users WHERE phone = $1")
        .bind(phone.as_str())
        .fetch_optional(conn)
        .await
}

pub async fn by_id(conn: &mut PgConnection, id: UserId) -> sqlx::Result<Option<User>> {
    sqlx::query_as("SELECT id, phone, display_name, created_at FROM booking.users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Rename the caller (`booking.set_display_name`: the database checks the
/// same rules as the API).
pub async fn set_display_name(
    conn: &mut PgConnection,
    name: Option<&str>,
) -> sqlx::Result<Option<User>> {
    let v: Option<sqlx::types::Json<User>> =
        sqlx::query_scalar("SELECT booking.set_display_name($1)")
            .bind(name)
            .fetch_one(conn)
            .await?;
    Ok(v.map(|j| j.0))
}

/// The issuer that provisioned a user, if not our own sign-in.
pub async fn issuer_of(conn: &mut PgConnection, id: UserId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT issuer FROM booking.users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map(Option::flatten)
}
