//! Bookings. Writes go through the plpgsql functions of migration 0006 (one
//! round trip each; rules, seats, the cap and history inside the database),
//! which return one typed row (`booking.write_result`) read into [`Outcome`];
//! reads are plain queries that RLS filters. The API's JSON is built here,
//! from typed columns, never in SQL.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::{BookingId, ResourceId, TimeRange, UserId};

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

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "confirmed" => Some(Status::Confirmed),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

impl sqlx::Type<Postgres> for Status {
    fn type_info() -> PgTypeInfo {
        <String as sqlx::Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Status {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let s = <&str as sqlx::Decode<Postgres>>::decode(value)?;
        Status::parse(s).ok_or_else(|| format!("unknown booking status `{s}`").into())
    }
}

/// A booking as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
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

/// The columns of a booking as the API shows it, for `SELECT … FROM booking.bookings b`.
pub const BOOKING_COLUMNS: &str = "b.id, b.resource_id, b.user_id, lower(b.period) AS start, \
     upper(b.period) AS \"end\", b.status, b.note, b.version, b.created_at, b.updated_at, b.cancelled_at";

/// What a write function decided. Every outcome the database functions
/// return is one of these; the handlers match them exhaustively.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created(Booking),
    Updated(Booking),
    /// Cancelling a cancelled booking: nothing changed.
    Unchanged(Booking),
    NotFound,
    /// A rule refused the request: which field, and why.
    Invalid {
        field: String,
        message: String,
    },
    SlotTaken,
    UserOverlap,
    PreconditionFailed,
    /// Staff may see and cancel bookings on their resources, not move them.
    Forbidden,
    /// No user in the claims (or the service role where a user must act).
    Unauthenticated,
}

/// `booking.write_result`, as it comes from the database.
#[derive(Debug, sqlx::FromRow)]
struct WriteRow {
    outcome: String,
    field: Option<String>,
    message: Option<String>,
    id: Option<Uuid>,
    resource_id: Option<Uuid>,
    user_id: Option<Uuid>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    status: Option<Status>,
    note: Option<String>,
    version: Option<i32>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
}

impl WriteRow {
    fn booking(self) -> Result<Booking, sqlx::Error> {
        let missing = |c: &str| sqlx::Error::Decode(format!("write_result without {c}").into());
        Ok(Booking {
            id: self.id.ok_or_else(|| missing("id"))?,
            resource_id: self.resource_id.ok_or_else(|| missing("resource_id"))?,
            user_id: self.user_id.ok_or_else(|| missing("user_id"))?,
            start: self.starts_at.ok_or_else(|| missing("starts_at"))?,
            end: self.ends_at.ok_or_else(|| missing("ends_at"))?,
            status: self.status.ok_or_else(|| missing("status"))?,
            note: self.note,
            version: self.version.ok_or_else(|| missing("version"))?,
            created_at: self.created_at.ok_or_else(|| missing("created_at"))?,
            updated_at: self.updated_at.ok_or_else(|| missing("updated_at"))?,
            cancelled_at: self.cancelled_at,
        })
    }
}

impl TryFrom<WriteRow> for Outcome {
    type Error = sqlx::Error;

    fn try_from(r: WriteRow) -> Result<Outcome, sqlx::Error> {
        Ok(match r.outcome.as_str() {
            "created" => Outcome::Created(r.booking()?),
            "updated" => Outcome::Updated(r.booking()?),
            "unchanged" => Outcome::Unchanged(r.booking()?),
            "not_found" => Outcome::NotFound,
            "invalid" => Outcome::Invalid {
                field: r.field.unwrap_or_else(|| "body".into()),
                message: r.message.unwrap_or_else(|| "not acceptable".into()),
            },
            "slot_taken" => Outcome::SlotTaken,
            "user_overlap" => Outcome::UserOverlap,
            "precondition_failed" => Outcome::PreconditionFailed,
            "forbidden" => Outcome::Forbidden,
            "unauthenticated" => Outcome::Unauthenticated,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown write outcome `{other}`").into(),
                ))
            }
        })
    }
}

async fn outcome(
    q: sqlx::query::QueryAs<'_, Postgres, WriteRow, sqlx::postgres::PgArguments>,
    conn: &mut PgConnection,
) -> sqlx::Result<Outcome> {
    q.fetch_one(conn).await?.try_into()
}

/// Create as the caller. The database judges everything, against its own
/// clock: the resource's rules, seats, the caller's overlaps and the cap on
/// active bookings (see migration 0006).
pub async fn create(
    conn: &mut PgConnection,
    resource_id: ResourceId,
    period: TimeRange,
    note: Option<&str>,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_as("SELECT * FROM booking.create_booking($1, $2, $3, $4)")
        .bind(resource_id)
        .bind(period.start())
        .bind(period.end())
        .bind(note);
    outcome(q, conn).await
}

pub async fn reschedule(
    conn: &mut PgConnection,
    id: BookingId,
    period: TimeRange,
    note: Option<Option<&str>>,
    version: Option<i32>,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_as("SELECT * FROM booking.reschedule_booking($1, $2, $3, $4, $5, $6)")
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
    id: BookingId,
    version: Option<i32>,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_as("SELECT * FROM booking.cancel_booking($1, $2)")
        .bind(id)
        .bind(version);
    outcome(q, conn).await
}

pub async fn get(conn: &mut PgConnection, id: BookingId) -> sqlx::Result<Option<Booking>> {
    sqlx::query_as(&format!(
        "SELECT {BOOKING_COLUMNS} FROM booking.bookings b WHERE b.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Filters of a list request. `user_id` restricts to one user's bookings.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub user_id: Option<UserId>,
    pub resource_id: Option<ResourceId>,
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
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {BOOKING_COLUMNS} FROM booking.bookings b WHERE true"
    ));
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
    q.build_query_as().fetch_all(conn).await
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
    id: BookingId,
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
