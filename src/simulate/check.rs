//! The simulator's invariant checker: independent of the API, in SQL over a
//! direct connection, it compares what the database holds with what the
//! clients were told.

use serde::Serialize;
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// What a client was told about one booking, after all of the run's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub resource_id: Uuid,
    pub user_id: Uuid,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    /// Cancelled later by the same run.
    pub cancelled: bool,
    pub kind: Kind,
}

/// What the acknowledged row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A booking (created, or confirmed from a hold: then the same row).
    Booking,
    /// A hold not confirmed: live, or expired (abandoned).
    Hold,
    /// A hold given back with 204.
    Released,
}

/// One broken invariant.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// Check every invariant over the run's resources. Empty means all hold.
pub async fn verify(
    conn: &mut PgConnection,
    resources: &[Uuid],
    acks: &HashMap<Uuid, Ack>,
) -> sqlx::Result<Vec<Violation>> {
    let mut out = Vec::new();
    let overlaps: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT a.id, b.id FROM booking.bookings a JOIN booking.bookings b \
           ON a.resource_id = b.resource_id AND a.seat = b.seat AND a.id < b.id AND a.blocked && b.blocked \
         WHERE a.status IN ('held', 'pending', 'confirmed') AND b.status IN ('held', 'pending', 'confirmed') \
           AND a.resource_id = ANY($1)",
    )
    .bind(resources)
    .fetch_all(&mut *conn)
    .await?;
    for (a, b) in overlaps {
        out.push(Violation {
            invariant: "no_overlap_per_seat",
            detail: format!("bookings {a} and {b} overlap on one seat"),
        });
    }
    let user_overlaps: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT a.id, b.id FROM booking.bookings a JOIN booking.bookings b \
           ON a.user_id = b.user_id AND a.id < b.id AND a.period && b.period \
         WHERE a.status IN ('held', 'pending', 'confirmed') AND b.status IN ('held', 'pending', 'confirmed') \
           AND a.resource_id = ANY($1)",
    )
    .bind(resources)
    .fetch_all(&mut *conn)
    .await?;
    for (a, b) in user_overlaps {
        out.push(Violation {
            invariant: "no_user_overlap",
            detail: format!("bookings {a} and {b} of one user overlap"),
        });
    }
    type Row = (
        Uuid,
        Uuid,
        Uuid,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
        String,
        bool,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, resource_id, user_id, lower(period), upper(period), status, is_hold \
           FROM booking.bookings WHERE resource_id = ANY($1)",
    )
    .bind(resources)
    .fetch_all(&mut *conn)
    .await?;
    let by_id: HashMap<Uuid, &Row> = rows.iter().map(|r| (r.0, r)).collect();
    for (id, ack) in acks {
        match by_id.get(id) {
            None => out.push(Violation {
                invariant: "acknowledged_exists",
                detail: format!("201 for {id} but no such row"),
            }),
            Some(r) if ack.kind != Kind::Booking => {
                let fits = r.6
                    && match ack.kind {
                        Kind::Hold => r.5 == "held" || r.5 == "expired",
                        _ => r.5 == "cancelled",
                    };
                if !fits || r.3 != ack.start || r.4 != ack.end {
                    out.push(Violation {
                        invariant: "acknowledged_state",
                        detail: format!(
                            "{id}: told {:?} {}..{}, database has {} (hold: {}) {}..{}",
                            ack.kind, ack.start, ack.end, r.5, r.6, r.3, r.4
                        ),
                    });
                }
            }
            Some(r) => {
                // a confirmed hold became exactly this one booking
                let confirmed = r.5 == "confirmed" && !r.6;
                if ack.cancelled {
                    if confirmed {
                        out.push(Violation {
                            invariant: "acknowledged_state",
                            detail: format!("{id} was cancelled (200) but is confirmed"),
                        });
                    }
                } else if !confirmed
                    || r.1 != ack.resource_id
                    || r.2 != ack.user_id
                    || r.3 != ack.start
                    || r.4 != ack.end
                {
                    out.push(Violation {
                        invariant: "acknowledged_state",
                        detail: format!(
                            "{id}: told confirmed {}..{}, database has {} {}..{}",
                            ack.start, ack.end, r.5, r.3, r.4
                        ),
                    });
                }
            }
        }
    }
    for r in &rows {
        if !acks.contains_key(&r.0) {
            out.push(Violation {
                invariant: "no_unacknowledged_rows",
                detail: format!("row {} ({}) was never acknowledged by a 201", r.0, r.5),
            });
        }
    }
    Ok(out)
}
