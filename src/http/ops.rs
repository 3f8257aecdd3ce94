//! Operations: health, readiness, metrics, the OpenAPI document and its docs.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::AppState;
use crate::db::migrate::latest_version;
use crate::error::problem_response;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// 200 when the database answers and its schema is current, else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = crate::error::Problem)))]
pub async fn readyz(State(st): State<AppState>) -> Response {
    let check = async {
        let mut tx = st.db.begin_anon().await?;
        let v: i32 = sqlx::query_scalar("SELECT booking.schema_version()")
            .fetch_one(tx.conn())
            .await?;
        drop(tx); // read-only: rolled back
        Ok::<i32, sqlx::Error>(v)
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(v)) if v == latest_version() => axum::Json(Health {
            status: "ready".into(),
        })
        .into_response(),
        Ok(Ok(v)) => problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "database schema is at version {v}, this server needs {}",
                latest_version()
            ),
            None,
            Some(5),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database does not answer".into(),
                None,
                Some(1),
            )
        }
        Err(_) => problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is too slow to answer".into(),
            None,
            Some(1),
        ),
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let size = st.db.pool().size();
    let idle = st.db.pool().num_idle() as u32;
    metrics::gauge!("db_pool_connections").set(size as f64);
    metrics::gauge!("db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("db_pool_busy_connections").set(size.saturating_sub(idle) as f64);
    let body = st.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The interactive documentation (Swagger UI, served from the binary: no
/// internet needed). Its page loads `/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "Swagger UI (HTML); its assets are under /docs/", content_type = "text/html", body = String)))]
pub async fn docs() -> Response {
    docs_file("")
}

async fn docs_asset(axum::extract::Path(rest): axum::extract::Path<String>) -> Response {
    docs_file(&rest)
}

fn docs_config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")))
        .clone()
}

/// One Swagger UI file. The index page gets `<base href="/docs/">` so that its
/// relative asset links work whether it was reached as `/docs` or `/docs/`.
fn docs_file(path: &str) -> Response {
    match utoipa_swagger_ui::serve(path, docs_config()) {
        Ok(Some(file)) => {
            let is_index = path.is_empty() || path == "/" || path == "index.html";
            let bytes = if is_index {
                String::from_utf8_lossy(&file.bytes)
                    .replacen("<head>", "<head>\n    <base href=\"/docs/\" />", 1)
                    .into_bytes()
            } else {
                file.bytes.into_owned()
            };
            (
                [
                    (header::CONTENT_TYPE, file.content_type),
                    (header::CACHE_CONTROL, "public, max-age=3600".to_string()),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(None) => crate::error::ApiError::NotFound.into_response(),
        Err(e) => {
            crate::error::ApiError::Internal(anyhow::anyhow!("swagger ui: {e}")).into_response()
        }
    }
}

/// `/docs`, `/docs/` and `/docs/{file}`: all answered from the binary.
pub fn docs_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/docs", axum::routing::get(docs))
        .route("/docs/", axum::routing::get(docs))
        .route("/docs/{*rest}", axum::routing::get(docs_asset))
}

/// Completes the OpenAPI document with what the middleware does to every
/// route, so that it need not be repeated (and cannot be forgotten) on each
/// handler:
///
/// - error bodies are `application/problem+json` (handlers just say `body = Problem`);
/// - every operation with a security requirement may answer 401 (with `WWW-Authenticate`);
/// - every write under `/v1/` except `/v1/auth/*` may answer 429 (rate limits, `limits.rs`);
/// - every operation with a request body may answer 400 (malformed JSON,
///   unknown field), 413 (over 64 KiB) and 422 (wrong type, missing field);
/// - every operation under `/v1/` may answer 503 (database unavailable or request timeout);
/// - 429 and 503 carry `Retry-After`; every response carries `X-Request-Id`.
pub struct ContractResponses;

impl utoipa::Modify for ContractResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in operations_mut(item) {
                complete_operation(path, &method, op);
            }
        }
        unique_operation_ids(openapi);
        add_links(openapi);
    }
}

fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = (axum::http::Method, &mut utoipa::openapi::path::Operation)> {
    use axum::http::Method;
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}

/// The collection a path is about: `/v1/admin/resources/{id}` -> `resources`.
fn collection(path: &str) -> &str {
    path.split('/')
        .find(|s| !s.is_empty() && *s != "v1" && *s != "admin")
        .unwrap_or("root")
}

/// Handler names are the default operationIds, and several modules have a
/// `get`, `list` or `create`: operationIds must be unique (OpenAPI 3.1 §4.8.10),
/// so a name used more than once is prefixed with its collection
/// (`bookings_get`, `resources_get`); anything still clashing gets its
/// method and path.
fn unique_operation_ids(openapi: &mut utoipa::openapi::OpenApi) {
    use std::collections::HashMap;
    let mut count: HashMap<String, usize> = HashMap::new();
    for item in openapi.paths.paths.values_mut() {
        for (_, op) in operations_mut(item) {
            if let Some(id) = &op.operation_id {
                *count.entry(id.clone()).or_default() += 1;
            }
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, op) in operations_mut(item) {
            let id = match &op.operation_id {
                Some(id) if count.get(id).copied().unwrap_or(0) > 1 => {
                    format!("{}_{id}", collection(path))
                }
                Some(id) => id.clone(),
                None => String::new(),
            };
            let id = if id.is_empty() || seen.contains_key(&id) {
                let words: String = format!("{}_{path}", method.as_str().to_lowercase())
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                words
                    .split('_')
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join("_")
            } else {
                id
            };
            *seen.entry(id.clone()).or_default() += 1;
            op.operation_id = Some(id);
        }
    }
}

/// OpenAPI links from what creates a thing to what reads or changes it
/// (clients and stateful contract tests follow them).
fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::link::LinkBuilder;
    use utoipa::openapi::RefOr;
    type Target = (&'static str, &'static str, &'static str);
    const LINKS: [(&str, &str, &str, &[Target]); 2] = [
        (
            "post",
            "/v1/bookings",
            "201",
            &[
                ("GetBooking", "get", "/v1/bookings/{id}"),
                ("RescheduleBooking", "patch", "/v1/bookings/{id}"),
                ("CancelBooking", "delete", "/v1/bookings/{id}"),
                ("BookingHistory", "get", "/v1/bookings/{id}/history"),
            ],
        ),
        (
            "post",
            "/v1/admin/resources",
            "201",
            &[
                ("GetResource", "get", "/v1/resources/{id}"),
                (
                    "ResourceAvailability",
                    "get",
                    "/v1/resources/{id}/availability",
                ),
                ("UpdateResource", "patch", "/v1/admin/resources/{id}"),
            ],
        ),
    ];
    let op_id = |openapi: &mut utoipa::openapi::OpenApi, method: &str, path: &str| {
        let item = openapi.paths.paths.get_mut(path)?;
        operations_mut(item)
            .find(|(m, _)| m.as_str().eq_ignore_ascii_case(method))
            .and_then(|(_, op)| op.operation_id.clone())
    };
    for (method, path, status, targets) in LINKS {
        let links: Vec<(String, String)> = targets
            .iter()
            .filter_map(|(name, m, p)| op_id(openapi, m, p).map(|id| (name.to_string(), id)))
            .collect();
        let Some(item) = openapi.paths.paths.get_mut(path) else {
            continue;
        };
        let Some((_, op)) =
            operations_mut(item).find(|(m, _)| m.as_str().eq_ignore_ascii_case(method))
        else {
            continue;
        };
        if let Some(RefOr::T(r)) = op.responses.responses.get_mut(status) {
            for (name, id) in links {
                let mut link = LinkBuilder::new()
                    .parameter("id", "$response.body#/id")
                    .build();
                // utoipa 5 serialises `Link::operation_id` as `operation_id`;
                // the specification's name is `operationId`.
                link.extensions = Some(Extensions::from_iter([("operationId", id)]));
                r.links.insert(name, RefOr::T(link));
            }
        }
    }
}

fn problem_content() -> utoipa::openapi::Content {
    utoipa::openapi::Content::new(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    let mut h = utoipa::openapi::header::Header::new(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .build(),
    );
    h.description = Some(description.to_string());
    h
}

fn complete_operation(
    path: &str,
    method: &axum::http::Method,
    op: &mut utoipa::openapi::path::Operation,
) {
    use utoipa::openapi::{RefOr, ResponseBuilder};
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if secured {
        wanted.push((
            "401",
            "Missing, malformed, expired or wrongly signed token (`unauthorized`)",
        ));
    }
    if op.request_body.is_some() {
        wanted.push(("400", "Malformed JSON or an unknown field (`bad_request`)"));
        wanted.push(("413", "Request body over 64 KiB (`payload_too_large`)"));
        wanted.push((
            "422",
            "A field is missing, of the wrong type or invalid (`validation_failed`)",
        ));
    }
    if super::limits::is_limited_write(method, path) {
        wanted.push((
            "429",
            "Too many writes from this user or address, or too many of this user's requests in progress (`rate_limited`); see Retry-After",
        ));
    } else if path.starts_with("/v1/") && !path.starts_with("/v1/auth/") {
        wanted.push((
            "429",
            "Too many reads from this user or address, or too many of this user's requests in progress (`rate_limited`); see Retry-After",
        ));
    }
    if path.starts_with("/v1/") {
        wanted.push(("503", "Database unavailable or busy, the server at its limit of requests in progress, or the request took too long (`unavailable`); see Retry-After"));
    }
    for (status, description) in wanted {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/problem+json", problem_content())
                        .build(),
                )
            });
    }
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(r) = response else { continue };
        // error bodies are problem+json, whatever the annotation said
        if status.starts_with('4') || status.starts_with('5') {
            if let Some(c) = r.content.shift_remove("application/json") {
                r.content.insert("application/problem+json".to_string(), c);
            }
        }
        if status == "429" || status == "503" {
            r.headers
                .entry("Retry-After".to_string())
                .or_insert_with(|| string_header("Seconds to wait before retrying"));
        }
        if status == "401" {
            r.headers
                .entry("WWW-Authenticate".to_string())
                .or_insert_with(|| string_header("`Bearer`"));
        }
        r.headers.entry("X-Request-Id".to_string()).or_insert_with(|| {
            string_header("The request's id: the client's own X-Request-Id if it sent a sane one (1-128 of A-Z a-z 0-9 - _ . :), else a generated one")
        });
    }
}
