//! The OpenAPI 3.1 document: the operations the handlers declare, completed
//! with what the middleware does to every route (problem bodies, 401, 429,
//! 503, `Retry-After`, `X-Request-Id`), unique operationIds and links.

use utoipa::OpenApi;

use super::{
    bookings, calendars, closures, holds, ops, page, resources, series, signin, users, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "booking", description = "A booking backend on PostgreSQL: no double bookings, private by construction. \
Errors are application/problem+json with a stable `code`. Times are RFC 3339; periods are half-open [start, end)."),
    paths(
        bookings::create, bookings::list, bookings::get, bookings::reschedule, bookings::cancel, bookings::history,
        bookings::admin_list, bookings::approve, bookings::reject,
        holds::create, holds::confirm, holds::get, holds::release,
        series::create, series::get, series::cancel,
        closures::create, closures::list, closures::delete,
        calendars::create_mine, calendars::revoke_mine, calendars::create_resource, calendars::revoke_resource,
        calendars::feed, page::index,
        resources::list, resources::get, resources::availability, resources::create, resources::update,
        users::me, users::update_me, users::admin_create, users::admin_find,
        signin::send_otp, signin::verify, signin::refresh, signin::logout,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete, webhooks::rotate,
        webhooks::deliveries, webhooks::resend,
        ops::healthz, ops::readyz, ops::metrics, openapi_json, ops::docs,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&SecurityAddon, &ContractResponses),
    tags((name = "auth"), (name = "bookings"), (name = "resources"), (name = "users"), (name = "admin"), (name = "holds"), (name = "series"), (name = "calendars"), (name = "webhooks"), (name = "operations"))
)]
pub struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
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
        answers_have_every_field(openapi);
    }
}

/// What the server answers always carries every field (a null where there
/// is no value): mark them all required, so that generated clients type
/// `note: string | null`, not `note?: string | null`. Fields the server
/// leaves out are the exceptions.
fn answers_have_every_field(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, Schema};
    const ANSWERS: [&str; 18] = [
        "Booking",
        "Resource",
        "User",
        "Event",
        "Hold",
        "Series",
        "Closure",
        "ClosureList",
        "Endpoint",
        "EndpointList",
        "Delivery",
        "DeliveryList",
        "Slot",
        "Availability",
        "BookingPage",
        "History",
        "ResourceList",
        "Feed",
    ];
    const LEFT_OUT: [(&str, &str); 1] = [("Endpoint", "secret")];
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for name in ANSWERS {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(name) {
            o.required = o
                .properties
                .keys()
                .filter(|k| !LEFT_OUT.contains(&(name, k.as_str())))
                .cloned()
                .collect();
        }
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
