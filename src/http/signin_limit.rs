//! The per-IP request limit of `/v1/auth/*`: fixed windows of 5 minutes,
//! counted in PostgreSQL (`booking.rate_limits`) so that the limit holds
//! across every server instance on the database. Off with
//! `BOOKING_RATE_LIMITS=off`; the cap is `BOOKING_AUTH_RATE_LIMIT`.
//!
//! A flood is refused without a database write per refused request: once an
//! address is over its limit, this instance remembers it until the window
//! ends and answers 429 from memory. (Each instance pays one write to learn
//! it; a flood of N requests costs at most limit + instances writes.)

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::AppState;
use crate::db::retry::with_retry;
use crate::db::signin as signin_db;
use crate::error::{ApiError, ApiResult};
use crate::identity::Identity;

/// The window of the per-IP limit.
pub const IP_WINDOW_SECS: i64 = 300;

/// Addresses this instance knows to be over their limit, with the end of the
/// window (unix seconds). Bounded: past [`MAX_BLOCKED`] entries the expired
/// ones go, and if that is not enough, all (the database still decides).
#[derive(Clone, Default)]
pub struct AuthBlocks(Arc<Mutex<HashMap<String, i64>>>);

const MAX_BLOCKED: usize = 100_000;

impl AuthBlocks {
    fn until(&self, bucket: &str, now: i64) -> Option<i64> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(bucket).copied().filter(|end| *end > now)
    }

    fn block(&self, bucket: String, end: i64, now: i64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_BLOCKED {
            m.retain(|_, e| *e > now);
            if m.len() >= MAX_BLOCKED {
                m.clear();
            }
        }
        m.insert(bucket, end);
    }
}

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
    let bucket = format!("auth:ip:{}", super::limits::IpKey::from(ip));
    if let Some(end) = st.auth_blocks.until(&bucket, secs) {
        metrics::counter!("rate_limited_total", "scope" => "auth_ip").increment(1);
        return Err(ApiError::RateLimited {
            retry_after: (end - secs).max(1) as u64,
        });
    }
    let hits = with_retry(|| async {
        let mut tx = st.db.begin(&Identity::service()).await?;
        let n = signin_db::hit(tx.conn(), &bucket, window_start).await?;
        tx.commit().await?;
        Ok(n)
    })
    .await?;
    if i64::from(hits) > st.config.auth_rate_limit {
        metrics::counter!("rate_limited_total", "scope" => "auth_ip").increment(1);
        st.auth_blocks.block(bucket, start + IP_WINDOW_SECS, secs);
        let retry_after = (start + IP_WINDOW_SECS - secs).max(1);
        return Err(ApiError::RateLimited {
            retry_after: retry_after as u64,
        });
    }
    Ok(())
}
