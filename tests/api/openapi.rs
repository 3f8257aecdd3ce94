//! The OpenAPI document: a committed snapshot (any change to the API's
//! description shows up in review), and what the contract requires of it.
//!
//! Regenerate the snapshot after an intended change:
//! `UPDATE_SNAPSHOTS=1 cargo test --test api openapi`

use serde_json::Value;

use crate::helpers::TestApp;

const SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/snapshots/openapi.json"
);

/// Every operation of the contract (method, path template).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/auth/otp"),
    ("post", "/v1/auth/verify"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/me"),
    ("patch", "/v1/me"),
    ("get", "/v1/resources"),
    ("get", "/v1/resources/{id}"),
    ("get", "/v1/resources/{id}/availability"),
    ("post", "/v1/admin/resources"),
    ("patch", "/v1/admin/resources/{id}"),
    ("post", "/v1/bookings"),
    ("get", "/v1/bookings"),
    ("get", "/v1/bookings/{id}"),
    ("patch", "/v1/bookings/{id}"),
    ("delete", "/v1/bookings/{id}"),
    ("get", "/v1/bookings/{id}/history"),
    ("get", "/v1/admin/bookings"),
    ("post", "/v1/admin/users"),
    ("get", "/v1/admin/users"),
    ("post", "/v1/bookings/{id}/approve"),
    ("post", "/v1/bookings/{id}/reject"),
    ("post", "/v1/holds"),
    ("post", "/v1/holds/{id}/confirm"),
    ("delete", "/v1/holds/{id}"),
    // not in the contract's table: reading a hold back (README, "Additions")
    ("get", "/v1/holds/{id}"),
    ("post", "/v1/series"),
    ("get", "/v1/series/{id}"),
    ("delete", "/v1/series/{id}"),
    ("post", "/v1/admin/resources/{id}/closures"),
    ("get", "/v1/admin/resources/{id}/closures"),
    ("delete", "/v1/admin/resources/{id}/closures/{cid}"),
    ("get", "/"),
    ("get", "/ical/{token}.ics"),
    ("post", "/v1/me/calendar-feed"),
    ("delete", "/v1/me/calendar-feed"),
    ("post", "/v1/resources/{id}/calendar-feed"),
    // not in the contract's table: revoking a resource's feed (README, "Additions")
    ("delete", "/v1/resources/{id}/calendar-feed"),
    ("post", "/v1/admin/webhooks"),
    ("get", "/v1/admin/webhooks"),
    ("get", "/v1/admin/webhooks/{id}"),
    ("patch", "/v1/admin/webhooks/{id}"),
    ("delete", "/v1/admin/webhooks/{id}"),
    ("post", "/v1/admin/webhooks/{id}/rotate-secret"),
    ("get", "/v1/admin/webhooks/{id}/deliveries"),
    (
        "post",
        "/v1/admin/webhooks/{id}/messages/{message_id}/resend",
    ),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

async fn live_document() -> Value {
    let mut app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("content-type")
        .starts_with("application/json"));
    let doc = r.json().await.expect("openapi json");
    // stop gracefully: dropping a server whose pool is still connecting makes
    // the test database's DROP wait for PostgreSQL's authentication_timeout
    app.stop().await;
    doc
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    out.push((m.to_string(), path.clone(), op));
                }
            }
        }
    }
    out
}

/// Where two JSON values differ, as JSON pointers (at most `max`).
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>, max: usize) {
    if out.len() >= max || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => differences(v, w, &p, out, max),
                    (Some(_), None) => out.push(format!("{p}: removed")),
                    (None, Some(_)) => out.push(format!("{p}: added")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, &format!("{at}/{i}"), out, max);
            }
        }
        _ => out.push(format!("{at}: {a} -> {b}")),
    }
}

#[tokio::test]
async fn the_openapi_document_matches_the_committed_snapshot() {
    let doc = live_document().await;
    let pretty = serde_json::to_string_pretty(&doc).expect("pretty") + "\n";
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        let path = std::path::Path::new(SNAPSHOT);
        std::fs::create_dir_all(path.parent().expect("snapshot dir")).expect("mkdir");
        std::fs::write(path, pretty).expect("write snapshot");
        eprintln!("wrote {SNAPSHOT}");
        return;
    }
    let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_else(|e| {
        panic!(
            "cannot read the OpenAPI snapshot {SNAPSHOT} ({e}). Create it with \
             `UPDATE_SNAPSHOTS=1 cargo test --test api openapi`, review it and commit it"
        )
    });
    let committed: Value = serde_json::from_str(&committed).expect("the snapshot is JSON");
    if committed != doc {
        let mut diffs = Vec::new();
        differences(&committed, &doc, "", &mut diffs, 25);
        panic!(
            "the served OpenAPI document differs from the committed snapshot {SNAPSHOT}:\n  {}\n\
             If the change is intended, regenerate it with \
             `UPDATE_SNAPSHOTS=1 cargo test --test api openapi`, review the diff and commit it.",
            diffs.join("\n  ")
        );
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_has_every_route_of_the_contract() {
    let doc = live_document().await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "openapi is {version}");
    let missing: Vec<String> = CONTRACT
        .iter()
        .filter(|(m, p)| doc["paths"][*p].get(*m).is_none())
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(missing.is_empty(), "not documented: {missing:?}");
    // and nothing the contract does not have
    let extra: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|(m, p, _)| !CONTRACT.contains(&(m.as_str(), p.as_str())))
        .map(|(m, p, _)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(
        extra.is_empty(),
        "documented but not in the contract: {extra:?}"
    );
}

#[tokio::test]
async fn every_secured_operation_documents_401_and_the_bearer_scheme_exists() {
    let doc = live_document().await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(
        scheme["scheme"].as_str().map(str::to_lowercase).as_deref(),
        Some("bearer")
    );
    let mut secured = 0;
    let mut without_401 = Vec::new();
    for (m, p, op) in operations(&doc) {
        let has_security = op["security"].as_array().is_some_and(|s| !s.is_empty());
        if has_security {
            secured += 1;
            for req in op["security"].as_array().into_iter().flatten() {
                for name in req.as_object().into_iter().flat_map(|o| o.keys()) {
                    assert!(
                        doc["components"]["securitySchemes"].get(name).is_some(),
                        "{m} {p} names an undefined security scheme {name}"
                    );
                }
            }
            if op["responses"].get("401").is_none() {
                without_401.push(format!("{} {p}", m.to_uppercase()));
            }
        }
    }
    assert!(secured >= 15, "only {secured} secured operations");
    assert!(without_401.is_empty(), "no 401 documented: {without_401:?}");
    // every /v1/ route but the sign-in ones needs a token
    for (m, p, op) in operations(&doc) {
        if p.starts_with("/v1/") && !p.starts_with("/v1/auth/") {
            assert!(
                op["security"].as_array().is_some_and(|s| !s.is_empty()),
                "{m} {p} has no security requirement"
            );
        }
    }
}

fn header_params(op: &Value) -> Vec<String> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "header")
        .filter_map(|p| p["name"].as_str().map(str::to_lowercase))
        .collect()
}

#[tokio::test]
async fn idempotency_key_and_if_match_headers_are_documented() {
    let doc = live_document().await;
    for (m, p) in [
        ("post", "/v1/bookings"),
        ("patch", "/v1/bookings/{id}"),
        ("delete", "/v1/bookings/{id}"),
    ] {
        let h = header_params(&doc["paths"][p][m]);
        assert!(h.contains(&"idempotency-key".to_string()), "{m} {p}: {h:?}");
    }
    for (m, p) in [
        ("patch", "/v1/bookings/{id}"),
        ("delete", "/v1/bookings/{id}"),
    ] {
        let h = header_params(&doc["paths"][p][m]);
        assert!(h.contains(&"if-match".to_string()), "{m} {p}: {h:?}");
        assert!(doc["paths"][p][m]["responses"].get("412").is_some());
    }
    // responses carry the ETag the If-Match refers to
    for (m, p, code) in [
        ("post", "/v1/bookings", "201"),
        ("get", "/v1/bookings/{id}", "200"),
        ("patch", "/v1/bookings/{id}", "200"),
    ] {
        assert!(
            doc["paths"][p][m]["responses"][code]["headers"]
                .get("ETag")
                .is_some(),
            "{m} {p} {code} documents no ETag"
        );
    }
}

#[tokio::test]
async fn errors_are_documented_as_problem_json_with_the_headers_the_middleware_adds() {
    let doc = live_document().await;
    assert!(doc["components"]["schemas"].get("Problem").is_some());
    for (m, p, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        for (code, r) in responses {
            if code.starts_with('4') || code.starts_with('5') {
                let content = r["content"].as_object().expect("content");
                assert!(
                    content.contains_key("application/problem+json")
                        && !content.contains_key("application/json"),
                    "{m} {p} {code}: {:?}",
                    content.keys().collect::<Vec<_>>()
                );
            }
            if code == "429" || code == "503" {
                assert!(r["headers"].get("Retry-After").is_some(), "{m} {p} {code}");
            }
            assert!(r["headers"].get("X-Request-Id").is_some(), "{m} {p} {code}");
        }
        let write = matches!(m.as_str(), "post" | "patch" | "delete");
        if write && p.starts_with("/v1/") && !p.starts_with("/v1/auth/") {
            assert!(responses.contains_key("429"), "{m} {p}: no 429");
        }
        if op.get("requestBody").is_some() {
            assert!(responses.contains_key("413"), "{m} {p}: no 413");
        }
    }
}

#[tokio::test]
async fn operation_ids_are_unique_and_creates_link_to_what_reads_them() {
    let doc = live_document().await;
    let mut ids: Vec<String> = operations(&doc)
        .iter()
        .map(|(m, p, op)| {
            op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {p} has no operationId"))
                .to_string()
        })
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operationIds among {ids:?}");
    let links = &doc["paths"]["/v1/bookings"]["post"]["responses"]["201"]["links"];
    let target = links["GetBooking"]["operationId"].as_str().expect("link");
    assert_eq!(
        doc["paths"]["/v1/bookings/{id}"]["get"]["operationId"],
        target
    );
    assert_eq!(
        links["GetBooking"]["parameters"]["id"],
        "$response.body#/id"
    );
}
