//! Events out. Messages are written by the database in the transaction of
//! the change they report (migration 0007); this module delivers them: the
//! worker every `booking serve` process runs, the Standard Webhooks
//! signature, the SSRF guard, and the body.

pub mod sign;
pub mod ssrf;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::db::bookings::Booking;
use crate::db::webhooks::{self as db, Claimed};
use crate::db::Db;
use crate::identity::Identity;

/// Retry delays after the 1st … 7th failed attempt (±20 % jitter); the 8th
/// failure marks the message failed.
pub const RETRY_SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
/// At most this many deliveries are in flight in one process; finished
/// attempts are recorded together, a batch per transaction.
pub const BATCH: i32 = 32;
/// At most this many deliveries to one endpoint in flight in one process.
pub const PER_ENDPOINT: usize = 8;
/// A claim lasts this long; delivery takes at most [`TOTAL_TIMEOUT`].
pub const LEASE_SECONDS: i32 = 60;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// With nothing due, the worker looks again after this (or when woken).
pub const IDLE_POLL: Duration = Duration::from_millis(500);
/// After a wake-up the worker waits this long, so that the wake-ups of a
/// burst of changes make one claim.
pub const COALESCE: Duration = Duration::from_millis(25);

/// The delay before retry `n` (1-based: after the n-th failed attempt), or
/// None when the n-th failure is the last.
pub fn retry_after(n: i32) -> Option<f64> {
    let base = *RETRY_SCHEDULE.get(usize::try_from(n).ok()?.checked_sub(1)?)? as f64;
    Some(base * rand::thread_rng().gen_range(0.8..=1.2))
}

/// What a booking-changing request tells the worker: something may be due.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn now(&self) {
        self.0.notify_one();
    }
}

/// `previous` in a message's data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Previous {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: String,
}

/// A booking event's data: the booking after the change (the API's shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookingData {
    #[serde(flatten)]
    pub booking: Booking,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
}

/// A hold event's data (`hold.confirmed` adds the booking's id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldData {
    #[serde(flatten)]
    pub hold: crate::db::bookings::Hold,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<uuid::Uuid>,
}

/// A series event's data: the series with its bookings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesData {
    pub id: uuid::Uuid,
    pub resource_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
    pub rrule: String,
    pub bookings: Vec<Booking>,
}

#[derive(Serialize)]
struct Envelope<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: DateTime<Utc>,
    data: D,
}

/// The body of a message: `{"type","timestamp","data"}`, rendered the same
/// way on every attempt (so a retry carries the identical body). Booking
/// data is read into the API's booking type and written back, so times are
/// UTC `Z` like every API answer.
pub fn render(event: &str, created_at: DateTime<Utc>, data: &serde_json::Value) -> Vec<u8> {
    fn typed<D: Serialize + serde::de::DeserializeOwned>(
        event: &str,
        at: DateTime<Utc>,
        data: &serde_json::Value,
    ) -> Option<Vec<u8>> {
        let d: D = serde_json::from_value(data.clone()).ok()?;
        serde_json::to_vec(&Envelope {
            kind: event,
            timestamp: at,
            data: d,
        })
        .ok()
    }
    let typed = match event.split('.').next() {
        Some("booking") => typed::<BookingData>(event, created_at, data),
        Some("hold") => typed::<HoldData>(event, created_at, data),
        Some("series") => typed::<SeriesData>(event, created_at, data),
        _ => None,
    };
    typed.unwrap_or_else(|| {
        serde_json::to_vec(&Envelope {
            kind: event,
            timestamp: created_at,
            data,
        })
        .unwrap_or_default()
    })
}

/// The shared delivery client: connect 2 s, whole request 10 s, no redirects
/// followed, and (unless private addresses are allowed) a resolver that never
/// yields a non-public address.
pub fn client(allow_private: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("booking-webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        // a proxy would resolve names itself, past the public-only resolver
        .no_proxy();
    if !allow_private {
        b = b.dns_resolver(Arc::new(ssrf::PublicOnly));
    }
    b.build().unwrap_or_else(|_| reqwest::Client::new())
}

/// The worker's settings.
#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub http: reqwest::Client,
    pub allow_private: bool,
    pub disable_after_days: i32,
    pub wake: Wake,
    /// How often to mark expired holds and pending bookings (None: never).
    pub expiry_sweep: Option<Duration>,
}

/// One attempt's result.
#[derive(Debug)]
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i32,
}

impl Worker {
    /// Run until `stop` turns true: claim, deliver, settle. A delivery in
    /// progress when told to stop is finished (it takes at most 10 s) and
    /// settled; nothing new is claimed.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(BATCH as usize));
        let in_flight: Arc<std::sync::Mutex<HashMap<Uuid, usize>>> = Default::default();
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel::<(Claimed, Attempt)>();
        // a finished delivery may free an endpoint that was at its limit
        let freed = Arc::new(Notify::new());
        let settler = tokio::spawn(self.clone().settler(done_rx));
        let mut last_backlog = Instant::now() - Duration::from_secs(60);
        let mut last_sweep = Instant::now() - Duration::from_secs(3600);
        loop {
            if *stop.borrow() {
                break;
            }
            if last_backlog.elapsed() >= Duration::from_secs(5) {
                last_backlog = Instant::now();
                self.observe_backlog().await;
            }
            if let Some(every) = self.expiry_sweep {
                if last_sweep.elapsed() >= every {
                    last_sweep = Instant::now();
                    self.expire_due().await;
                }
            }
            // deliveries run continuously: a claim fills the free slots, so a
            // slow receiver holds only its own slots, and endpoints with
            // PER_ENDPOINT deliveries in flight here are not claimed for
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    p = slots.acquire() => drop(p),
                    _ = stop.changed() => {}
                }
                continue;
            }
            let skip: Vec<Uuid> = in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, n)| **n >= PER_ENDPOINT)
                .map(|(e, _)| *e)
                .collect();
            let batch = match self.claim(free as i32, &skip).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook claim failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.0.notified() => {}
                    _ = freed.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
                // coalesce wake-ups: under a burst of bookings every request
                // wakes the worker, and a claim per booking would cost the
                // database more than the messages do
                tokio::time::sleep(COALESCE).await;
                continue;
            }
            for m in batch {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                *in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(m.endpoint_id)
                    .or_default() += 1;
                let (w, tx, in_flight, freed) = (
                    self.clone(),
                    done_tx.clone(),
                    in_flight.clone(),
                    freed.clone(),
                );
                tokio::spawn(async move {
                    let a = w.deliver(&m).await;
                    if let Some(n) = in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&m.endpoint_id)
                    {
                        *n = n.saturating_sub(1);
                    }
                    let _ = tx.send((m, a));
                    drop(permit);
                    freed.notify_one();
                });
            }
        }
        // stopping: nothing new is claimed; what is in flight finishes (each
        // delivery takes at most 10 s) and is recorded
        let _ = slots.acquire_many(BATCH as u32).await;
        drop(done_tx);
        let _ = settler.await;
    }

    /// Record finished attempts as they come, a batch per transaction.
    async fn settler(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<(Claimed, Attempt)>) {
        while let Some(first) = rx.recv().await {
            let mut done = vec![first];
            while done.len() < 256 {
                match rx.try_recv() {
                    Ok(x) => done.push(x),
                    Err(_) => break,
                }
            }
            self.settle_all(&done).await;
        }
    }

    async fn claim(&self, limit: i32, skip: &[Uuid]) -> Result<Vec<Claimed>, sqlx::Error> {
        let mut tx = self.db.begin(&Identity::service()).await?;
        let batch = db::claim(tx.conn(), limit, LEASE_SECONDS, skip).await?;
        tx.commit().await.map_err(|e| match e {
            crate::error::ApiError::Database(d) => d,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
        Ok(batch)
    }

    /// Retire expired holds and pending bookings (their status shows, their
    /// events go out). Nothing correct depends on it: writers retire what
    /// is in their way themselves (migration 0008).
    async fn expire_due(&self) {
        let Ok(mut tx) = self.db.begin(&Identity::service()).await else {
            return;
        };
        match crate::db::bookings::expire_due(tx.conn(), 500).await {
            Ok(n) => {
                if tx.commit().await.is_ok() && n > 0 {
                    metrics::counter!("booking_expired_total").increment(n as u64);
                    self.wake.now();
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring holds and pending bookings failed"),
        }
    }

    async fn observe_backlog(&self) {
        let Ok(mut tx) = self.db.begin(&Identity::service()).await else {
            return;
        };
        if let Ok((pending, due, oldest)) = db::backlog(tx.conn()).await {
            metrics::gauge!("booking_webhook_outbox_pending").set(pending as f64);
            metrics::gauge!("booking_webhook_outbox_due").set(due as f64);
            metrics::gauge!("booking_webhook_oldest_due_seconds").set(oldest);
        }
        let _ = tx.commit().await;
    }

    /// Record a batch's attempts in one transaction. Settling is retried
    /// briefly: a lost settle means a duplicate later (with the same
    /// webhook-id, once the lease lapses), never a lost message.
    async fn settle_all(&self, done: &[(Claimed, Attempt)]) {
        let mut rows = Vec::with_capacity(done.len());
        for (m, a) in done {
            let (outcome, retry) = match a.status {
                Some(s) if (200..300).contains(&s) => ("delivered", None),
                Some(410) => ("gone", None),
                _ => ("failed", retry_after(m.round_attempt)),
            };
            let label = match (outcome, retry) {
                ("failed", Some(_)) => "retry",
                ("failed", None) => "failed",
                (o, _) => o,
            };
            metrics::counter!("booking_webhook_attempts_total").increment(1);
            metrics::counter!("booking_webhook_deliveries_total", "outcome" => label).increment(1);
            metrics::histogram!("booking_webhook_attempt_seconds")
                .record(f64::from(a.duration_ms) / 1000.0);
            if outcome == "delivered" {
                let lag = (Utc::now() - m.due_at).num_milliseconds().max(0) as f64 / 1000.0;
                metrics::histogram!("booking_webhook_lag_seconds").record(lag);
            } else {
                tracing::warn!(
                    endpoint_id = %m.endpoint_id,
                    message_id = %m.id,
                    event = %m.event,
                    attempt = m.attempt,
                    status = a.status,
                    error = a.error.as_deref().unwrap_or(""),
                    duration_ms = a.duration_ms,
                    next = label,
                    "webhook delivery failed"
                );
            }
            rows.push(db::Settle {
                id: m.id,
                lease: m.lease,
                outcome,
                status: a.status.map(i32::from),
                error: a.error.as_deref(),
                duration_ms: a.duration_ms,
                retry_seconds: retry,
            });
        }
        for _ in 0..3 {
            let r: Result<(), crate::error::ApiError> = async {
                let mut tx = self.db.begin(&Identity::service()).await?;
                db::settle_batch(tx.conn(), &rows, self.disable_after_days).await?;
                tx.commit().await
            }
            .await;
            match r {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, messages = rows.len(), "recording webhook attempts failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn deliver(&self, m: &Claimed) -> Attempt {
        let started = Instant::now();
        let fail = |e: String| Attempt {
            status: None,
            error: Some(e),
            duration_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i32,
        };
        // IP literals never reach the resolver: check them here (names are
        // checked by the resolver at connect time)
        if !self.allow_private {
            if let Ok(u) = reqwest::Url::parse(&m.url) {
                let literal = match u.host() {
                    Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                    Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                    _ => None,
                };
                if let Some(ip) = literal.filter(|ip| !ssrf::is_public(*ip)) {
                    return fail(format!("{ip} is not a public address"));
                }
            }
        }
        let body = render(&m.event, m.created_at, &m.data);
        let id = m.id.to_string();
        let ts = Utc::now().timestamp();
        let mut secrets = vec![m.secret.as_str()];
        if let Some(p) = &m.previous_secret {
            secrets.push(p.as_str());
        }
        let signature = sign::header(&secrets, &id, ts, &body);
        let res = self
            .http
            .post(&m.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match res {
            Ok(r) => Attempt {
                status: Some(r.status().as_u16()),
                error: (!r.status().is_success()).then(|| format!("HTTP {}", r.status().as_u16())),
                duration_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i32,
            },
            Err(e) => fail(describe(&e)),
        }
    }
}

/// A transport error in a few words (never the body or a secret).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !t.is_empty() && !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s.chars().take(300).collect()
}

/// Start the worker; it stops when `stop` turns true.
pub fn spawn(worker: Worker, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(worker.run(stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_contracts() {
        for (n, base) in RETRY_SCHEDULE.iter().enumerate() {
            let d = retry_after(n as i32 + 1).expect("a retry");
            assert!(
                d >= *base as f64 * 0.8 && d <= *base as f64 * 1.2,
                "{n}: {d}"
            );
        }
        assert!(retry_after(8).is_none());
        assert!(retry_after(0).is_none());
    }

    #[test]
    fn booking_bodies_use_the_apis_times() {
        let data = serde_json::json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "resource_id": "00000000-0000-0000-0000-000000000002",
            "user_id": "00000000-0000-0000-0000-000000000003",
            "start": "2030-01-01T10:00:00+00:00", "end": "2030-01-01T11:00:00+00:00",
            "status": "cancelled", "note": null, "version": 2,
            "created_at": "2029-12-01T10:00:00.123456+00:00",
            "updated_at": "2029-12-01T10:00:00.123456+00:00",
            "cancelled_at": "2029-12-01T10:00:00.123456+00:00",
            "previous": {"start": "2030-01-01T10:00:00+00:00", "end": "2030-01-01T11:00:00+00:00", "status": "confirmed"}
        });
        let at = DateTime::parse_from_rfc3339("2029-12-01T10:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        let body = render("booking.cancelled", at, &data);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["type"], "booking.cancelled");
        assert_eq!(v["timestamp"], "2029-12-01T10:00:00Z");
        assert_eq!(v["data"]["start"], "2030-01-01T10:00:00Z");
        assert_eq!(v["data"]["previous"]["status"], "confirmed");
        assert_eq!(body, render("booking.cancelled", at, &data));
    }
}
