//! Limits over HTTP: body size, write rates per user and per address, page
//! sizes, the active-bookings cap.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, at, header, TestApp};

#[tokio::test]
async fn a_body_over_64_kib_is_413_on_every_kind_of_write() {
    let app = TestApp::spawn().await;
    let user = app.user("+14155550105").await;
    let big = json!({ "note": "x".repeat(65 * 1024) });
    for (req, token) in [
        (app.client.post(app.url("/v1/bookings")), user.token.clone()),
        (app.client.patch(app.url("/v1/me")), user.token.clone()),
        (
            app.client.post(app.url("/v1/admin/resources")),
            app.service_token(),
        ),
        (
            app.client.post(app.url("/v1/admin/users")),
            app.service_token(),
        ),
    ] {
        let r = req
            .bearer_auth(token)
            .json(&big)
            .send()
            .await
            .expect("send");
        assert_problem(r, 413, "payload_too_large").await;
    }
    // just under the limit is read (and refused for its content, not its size)
    let almost = json!({ "display_name": "x".repeat(60 * 1024) });
    let r = app.patch(&user.token, "/v1/me", almost).await;
    assert_problem(r, 422, "validation_failed").await;
}

#[tokio::test]
async fn writes_past_the_per_user_rate_are_429_with_retry_after() {
    let app = TestApp::spawn_with(&[
        ("BOOKING_RATE_LIMITS", "on"),
        ("BOOKING_WRITE_RATE_PER_MINUTE", "3"),
        ("BOOKING_WRITE_RATE_PER_MINUTE_IP", "1000"),
    ])
    .await;
    // the service role is not limited: it creates users and resources freely
    let users = app.users(5).await;
    let (alice, bob) = (&users[0], &users[1]);
    let room = app.room().await;
    // any write counts, whatever its answer
    for h in 0..3 {
        let r = app
            .book(alice, &room, &at(2, 9 + h, 0), &at(2, 10 + h, 0))
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = app.book(alice, &room, &at(2, 15, 0), &at(2, 16, 0)).await;
    let retry: u64 = header(&r, "retry-after").parse().expect("seconds");
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    let id = header(&r, "x-request-id");
    let p = assert_problem(r, 429, "rate_limited").await;
    assert_eq!(p["request_id"], id.as_str());
    let r = app
        .patch(&alice.token, "/v1/me", json!({"display_name": "A"}))
        .await;
    assert_eq!(r.status(), 429);
    // reads are not limited; other users are not affected
    assert_eq!(app.get(&alice.token, "/v1/bookings").await.status(), 200);
    let r = app.book(bob, &room, &at(2, 15, 0), &at(2, 16, 0)).await;
    assert_eq!(r.status(), 201);
    // nothing was written by the refused request
    assert_eq!(app.confirmed_count(&room).await, 4);
}

#[tokio::test]
async fn writes_past_the_per_address_rate_are_429_even_without_a_valid_token() {
    let app = TestApp::spawn_with(&[
        ("BOOKING_RATE_LIMITS", "on"),
        ("BOOKING_WRITE_RATE_PER_MINUTE", "1000"),
        ("BOOKING_WRITE_RATE_PER_MINUTE_IP", "3"),
    ])
    .await;
    let user = app.user("+14155550106").await;
    for _ in 0..3 {
        let r = app
            .client
            .post(app.url("/v1/bookings"))
            .bearer_auth("not-a-token")
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
    }
    let r = app
        .client
        .post(app.url("/v1/bookings"))
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429, "rate_limited").await;
    // everyone at that address is held back now, signed in or not
    let r = app
        .patch(&user.token, "/v1/me", json!({"display_name": "U"}))
        .await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429, "rate_limited").await;
    // reads and the operations endpoints still answer
    assert_eq!(app.get(&user.token, "/v1/me").await.status(), 200);
    let r = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn with_rate_limits_off_a_burst_of_writes_goes_through() {
    let app = TestApp::spawn_with(&[
        ("BOOKING_RATE_LIMITS", "off"),
        ("BOOKING_WRITE_RATE_PER_MINUTE", "1"),
        ("BOOKING_WRITE_RATE_PER_MINUTE_IP", "1"),
    ])
    .await;
    let user = app.user("+14155550107").await;
    for i in 0..10 {
        let r = app
            .patch(
                &user.token,
                "/v1/me",
                json!({"display_name": format!("n{i}")}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn a_page_size_outside_1_to_100_is_422_naming_limit() {
    let app = TestApp::spawn().await;
    let user = app.user("+14155550108").await;
    for bad in ["101", "0", "-1", "1000000", "ten"] {
        for (path, token) in [
            ("/v1/bookings", user.token.clone()),
            ("/v1/admin/bookings", app.service_token()),
        ] {
            let r = app.get(&token, &format!("{path}?limit={bad}")).await;
            let p = assert_problem(r, 422, "validation_failed").await;
            assert_eq!(p["errors"][0]["field"], "limit", "{path}?limit={bad}: {p}");
        }
    }
    for ok in ["1", "100"] {
        let r = app
            .get(&user.token, &format!("/v1/bookings?limit={ok}"))
            .await;
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn the_active_bookings_cap_refuses_one_more_until_one_is_cancelled_or_over() {
    let app = TestApp::spawn_with(&[("BOOKING_MAX_ACTIVE_BOOKINGS", "3")]).await;
    let user = app.user("+14155550109").await;
    let room = app.room().await;
    let mut ids = Vec::new();
    for h in 0..3 {
        let r = app
            .book(&user, &room, &at(2, 9 + h, 0), &at(2, 10 + h, 0))
            .await;
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let r = app.book(&user, &room, &at(2, 14, 0), &at(2, 15, 0)).await;
    let p = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "active_bookings", "{p}");
    assert!(p["detail"].as_str().expect("detail").contains('3'), "{p}");
    assert_eq!(app.confirmed_count(&room).await, 3);

    // cancelled bookings do not count
    assert_eq!(
        app.delete(&user.token, &format!("/v1/bookings/{}", ids[0]))
            .await
            .status(),
        200
    );
    let r = app.book(&user, &room, &at(2, 14, 0), &at(2, 15, 0)).await;
    assert_eq!(r.status(), 201);
    let r = app.book(&user, &room, &at(2, 16, 0), &at(2, 17, 0)).await;
    assert_eq!(r.status(), 422);

    // bookings that have ended do not count
    let later = chrono::Utc::now() + chrono::Duration::days(3);
    app.set_clock(later).await;
    let r = app.book(&user, &room, &at(5, 9, 0), &at(5, 10, 0)).await;
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_active_bookings_cap_holds_when_one_user_creates_concurrently() {
    let app = TestApp::spawn_with(&[("BOOKING_MAX_ACTIVE_BOOKINGS", "3")]).await;
    let user = app.user("+14155550110").await;
    let rooms = [app.room().await, app.room().await, app.room().await];
    // 12 creates at once, none overlapping another: only the cap can refuse
    let reqs: Vec<_> = (0..12u32)
        .map(|i| {
            let room = &rooms[(i % 3) as usize];
            app.book(&user, room, &at(4, i, 0), &at(4, i, 30))
        })
        .collect();
    let statuses: Vec<u16> = join_all(reqs)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    let mut c = app.admin_conn().await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM booking.bookings WHERE user_id = $1 AND status = 'confirmed'",
    )
    .bind(user.id)
    .fetch_one(&mut c)
    .await
    .expect("count");
    assert_eq!(n, 3);
}
