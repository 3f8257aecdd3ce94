//! The per-IP request limit of `/v1/auth/*`: fixed windows of 5 minutes,
//! counted in PostgreSQL (`booking.rate_limits`) so that the limit holds
//! across every server instance on the database. Off with
//! `BOOKING_RATE_LIMITS=off`; the cap is `BOOKING_AUTH_RATE_LIMIT`.

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use std::net::{IpAddr, SocketAddr};

use super::AppState;
use crate::auth::Identity;
use crate::db::auth as auth_db;
use crate::db::retry::with_retry;
use crate::error::{ApiError, ApiResult};

/// The window of the per-IP limit.
pub const IP_WINDOW_SECS: i64 = 300;

/// Per-IP cap on `/v1/auth/*`, counted in PostgreSQL so that it holds across
/// server instances. Off with `BOOKING_RATE_LIMITS=off`.
pub async fn ip_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !st.config.rate_limits {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    match check_ip(&st, peer.ip()).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn check_ip(st: &AppState, ip: IpAddr) -> ApiResult<()> {
    let now = st.clock.now();
    let secs = now.timestamp();
    let start = secs - secs.rem_euclid(IP_WINDOW_SECS);
    let window_start =
        DateTime::from_timestamp(start, 0).ok_or_else(|| anyhow::anyhow!("clock out of range"))?;
    let bucket = format!("auth:ip:{}", client_key(ip));
    let hits = with_retry(|| async {
        let mut tx = st.db.begin(&Identity::service()).await?;
        let n = auth_db::hit(tx.conn(), &bucket, window_start).await?;
        tx.commit().await?;
        Ok(n)
    })
    .await?;
    if i64::from(hits) > st.config.auth_rate_limit {
        metrics::counter!("rate_limited_total", "scope" => "auth_ip").increment(1);
        let retry_after = (start + IP_WINDOW_SECS - secs).max(1);
        return Err(ApiError::RateLimited {
            retry_after: retry_after as u64,
        });
    }
    if hits == 1 {
        super::auth::maybe_housekeeping(st, now).await;
    }
    Ok(())
}

/// IPv4 addresses count one by one; IPv6 by /64, the usual size of one
/// subscriber's network (anyone holds billions of addresses inside one).
fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}
