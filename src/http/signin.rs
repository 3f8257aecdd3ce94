//! Sign-in by phone: `/v1/auth/otp`, `/verify`, `/refresh`, `/logout`, and the
//! per-IP rate limit in front of them. The sign-in work runs as service_role
//! (there is no user yet); the tables it touches are closed to every request
//! role (see `migrations/0004_auth.sql`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::extract::{Json, SignedIn};
use super::users::parse_phone;
use super::AppState;
use crate::config::OtpDelivery;
use crate::db::retry::with_retry;
use crate::db::signin as signin_db;
use crate::db::users::{self, User};
use crate::domain::Phone;
use crate::domain::UserId;
use crate::error::{ApiError, ApiResult};
use crate::identity::{otp, sessions, Identity, Role};

/// Retry-After of a failed delivery (the failed send does not count, so an
/// immediate retry is allowed; this is only a hint).
const DELIVERY_RETRY_AFTER: u64 = 5;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/auth/otp", post(send_otp))
        .route("/v1/auth/verify", post(verify))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            super::signin_limit::ip_limit,
        ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    /// E.164, or any international format (it is normalised).
    pub phone: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OtpSent {
    /// Seconds the code stays valid.
    pub expires_in: i64,
    /// The code itself, only when `BOOKING_OTP_DELIVERY=echo` (tests, demos).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_code: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub phone: String,
    /// The 6-digit code.
    pub code: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; works once, at `POST /v1/auth/refresh`.
    pub refresh_token: String,
    pub user: User,
}

/// Send a sign-in code to a phone.
///
/// The same answer whether or not the phone belongs to a user. At most one
/// code per 60 s and 5 per hour per phone (429 with Retry-After). A code that
/// could not be delivered is discarded and answered with 503.
#[utoipa::path(post, path = "/v1/auth/otp", tag = "auth", request_body = OtpRequest,
    responses((status = 202, description = "Code sent", body = OtpSent),
        (status = 400, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
        (status = 429, description = "Too soon or too many for this phone or address", body = crate::error::Problem),
        (status = 503, description = "The code could not be delivered", body = crate::error::Problem)))]
pub async fn send_otp(
    State(st): State<AppState>,
    Json(body): Json<OtpRequest>,
) -> ApiResult<(StatusCode, axum::Json<OtpSent>)> {
    let phone = parse_phone(&body.phone)?;
    let now = st.clock.now();
    let pending = match with_retry(|| store_new_code(&st, &phone, now)).await {
        Ok(p) => p,
        Err(e) => {
            let outcome = match e {
                ApiError::RateLimited { .. } => "rate_limited",
                _ => "error",
            };
            metrics::counter!("otp_sends_total", "outcome" => outcome).increment(1);
            return Err(e);
        }
    };
    let delivery = &st.config.otp_delivery;
    if let Err(e) = otp::deliver(delivery, &phone, &pending.code, pending.expires_at).await {
        metrics::counter!("otp_sends_total", "outcome" => "delivery_failed").increment(1);
        tracing::warn!(phone = %phone.masked(), error = %e, "sign-in code not delivered");
        undo_send(&st, &pending).await;
        return Err(ApiError::Unavailable {
            retry_after: DELIVERY_RETRY_AFTER,
        });
    }
    metrics::counter!("otp_sends_total", "outcome" => "sent").increment(1);
    let dev_code = (*delivery == OtpDelivery::Echo).then_some(pending.code);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(OtpSent {
            expires_in: otp::TTL_SECS,
            dev_code,
        }),
    ))
}

/// A stored, not yet delivered code (no Debug: it holds the code).
struct Pending {
    code: String,
    expires_at: DateTime<Utc>,
    send_id: Uuid,
    code_id: Uuid,
}

/// Check the per-phone rules and store a new code, in one transaction under
/// the phone's lock. Delivery happens after commit, outside any transaction.
async fn store_new_code(st: &AppState, phone: &Phone, now: DateTime<Utc>) -> ApiResult<Pending> {
    let mut tx = st.db.begin(&Identity::service()).await?;
    let key = signin_db::otp_key(tx.conn()).await?;
    signin_db::lock_phone(tx.conn(), phone.as_str(), &key).await?;
    let window = signin_db::send_window(tx.conn(), phone.as_str(), now).await?;
    if let Some(retry_after) = otp::must_wait(&window, now) {
        return Err(ApiError::RateLimited { retry_after });
    }
    let code = otp::generate();
    let hash = otp::hash(&key, phone.as_str(), &code)?;
    let expires_at = now + Duration::seconds(otp::TTL_SECS);
    let (send_id, code_id) =
        signin_db::store_code(tx.conn(), phone.as_str(), &hash, now, expires_at).await?;
    tx.commit().await?;
    Ok(Pending {
        code,
        expires_at,
        send_id,
        code_id,
    })
}

async fn undo_send(st: &AppState, p: &Pending) {
    let result = with_retry(|| async {
        let mut tx = st.db.begin(&Identity::service()).await?;
        signin_db::forget_send(tx.conn(), p.send_id, p.code_id).await?;
        tx.commit().await?;
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not discard an undelivered sign-in code");
    }
}

/// The single answer to every failed code or refresh token check.
fn refused() -> ApiError {
    ApiError::Unauthorized("invalid, expired or already used code or token".into())
}

/// Exchange a code for tokens; the user is created on first sign-in.
///
/// Any wrong, expired or used code is the same 401; a code dies after 5 wrong
/// tries.
#[utoipa::path(post, path = "/v1/auth/verify", tag = "auth", request_body = VerifyRequest,
    responses((status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn verify(
    State(st): State<AppState>,
    Json(body): Json<VerifyRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let phone = parse_phone(&body.phone)?;
    let now = st.clock.now();
    let result = with_retry(|| verify_once(&st, &phone, &body.code, now)).await;
    let outcome = if result.is_ok() { "ok" } else { "refused" };
    metrics::counter!("otp_verifications_total", "outcome" => outcome).increment(1);
    Ok(axum::Json(tokens(&st, result?)?))
}

/// What a successful sign-in or refresh hands out.
struct Issued {
    user: User,
    session_id: Uuid,
    refresh_token: String,
}

async fn verify_once(
    st: &AppState,
    phone: &Phone,
    code: &str,
    now: DateTime<Utc>,
) -> ApiResult<Issued> {
    let mut tx = st.db.begin(&Identity::service()).await?;
    let key = signin_db::otp_key(tx.conn()).await?;
    let presented = otp::hash(&key, phone.as_str(), code)?;
    let Some(stored) = signin_db::code_for_update(tx.conn(), phone.as_str()).await? else {
        return Err(refused());
    };
    if stored.expires_at <= now {
        signin_db::delete_code(tx.conn(), stored.id).await?;
        tx.commit().await?;
        return Err(refused());
    }
    if !otp::same(&presented, &stored.code_hash) {
        signin_db::wrong_try(tx.conn(), stored.id, otp::MAX_ATTEMPTS).await?;
        tx.commit().await?;
        return Err(refused());
    }
    let (user, created) = users::get_or_create(tx.conn(), phone, None).await?;
    if users::issuer_of(tx.conn(), UserId(user.id))
        .await?
        .is_some()
    {
        // provisioned by another issuer from its claims: signing in here by
        // that phone must not reach their account (that issuer vouches for it)
        return Err(refused());
    }
    signin_db::delete_code(tx.conn(), stored.id).await?;
    let session_id = signin_db::create_session(tx.conn(), user.id, now).await?;
    let refresh_token = issue_refresh_token(st, tx.conn(), session_id, now).await?;
    tx.commit().await?;
    if created {
        metrics::counter!("users_created_total", "via" => "sign_in").increment(1);
    }
    Ok(Issued {
        user,
        session_id,
        refresh_token,
    })
}

async fn issue_refresh_token(
    st: &AppState,
    conn: &mut PgConnection,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<String> {
    let token = sessions::new_refresh_token();
    let expires_at = now + Duration::seconds(st.config.refresh_token_ttl_secs);
    let hash = sessions::hash_refresh_token(&token);
    signin_db::insert_refresh_token(conn, &hash, session_id, now, expires_at).await?;
    Ok(token)
}

fn tokens(st: &AppState, issued: Issued) -> ApiResult<TokenResponse> {
    let ttl = st.config.access_token_ttl_secs;
    let access_token = st.keys.mint(
        issued.user.id,
        Role::Authenticated,
        issued.user.phone.as_deref(),
        Some(issued.session_id),
        ttl,
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "bearer".into(),
        expires_in: ttl,
        refresh_token: issued.refresh_token,
        user: issued.user,
    })
}

/// Exchange a refresh token for new tokens.
///
/// A refresh token works once. Presenting one that was already used revokes
/// its whole session: every refresh token of it stops working.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "New tokens", body = TokenResponse),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn refresh(
    State(st): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    if body.refresh_token.len() > sessions::MAX_TOKEN_LEN {
        return Err(refused());
    }
    let now = st.clock.now();
    let issued = with_retry(|| refresh_once(&st, &body.refresh_token, now)).await?;
    Ok(axum::Json(tokens(&st, issued)?))
}

/// How many rotations a double submit may follow to the current token.
const MAX_SUCCESSORS: usize = 16;

async fn refresh_once(st: &AppState, presented: &str, now: DateTime<Utc>) -> ApiResult<Issued> {
    let hash = sessions::hash_refresh_token(presented);
    let mut tx = st.db.begin(&Identity::service()).await?;
    let Some(t) = signin_db::refresh_token_for_update(tx.conn(), &hash).await? else {
        return Err(refused());
    };
    if t.session_revoked || t.expires_at <= now {
        return Err(refused());
    }
    let key = signin_db::otp_key(tx.conn()).await?;
    if t.used {
        let reuse = Duration::seconds(st.config.refresh_reuse_secs);
        if t.used_at.is_some_and(|used| now - used <= reuse) {
            // A double submit within the reuse interval: the successor its
            // first use created (or, if that was used in turn, the current one).
            let mut next = sessions::successor(&key, presented)?;
            for _ in 0..MAX_SUCCESSORS {
                let h = sessions::hash_refresh_token(&next);
                match signin_db::refresh_token_used(tx.conn(), &h).await? {
                    Some(false) => {
                        let user = users::by_id(tx.conn(), UserId(t.user_id))
                            .await?
                            .ok_or_else(refused)?;
                        tx.commit().await?;
                        metrics::counter!("refresh_token_reuse_total", "within_interval" => "yes")
                            .increment(1);
                        return Ok(Issued {
                            user,
                            session_id: t.session_id,
                            refresh_token: next,
                        });
                    }
                    Some(true) => next = sessions::successor(&key, &next)?,
                    None => break,
                }
            }
            return Err(refused());
        }
        signin_db::revoke_session(tx.conn(), t.session_id, None, "refresh_token_reused", now)
            .await?;
        tx.commit().await?;
        metrics::counter!("refresh_token_reuse_total", "within_interval" => "no").increment(1);
        tracing::warn!(session_id = %t.session_id, user_id = %t.user_id,
            "a refresh token was presented again after the reuse interval: session revoked");
        return Err(refused());
    }
    signin_db::mark_refresh_used(tx.conn(), &hash, now).await?;
    let user = users::by_id(tx.conn(), UserId(t.user_id))
        .await?
        .ok_or_else(refused)?;
    let refresh_token = sessions::successor(&key, presented)?;
    let expires_at = now + Duration::seconds(st.config.refresh_token_ttl_secs);
    signin_db::insert_refresh_token(
        tx.conn(),
        &sessions::hash_refresh_token(&refresh_token),
        t.session_id,
        now,
        expires_at,
    )
    .await?;
    tx.commit().await?;
    Ok(Issued {
        user,
        session_id: t.session_id,
        refresh_token,
    })
}

/// Sign out: the session of the access token loses its refresh tokens.
///
/// The access token itself stays valid until it expires (it is stateless).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out"),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn logout(State(st): State<AppState>, SignedIn(who): SignedIn) -> ApiResult<StatusCode> {
    if let Some(session_id) = who.session_id {
        let now = st.clock.now();
        with_retry(|| async {
            let mut tx = st.db.begin(&Identity::service()).await?;
            signin_db::revoke_session(tx.conn(), session_id, Some(who.user_id), "logout", now)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
