//! The outer request pipeline: request id, timeout, one JSON log line and
//! metrics per request (labelled by route *template*), and a guarantee that
//! every error response is problem+json whoever produced it.

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::cell::RefCell;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::error::{problem_response, REQUEST_ID};

/// How long one request may take before it is answered with a 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct RequestInfo {
    route: Option<String>,
    user: Option<Uuid>,
}

tokio::task_local! {
    static INFO: RefCell<RequestInfo>;
}

/// The request's bearer token, verified once (by [`authenticate`]) and kept in
/// the request's extensions for the limits and the extractors.
#[derive(Debug, Clone)]
pub enum Bearer {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Bearer <token>`.
    Malformed(&'static str),
    /// A token that does not verify (any reason: one opaque answer).
    Invalid,
    Valid(crate::identity::Identity),
}

impl Bearer {
    pub fn of(headers: &axum::http::HeaderMap, keys: &crate::identity::jwt::Keys) -> Bearer {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Bearer::Missing;
        };
        let Ok(value) = value.to_str() else {
            return Bearer::Malformed("invalid authorization header");
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Bearer::Malformed("expected `Authorization: Bearer <token>`"),
        };
        match keys.verify(token) {
            Ok(who) => Bearer::Valid(who),
            Err(e) => {
                tracing::debug!(reason = %e, "token refused");
                Bearer::Invalid
            }
        }
    }

    pub fn identity(&self) -> Option<&crate::identity::Identity> {
        match self {
            Bearer::Valid(who) => Some(who),
            _ => None,
        }
    }
}

/// Verify the bearer token once per request.
pub async fn authenticate(
    axum::extract::State(keys): axum::extract::State<std::sync::Arc<crate::identity::jwt::Keys>>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = Bearer::of(req.headers(), &keys);
    req.extensions_mut().insert(bearer);
    next.run(req).await
}

/// Called by the auth extractor: the user id goes into the request's log line.
pub fn record_user(id: Uuid) {
    let _ = INFO.try_with(|i| i.borrow_mut().user = Some(id));
}

/// Inner layer (runs after routing): remembers the matched route template.
pub async fn record_route(req: Request, next: Next) -> Response {
    if let Some(p) = req.extensions().get::<MatchedPath>() {
        let route = p.as_str().to_string();
        let _ = INFO.try_with(|i| i.borrow_mut().route = Some(route));
    }
    next.run(req).await
}

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_string())
}

/// Outer layer.
pub async fn pipeline(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(sane_request_id)
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
    let method = req.method().clone();

    let fut = INFO.scope(RefCell::new(RequestInfo::default()), async {
        let resp = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
            Ok(resp) => resp,
            Err(_) => problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the request took too long".into(),
                None,
                Some(1),
            ),
        };
        let info = INFO.with(|i| std::mem::take(&mut *i.borrow_mut()));
        (normalise(resp), info)
    });
    // every log line written while the request runs carries its id
    let span = tracing::info_span!("request", request_id = %request_id);
    let (mut resp, info) = REQUEST_ID
        .scope(
            request_id.clone(),
            tracing::Instrument::instrument(fut, span),
        )
        .await;

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let route = info.route.unwrap_or_else(|| "unmatched".into());
    let elapsed = started.elapsed();
    let class = format!("{}xx", status / 100);
    metrics::counter!("http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => class.clone())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone(), "status" => class)
        .record(elapsed.as_secs_f64());
    tracing::info!(
        target: "booking::http",
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        user_id = info.user.map(|u| u.to_string()),
        "request"
    );
    resp
}

/// Error responses not made by `ApiError` (unknown route, wrong method, a
/// panic, ...) are rewritten into problem+json.
fn normalise(resp: Response) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().starts_with(b"application/problem+json"))
        .unwrap_or(false);
    if is_problem {
        return resp;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ("bad_request", "method not allowed on this route"),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "request body too large (max 64 KiB)")
        }
        StatusCode::UNAUTHORIZED => ("unauthorized", "authentication required"),
        StatusCode::FORBIDDEN => ("forbidden", "forbidden"),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "service unavailable"),
        s if s.is_server_error() => ("internal", "an internal error occurred"),
        _ => ("bad_request", "bad request"),
    };
    let retry = matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    )
    .then_some(1);
    let mut out = problem_response(status, code, detail.into(), None, retry);
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
