//! Booking lifecycle over HTTP: create, conflicts, adjacency, reschedule,
//! cancel, history, visibility, validation.

use crate::helpers::rules::{booked, path_of};
use crate::helpers::{at, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn a_user_books_a_free_slot_and_sees_it() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550100").await;
    let room = app.room().await;
    let resp = app.book(&u, &room, &at(3, 9, 0), &at(3, 10, 0)).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let loc = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let b: Value = resp.json().await.expect("json");
    assert_eq!(
        loc,
        format!("/v1/bookings/{}", b["id"].as_str().expect("id"))
    );
    assert_eq!(b["status"], "confirmed");
    assert_eq!(b["version"], 1);
    assert_eq!(b["start"], at(3, 9, 0));
    assert_eq!(b["user_id"], u.id.to_string());

    let got = app.get(&u.token, &loc).await;
    assert_eq!(got.status(), 200);
    let list: Value = app
        .get(&u.token, "/v1/bookings")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    assert!(list["next_cursor"].is_null());
}

#[tokio::test]
async fn an_overlapping_booking_by_another_user_is_409_slot_taken() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550101").await,
        app.user("+14155550102").await,
    );
    let room = app.room().await;
    assert_eq!(
        app.book(&a, &room, &at(3, 9, 0), &at(3, 10, 0))
            .await
            .status(),
        201
    );
    let resp = app.book(&b, &room, &at(3, 9, 30), &at(3, 10, 30)).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.expect("json");
    assert_eq!(p["code"], "slot_taken");
    // a conflict never reveals the other booking
    let text = p.to_string();
    assert!(!text.contains(&a.id.to_string()));
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test]
async fn adjacent_periods_both_succeed() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550103").await,
        app.user("+14155550104").await,
    );
    let room = app.room().await;
    assert_eq!(
        app.book(&a, &room, &at(3, 9, 0), &at(3, 10, 0))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.book(&b, &room, &at(3, 10, 0), &at(3, 11, 0))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.book(&b, &room, &at(3, 8, 0), &at(3, 9, 0))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn one_user_cannot_hold_two_overlapping_bookings_even_on_different_resources() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550105").await;
    let (r1, r2) = (app.room().await, app.room().await);
    assert_eq!(
        app.book(&u, &r1, &at(3, 9, 0), &at(3, 10, 0))
            .await
            .status(),
        201
    );
    let resp = app.book(&u, &r2, &at(3, 9, 45), &at(3, 10, 15)).await;
    assert_eq!(resp.status(), 409);
    let p: Value = resp.json().await.expect("json");
    assert_eq!(p["code"], "user_overlap");
}

#[tokio::test]
async fn cancel_then_rebook_the_same_slot_succeeds() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550106").await,
        app.user("+14155550107").await,
    );
    let room = app.room().await;
    let created: Value = app
        .book(&a, &room, &at(3, 9, 0), &at(3, 10, 0))
        .await
        .json()
        .await
        .expect("json");
    let path = format!("/v1/bookings/{}", created["id"].as_str().expect("id"));
    let resp = app.delete(&a.token, &path).await;
    assert_eq!(resp.status(), 200);
    let c: Value = resp.json().await.expect("json");
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["version"], 2);
    assert!(c["cancelled_at"].is_string());
    // repeating the cancel changes nothing
    let again: Value = app
        .delete(&a.token, &path)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["version"], 2);
    assert_eq!(
        app.book(&b, &room, &at(3, 9, 0), &at(3, 10, 0))
            .await
            .status(),
        201
    );
    let hist: Value = app
        .get(&a.token, &format!("{path}/history"))
        .await
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = hist["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("a"))
        .collect();
    assert_eq!(actions, ["created", "cancelled"]);
    assert_eq!(hist["items"][1]["actor_id"], a.id.to_string());
}

#[tokio::test]
async fn reschedule_moves_the_booking_and_records_history() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550108").await;
    let room = app.room().await;
    let b: Value = app
        .book(&u, &room, &at(3, 9, 0), &at(3, 10, 0))
        .await
        .json()
        .await
        .expect("json");
    let path = format!("/v1/bookings/{}", b["id"].as_str().expect("id"));
    let resp = app
        .patch(
            &u.token,
            &path,
            json!({"start": at(3, 11, 0), "end": at(3, 12, 0), "note": "moved"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"2\"");
    let moved: Value = resp.json().await.expect("json");
    assert_eq!(moved["start"], at(3, 11, 0));
    assert_eq!(moved["note"], "moved");
    let hist: Value = app
        .get(&u.token, &format!("{path}/history"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(hist["items"][1]["action"], "rescheduled");
    assert_eq!(hist["items"][1]["start"], at(3, 11, 0));
}

#[tokio::test]
async fn a_refused_reschedule_keeps_the_old_period() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550109").await,
        app.user("+14155550110").await,
    );
    let room = app.room().await;
    let mine: Value = app
        .book(&a, &room, &at(3, 9, 0), &at(3, 10, 0))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        app.book(&b, &room, &at(3, 11, 0), &at(3, 12, 0))
            .await
            .status(),
        201
    );
    let path = format!("/v1/bookings/{}", mine["id"].as_str().expect("id"));
    let resp = app
        .patch(
            &a.token,
            &path,
            json!({"start": at(3, 11, 30), "end": at(3, 12, 30)}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let now: Value = app.get(&a.token, &path).await.json().await.expect("json");
    assert_eq!(now["start"], at(3, 9, 0));
    assert_eq!(now["version"], 1);
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550111").await;
    let room = app.room().await;
    let b: Value = app
        .book(&u, &room, &at(3, 9, 0), &at(3, 10, 0))
        .await
        .json()
        .await
        .expect("json");
    let path = format!("/v1/bookings/{}", b["id"].as_str().expect("id"));
    assert_eq!(
        app.patch(
            &u.token,
            &path,
            json!({"start": at(3, 10, 0), "end": at(3, 11, 0)})
        )
        .await
        .status(),
        200
    );
    let resp = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&u.token)
        .header("if-match", "\"1\"")
        .json(&json!({"start": at(3, 13, 0), "end": at(3, 14, 0)}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), 412);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["code"],
        "precondition_failed"
    );
    let resp = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&u.token)
        .header("if-match", "\"1\"")
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 412);
    let now: Value = app.get(&u.token, &path).await.json().await.expect("json");
    assert_eq!(now["start"], at(3, 10, 0));
    assert_eq!(now["status"], "confirmed");
    let ok = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&u.token)
        .header("if-match", "\"2\"")
        .send()
        .await
        .expect("delete");
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn another_users_booking_is_404_on_get_patch_delete_and_history() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550112").await,
        app.user("+14155550113").await,
    );
    let room = app.room().await;
    let theirs: Value = app
        .book(&b, &room, &at(3, 9, 0), &at(3, 10, 0))
        .await
        .json()
        .await
        .expect("json");
    let path = format!("/v1/bookings/{}", theirs["id"].as_str().expect("id"));
    let missing = format!("/v1/bookings/{}", uuid::Uuid::new_v4());
    for p in [&path, &missing] {
        let r = app.get(&a.token, p).await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.json::<Value>().await.expect("json")["code"], "not_found");
        assert_eq!(
            app.patch(
                &a.token,
                p,
                json!({"start": at(3, 12, 0), "end": at(3, 13, 0)})
            )
            .await
            .status(),
            404
        );
        assert_eq!(app.delete(&a.token, p).await.status(), 404);
        assert_eq!(
            app.get(&a.token, &format!("{p}/history")).await.status(),
            404
        );
    }
    let list: Value = app
        .get(&a.token, "/v1/bookings")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().expect("items").len(), 0);
    let still: Value = app.get(&b.token, &path).await.json().await.expect("json");
    assert_eq!(still["status"], "confirmed");
    assert_eq!(still["version"], 1);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550114").await;
    let room = app.room().await;
    let cases = [
        (
            json!({"resource_id": room, "start": at(3, 10, 0), "end": at(3, 9, 0)}),
            422,
            "end",
        ),
        (
            json!({"resource_id": room, "start": "tomorrow", "end": at(3, 9, 0)}),
            422,
            "start",
        ),
        (
            json!({"resource_id": room, "start": "2030-01-01T09:00:00", "end": "2030-01-01T10:00:00"}),
            422,
            "start",
        ),
        (
            json!({"resource_id": "nope", "start": at(3, 9, 0), "end": at(3, 10, 0)}),
            422,
            "resource_id",
        ),
        (
            json!({"resource_id": room, "start": at(-1, 9, 0), "end": at(-1, 10, 0)}),
            422,
            "start",
        ),
        (
            json!({"resource_id": room, "start": at(3, 9, 7), "end": at(3, 10, 0)}),
            422,
            "start",
        ),
        (
            json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0), "note": "x".repeat(1001)}),
            422,
            "note",
        ),
        (
            json!({"start": at(3, 9, 0), "end": at(3, 10, 0)}),
            422,
            "resource_id",
        ),
    ];
    for (body, status, field) in cases {
        let r = app
            .client
            .post(app.url("/v1/bookings"))
            .bearer_auth(&u.token)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), status, "{body}");
        let p: Value = r.json().await.expect("json");
        assert_eq!(p["code"], "validation_failed", "{body}");
        assert_eq!(p["errors"][0]["field"], field, "{body}");
    }
    let unknown =
        json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0), "user_id": u.id});
    let r = app
        .client
        .post(app.url("/v1/bookings"))
        .bearer_auth(&u.token)
        .json(&unknown)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .post(app.url("/v1/bookings"))
        .bearer_auth(&u.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let big = json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0), "note": "x".repeat(70_000)});
    let r = app
        .client
        .post(app.url("/v1/bookings"))
        .bearer_auth(&u.token)
        .json(&big)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "payload_too_large"
    );
    let r = app
        .book(
            &u,
            &uuid::Uuid::new_v4().to_string(),
            &at(3, 9, 0),
            &at(3, 10, 0),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.confirmed_count(&room).await, 0);
}

#[tokio::test]
async fn lists_page_through_a_cursor_in_start_order() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550115").await;
    let room = app.room().await;
    for h in [14, 9, 11, 10, 12] {
        assert_eq!(
            app.book(&u, &room, &at(4, h, 0), &at(4, h, 30))
                .await
                .status(),
            201
        );
    }
    let mut seen = Vec::new();
    let mut path = "/v1/bookings?limit=2".to_string();
    loop {
        let page: Value = app.get(&u.token, &path).await.json().await.expect("json");
        for b in page["items"].as_array().expect("items") {
            seen.push(b["start"].as_str().expect("start").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/bookings?limit=2&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = [9, 10, 11, 12, 14].iter().map(|h| at(4, *h, 0)).collect();
    assert_eq!(seen, want);
    let r = app.get(&u.token, "/v1/bookings?limit=1000").await;
    assert_eq!(r.status(), 422);
    let r = app.get(&u.token, "/v1/bookings?cursor=garbage").await;
    assert_eq!(r.status(), 422);
    let filtered: Value = app
        .get(
            &u.token,
            &format!("/v1/bookings?from={}&to={}", at(4, 10, 15), at(4, 11, 30)),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(filtered["items"].as_array().expect("items").len(), 2);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_echo_it() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/v1/bookings"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["request_id"], "abc-123");
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("get");
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
}

#[tokio::test]
async fn history_comes_in_pages() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550980").await;
    let room = app.room().await;
    let b = booked(&app, &u, &room, &at(3, 9, 0), &at(3, 10, 0)).await;
    let path = path_of(&b);
    for n in 0..4 {
        let note = format!("change {n}");
        let r = app
            .patch(
                &u.token,
                &path,
                json!({"start": at(3, 9, 0), "end": at(3, 10, 0), "note": note}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            None => "?limit=2".to_string(),
            Some(c) => format!("?limit=2&cursor={c}"),
        };
        let page: Value = app
            .get(&u.token, &format!("{path}/history{q}"))
            .await
            .json()
            .await
            .expect("json");
        let items = page["items"].as_array().expect("items").clone();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "created + 4 updates");
    assert_eq!(seen[0]["action"], "created");
    let bad = app
        .get(&u.token, &format!("{path}/history?cursor=nonsense"))
        .await;
    assert_eq!(bad.status(), 422);
    let bad = app.get(&u.token, &format!("{path}/history?limit=0")).await;
    assert_eq!(bad.status(), 422);
}
