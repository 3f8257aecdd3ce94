//! Calendars (RFC 5545): one booking as `text/calendar`, and secret feed URLs
//! that calendar apps subscribe to without an Authorization header.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::RngCore;
use serde::Serialize;

use super::extract::{PathId, SignedIn};
use super::AppState;
use crate::calendar::{self, Entry};
use crate::db::calendars;
use crate::domain::{BookingId, ResourceId};
use crate::error::{ApiError, ApiResult};

/// A feed's URL: whoever has it reads the calendar (revoke it to stop that).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Feed {
    /// `…/ical/{token}.ics`
    pub url: String,
}

fn ics(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    r
}

/// One booking as iCalendar (for `GET /v1/bookings/{id}` with `Accept: text/calendar`).
pub async fn booking_ics(
    st: &AppState,
    who: &crate::identity::Identity,
    id: uuid::Uuid,
) -> ApiResult<Response> {
    let mut tx = st.db.begin(who).await?;
    let e: Entry = calendars::entry(tx.conn(), BookingId(id))
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(ics(calendar::render("Booking", &[e])))
}

fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

async fn create_feed(
    st: &AppState,
    who: &crate::identity::Identity,
    resource: Option<ResourceId>,
) -> ApiResult<Feed> {
    let token = new_token();
    let mut tx = st.db.begin(who).await?;
    if let Some(r) = resource {
        match calendars::resource_owner(tx.conn(), r).await? {
            None => return Err(ApiError::NotFound),
            Some(owner) if owner != Some(who.user_id) => {
                return Err(ApiError::Forbidden(
                    "only the resource's owner has its feed".into(),
                ))
            }
            Some(_) => {}
        }
    }
    if !calendars::create(tx.conn(), resource, &token).await? {
        return Err(ApiError::Forbidden(
            "this feed needs a signed-in user".into(),
        ));
    }
    tx.commit().await?;
    Ok(Feed {
        url: format!("{}/ical/{token}.ics", st.config.public_url),
    })
}

/// A secret feed URL of your bookings (from 30 days ago on; cancelled ones as
/// STATUS:CANCELLED). Asking again replaces it: the old URL stops working.
#[utoipa::path(post, path = "/v1/me/calendar-feed", tag = "calendars",
    responses((status = 201, body = Feed), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_mine(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
) -> ApiResult<(StatusCode, axum::Json<Feed>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(create_feed(&st, &who, None).await?),
    ))
}

/// Revoke your feed URL.
#[utoipa::path(delete, path = "/v1/me/calendar-feed", tag = "calendars",
    responses((status = 204, description = "Revoked"), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn revoke_mine(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin(&who).await?;
    if !calendars::revoke(tx.conn(), None).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A secret feed URL of every booking on a resource you own.
#[utoipa::path(post, path = "/v1/resources/{id}/calendar-feed", tag = "calendars", params(("id" = uuid::Uuid, Path)),
    responses((status = 201, body = Feed), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_resource(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
    PathId(id): PathId,
) -> ApiResult<(StatusCode, axum::Json<Feed>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(create_feed(&st, &who, Some(ResourceId(id))).await?),
    ))
}

/// Revoke your feed URL of a resource.
#[utoipa::path(delete, path = "/v1/resources/{id}/calendar-feed", tag = "calendars", params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn revoke_resource(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin(&who).await?;
    if !calendars::revoke(tx.conn(), Some(ResourceId(id))).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A feed, read by its secret URL (no Authorization header).
#[utoipa::path(get, path = "/ical/{token}.ics", tag = "calendars", params(("token" = String, Path, description = "The secret of a feed URL")),
    responses((status = 200, description = "The calendar", content_type = "text/calendar"),
        (status = 404, body = crate::error::Problem)))]
pub async fn feed(State(st): State<AppState>, Path(file): Path<String>) -> ApiResult<Response> {
    let token = file.strip_suffix(".ics").ok_or(ApiError::NotFound)?;
    let valid = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map(|b| b.len() == 32)
        .unwrap_or(false);
    if !valid {
        return Err(ApiError::NotFound);
    }
    let mut tx = st.db.begin_anon().await?;
    let entries = calendars::feed(tx.conn(), token)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(ics(calendar::render("Bookings", &entries)))
}
