//! Resources: what is booked. Everyone signed in reads the active ones (RLS);
//! only the service role writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::domain::{ResourceId, UserId};

/// A resource as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Resource {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub capacity: i32,
    pub slot_minutes: i32,
    pub min_duration_minutes: i32,
    pub max_duration_minutes: i32,
    pub buffer_minutes: i32,
    pub min_notice_minutes: i32,
    pub max_advance_days: i32,
    /// `mon`..`sun` → list of `["HH:MM","HH:MM"]` local intervals; null = always open.
    #[schema(value_type = Option<crate::http::resources::OpeningHoursDoc>)]
    pub opening_hours: Option<serde_json::Value>,
    pub owner_id: Option<Uuid>,
    pub active: bool,
    /// Minutes before each confirmed booking's start at which a
    /// `booking.reminder` webhook is due (e.g. `[1440, 60]`).
    pub reminders_minutes: Vec<i32>,
    /// Bookings are created `pending` until the owner or the service role approves.
    pub requires_approval: bool,
    /// A pending booking not decided within this many minutes expires.
    pub approval_timeout_minutes: i32,
    /// `{"YYYY-MM-DD": [["HH:MM","HH:MM"], …]}` replaces that local date's
    /// opening hours (`[]`: closed all day); null = none.
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<crate::http::resources::Interval>>>)]
    pub date_overrides: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every writable field, validated (see `http::resources`).
#[derive(Debug, Clone)]
pub struct ResourceFields {
    pub name: String,
    pub timezone: String,
    pub capacity: i32,
    pub slot_minutes: i32,
    pub min_duration_minutes: i32,
    pub max_duration_minutes: i32,
    pub buffer_minutes: i32,
    pub min_notice_minutes: i32,
    pub max_advance_days: i32,
    pub opening_hours: Option<serde_json::Value>,
    pub owner_id: Option<Uuid>,
    pub active: bool,
    pub reminders_minutes: Vec<i32>,
    pub requires_approval: bool,
    pub approval_timeout_minutes: i32,
    pub date_overrides: Option<serde_json::Value>,
}

const COLUMNS: &str = "id, name, timezone, capacity, slot_minutes, min_duration_minutes, max_duration_minutes, \
    buffer_minutes, min_notice_minutes, max_advance_days, opening_hours, owner_id, active, reminders_minutes, requires_approval, approval_timeout_minutes, \
    date_overrides, created_at, updated_at";

pub async fn list_active(conn: &mut PgConnection) -> sqlx::Result<Vec<Resource>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM booking.resources WHERE active ORDER BY name, id LIMIT 1000"
    ))
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: ResourceId) -> sqlx::Result<Option<Resource>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM booking.resources WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn get_for_update(
    conn: &mut PgConnection,
    id: ResourceId,
) -> sqlx::Result<Option<Resource>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM booking.resources WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The fields of a resource, bound in column order after whatever the query
/// bound before (nothing for INSERT, the id as `$1` for UPDATE).
fn bind_fields<'q>(
    q: sqlx::query::QueryAs<'q, Postgres, Resource, sqlx::postgres::PgArguments>,
    f: &'q ResourceFields,
) -> sqlx::query::QueryAs<'q, Postgres, Resource, sqlx::postgres::PgArguments> {
    q.bind(&f.name)
        .bind(&f.timezone)
        .bind(f.capacity)
        .bind(f.slot_minutes)
        .bind(f.min_duration_minutes)
        .bind(f.max_duration_minutes)
        .bind(f.buffer_minutes)
        .bind(f.min_notice_minutes)
        .bind(f.max_advance_days)
        .bind(&f.opening_hours)
        .bind(f.owner_id)
        .bind(f.active)
        .bind(&f.reminders_minutes)
        .bind(f.requires_approval)
        .bind(f.approval_timeout_minutes)
        .bind(&f.date_overrides)
}

pub async fn insert(conn: &mut PgConnection, f: &ResourceFields) -> sqlx::Result<Resource> {
    let sql = format!(
        "INSERT INTO booking.resources (name, timezone, capacity, slot_minutes, min_duration_minutes, \
           max_duration_minutes, buffer_minutes, min_notice_minutes, max_advance_days, opening_hours, owner_id, active, reminders_minutes, requires_approval, \
           approval_timeout_minutes, date_overrides) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING {COLUMNS}"
    );
    bind_fields(sqlx::query_as(&sql), f).fetch_one(conn).await
}

pub async fn update(
    conn: &mut PgConnection,
    id: ResourceId,
    f: &ResourceFields,
) -> sqlx::Result<Resource> {
    let sql = format!(
        "UPDATE booking.resources SET name = $2, timezone = $3, capacity = $4, slot_minutes = $5, \
           min_duration_minutes = $6, max_duration_minutes = $7, buffer_minutes = $8, min_notice_minutes = $9, \
           max_advance_days = $10, opening_hours = $11, owner_id = $12, active = $13, reminders_minutes = $14, requires_approval = $15, \
           approval_timeout_minutes = $16, date_overrides = $17, updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    bind_fields(sqlx::query_as(&sql).bind(id), f)
        .fetch_one(conn)
        .await
}

/// Before lowering capacity, in the updating transaction: whether a booking
/// that has not ended holds a seat beyond `capacity` (writes to bookings wait
/// until this transaction ends; see `booking.seats_in_use_beyond`).
pub async fn seats_in_use_beyond(
    conn: &mut PgConnection,
    id: ResourceId,
    capacity: i32,
) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT booking.seats_in_use_beyond($1, $2)")
        .bind(id)
        .bind(capacity)
        .fetch_one(conn)
        .await
}

/// Whether a user with this id exists (for owner_id).
pub async fn user_exists(conn: &mut PgConnection, id: UserId) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM booking.users WHERE id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Whether PostgreSQL knows this time zone name.
pub async fn timezone_known(conn: &mut PgConnection, tz: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
        .bind(tz)
        .fetch_one(conn)
        .await
}

/// One free slot.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub remaining: i32,
}

pub async fn availability(
    conn: &mut PgConnection,
    id: ResourceId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    minutes: i32,
) -> sqlx::Result<Vec<Slot>> {
    sqlx::query_as(
        "SELECT slot_start AS start, slot_end AS \"end\", remaining FROM booking.availability($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(minutes)
    .fetch_all(conn)
    .await
}
