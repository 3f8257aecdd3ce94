//! Sign-in by phone: codes (echo and webhook delivery), their rules, sessions
//! with rotating refresh tokens, logout, and the per-IP limit.

mod codes;
mod delivery;
mod sessions;

use crate::helpers::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub(super) const PHONE: &str = "+14155550301";

pub(super) async fn send_otp(app: &TestApp, phone: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/otp"))
        .json(&json!({ "phone": phone }))
        .send()
        .await
        .expect("otp")
}

/// Ask for a code (echo mode) and return it.
pub(super) async fn code_for(app: &TestApp, phone: &str) -> String {
    let resp = send_otp(app, phone).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.expect("json");
    body["dev_code"].as_str().expect("dev_code").to_string()
}

pub(super) async fn verify(app: &TestApp, phone: &str, code: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/verify"))
        .json(&json!({ "phone": phone, "code": code }))
        .send()
        .await
        .expect("verify")
}

pub(super) async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .expect("refresh")
}

/// Sign in through the whole flow; returns the token response.
pub(super) async fn sign_in(app: &TestApp, phone: &str) -> Value {
    let code = code_for(app, phone).await;
    let resp = verify(app, phone, &code).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

pub(super) fn token(v: &Value, key: &str) -> String {
    v[key].as_str().expect(key).to_string()
}

/// Move the server clock forward.
pub(super) fn advance(app: &TestApp, secs: i64) {
    let c = &app.state.clock;
    c.set(c.now() + chrono::Duration::seconds(secs));
}

/// A code that is not `code`.
pub(super) fn other_than(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// A local SMS gateway: answers `status` and hands every body it gets over.
pub(super) async fn gateway(status: StatusCode) -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |axum::Json(v): axum::Json<Value>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(v);
            status
        }
    };
    let router = axum::Router::new().route("/sms", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("webhook:http://{addr}/sms"), rx)
}

pub(super) async fn assert_refused(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "unauthorized");
    body
}
