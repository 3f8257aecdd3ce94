//! Sessions: refresh token rotation and reuse, logout; race-safe users.

use super::*;
use crate::helpers::TestApp;
use serde_json::{json, Value};
use sqlx::Connection;

#[tokio::test]
async fn a_refresh_token_rotates_and_works_once() {
    let app = TestApp::spawn().await;
    let t1 = sign_in(&app, PHONE).await;
    let resp = refresh(&app, &token(&t1, "refresh_token")).await;
    assert_eq!(resp.status(), 200);
    let t2: Value = resp.json().await.expect("json");
    assert_ne!(t2["refresh_token"], t1["refresh_token"]);
    assert_eq!(t2["user"], t1["user"]);
    assert_eq!(t2["token_type"], "bearer");
    let s1 = app.keys.verify(&token(&t1, "access_token")).expect("jwt");
    let s2 = app.keys.verify(&token(&t2, "access_token")).expect("jwt");
    assert_eq!(s1.session_id, s2.session_id, "same session");
    assert_eq!(
        app.get(&token(&t2, "access_token"), "/v1/me")
            .await
            .status(),
        200
    );
    let t3 = refresh(&app, &token(&t2, "refresh_token")).await;
    assert_eq!(t3.status(), 200);
}

#[tokio::test]
async fn a_double_submitted_refresh_gets_the_same_successor_and_keeps_the_session() {
    let app = TestApp::spawn().await;
    let t1 = sign_in(&app, PHONE).await;
    let r1 = token(&t1, "refresh_token");
    // a mobile app retrying on a flaky network: the same token twice at once
    let (a, b) = tokio::join!(refresh(&app, &r1), refresh(&app, &r1));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a, b): (Value, Value) = (a.json().await.expect("json"), b.json().await.expect("json"));
    assert_eq!(a["refresh_token"], b["refresh_token"], "one successor");
    let r2 = token(&a, "refresh_token");
    // the successor was used in turn: a late retry of r1 gets the current one
    let t3: Value = refresh(&app, &r2).await.json().await.expect("json");
    let r3 = token(&t3, "refresh_token");
    let again: Value = refresh(&app, &r1).await.json().await.expect("json");
    assert_eq!(again["refresh_token"], r3.as_str());
    // and the session lives on
    assert_eq!(refresh(&app, &r3).await.status(), 200);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let t1 = sign_in(&app, PHONE).await;
    let r1 = token(&t1, "refresh_token");
    let t2: Value = refresh(&app, &r1).await.json().await.expect("json");
    let r2 = token(&t2, "refresh_token");
    // after BOOKING_REFRESH_REUSE_SECONDS (10) a reuse is an attack
    advance(&app, 11);
    assert_refused(refresh(&app, &r1).await).await;
    assert_refused(refresh(&app, &r2).await).await;
    // Another session of the same user is untouched.
    advance(&app, 61);
    let other = sign_in(&app, PHONE).await;
    assert_eq!(
        refresh(&app, &token(&other, "refresh_token"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_unknown_or_expired_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    assert_refused(refresh(&app, "not-a-token").await).await;
    let t = sign_in(&app, PHONE).await;
    advance(&app, 31 * 86_400);
    assert_refused(refresh(&app, &token(&t, "refresh_token")).await).await;
}

#[tokio::test]
async fn logout_revokes_the_sessions_refresh_tokens() {
    let app = TestApp::spawn().await;
    let t = sign_in(&app, PHONE).await;
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(token(&t, "access_token"))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 204);
    assert_refused(refresh(&app, &token(&t, "refresh_token")).await).await;
    let anonymous = app
        .client
        .post(app.url("/v1/auth/logout"))
        .send()
        .await
        .expect("logout");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_get_or_creates_of_one_new_phone_make_one_user() {
    let app = TestApp::spawn().await;
    let service = app.service_token();
    let calls = (0..20).map(|_| {
        app.client
            .post(app.url("/v1/admin/users"))
            .bearer_auth(&service)
            .json(&json!({ "phone": PHONE }))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("send").status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        19,
        "{statuses:?}"
    );
    let mut c = app.admin_conn().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.users WHERE phone = $1")
        .bind(PHONE)
        .fetch_one(&mut c)
        .await
        .expect("count");
    assert_eq!(n, 1);
    c.close().await.expect("close");
}

#[tokio::test]
async fn the_openapi_document_describes_sign_in() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    for path in [
        "/v1/auth/otp",
        "/v1/auth/verify",
        "/v1/auth/refresh",
        "/v1/auth/logout",
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/v1/auth/otp"]["post"]["responses"]["429"].is_object());
    assert!(doc["components"]["schemas"]["TokenResponse"].is_object());
}
