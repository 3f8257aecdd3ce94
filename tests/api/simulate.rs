//! The simulator's invariant checker is itself tested: it passes on an honest
//! database and fails on a planted overlap and a planted unacknowledged row.

use crate::helpers::{at, TestApp};
use booking::simulate::check::{verify, Ack};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("ts")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn the_invariant_checker_passes_honest_data_and_catches_planted_faults() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550700").await,
        app.user("+14155550701").await,
    );
    let room = app.room().await;
    let rid = Uuid::parse_str(&room).expect("uuid");
    let mut acks = HashMap::new();
    for (u, h) in [(&a, 9), (&b, 10)] {
        let v: Value = app
            .book(u, &room, &at(3, h, 0), &at(3, h + 1, 0))
            .await
            .json()
            .await
            .expect("json");
        acks.insert(
            Uuid::parse_str(v["id"].as_str().expect("id")).expect("uuid"),
            Ack {
                resource_id: rid,
                user_id: u.id,
                start: ts(&at(3, h, 0)),
                end: ts(&at(3, h + 1, 0)),
                cancelled: false,
                kind: booking::simulate::check::Kind::Booking,
            },
        );
    }
    let mut admin = app.admin_conn().await;
    assert_eq!(
        verify(&mut admin, &[rid], &acks).await.expect("verify"),
        vec![]
    );

    // a 201 the database does not match is caught
    let mut wrong = acks.clone();
    if let Some(first) = wrong.values_mut().next() {
        first.cancelled = true;
    }
    let v = verify(&mut admin, &[rid], &wrong).await.expect("verify");
    assert!(
        v.iter().any(|x| x.invariant == "acknowledged_state"),
        "{v:?}"
    );

    // plant an overlap (only possible with the constraint gone) and a row no 201 acknowledged
    sqlx::raw_sql("ALTER TABLE booking.bookings DROP CONSTRAINT bookings_no_overlap")
        .execute(&mut admin)
        .await
        .expect("drop constraint");
    sqlx::query(
        "INSERT INTO booking.bookings (resource_id, user_id, period, blocked) \
         VALUES ($1, $2, tstzrange($3, $4), tstzrange($3, $4))",
    )
    .bind(rid)
    .bind(b.id)
    .bind(ts(&at(3, 9, 30)))
    .bind(ts(&at(3, 9, 45)))
    .execute(&mut admin)
    .await
    .expect("plant");
    let v = verify(&mut admin, &[rid], &acks).await.expect("verify");
    let kinds: Vec<&str> = v.iter().map(|x| x.invariant).collect();
    assert!(kinds.contains(&"no_overlap_per_seat"), "{kinds:?}");
    assert!(kinds.contains(&"no_unacknowledged_rows"), "{kinds:?}");
}
