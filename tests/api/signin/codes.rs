//! Checking codes: wrong, expired, used, replaced codes; resend rules.

use super::*;
use crate::helpers::TestApp;
use serde_json::Value;

#[tokio::test]
async fn five_wrong_codes_kill_the_code_and_the_right_one_then_fails() {
    let app = TestApp::spawn().await;
    let code = code_for(&app, PHONE).await;
    let wrong = other_than(&code);
    let mut first_refusal = None;
    for _ in 0..5 {
        let body = assert_refused(verify(&app, PHONE, &wrong).await).await;
        first_refusal.get_or_insert(body["detail"].clone());
    }
    let body = assert_refused(verify(&app, PHONE, &code).await).await;
    assert_eq!(
        Some(body["detail"].clone()),
        first_refusal,
        "one identical 401"
    );
}

#[tokio::test]
async fn four_wrong_codes_still_leave_the_right_one_working() {
    let app = TestApp::spawn().await;
    let code = code_for(&app, PHONE).await;
    for _ in 0..4 {
        assert_refused(verify(&app, PHONE, &other_than(&code)).await).await;
    }
    assert_eq!(verify(&app, PHONE, &code).await.status(), 200);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn().await;
    let code = code_for(&app, PHONE).await;
    advance(&app, 301);
    assert_refused(verify(&app, PHONE, &code).await).await;
}

#[tokio::test]
async fn a_used_code_is_refused() {
    let app = TestApp::spawn().await;
    let code = code_for(&app, PHONE).await;
    assert_eq!(verify(&app, PHONE, &code).await.status(), 200);
    assert_refused(verify(&app, PHONE, &code).await).await;
}

#[tokio::test]
async fn a_new_code_replaces_the_old_one() {
    let app = TestApp::spawn().await;
    let old = code_for(&app, PHONE).await;
    advance(&app, 61);
    let new = code_for(&app, PHONE).await;
    if old != new {
        assert_refused(verify(&app, PHONE, &old).await).await;
    }
    assert_eq!(verify(&app, PHONE, &new).await.status(), 200);
}

#[tokio::test]
async fn a_code_for_one_phone_does_not_sign_in_another() {
    let app = TestApp::spawn().await;
    let mine = code_for(&app, PHONE).await;
    let theirs = code_for(&app, "+14155550302").await;
    if mine != theirs {
        assert_refused(verify(&app, "+14155550302", &mine).await).await;
    }
    assert_refused(verify(&app, "+14155550303", &mine).await).await;
    assert_eq!(verify(&app, "+14155550302", &theirs).await.status(), 200);
}

#[tokio::test]
async fn a_second_code_within_a_minute_is_429_with_retry_after() {
    let app = TestApp::spawn().await;
    code_for(&app, PHONE).await;
    advance(&app, 30);
    let resp = send_otp(&app, PHONE).await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=31).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited");
    advance(&app, 31);
    assert_eq!(send_otp(&app, PHONE).await.status(), 202);
}

#[tokio::test]
async fn the_sixth_code_within_an_hour_is_429() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        code_for(&app, PHONE).await;
        advance(&app, 61);
    }
    let resp = send_otp(&app, PHONE).await;
    assert_eq!(resp.status(), 429);
    let wait: i64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait > 60 && wait <= 3600 - 5 * 61 + 1, "Retry-After {wait}");
    // Another phone is not affected; the hour passing lifts the cap.
    assert_eq!(send_otp(&app, "+14155550302").await.status(), 202);
    advance(&app, wait);
    assert_eq!(send_otp(&app, PHONE).await.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifies_of_one_code_sign_in_exactly_once() {
    let app = TestApp::spawn().await;
    let code = code_for(&app, PHONE).await;
    let calls = (0..10).map(|_| verify(&app, PHONE, &code));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        9,
        "{statuses:?}"
    );
}
