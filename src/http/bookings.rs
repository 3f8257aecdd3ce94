//! `/v1/bookings`: create, list, get, reschedule, cancel, history.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{double_option, Admin, Caller, IfMatch, Json, PathId, Query, SignedIn};
use super::idempotency::{self, fingerprint, IdempotencyKey};
use super::AppState;
use crate::db::bookings::{self, Booking, Event, ListFilter, Outcome, Status};
use crate::domain::time_range::parse_instant;
use crate::domain::{BookingId, ResourceId, TimeRange, UserId};
use crate::error::{ApiError, ApiResult, FieldError};

/// Body of `POST /v1/bookings`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBooking {
    pub resource_id: Uuid,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime, example = "2030-01-10T09:00:00Z")]
    pub start: String,
    /// RFC 3339 with an offset; exclusive.
    #[schema(format = DateTime, example = "2030-01-10T10:00:00Z")]
    pub end: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `PATCH /v1/bookings/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reschedule {
    /// RFC 3339 with an offset.
    #[schema(format = DateTime, example = "2030-01-10T11:00:00Z")]
    pub start: String,
    /// RFC 3339 with an offset; exclusive.
    #[schema(format = DateTime, example = "2030-01-10T12:00:00Z")]
    pub end: String,
    /// Absent: keep; null: clear; a string: replace.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub note: Option<Option<String>>,
}

pub const MAX_NOTE_CHARS: usize = 1000;

/// What is wrong with a note, if anything.
pub fn note_errors(note: Option<&str>) -> Vec<FieldError> {
    match note {
        Some(n) if n.chars().count() > MAX_NOTE_CHARS => vec![FieldError::new(
            "note",
            format!("at most {MAX_NOTE_CHARS} characters"),
        )],
        Some(n) if n.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            vec![FieldError::new(
                "note",
                "must not contain control characters",
            )]
        }
        _ => Vec::new(),
    }
}

/// Parse and check a period and note; all field errors at once.
pub fn parse_period(start: &str, end: &str, note: Option<&str>) -> Result<TimeRange, ApiError> {
    let mut errors = Vec::new();
    let s = parse_instant(start)
        .map_err(|m| errors.push(FieldError::new("start", m)))
        .ok();
    let e = parse_instant(end)
        .map_err(|m| errors.push(FieldError::new("end", m)))
        .ok();
    errors.extend(note_errors(note));
    if let (Some(s), Some(e)) = (s, e) {
        match TimeRange::new(s, e) {
            Ok(r) if errors.is_empty() => return Ok(r),
            Ok(_) => {}
            Err(m) => errors.push(FieldError::new("end", m)),
        }
    }
    Err(ApiError::Validation(errors))
}

/// A booking response: the body, `ETag: "<version>"`, and the status.
pub fn booking_response(status: StatusCode, b: &Booking) -> Response {
    let mut resp = (status, axum::Json(b)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", b.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED {
        if let Ok(v) = HeaderValue::from_str(&format!("/v1/bookings/{}", b.id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    resp
}

/// Turn a write function's outcome into the booking or the matching error.
pub(crate) fn settle(out: Outcome) -> ApiResult<Booking> {
    match out {
        Outcome::Created(b) | Outcome::Updated(b) | Outcome::Unchanged(b) => Ok(b),
        Outcome::NotFound => Err(ApiError::NotFound),
        Outcome::SlotTaken => Err(ApiError::SlotTaken),
        Outcome::UserOverlap => Err(ApiError::UserOverlap),
        Outcome::PreconditionFailed => Err(ApiError::PreconditionFailed),
        Outcome::Forbidden => Err(ApiError::Forbidden(
            "staff may see and cancel bookings on their resources, not move them".into(),
        )),
        Outcome::Unauthenticated => Err(ApiError::Forbidden(
            "this action needs a signed-in user".into(),
        )),
        Outcome::Invalid { field, message } => Err(ApiError::validation(field, message)),
        Outcome::NotAllowed => Err(ApiError::NotAllowed(
            "the action does not apply to the booking in its current state".into(),
        )),
        Outcome::HoldExpired => Err(ApiError::HoldExpired),
    }
}

fn outcome_label(r: &ApiResult<Booking>) -> &'static str {
    match r {
        Ok(_) => "created",
        Err(ApiError::SlotTaken) => "slot_taken",
        Err(ApiError::UserOverlap) => "user_overlap",
        Err(ApiError::Validation(errs)) if errs.iter().any(|e| e.field == "active_bookings") => {
            "cap_reached"
        }
        Err(ApiError::Validation(_) | ApiError::NotFound) => "invalid",
        Err(e) if e.status().is_client_error() => "invalid",
        Err(_) => "error",
    }
}

/// Create a booking.
#[utoipa::path(post, path = "/v1/bookings", tag = "bookings", request_body = CreateBooking,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body replay the first answer (1-255 printable ASCII)")),
    responses(
        (status = 201, description = "Booked", body = Booking, headers(("ETag" = String), ("Location" = String))),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem),
        (status = 404, description = "No such active resource", body = crate::error::Problem),
        (status = 409, description = "slot_taken, user_overlap or idempotency_in_progress", body = crate::error::Problem),
        (status = 413, body = crate::error::Problem),
        (status = 422, description = "validation_failed (also when you already hold BOOKING_MAX_ACTIVE_BOOKINGS active bookings: field `active_bookings`) or idempotency_key_reused", body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<CreateBooking>,
) -> ApiResult<Response> {
    let period = match parse_period(&body.start, &body.end, body.note.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            metrics::counter!("booking_attempts_total", "outcome" => "invalid").increment(1);
            return Err(e);
        }
    };
    let fp = fingerprint(
        "POST",
        "/v1/bookings",
        serde_json::to_value(&body).ok().as_ref(),
    );
    let (resource_id, note) = (body.resource_id, body.note);
    if key.is_none() && st.db.one_trip_create().await {
        let result = crate::db::retry::with_retry(|| {
            bookings::create_one_trip(
                &st.db,
                &who,
                ResourceId(resource_id),
                period,
                note.as_deref(),
            )
        })
        .await
        .and_then(|out| {
            let settled = settle(out);
            metrics::counter!("booking_attempts_total", "outcome" => outcome_label(&settled))
                .increment(1);
            Ok(booking_response(StatusCode::CREATED, &settled?))
        });
        return finish_create(&st, result);
    }
    let result = idempotency::run(&st, &who, key.as_deref(), &fp, move |conn| {
        let note = note.clone();
        Box::pin(async move {
            let out =
                bookings::create(conn, ResourceId(resource_id), period, note.as_deref()).await?;
            let settled = settle(out);
            metrics::counter!("booking_attempts_total", "outcome" => outcome_label(&settled))
                .increment(1);
            Ok(booking_response(StatusCode::CREATED, &settled?))
        })
    })
    .await;
    finish_create(&st, result)
}

fn finish_create(st: &AppState, result: ApiResult<Response>) -> ApiResult<Response> {
    match &result {
        Ok(_) => st.wake.now(),
        Err(e) if e.status().is_server_error() => {
            metrics::counter!("booking_attempts_total", "outcome" => "error").increment(1);
        }
        Err(_) => {}
    }
    result
}

/// Query of the booking lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only bookings that end after this instant (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Only bookings that start before this instant (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// pending, confirmed, cancelled, rejected or expired.
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    #[param(format = Uuid)]
    pub resource_id: Option<String>,
    /// 1-100, default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Admin list only: one user's bookings.
    #[param(format = Uuid)]
    pub user_id: Option<String>,
}

/// A page of bookings.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BookingPage {
    pub items: Vec<Booking>,
    pub next_cursor: Option<String>,
}

fn encode_cursor(b: &Booking) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}|{}",
        b.start.timestamp_micros(),
        b.id
    ))
}

fn decode_cursor(s: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (micros, id) = text.split_once('|')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::parse_str(id).ok()?,
    ))
}

fn parse_list_query(q: &ListQuery, allow_user: bool) -> ApiResult<ListFilter> {
    let mut errors = Vec::new();
    let mut f = ListFilter {
        limit: 50,
        ..Default::default()
    };
    if let Some(v) = &q.from {
        f.from = parse_instant(v)
            .map_err(|m| errors.push(FieldError::new("from", m)))
            .ok();
    }
    if let Some(v) = &q.to {
        f.to = parse_instant(v)
            .map_err(|m| errors.push(FieldError::new("to", m)))
            .ok();
    }
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if b <= a {
            errors.push(FieldError::new("to", "must be after from"));
        }
    }
    match q.status.as_deref() {
        None => {}
        Some(s) => match Status::parse(s) {
            Some(st) => f.status = Some(st),
            None => errors.push(FieldError::new(
                "status",
                "must be pending, confirmed, cancelled, rejected or expired",
            )),
        },
    }
    if let Some(v) = &q.resource_id {
        f.resource_id = Uuid::parse_str(v)
            .map(Into::into)
            .map_err(|_| errors.push(FieldError::new("resource_id", "must be a UUID")))
            .ok();
    }
    if let Some(v) = &q.user_id {
        if allow_user {
            f.user_id = Uuid::parse_str(v)
                .map(Into::into)
                .map_err(|_| errors.push(FieldError::new("user_id", "must be a UUID")))
                .ok();
        } else {
            errors.push(FieldError::new(
                "user_id",
                "only the admin list filters by user",
            ));
        }
    }
    if let Some(v) = &q.limit {
        match v.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => f.limit = n,
            _ => errors.push(FieldError::new(
                "limit",
                "must be a whole number from 1 to 100",
            )),
        }
    }
    if let Some(v) = &q.cursor {
        match decode_cursor(v) {
            Some(c) => f.after = Some(c),
            None => errors.push(FieldError::new(
                "cursor",
                "is not a cursor this API returned",
            )),
        }
    }
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(ApiError::Validation(errors))
    }
}

async fn page(
    st: &AppState,
    who: &crate::identity::Identity,
    f: ListFilter,
) -> ApiResult<BookingPage> {
    let mut tx = st.db.begin(who).await?;
    let mut items = bookings::list(tx.conn(), &f).await?;
    tx.commit().await?;
    let next_cursor = if items.len() as i64 > f.limit {
        items.truncate(f.limit as usize);
        items.last().map(encode_cursor)
    } else {
        None
    };
    Ok(BookingPage { items, next_cursor })
}

/// List bookings: your own; with `resource_id`, every booking you may see on
/// that resource (all of them if you are its owner).
#[utoipa::path(get, path = "/v1/bookings", tag = "bookings", params(ListQuery),
    responses((status = 200, body = BookingPage), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<BookingPage>> {
    let mut f = parse_list_query(&q, false)?;
    if f.resource_id.is_none() && !who.is_service() {
        f.user_id = Some(UserId(who.user_id));
    }
    Ok(axum::Json(page(&st, &who, f).await?))
}

/// Every booking (service role).
#[utoipa::path(get, path = "/v1/admin/bookings", tag = "admin", params(ListQuery),
    responses((status = 200, body = BookingPage), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn admin_list(
    State(st): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<BookingPage>> {
    let f = parse_list_query(&q, true)?;
    Ok(axum::Json(page(&st, &who, f).await?))
}

/// One booking (yours, or on a resource you own). Anyone else's is 404.
/// With `Accept: text/calendar`: the booking as one iCalendar VEVENT.
#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "bookings", params(("id" = Uuid, Path)),
    responses((status = 200, headers(("ETag" = String)), content(
            (Booking = "application/json"),
            (String = "text/calendar", example = "BEGIN:VCALENDAR\r\n…UID:<id>@booking\r\nSEQUENCE:0\r\nSTATUS:CONFIRMED\r\n…END:VCALENDAR\r\n"))),
        (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let wants_ics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/calendar"));
    if wants_ics {
        return super::calendars::booking_ics(&st, &who, id).await;
    }
    let mut tx = st.db.begin(&who).await?;
    let b = bookings::get(tx.conn(), BookingId(id))
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(booking_response(StatusCode::OK, &b))
}

/// Reschedule (and optionally change the note). Atomic: if the new period is
/// taken the booking keeps its old one.
#[utoipa::path(patch, path = "/v1/bookings/{id}", tag = "bookings", request_body = Reschedule,
    params(("id" = Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The ETag you read: 412 if the booking changed since"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = Booking, headers(("ETag" = String))), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem),
        (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn reschedule(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
    if_match: Result<IfMatch, ApiError>,
    IdempotencyKey(key): IdempotencyKey,
    body: Result<Json<Reschedule>, ApiError>,
) -> ApiResult<Response> {
    // a request that would fail anyway is not a 412: the body is checked first (RFC 9110, 13.2.1)
    let Json(body) = body?;
    let note: Option<Option<String>> = body.note.clone();
    let period = parse_period(
        &body.start,
        &body.end,
        note.as_ref().and_then(|n| n.as_deref()),
    )?;
    let IfMatch(version) = if_match?;
    let canonical = serde_json::json!({"start": body.start, "end": body.end, "note": body.note, "if_match": version});
    let fp = fingerprint("PATCH", &format!("/v1/bookings/{id}"), Some(&canonical));
    let result = idempotency::run(&st, &who, key.as_deref(), &fp, move |conn| {
        let note = note.clone();
        Box::pin(async move {
            let note_ref = note.as_ref().map(|n| n.as_deref());
            let b = settle(
                bookings::reschedule(conn, BookingId(id), period, note_ref, version).await?,
            )?;
            Ok(booking_response(StatusCode::OK, &b))
        })
    })
    .await;
    if result.is_ok() {
        st.wake.now();
    }
    result
}

/// Cancel. Repeating it changes nothing.
#[utoipa::path(delete, path = "/v1/bookings/{id}", tag = "bookings",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag you read"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 200, body = Booking, headers(("ETag" = String))), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem),
        (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
    IfMatch(version): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> ApiResult<Response> {
    let fp = fingerprint(
        "DELETE",
        &format!("/v1/bookings/{id}"),
        Some(&serde_json::json!({"if_match": version})),
    );
    let result = idempotency::run(&st, &who, key.as_deref(), &fp, move |conn| {
        Box::pin(async move {
            let b = settle(bookings::cancel(conn, BookingId(id), version).await?)?;
            Ok(booking_response(StatusCode::OK, &b))
        })
    })
    .await;
    if result.is_ok() {
        st.wake.now();
    }
    result
}

/// History of a booking, a page at a time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    pub items: Vec<Event>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// Query of the history.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1-100, default 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// What happened to a booking: created, rescheduled, cancelled; who and when.
/// Oldest first, at most `limit` entries per page.
#[utoipa::path(get, path = "/v1/bookings/{id}/history", tag = "bookings", params(("id" = Uuid, Path), HistoryQuery),
    responses((status = 200, body = History), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn history(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<axum::Json<History>> {
    let mut errors = Vec::new();
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 100",
                ));
                100
            }
        },
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("h").and_then(|n| n.parse::<i64>().ok()))
        {
            Some(n) => Some(n),
            None => {
                errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this API returned",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = st.db.begin(&who).await?;
    bookings::get(tx.conn(), BookingId(id))
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut rows = bookings::history(tx.conn(), BookingId(id), after, limit).await?;
    drop(tx);
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|(n, _)| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("h{n}")))
    } else {
        None
    };
    Ok(axum::Json(History {
        items: rows.into_iter().map(|(_, e)| e).collect(),
        next_cursor,
    }))
}

/// Approve a pending booking (the resource's owner or the service role).
#[utoipa::path(post, path = "/v1/bookings/{id}/approve", tag = "bookings", params(("id" = Uuid, Path)),
    responses((status = 200, body = Booking, headers(("ETag" = String))), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "not_allowed: the booking is not pending", body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    decide(st, who, id, true).await
}

/// Reject a pending booking (the resource's owner or the service role).
#[utoipa::path(post, path = "/v1/bookings/{id}/reject", tag = "bookings", params(("id" = Uuid, Path)),
    responses((status = 200, body = Booking, headers(("ETag" = String))), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "not_allowed: the booking is not pending", body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    decide(st, who, id, false).await
}

async fn decide(
    st: AppState,
    who: crate::identity::Identity,
    id: Uuid,
    approve: bool,
) -> ApiResult<Response> {
    let b = crate::db::retry::with_retry(|| {
        let st = st.clone();
        let who = who.clone();
        async move {
            let mut tx = st.db.begin(&who).await?;
            let out = bookings::decide(tx.conn(), BookingId(id), approve).await?;
            tx.commit().await?;
            Ok::<_, ApiError>(out)
        }
    })
    .await?;
    let b = match settle(b) {
        Err(ApiError::Forbidden(_)) => {
            return Err(ApiError::Forbidden(
                "only the resource's owner or the service role approves or rejects".into(),
            ))
        }
        other => other?,
    };
    st.wake.now();
    Ok(booking_response(StatusCode::OK, &b))
}
