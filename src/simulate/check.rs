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
    // on Citus the per-user check joins bookings (distributed by resource)
    // with itself on the user: a repartition join (a placeholder setting,
    // harmless on a single node)
    sqlx::raw_sql("SET citus.enable_repartition_joins = on")
        .execute(&mut *conn)
        .await?;
    let distributed: bool =
        sqlx::query_scalar("SELECT to_regclass('booking.user_busy') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if distributed {
        // no half-written booking: each booking of the run has its user's
        // busy row with the same user, period and status, and each busy row
        // its booking
        // (each side read on its own and compared here: a join of tables
        // distributed by different columns is not one Citus always plans)
        type Half = (Uuid, Uuid, String, String);
        let bookings: Vec<Half> = sqlx::query_as(
            "SELECT id, user_id, period::text, status FROM booking.bookings WHERE resource_id = ANY($1)",
        )
        .bind(resources)
        .fetch_all(&mut *conn)
        .await?;
        let busy: Vec<Half> = sqlx::query_as(
            "SELECT booking_id, user_id, period::text, status FROM booking.user_busy WHERE resource_id = ANY($1)",
        )
        .bind(resources)
        .fetch_all(&mut *conn)
        .await?;
        let busy: HashMap<Uuid, Half> = busy.into_iter().map(|h| (h.0, h)).collect();
        let mut seen = 0usize;
        for b in &bookings {
            match busy.get(&b.0) {
                Some(u) if u == b => seen += 1,
                other => out.push(Violation {
                    invariant: "booking_and_user_busy_together",
                    detail: format!("booking {b:?} has user_busy row {other:?}"),
                }),
            }
        }
        if seen != busy.len() {
            out.push(Violation {
                invariant: "booking_and_user_busy_together",
                detail: format!(
                    "{} user_busy rows have no booking",
                    busy.len().saturating_sub(seen)
                ),
            });
        }
    }
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
