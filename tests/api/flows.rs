//! Holds, approval, recurring series, closures and date overrides: every one
//! under the same constraints as a plain booking (migration 0008).

use crate::helpers::rules::{path_of, pin, t, z};
use crate::helpers::{assert_problem, at, TestApp, TestUser};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post")
}

async fn hold(
    app: &TestApp,
    u: &TestUser,
    room: &str,
    s: &str,
    e: &str,
    secs: i64,
) -> reqwest::Response {
    post(
        app,
        &u.token,
        "/v1/holds",
        json!({"resource_id": room, "start": s, "end": e, "expires_in_seconds": secs}),
    )
    .await
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("json")
}

async fn history_actions(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    let h = json_of(app.get(token, &format!("/v1/bookings/{id}/history")).await).await;
    h["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn two_hundred_users_hold_one_slot_and_one_gets_it() {
    let app = TestApp::spawn().await;
    let room = app.room().await;
    let users = app.users(201).await;
    let (s, e) = (at(2, 10, 0), at(2, 11, 0));
    let reqs = users[..200].iter().map(|u| {
        app.client
            .post(app.url("/v1/holds"))
            .bearer_auth(&u.token)
            .json(&json!({"resource_id": room, "start": s, "end": e}))
            .send()
    });
    let answers = futures::future::join_all(reqs).await;
    let mut codes = std::collections::HashMap::<u16, usize>::new();
    for a in &answers {
        *codes
            .entry(a.as_ref().expect("answer").status().as_u16())
            .or_default() += 1;
    }
    assert_eq!(codes.get(&201), Some(&1), "{codes:?}");
    assert_eq!(codes.get(&409), Some(&199), "{codes:?}");
    // while it lives, nobody books it, and availability shows it busy
    let last = &users[200];
    assert_problem(app.book(last, &room, &s, &e).await, 409, "slot_taken").await;
    let slots = json_of(
        app.get(
            &last.token,
            &format!("/v1/resources/{room}/availability?from={s}&to={e}&duration_minutes=60"),
        )
        .await,
    )
    .await;
    assert_eq!(slots["slots"], json!([]));
}

#[tokio::test]
async fn an_expired_hold_never_blocks_even_with_the_sweeper_off() {
    let app = TestApp::spawn_with(&[("BOOKING_EXPIRY_SWEEP_SECONDS", "0")]).await;
    let room = app.room().await;
    let a = app.user("+14155550201").await;
    let b = app.user("+14155550202").await;
    let (s, e) = (at(2, 10, 0), at(2, 11, 0));
    let r = hold(&app, &a, &room, &s, &e, 30).await;
    assert_eq!(r.status(), 201);
    let h = json_of(r).await;
    assert_eq!(h["start"], s);
    let expires = t(h["expires_at"].as_str().expect("expires_at"));
    assert!(
        (expires - Utc::now() - Duration::seconds(30))
            .num_seconds()
            .abs()
            <= 2
    );
    assert_problem(app.book(&b, &room, &s, &e).await, 409, "slot_taken").await;
    // 31 s later (the clocks move; nothing sweeps)
    app.set_clock(Utc::now() + Duration::seconds(31)).await;
    let mut c = app.admin_conn().await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM booking.bookings WHERE id = $1::uuid")
            .bind(h["id"].as_str())
            .fetch_one(&mut c)
            .await
            .expect("status");
    assert_eq!(status, "held", "no sweeper ran");
    let free = json_of(
        app.get(
            &b.token,
            &format!("/v1/resources/{room}/availability?from={s}&to={e}&duration_minutes=60"),
        )
        .await,
    )
    .await;
    assert_eq!(
        free["slots"][0]["start"], s,
        "an expired hold is free: {free}"
    );
    let r = app.book(&b, &room, &s, &e).await;
    assert_eq!(r.status(), 201, "the expired hold does not block");
    let confirm = post(
        &app,
        &a.token,
        &format!("/v1/holds/{}/confirm", h["id"].as_str().expect("id")),
        json!({}),
    )
    .await;
    assert_problem(confirm, 409, "hold_expired").await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM booking.bookings WHERE id = $1::uuid")
            .bind(h["id"].as_str())
            .fetch_one(&mut c)
            .await
            .expect("status");
    assert_eq!(status, "expired", "retired by the writer that met it");
    sqlx::Connection::close(c).await.expect("close");
}

#[tokio::test]
async fn a_confirmed_hold_is_the_booking_with_no_gap() {
    let app = TestApp::spawn().await;
    let owner = app.user("+14155550210").await;
    let room = app.resource(json!({"owner_id": owner.id})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let a = app.user("+14155550211").await;
    let b = app.user("+14155550212").await;
    let (s, e) = (at(2, 10, 0), at(2, 11, 0));
    let h = json_of(hold(&app, &a, &room, &s, &e, 300).await).await;
    let id = h["id"].as_str().expect("id").to_string();
    // only the holder sees it: not B, not the resource's staff
    assert_eq!(
        app.get(&b.token, &format!("/v1/holds/{id}")).await.status(),
        404
    );
    assert_eq!(
        app.get(&a.token, &format!("/v1/holds/{id}")).await.status(),
        200
    );
    let staff = json_of(
        app.get(&owner.token, &format!("/v1/bookings?resource_id={room}"))
            .await,
    )
    .await;
    assert_eq!(staff["items"], json!([]), "staff do not see holds");
    assert_eq!(
        post(
            &app,
            &b.token,
            &format!("/v1/holds/{id}/confirm"),
            json!({})
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        app.delete(&b.token, &format!("/v1/holds/{id}"))
            .await
            .status(),
        404
    );
    // confirm with an Idempotency-Key, twice
    let confirm = || {
        app.client
            .post(app.url(&format!("/v1/holds/{id}/confirm")))
            .bearer_auth(&a.token)
            .header("idempotency-key", "confirm-1")
            .json(&json!({"note": "paid"}))
            .send()
    };
    let r = confirm().await.expect("confirm");
    assert_eq!(r.status(), 201);
    let booking = json_of(r).await;
    assert_eq!(booking["id"], h["id"], "the hold's row is the booking");
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["note"], "paid");
    assert_eq!(booking["start"], s);
    let again = confirm().await.expect("confirm");
    assert_eq!(again.status(), 201);
    assert_eq!(
        json_of(again).await["id"],
        h["id"],
        "replayed, not a second booking"
    );
    assert_eq!(
        history_actions(&app, &a.token, &id).await,
        ["held", "confirmed"]
    );
    assert_problem(app.book(&b, &room, &s, &e).await, 409, "slot_taken").await;
    assert_eq!(
        app.get(&a.token, &format!("/v1/holds/{id}")).await.status(),
        404,
        "no longer a hold"
    );
    // a released hold frees the seat at once
    let (s2, e2) = (at(2, 12, 0), at(2, 13, 0));
    let h2 = json_of(hold(&app, &a, &room, &s2, &e2, 300).await).await;
    let r = app
        .delete(
            &a.token,
            &format!("/v1/holds/{}", h2["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.book(&b, &room, &s2, &e2).await.status(), 201);
    // the rules of a create apply to a hold
    let bad = hold(&app, &a, &room, &at(2, 14, 5), &at(2, 15, 0), 300).await;
    assert_problem(bad, 422, "validation_failed").await;
    let bad = hold(&app, &a, &room, &at(2, 16, 0), &at(2, 17, 0), 10).await;
    let p = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "expires_in_seconds");
    // and one user cannot hold two overlapping slots
    let other_room = app.room().await;
    assert_eq!(
        hold(&app, &b, &other_room, &at(3, 9, 0), &at(3, 10, 0), 300)
            .await
            .status(),
        201
    );
    assert_problem(
        hold(&app, &b, &room, &at(3, 9, 30), &at(3, 10, 30), 300).await,
        409,
        "user_overlap",
    )
    .await;
}

#[tokio::test]
async fn confirm_racing_expiry_and_another_create_never_both_win() {
    let app = TestApp::spawn_with(&[("BOOKING_EXPIRY_SWEEP_SECONDS", "0")]).await;
    let room = app.room().await;
    let a = app.user("+14155550220").await;
    let b = app.user("+14155550221").await;
    let mut outcomes = Vec::new();
    for i in 0..12u32 {
        let (s, e) = (at(3, i, 0), at(3, i, 30));
        let h = json_of(hold(&app, &a, &room, &s, &e, 30).await).await;
        let id = h["id"].as_str().expect("id").to_string();
        let expires = t(h["expires_at"].as_str().expect("expires_at"));
        // land the clock a little before, at or after the expiry
        let skew = Duration::milliseconds(i64::from(i % 4) * 40 - 60);
        app.set_clock(expires + skew).await;
        let confirm_path = format!("/v1/holds/{id}/confirm");
        let (c, k) = tokio::join!(
            post(&app, &a.token, &confirm_path, json!({})),
            app.book(&b, &room, &s, &e)
        );
        let (c, k) = (c.status().as_u16(), k.status().as_u16());
        assert!(
            !(c == 201 && k == 201),
            "round {i}: both the confirm and the create won"
        );
        outcomes.push((c, k));
        app.set_clock(Utc::now()).await;
    }
    let mut admin = app.admin_conn().await;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM booking.bookings WHERE status IN ('held','pending','confirmed') \
           AND (expires_at IS NULL OR expires_at > now()) AND resource_id = $1::uuid",
    )
    .bind(&room)
    .fetch_one(&mut admin)
    .await
    .expect("count");
    assert!(live <= 12, "{outcomes:?}");
    sqlx::Connection::close(admin).await.expect("close");
}

#[tokio::test]
async fn pending_bookings_occupy_until_approved_rejected_or_expired() {
    let app = TestApp::spawn_with(&[("BOOKING_EXPIRY_SWEEP_SECONDS", "0")]).await;
    let staff = app.user("+14155550230").await;
    let other_staff = app.user("+14155550231").await;
    let room = app
        .resource(json!({"owner_id": staff.id, "requires_approval": true, "approval_timeout_minutes": 60}))
        .await;
    assert_eq!(room["requires_approval"], true);
    let room = room["id"].as_str().expect("id").to_string();
    app.resource(json!({"owner_id": other_staff.id})).await;
    let a = app.user("+14155550232").await;
    let b = app.user("+14155550233").await;
    let (s, e) = (at(4, 10, 0), at(4, 11, 0));
    let p = json_of(app.book(&a, &room, &s, &e).await).await;
    assert_eq!(p["status"], "pending");
    assert_problem(app.book(&b, &room, &s, &e).await, 409, "slot_taken").await;
    let path = path_of(&p);
    assert_eq!(
        post(
            &app,
            &other_staff.token,
            &format!("{path}/approve"),
            json!({})
        )
        .await
        .status(),
        404
    );
    assert_problem(
        post(&app, &a.token, &format!("{path}/approve"), json!({})).await,
        403,
        "forbidden",
    )
    .await;
    let ok = post(&app, &staff.token, &format!("{path}/approve"), json!({})).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(json_of(ok).await["status"], "confirmed");
    assert_problem(
        post(&app, &staff.token, &format!("{path}/approve"), json!({})).await,
        409,
        "not_allowed",
    )
    .await;
    assert_eq!(
        history_actions(&app, &a.token, p["id"].as_str().expect("id")).await,
        ["created", "approved"]
    );

    // rejected: the seat is free again
    let (s2, e2) = (at(4, 12, 0), at(4, 13, 0));
    let p2 = json_of(app.book(&a, &room, &s2, &e2).await).await;
    let r = post(
        &app,
        &app.service_token(),
        &format!("{}/reject", path_of(&p2)),
        json!({}),
    )
    .await;
    assert_eq!(json_of(r).await["status"], "rejected");
    assert_eq!(
        json_of(app.book(&b, &room, &s2, &e2).await).await["status"],
        "pending"
    );

    // undecided past its timeout: expired, and it blocks nobody (no sweeper)
    let (s3, e3) = (at(4, 14, 0), at(4, 15, 0));
    let p3 = json_of(app.book(&a, &room, &s3, &e3).await).await;
    app.set_clock(Utc::now() + Duration::minutes(61)).await;
    let r = app.book(&b, &room, &s3, &e3).await;
    assert_eq!(r.status(), 201, "an expired pending booking does not block");
    let got = json_of(app.get(&a.token, &path_of(&p3)).await).await;
    assert_eq!(got["status"], "expired");
    assert_problem(
        post(
            &app,
            &staff.token,
            &format!("{}/approve", path_of(&p3)),
            json!({}),
        )
        .await,
        409,
        "not_allowed",
    )
    .await;
    let list = json_of(app.get(&a.token, "/v1/bookings?status=expired").await).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_weekly_series_keeps_its_local_time_across_dst() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-03-01T08:07:30Z").await;
    let room = app
        .resource(json!({"timezone": "Europe/Berlin", "slot_minutes": 30}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let u = app.user("+14155550240").await;
    // Mondays at 09:00 Berlin time; DST starts on Sunday 2027-03-28
    let r = post(
        &app,
        &u.token,
        "/v1/series",
        json!({"resource_id": room, "start": "2027-03-15T09:00:00+01:00", "end": "2027-03-15T10:00:00+01:00",
               "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=4", "note": "physio"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let s = json_of(r).await;
    let starts: Vec<&str> = s["bookings"]
        .as_array()
        .expect("bookings")
        .iter()
        .map(|b| b["start"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        starts,
        [
            "2027-03-15T08:00:00Z",
            "2027-03-22T08:00:00Z",
            "2027-03-29T07:00:00Z",
            "2027-04-05T07:00:00Z"
        ],
        "09:00 local before and after the change"
    );
    for b in s["bookings"].as_array().expect("bookings") {
        assert_eq!(b["series_id"], s["id"]);
        assert_eq!(b["note"], "physio");
    }
    let got = json_of(
        app.get(
            &u.token,
            &format!("/v1/series/{}", s["id"].as_str().expect("id")),
        )
        .await,
    )
    .await;
    assert_eq!(got["bookings"].as_array().map(Vec::len), Some(4));
    assert_eq!(got["rrule"], "FREQ=WEEKLY;BYDAY=MO;COUNT=4");
    // one occurrence moves through the booking routes; the series follows
    let second = &s["bookings"][1];
    let r = app
        .patch(
            &u.token,
            &path_of(second),
            json!({"start": "2027-03-22T09:00:00Z", "end": "2027-03-22T10:00:00Z"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = json_of(
        app.get(
            &u.token,
            &format!("/v1/series/{}", s["id"].as_str().expect("id")),
        )
        .await,
    )
    .await;
    assert_eq!(got["bookings"][1]["start"], "2027-03-22T09:00:00Z");
    assert_eq!(
        got["bookings"].as_array().map(Vec::len),
        Some(4),
        "moving one creates nothing"
    );
}

#[tokio::test]
async fn a_series_is_all_or_nothing_and_cancels_from_an_occurrence_on() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-05-01T08:07:30Z").await;
    let room = app.room().await;
    let u = app.user("+14155550250").await;
    let other = app.user("+14155550251").await;
    // someone holds the 4th day's slot
    assert_eq!(
        app.book(
            &other,
            &room,
            "2027-05-13T09:00:00Z",
            "2027-05-13T10:00:00Z"
        )
        .await
        .status(),
        201
    );
    let body = json!({"resource_id": room, "start": "2027-05-10T09:00:00Z", "end": "2027-05-10T10:00:00Z",
                      "rrule": "FREQ=DAILY;COUNT=6"});
    let p = assert_problem(
        post(&app, &u.token, "/v1/series", body.clone()).await,
        409,
        "series_conflict",
    )
    .await;
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(p["errors"][0]["field"], "occurrences[3]");
    let msg = p["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("2027-05-13T09:00:00Z") && !msg.contains(&other.id.to_string()),
        "{msg}"
    );
    let mine = json_of(app.get(&u.token, "/v1/bookings").await).await;
    assert_eq!(mine["items"], json!([]), "none of the 6 was created");
    // without the conflict: six, then cancel from the third on
    let body = json!({"resource_id": room, "start": "2027-05-20T09:00:00Z", "end": "2027-05-20T10:00:00Z",
                      "rrule": "FREQ=DAILY;COUNT=6"});
    let s = json_of(post(&app, &u.token, "/v1/series", body).await).await;
    let id = s["id"].as_str().expect("id");
    let r = app
        .delete(
            &u.token,
            &format!("/v1/series/{id}?from=2027-05-22T09:00:00Z"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let after = json_of(r).await;
    let statuses: Vec<&str> = after["bookings"]
        .as_array()
        .expect("bookings")
        .iter()
        .map(|b| b["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        [
            "confirmed",
            "confirmed",
            "cancelled",
            "cancelled",
            "cancelled",
            "cancelled"
        ]
    );
    assert_eq!(
        app.delete(&other.token, &format!("/v1/series/{id}"))
            .await
            .status(),
        404
    );
    // the subset's limits are 422s
    for rrule in [
        "FREQ=DAILY;COUNT=101",
        "FREQ=MONTHLY;COUNT=2",
        "FREQ=DAILY",
        "FREQ=DAILY;UNTIL=20300101",
    ] {
        let r = post(&app, &u.token, "/v1/series", json!({"resource_id": room, "start": "2027-06-01T09:00:00Z",
                                                          "end": "2027-06-01T10:00:00Z", "rrule": rrule})).await;
        let p = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(p["errors"][0]["field"], "rrule", "{rrule}: {p}");
    }
    // a rule that refuses an occurrence: 422 naming it, nothing created
    let r = post(
        &app,
        &u.token,
        "/v1/series",
        json!({"resource_id": room, "start": "2027-06-01T09:00:00Z",
        "end": "2027-06-01T10:00:00Z", "rrule": "FREQ=WEEKLY;COUNT=60"}),
    )
    .await;
    let p = assert_problem(r, 422, "validation_failed").await;
    assert!(p["errors"].as_array().map(Vec::len).unwrap_or(0) >= 1);
    assert!(
        p["errors"][0]["field"]
            .as_str()
            .unwrap_or("")
            .starts_with("occurrences["),
        "{p}"
    );
}

#[tokio::test]
async fn closures_refuse_or_cancel_what_lies_inside_and_overrides_change_a_date() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-07-01T08:07:30Z").await;
    let svc = app.service_token();
    let room = app
        .resource(json!({"timezone": "UTC", "opening_hours": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]],
            "wed": [["09:00", "17:00"]], "thu": [["09:00", "17:00"]], "fri": [["09:00", "17:00"]]},
            "date_overrides": {"2027-07-06": [], "2027-07-10": [["10:00", "12:00"]]}}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let u = app.user("+14155550260").await;
    let b = json_of(
        app.book(&u, &room, "2027-07-05T10:00:00Z", "2027-07-05T11:00:00Z")
            .await,
    )
    .await;
    let closures = format!("/v1/admin/resources/{room}/closures");
    let close =
        json!({"start": "2027-07-05T00:00:00Z", "end": "2027-07-05T12:00:00Z", "reason": "boiler"});
    let p = assert_problem(
        post(&app, &svc, &closures, close.clone()).await,
        409,
        "closure_conflicts",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "bookings[0]");
    assert_eq!(p["errors"][0]["message"], b["id"]);
    let listed = json_of(app.get(&svc, &closures).await).await;
    assert_eq!(listed["items"], json!([]), "nothing created");
    let r = post(
        &app,
        &svc,
        &format!("{closures}?cancel_conflicting=true"),
        close,
    )
    .await;
    assert_eq!(r.status(), 201);
    let c = json_of(r).await;
    assert_eq!(c["reason"], "boiler");
    let got = json_of(app.get(&u.token, &path_of(&b)).await).await;
    assert_eq!(got["status"], "cancelled");
    assert_eq!(
        history_actions(&app, &u.token, b["id"].as_str().expect("id")).await,
        ["created", "cancelled"]
    );
    // inside the closure: refused by create, hold and series alike, and not offered
    let p = assert_problem(
        app.book(&u, &room, "2027-07-05T11:00:00Z", "2027-07-05T12:00:00Z")
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(p["detail"].as_str().unwrap_or("").contains("closed"), "{p}");
    assert_problem(
        hold(
            &app,
            &u,
            &room,
            "2027-07-05T11:00:00Z",
            "2027-07-05T12:00:00Z",
            60,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let day = |d: &str| {
        format!("/v1/resources/{room}/availability?from={d}T00:00:00Z&to={d}T23:59:00Z&duration_minutes=60")
    };
    let slots = json_of(app.get(&u.token, &day("2027-07-05")).await).await;
    let starts: Vec<&str> = slots["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["start"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        starts.first().copied(),
        Some("2027-07-05T12:00:00Z"),
        "{starts:?}"
    );
    // overrides: Tuesday the 6th closed, Saturday the 10th open 10-12
    assert_eq!(
        json_of(app.get(&u.token, &day("2027-07-06")).await).await["slots"],
        json!([])
    );
    assert_problem(
        app.book(&u, &room, "2027-07-06T10:00:00Z", "2027-07-06T11:00:00Z")
            .await,
        422,
        "validation_failed",
    )
    .await;
    let sat = json_of(app.get(&u.token, &day("2027-07-10")).await).await;
    let sat: Vec<&str> = sat["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["start"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(sat.first().copied(), Some("2027-07-10T10:00:00Z"));
    assert_eq!(sat.last().copied(), Some("2027-07-10T11:00:00Z"));
    assert_eq!(
        app.book(&u, &room, "2027-07-10T11:00:00Z", "2027-07-10T12:00:00Z")
            .await
            .status(),
        201
    );
    // reopened
    let id = c["id"].as_str().expect("id");
    assert_eq!(
        app.delete(&svc, &format!("{closures}/{id}")).await.status(),
        204
    );
    assert_eq!(
        app.delete(&svc, &format!("{closures}/{id}")).await.status(),
        404
    );
    assert_eq!(
        app.book(&u, &room, "2027-07-05T11:00:00Z", "2027-07-05T12:00:00Z")
            .await
            .status(),
        201
    );
    // a user may not close anything
    assert_eq!(
        post(
            &app,
            &u.token,
            &closures,
            json!({"start": z(t("2027-08-01T00:00:00Z")), "end": "2027-08-02T00:00:00Z"})
        )
        .await
        .status(),
        403
    );
}

/// The security review of the flows, kept closed.
#[tokio::test]
async fn the_flow_reviews_findings_stay_closed() {
    use crate::helpers::door;
    let app = TestApp::spawn_with(&[("BOOKING_EXPIRY_SWEEP_SECONDS", "0")]).await;
    let staff = app.user("+14155550270").await;
    let a = app.user("+14155550271").await;
    let b = app.user("+14155550272").await;
    let room = app.room().await;
    let approval = app
        .resource(json!({"owner_id": staff.id, "requires_approval": true}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut c = app.login_conn().await;
    // 1: a SERIALIZABLE (or REPEATABLE READ) snapshot cannot write bookings
    for level in ["SERIALIZABLE", "REPEATABLE READ"] {
        sqlx::raw_sql(&format!("BEGIN ISOLATION LEVEL {level}"))
            .execute(&mut c)
            .await
            .expect("begin");
        sqlx::query(
            "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true), \
                    set_config('request.jwt.claim.sub', $2, true)",
        )
        .bind(json!({"sub": a.id, "role": "authenticated"}).to_string())
        .bind(a.id.to_string())
        .execute(&mut c)
        .await
        .expect("claims");
        let e = sqlx::query(&format!(
            "SELECT booking.create_booking('{room}', '{}', '{}')",
            at(2, 10, 0),
            at(2, 11, 0)
        ))
        .execute(&mut c)
        .await
        .expect_err(level);
        assert!(e.to_string().contains("READ COMMITTED"), "{level}: {e}");
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut c)
            .await
            .expect("rollback");
    }
    // 5: an approved booking moved by its user would skip approval
    let p = json_of(app.book(&a, &approval, &at(3, 10, 0), &at(3, 11, 0)).await).await;
    let r = post(
        &app,
        &staff.token,
        &format!("{}/approve", path_of(&p)),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let moved = app
        .patch(
            &a.token,
            &path_of(&p),
            json!({"start": at(3, 12, 0), "end": at(3, 13, 0)}),
        )
        .await;
    assert_problem(moved, 409, "not_allowed").await;
    // 6: an expiry retired by someone else names no actor
    let h = json_of(hold(&app, &b, &room, &at(2, 14, 0), &at(2, 15, 0), 30).await).await;
    app.set_clock(Utc::now() + Duration::seconds(31)).await;
    assert_eq!(
        app.book(&a, &room, &at(2, 14, 0), &at(2, 15, 0))
            .await
            .status(),
        201
    );
    let mut admin = app.admin_conn().await;
    let actor: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT actor_id FROM booking.booking_events WHERE booking_id = $1::uuid AND action = 'expired'",
    )
    .bind(h["id"].as_str())
    .fetch_one(&mut admin)
    .await
    .expect("expired event");
    assert_eq!(actor, None, "not the user whose write retired it");
    sqlx::Connection::close(admin).await.expect("close");
    // 7: users do not read closures (their reasons are staff's)
    let mut tx = door(&mut c, "authenticated", Some(a.id)).await;
    let e = sqlx::query("SELECT count(*) FROM booking.closures")
        .execute(&mut *tx)
        .await
        .expect_err("closures");
    assert!(e.to_string().contains("permission denied"), "{e}");
    tx.rollback().await.expect("rollback");
    // 9: the series text is an RRULE through the direct door too
    let mut tx = door(&mut c, "authenticated", Some(a.id)).await;
    let outcome: (String, Option<String>) = sqlx::query_as(&format!(
        "SELECT outcome, field FROM booking.create_series('{room}', '{}', '{}', 'DAILY', 1, NULL, 2, NULL, '<script>', NULL)",
        at(5, 9, 0),
        at(5, 10, 0)
    ))
    .fetch_one(&mut *tx)
    .await
    .expect("series");
    assert_eq!(outcome, ("invalid".to_string(), Some("rrule".to_string())));
    tx.rollback().await.expect("rollback");
    sqlx::Connection::close(c).await.expect("close");
}
