//! Idempotency-Key on booking writes (POST, PATCH, DELETE).
//!
//! Per user, a key's record — request fingerprint, first response status,
//! body and headers — is written in the same transaction as the booking
//! change. The same key with the same request replays that response byte for
//! byte (with `Idempotent-Replayed: true`) and changes nothing; with another
//! request it is 422 `idempotency_key_reused`; while the first request still
//! runs, 409 `idempotency_in_progress` (we answer at once rather than wait:
//! the client's retry policy decides, and no server worker is held hostage by
//! a slow first attempt). Validation failures (400/422) are not stored, so a
//! corrected retry with the same key can succeed; conflicts (409), 404 and 412
//! are stored and replayed. Transient database failures are retried here, the
//! key check included, up to the retry budget.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use std::future::Future;
use std::pin::Pin;

use super::AppState;
use crate::db::idempotency as store;
use crate::db::retry;
use crate::error::{ApiError, ApiResult};
use crate::identity::Identity;

/// The `Idempotency-Key` header: 1-255 printable ASCII characters, else 400.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let bytes = v.as_bytes();
        if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b))
        {
            return Err(ApiError::BadRequest(
                "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
            ));
        }
        Ok(IdempotencyKey(Some(
            String::from_utf8_lossy(bytes).into_owned(),
        )))
    }
}

/// sha256 over method, path and the canonical JSON of the body (object keys
/// sorted), so formatting differences do not make a retry "different".
pub fn fingerprint(method: &str, path: &str, body: Option<&Value>) -> String {
    let canonical = body.map(|b| b.to_string()).unwrap_or_default();
    hex::encode(Sha256::digest(
        format!("{method}\n{path}\n{canonical}").as_bytes(),
    ))
}

/// Headers kept with a stored response.
const KEPT: [&str; 3] = ["content-type", "etag", "location"];

/// Which answers are stored and replayed.
fn storable(status: StatusCode) -> bool {
    status.is_success()
        || matches!(
            status,
            StatusCode::CONFLICT | StatusCode::NOT_FOUND | StatusCode::PRECONDITION_FAILED
        )
}

fn replay(s: store::Stored) -> Response {
    let status = u16::try_from(s.response_status)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let mut resp = (status, s.response_body).into_response();
    // only the headers the server keeps, whatever the record says
    for (k, v) in s
        .response_headers
        .0
        .iter()
        .filter(|(k, _)| KEPT.contains(&k.as_str()))
    {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::try_from(k.as_str()),
            v.as_str().map(HeaderValue::from_str),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// A write operation inside the request's transaction.
pub type Op<'c> = Pin<Box<dyn Future<Output = ApiResult<Response>> + Send + 'c>>;

/// Run `op` in one scoped transaction, under the key's protection when a key
/// was sent; transient database failures are retried.
pub async fn run<F>(
    st: &AppState,
    who: &Identity,
    key: Option<&str>,
    fp: &str,
    mut op: F,
) -> ApiResult<Response>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> Op<'c>,
{
    let mut attempt = 1;
    loop {
        match once(st, who, key, fp, &mut op).await {
            Err(e) => match retry::backoff(&e, attempt) {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(retry::give_up(e, attempt)),
            },
            ok => return ok,
        }
    }
}

async fn once<F>(
    st: &AppState,
    who: &Identity,
    key: Option<&str>,
    fp: &str,
    op: &mut F,
) -> ApiResult<Response>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> Op<'c>,
{
    // keys are a user's: the service role (administration) is not tracked,
    // its cancel is idempotent and its reschedule has If-Match
    let key = key.filter(|_| !who.is_service());
    let mut tx = st.db.begin(who).await?;
    if let Some(k) = key {
        if !store::try_lock(tx.conn(), who.user_id, k).await? {
            return Err(ApiError::IdempotencyInProgress);
        }
        if let Some(s) = store::find(tx.conn(), who.user_id, k).await? {
            tx.commit().await?;
            if s.fingerprint != fp {
                return Err(ApiError::IdempotencyKeyReused);
            }
            metrics::counter!("idempotency_replays_total").increment(1);
            return Ok(replay(s));
        }
    }
    let resp = match op(tx.conn()).await {
        Ok(r) => r,
        // Outcome errors (slot taken, not found, stale version) leave the
        // transaction usable and are stored; database errors are not.
        Err(e) if key.is_some() && storable(e.status()) && !matches!(e, ApiError::Database(_)) => {
            e.into_response()
        }
        Err(e) => return Err(e),
    };
    let Some(k) = key.filter(|_| storable(resp.status())) else {
        tx.commit().await?;
        return Ok(resp);
    };
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut headers = Map::new();
    for name in KEPT {
        if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    store::store(tx.conn(), k, fp, parts.status.as_u16(), &text, &headers).await?;
    tx.commit().await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// How long keys are kept (at least; the sweep removes older ones).
pub const RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// Remove expired keys in small batches; returns how many went.
pub async fn sweep_expired(st: &AppState) -> ApiResult<u64> {
    let cutoff = st.clock.now() - RETENTION;
    let mut total = 0;
    loop {
        let mut tx = st.db.begin(&Identity::service()).await?;
        let n = if st.db.distributed() == crate::config::Distributed::Citus {
            // Citus plans neither ctid nor SKIP LOCKED across shards: one
            // plain delete (each shard's part runs on its worker)
            store::sweep_all(tx.conn(), cutoff).await?
        } else {
            store::sweep(tx.conn(), cutoff, 500).await?
        };
        tx.commit().await?;
        total += n;
        if n < 500 {
            return Ok(total);
        }
    }
}
