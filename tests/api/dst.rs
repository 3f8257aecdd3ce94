//! Daylight-saving days: opening hours and the slot grid keep their local
//! meaning on the days the clock jumps (Berlin, New York), and a local time
//! that does not exist is never offered.

use crate::helpers::rules::*;
use crate::helpers::TestApp;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

#[tokio::test]
async fn berlin_spring_forward_sunday_offers_two_hours_between_01_and_04() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-03-20T10:07:30Z").await;
    let u = app.user("+14155550600").await;
    let room = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 60,
               "opening_hours": {"sun": [["01:00", "04:00"]]}}),
    )
    .await;
    let (from, to) = ("2027-03-27T12:00:00Z", "2027-03-28T12:00:00Z");
    // 01:00 CET = 00:00Z and 03:00 CEST = 01:00Z; 02:00-03:00 local never happens
    assert_eq!(
        starts(&app, &u.token, &room, from, to, 60).await,
        ["2027-03-28T00:00:00Z", "2027-03-28T01:00:00Z"]
    );
    // the whole window is two real hours
    assert_eq!(
        starts(&app, &u.token, &room, from, to, 120).await,
        ["2027-03-28T00:00:00Z"]
    );
    assert!(starts(&app, &u.token, &room, from, to, 180)
        .await
        .is_empty());
    // what is offered is accepted: 01:00 CET to 04:00 CEST, and 04:00 CEST is the end
    let b = booked(
        &app,
        &u,
        &room,
        "2027-03-28T01:00:00+01:00",
        "2027-03-28T04:00:00+02:00",
    )
    .await;
    assert_eq!(b["end"], "2027-03-28T02:00:00Z");
    let v = app.user("+14155550601").await;
    refused(
        &app,
        &v,
        &room,
        "2027-03-28T02:00:00Z",
        "2027-03-28T03:00:00Z",
        "start",
    )
    .await;
}

#[tokio::test]
async fn nine_to_five_is_eight_hours_on_a_normal_day_and_on_both_dst_sundays() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550602").await;
    let days: serde_json::Map<String, Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| (d.to_string(), json!([["09:00", "17:00"]])))
        .collect();
    let room = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 60, "opening_hours": days}),
    )
    .await;
    pin(&app, "2027-03-20T10:07:30Z").await;
    // a normal Wednesday in winter: 09:00 CET = 08:00Z
    let normal = starts(
        &app,
        &u.token,
        &room,
        "2027-03-24T00:00:00Z",
        "2027-03-25T00:00:00Z",
        60,
    )
    .await;
    assert_eq!(normal.len(), 8, "{normal:?}");
    assert_eq!(normal[0], "2027-03-24T08:00:00Z");
    assert_eq!(normal[7], "2027-03-24T15:00:00Z");
    // the spring-forward Sunday: 09:00 CEST = 07:00Z, still 8 hours
    let spring = starts(
        &app,
        &u.token,
        &room,
        "2027-03-28T00:00:00Z",
        "2027-03-29T00:00:00Z",
        60,
    )
    .await;
    assert_eq!(spring.len(), 8, "{spring:?}");
    assert_eq!(spring[0], "2027-03-28T07:00:00Z");
    let whole = starts(
        &app,
        &u.token,
        &room,
        "2027-03-28T00:00:00Z",
        "2027-03-29T00:00:00Z",
        480,
    )
    .await;
    assert_eq!(whole, ["2027-03-28T07:00:00Z"]);
    // the fall-back Sunday: 09:00 CET = 08:00Z, still 8 hours
    pin(&app, "2027-10-20T10:07:30Z").await;
    let fall = starts(
        &app,
        &u.token,
        &room,
        "2027-10-31T00:00:00Z",
        "2027-11-01T00:00:00Z",
        60,
    )
    .await;
    assert_eq!(fall.len(), 8, "{fall:?}");
    assert_eq!(fall[0], "2027-10-31T08:00:00Z");
    assert!(starts(
        &app,
        &u.token,
        &room,
        "2027-10-31T00:00:00Z",
        "2027-11-01T00:00:00Z",
        540
    )
    .await
    .is_empty());
}

#[tokio::test]
async fn berlin_fall_back_sunday_window_from_01_to_04_is_four_hours() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-10-20T10:07:30Z").await;
    let u = app.user("+14155550603").await;
    let room = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 60,
               "opening_hours": {"sun": [["01:00", "04:00"]]}}),
    )
    .await;
    let (from, to) = ("2027-10-30T12:00:00Z", "2027-10-31T12:00:00Z");
    // 01:00 CEST, 02:00 CEST, 02:00 CET (again), 03:00 CET
    assert_eq!(
        starts(&app, &u.token, &room, from, to, 60).await,
        [
            "2027-10-30T23:00:00Z",
            "2027-10-31T00:00:00Z",
            "2027-10-31T01:00:00Z",
            "2027-10-31T02:00:00Z"
        ]
    );
    assert_eq!(
        starts(&app, &u.token, &room, from, to, 240).await,
        ["2027-10-30T23:00:00Z"]
    );
    let b = booked(
        &app,
        &u,
        &room,
        "2027-10-31T01:00:00+02:00",
        "2027-10-31T04:00:00+01:00",
    )
    .await;
    assert_eq!(b["start"], "2027-10-30T23:00:00Z");
    assert_eq!(b["end"], "2027-10-31T03:00:00Z");
}

#[tokio::test]
async fn new_york_dst_sundays_in_both_directions_have_their_true_length() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550604").await;
    let room = resource_id(
        &app,
        json!({"timezone": "America/New_York", "slot_minutes": 60,
               "opening_hours": {"sun": [["01:00", "04:00"]]}}),
    )
    .await;
    // spring forward 2027-03-14: 01:00 EST = 06:00Z, 03:00 EDT = 07:00Z, 04:00 EDT = 08:00Z
    pin(&app, "2027-03-01T10:07:30Z").await;
    assert_eq!(
        starts(
            &app,
            &u.token,
            &room,
            "2027-03-14T00:00:00Z",
            "2027-03-15T00:00:00Z",
            60
        )
        .await,
        ["2027-03-14T06:00:00Z", "2027-03-14T07:00:00Z"]
    );
    refused(
        &app,
        &u,
        &room,
        "2027-03-14T08:00:00Z",
        "2027-03-14T09:00:00Z",
        "start",
    )
    .await;
    // fall back 2027-11-07: 01:00 EDT = 05:00Z ... 04:00 EST = 09:00Z
    pin(&app, "2027-10-25T10:07:30Z").await;
    assert_eq!(
        starts(
            &app,
            &u.token,
            &room,
            "2027-11-07T00:00:00Z",
            "2027-11-08T00:00:00Z",
            60
        )
        .await,
        [
            "2027-11-07T05:00:00Z",
            "2027-11-07T06:00:00Z",
            "2027-11-07T07:00:00Z",
            "2027-11-07T08:00:00Z"
        ]
    );
    assert_eq!(
        starts(
            &app,
            &u.token,
            &room,
            "2027-11-07T00:00:00Z",
            "2027-11-08T00:00:00Z",
            240
        )
        .await,
        ["2027-11-07T05:00:00Z"]
    );
    booked(
        &app,
        &u,
        &room,
        "2027-11-07T01:00:00-04:00",
        "2027-11-07T04:00:00-05:00",
    )
    .await;
}

/// Berlin's local wall-clock minute of the day around 2027-03-28 (CET until
/// 01:00Z, CEST after).
fn berlin_spring_local_minute(t: DateTime<Utc>) -> i64 {
    let offset = if t < self::t("2027-03-28T01:00:00Z") {
        60
    } else {
        120
    };
    (t + Duration::minutes(offset))
        .time()
        .signed_duration_since(chrono::NaiveTime::MIN)
        .num_minutes()
}

#[tokio::test]
async fn a_skipped_local_time_is_never_offered_and_window_edges_inside_the_jump_close_at_it() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-03-20T10:07:30Z").await;
    let u = app.user("+14155550605").await;
    let always = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 30}),
    )
    .await;
    // local midnight (23:00Z) to 05:00 CEST (03:00Z) is 4 real hours: 8 half hours
    let all = starts(
        &app,
        &u.token,
        &always,
        "2027-03-27T23:00:00Z",
        "2027-03-28T03:00:00Z",
        30,
    )
    .await;
    assert_eq!(all.len(), 8, "{all:?}");
    for s in &all {
        let m = berlin_spring_local_minute(t(s));
        assert!(
            !(120..180).contains(&m),
            "{s} is 02:xx local, a time that does not exist"
        );
    }
    // A window that closes at the skipped 02:30 closes when the clock jumps
    // (03:00 CEST = 01:00Z); 03:00-03:30 CEST is after closing time.
    let closes_in_gap = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 30,
               "opening_hours": {"sun": [["01:00", "02:30"]]}}),
    )
    .await;
    assert_eq!(
        starts(
            &app,
            &u.token,
            &closes_in_gap,
            "2027-03-27T12:00:00Z",
            "2027-03-28T12:00:00Z",
            30
        )
        .await,
        ["2027-03-28T00:00:00Z", "2027-03-28T00:30:00Z"]
    );
    refused(
        &app,
        &u,
        &closes_in_gap,
        "2027-03-28T03:00:00+02:00",
        "2027-03-28T03:30:00+02:00",
        "start",
    )
    .await;
    // A window that opens at the skipped 02:30 opens when the clock jumps.
    let opens_in_gap = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 30,
               "opening_hours": {"sun": [["02:30", "04:00"]]}}),
    )
    .await;
    assert_eq!(
        starts(
            &app,
            &u.token,
            &opens_in_gap,
            "2027-03-27T12:00:00Z",
            "2027-03-28T12:00:00Z",
            30
        )
        .await,
        ["2027-03-28T01:00:00Z", "2027-03-28T01:30:00Z"]
    );
    booked(
        &app,
        &u,
        &opens_in_gap,
        "2027-03-28T03:00:00+02:00",
        "2027-03-28T04:00:00+02:00",
    )
    .await;
}

#[tokio::test]
async fn a_window_opening_at_a_repeated_local_time_opens_at_its_first_occurrence() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-10-20T10:07:30Z").await;
    let u = app.user("+14155550606").await;
    let room = resource_id(
        &app,
        json!({"timezone": "Europe/Berlin", "slot_minutes": 60,
               "opening_hours": {"sun": [["02:00", "05:00"]]}}),
    )
    .await;
    // 02:00 CEST (00:00Z) to 05:00 CET (04:00Z): 4 real hours
    assert_eq!(
        starts(
            &app,
            &u.token,
            &room,
            "2027-10-30T12:00:00Z",
            "2027-10-31T12:00:00Z",
            60
        )
        .await,
        [
            "2027-10-31T00:00:00Z",
            "2027-10-31T01:00:00Z",
            "2027-10-31T02:00:00Z",
            "2027-10-31T03:00:00Z"
        ]
    );
    booked(
        &app,
        &u,
        &room,
        "2027-10-31T02:00:00+02:00",
        "2027-10-31T02:00:00+01:00",
    )
    .await;
}
