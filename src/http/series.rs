//! `/v1/series`: recurring bookings, all or nothing (see migration 0008).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bookings::{parse_period, settle};
use super::extract::{Caller, Json, PathId, Query, SignedIn};
use super::idempotency::{self, fingerprint, IdempotencyKey};
use super::AppState;
use crate::db::bookings::{self, Booking, SeriesOutcome};
use crate::domain::time_range::parse_instant;
use crate::domain::{rrule, ResourceId};
use crate::error::{ApiError, ApiResult, FieldError};

/// Body of `POST /v1/series`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSeries {
    pub resource_id: Uuid,
    /// The first occurrence's start (RFC 3339); every occurrence keeps its
    /// local wall-clock time in the resource's time zone.
    #[schema(format = DateTime, example = "2030-01-07T09:00:00+01:00")]
    pub start: String,
    /// The first occurrence's end; every occurrence lasts as long.
    #[schema(format = DateTime, example = "2030-01-07T10:00:00+01:00")]
    pub end: String,
    /// RFC 5545 subset: FREQ=DAILY|WEEKLY, INTERVAL, BYDAY (WEEKLY), and
    /// exactly one of COUNT (1-100) or UNTIL.
    #[schema(example = "FREQ=WEEKLY;BYDAY=MO;COUNT=10")]
    pub rrule: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// A series with its bookings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Series {
    pub id: Uuid,
    pub resource_id: Uuid,
    pub rrule: String,
    pub bookings: Vec<Booking>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CancelFrom {
    /// Cancel every occurrence starting at or after this instant (RFC 3339); default now.
    #[param(format = DateTime)]
    pub from: Option<String>,
}

/// Book a recurring series: every occurrence or none.
#[utoipa::path(post, path = "/v1/series", tag = "series", request_body = CreateSeries,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Every occurrence booked", body = Series, headers(("Location" = String))),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, description = "series_conflict: `errors` names each refused occurrence (`occurrences[i]`) and its start; nothing was created", body = crate::error::Problem),
        (status = 413, body = crate::error::Problem),
        (status = 422, description = "validation_failed: a bad rrule, or occurrences a rule refuses (`occurrences[i]`)", body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<CreateSeries>,
) -> ApiResult<Response> {
    let period = parse_period(&body.start, &body.end, body.note.as_deref())?;
    let rule = rrule::parse(&body.rrule).map_err(|m| ApiError::validation("rrule", m))?;
    let fp = fingerprint(
        "POST",
        "/v1/series",
        serde_json::to_value(&body).ok().as_ref(),
    );
    let (resource, note) = (body.resource_id, body.note);
    let result = idempotency::run(&st, &who, key.as_deref(), &fp, move |conn| {
        let (rule, note) = (rule.clone(), note.clone());
        Box::pin(async move {
            match bookings::create_series(
                conn,
                ResourceId(resource),
                period,
                &rule,
                note.as_deref(),
            )
            .await?
            {
                SeriesOutcome::Created(items) => {
                    let id = items.first().and_then(|b| b.series_id).unwrap_or_default();
                    let s = Series {
                        id,
                        resource_id: resource,
                        rrule: rule.text.clone(),
                        bookings: items,
                    };
                    let mut resp = (StatusCode::CREATED, axum::Json(s)).into_response();
                    if let Ok(v) = HeaderValue::from_str(&format!("/v1/series/{id}")) {
                        resp.headers_mut().insert(header::LOCATION, v);
                    }
                    Ok(resp)
                }
                SeriesOutcome::Occurrences(list) => Err(refusal(list)),
                SeriesOutcome::Refused(out) => {
                    Err(settle(out).err().unwrap_or(ApiError::SlotTaken))
                }
            }
        })
    })
    .await;
    if result.is_ok() {
        st.wake.now();
    }
    result
}

/// One refusal for the whole request, or one error per refused occurrence:
/// 409 series_conflict when any was taken, else 422.
fn refusal(list: Vec<(String, String, String)>) -> ApiError {
    let conflict = list
        .iter()
        .any(|(outcome, _, _)| outcome == "slot_taken" || outcome == "user_overlap");
    let errors = list
        .into_iter()
        .map(|(_, field, message)| FieldError::new(field, message))
        .collect();
    if conflict {
        ApiError::SeriesConflict(errors)
    } else {
        ApiError::Validation(errors)
    }
}

/// A series of yours with its bookings.
#[utoipa::path(get, path = "/v1/series/{id}", tag = "series", params(("id" = Uuid, Path)),
    responses((status = 200, body = Series), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Series>> {
    let mut tx = st.db.begin(&who).await?;
    let s = bookings::get_series(tx.conn(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let items = bookings::series_bookings(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(axum::Json(Series {
        id: s.id,
        resource_id: s.resource_id,
        rrule: s.rrule,
        bookings: items,
    }))
}

/// Cancel every occurrence starting at or after `from` (default now); the
/// earlier ones stay as they are.
#[utoipa::path(delete, path = "/v1/series/{id}", tag = "series", params(("id" = Uuid, Path), CancelFrom),
    responses((status = 200, body = Series), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem),
        (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(st): State<AppState>,
    Caller(who): Caller,
    PathId(id): PathId,
    Query(q): Query<CancelFrom>,
) -> ApiResult<axum::Json<Series>> {
    let from = match q.from.as_deref() {
        None => None,
        Some(f) => Some(parse_instant(f).map_err(|m| ApiError::validation("from", m))?),
    };
    let series = crate::db::retry::with_retry(|| {
        let st = st.clone();
        let who = who.clone();
        async move {
            let mut tx = st.db.begin(&who).await?;
            if bookings::cancel_series(tx.conn(), id, from)
                .await?
                .is_none()
            {
                return Err(ApiError::NotFound);
            }
            let s = bookings::get_series(tx.conn(), id).await?;
            let items = bookings::series_bookings(tx.conn(), id).await?;
            tx.commit().await?;
            let s = s.ok_or(ApiError::NotFound)?;
            Ok(Series {
                id: s.id,
                resource_id: s.resource_id,
                rrule: s.rrule,
                bookings: items,
            })
        }
    })
    .await?;
    st.wake.now();
    Ok(axum::Json(series))
}
