//! A real webhook receiver on loopback: records every request (headers and
//! body) and answers with scripted statuses (200 once the script runs out),
//! optionally after a delay.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
    delay: Mutex<Duration>,
    in_flight: std::sync::atomic::AtomicUsize,
}

pub struct Receiver {
    pub url: String,
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// On a given port (0: any free one).
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                s.in_flight
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let delay = *s.delay.lock().expect("lock");
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                s.got.lock().expect("lock").push(Received {
                    id: h("webhook-id"),
                    timestamp: h("webhook-timestamp"),
                    signature: h("webhook-signature"),
                    content_type: h("content-type"),
                    body: body.to_vec(),
                });
                s.in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                let code = s.script.lock().expect("lock").pop_front().unwrap_or(200);
                StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            shared,
            task,
        }
    }

    /// Answer the next requests with these statuses.
    pub fn answer(&self, statuses: &[u16]) {
        self.shared.script.lock().expect("lock").extend(statuses);
    }

    /// Take this long before answering (and recording).
    pub fn delay(&self, d: Duration) {
        *self.shared.delay.lock().expect("lock") = d;
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.got.lock().expect("lock").clone()
    }

    /// Wait until `pred` holds of what has arrived (or fail after `within`).
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver: {what} did not happen within {within:?}; got {} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait for at least `n` requests.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        self.wait_until(within, &format!("{n} requests"), |g| g.len() >= n)
            .await
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Verify a Standard Webhooks signature header, written from the
/// specification (not with the server's signer): the secret's key is the
/// base64 after `whsec_`; the signed content is `{id}.{timestamp}.{body}`;
/// the header holds space-separated `v1,<base64 HMAC-SHA256>`. Returns how
/// many of the header's signatures are valid for this secret.
pub fn valid_signatures(secret: &str, r: &Received) -> usize {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 key");
    let mut signed = format!("{}.{}.", r.id, r.timestamp).into_bytes();
    signed.extend_from_slice(&r.body);
    r.signature
        .split(' ')
        .filter(|s| {
            let Some(sig) = s.strip_prefix("v1,") else {
                return false;
            };
            let Ok(sig) = b64.decode(sig) else {
                return false;
            };
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
            mac.update(&signed);
            mac.verify_slice(&sig).is_ok()
        })
        .count()
}
