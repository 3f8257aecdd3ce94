//! Tokens: every malformed, expired, wrongly signed or wrongly addressed
//! token is 401 with `WWW-Authenticate: Bearer`; a user token on an admin
//! route is 403.

use crate::helpers::{TestApp, JWT_SECRET};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn sign(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

fn claims(sub: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "role": "authenticated", "aud": "authenticated", "iss": "booking",
           "iat": now, "exp": now + 600, "phone": "+14155550123", "session_id": uuid::Uuid::new_v4()})
}

#[tokio::test]
async fn bad_tokens_are_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550200").await;
    let sub = u.id.to_string();
    let now = chrono::Utc::now().timestamp();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let with = |k: &str, v: Value| {
        let mut c = claims(&sub);
        c[k] = v;
        sign(&c, JWT_SECRET.as_bytes())
    };
    let without = |k: &str| {
        let mut c = claims(&sub);
        c.as_object_mut().expect("obj").remove(k);
        sign(&c, JWT_SECRET.as_bytes())
    };
    let good = sign(&claims(&sub), JWT_SECRET.as_bytes());
    let mut flipped = good.clone().into_bytes();
    let i = flipped.len() - 5;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let none_alg = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(&sub))
    );
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims(&sub),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    let cases: Vec<(&str, String)> = vec![
        ("garbage", "not.a.token".into()),
        ("alg none", none_alg),
        ("HS512", hs512),
        (
            "wrong key",
            sign(&claims(&sub), b"another-secret-another-secret-another"),
        ),
        ("flipped byte", String::from_utf8(flipped).expect("utf8")),
        ("expired", with("exp", json!(now - 3600))),
        ("exp as string", with("exp", json!((now + 600).to_string()))),
        ("future nbf", with("nbf", json!(now + 3600))),
        ("wrong aud", with("aud", json!("anon"))),
        ("wrong iss", with("iss", json!("evil"))),
        ("missing sub", without("sub")),
        ("sub not uuid", with("sub", json!("admin"))),
        ("role anon", with("role", json!("anon"))),
        ("missing exp", without("exp")),
        ("100 KiB", format!("{good}{}", "A".repeat(100 * 1024))),
    ];
    for (name, token) in cases {
        let r = app
            .client
            .get(app.url("/v1/bookings"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{name}");
        assert_eq!(
            r.json::<Value>().await.expect("json")["code"],
            "unauthorized",
            "{name}"
        );
    }
    let r = app
        .client
        .get(app.url("/v1/bookings"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/v1/bookings"))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/v1/bookings"))
        .bearer_auth(&good)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_user_token_on_admin_routes_is_403() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550201").await;
    let routes = [
        ("GET", "/v1/admin/bookings".to_string()),
        ("GET", "/v1/admin/users?phone=%2B14155550201".to_string()),
        ("POST", "/v1/admin/users".to_string()),
        ("POST", "/v1/admin/resources".to_string()),
        (
            "PATCH",
            format!("/v1/admin/resources/{}", uuid::Uuid::new_v4()),
        ),
    ];
    for (method, path) in routes {
        let req = app
            .client
            .request(method.parse().expect("method"), app.url(&path))
            .bearer_auth(&u.token);
        let req = if method == "GET" {
            req
        } else {
            req.json(&json!({"phone": "+14155550999", "name": "x", "timezone": "UTC"}))
        };
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 403, "{method} {path}");
        assert_eq!(r.json::<Value>().await.expect("json")["code"], "forbidden");
    }
}

#[tokio::test]
async fn a_supabase_shaped_token_with_extra_claims_is_accepted() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550202").await;
    let mut c = claims(&u.id.to_string());
    c["app_metadata"] = json!({"provider": "phone"});
    c["user_metadata"] = json!({});
    c["aal"] = json!("aal1");
    c["is_anonymous"] = json!(false);
    let token = sign(&c, JWT_SECRET.as_bytes());
    let r = app.get(&token, "/v1/me").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["phone"],
        "+14155550202"
    );
}
