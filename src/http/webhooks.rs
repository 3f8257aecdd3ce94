//! `/v1/admin/webhooks`: endpoints, their secrets, their delivery log, and
//! resending a message (service role only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{double_option, Admin, Json, PathId, Query};
use super::AppState;
use crate::db::resources;
use crate::db::webhooks::{self as db, Delivery, Endpoint, EndpointFields};
use crate::domain::ResourceId;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::webhooks::{sign, ssrf};

/// At most this many endpoints: every change is fanned out to each of them
/// in its own transaction.
pub const MAX_ENDPOINTS: i64 = 100;

const EVENTS: [&str; 13] = [
    "booking.created",
    "booking.rescheduled",
    "booking.cancelled",
    "booking.pending",
    "booking.approved",
    "booking.rejected",
    "booking.expired",
    "booking.reminder",
    "hold.created",
    "hold.confirmed",
    "hold.expired",
    "series.created",
    "series.cancelled",
];

/// Body of `POST /v1/admin/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// http:// or https://; with `BOOKING_WEBHOOK_ALLOW_PRIVATE=off` every
    /// address the host resolves to must be public.
    pub url: String,
    /// Events to receive; omitted or null = all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Only this resource's events; omitted or null = every resource.
    #[serde(default)]
    pub resource_id: Option<Uuid>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PATCH /v1/admin/webhooks/{id}`: only the fields given change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub resource_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// false disables; true re-enables (and forgets why it was disabled).
    #[serde(default)]
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    pub items: Vec<Endpoint>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1-100, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

async fn validate(
    st: &AppState,
    conn: &mut sqlx::PgConnection,
    f: &EndpointFields,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    if f.url.len() > 2048 {
        errors.push(FieldError::new("url", "at most 2048 characters"));
    } else if let Err(m) = ssrf::check_url(&f.url, st.config.webhook_allow_private).await {
        errors.push(FieldError::new("url", m));
    }
    if let Some(events) = &f.events {
        if events.is_empty() {
            errors.push(FieldError::new(
                "events",
                "list at least one event, or omit it for all",
            ));
        }
        for (i, e) in events.iter().enumerate() {
            if !EVENTS.contains(&e.as_str()) {
                errors.push(FieldError::new(
                    format!("events[{i}]"),
                    format!("unknown event; one of {}", EVENTS.join(", ")),
                ));
            }
        }
    }
    if let Some(d) = &f.description {
        if d.chars().count() > 500 || d.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "description",
                "at most 500 printable characters",
            ));
        }
    }
    if let Some(r) = f.resource_id {
        if resources::get(conn, ResourceId(r)).await?.is_none() {
            errors.push(FieldError::new("resource_id", "no such resource"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn dedup(events: Option<Vec<String>>) -> Option<Vec<String>> {
    events.map(|mut v| {
        let mut seen = std::collections::HashSet::new();
        v.retain(|e| seen.insert(e.clone()));
        v
    })
}

/// Subscribe an endpoint. The answer carries its signing secret (only here
/// and when rotated).
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "webhooks", request_body = CreateEndpoint,
    responses((status = 201, body = Endpoint), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Admin(who): Admin,
    Json(body): Json<CreateEndpoint>,
) -> ApiResult<(StatusCode, axum::Json<Endpoint>)> {
    let f = EndpointFields {
        url: body.url.trim().to_string(),
        events: dedup(body.events),
        resource_id: body.resource_id,
        description: body.description,
        active: true,
    };
    let mut tx = st.db.begin(&who).await?;
    validate(&st, tx.conn(), &f).await?;
    if db::count(tx.conn()).await? >= MAX_ENDPOINTS {
        return Err(ApiError::validation(
            "url",
            format!("at most {MAX_ENDPOINTS} endpoints; delete one first"),
        ));
    }
    let e = db::insert(tx.conn(), &f, &sign::new_secret()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(e)))
}

/// Every endpoint (without secrets).
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "webhooks",
    responses((status = 200, body = EndpointList), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Admin(who): Admin,
) -> ApiResult<axum::Json<EndpointList>> {
    let mut tx = st.db.begin(&who).await?;
    let items = db::list(tx.conn()).await?;
    tx.commit().await?;
    Ok(axum::Json(EndpointList { items }))
}

/// One endpoint (without its secret).
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = Endpoint), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Endpoint>> {
    let mut tx = st.db.begin(&who).await?;
    let e = db::get(tx.conn(), id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(e))
}

/// Change an endpoint; `active: true` re-enables a disabled one.
#[utoipa::path(patch, path = "/v1/admin/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body = UpdateEndpoint,
    responses((status = 200, body = Endpoint), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
    Json(body): Json<UpdateEndpoint>,
) -> ApiResult<axum::Json<Endpoint>> {
    let mut tx = st.db.begin(&who).await?;
    let cur = db::get(tx.conn(), id).await?.ok_or(ApiError::NotFound)?;
    let f = EndpointFields {
        url: body.url.map(|u| u.trim().to_string()).unwrap_or(cur.url),
        events: dedup(body.events.unwrap_or(cur.events)),
        resource_id: body.resource_id.unwrap_or(cur.resource_id),
        description: body.description.unwrap_or(cur.description),
        active: body.active.unwrap_or(cur.active),
    };
    validate(&st, tx.conn(), &f).await?;
    let e = db::update(tx.conn(), id, &f)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    st.wake.now();
    Ok(axum::Json(e))
}

/// Delete an endpoint, its undelivered messages and its log. In steps: it is
/// turned off first (nothing new is written for it, nothing delivered), then
/// its messages go in batches, then the endpoint — so neither a large backlog
/// nor booking writes in flight make one long transaction.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    let mut tx = st.db.begin(&who).await?;
    if !db::deactivate(tx.conn(), id).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    loop {
        let mut tx = st.db.begin(&who).await?;
        let n = db::purge_messages(tx.conn(), id, 5000).await?;
        tx.commit().await?;
        if n < 5000 {
            break;
        }
    }
    let mut tx = st.db.begin(&who).await?;
    db::delete(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret. The previous one keeps signing alongside for 24 hours
/// (`webhook-signature` then carries both signatures).
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = Endpoint), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn rotate(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Endpoint>> {
    let mut tx = st.db.begin(&who).await?;
    let e = db::rotate(tx.conn(), id, &sign::new_secret())
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(e))
}

/// The delivery log: every attempt, newest first.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<axum::Json<DeliveryList>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 100"));
    }
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::validation("cursor", "not a cursor this API gave out"))?,
        ),
    };
    let mut tx = st.db.begin(&who).await?;
    db::get(tx.conn(), id).await?.ok_or(ApiError::NotFound)?;
    let mut items = db::deliveries(tx.conn(), id, before, limit + 1).await?;
    tx.commit().await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|d| d.seq.to_string())
    } else {
        None
    };
    Ok(axum::Json(DeliveryList { items, next_cursor }))
}

/// Send a message again, now, with a fresh retry schedule and the same
/// `webhook-id` (receivers de-duplicate by it).
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/messages/{message_id}/resend", tag = "webhooks",
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 202, description = "Queued"), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn resend(
    State(st): State<AppState>,
    Admin(who): Admin,
    ids: Result<Path<(Uuid, Uuid)>, axum::extract::rejection::PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((id, message)) =
        ids.map_err(|_| ApiError::BadRequest("the ids in the path must be UUIDs".into()))?;
    let mut tx = st.db.begin(&who).await?;
    if !db::resend(tx.conn(), id, message).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    st.wake.now();
    Ok(StatusCode::ACCEPTED)
}
