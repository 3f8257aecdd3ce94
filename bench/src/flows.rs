//! The second wave, measured: what the outbox costs a create, how fast and
//! how late webhooks arrive, hold + confirm against a plain create, a 52-week
//! series, and availability with 50 closures. Lines of BENCHMARKS.md's
//! "Second wave" section.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chrono::{DateTime, Utc};

/// A webhook receiver on loopback: counts messages and each one's lag (the
/// moment it arrived minus the event's `timestamp`).
pub struct Receiver {
    pub url: String,
    pub count: Arc<AtomicU64>,
    lags_ms: Arc<Mutex<Vec<u32>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        Self::start_with_delay(Duration::ZERO).await
    }

    /// A receiver that answers each request only after `delay` (a stalled
    /// one holds the worker's deliveries for that endpoint in flight).
    pub async fn start_with_delay(delay: Duration) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let count = Arc::new(AtomicU64::new(0));
        let lags_ms = Arc::new(Mutex::new(Vec::new()));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (c, l, a) = (count.clone(), lags_ms.clone(), arrivals.clone());
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let (c, l, a) = (c.clone(), l.clone(), a.clone());
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let now = Utc::now();
                let ts = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["timestamp"].as_str().map(str::to_string))
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
                if let Some(ts) = ts {
                    let ms = (now - ts.with_timezone(&Utc)).num_milliseconds().max(0);
                    l.lock().unwrap_or_else(|p| p.into_inner()).push(ms as u32);
                }
                a.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Instant::now());
                c.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            url,
            count,
            lags_ms,
            arrivals,
            task,
        })
    }

    /// Wait until `n` messages arrived (or `within` passed); how many did.
    pub async fn wait_for(&self, n: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let got = self.count.load(Ordering::Relaxed);
            if got >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (messages/s from the first arrival to the last, lag p50 ms, lag p99 ms)
    pub fn summary(&self) -> (f64, u32, u32) {
        let a = self
            .arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let rate = match (a.first(), a.last()) {
            (Some(f), Some(l)) if a.len() > 1 => {
                (a.len() - 1) as f64 / l.duration_since(*f).as_secs_f64().max(1e-9)
            }
            _ => 0.0,
        };
        let mut lags = self
            .lags_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        lags.sort_unstable();
        let pick = |p: f64| crate::load::percentile(&lags, p);
        (rate, pick(0.5), pick(0.99))
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
