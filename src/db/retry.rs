//! Bounded, jittered retries of transient database failures: serialization
//! failures (40001), deadlocks (40P01), lock timeouts (55P03), and the
//! connection and shutdown classes (08xxx, 57P01-57P03: the database
//! restarting, a connection closed or refused). Each attempt is a whole
//! transaction that did not commit (a failure *at* commit never comes here,
//! see `Scoped::commit`), so retrying it is safe. After the last attempt the
//! caller gets a 503 with `Retry-After`, never a 500.

use crate::error::ApiError;
use rand::Rng;
use std::future::Future;
use std::time::Duration;

pub const MAX_ATTEMPTS: u32 = 4;

/// The SQLSTATE (or kind) of a transient failure, if `e` is one (the list
/// lives beside the error mapping: `error::transient`).
pub fn is_transient(e: &ApiError) -> Option<&'static str> {
    match e {
        ApiError::Database(d) => crate::error::transient(d),
        _ => None,
    }
}

/// How long to wait before attempt `attempt + 1`, or None to stop.
pub fn backoff(e: &ApiError, attempt: u32) -> Option<Duration> {
    let code = is_transient(e)?;
    metrics::counter!("booking_db_retries_total", "sqlstate" => code).increment(1);
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    let base = 10u64 << attempt;
    let jitter = rand::thread_rng().gen_range(0..=base);
    Some(Duration::from_millis(base / 2 + jitter))
}

/// The error to return once retrying stops: transient ones become a 503.
pub fn give_up(e: ApiError, attempt: u32) -> ApiError {
    match is_transient(&e) {
        Some(code) => {
            tracing::warn!(
                sqlstate = code,
                attempt,
                "transient database failure; giving up"
            );
            ApiError::Unavailable { retry_after: 1 }
        }
        None => e,
    }
}

/// Run `op` (a whole transaction) until it succeeds, fails for good, or the
/// attempts run out.
pub async fn with_retry<T, F, Fut>(mut op: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) => match backoff(&e, attempt) {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(give_up(e, attempt)),
            },
            ok => return ok,
        }
    }
}
