//! Webhooks, end to end: a real receiver on loopback, real PostgreSQL, the
//! server's own worker. Signatures are checked by the test's verifier,
//! written from the Standard Webhooks specification.

use crate::helpers::receiver::{valid_signatures, Receiver};
use crate::helpers::rules::path_of;
use crate::helpers::{admin_url, at, door, login_url, TestApp, JWT_SECRET};
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Verify with the `standardwebhooks` package from PyPI (the specification's
/// reference library). Skipped where Python lacks it, except in CI (CI=true).
fn standardwebhooks_verifies(secret: &str, r: &crate::helpers::receiver::Received) {
    let script = r#"
import sys, json, standardwebhooks
secret, wid, ts, sig = sys.argv[1:5]
body = sys.stdin.buffer.read()
standardwebhooks.Webhook(secret).verify(body, {"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": sig})
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, secret, &r.id, &r.timestamp, &r.signature])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut i) = c.stdin.take() {
                i.write_all(&r.body)?;
            }
            c.wait_with_output()
        });
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named") => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must install standardwebhooks"
            );
        }
        Ok(o) => panic!(
            "standardwebhooks refused: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => assert!(std::env::var("CI").is_err(), "python3: {e}"),
    }
}

/// Subscribe `url`; returns (endpoint id, secret).
async fn subscribe(app: &TestApp, body: Value) -> (String, String) {
    let r = app
        .client
        .post(app.url("/v1/admin/webhooks"))
        .bearer_auth(app.service_token())
        .json(&body)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201, "subscribe");
    let e: Value = r.json().await.expect("endpoint");
    (
        e["id"].as_str().expect("id").to_string(),
        e["secret"].as_str().expect("secret").to_string(),
    )
}

async fn book(app: &TestApp, token: &str, room: &str, s: &str, e: &str) -> Value {
    let r = app
        .client
        .post(app.url("/v1/bookings"))
        .bearer_auth(token)
        .json(&json!({"resource_id": room, "start": s, "end": e}))
        .send()
        .await
        .expect("book");
    assert_eq!(r.status(), 201);
    r.json().await.expect("booking")
}

/// Wait until `n` attempts are recorded (they are, just after they are made).
async fn recorded(app: &TestApp, n: i64) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got: i64 = admin_scalar(app, "SELECT count(*) FROM booking.webhook_attempts").await;
        if got >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} attempts not recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_scalar<T>(app: &TestApp, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    let mut c = app.admin_conn().await;
    let v: T = sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql);
    sqlx::Connection::close(c).await.expect("close");
    v
}

#[tokio::test]
async fn create_reschedule_cancel_arrive_in_order_signed_to_the_spec() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(&app, json!({"url": rx.url, "description": "all events"})).await;
    let u = app.user("+14155550101").await;
    let room = app.room().await;
    let b = book(&app, &u.token, &room, &at(2, 10, 0), &at(2, 11, 0)).await;
    let path = path_of(&b);
    let r = app
        .patch(
            &u.token,
            &path,
            json!({"start": at(2, 12, 0), "end": at(2, 13, 0)}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.delete(&u.token, &path).await.status(), 200);

    let got = rx.wait_for(3, WAIT).await;
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    let kinds: Vec<&str> = bodies
        .iter()
        .map(|b| b["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "booking.created",
            "booking.rescheduled",
            "booking.cancelled"
        ]
    );
    let versions: Vec<i64> = bodies
        .iter()
        .map(|b| b["data"]["version"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(versions, [1, 2, 3], "in the order of the booking's version");
    for r in &got {
        assert_eq!(
            valid_signatures(&secret, r),
            1,
            "signed with the endpoint's secret"
        );
        assert_eq!(r.content_type, "application/json");
        let ts: i64 = r.timestamp.parse().expect("unix seconds");
        assert!(
            (Utc::now().timestamp() - ts).abs() < 60,
            "a current timestamp"
        );
        assert!(uuid::Uuid::parse_str(&r.id).is_ok(), "webhook-id: {}", r.id);
    }
    let ids: std::collections::HashSet<_> = got.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3, "one id per message");
    assert_eq!(bodies[0]["data"]["id"], b["id"]);
    assert_eq!(bodies[0]["data"]["start"], at(2, 10, 0));
    assert!(bodies[0]["data"].get("previous").is_none());
    assert_eq!(bodies[1]["data"]["start"], at(2, 12, 0));
    assert_eq!(bodies[1]["data"]["previous"]["start"], at(2, 10, 0));
    assert_eq!(bodies[1]["data"]["previous"]["status"], "confirmed");
    assert_eq!(bodies[2]["data"]["status"], "cancelled");
    assert_eq!(bodies[2]["data"]["previous"]["status"], "confirmed");
    assert!(bodies[0]["timestamp"].as_str().unwrap_or("").ends_with('Z'));
    // and Standard Webhooks' own Python library agrees
    for r in &got {
        standardwebhooks_verifies(&secret, r);
    }
    // a tampered body fails the same verifier
    let mut forged = got[0].clone();
    forged.body = br#"{"type":"booking.created"}"#.to_vec();
    assert_eq!(valid_signatures(&secret, &forged), 0);

    // the log shows every attempt
    let eps: Value = app
        .get(&app.service_token(), "/v1/admin/webhooks")
        .await
        .json()
        .await
        .expect("list");
    let id = eps["items"][0]["id"].as_str().expect("id").to_string();
    assert!(
        eps["items"][0].get("secret").is_none(),
        "secrets only when created or rotated"
    );
    recorded(&app, 3).await;
    let log: Value = app
        .get(
            &app.service_token(),
            &format!("/v1/admin/webhooks/{id}/deliveries?limit=2"),
        )
        .await
        .json()
        .await
        .expect("log");
    assert_eq!(log["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(log["items"][0]["status_code"], 200);
    assert_eq!(
        log["items"][0]["event"], "booking.cancelled",
        "newest first"
    );
    let next = log["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let rest: Value = app
        .get(
            &app.service_token(),
            &format!("/v1/admin/webhooks/{id}/deliveries?cursor={next}"),
        )
        .await
        .json()
        .await
        .expect("log");
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["items"][0]["event"], "booking.created");
    assert!(rest["next_cursor"].is_null());
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for m in [
        "booking_webhook_deliveries_total{outcome=\"delivered\"}",
        "booking_webhook_attempts_total",
        "booking_webhook_lag_seconds",
    ] {
        assert!(metrics.contains(m), "{m} missing from /metrics");
    }
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_the_same_id_and_body() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    rx.answer(&[503]);
    let (endpoint, _) =
        subscribe(&app, json!({"url": rx.url, "events": ["booking.created"]})).await;
    let u = app.user("+14155550102").await;
    let room = app.room().await;
    book(&app, &u.token, &room, &at(2, 10, 0), &at(2, 11, 0)).await;
    rx.wait_for(1, WAIT).await;
    recorded(&app, 1).await;
    // the retry is due ~5 s later (±20 %): move the database's clock past it
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.set_clock(Utc::now() + chrono::Duration::seconds(7))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].id, got[1].id, "the same webhook-id");
    assert_eq!(got[0].body, got[1].body, "an identical body");
    // attempts are recorded just after they are made: wait for the second
    let deadline = std::time::Instant::now() + WAIT;
    let log = loop {
        let log: Value = app
            .get(
                &app.service_token(),
                &format!("/v1/admin/webhooks/{endpoint}/deliveries"),
            )
            .await
            .json()
            .await
            .expect("log");
        if log["items"].as_array().map(Vec::len).unwrap_or(0) >= 2 {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second attempt was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let codes: Vec<i64> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["status_code"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(codes, [200, 503]);
    assert_eq!(log["items"][0]["attempt"], 2);

    // resend: the same id again, at once
    let resend = app
        .client
        .post(app.url(&format!(
            "/v1/admin/webhooks/{endpoint}/messages/{}/resend",
            got[0].id
        )))
        .bearer_auth(app.service_token())
        .send()
        .await
        .expect("resend");
    assert_eq!(resend.status(), 202);
    let again = rx.wait_for(3, WAIT).await;
    assert_eq!(again[2].id, got[0].id);
    assert_eq!(again[2].body, got[0].body);
    let missing = app
        .client
        .post(app.url(&format!(
            "/v1/admin/webhooks/{endpoint}/messages/{}/resend",
            uuid::Uuid::new_v4()
        )))
        .bearer_auth(app.service_token())
        .send()
        .await
        .expect("resend");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn after_the_last_retry_the_message_is_failed_and_410_disables_the_endpoint() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    rx.answer(&[500; 8]);
    let (endpoint, _) = subscribe(&app, json!({"url": rx.url})).await;
    let u = app.user("+14155550103").await;
    let room = app.room().await;
    book(&app, &u.token, &room, &at(3, 10, 0), &at(3, 11, 0)).await;
    // 8 attempts: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h apart (+20 %)
    let mut shift = chrono::Duration::zero();
    for n in 1..=8 {
        rx.wait_for(n, WAIT).await;
        recorded(&app, n as i64).await;
        shift += chrono::Duration::hours(13);
        app.set_clock(Utc::now() + shift).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.received().len(), 8, "no ninth attempt");
    let state: String = admin_scalar(&app, "SELECT state FROM booking.webhook_messages").await;
    assert_eq!(state, "failed");
    let ep: Value = app
        .get(
            &app.service_token(),
            &format!("/v1/admin/webhooks/{endpoint}"),
        )
        .await
        .json()
        .await
        .expect("endpoint");
    assert_eq!(
        ep["active"], true,
        "failures alone (less than the configured days) do not disable"
    );

    // 410 Gone disables it
    rx.answer(&[410]);
    book(&app, &u.token, &room, &at(12, 12, 0), &at(12, 13, 0)).await;
    rx.wait_for(9, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let ep: Value = app
            .get(
                &app.service_token(),
                &format!("/v1/admin/webhooks/{endpoint}"),
            )
            .await
            .json()
            .await
            .expect("endpoint");
        if ep["active"] == false {
            assert!(ep["disabled_reason"].as_str().unwrap_or("").contains("410"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "410 did not disable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    book(&app, &u.token, &room, &at(12, 14, 0), &at(12, 15, 0)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.received().len(), 9, "a disabled endpoint gets nothing");
    // re-enabled, it receives again
    let r = app
        .patch(
            &app.service_token(),
            &format!("/v1/admin/webhooks/{endpoint}"),
            json!({"active": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    book(&app, &u.token, &room, &at(12, 16, 0), &at(12, 17, 0)).await;
    rx.wait_for(10, WAIT).await;
}

#[tokio::test]
async fn endpoints_that_fail_for_days_are_disabled_when_so_configured() {
    let app = TestApp::spawn_with(&[("BOOKING_WEBHOOK_DISABLE_AFTER_DAYS", "1")]).await;
    let rx = Receiver::start().await;
    rx.answer(&[500; 8]);
    let (endpoint, _) = subscribe(&app, json!({"url": rx.url})).await;
    let u = app.user("+14155550104").await;
    let room = app.room().await;
    book(&app, &u.token, &room, &at(5, 10, 0), &at(5, 11, 0)).await;
    rx.wait_for(1, WAIT).await;
    recorded(&app, 1).await;
    app.set_clock(Utc::now() + chrono::Duration::hours(30))
        .await;
    rx.wait_for(2, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let active: bool = admin_scalar(
            &app,
            &format!("SELECT active FROM booking.webhook_endpoints WHERE id = '{endpoint}'"),
        )
        .await;
        if !active {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not disabled after a day of failures"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_new_one() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let (endpoint, old) = subscribe(&app, json!({"url": rx.url})).await;
    let r = app
        .client
        .post(app.url(&format!("/v1/admin/webhooks/{endpoint}/rotate-secret")))
        .bearer_auth(app.service_token())
        .send()
        .await
        .expect("rotate");
    assert_eq!(r.status(), 200);
    let new = r.json::<Value>().await.expect("json")["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_ne!(new, old);
    let u = app.user("+14155550105").await;
    let room = app.room().await;
    book(&app, &u.token, &room, &at(2, 10, 0), &at(2, 11, 0)).await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].signature.split(' ').count(),
        2,
        "two signatures during the overlap"
    );
    assert_eq!(valid_signatures(&new, &got[0]), 1);
    assert_eq!(valid_signatures(&old, &got[0]), 1);
    // a day later only the new secret signs
    app.set_clock(Utc::now() + chrono::Duration::hours(25))
        .await;
    book(&app, &u.token, &room, &at(4, 10, 0), &at(4, 11, 0)).await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[1].signature.split(' ').count(), 1);
    assert_eq!(valid_signatures(&new, &got[1]), 1);
}

#[tokio::test]
async fn a_rolled_back_or_refused_change_leaves_no_message() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    subscribe(&app, json!({"url": rx.url})).await;
    let u = app.user("+14155550106").await;
    let v = app.user("+14155550107").await;
    let room = app.room().await;
    // through the direct-SQL door, rolled back
    let mut c = app.login_conn().await;
    let mut tx = door(&mut c, "authenticated", Some(u.id)).await;
    let outcome: String = sqlx::query_scalar(&format!(
        "SELECT outcome FROM booking.create_booking('{room}', '{}', '{}')",
        at(2, 10, 0),
        at(2, 11, 0)
    ))
    .fetch_one(&mut *tx)
    .await
    .expect("create");
    assert_eq!(outcome, "created");
    tx.rollback().await.expect("rollback");
    // refused: the slot is taken
    book(&app, &u.token, &room, &at(2, 14, 0), &at(2, 15, 0)).await;
    let r = app
        .client
        .post(app.url("/v1/bookings"))
        .bearer_auth(&v.token)
        .json(&json!({"resource_id": room, "start": at(2, 14, 0), "end": at(2, 15, 0)}))
        .send()
        .await
        .expect("book");
    assert_eq!(r.status(), 409);
    // and the direct-SQL door, committed, does produce one
    let mut tx = door(&mut c, "authenticated", Some(v.id)).await;
    sqlx::query(&format!(
        "SELECT booking.create_booking('{room}', '{}', '{}')",
        at(2, 16, 0),
        at(2, 17, 0)
    ))
    .execute(&mut *tx)
    .await
    .expect("create");
    tx.commit().await.expect("commit");
    let got = rx.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.received().len(), 2, "exactly the two committed bookings");
    let starts: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["start"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(starts, [at(2, 14, 0), at(2, 16, 0)]);
    let n: i64 = admin_scalar(&app, "SELECT count(*) FROM booking.webhook_messages").await;
    assert_eq!(n, 2);

    // users see nothing of endpoints or messages, and cannot call the worker's functions
    for sql in [
        "SELECT count(*) FROM booking.webhook_endpoints",
        "SELECT count(*) FROM booking.webhook_messages",
        "SELECT count(*) FROM booking.webhook_attempts",
        "SELECT * FROM booking.webhook_claim(10, 60)",
    ] {
        let mut tx = door(&mut c, "authenticated", Some(u.id)).await;
        let e = sqlx::query(sql).execute(&mut *tx).await.expect_err(sql);
        assert!(e.to_string().contains("permission denied"), "{sql}: {e}");
    }
    // a claim as the service role from psql that is not the worker's is still bound by the lease
    sqlx::Connection::close(c).await.expect("close");
}

#[tokio::test]
async fn private_addresses_are_refused_at_subscription_and_at_delivery() {
    let app = TestApp::spawn_with(&[("BOOKING_WEBHOOK_ALLOW_PRIVATE", "off")]).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://localhost:9/hook",
        "http://0.0.0.0/",
        "file:///etc/passwd",
        "gopher://example.com/",
    ] {
        let r = app
            .client
            .post(app.url("/v1/admin/webhooks"))
            .bearer_auth(app.service_token())
            .json(&json!({"url": url}))
            .send()
            .await
            .expect("subscribe");
        let p = crate::helpers::assert_problem(r, 422, "validation_failed").await;
        assert_eq!(p["errors"][0]["field"], "url", "{url}: {p}");
    }
    // an endpoint that reached the table anyway (saved while allowed, or a
    // name that resolved elsewhere then) is refused at delivery
    let rx = Receiver::start().await;
    let mut admin = app.admin_conn().await;
    sqlx::query("INSERT INTO booking.webhook_endpoints (url, secret) VALUES ($1, $2), ($3, $2)")
        .bind(&rx.url)
        .bind(format!("whsec_{}", "A".repeat(43) + "="))
        .bind(format!("http://localhost:{}/hook", rx.port))
        .execute(&mut admin)
        .await
        .expect("insert");
    let u = app.user("+14155550108").await;
    let room = app.room().await;
    book(&app, &u.token, &room, &at(2, 10, 0), &at(2, 11, 0)).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let errors: Vec<String> = sqlx::query_scalar("SELECT error FROM booking.webhook_attempts")
            .fetch_all(&mut admin)
            .await
            .expect("attempts");
        if errors.len() >= 2 {
            for e in &errors {
                assert!(e.contains("not a public address"), "{e}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no refused attempts recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rx.received().is_empty(),
        "nothing reached the private address"
    );
    sqlx::Connection::close(admin).await.expect("close");
}

#[tokio::test]
async fn subscriptions_are_validated_and_administered() {
    let app = TestApp::spawn().await;
    let svc = app.service_token();
    let u = app.user("+14155550109").await;
    for (body, field) in [
        (
            json!({"url": "http://127.0.0.1/x", "events": ["booking.exploded"]}),
            "events[0]",
        ),
        (json!({"url": "http://127.0.0.1/x", "events": []}), "events"),
        (
            json!({"url": "http://127.0.0.1/x", "resource_id": uuid::Uuid::new_v4()}),
            "resource_id",
        ),
        (json!({"url": "not a url"}), "url"),
    ] {
        let r = app
            .client
            .post(app.url("/v1/admin/webhooks"))
            .bearer_auth(&svc)
            .json(&body)
            .send()
            .await
            .expect("post");
        let p = crate::helpers::assert_problem(r, 422, "validation_failed").await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let r = app
        .client
        .post(app.url("/v1/admin/webhooks"))
        .bearer_auth(&u.token)
        .json(&json!({"url": "http://127.0.0.1/x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "users do not administer webhooks");
    let r = app
        .client
        .post(app.url("/v1/admin/webhooks"))
        .bearer_auth(&svc)
        .json(&json!({"url": "http://127.0.0.1/x", "colour": "red"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400, "unknown fields");
    let (id, secret) = subscribe(
        &app,
        json!({"url": "http://127.0.0.1/x", "events": ["booking.created", "booking.created"]}),
    )
    .await;
    assert!(
        secret.starts_with("whsec_") && secret.len() == 50,
        "{secret}"
    );
    let e: Value = app
        .patch(
            &svc,
            &format!("/v1/admin/webhooks/{id}"),
            json!({"description": "crm", "events": null}),
        )
        .await
        .json()
        .await
        .expect("patch");
    assert_eq!(e["description"], "crm");
    assert!(e["events"].is_null());
    let got: Value = app
        .get(&svc, &format!("/v1/admin/webhooks/{id}"))
        .await
        .json()
        .await
        .expect("get");
    assert_eq!(got["description"], "crm");
    assert_eq!(
        app.delete(&svc, &format!("/v1/admin/webhooks/{id}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.get(&svc, &format!("/v1/admin/webhooks/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(app.get(&svc, "/v1/admin/webhooks/nope").await.status(), 400);
}

#[tokio::test]
async fn an_endpoint_for_one_resource_hears_only_that_resources_events() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let u = app.user("+14155550110").await;
    let mine = app.room().await;
    let other = app.room().await;
    subscribe(
        &app,
        json!({"url": rx.url, "resource_id": mine, "events": ["booking.created"]}),
    )
    .await;
    book(&app, &u.token, &other, &at(2, 8, 0), &at(2, 9, 0)).await;
    let b = book(&app, &u.token, &mine, &at(2, 10, 0), &at(2, 11, 0)).await;
    assert_eq!(app.delete(&u.token, &path_of(&b)).await.status(), 200);
    let got = rx.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(got[0].json()["data"]["resource_id"], mine.as_str());
}

#[tokio::test]
async fn reminders_fire_at_their_instant_and_move_and_drop_with_the_booking() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    subscribe(&app, json!({"url": rx.url, "events": ["booking.reminder"]})).await;
    let u = app.user("+14155550111").await;
    let room = app.resource(json!({"reminders_minutes": [60, 1440]})).await;
    assert_eq!(room["reminders_minutes"], json!([1440, 60]));
    let room = room["id"].as_str().expect("id").to_string();
    let start = crate::helpers::rules::t(&at(3, 10, 0));
    let a = book(&app, &u.token, &room, &at(3, 10, 0), &at(3, 11, 0)).await;
    let b = book(&app, &u.token, &room, &at(3, 12, 0), &at(3, 13, 0)).await;
    // b moves two hours later; a is cancelled
    let r = app
        .patch(
            &u.token,
            &path_of(&b),
            json!({"start": at(3, 14, 0), "end": at(3, 15, 0)}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // a minute before a's 24-hour reminder: nothing
    app.set_clock(start - chrono::Duration::minutes(1441)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rx.received().is_empty(), "nothing before its instant");
    // at it: a's
    app.set_clock(start - chrono::Duration::minutes(1440) + chrono::Duration::seconds(1))
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["data"]["id"], a["id"]);
    assert_eq!(got[0].json()["type"], "booking.reminder");
    // cancel a: its 60-minute reminder is dropped
    assert_eq!(app.delete(&u.token, &path_of(&a)).await.status(), 200);
    // past b's old 24-hour instant (12:00 - 24 h) but before its new one (14:00 - 24 h): nothing
    app.set_clock(start + chrono::Duration::hours(3) - chrono::Duration::minutes(1440))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rx.received().len(),
        1,
        "the moved booking's old reminder is gone"
    );
    app.set_clock(
        start + chrono::Duration::hours(4) - chrono::Duration::minutes(1440)
            + chrono::Duration::seconds(1),
    )
    .await;
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[1].json()["data"]["id"], b["id"]);
    assert_eq!(got[1].json()["data"]["start"], at(3, 14, 0));
    // past a's 60-minute instant: still nothing for a (cancelled)
    app.set_clock(start - chrono::Duration::minutes(59)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.received().len(), 2);
    app.set_clock(start + chrono::Duration::hours(4) - chrono::Duration::minutes(59))
        .await;
    let got = rx.wait_for(3, WAIT).await;
    assert_eq!(got[2].json()["data"]["id"], b["id"]);
}

#[tokio::test]
async fn two_servers_deliver_every_message_exactly_once() {
    let app = TestApp::spawn().await;
    let second = app.another_server().await;
    let rx = Receiver::start().await;
    subscribe(&app, json!({"url": rx.url, "events": ["booking.created"]})).await;
    let users = app.users(20).await;
    let rooms: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..10 {
            v.push(app.room().await);
        }
        v
    };
    let mut jobs = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for (j, room) in rooms.iter().enumerate() {
            let srv = if (i + j) % 2 == 0 { &app } else { &second };
            let req = srv.book(
                u,
                room,
                &at(2 + j as i64, i as u32, 0),
                &at(2 + j as i64, i as u32, 30),
            );
            jobs.push(req);
        }
    }
    let created = futures::future::join_all(jobs)
        .await
        .iter()
        .filter(|r| r.status() == 201)
        .count();
    assert_eq!(created, 200);
    let got = rx.wait_for(200, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_all = rx.received();
    assert_eq!(got_all.len(), 200, "no message twice");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *seen.entry(r.id.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), 200, "every message, each once");
    let delivered: i64 = admin_scalar(
        &app,
        "SELECT count(*) FROM booking.webhook_messages WHERE state = 'delivered'",
    )
    .await;
    assert_eq!(delivered, 200);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `booking serve` as its own process on this test's database.
fn serve_process(db: &str) -> (tokio::process::Child, String) {
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_booking"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", admin_url(db))
        .env("BOOKING_SERVE_DATABASE_URL", login_url(db))
        .env("BOOKING_JWT_SECRET", JWT_SECRET)
        .env("BOOKING_ADDR", format!("127.0.0.1:{port}"))
        .env("BOOKING_WEBHOOK_ALLOW_PRIVATE", "on")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn booking serve");
    (child, format!("http://127.0.0.1:{port}"))
}

async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("booking serve did not become ready");
}

#[tokio::test]
async fn a_killed_server_and_a_receiver_that_was_down_lose_nothing() {
    let mut app = TestApp::spawn().await;
    // the receiver is down: nothing listens on its port yet
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    subscribe(&app, json!({"url": url, "events": ["booking.created"]})).await;
    let u = app.user("+14155550112").await;
    let room = app.room().await;
    let mut ids = Vec::new();
    for h in 0..10 {
        ids.push(book(&app, &u.token, &room, &at(2, h, 0), &at(2, h, 30)).await["id"].clone());
    }
    // every first attempt fails (connection refused); then this server stops
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let n: i64 = admin_scalar(
            &app,
            "SELECT count(DISTINCT message_id) FROM booking.webhook_attempts",
        )
        .await;
        if n == 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "first attempts not made"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;

    // the receiver comes up, slow; a server process starts delivering and is killed mid-delivery
    let rx = Receiver::start_on(port).await;
    rx.delay(Duration::from_millis(1500));
    let (mut a, _) = serve_process(&app.db_name);
    app.set_clock(Utc::now() + chrono::Duration::seconds(10))
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    while rx.in_flight() == 0 {
        assert!(std::time::Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.start_kill().expect("SIGKILL");
    a.wait().await.expect("reaped");
    rx.delay(Duration::ZERO);
    // another process picks up, once the dead one's leases have lapsed
    let (mut b, base) = serve_process(&app.db_name);
    wait_ready(&base).await;
    app.set_clock(Utc::now() + chrono::Duration::minutes(3))
        .await;
    let got = rx
        .wait_until(Duration::from_secs(30), "every booking's message", |g| {
            let seen: std::collections::HashSet<_> =
                g.iter().map(|r| r.json()["data"]["id"].clone()).collect();
            ids.iter().all(|id| seen.contains(id))
        })
        .await;
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for r in &got {
        if let Some(prev) = bodies.insert(r.id.clone(), r.body.clone()) {
            assert_eq!(prev, r.body, "a duplicate carries the same id and body");
        }
    }
    assert_eq!(
        bodies.len(),
        10,
        "one id per message, duplicates only by id"
    );
    b.start_kill().expect("kill");
    let _ = b.wait().await;
}

#[tokio::test]
async fn holds_approval_and_series_send_their_events() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(
        &app,
        json!({"url": rx.url, "events": ["hold.created", "hold.confirmed", "booking.pending",
                                          "booking.approved", "series.created", "series.cancelled"]}),
    )
    .await;
    let staff = app.user("+14155550120").await;
    let u = app.user("+14155550121").await;
    let room = app
        .resource(json!({"owner_id": staff.id, "requires_approval": true}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let post = |token: String, path: String, body: Value| {
        let req = app
            .client
            .post(app.url(&path))
            .bearer_auth(token)
            .json(&body);
        async move { req.send().await.expect("post") }
    };
    let h: Value = post(
        u.token.clone(),
        "/v1/holds".into(),
        json!({"resource_id": room, "start": at(2, 10, 0), "end": at(2, 11, 0)}),
    )
    .await
    .json()
    .await
    .expect("hold");
    let id = h["id"].as_str().expect("id").to_string();
    let b = post(
        u.token.clone(),
        format!("/v1/holds/{id}/confirm"),
        json!({}),
    )
    .await;
    assert_eq!(b.status(), 201);
    let r = post(
        staff.token.clone(),
        format!("/v1/bookings/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let s: Value = post(
        u.token.clone(),
        "/v1/series".into(),
        json!({"resource_id": room, "start": at(3, 9, 0), "end": at(3, 10, 0), "rrule": "FREQ=DAILY;COUNT=2"}),
    )
    .await
    .json()
    .await
    .expect("series");
    let r = app
        .delete(
            &u.token,
            &format!(
                "/v1/series/{}?from={}",
                s["id"].as_str().expect("id"),
                at(1, 0, 0)
            ),
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = rx.wait_for(8, WAIT).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or("").to_string())
        .collect();
    for k in [
        "hold.created",
        "hold.confirmed",
        "booking.pending",
        "booking.approved",
        "series.created",
        "series.cancelled",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let pos = |k: &str| kinds.iter().position(|x| x == k).expect("present");
    assert!(pos("hold.created") < pos("hold.confirmed"));
    assert!(pos("hold.confirmed") < pos("booking.approved"));
    for r in &got {
        assert_eq!(valid_signatures(&secret, r), 1);
    }
    let held = got
        .iter()
        .find(|r| r.json()["type"] == "hold.created")
        .expect("hold.created")
        .json();
    assert_eq!(held["data"]["id"], h["id"]);
    assert!(held["data"]["expires_at"]
        .as_str()
        .unwrap_or("")
        .ends_with('Z'));
    let confirmed = got
        .iter()
        .find(|r| r.json()["type"] == "hold.confirmed")
        .expect("hold.confirmed")
        .json();
    assert_eq!(confirmed["data"]["booking_id"], h["id"]);
    let series = got
        .iter()
        .find(|r| r.json()["type"] == "series.created")
        .expect("series.created")
        .json();
    assert_eq!(series["data"]["bookings"].as_array().map(Vec::len), Some(2));
    assert_eq!(series["data"]["bookings"][0]["status"], "pending");
    assert_eq!(series["data"]["rrule"], "FREQ=DAILY;COUNT=2");
}

#[tokio::test]
async fn a_slow_receiver_or_a_disabled_endpoints_backlog_delays_no_one_else() {
    let app = TestApp::spawn().await;
    let slow = Receiver::start().await;
    slow.delay(Duration::from_secs(8));
    let fast = Receiver::start().await;
    subscribe(
        &app,
        json!({"url": slow.url, "events": ["booking.created"]}),
    )
    .await;
    subscribe(
        &app,
        json!({"url": fast.url, "events": ["booking.created"]}),
    )
    .await;
    // a disabled endpoint with a large backlog of due messages
    let mut admin = app.admin_conn().await;
    sqlx::query(
        "WITH e AS (INSERT INTO booking.webhook_endpoints (url, secret, active) \
                    VALUES ('http://127.0.0.1:9/gone', $1, false) RETURNING id) \
         INSERT INTO booking.webhook_messages (endpoint_id, event, subject_id, data, created_at, due_at) \
         SELECT e.id, 'booking.created', gen_random_uuid(), '{}', now(), now() - interval '1 hour' \
           FROM e, generate_series(1, 50000)",
    )
    .bind(format!("whsec_{}=", "B".repeat(43)))
    .execute(&mut admin)
    .await
    .expect("backlog");
    sqlx::query("ANALYZE booking.webhook_messages")
        .execute(&mut admin)
        .await
        .expect("analyze");
    let u = app.user("+14155550130").await;
    let room = app.room().await;
    let started = std::time::Instant::now();
    for h in 0..12 {
        book(&app, &u.token, &room, &at(2, h, 0), &at(2, h, 30)).await;
    }
    fast.wait_for(12, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the fast receiver waited on the slow one: {:?}",
        started.elapsed()
    );
    assert!(
        slow.received().len() < 12,
        "the slow receiver is still busy"
    );
    sqlx::Connection::close(admin).await.expect("close");
}

#[tokio::test]
async fn deleting_an_endpoint_while_bookings_are_written_fails_no_booking() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    rx.delay(Duration::from_millis(200));
    let (endpoint, _) = subscribe(&app, json!({"url": rx.url})).await;
    let users = app.users(10).await;
    let room = app.room().await;
    let creates = users
        .iter()
        .enumerate()
        .map(|(i, u)| app.book(u, &room, &at(3, i as u32, 0), &at(3, i as u32, 30)));
    let svc = app.service_token();
    let path = format!("/v1/admin/webhooks/{endpoint}");
    let del = app.delete(&svc, &path);
    let (created, deleted) = tokio::join!(futures::future::join_all(creates), del);
    assert_eq!(deleted.status(), 204);
    for r in created {
        assert_eq!(
            r.status(),
            201,
            "a booking failed because an endpoint was being deleted"
        );
    }
    // a change that committed while the endpoint was being deleted may have
    // left a message without an endpoint: never delivered, and pruned
    let mut c = app.admin_conn().await;
    sqlx::query("SET ROLE service_role")
        .execute(&mut c)
        .await
        .expect("role");
    sqlx::query("SELECT booking.webhook_prune(1000)")
        .execute(&mut c)
        .await
        .expect("prune");
    sqlx::Connection::close(c).await.expect("close");
    let left: i64 = admin_scalar(&app, "SELECT count(*) FROM booking.webhook_messages").await;
    let endpoints: i64 = admin_scalar(&app, "SELECT count(*) FROM booking.webhook_endpoints").await;
    assert_eq!((left, endpoints), (0, 0));
}
