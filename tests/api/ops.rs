//! Operations: metrics, request ids, every limit, the documentation page,
//! graceful shutdown with requests in flight, readiness that follows the
//! database.

use booking::startup::Application;
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::helpers::{at, server_login_options, test_config, TestApp, JWT_SECRET};

// ---------------------------------------------------------------- metrics

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

// ------------------------------------------------------------- request id

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii")
        .to_string()
}

#[tokio::test]
async fn a_request_id_is_generated_when_absent_and_every_problem_body_carries_it() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let id = header(&r, "x-request-id");
    assert!(
        id.len() >= 16 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    // fresh per request
    let r2 = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("get");
    assert_ne!(header(&r2, "x-request-id"), id);

    // problems from handlers, extractors, the fallback and the body limit
    let user = app.user("+14155550103").await;
    let cases: Vec<reqwest::RequestBuilder> = vec![
        app.client.get(app.url("/v1/bookings")),   // 401
        app.client.get(app.url("/no/such/route")), // 404 fallback
        app.client
            .get(app.url("/v1/bookings/not-a-uuid"))
            .bearer_auth(&user.token), // 400
        app.client
            .post(app.url("/v1/bookings"))
            .bearer_auth(&user.token)
            .json(&json!({"resource_id": uuid::Uuid::new_v4()})), // 422
        app.client.put(app.url("/v1/bookings")),   // 405
        app.client
            .post(app.url("/v1/bookings"))
            .bearer_auth(&user.token)
            .header("content-type", "application/json")
            .body(vec![b' '; 70 * 1024]), // 413
    ];
    for req in cases {
        let r = req.send().await.expect("send");
        let status = r.status();
        assert!(status.is_client_error(), "{status}");
        let id = header(&r, "x-request-id");
        assert_eq!(header(&r, "content-type"), "application/problem+json");
        let p: Value = r.json().await.expect("problem");
        assert_eq!(p["request_id"], id.as_str(), "{status}: {p}");
        assert_eq!(p["status"], status.as_u16());
    }
}

#[tokio::test]
async fn a_sane_client_request_id_is_echoed_and_an_insane_one_replaced() {
    let app = TestApp::spawn().await;
    let user = app.user("+14155550104").await;
    let room = app.room().await;
    let long_ok = "a".repeat(128);
    for sent in ["req-1_2.3:4", long_ok.as_str()] {
        let r = app
            .client
            .post(app.url("/v1/bookings"))
            .bearer_auth(&user.token)
            .header("x-request-id", sent)
            .json(&json!({"resource_id": room, "start": "garbage", "end": "garbage"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 422);
        assert_eq!(header(&r, "x-request-id"), sent);
        let p: Value = r.json().await.expect("json");
        assert_eq!(p["request_id"], sent);
    }
    let too_long = "a".repeat(129);
    for sent in [too_long.as_str(), "has space", "semi;colon", "<script>"] {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", sent)
            .send()
            .await
            .expect("send");
        let got = header(&r, "x-request-id");
        assert_ne!(got, sent);
        assert!(got.chars().all(|c| c.is_ascii_alphanumeric()), "{got}");
    }
    // success responses echo it too
    let r = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(&user.token)
        .header("x-request-id", "me-please")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-request-id"), "me-please");
}

// ----------------------------------------------------------------- limits

async fn assert_problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "expected {status} {code}");
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    let p: Value = r.json().await.expect("problem");
    assert_eq!(p["code"], code, "{p}");
    p
}

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

// ------------------------------------------------------------------ docs

#[tokio::test]
async fn docs_answer_200_html_and_load_their_assets_from_the_binary() {
    let mut app = TestApp::spawn().await;
    // no redirects followed: /docs itself is the page
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut page = String::new();
    for path in ["/docs", "/docs/", "/docs/index.html"] {
        let r = client.get(app.url(path)).send().await.expect("docs");
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            header(&r, "content-type").starts_with("text/html"),
            "{path}"
        );
        page = r.text().await.expect("html");
        assert!(page.contains("swagger-ui"), "{path}");
        assert!(page.contains("<base href=\"/docs/\""), "{path}");
    }
    // every asset the page names is served, with a sensible type
    let assets: Vec<String> = page
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png"))
        .map(|s| s.trim_start_matches("./").to_string())
        .collect();
    assert!(assets.len() >= 5, "{assets:?}");
    for a in &assets {
        let r = client
            .get(app.url(&format!("/docs/{a}")))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{a}");
        let ct = header(&r, "content-type");
        let want = match a.rsplit('.').next() {
            Some("js") => "javascript",
            Some("css") => "text/css",
            _ => "image/png",
        };
        assert!(ct.contains(want), "{a}: {ct}");
        assert!(!r.bytes().await.expect("bytes").is_empty(), "{a}");
    }
    let bundle = client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .expect("bundle");
    assert!(
        bundle.bytes().await.expect("bytes").len() > 100_000,
        "the real bundle"
    );
    // the UI is pointed at our document, which is served
    let init = client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("init")
        .text()
        .await
        .expect("text");
    assert!(init.contains("\"/openapi.json\""), "{init}");
    let r = client
        .get(app.url("/docs/no-such-file.js"))
        .send()
        .await
        .expect("404");
    assert_problem(r, 404, "not_found").await;
    app.stop().await;
}

// -------------------------------------------------------- graceful stop

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_finishes_requests_in_flight_and_every_201_is_stored() {
    const N: usize = 16;
    let mut app = TestApp::spawn_with(&[("BOOKING_DB_POOL_SIZE", "20")]).await;
    let users = app.users(N).await;
    let room = app.room().await;

    // Hold the resource's row: every create then waits inside PostgreSQL (on
    // its foreign-key check), i.e. in flight in the server, until we let go.
    let mut blocker = app.admin_conn().await;
    let mut tx = blocker.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM booking.resources WHERE id = $1::uuid FOR UPDATE")
        .bind(&room)
        .execute(&mut *tx)
        .await
        .expect("lock the resource");

    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let req = app
                .client
                .post(app.url("/v1/bookings"))
                .bearer_auth(&u.token)
                .json(&json!({"resource_id": room, "start": at(1, i as u32, 0), "end": at(1, i as u32, 30)}));
            tokio::spawn(async move {
                let r = req.send().await?;
                let status = r.status().as_u16();
                let body: Value = r.json().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
        })
        .collect();

    // wait until they are all waiting on the lock
    let mut watcher = app.admin_conn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&app.db_name)
        .fetch_one(&mut watcher)
        .await
        .expect("pg_stat_activity");
        if waiting as usize >= N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {waiting} of {N} creates reached the database"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // stop while they wait, then let them go
    let addr = app.addr.clone();
    let stopper = tokio::spawn(async move {
        app.stop().await;
        app
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // no new connections once stopping
    let late = reqwest::Client::new()
        .get(format!("{addr}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        late.is_err(),
        "a new connection was accepted while stopping"
    );
    tx.commit().await.expect("release");

    let app = tokio::time::timeout(Duration::from_secs(30), stopper)
        .await
        .expect("the server stopped within 30 s")
        .expect("stopper");
    let mut ids = Vec::new();
    for t in tasks {
        let (status, body) = t
            .await
            .expect("task")
            .expect("no connection error for a request sent before the stop");
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    let mut c = app.admin_conn().await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM booking.bookings WHERE id::text = ANY($1) AND status = 'confirmed'",
    )
    .bind(&ids)
    .fetch_one(&mut c)
    .await
    .expect("count");
    assert_eq!(stored as usize, ids.len());
    assert_eq!(ids.len(), N);
    c.close().await.expect("close");
    watcher.close().await.expect("close");
    blocker.close().await.expect("close");
}

// ------------------------------------------------- readiness follows the db

/// Where PostgreSQL really is.
#[derive(Clone)]
enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Upstream {
    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Upstream::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
            Upstream::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a).await?),
        })
    }
}

/// A unix-socket proxy in front of the test PostgreSQL that can be cut (every
/// connection closed, new ones refused) and restored.
struct Proxy {
    dir: tempfile::TempDir,
    cut: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: &sqlx::postgres::PgConnectOptions) -> Proxy {
        let port = target.get_port();
        let upstream = match target.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            None if target.get_host().starts_with('/') => {
                Upstream::Unix(Path::new(target.get_host()).join(format!(".s.PGSQL.{port}")))
            }
            None => Upstream::Tcp(format!("{}:{port}", target.get_host())),
        };
        let dir = tempfile::Builder::new()
            .prefix("pgproxy")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let listener = tokio::net::UnixListener::bind(dir.path().join(format!(".s.PGSQL.{port}")))
            .expect("bind proxy socket");
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let c = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *c.borrow() {
                    continue; // dropped: the database "is gone"
                }
                let upstream = upstream.clone();
                let mut rx = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = upstream.connect().await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { dir, cut, task }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Poll `/readyz` until it answers `want`; its Retry-After presence and body.
async fn wait_for_readyz(
    client: &reqwest::Client,
    base: &str,
    want: u16,
    within: Duration,
) -> (bool, Value) {
    let deadline = Instant::now() + within;
    loop {
        let r = client
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("readyz answers");
        let status = r.status().as_u16();
        let retry = r.headers().contains_key("retry-after");
        let body: Value = r.json().await.expect("json");
        if status == want {
            return (retry, body);
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_database_is_unreachable_and_200_again_when_it_returns() {
    let app = TestApp::spawn().await; // owns the database
    let direct = server_login_options(&app.db_name);
    let proxy = Proxy::start(&direct).await;
    let config = test_config(&[]);
    let server = Application::build(
        &config,
        direct.clone().socket(proxy.dir.path()),
        JWT_SECRET.as_bytes(),
    )
    .await
    .expect("build");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    wait_for_readyz(&client, &base, 200, Duration::from_secs(10)).await;
    // the server is healthy through the proxy; now the database goes away
    proxy.set_cut(true);
    let (retry, body) = wait_for_readyz(&client, &base, 503, Duration::from_secs(10)).await;
    assert!(retry, "503 without Retry-After");
    assert_eq!(body["code"], "unavailable");
    // liveness does not depend on the database
    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    // it comes back: ready again, same process, no restart
    proxy.set_cut(false);
    wait_for_readyz(&client, &base, 200, Duration::from_secs(15)).await;
    let user = app.user("+14155550111").await;
    let r = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 200);

    let _ = stop.send(());
    running
        .await
        .expect("join")
        .expect("server stopped cleanly");
}
