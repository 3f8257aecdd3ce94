//! Request ids: generated when absent, echoed when sane, in every problem body.

use serde_json::{json, Value};

use crate::helpers::{header, TestApp};

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
