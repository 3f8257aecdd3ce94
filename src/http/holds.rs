//! `/v1/holds`: keep a seat while the customer confirms or pays, then turn
//! the hold into the booking (see migration 0008).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bookings::{booking_response, note_errors, parse_period, settle};
use super::extract::{parse_body, Caller, Json, PathId, SignedIn};
use super::idempotency::{self, fingerprint, IdempotencyKey};
use super::AppState;
use crate::db::bookings::{self, Hold, HoldOutcome};
use crate::domain::ResourceId;
use crate::error::{ApiError, ApiResult};

/// Body of `POST /v1/holds`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHold {
    pub resource_id: Uuid,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime, example = "2030-01-10T09:00:00Z")]
    pub start: String,
    /// RFC 3339 with an offset; exclusive.
    #[schema(format = DateTime, example = "2030-01-10T10:00:00Z")]
    pub end: String,
    /// How long the seat is kept: 30-3600 seconds, default 300.
    #[serde(default)]
    #[schema(minimum = 30, maximum = 3600, default = 300)]
    pub expires_in_seconds: Option<i32>,
}

/// Body of `POST /v1/holds/{id}/confirm`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmHold {
    #[serde(default)]
    pub note: Option<String>,
}

fn hold_response(h: &Hold) -> Response {
    let mut resp = (StatusCode::CREATED, axum::Json(h)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/holds/{}", h.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Hold a seat. The same rules as creating a booking apply; a live hold
/// occupies its seat exactly like a booking, an expired one never blocks.
#[utoipa::path(post, path = "/v1/holds", tag = "holds", request_body = CreateHold,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body replay the first answer")),
    responses(
        (status = 201, description = "Held", body = Hold, headers(("Location" = String))),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem),
        (status = 404, description = "No such active resource", body = crate::error::Problem),
        (status = 409, description = "slot_taken, user_overlap or idempotency_in_progress", body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<CreateHold>,
) -> ApiResult<Response> {
    let period = parse_period(&body.start, &body.end, None)?;
    let seconds = body.expires_in_seconds.unwrap_or(300);
    if !(30..=3600).contains(&seconds) {
        return Err(ApiError::validation(
            "expires_in_seconds",
            "must be between 30 and 3600",
        ));
    }
    let fp = fingerprint(
        "POST",
        "/v1/holds",
        serde_json::to_value(&body).ok().as_ref(),
    );
    let resource = body.resource_id;
    let result = idempotency::run(&st, &who, key.as_deref(), &fp, move |conn| {
        Box::pin(async move {
            match bookings::hold(conn, ResourceId(resource), period, seconds).await? {
                HoldOutcome::Held(h) => Ok(hold_response(&h)),
                HoldOutcome::Refused(out) => Err(settle(out).err().unwrap_or(ApiError::SlotTaken)),
            }
        })
    })
    .await;
    if result.is_ok() {
        st.wake.now();
    }
    result
}

/// Turn the hold into a booking: the seat passes from hold to booking with
/// no gap (`pending` on resources that require approval).
#[utoipa::path(post, path = "/v1/holds/{id}/confirm", tag = "holds", params(("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body(content = ConfirmHold, description = "Optional: a note for the booking"),
    responses(
        (status = 201, description = "Booked", body = crate::db::bookings::Booking, headers(("ETag" = String), ("Location" = String))),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "hold_expired", body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem),
        (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn confirm(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    raw: axum::body::Bytes,
) -> ApiResult<Response> {
    let body: ConfirmHold = if raw.iter().all(u8::is_ascii_whitespace) {
        ConfirmHold::default()
    } else {
        parse_body(&raw)?
    };
    let errors = note_errors(body.note.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let fp = fingerprint(
        "POST",
        &format!("/v1/holds/{id}/confirm"),
        serde_json::to_value(&body).ok().as_ref(),
    );
    let note = body.note;
    let result = idempotency::run(&st, &who, key.as_deref(), &fp, move |conn| {
        let note = note.clone();
        Box::pin(async move {
            let b = settle(bookings::confirm_hold(conn, id, note.as_deref()).await?)?;
            Ok(booking_response(StatusCode::CREATED, &b))
        })
    })
    .await;
    if result.is_ok() {
        st.wake.now();
    }
    result
}

/// A live hold of yours.
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds", params(("id" = Uuid, Path)),
    responses((status = 200, body = Hold), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Hold>> {
    let mut tx = st.db.begin(&who).await?;
    let h = bookings::get_hold(tx.conn(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(h))
}

/// Give the seat back (the holder or the service role).
#[utoipa::path(delete, path = "/v1/holds/{id}", tag = "holds", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Released"), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn release(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    let out = crate::db::retry::with_retry(|| {
        let st = st.clone();
        let who = who.clone();
        async move {
            let mut tx = st.db.begin(&who).await?;
            let out = bookings::release_hold(tx.conn(), id).await?;
            tx.commit().await?;
            Ok::<_, ApiError>(out)
        }
    })
    .await?;
    settle(out)?;
    Ok(StatusCode::NO_CONTENT)
}
