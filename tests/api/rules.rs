//! A resource's rules over HTTP: the slot grid counted from local midnight,
//! durations, notice and advance windows (with the injectable clock), and
//! opening hours on create and reschedule.

use crate::helpers::rules::*;
use crate::helpers::TestApp;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

#[tokio::test]
async fn off_grid_times_and_durations_out_of_bounds_are_422_on_the_right_field() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let u = app.user("+14155550610").await;
    let room = resource_id(
        &app,
        json!({"slot_minutes": 30, "min_duration_minutes": 60, "max_duration_minutes": 120}),
    )
    .await;
    refused(
        &app,
        &u,
        &room,
        "2027-06-03T09:15:00Z",
        "2027-06-03T10:15:00Z",
        "start",
    )
    .await;
    refused(
        &app,
        &u,
        &room,
        "2027-06-03T09:00:30Z",
        "2027-06-03T10:00:00Z",
        "start",
    )
    .await;
    refused(
        &app,
        &u,
        &room,
        "2027-06-03T09:00:00Z",
        "2027-06-03T10:45:00Z",
        "end",
    )
    .await;
    // 30 minutes: on the grid but shorter than the minimum
    refused(
        &app,
        &u,
        &room,
        "2027-06-03T09:00:00Z",
        "2027-06-03T09:30:00Z",
        "end",
    )
    .await;
    // 150 minutes: longer than the maximum
    refused(
        &app,
        &u,
        &room,
        "2027-06-03T09:00:00Z",
        "2027-06-03T11:30:00Z",
        "end",
    )
    .await;
    assert_eq!(app.confirmed_count(&room).await, 0);
    booked(
        &app,
        &u,
        &room,
        "2027-06-03T09:00:00Z",
        "2027-06-03T10:00:00Z",
    )
    .await;
    booked(
        &app,
        &u,
        &room,
        "2027-06-03T10:30:00Z",
        "2027-06-03T12:30:00Z",
    )
    .await;
    // availability offers only what create accepts
    assert!(starts(
        &app,
        &u.token,
        &room,
        "2027-06-04T00:00:00Z",
        "2027-06-05T00:00:00Z",
        30
    )
    .await
    .is_empty());
    assert!(starts(
        &app,
        &u.token,
        &room,
        "2027-06-04T00:00:00Z",
        "2027-06-05T00:00:00Z",
        90
    )
    .await
    .iter()
    .all(|s| s.ends_with(":00:00Z") || s.ends_with(":30:00Z")));
}

#[tokio::test]
async fn the_grid_counts_from_local_midnight_in_kolkata() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let u = app.user("+14155550611").await;
    let room = resource_id(
        &app,
        json!({"timezone": "Asia/Kolkata", "slot_minutes": 90}),
    )
    .await;
    // local day 2027-06-03 is 2027-06-02T18:30Z .. 2027-06-03T18:30Z: 16 starts
    let day = starts(
        &app,
        &u.token,
        &room,
        "2027-06-02T18:30:00Z",
        "2027-06-03T18:30:00Z",
        90,
    )
    .await;
    assert_eq!(day.len(), 16, "{day:?}");
    assert_eq!(day[0], "2027-06-02T18:30:00Z");
    assert_eq!(day[1], "2027-06-02T20:00:00Z");
    assert_eq!(day[6], "2027-06-03T03:30:00Z"); // 09:00 IST
                                                // 03:00Z is on a 90-minute grid counted in UTC, but it is 08:30 IST: off the local grid
    refused(
        &app,
        &u,
        &room,
        "2027-06-03T03:00:00Z",
        "2027-06-03T04:30:00Z",
        "start",
    )
    .await;
    refused(
        &app,
        &u,
        &room,
        "2027-06-03T09:00:00+05:30",
        "2027-06-03T10:00:00+05:30",
        "end",
    )
    .await;
    let b = booked(
        &app,
        &u,
        &room,
        "2027-06-03T09:00:00+05:30",
        "2027-06-03T10:30:00+05:30",
    )
    .await;
    assert_eq!(b["start"], "2027-06-03T03:30:00Z");
}

#[tokio::test]
async fn notice_and_advance_windows_follow_the_servers_clock() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-05-10T08:07:30Z").await;
    let (a, b) = (
        app.user("+14155550612").await,
        app.user("+14155550613").await,
    );
    let room = resource_id(
        &app,
        json!({"min_notice_minutes": 120, "max_advance_days": 10}),
    )
    .await;
    // availability starts at the notice edge (10:07:30 now + 2 hours)
    let near = starts(
        &app,
        &b.token,
        &room,
        "2027-05-10T07:00:00Z",
        "2027-05-10T11:00:00Z",
        15,
    )
    .await;
    assert_eq!(
        near,
        [
            "2027-05-10T10:15:00Z",
            "2027-05-10T10:30:00Z",
            "2027-05-10T10:45:00Z"
        ]
    );
    // in the past
    refused(
        &app,
        &a,
        &room,
        "2027-05-10T08:00:00Z",
        "2027-05-10T08:15:00Z",
        "start",
    )
    .await;
    // in the future but less than 2 hours ahead (10:07:30 is the limit)
    refused(
        &app,
        &a,
        &room,
        "2027-05-10T10:00:00Z",
        "2027-05-10T10:15:00Z",
        "start",
    )
    .await;
    let first = booked(
        &app,
        &a,
        &room,
        "2027-05-10T10:15:00Z",
        "2027-05-10T10:30:00Z",
    )
    .await;
    // at most 10 days ahead (2027-05-20T08:07:30Z is the limit)
    booked(
        &app,
        &b,
        &room,
        "2027-05-20T08:00:00Z",
        "2027-05-20T08:15:00Z",
    )
    .await;
    refused(
        &app,
        &b,
        &room,
        "2027-05-20T08:15:00Z",
        "2027-05-20T08:30:00Z",
        "start",
    )
    .await;
    // availability agrees at the far edge
    let far = starts(
        &app,
        &a.token,
        &room,
        "2027-05-20T07:00:00Z",
        "2027-05-20T10:00:00Z",
        15,
    )
    .await;
    assert_eq!(
        far,
        [
            "2027-05-20T07:00:00Z",
            "2027-05-20T07:15:00Z",
            "2027-05-20T07:30:00Z",
            "2027-05-20T07:45:00Z"
        ],
        "08:00 is taken by b, later is too far ahead"
    );
    // rescheduling into the notice window is refused and keeps the time
    let p = path_of(&first);
    let resp = app
        .patch(
            &a.token,
            &p,
            json!({"start": "2027-05-10T09:00:00Z", "end": "2027-05-10T09:15:00Z"}),
        )
        .await;
    let (status, body) = outcome(resp).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "start");
    let now: Value = app.get(&a.token, &p).await.json().await.expect("json");
    assert_eq!(now["start"], "2027-05-10T10:15:00Z");
    assert_eq!(now["version"], 1);
    // a day later the far edge has moved by a day, and the near slot is past
    pin(&app, "2027-05-11T08:07:30Z").await;
    booked(
        &app,
        &b,
        &room,
        "2027-05-21T08:00:00Z",
        "2027-05-21T08:15:00Z",
    )
    .await;
    refused(
        &app,
        &b,
        &room,
        "2027-05-10T12:00:00Z",
        "2027-05-10T12:15:00Z",
        "start",
    )
    .await;
}

#[tokio::test]
async fn opening_hours_are_enforced_on_create_and_reschedule() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-05-10T06:07:30Z").await;
    let u = app.user("+14155550620").await;
    let room = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 30,
               "opening_hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]],
                                 "sat": [["22:00", "24:00"]]}}),
    )
    .await;
    // Monday 2027-05-17 (CEST, +02:00)
    for (s, e) in [
        ("2027-05-17T08:30:00+02:00", "2027-05-17T09:30:00+02:00"), // opens at 9
        ("2027-05-17T11:30:00+02:00", "2027-05-17T13:00:00+02:00"), // spans lunch
        ("2027-05-17T12:00:00+02:00", "2027-05-17T12:30:00+02:00"), // at lunch
        ("2027-05-17T16:30:00+02:00", "2027-05-17T17:30:00+02:00"), // past closing
        ("2027-05-18T10:00:00+02:00", "2027-05-18T10:30:00+02:00"), // Tuesday: closed
        ("2027-05-22T23:30:00+02:00", "2027-05-23T00:30:00+02:00"), // past Saturday's 24:00
    ] {
        refused(&app, &u, &room, s, e, "start").await;
    }
    let b = booked(
        &app,
        &u,
        &room,
        "2027-05-17T16:30:00+02:00",
        "2027-05-17T17:00:00+02:00",
    )
    .await;
    booked(
        &app,
        &u,
        &room,
        "2027-05-22T23:00:00+02:00",
        "2027-05-23T00:00:00+02:00",
    )
    .await;
    // reschedule into lunch: 422 and the booking keeps its time
    let p = path_of(&b);
    let (status, body) = outcome(
        app.patch(
            &u.token,
            &p,
            json!({"start": "2027-05-17T12:00:00+02:00", "end": "2027-05-17T12:30:00+02:00"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "start");
    let (status, body) = outcome(
        app.patch(
            &u.token,
            &p,
            json!({"start": "2027-05-18T09:00:00+02:00", "end": "2027-05-18T09:30:00+02:00"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "Tuesday is closed: {body}");
    let now: Value = app.get(&u.token, &p).await.json().await.expect("json");
    assert_eq!(now["start"], "2027-05-17T14:30:00Z");
    assert_eq!(now["version"], 1);
    let (status, body) = outcome(
        app.patch(
            &u.token,
            &p,
            json!({"start": "2027-05-17T13:00:00+02:00", "end": "2027-05-17T14:00:00+02:00"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["start"], "2027-05-17T11:00:00Z");
    // availability on Monday: 09:00-12:00 and 13:00-17:00 local, hourly
    let monday = starts(
        &app,
        &u.token,
        &room,
        "2027-05-16T22:00:00Z",
        "2027-05-17T22:00:00Z",
        60,
    )
    .await;
    let inside = |s: DateTime<Utc>, open: &str, close: &str| {
        s >= t(open) && s + Duration::minutes(60) <= t(close)
    };
    let expected: Vec<String> = (0..48)
        .map(|k| t("2027-05-17T00:00:00Z") + Duration::minutes(30 * k))
        .filter(|s| {
            inside(*s, "2027-05-17T07:00:00Z", "2027-05-17T10:00:00Z")
                || inside(*s, "2027-05-17T11:00:00Z", "2027-05-17T15:00:00Z")
        })
        // 11:00Z-12:00Z is u's own booking now: create would say user_overlap
        .filter(|s| {
            *s + Duration::minutes(60) <= t("2027-05-17T11:00:00Z")
                || *s >= t("2027-05-17T12:00:00Z")
        })
        .map(z)
        .collect();
    assert_eq!(expected.len(), 10);
    assert_eq!(monday, expected);
}
