//! Sending codes: echo and webhook delivery, failures, the same answer for
//! every phone, validation, storage, the per-IP limit.

use super::*;
use crate::helpers::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;

#[tokio::test]
async fn a_phone_signs_in_with_the_echoed_code_and_gets_working_tokens() {
    let app = TestApp::spawn().await;
    let resp = send_otp(&app, "+1 (415) 555-0301").await;
    assert_eq!(resp.status(), 202);
    let sent: Value = resp.json().await.expect("json");
    assert_eq!(sent["expires_in"], 300);
    let code = sent["dev_code"].as_str().expect("dev_code");
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));

    let resp = verify(&app, PHONE, code).await;
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.expect("json");
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["user"]["phone"], PHONE);
    assert!(t["user"]["id"].is_string() && t["user"]["created_at"].is_string());

    let me = app.get(&token(&t, "access_token"), "/v1/me").await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["id"], t["user"]["id"]);
    let who = app
        .keys
        .verify(&token(&t, "access_token"))
        .expect("valid jwt");
    assert_eq!(who.claims["phone"], PHONE);
    assert!(who.session_id.is_some());

    // A refresh token is no access token.
    let as_bearer = app.get(&token(&t, "refresh_token"), "/v1/me").await;
    assert_eq!(as_bearer.status(), 401);

    // The second sign-in finds the same user.
    advance(&app, 61);
    let again = sign_in(&app, PHONE).await;
    assert_eq!(again["user"]["id"], t["user"]["id"]);
}

#[tokio::test]
async fn a_phone_signs_in_with_the_code_its_webhook_received() {
    let (delivery, mut inbox) = gateway(StatusCode::OK).await;
    let app = TestApp::spawn_with(&[("BOOKING_OTP_DELIVERY", &delivery)]).await;
    let resp = send_otp(&app, PHONE).await;
    assert_eq!(resp.status(), 202);
    let sent: Value = resp.json().await.expect("json");
    assert_eq!(
        sent,
        json!({ "expires_in": 300 }),
        "no dev_code outside echo mode"
    );

    let sms = inbox.recv().await.expect("the gateway got the code");
    assert_eq!(sms["phone"], PHONE);
    let expires = sms["expires_at"].as_str().expect("expires_at");
    assert!(expires.ends_with('Z'), "{expires}");
    chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
    let code = sms["code"].as_str().expect("code");
    assert_eq!(verify(&app, PHONE, code).await.status(), 200);
}

#[tokio::test]
async fn a_failing_webhook_is_retried_then_answered_503_and_the_code_discarded() {
    let (delivery, mut inbox) = gateway(StatusCode::BAD_GATEWAY).await;
    let app = TestApp::spawn_with(&[("BOOKING_OTP_DELIVERY", &delivery)]).await;
    let resp = send_otp(&app, PHONE).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "unavailable");

    let mut attempts = Vec::new();
    while let Ok(v) = inbox.try_recv() {
        attempts.push(v);
    }
    assert_eq!(attempts.len(), 3, "bounded retries");
    let code = attempts[0]["code"].as_str().expect("code").to_string();
    assert_refused(verify(&app, PHONE, &code).await).await;

    // The failed send does not count: an immediate retry is not 429.
    assert_eq!(send_otp(&app, PHONE).await.status(), 503);
}

#[tokio::test]
async fn known_and_unknown_phones_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let known = app.user("+14155550302").await;
    let a = send_otp(&app, &known.phone).await;
    let b = send_otp(&app, "+14155550303").await;
    assert_eq!(a.status(), b.status());
    let a: Value = a.json().await.expect("json");
    let b: Value = b.json().await.expect("json");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(a["expires_in"], b["expires_in"]);
}

#[tokio::test]
async fn the_code_is_never_stored_in_plain() {
    let app = TestApp::spawn().await;
    let code = code_for(&app, PHONE).await;
    let mut c = app.admin_conn().await;
    for table in ["otp_codes", "otp_sends", "server_keys"] {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM booking.{table} t"
        ))
        .fetch_all(&mut c)
        .await
        .expect("rows");
        assert!(!rows.is_empty(), "{table} is empty");
        for row in rows {
            assert!(!row.contains(&code), "{table} holds the code: {row}");
        }
    }
    let hash_len: i32 = sqlx::query_scalar(
        "SELECT octet_length(code_hash) FROM booking.otp_codes WHERE phone = $1",
    )
    .bind(PHONE)
    .fetch_one(&mut c)
    .await
    .expect("hash");
    assert_eq!(hash_len, 32);
    c.close().await.expect("close");
}

#[tokio::test]
async fn an_invalid_phone_is_422_naming_the_field() {
    let app = TestApp::spawn().await;
    for phone in ["", "4155550123", "+1 800 FLOWERS", "+1234"] {
        let resp = send_otp(&app, phone).await;
        assert_eq!(resp.status(), 422, "{phone:?}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], "phone");
    }
    assert_eq!(verify(&app, "nope", "123456").await.status(), 422);
    let extra = app
        .client
        .post(app.url("/v1/auth/otp"))
        .json(&json!({ "phone": PHONE, "admin": true }))
        .send()
        .await
        .expect("otp");
    assert_eq!(extra.status(), 400, "unknown fields are rejected");
}

#[tokio::test]
async fn the_per_ip_limit_answers_429_with_retry_after_when_enabled() {
    let app = TestApp::spawn_with(&[
        ("BOOKING_RATE_LIMITS", "on"),
        ("BOOKING_AUTH_RATE_LIMIT", "5"),
    ])
    .await;
    for i in 0..5 {
        let resp = verify(&app, PHONE, "000000").await;
        assert_eq!(resp.status(), 401, "request {i}");
    }
    let resp = send_otp(&app, "+14155550302").await;
    assert_eq!(resp.status(), 429);
    let wait: i64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=300).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited");
    // A flood from the address is refused from memory: no database write
    // per refused request (the counter stopped at the first refusal).
    for _ in 0..30 {
        assert_eq!(send_otp(&app, "+14155550302").await.status(), 429);
    }
    let mut admin = app.admin_conn().await;
    let hits: i32 = sqlx::query_scalar(
        "SELECT max(hits) FROM booking.rate_limits WHERE bucket LIKE 'auth:ip:%'",
    )
    .fetch_one(&mut admin)
    .await
    .expect("hits");
    assert_eq!(
        hits, 6,
        "5 admitted + the one refusal that taught the instance"
    );
    // The next window starts afresh.
    advance(&app, wait);
    assert_eq!(send_otp(&app, "+14155550302").await.status(), 202);
}
