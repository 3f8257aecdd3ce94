//! The in-process HTTP load generator: a fixed number of workers, each
//! looping one request at a time for a fixed duration (closed loop, like
//! pgbench's clients), every request timed and its status counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latency summary, milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lat {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentile of sorted values (`p` in 0..=1).
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Lat {
    /// From latencies in microseconds (sorted in place).
    pub fn from_us(v: &mut [u32]) -> Lat {
        v.sort_unstable();
        if v.is_empty() {
            return Lat::default();
        }
        let ms = |us: u32| f64::from(us) / 1000.0;
        Lat {
            mean: v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64 / 1000.0,
            p50: ms(percentile(v, 0.50)),
            p90: ms(percentile(v, 0.90)),
            p99: ms(percentile(v, 0.99)),
            max: ms(percentile(v, 1.0)),
        }
    }
}

/// What one phase observed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub lat_us: Vec<u32>,
    /// The measured window, seconds.
    pub secs: f64,
}

impl Observed {
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
    /// "201×1234, 409×2, no answer×1"
    pub fn status_text(&self) -> String {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        if self.transport_errors > 0 {
            parts.push(format!("no answer×{}", self.transport_errors));
        }
        parts.join(", ")
    }
}

/// Builds request `k` of worker `w`.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// An HTTP client for `clients` concurrent requests to one host.
pub fn http_client(clients: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Run `clients` workers for `warmup + measure`; only requests started after
/// the warm-up are recorded.
pub async fn drive(
    clients: usize,
    warmup: Duration,
    measure: Duration,
    make: MakeRequest,
) -> Observed {
    let start = Instant::now();
    let from = start + warmup;
    let end = from + measure;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..clients {
        let make = make.clone();
        tasks.spawn(async move {
            let mut o = Observed::default();
            let mut k: u64 = 0;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let req = make(w, k);
                k += 1;
                let status = match req.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        // read the whole body: the connection is reused
                        match r.bytes().await {
                            Ok(_) => Some(s),
                            Err(_) => None,
                        }
                    }
                    Err(_) => None,
                };
                let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                if t >= from {
                    match status {
                        Some(s) => *o.statuses.entry(s).or_default() += 1,
                        None => o.transport_errors += 1,
                    }
                    o.lat_us.push(us);
                }
            }
            o
        });
    }
    let mut all = Observed {
        secs: measure.as_secs_f64(),
        ..Default::default()
    };
    while let Some(r) = tasks.join_next().await {
        if let Ok(o) = r {
            for (s, n) in o.statuses {
                *all.statuses.entry(s).or_default() += n;
            }
            all.transport_errors += o.transport_errors;
            all.lat_us.extend(o.lat_us);
        }
    }
    all
}

/// Open up to `n` keep-alive connections at once (so a stampede measures
/// the server, not TCP set-up).
pub async fn warm_connections(http: &reqwest::Client, base: &str, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (http, url) = (http.clone(), format!("{base}/healthz"));
        tasks.spawn(async move {
            if let Ok(r) = http.get(url).send().await {
                let _ = r.bytes().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        // 1000 samples: p99 is the 990th
        let w: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&w, 0.99), 990);
    }

    #[test]
    fn summary_in_milliseconds() {
        let mut v = vec![3000, 1000, 2000, 4000];
        let l = Lat::from_us(&mut v);
        assert!((l.p50 - 2.0).abs() < 1e-9);
        assert!((l.max - 4.0).abs() < 1e-9);
        assert!((l.mean - 2.5).abs() < 1e-9);
    }
}
