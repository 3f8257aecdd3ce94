//! Bookings. Writes go through the plpgsql functions of migration 0002 (one
//! round trip each; rules, seats and history inside the database); reads are
//! plain queries that RLS filters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::TimeRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Confirmed,
    Cancelled,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A booking as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Booking {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub user_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: Status,
    pub note: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// What a write function reported.
#[derive(Debug, Deserialize)]
pub struct Outcome {
    pub outcome: String,
    pub booking: Option<Booking>,
    pub field: Option<String>,
    pub message: Option<String>,
}

async fn outcome(
    q: sqlx::query::QueryScalar<'_, Postgres, Json<Outcome>, sqlx::postgres::PgArguments>,
    conn: &mut PgConnection,
) -> sqlx::Result<Outcome> {
    Ok(q.fetch_one(conn).await?.0)
}

/// Create as the caller. The database judges everything, against its own
/// clock: the resource's rules, seats, the caller's overlaps and the cap on
/// active bookings (see migration 0006).
pub async fn create(
    conn: &mut PgConnection,
    resource_id: Uuid,
    period: TimeRange,
    note: Option<&str>,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_scalar("SELECT booking.create_booking($1, $2, $3, $4)")
        .bind(resource_id)
        .bind(period.start())
        .bind(period.end())
        .bind(note);
    outcome(q, conn).await
}

pub async fn reschedule(
    conn: &mut PgConnection,
    id: Uuid,
    period: TimeRange,
    note: Option<Option<&str>>,
    version: Option<i32>,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_scalar("SELECT booking.reschedule_booking($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(period.start())
        .bind(period.end())
        .bind(note.is_some())
        .bind(note.flatten())
        .bind(version);
    outcome(q, conn).await
}

pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    version: Option<i32>,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_scalar("SELECT booking.cancel_booking($1, $2)")
        .bind(id)
        .bind(version);
    outcome(q, conn).await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Booking>> {
    let row: Option<Json<Booking>> = sqlx::query_scalar(
        "SELECT booking.booking_json(b) FROM booking.bookings b WHERE b.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|j| j.0))
}

/// Filters of a list request. `user_id` restricts to one user's bookings.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub user_id: Option<Uuid>,
    pub resource_id: Option<Uuid>,
    pub status: Option<Status>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Position after which to continue: (start, id) of the last item seen.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Bookings in (start, id) order; returns up to `limit + 1` so the caller
/// knows whether there is a next page. `from`/`to` select bookings that
/// overlap [from, to).
pub async fn list(conn: &mut PgConnection, f: &ListFilter) -> sqlx::Result<Vec<Booking>> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT booking.booking_json(b) FROM booking.bookings b WHERE true");
    if let Some(u) = f.user_id {
        q.push(" AND b.user_id = ").push_bind(u);
    }
    if let Some(r) = f.resource_id {
        q.push(" AND b.resource_id = ").push_bind(r);
    }
    if let Some(s) = f.status {
        q.push(" AND b.status = ").push_bind(s.as_str());
    }
    if let Some(from) = f.from {
        q.push(" AND upper(b.period) > ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND lower(b.period) < ").push_bind(to);
    }
    if let Some((start, id)) = f.after {
        q.push(" AND (lower(b.period), b.id) > (")
            .push_bind(start)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY lower(b.period), b.id LIMIT ")
        .push_bind(f.limit + 1);
    let rows: Vec<Json<Booking>> = q.build_query_scalar().fetch_all(conn).await?;
    Ok(rows.into_iter().map(|j| j.0).collect())
}

/// One history entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Up to `limit + 1` history entries after the entry `after` (an event id),
/// oldest first, with their ids (the caller makes the next cursor).
pub async fn history(
    conn: &mut PgConnection,
    id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<(i64, Event)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        #[sqlx(flatten)]
        event: Event,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.id, e.at, e.action, e.actor_id, lower(e.new_period) AS start, upper(e.new_period) AS \"end\" \
         FROM booking.booking_events e WHERE e.booking_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3",
    )
    .bind(id)
    .bind(after.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.event)).collect())
}
