//! Safe retries: Idempotency-Key replays, optimistic concurrency, transient
//! failures, and the retrying client.

use crate::helpers::rules::{booked, path_of};
use crate::helpers::{at, TestApp, TestUser};
use booking::client::Client;
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::Connection;
use std::time::Duration;

fn post(
    app: &TestApp,
    u: &TestUser,
    key: &str,
    body: Value,
) -> impl std::future::Future<Output = reqwest::Response> {
    let req = app
        .client
        .post(app.url("/v1/bookings"))
        .bearer_auth(&u.token)
        .header("idempotency-key", key)
        .json(&body);
    async move { req.send().await.expect("post") }
}

#[tokio::test]
async fn a_replayed_request_returns_the_identical_response_and_books_once() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550600").await;
    let room = app.room().await;
    let body =
        json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0), "note": "retry me"});
    let first = post(&app, &u, "key-1", body.clone()).await;
    assert_eq!(first.status(), 201);
    let (etag, loc) = (
        first.headers()["etag"].clone(),
        first.headers()["location"].clone(),
    );
    let first_body = first.bytes().await.expect("body");
    // same body, keys in another order: still the same request
    let reordered =
        json!({"note": "retry me", "end": at(3, 10, 0), "start": at(3, 9, 0), "resource_id": room});
    let second = post(&app, &u, "key-1", reordered).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["etag"], etag);
    assert_eq!(second.headers()["location"], loc);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(
        second.bytes().await.expect("body"),
        first_body,
        "byte-identical"
    );
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422_idempotency_key_reused() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550601").await;
    let room = app.room().await;
    assert_eq!(
        post(
            &app,
            &u,
            "k",
            json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)})
        )
        .await
        .status(),
        201
    );
    let r = post(
        &app,
        &u,
        "k",
        json!({"resource_id": room, "start": at(3, 11, 0), "end": at(3, 12, 0)}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "idempotency_key_reused"
    );
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_with_one_key_make_one_booking() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550602").await;
    let room = app.room().await;
    let body = json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)});
    let answers = join_all((0..20).map(|_| post(&app, &u, "same-key", body.clone()))).await;
    let mut created_bodies = Vec::new();
    for r in answers {
        match r.status().as_u16() {
            201 => created_bodies.push(r.bytes().await.expect("body")),
            409 => assert_eq!(
                r.json::<Value>().await.expect("json")["code"],
                "idempotency_in_progress"
            ),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!created_bodies.is_empty());
    assert!(
        created_bodies.windows(2).all(|w| w[0] == w[1]),
        "every 201 is the same response"
    );
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test]
async fn another_users_same_key_is_independent() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550603").await,
        app.user("+14155550604").await,
    );
    let room = app.room().await;
    assert_eq!(
        post(
            &app,
            &a,
            "shared",
            json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)})
        )
        .await
        .status(),
        201
    );
    let r = post(
        &app,
        &b,
        "shared",
        json!({"resource_id": room, "start": at(3, 11, 0), "end": at(3, 12, 0)}),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    // and B cannot see A's key record
    let mut conn = app.login_conn().await;
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(
        "SELECT set_config('role','authenticated',true), set_config('request.jwt.claims',$1,true)",
    )
    .bind(json!({"sub": b.id}).to_string())
    .execute(&mut *tx)
    .await
    .expect("scope");
    let keys: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT user_id FROM booking.idempotency_keys")
        .fetch_all(&mut *tx)
        .await
        .expect("keys");
    assert_eq!(keys, vec![b.id]);
}

#[tokio::test]
async fn an_over_long_or_unprintable_key_is_400() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550605").await;
    let room = app.room().await;
    let body = json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)});
    let r = post(&app, &u, &"k".repeat(256), body.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "bad_request"
    );
    let r = app
        .client
        .post(app.url("/v1/bookings"))
        .bearer_auth(&u.token)
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("hv"),
        )
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    assert_eq!(post(&app, &u, &"k".repeat(255), body).await.status(), 201);
}

#[tokio::test]
async fn a_conflict_is_stored_and_replayed_but_a_validation_error_is_not() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550606").await,
        app.user("+14155550607").await,
    );
    let room = app.room().await;
    let theirs: Value = app
        .book(&a, &room, &at(3, 9, 0), &at(3, 10, 0))
        .await
        .json()
        .await
        .expect("json");
    let body = json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)});
    let r = post(&app, &b, "conflict-key", body.clone()).await;
    assert_eq!(r.status(), 409);
    // the slot frees up, but the retry of the same request gets the same 409
    let path = format!("/v1/bookings/{}", theirs["id"].as_str().expect("id"));
    assert_eq!(app.delete(&a.token, &path).await.status(), 200);
    let r = post(&app, &b, "conflict-key", body).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    // a validation failure is not stored: fixing the request with the same key works
    let bad = json!({"resource_id": room, "start": at(3, 10, 0), "end": at(3, 9, 0)});
    assert_eq!(post(&app, &b, "fix-me", bad).await.status(), 422);
    let good = json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)});
    assert_eq!(post(&app, &b, "fix-me", good).await.status(), 201);
}

#[tokio::test]
async fn expired_keys_are_swept() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550608").await;
    let room = app.room().await;
    assert_eq!(
        post(
            &app,
            &u,
            "old",
            json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)})
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        booking::http::idempotency::sweep_expired(&app.state)
            .await
            .expect("sweep"),
        0,
        "kept for 24 hours"
    );
    app.state
        .clock
        .set(chrono::Utc::now() + chrono::Duration::hours(25));
    assert_eq!(
        booking::http::idempotency::sweep_expired(&app.state)
            .await
            .expect("sweep"),
        1
    );
    let mut c = app.admin_conn().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.idempotency_keys")
        .fetch_one(&mut c)
        .await
        .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_booking_and_its_key_commit_or_roll_back_together() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550609").await;
    let room = app.room().await;
    let mut admin = app.admin_conn().await;
    // inject a failure between the booking insert and the key record
    sqlx::raw_sql(
        "CREATE FUNCTION booking.fail_key() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
         CREATE TRIGGER fail_key BEFORE INSERT ON booking.idempotency_keys FOR EACH ROW EXECUTE FUNCTION booking.fail_key();",
    )
    .execute(&mut admin)
    .await
    .expect("inject");
    let body = json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0)});
    let r = post(&app, &u, "doomed", body.clone()).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        app.confirmed_count(&room).await,
        0,
        "no booking without its key"
    );
    sqlx::raw_sql("DROP TRIGGER fail_key ON booking.idempotency_keys")
        .execute(&mut admin)
        .await
        .expect("heal");
    assert_eq!(post(&app, &u, "doomed", body).await.status(), 201);
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test]
async fn a_lock_held_elsewhere_ends_in_503_with_retry_after_not_a_hang_or_500() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550610").await;
    let room = app.room().await;
    let b: Value = app
        .book(&u, &room, &at(3, 9, 0), &at(3, 10, 0))
        .await
        .json()
        .await
        .expect("json");
    let id = b["id"].as_str().expect("id").to_string();
    let mut holder = app.admin_conn().await;
    let mut tx = holder.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM booking.bookings WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *tx)
        .await
        .expect("lock");
    let started = std::time::Instant::now();
    let r = app
        .patch(
            &u.token,
            &format!("/v1/bookings/{id}"),
            json!({"start": at(3, 11, 0), "end": at(3, 12, 0)}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "unavailable"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "bounded");
    tx.rollback().await.expect("release");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("booking_db_retries_total{sqlstate=\"55P03\"}"),
        "retries are counted"
    );
    let now: Value = app
        .get(&u.token, &format!("/v1/bookings/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(now["start"], at(3, 9, 0));
}

#[tokio::test]
async fn the_client_retries_in_progress_answers_and_books_once() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550611").await;
    let room: uuid::Uuid = app.room().await.parse().expect("uuid");
    let client = Client::new(&app.addr, &u.token);
    let b = client
        .create_booking(room, &at(3, 9, 0), &at(3, 10, 0), Some("via client"))
        .await
        .expect("create");
    assert_eq!(b.note.as_deref(), Some("via client"));
    let moved = client
        .reschedule(b.id, &at(3, 10, 0), &at(3, 11, 0), Some(b.version))
        .await
        .expect("reschedule");
    assert_eq!(moved.version, 2);
    let stale = client
        .reschedule(b.id, &at(3, 12, 0), &at(3, 13, 0), Some(1))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Some("precondition_failed"));
    let other = app.user("+14155550612").await;
    let taken = Client::new(&app.addr, &other.token)
        .create_booking(room, &at(3, 10, 0), &at(3, 11, 0), None)
        .await
        .expect_err("taken");
    assert_eq!(taken.code(), Some("slot_taken"));
    assert_eq!(
        client.cancel(b.id).await.expect("cancel").status,
        booking::db::bookings::Status::Cancelled
    );
}

/// Keys belong to users: the service role's writes with a key are carried
/// out as if it had none (not a 500 for want of a user to file the key under).
#[tokio::test]
async fn the_service_role_may_send_a_key_on_admin_writes() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550990").await;
    let room = app.room().await;
    let b = booked(&app, &u, &room, &at(3, 9, 0), &at(3, 10, 0)).await;
    let path = path_of(&b);
    let moved = app
        .client
        .patch(app.url(&path))
        .bearer_auth(app.service_token())
        .header("idempotency-key", "admin-move-1")
        .json(&json!({"start": at(3, 11, 0), "end": at(3, 12, 0)}))
        .send()
        .await
        .expect("patch");
    assert_eq!(moved.status(), 200);
    for _ in 0..2 {
        let r = app
            .client
            .delete(app.url(&path))
            .bearer_auth(app.service_token())
            .header("idempotency-key", "admin-cancel-1")
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["status"], "cancelled");
    }
}
