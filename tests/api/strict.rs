//! Strict input: every JSON body is an object or a clear 400 (serde would read
//! an array positionally into a struct), and no error names a Rust type or a
//! serde internal. Found by schemathesis with another seed (`PATCH /v1/me`
//! with `[]` answered 200; `POST /v1/bookings` with an array created a
//! booking).

use crate::helpers::{at, TestApp};
use serde_json::{json, Value};

async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let r = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Words that would mean the message leaks the implementation.
const INTERNALS: &[&str] = &[
    "struct",
    "enum ",
    "Option",
    "Uuid",
    "String",
    "Vec<",
    "i32",
    "i64",
    "u32",
    "u64",
    "serde",
    "elements",
    "Input",
    "Request",
    "CreateBooking",
    "Reschedule",
];

fn no_internals(v: &Value) {
    let text = format!("{} {}", v["detail"], v["errors"]);
    for w in INTERNALS {
        assert!(!text.contains(w), "the answer names `{w}`: {text}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_400_everywhere_and_writes_nothing() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let u = app.user("+14155550960").await;
    let room = app.room().await;
    let svc = app.service_token();
    let booking_body = format!("[\"{room}\",\"{}\",\"{}\"]", at(3, 10, 0), at(3, 11, 0));
    let cases: Vec<(Method, &str, &str, String)> = vec![
        (Method::PATCH, &u.token, "/v1/me", "[]".into()),
        (Method::POST, &u.token, "/v1/bookings", booking_body.clone()),
        (
            Method::POST,
            &u.token,
            "/v1/bookings",
            format!("[\"{room}\",\"{}\"]", at(3, 10, 0)),
        ),
        (
            Method::POST,
            &u.token,
            "/v1/bookings",
            "\"a string\"".into(),
        ),
        (Method::POST, &u.token, "/v1/bookings", "42".into()),
        (Method::POST, &u.token, "/v1/bookings", "null".into()),
        (Method::POST, &u.token, "/v1/bookings", "true".into()),
        (
            Method::POST,
            &svc,
            "/v1/admin/resources",
            "[\"Room\",\"UTC\"]".into(),
        ),
        (
            Method::POST,
            &svc,
            "/v1/admin/users",
            "[\"+14155550961\"]".into(),
        ),
        (
            Method::POST,
            "",
            "/v1/auth/otp",
            "[\"+14155550961\"]".into(),
        ),
        (
            Method::POST,
            "",
            "/v1/auth/verify",
            "[\"+14155550961\",\"123456\"]".into(),
        ),
        (Method::POST, "", "/v1/auth/refresh", "[\"x\"]".into()),
    ];
    for (method, token, path, body) in cases {
        let (status, v) = raw(&app, method.clone(), token, path, &body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {v}");
        assert_eq!(v["code"], "bad_request", "{v}");
        assert!(
            v["detail"].as_str().unwrap_or("").contains("JSON object"),
            "{v}"
        );
        no_internals(&v);
    }
    let list: Value = app
        .get(&u.token, "/v1/bookings")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"], json!([]), "nothing was booked");
}

#[tokio::test]
async fn field_errors_name_the_field_in_the_contracts_words() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let u = app.user("+14155550962").await;
    let room = app.room().await;
    let svc = app.service_token();
    // (body, status, code, field)
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        ("/v1/bookings", json!({"start": at(3, 10, 0), "end": at(3, 11, 0)}).to_string(), 422, "validation_failed", Some("resource_id")),
        ("/v1/bookings", json!({"resource_id": 5, "start": at(3, 10, 0), "end": at(3, 11, 0)}).to_string(), 422, "validation_failed", Some("resource_id")),
        ("/v1/bookings", json!({"resource_id": "nope", "start": at(3, 10, 0), "end": at(3, 11, 0)}).to_string(), 422, "validation_failed", Some("resource_id")),
        ("/v1/bookings", json!({"resource_id": room, "start": 1, "end": at(3, 11, 0)}).to_string(), 422, "validation_failed", Some("start")),
        ("/v1/bookings", json!({"resource_id": room, "start": at(3, 10, 0), "end": at(3, 11, 0), "colour": "red"}).to_string(), 400, "bad_request", None),
        ("/v1/bookings", "{\"resource_id\":".to_string(), 400, "bad_request", None),
        ("/v1/admin/resources", json!({"name": "R", "timezone": "UTC", "capacity": "two"}).to_string(), 422, "validation_failed", Some("capacity")),
        ("/v1/admin/resources", json!({"name": "R", "timezone": "UTC", "opening_hours": {"mon": "all day"}}).to_string(), 422, "validation_failed", None),
    ];
    for (path, body, status, code, field) in cases {
        let token = if path.contains("admin") {
            &svc
        } else {
            &u.token
        };
        let (s, v) = raw(&app, Method::POST, token, path, &body).await;
        assert_eq!(s, status, "{path} {body}: {v}");
        assert_eq!(v["code"], code, "{path} {body}: {v}");
        if let Some(f) = field {
            assert_eq!(v["errors"][0]["field"], f, "{path} {body}: {v}");
        }
        no_internals(&v);
    }
}
