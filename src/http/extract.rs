//! Extractors that fail the way the contract says: as problem+json with a
//! stable code, never axum's plain-text rejections.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use crate::error::{ApiError, FieldError};
use crate::identity::Identity;

/// A JSON body, the one extractor every route uses: the body must be a JSON
/// object (an array, a string, a number or `null` is 400 — serde would
/// otherwise read an array positionally into a struct), unknown fields and
/// malformed JSON are 400, a wrong type or a missing field is 422 naming the
/// field, too large is 413. Messages name the field and what is wrong with it
/// in the contract's words, never a Rust type.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::BadRequest(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge)
            }
            Err(_) => return Err(ApiError::BadRequest("cannot read the request body".into())),
        };
        parse_body(&bytes).map(Json)
    }
}

fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parse a request body: a JSON object, then the typed value.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(format!(
            "the body must be a JSON object, not {}",
            json_kind(&value)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        body_error(&path, &e.inner().to_string())
    })
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// One field's problem, from serde's message, in plain words.
fn body_error(path: &str, inner: &str) -> ApiError {
    let quoted = inner.split('`').nth(1).unwrap_or("");
    if inner.starts_with("unknown field") {
        let field = if path == "." || path.is_empty() {
            quoted.to_string()
        } else {
            format!("{path}.{quoted}")
                .trim_start_matches("..")
                .to_string()
        };
        return ApiError::BadRequest(format!("unknown field `{field}`"));
    }
    if inner.starts_with("missing field") {
        let field = if path == "." || path.is_empty() {
            quoted.to_string()
        } else {
            format!("{path}.{quoted}")
        };
        return ApiError::validation(field, "is required");
    }
    let field = if path == "." || path.is_empty() {
        "body".to_string()
    } else {
        path.to_string()
    };
    let message = match inner.rsplit_once("expected ") {
        Some((_, expected)) => format!("must be {}", plain_expected(expected)),
        None if inner.contains("UUID") => "must be a UUID".to_string(),
        None => "has a value that is not allowed here".to_string(),
    };
    ApiError::validation(field, message)
}

/// serde's "expected ..." in the contract's words.
fn plain_expected(expected: &str) -> &'static str {
    let e = expected.trim().trim_end_matches('.');
    if e.contains("UUID") || e.contains("uuid") {
        "a UUID"
    } else if e.contains("string") || e.contains("char") {
        "a string"
    } else if e.contains("bool") {
        "true or false"
    } else if [
        "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "integer",
    ]
    .iter()
    .any(|t| e.contains(t))
    {
        "a whole number"
    } else if e.contains("f32") || e.contains("f64") || e.contains("number") {
        "a number"
    } else if e.contains("sequence") || e.contains("array") || e.contains("tuple") {
        "a list"
    } else if e.contains("map") || e.contains("struct") || e.contains("object") {
        "an object"
    } else {
        "a value of the documented type"
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
pub struct Caller(pub Identity);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = match parts.extensions.get::<super::middleware::Bearer>() {
            Some(b) => b.clone(),
            None => super::middleware::Bearer::of(&parts.headers, &state.keys),
        };
        let who = match bearer {
            super::middleware::Bearer::Valid(who) => who,
            super::middleware::Bearer::Missing => {
                return Err(ApiError::Unauthorized("a bearer token is required".into()))
            }
            super::middleware::Bearer::Malformed(m) => {
                return Err(ApiError::Unauthorized(m.into()))
            }
            super::middleware::Bearer::Invalid => {
                return Err(ApiError::Unauthorized("invalid or expired token".into()))
            }
        };
        super::middleware::record_user(who.user_id);
        Ok(Caller(who))
    }
}

/// The caller, who must be a signed-in user (not the service role).
pub struct SignedIn(pub Identity);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(who) = Caller::from_request_parts(parts, state).await?;
        if who.is_service() {
            return Err(ApiError::Forbidden(
                "this route acts for a user; use a user token".into(),
            ));
        }
        Ok(SignedIn(who))
    }
}

/// The caller, who must be the service role (admin routes). A user token: 403.
pub struct Admin(pub Identity);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(who) = Caller::from_request_parts(parts, state).await?;
        if !who.is_service() {
            return Err(ApiError::Forbidden(
                "this route needs the service role".into(),
            ));
        }
        Ok(Admin(who))
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
