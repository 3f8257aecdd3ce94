//! Extractors that fail the way the contract says: as problem+json with a
//! stable code, never axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use crate::auth::Identity;
use crate::error::{ApiError, FieldError};

/// A JSON body: unknown fields and malformed JSON are 400, a wrong type or a
/// missing field is 422 naming the field, too large is 413.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    match r {
        JsonRejection::JsonDataError(e) => {
            // "field: message at line.." from serde_path_to_error
            let text = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text());
            if text.contains("unknown field") {
                return ApiError::BadRequest(format!("invalid JSON body: {text}"));
            }
            let (field, message) = match text.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_string(), m.to_string()),
                _ => (field_from_message(&text), text.clone()),
            };
            ApiError::Validation(vec![FieldError::new(field, message)])
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::BadRequest("expected a JSON body with Content-Type: application/json".into())
        }
        other => ApiError::BadRequest(format!("invalid JSON body: {}", other.body_text())),
    }
}

fn field_from_message(text: &str) -> String {
    // serde: "missing field `start` at line 1 column 2"
    text.split('`').nth(1).unwrap_or("body").to_string()
}

/// A query string; a value of the wrong type is 422 naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = e.body_text();
                Err(ApiError::Validation(vec![FieldError::new(
                    field_from_message(&text),
                    text,
                )]))
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// A UUID path parameter: anything else is 400.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<Uuid>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(PathId(id)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(ApiError::BadRequest(
                "the id in the path must be a UUID".into(),
            )),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// The verified caller (any role). Missing or bad token: 401.
pub struct Auth(pub Identity);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("invalid authorization header".into()))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(ApiError::Unauthorized(
                    "expected `Authorization: Bearer <token>`".into(),
                ))
            }
        };
        let who = state.keys.verify(token).map_err(|e| {
            tracing::debug!(reason = %e, "token refused");
            ApiError::Unauthorized("invalid or expired token".into())
        })?;
        super::middleware::record_user(who.user_id);
        Ok(Auth(who))
    }
}

/// The caller, who must be a signed-in user (not the service role).
pub struct User(pub Identity);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(who) = Auth::from_request_parts(parts, state).await?;
        if who.is_service() {
            return Err(ApiError::Forbidden(
                "this route acts for a user; use a user token".into(),
            ));
        }
        Ok(User(who))
    }
}

/// The caller, who must be the service role (admin routes). A user token: 403.
pub struct Service(pub Identity);

impl FromRequestParts<AppState> for Service {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(who) = Auth::from_request_parts(parts, state).await?;
        if !who.is_service() {
            return Err(ApiError::Forbidden(
                "this route needs the service role".into(),
            ));
        }
        Ok(Service(who))
    }
}

/// `If-Match: "<version>"` (also `W/"3"` and a bare `3`); `*` or absent: none.
/// A value that is no version can never match: 412.
pub struct IfMatch(pub Option<i32>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let s = v.to_str().map_err(|_| ApiError::PreconditionFailed)?.trim();
        if s == "*" {
            return Ok(IfMatch(None));
        }
        let s = s.trim_start_matches("W/").trim_matches('"');
        s.parse::<i32>()
            .map(|n| IfMatch(Some(n)))
            .map_err(|_| ApiError::PreconditionFailed)
    }
}

/// Deserialize a field that distinguishes absent (None) from null (Some(None)).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Ok(Some(Option::deserialize(d)?))
}

use serde::Deserialize;
