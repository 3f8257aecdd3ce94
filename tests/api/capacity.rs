//! Buffers and capacity under concurrency, and lowering capacity.

use crate::helpers::rules::*;
use crate::helpers::TestApp;
use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffers_keep_bookings_apart_under_concurrent_creates() {
    use rand::{Rng, SeedableRng};
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let users = app.users(40).await;
    let room = resource_id(
        &app,
        json!({"slot_minutes": 5, "min_duration_minutes": 30, "buffer_minutes": 15}),
    )
    .await;
    // the edges, one at a time
    booked(
        &app,
        &users[0],
        &room,
        "2027-06-03T07:00:00Z",
        "2027-06-03T08:00:00Z",
    )
    .await;
    for (s, e) in [
        ("2027-06-03T08:00:00Z", "2027-06-03T08:30:00Z"),
        ("2027-06-03T08:10:00Z", "2027-06-03T08:40:00Z"),
        ("2027-06-03T06:20:00Z", "2027-06-03T06:50:00Z"),
    ] {
        let (status, p) = outcome(app.book(&users[1], &room, s, e).await).await;
        assert_eq!(status, 409, "{s}: {p}");
        assert_eq!(p["code"], "slot_taken");
    }
    booked(
        &app,
        &users[1],
        &room,
        "2027-06-03T08:15:00Z",
        "2027-06-03T08:45:00Z",
    )
    .await;
    booked(
        &app,
        &users[2],
        &room,
        "2027-06-03T06:15:00Z",
        "2027-06-03T06:45:00Z",
    )
    .await;
    // then a storm of adjacent and near periods, all at once
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let base = t("2027-06-03T09:00:00Z");
    let mut futs = Vec::new();
    for (i, u) in users.iter().enumerate() {
        // a run of exactly adjacent periods, and random near ones
        let (s, len) = if i < 16 {
            (base + Duration::minutes(60 * i as i64), 60)
        } else {
            (
                base + Duration::minutes(5 * rng.gen_range(0..96)),
                [30, 45, 60][rng.gen_range(0..3)],
            )
        };
        futs.push(app.book(u, &room, &z(s), &z(s + Duration::minutes(len))));
    }
    let codes: Vec<u16> = join_all(futs)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        codes.iter().all(|c| *c == 201 || *c == 409),
        "only 201 or 409: {codes:?}"
    );
    assert!(
        codes.iter().filter(|c| **c == 201).count() >= 4,
        "{codes:?}"
    );
    let mut admin = app.admin_conn().await;
    let periods: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT lower(period), upper(period) FROM booking.bookings \
         WHERE resource_id = $1::uuid AND status = 'confirmed' ORDER BY lower(period)",
    )
    .bind(&room)
    .fetch_all(&mut admin)
    .await
    .expect("periods");
    assert_eq!(
        periods.len(),
        3 + codes.iter().filter(|c| **c == 201).count()
    );
    for w in periods.windows(2) {
        assert!(
            w[1].0 >= w[0].1 + Duration::minutes(15),
            "{:?} and {:?} are closer than the 15-minute buffer",
            w[0],
            w[1]
        );
    }
    admin.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_three_gives_exactly_three_seats_to_thirty_concurrent_users() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let users = app.users(31).await;
    let room = resource_id(&app, json!({"capacity": 3, "slot_minutes": 60})).await;
    let (s, e) = ("2027-06-03T09:00:00Z", "2027-06-03T10:00:00Z");
    let window = (t("2027-06-03T08:00:00Z"), t("2027-06-03T11:00:00Z"));
    let watcher = &users[30];
    let before = offered(&app, &watcher.token, &room, window.0, window.1, Some(60)).await;
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|o| o.remaining == 3), "{before:?}");

    let futs: Vec<_> = users[..30]
        .iter()
        .map(|u| app.book(u, &room, s, e))
        .collect();
    let resps = join_all(futs).await;
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for (i, r) in resps.into_iter().enumerate() {
        let (status, body) = outcome(r).await;
        match status {
            201 => winners.push((i, body)),
            409 => {
                assert_eq!(body["code"], "slot_taken");
                losers.push(i);
            }
            other => panic!("user {i}: {other} {body}"),
        }
    }
    assert_eq!((winners.len(), losers.len()), (3, 27));
    assert_eq!(app.confirmed_count(&room).await, 3);
    // the full hour is no longer offered; its neighbours still have 3 seats
    let full = offered(&app, &watcher.token, &room, window.0, window.1, Some(60)).await;
    assert_eq!(
        full.iter()
            .map(|o| (z(o.start), o.remaining))
            .collect::<Vec<_>>(),
        [
            ("2027-06-03T08:00:00Z".to_string(), 3),
            ("2027-06-03T10:00:00Z".to_string(), 3)
        ]
    );
    // two hours from 08:00 or 09:00 overlap the full hour
    assert_eq!(
        offered(&app, &watcher.token, &room, window.0, window.1, Some(120))
            .await
            .iter()
            .map(|o| z(o.start))
            .collect::<Vec<_>>(),
        ["2027-06-03T10:00:00Z"]
    );

    // cancelling one frees exactly one seat
    let (i, b) = &winners[0];
    assert_eq!(
        app.delete(&users[*i].token, &path_of(b)).await.status(),
        200
    );
    let freed = offered(&app, &watcher.token, &room, window.0, window.1, Some(60)).await;
    assert_eq!(
        freed.iter().find(|o| z(o.start) == s).map(|o| o.remaining),
        Some(1)
    );
    let again = join_all(
        losers[..5]
            .iter()
            .map(|i| app.book(&users[*i], &room, s, e)),
    )
    .await;
    let codes: Vec<u16> = again.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 4, "{codes:?}");
    assert_eq!(app.confirmed_count(&room).await, 3);

    // remaining counts the seats of an overlapping booking
    booked(
        &app,
        &users[losers[10]],
        &room,
        "2027-06-03T10:00:00Z",
        "2027-06-03T11:00:00Z",
    )
    .await;
    let later = offered(&app, &watcher.token, &room, window.0, window.1, Some(60)).await;
    assert_eq!(
        later
            .iter()
            .map(|o| (z(o.start), o.remaining))
            .collect::<Vec<_>>(),
        [
            ("2027-06-03T08:00:00Z".to_string(), 3),
            ("2027-06-03T10:00:00Z".to_string(), 2)
        ]
    );
}

#[tokio::test]
async fn capacity_cannot_be_lowered_below_the_seats_booked() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let users = app.users(3).await;
    let room = resource_id(&app, json!({"capacity": 3, "slot_minutes": 60})).await;
    for u in &users {
        booked(
            &app,
            u,
            &room,
            "2027-06-03T09:00:00Z",
            "2027-06-03T10:00:00Z",
        )
        .await;
    }
    let admin = app.service_token();
    let rpath = format!("/v1/admin/resources/{room}");
    for lower in [2, 1] {
        let (status, body) =
            outcome(app.patch(&admin, &rpath, json!({"capacity": lower})).await).await;
        assert_eq!(status, 409, "{body}");
    }
    let r: Value = app
        .get(&users[0].token, &format!("/v1/resources/{room}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["capacity"], 3, "unchanged");
    // raising is always fine
    let (status, body) = outcome(app.patch(&admin, &rpath, json!({"capacity": 4})).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["capacity"], 4);
    // down to the seats in use is fine too
    let (status, body) = outcome(app.patch(&admin, &rpath, json!({"capacity": 3})).await).await;
    assert_eq!(status, 200, "{body}");
    // once those bookings have ended, the seats are free
    pin(&app, "2027-06-03T10:07:30Z").await;
    let (status, body) = outcome(app.patch(&admin, &rpath, json!({"capacity": 1})).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["capacity"], 1);
    let (status, _) = outcome(
        app.book(
            &users[0],
            &room,
            "2027-06-04T09:00:00Z",
            "2027-06-04T10:00:00Z",
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let (status, p) = outcome(
        app.book(
            &users[1],
            &room,
            "2027-06-04T09:00:00Z",
            "2027-06-04T10:00:00Z",
        )
        .await,
    )
    .await;
    assert_eq!((status, p["code"].clone()), (409, json!("slot_taken")));
}

#[tokio::test]
async fn a_seat_removed_by_lowering_capacity_does_not_hide_a_free_one() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let users = app.users(3).await;
    let room = resource_id(&app, json!({"capacity": 2, "buffer_minutes": 30})).await;
    let (s, e) = ("2027-06-03T09:00:00Z", "2027-06-03T10:00:00Z");
    let on_seat_1 = booked(&app, &users[0], &room, s, e).await;
    booked(&app, &users[1], &room, s, e).await; // seat 2
    assert_eq!(
        app.delete(&users[0].token, &path_of(&on_seat_1))
            .await
            .status(),
        200
    );
    // both have ended; seat 2's booking is still in its buffer until 10:30
    pin(&app, "2027-06-03T10:07:30Z").await;
    let (status, body) = outcome(
        app.patch(
            &app.service_token(),
            &format!("/v1/admin/resources/{room}"),
            json!({"capacity": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // seat 1 is free at 10:15, so it is offered, and accepted
    let slots = offered(
        &app,
        &users[2].token,
        &room,
        t("2027-06-03T10:15:00Z"),
        t("2027-06-03T10:30:00Z"),
        Some(15),
    )
    .await;
    assert_eq!(
        slots
            .iter()
            .map(|o| (z(o.start), o.remaining))
            .collect::<Vec<_>>(),
        [("2027-06-03T10:15:00Z".to_string(), 1)]
    );
    booked(
        &app,
        &users[2],
        &room,
        "2027-06-03T10:15:00Z",
        "2027-06-03T10:30:00Z",
    )
    .await;
}
