//! The one background task of every `booking serve` process: every ten
//! minutes it deletes what no longer decides anything — idempotency records
//! past their retention, sign-in codes, sends and counters past their
//! windows, refresh tokens past their expiry. Nothing correct depends on it
//! having run (every check compares times itself); it only keeps tables small.
//! Each step is small batches or an indexed range delete, so traffic never
//! waits on it, and several instances running it at once do no harm.

use std::time::Duration;

use super::AppState;
use crate::db::signin as signin_db;
use crate::error::ApiResult;
use crate::identity::Identity;

/// How often the maintenance runs.
pub const EVERY: Duration = Duration::from_secs(600);

/// Start the task (aborted at shutdown).
pub fn spawn(st: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            run_once(&st).await;
        }
    })
}

/// One round of every sweep; failures are logged and retried next round.
pub async fn run_once(st: &AppState) {
    match super::idempotency::sweep_expired(st).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "expired idempotency keys swept"),
        Err(e) => tracing::warn!(error = %e, "idempotency sweep failed"),
    }
    if let Err(e) = signin_sweep(st).await {
        tracing::warn!(error = %e, "sign-in housekeeping failed");
    }
    match webhook_prune(st).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "webhook messages past their 30 days swept"),
        Err(e) => tracing::warn!(error = %e, "webhook housekeeping failed"),
    }
}

/// Finished messages past their 30 days, in batches of 5000 until fewer are
/// left (at most 100 batches a round, so a round stays bounded).
async fn webhook_prune(st: &AppState) -> ApiResult<i32> {
    let mut total = 0;
    for _ in 0..100 {
        let mut tx = st.db.begin(&Identity::service()).await?;
        let n = crate::db::webhooks::prune(tx.conn(), 5000).await?;
        tx.commit().await?;
        total += n;
        if n < 5000 {
            break;
        }
    }
    Ok(total)
}

async fn signin_sweep(st: &AppState) -> ApiResult<()> {
    let mut tx = st.db.begin(&Identity::service()).await?;
    signin_db::housekeeping(tx.conn(), st.clock.now()).await?;
    tx.commit().await?;
    Ok(())
}
