//! `/v1/admin/resources/{id}/closures`: when a resource is closed (service role).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bookings::parse_period;
use super::extract::{Admin, Json, PathId, Query};
use super::AppState;
use crate::db::closures::{self, Added, Closure};
use crate::db::resources;
use crate::domain::ResourceId;
use crate::error::{ApiError, ApiResult, FieldError};

/// Body of `POST /v1/admin/resources/{id}/closures`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClosure {
    #[schema(format = DateTime, example = "2030-12-24T00:00:00+01:00")]
    pub start: String,
    #[schema(format = DateTime, example = "2030-12-27T00:00:00+01:00")]
    pub end: String,
    /// Shown to staff; at most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClosureQuery {
    /// true: cancel the live bookings inside the closure (with history);
    /// false (default): refuse with 409 closure_conflicts listing them.
    pub cancel_conflicting: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClosureList {
    pub items: Vec<Closure>,
}

/// Close a resource for a period.
#[utoipa::path(post, path = "/v1/admin/resources/{id}/closures", tag = "admin",
    params(("id" = Uuid, Path), ClosureQuery), request_body = CreateClosure,
    responses((status = 201, body = Closure), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "closure_conflicts: `errors` lists the live bookings inside (field `bookings[i]`, message = booking id)", body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
    Query(q): Query<ClosureQuery>,
    Json(body): Json<CreateClosure>,
) -> ApiResult<(StatusCode, axum::Json<Closure>)> {
    let cancel = match q.cancel_conflicting.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "cancel_conflicting",
                "must be true or false",
            ))
        }
    };
    let period = parse_period(&body.start, &body.end, None)?;
    if let Some(r) = &body.reason {
        if r.chars().count() > 500 || r.chars().any(char::is_control) {
            return Err(ApiError::validation(
                "reason",
                "at most 500 printable characters",
            ));
        }
    }
    let added = crate::db::retry::with_retry(|| {
        let st = st.clone();
        let who = who.clone();
        let reason = body.reason.clone();
        async move {
            let mut tx = st.db.begin(&who).await?;
            if resources::get(tx.conn(), ResourceId(id)).await?.is_none() {
                return Err(ApiError::NotFound);
            }
            let a =
                closures::add(tx.conn(), ResourceId(id), period, reason.as_deref(), cancel).await?;
            if matches!(a, Added::Created(_)) {
                tx.commit().await?;
            }
            Ok(a)
        }
    })
    .await?;
    match added {
        Added::Created(c) => {
            st.wake.now();
            Ok((StatusCode::CREATED, axum::Json(c)))
        }
        Added::Conflicts(ids) => Err(ApiError::ClosureConflicts(
            ids.iter()
                .enumerate()
                .map(|(i, b)| FieldError::new(format!("bookings[{i}]"), b.to_string()))
                .collect(),
        )),
    }
}

/// A resource's closures.
#[utoipa::path(get, path = "/v1/admin/resources/{id}/closures", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 200, body = ClosureList), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Admin(who): Admin,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ClosureList>> {
    let mut tx = st.db.begin(&who).await?;
    if resources::get(tx.conn(), ResourceId(id)).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let items = closures::list(tx.conn(), ResourceId(id)).await?;
    tx.commit().await?;
    Ok(axum::Json(ClosureList { items }))
}

/// Reopen: delete a closure.
#[utoipa::path(delete, path = "/v1/admin/resources/{id}/closures/{cid}", tag = "admin",
    params(("id" = Uuid, Path), ("cid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    Admin(who): Admin,
    ids: Result<Path<(Uuid, Uuid)>, axum::extract::rejection::PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((id, cid)) =
        ids.map_err(|_| ApiError::BadRequest("the ids in the path must be UUIDs".into()))?;
    let mut tx = st.db.begin(&who).await?;
    if !closures::remove(tx.conn(), ResourceId(id), cid).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
