//! Closures: periods a resource is closed (service role; through
//! `booking.add_closure` / `booking.remove_closure`, migration 0008).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{ResourceId, TimeRange};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Closure {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, resource_id, lower(period) AS start, upper(period) AS \"end\", reason";

/// Created, or the live bookings (and holds) inside it.
pub enum Added {
    Created(Closure),
    Conflicts(Vec<Uuid>),
}

pub async fn add(
    conn: &mut PgConnection,
    resource: ResourceId,
    period: TimeRange,
    reason: Option<&str>,
    cancel_conflicting: bool,
) -> sqlx::Result<Added> {
    let rows: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT outcome, id FROM booking.add_closure($1, $2, $3, $4, $5)")
            .bind(resource)
            .bind(period.start())
            .bind(period.end())
            .bind(reason)
            .bind(cancel_conflicting)
            .fetch_all(&mut *conn)
            .await?;
    match rows.iter().find(|(o, _)| o == "created") {
        Some((_, id)) => {
            let c = sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM booking.closures WHERE id = $1"
            ))
            .bind(id)
            .fetch_one(conn)
            .await?;
            Ok(Added::Created(c))
        }
        None => Ok(Added::Conflicts(
            rows.into_iter().map(|(_, id)| id).collect(),
        )),
    }
}

pub async fn list(conn: &mut PgConnection, resource: ResourceId) -> sqlx::Result<Vec<Closure>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM booking.closures WHERE resource_id = $1 ORDER BY lower(period), id LIMIT 1000"
    ))
    .bind(resource)
    .fetch_all(conn)
    .await
}

pub async fn remove(conn: &mut PgConnection, resource: ResourceId, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT booking.remove_closure($1, $2)")
        .bind(resource)
        .bind(id)
        .fetch_one(conn)
        .await
}
