//! A resource's rules over HTTP: daylight-saving days, the slot grid counted
//! from local midnight, durations, notice and advance windows (with the
//! server's injectable clock), opening hours, buffers and capacity under
//! concurrency, and who sees and changes bookings on a resource (staff).

use crate::helpers::{TestApp, TestUser};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// An instant from RFC 3339 text.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

/// An instant as the API writes it (`2027-03-28T01:00:00Z`).
pub fn z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Pin the server's clock. Pinned instants sit 7.5 minutes off every
/// 15-minute instant, so the clock (which keeps ticking) crosses no grid
/// boundary while a test runs.
pub async fn pin(app: &TestApp, now: &str) {
    app.set_clock(t(now)).await;
}

/// Create a resource and return its id.
pub async fn resource_id(app: &TestApp, fields: Value) -> String {
    app.resource(fields).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// One offered slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub remaining: i64,
}

/// GET availability; the raw response.
pub async fn availability_response(
    app: &TestApp,
    token: &str,
    resource: &str,
    query: &[(&str, String)],
) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v1/resources/{resource}/availability")))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .expect("availability")
}

/// GET availability for [from, to) and a duration; the slots offered.
pub async fn offered(
    app: &TestApp,
    token: &str,
    resource: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    minutes: Option<i64>,
) -> Vec<Offered> {
    let mut q = vec![("from", z(from)), ("to", z(to))];
    if let Some(m) = minutes {
        q.push(("duration_minutes", m.to_string()));
    }
    let resp = availability_response(app, token, resource, &q).await;
    assert_eq!(resp.status(), 200, "availability {q:?}");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["resource_id"], resource);
    body["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| Offered {
            start: t(s["start"].as_str().expect("start")),
            end: t(s["end"].as_str().expect("end")),
            remaining: s["remaining"].as_i64().expect("remaining"),
        })
        .collect()
}

/// The starts of the slots offered.
pub async fn starts(
    app: &TestApp,
    token: &str,
    resource: &str,
    from: &str,
    to: &str,
    minutes: i64,
) -> Vec<String> {
    offered(app, token, resource, t(from), t(to), Some(minutes))
        .await
        .into_iter()
        .map(|s| {
            assert_eq!(s.end - s.start, Duration::minutes(minutes), "{s:?}");
            z(s.start)
        })
        .collect()
}

/// Status, problem code and first error field of a response.
pub async fn outcome(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Book and expect a 422 naming `field`.
async fn refused(app: &TestApp, u: &TestUser, room: &str, s: &str, e: &str, field: &str) {
    let (status, p) = outcome(app.book(u, room, s, e).await).await;
    assert_eq!(status, 422, "{s}..{e}: {p}");
    assert_eq!(p["code"], "validation_failed", "{s}..{e}: {p}");
    assert_eq!(p["errors"][0]["field"], field, "{s}..{e}: {p}");
}

/// Book and expect 201; the booking.
async fn booked(app: &TestApp, u: &TestUser, room: &str, s: &str, e: &str) -> Value {
    let (status, b) = outcome(app.book(u, room, s, e).await).await;
    assert_eq!(status, 201, "{s}..{e}: {b}");
    b
}

fn path_of(b: &Value) -> String {
    format!("/v1/bookings/{}", b["id"].as_str().expect("id"))
}

// ---------------------------------------------------------------------------
// Daylight-saving days
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Grid, durations, notice and advance
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Opening hours
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Buffers and capacity under concurrency
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Staff: who sees and changes a booking on a resource
// ---------------------------------------------------------------------------

struct Staffed {
    app: TestApp,
    a: TestUser,
    b: TestUser,
    owner1: TestUser,
    owner2: TestUser,
    r1: String,
    r2: String,
}

async fn staffed() -> Staffed {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let a = app.user("+14155550630").await;
    let b = app.user("+14155550631").await;
    let owner1 = app.user("+14155550632").await;
    let owner2 = app.user("+14155550633").await;
    let r1 = resource_id(&app, json!({"name": "R1", "owner_id": owner1.id})).await;
    let r2 = resource_id(&app, json!({"name": "R2", "owner_id": owner2.id})).await;
    Staffed {
        app,
        a,
        b,
        owner1,
        owner2,
        r1,
        r2,
    }
}

async fn listed(app: &TestApp, token: &str, resource: &str) -> Vec<String> {
    let resp = app
        .get(token, &format!("/v1/bookings?resource_id={resource}"))
        .await;
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.expect("json");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn staff_see_and_cancel_bookings_on_their_resource_but_cannot_move_them() {
    let Staffed {
        app,
        a,
        b,
        owner1,
        owner2,
        r1,
        r2,
    } = staffed().await;
    let service = app.service_token();
    let first = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T09:00:00Z",
        "2027-06-03T10:00:00Z",
    )
    .await;
    let second = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T11:00:00Z",
        "2027-06-03T12:00:00Z",
    )
    .await;
    let third = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T13:00:00Z",
        "2027-06-03T14:00:00Z",
    )
    .await;
    // and one on R2 that nobody but A and owner2 sees
    booked(
        &app,
        &a,
        &r2,
        "2027-06-03T15:00:00Z",
        "2027-06-03T16:00:00Z",
    )
    .await;
    let id = first["id"].as_str().expect("id").to_string();
    let p = path_of(&first);
    let hist = format!("{p}/history");
    let moved = json!({"start": "2027-06-03T09:30:00Z", "end": "2027-06-03T10:30:00Z"});

    // list with resource_id = R1
    assert!(listed(&app, &a.token, &r1).await.contains(&id));
    assert!(listed(&app, &owner1.token, &r1).await.contains(&id));
    assert_eq!(listed(&app, &owner1.token, &r1).await.len(), 3);
    assert!(listed(&app, &service, &r1).await.contains(&id));
    assert!(listed(&app, &b.token, &r1).await.is_empty());
    assert!(listed(&app, &owner2.token, &r1).await.is_empty());
    assert_eq!(listed(&app, &owner2.token, &r2).await.len(), 1);
    assert!(listed(&app, &owner1.token, &r2).await.is_empty());
    // without resource_id a list is one's own bookings only
    let own: Value = app
        .get(&owner1.token, "/v1/bookings")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(own["items"].as_array().expect("items").len(), 0);

    // get and history
    for (who, token, want) in [
        ("A", &a.token, 200),
        ("owner1", &owner1.token, 200),
        ("service", &service, 200),
        ("B", &b.token, 404),
        ("owner2", &owner2.token, 404),
    ] {
        assert_eq!(app.get(token, &p).await.status(), want, "{who} get");
        assert_eq!(app.get(token, &hist).await.status(), want, "{who} history");
    }

    // reschedule: only the customer (and the service role)
    for (who, token, want) in [
        ("B", &b.token, 404),
        ("owner2", &owner2.token, 404),
        ("owner1", &owner1.token, 403),
    ] {
        let (status, body) = outcome(app.patch(token, &p, moved.clone()).await).await;
        assert_eq!(status, want, "{who} reschedule: {body}");
    }
    let still: Value = app.get(&a.token, &p).await.json().await.expect("json");
    assert_eq!(
        (still["start"].clone(), still["version"].clone()),
        (json!("2027-06-03T09:00:00Z"), json!(1))
    );
    let (status, body) = outcome(app.patch(&a.token, &p, moved.clone()).await).await;
    assert_eq!(status, 200, "A reschedules: {body}");
    assert_eq!(body["start"], "2027-06-03T09:30:00Z");

    // cancel: B and owner2 cannot, owner1 can
    assert_eq!(app.delete(&b.token, &p).await.status(), 404);
    assert_eq!(app.delete(&owner2.token, &p).await.status(), 404);
    let (status, body) = outcome(app.delete(&owner1.token, &p).await).await;
    assert_eq!(status, 200, "owner1 cancels: {body}");
    assert_eq!(body["status"], "cancelled");
    let h: Value = app.get(&a.token, &hist).await.json().await.expect("json");
    let last = &h["items"][2];
    assert_eq!(last["action"], "cancelled");
    assert_eq!(last["actor_id"], owner1.id.to_string());

    // A cancels their own
    assert_eq!(app.delete(&a.token, &path_of(&second)).await.status(), 200);
    // the service role reads, moves and cancels
    let p3 = path_of(&third);
    assert_eq!(
        app.get(&service, &format!("{p3}/history")).await.status(),
        200
    );
    let (status, body) = outcome(
        app.patch(
            &service,
            &p3,
            json!({"start": "2027-06-03T13:30:00Z", "end": "2027-06-03T14:30:00Z"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "service reschedules: {body}");
    let (status, body) = outcome(app.delete(&service, &p3).await).await;
    assert_eq!(status, 200, "service cancels: {body}");
    assert_eq!(body["status"], "cancelled");
    let admin_list: Value = app
        .get(
            &service,
            &format!("/v1/admin/bookings?resource_id={r1}&user_id={}", a.id),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(admin_list["items"].as_array().expect("items").len(), 3);
    assert_eq!(app.confirmed_count(&r1).await, 0);
}

async fn scoped(conn: &mut PgConnection, user: Uuid) -> sqlx::Transaction<'_, sqlx::Postgres> {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(
        "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
    )
    .bind(json!({"sub": user, "role": "authenticated"}).to_string())
    .execute(&mut *tx)
    .await
    .expect("scope");
    tx
}

#[tokio::test]
async fn raw_sql_as_staff_sees_and_cancels_but_cannot_move_and_other_staff_see_nothing() {
    let Staffed {
        app,
        a,
        owner1,
        owner2,
        r1,
        ..
    } = staffed().await;
    let bk = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T09:00:00Z",
        "2027-06-03T10:00:00Z",
    )
    .await;
    let id = Uuid::parse_str(bk["id"].as_str().expect("id")).expect("uuid");
    let mut conn = app.login_conn().await;

    // owner of R2: nothing visible, nothing changes
    let mut tx = scoped(&mut conn, owner2.id).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.bookings")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(n, 0);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.booking_events")
        .fetch_one(&mut *tx)
        .await
        .expect("events");
    assert_eq!(events, 0);
    let err = sqlx::query("UPDATE booking.bookings SET status = 'cancelled' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect_err("direct writes are refused");
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.expect("rollback");
    let mut tx = scoped(&mut conn, owner2.id).await;
    let out: Value = sqlx::query_scalar("SELECT to_jsonb(r) FROM booking.cancel_booking($1) r")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .expect("cancel fn");
    assert_eq!(out["outcome"], "not_found");
    tx.rollback().await.expect("rollback");

    // owner of R1: sees the row and its history
    let mut tx = scoped(&mut conn, owner1.id).await;
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM booking.bookings WHERE id = $1")
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .expect("select");
    assert_eq!(seen, vec![a.id]);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM booking.booking_events WHERE booking_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .expect("events");
    assert_eq!(events, 1);
    // moving it directly is refused
    let err = sqlx::query(
        "UPDATE booking.bookings SET period = tstzrange(lower(period) + interval '1 hour', upper(period) + interval '1 hour') \
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .expect_err("staff moves a booking");
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.expect("rollback");
    // the move through the function is refused as well
    let mut tx = scoped(&mut conn, owner1.id).await;
    let out: Value = sqlx::query_scalar(
        "SELECT to_jsonb(r) FROM booking.reschedule_booking($1, '2027-06-03T11:00:00Z', '2027-06-03T12:00:00Z') r",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .expect("reschedule fn");
    assert_eq!(out["outcome"], "forbidden");
    tx.rollback().await.expect("rollback");
    // cancelling works
    let mut tx = scoped(&mut conn, owner1.id).await;
    let out: Value = sqlx::query_scalar("SELECT to_jsonb(r) FROM booking.cancel_booking($1) r")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .expect("cancel fn");
    assert_eq!(out["outcome"], "updated");
    tx.commit().await.expect("commit");
    conn.close().await.expect("close");

    let now: Value = app
        .get(&a.token, &path_of(&bk))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(now["status"], "cancelled");
    assert_eq!(now["start"], "2027-06-03T09:00:00Z");
    let h: Value = app
        .get(&a.token, &format!("{}/history", path_of(&bk)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(h["items"][1]["actor_id"], owner1.id.to_string());
}
