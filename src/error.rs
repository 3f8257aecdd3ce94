//! One error type, one wire shape: every 4xx/5xx is `application/problem+json`
//! `{"type","title","status","detail","code","request_id","errors"?}` with a
//! stable machine `code`. Database errors are mapped by SQLSTATE *and*
//! constraint name, never by kind alone; a 5xx is logged with its cause and
//! sent without internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The current request's id (set by the request-id middleware), so that
    /// every problem body can carry it.
    pub static REQUEST_ID: String;
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The problem+json body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("the requested time is not available")]
    SlotTaken,
    #[error("you already hold an overlapping booking")]
    UserOverlap,
    #[error("{0}")]
    Conflict(String),
    #[error("the resource changed since you read it")]
    PreconditionFailed,
    #[error("{0}")]
    NotAllowed(String),
    #[error("the hold expired before it was confirmed")]
    HoldExpired,
    #[error("some occurrences of the series cannot be booked; nothing was created")]
    SeriesConflict(Vec<FieldError>),
    #[error("live bookings lie inside the closure; pass cancel_conflicting=true to cancel them")]
    ClosureConflicts(Vec<FieldError>),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyInProgress,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("too many requests")]
    RateLimited { retry_after: u64 },
    #[error("service temporarily unavailable")]
    Unavailable { retry_after: u64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// Map a database error: constraint names first, then transient states.
    fn classify(&self) -> (StatusCode, &'static str, Option<u64>) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", None),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            NotFound => (StatusCode::NOT_FOUND, "not_found", None),
            Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None),
            SlotTaken => (StatusCode::CONFLICT, "slot_taken", None),
            UserOverlap => (StatusCode::CONFLICT, "user_overlap", None),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition_failed", None),
            NotAllowed(_) => (StatusCode::CONFLICT, "not_allowed", None),
            HoldExpired => (StatusCode::CONFLICT, "hold_expired", None),
            SeriesConflict(_) => (StatusCode::CONFLICT, "series_conflict", None),
            ClosureConflicts(_) => (StatusCode::CONFLICT, "closure_conflicts", None),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                None,
            ),
            IdempotencyInProgress => (StatusCode::CONFLICT, "idempotency_in_progress", None),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Some(*retry_after),
            ),
            Unavailable { retry_after } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                Some(*retry_after),
            ),
            Database(e) => classify_db(e),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.classify().0
    }
}

/// SQLSTATE and constraint name of a database error, if it is one.
pub fn db_error_parts(e: &sqlx::Error) -> Option<(String, Option<String>)> {
    match e {
        sqlx::Error::Database(d) => Some((
            d.code().map(|c| c.to_string()).unwrap_or_default(),
            d.constraint().map(str::to_string),
        )),
        _ => None,
    }
}

/// The failures worth retrying as a whole transaction (nothing of it was
/// committed): serialization failures, deadlocks, lock timeouts, and the
/// connection and shutdown classes (the database restarting, a connection
/// closed or refused). The label is what `booking_db_retries_total` counts.
pub fn transient(e: &sqlx::Error) -> Option<&'static str> {
    match e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("40001") => Some("40001"),
            Some("40P01") => Some("40P01"),
            Some("55P03") => Some("55P03"),
            Some("57P01") => Some("57P01"),
            Some("57P02") => Some("57P02"),
            Some("57P03") => Some("57P03"),
            Some(c) if c.starts_with("08") => Some("08"),
            Some("XX000") if citus_node_unreachable(d.as_ref()) => Some("citus_node"),
            _ => None,
        },
        sqlx::Error::Io(_) => Some("connection"),
        _ => None,
    }
}

/// A Citus coordinator could not reach (or lost) a worker: Citus reports it
/// as an internal error (XX000) from its connection layer, not as 08xxx. The
/// statement failed before anything committed (a failure at COMMIT never
/// comes here, see `db::Scoped::commit`), and a new transaction opens new
/// worker connections: transient, like a lost connection.
fn citus_node_unreachable(d: &dyn sqlx::error::DatabaseError) -> bool {
    d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|p| {
            matches!(
                p.file(),
                Some("remote_transaction.c" | "connection_management.c" | "remote_commands.c")
            ) || p.message().starts_with("cannot connect to")
                || p.message().contains("connection to the remote node")
        })
}

/// A database error by SQLSTATE and constraint name. Integrity errors the
/// caller can fix are 4xx; connection- and shutdown-class failures (the
/// database restarting, a connection lost, the pool exhausted) are 503 with
/// `Retry-After`; anything else is a bug and a 500.
fn classify_db(e: &sqlx::Error) -> (StatusCode, &'static str, Option<u64>) {
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Some(1));
    match db_error_parts(e) {
        Some((code, constraint)) => match (code.as_str(), constraint.as_deref()) {
            ("23P01", Some("bookings_no_overlap")) => (StatusCode::CONFLICT, "slot_taken", None),
            ("23P01", Some("bookings_user_no_overlap")) => {
                (StatusCode::CONFLICT, "user_overlap", None)
            }
            ("23503", Some("bookings_resource_id_fkey")) => {
                (StatusCode::NOT_FOUND, "not_found", None)
            }
            // capacity lowered while this request picked a seat: that seat is gone
            ("23514", Some("bookings_seat_within_capacity")) => {
                (StatusCode::CONFLICT, "slot_taken", None)
            }
            ("23503", Some("resources_owner_id_fkey")) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None)
            }
            ("23505", _) | ("23P01", _) | ("23503", _) => (StatusCode::CONFLICT, "conflict", None),
            ("23514" | "23502" | "22023" | "54000", _) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", None)
            }
            // retried first (see `transient`); then, like a statement timeout
            // (57014) or a full server (53300, 53400), an honest 503
            _ if transient(e).is_some() => unavailable,
            ("57014" | "53300" | "53400", _) => unavailable,
            (c, _) if c.starts_with("08") || c.starts_with("57") => unavailable,
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        },
        None => match e {
            _ if transient(e).is_some() => unavailable,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => unavailable,
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        },
    }
}

/// What a client-side database error tells the caller (never the database's
/// own message, which may name tables or values).
fn db_client_detail(e: &sqlx::Error) -> String {
    match db_error_parts(e) {
        Some((code, constraint)) => match (code.as_str(), constraint.as_deref()) {
            ("23503", Some("bookings_resource_id_fkey")) => "no such active resource".into(),
            ("23503", Some("resources_owner_id_fkey")) => "owner_id: no such user".into(),
            ("23503", _) => "the request refers to something that does not exist".into(),
            ("23505", _) => "the request conflicts with an existing record".into(),
            ("23514" | "23502", Some(c)) => format!("the request breaks the rule `{c}`"),
            ("22023" | "54000", _) => "a parameter is out of the allowed range".into(),
            _ => "the request conflicts with the current data".into(),
        },
        None => "the request could not be processed".into(),
    }
}

/// Title for a status code.
pub fn title_for(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("Error").to_string()
}

/// The current request id, or "-" outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "-".into())
}

/// Build a problem response from its parts.
pub fn problem_response(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Option<Vec<FieldError>>,
    retry_after: Option<u64>,
) -> Response {
    let body = Problem {
        kind: format!("https://booking.invalid/problems/{code}"),
        title: title_for(status),
        status: status.as_u16(),
        detail,
        code: code.to_string(),
        request_id: current_request_id(),
        errors,
    };
    let mut resp = (status, serde_json::to_string(&body).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // the cap, enforced by the bookings trigger when two writes of one
        // user raced past the write function's check: the same answer as
        // the check's
        if let ApiError::Database(e) = &self {
            if let Some((code, Some(c))) = db_error_parts(e) {
                if code == "23514" && c == "bookings_active_cap" {
                    let message = match e {
                        sqlx::Error::Database(d) => d.message().to_string(),
                        _ => String::new(),
                    };
                    return ApiError::validation("active_bookings", message).into_response();
                }
            }
        }
        let (status, code, retry_after) = self.classify();
        let detail = if status.is_server_error() {
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = ?self, "request failed");
            } else {
                tracing::warn!(error = %self, "request unavailable");
            }
            match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "the service is busy or the database is unavailable; retry later".into()
                }
                _ => "an internal error occurred".into(),
            }
        } else {
            match (&self, code) {
                (_, "slot_taken") => ApiError::SlotTaken.to_string(),
                (_, "user_overlap") => ApiError::UserOverlap.to_string(),
                (ApiError::Database(e), _) => db_client_detail(e),
                (ApiError::Validation(errs), _) => errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => self.to_string(),
            }
        };
        let errors = match self {
            ApiError::Validation(errs)
            | ApiError::SeriesConflict(errs)
            | ApiError::ClosureConflicts(errs) => Some(errs),
            _ => None,
        };
        problem_response(status, code, detail, errors, retry_after)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
