//! Helpers about a resource's rules: instants, the clock, availability,
//! outcomes of a booking attempt.

use super::{TestApp, TestUser};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;

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
pub async fn refused(app: &TestApp, u: &TestUser, room: &str, s: &str, e: &str, field: &str) {
    let (status, p) = outcome(app.book(u, room, s, e).await).await;
    assert_eq!(status, 422, "{s}..{e}: {p}");
    assert_eq!(p["code"], "validation_failed", "{s}..{e}: {p}");
    assert_eq!(p["errors"][0]["field"], field, "{s}..{e}: {p}");
}

/// Book and expect 201; the booking.
pub async fn booked(app: &TestApp, u: &TestUser, room: &str, s: &str, e: &str) -> Value {
    let (status, b) = outcome(app.book(u, room, s, e).await).await;
    assert_eq!(status, 201, "{s}..{e}: {b}");
    b
}

pub fn path_of(b: &Value) -> String {
    format!("/v1/bookings/{}", b["id"].as_str().expect("id"))
}
