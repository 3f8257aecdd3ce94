//! `/v1/me` and `/v1/admin/users`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::extract::{double_option, Admin, Json, Query, SignedIn};
use super::AppState;
use crate::db::users::{self, User};
use crate::domain::Phone;
use crate::error::{ApiError, ApiResult};

/// Check a display name: 1-100 characters, no control characters.
pub fn check_display_name(name: Option<&str>) -> ApiResult<Option<String>> {
    match name.map(str::trim) {
        None => Ok(None),
        Some(n) if n.is_empty() || n.chars().count() > 100 => Err(ApiError::validation(
            "display_name",
            "must be 1 to 100 characters",
        )),
        Some(n) if n.chars().any(|c| c.is_control() || matches!(c, '<' | '>')) => Err(
            ApiError::validation("display_name", "must not contain control characters or < >"),
        ),
        Some(n) => Ok(Some(n.to_string())),
    }
}

/// The signed-in user.
#[utoipa::path(get, path = "/v1/me", tag = "users",
    responses((status = 200, body = User), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn me(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
) -> ApiResult<axum::Json<User>> {
    let mut tx = st.db.begin(&who).await?;
    let u = users::me(tx.conn()).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(u))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// 1-100 characters; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
}

/// Change your display name.
#[utoipa::path(patch, path = "/v1/me", tag = "users", request_body = UpdateMe,
    responses((status = 200, body = User), (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update_me(
    State(st): State<AppState>,
    SignedIn(who): SignedIn,
    Json(body): Json<UpdateMe>,
) -> ApiResult<axum::Json<User>> {
    let mut tx = st.db.begin(&who).await?;
    let u = match body.display_name {
        None => users::me(tx.conn()).await?,
        Some(name) => {
            let name = check_display_name(name.as_deref())?;
            users::set_display_name(tx.conn(), name.as_deref()).await?
        }
    }
    .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(u))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub phone: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

pub fn parse_phone(s: &str) -> ApiResult<Phone> {
    Phone::parse(s).map_err(|e| ApiError::validation("phone", e.to_string()))
}

/// Get or create a user by phone (service role): 201 when created, 200 when it existed.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", request_body = CreateUser,
    responses((status = 201, description = "Created", body = User), (status = 200, description = "Existed", body = User),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn admin_create(
    State(st): State<AppState>,
    Admin(who): Admin,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, axum::Json<User>)> {
    let phone = parse_phone(&body.phone)?;
    let name = check_display_name(body.display_name.as_deref())?;
    let mut tx = st.db.begin(&who).await?;
    let (u, created) = users::get_or_create(tx.conn(), &phone, name.as_deref()).await?;
    tx.commit().await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        axum::Json(u),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhoneQuery {
    /// E.164 (or any international format; it is normalised).
    #[param(value_type = String)]
    pub phone: Option<String>,
}

/// Find a user by phone (service role).
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", params(PhoneQuery),
    responses((status = 200, body = User), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn admin_find(
    State(st): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<PhoneQuery>,
) -> ApiResult<axum::Json<User>> {
    let phone = parse_phone(q.phone.as_deref().unwrap_or(""))?;
    let mut tx = st.db.begin(&who).await?;
    let u = users::by_phone(tx.conn(), &phone)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(u))
}
