//! Metrics: booking outcomes and requests counted by route template, in the
//! Prometheus text format.

use serde_json::Value;
use std::collections::BTreeMap;

use crate::helpers::{at, TestApp};

/// One sample of the Prometheus text format: name and sorted labels.
type Sample = (String, BTreeMap<String, String>);

/// Parse the exposition format (label values may contain `{`, `}` and `,`).
fn parse_metrics(text: &str) -> Vec<(Sample, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or(rest);
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                loop {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    if key.is_empty() {
                        break;
                    }
                    assert_eq!(chars.next(), Some('"'), "bad metrics line {line}");
                    let mut val = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some(n) = chars.next() {
                                    val.push(n);
                                }
                            }
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.insert(key.trim_start_matches(',').to_string(), val);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_string(), labels)
            }
        };
        out.push(((name, labels), value));
    }
    out
}

async fn scrape(app: &TestApp) -> (String, Vec<(Sample, f64)>) {
    let r = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/plain"));
    let text = r.text().await.expect("text");
    let parsed = parse_metrics(&text);
    (text, parsed)
}

/// Sum of the samples named `name` whose labels include `want`.
fn value(samples: &[(Sample, f64)], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, l), _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test]
async fn metrics_count_booking_outcomes_and_requests_by_route_template() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550101").await,
        app.user("+14155550102").await,
    );
    let room = app.room().await;
    // the recorder is process-wide and other tests run alongside: compare deltas
    let (_, before) = scrape(&app).await;

    let r = app.book(&a, &room, &at(3, 9, 0), &at(3, 10, 0)).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = app.book(&b, &room, &at(3, 9, 30), &at(3, 10, 30)).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        app.get(&a.token, &format!("/v1/bookings/{id}"))
            .await
            .status(),
        200
    );

    let (text, after) = scrape(&app).await;
    let delta =
        |name: &str, want: &[(&str, &str)]| value(&after, name, want) - value(&before, name, want);
    assert!(delta("booking_attempts_total", &[("outcome", "created")]) >= 1.0);
    assert!(delta("booking_attempts_total", &[("outcome", "slot_taken")]) >= 1.0);
    let post = [("method", "POST"), ("route", "/v1/bookings")];
    assert!(
        delta(
            "http_requests_total",
            &[post[0], post[1], ("status", "2xx")]
        ) >= 1.0
    );
    assert!(
        delta(
            "http_requests_total",
            &[post[0], post[1], ("status", "4xx")]
        ) >= 1.0
    );
    // labelled by the route template, never the concrete path
    let get = [
        ("method", "GET"),
        ("route", "/v1/bookings/{id}"),
        ("status", "2xx"),
    ];
    assert!(delta("http_requests_total", &get) >= 1.0);
    assert!(!text.contains(&id), "a booking id leaked into a label");
    assert!(delta("http_request_duration_seconds_count", &get) >= 1.0);
    assert!(
        value(
            &after,
            "http_request_duration_seconds_bucket",
            &[get[0], get[1], ("le", "+Inf")]
        ) >= 1.0
    );
    // the pool gauges and the build info are there
    for g in [
        "db_pool_connections",
        "db_pool_idle_connections",
        "db_pool_busy_connections",
    ] {
        assert!(after.iter().any(|((n, _), _)| n == g), "no {g}");
    }
    assert_eq!(
        value(
            &after,
            "booking_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // label sets are small: a status class, not a code
    for ((n, l), _) in &after {
        if n == "http_requests_total" {
            let s = &l["status"];
            assert!(s.len() == 3 && s.ends_with("xx"), "status label {s}");
        }
    }
}

#[tokio::test]
async fn unmatched_paths_share_one_route_label() {
    let mut app = TestApp::spawn().await;
    let probe = format!("/no/such/{}", uuid::Uuid::new_v4());
    let r = app.client.get(app.url(&probe)).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let (text, after) = scrape(&app).await;
    assert!(!text.contains(&probe));
    assert!(value(&after, "http_requests_total", &[("route", "unmatched")]) >= 1.0);
    app.stop().await;
}
