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
    /// Awaiting approval: occupies its seat like a confirmed booking.
    Pending,
    Confirmed,
    Cancelled,
    Rejected,
    Expired,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "confirmed" => Some(Status::Confirmed),
            "cancelled" => Some(Status::Cancelled),
            "rejected" => Some(Status::Rejected),
            "expired" => Some(Status::Expired),
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
    /// The series this booking is an occurrence of; null if none.
    #[serde(default)]
    pub series_id: Option<Uuid>,
}

/// The columns of a booking as the API shows it, for `SELECT … FROM booking.bookings b`.
pub const BOOKING_COLUMNS: &str = "b.id, b.resource_id, b.user_id, lower(b.period) AS start, \
     upper(b.period) AS \"end\", b.status, b.note, b.version, b.created_at, b.updated_at, b.cancelled_at, b.series_id";

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
    /// The action does not apply to the booking's state.
    NotAllowed,
    /// The hold ran out before it was confirmed.
    HoldExpired,
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
    /// Text: `held` is a write's status too (a hold), never a booking's.
    status: Option<String>,
    note: Option<String>,
    version: Option<i32>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    series_id: Option<Uuid>,
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
            status: self
                .status
                .as_deref()
                .and_then(Status::parse)
                .ok_or_else(|| missing("a booking status"))?,
            note: self.note,
            version: self.version.ok_or_else(|| missing("version"))?,
            created_at: self.created_at.ok_or_else(|| missing("created_at"))?,
            updated_at: self.updated_at.ok_or_else(|| missing("updated_at"))?,
            cancelled_at: self.cancelled_at,
            series_id: self.series_id,
        })
    }

    /// The row as a hold (`create_hold` answers with one).
    fn hold(self) -> Result<Hold, sqlx::Error> {
        let missing = |c: &str| sqlx::Error::Decode(format!("write_result without {c}").into());
        Ok(Hold {
            id: self.id.ok_or_else(|| missing("id"))?,
            resource_id: self.resource_id.ok_or_else(|| missing("resource_id"))?,
            user_id: self.user_id.ok_or_else(|| missing("user_id"))?,
            start: self.starts_at.ok_or_else(|| missing("starts_at"))?,
            end: self.ends_at.ok_or_else(|| missing("ends_at"))?,
            expires_at: self.expires_at.ok_or_else(|| missing("expires_at"))?,
        })
    }
}

/// A hold: a seat kept for its user until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Hold {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub user_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
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
            "not_allowed" => Outcome::NotAllowed,
            "hold_expired" => Outcome::HoldExpired,
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

/// The one-statement create: $1-$4 as `create_booking`, $5 the role, $6 the
/// claims (JSON), $7 the caller's id.
pub const CREATE_ONE_TRIP: &str = "SELECT (x.w).* FROM ( \
       SELECT booking.create_booking($1, $2, $3, $4) AS w \
         FROM (SELECT set_config('role', $5, true), set_config('request.jwt.claims', $6, true), \
                      set_config('request.jwt.claim.sub', $7, true), \
                      set_config('request.jwt.claim.role', $5, true)) AS scope \
       OFFSET 0) AS x";

/// [`create`] in one round trip: the caller's role and claims and the
/// create in one statement, which is its own (implicit) transaction — the
/// role and claims are set `local` to it, exactly as [`crate::db::Db::begin`]
/// sets them, and are gone when it ends. The subquery that sets them is
/// evaluated before the outer call (OFFSET 0 keeps it a separate step, and
/// keeps `(x.w).*` from calling the function once per column).
///
/// Every row is read through to the end of the statement (ReadyForQuery):
/// the commit happens after the row was sent, so an answer is only an answer
/// once the whole exchange completed. A failure the server reported (an
/// ErrorResponse: nothing committed) is an ordinary database error; a
/// connection that broke mid-way does not say whether it committed: a 503
/// that must not be retried here.
pub async fn create_one_trip(
    db: &crate::db::Db,
    who: &crate::identity::Identity,
    resource_id: ResourceId,
    period: TimeRange,
    note: Option<&str>,
) -> Result<Outcome, crate::error::ApiError> {
    let rows: Result<Vec<WriteRow>, sqlx::Error> = sqlx::query_as(CREATE_ONE_TRIP)
        .bind(resource_id)
        .bind(period.start())
        .bind(period.end())
        .bind(note)
        .bind(who.db_role())
        .bind(who.claims_json())
        .bind(who.user_id.to_string())
        .fetch_all(db.pool())
        .await;
    match rows {
        Ok(mut rows) if rows.len() == 1 => Ok(rows.remove(0).try_into()?),
        Ok(rows) => Err(sqlx::Error::Protocol(format!(
            "create_booking returned {} rows",
            rows.len()
        ))
        .into()),
        Err(sqlx::Error::Database(d)) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            if code.starts_with("08") || code.starts_with("57") {
                tracing::warn!(sqlstate = %code, "the connection failed during a one-statement create: outcome unknown");
                metrics::counter!("booking_db_commit_unknown_total").increment(1);
                return Err(crate::error::ApiError::Unavailable { retry_after: 1 });
            }
            Err(sqlx::Error::Database(d).into())
        }
        // not sent at all: safe to map (and retry) as usual
        Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "the connection failed during a one-statement create: outcome unknown");
            metrics::counter!("booking_db_commit_unknown_total").increment(1);
            Err(crate::error::ApiError::Unavailable { retry_after: 1 })
        }
    }
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
        "SELECT {BOOKING_COLUMNS} FROM booking.bookings b WHERE b.id = $1 AND NOT b.is_hold"
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
        "SELECT {BOOKING_COLUMNS} FROM booking.bookings b WHERE NOT b.is_hold"
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

/// A hold's outcome: the hold, or why not.
pub enum HoldOutcome {
    Held(Hold),
    Refused(Outcome),
}

/// Hold a seat for `seconds` (30-3600), under every rule of a create.
pub async fn hold(
    conn: &mut PgConnection,
    resource_id: ResourceId,
    period: TimeRange,
    seconds: i32,
) -> sqlx::Result<HoldOutcome> {
    let row: WriteRow = sqlx::query_as("SELECT * FROM booking.create_hold($1, $2, $3, $4)")
        .bind(resource_id)
        .bind(period.start())
        .bind(period.end())
        .bind(seconds)
        .fetch_one(conn)
        .await?;
    if row.outcome == "created" {
        return Ok(HoldOutcome::Held(row.hold()?));
    }
    Ok(HoldOutcome::Refused(row.try_into()?))
}

/// Turn a hold into its booking.
pub async fn confirm_hold(
    conn: &mut PgConnection,
    id: Uuid,
    note: Option<&str>,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_as("SELECT * FROM booking.confirm_hold($1, $2)")
        .bind(id)
        .bind(note);
    outcome(q, conn).await
}

pub async fn release_hold(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Outcome> {
    let q = sqlx::query_as("SELECT * FROM booking.release_hold($1)").bind(id);
    outcome(q, conn).await
}

/// A live hold of the caller's (RLS: only the holder and the service role see holds).
pub async fn get_hold(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Hold>> {
    sqlx::query_as(
        "SELECT b.id, b.resource_id, b.user_id, lower(b.period) AS start, upper(b.period) AS \"end\", b.expires_at \
           FROM booking.bookings b WHERE b.id = $1 AND b.is_hold AND b.status = 'held'",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Approve (true) or reject a pending booking.
pub async fn decide(
    conn: &mut PgConnection,
    id: BookingId,
    approve: bool,
) -> sqlx::Result<Outcome> {
    let q = sqlx::query_as("SELECT * FROM booking.decide_booking($1, $2)")
        .bind(id)
        .bind(approve);
    outcome(q, conn).await
}

pub use crate::domain::rrule::Rule;

/// A series' outcome: its bookings; one refusal per refused occurrence
/// (`occurrences[i]`: slot_taken, user_overlap or invalid, with the message);
/// or one refusal of the whole request.
pub enum SeriesOutcome {
    Created(Vec<Booking>),
    Occurrences(Vec<(String, String, String)>),
    Refused(Outcome),
}

pub async fn create_series(
    conn: &mut PgConnection,
    resource_id: ResourceId,
    period: TimeRange,
    rule: &Rule,
    note: Option<&str>,
) -> sqlx::Result<SeriesOutcome> {
    let rows: Vec<WriteRow> = sqlx::query_as(
        "SELECT * FROM booking.create_series($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(resource_id)
    .bind(period.start())
    .bind(period.end())
    .bind(&rule.freq)
    .bind(rule.interval)
    .bind(&rule.byday)
    .bind(rule.count)
    .bind(rule.until)
    .bind(&rule.text)
    .bind(note)
    .fetch_all(conn)
    .await?;
    if !rows.is_empty() && rows.iter().all(|r| r.outcome == "created") {
        return Ok(SeriesOutcome::Created(
            rows.into_iter()
                .map(WriteRow::booking)
                .collect::<Result<_, _>>()?,
        ));
    }
    let refused: Vec<WriteRow> = rows
        .into_iter()
        .filter(|r| r.outcome != "created")
        .collect();
    if refused.iter().all(|r| {
        r.field
            .as_deref()
            .is_some_and(|f| f.starts_with("occurrences["))
    }) && !refused.is_empty()
    {
        return Ok(SeriesOutcome::Occurrences(
            refused
                .into_iter()
                .map(|r| {
                    (
                        r.outcome,
                        r.field.unwrap_or_default(),
                        r.message.unwrap_or_default(),
                    )
                })
                .collect(),
        ));
    }
    match refused.into_iter().next() {
        Some(r) => Ok(SeriesOutcome::Refused(r.try_into()?)),
        None => Err(sqlx::Error::Decode("create_series returned nothing".into())),
    }
}

/// A series as stored (RLS: its user; the service role).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SeriesRow {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub user_id: Uuid,
    pub rrule: String,
}

pub async fn get_series(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<SeriesRow>> {
    sqlx::query_as("SELECT id, resource_id, user_id, rrule FROM booking.series WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn series_bookings(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<Booking>> {
    sqlx::query_as(&format!(
        "SELECT {BOOKING_COLUMNS} FROM booking.bookings b WHERE b.series_id = $1 AND NOT b.is_hold \
         ORDER BY lower(b.period), b.id"
    ))
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Cancel a series' occurrences from `from` on; None when the caller may not.
pub async fn cancel_series(
    conn: &mut PgConnection,
    id: Uuid,
    from: Option<DateTime<Utc>>,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar("SELECT booking.cancel_series($1, $2)")
        .bind(id)
        .bind(from)
        .fetch_one(conn)
        .await
}

/// Retire expired holds and pending bookings (the sweeper).
pub async fn expire_due(conn: &mut PgConnection, limit: i32) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT booking.expire_due($1)")
        .bind(limit)
        .fetch_one(conn)
        .await
}
