//! A small typed client for the booking API that retries for you, safely.
//!
//! Every write carries an `Idempotency-Key` (one per logical operation, the
//! same on each retry), so retrying a request whose answer was lost can never
//! book twice. It retries transport errors, 409 `idempotency_in_progress`,
//! 429 and 503, honouring `Retry-After` (capped), within a bounded budget of
//! attempts and time; every other answer is returned as it is.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::db::bookings::Booking;

/// A problem+json body.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    pub status: u16,
    pub code: String,
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{status} {}: {}", problem.code, problem.detail)]
    Api { status: u16, problem: Problem },
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("gave up after {attempts} attempts ({last})")]
    Exhausted { attempts: u32, last: String },
}

impl ClientError {
    /// The stable problem code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { problem, .. } => Some(&problem.code),
            _ => None,
        }
    }
}

/// Retry budget.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_attempts: u32,
    pub max_total: Duration,
    /// Longest single wait, whatever Retry-After says.
    pub max_wait: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_attempts: 5,
            max_total: Duration::from_secs(30),
            max_wait: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    pub budget: Budget,
}

impl Client {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Client {
        Client {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            http: reqwest::Client::new(),
            budget: Budget::default(),
        }
    }

    /// Use a shared connection pool.
    pub fn with_http(mut self, http: reqwest::Client) -> Client {
        self.http = http;
        self
    }

    pub async fn create_booking(
        &self,
        resource_id: Uuid,
        start: &str,
        end: &str,
        note: Option<&str>,
    ) -> Result<Booking, ClientError> {
        let body = json!({"resource_id": resource_id, "start": start, "end": end, "note": note});
        self.send(reqwest::Method::POST, "/v1/bookings", Some(body), None)
            .await
    }

    pub async fn reschedule(
        &self,
        id: Uuid,
        start: &str,
        end: &str,
        if_match: Option<i32>,
    ) -> Result<Booking, ClientError> {
        let body = json!({"start": start, "end": end});
        self.send(
            reqwest::Method::PATCH,
            &format!("/v1/bookings/{id}"),
            Some(body),
            if_match,
        )
        .await
    }

    pub async fn cancel(&self, id: Uuid) -> Result<Booking, ClientError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("/v1/bookings/{id}"),
            None,
            None,
        )
        .await
    }

    pub async fn get_booking(&self, id: Uuid) -> Result<Booking, ClientError> {
        self.send(
            reqwest::Method::GET,
            &format!("/v1/bookings/{id}"),
            None,
            None,
        )
        .await
    }

    /// Any request; writes get an idempotency key.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<i32>,
    ) -> Result<T, ClientError> {
        let key = (method != reqwest::Method::GET).then(|| Uuid::new_v4().to_string());
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path))
                .bearer_auth(&self.token)
                .timeout(self.budget.timeout);
            if let Some(k) = &key {
                req = req.header("idempotency-key", k);
            }
            if let Some(v) = if_match {
                req = req.header("if-match", format!("\"{v}\""));
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let (wait, last) = match req.send().await {
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => (
                    Duration::from_millis(100 * u64::from(attempt)),
                    e.to_string(),
                ),
                Err(e) => return Err(e.into()),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if resp.status().is_success() {
                        return Ok(resp.json().await?);
                    }
                    let problem: Problem = resp.json().await.unwrap_or(Problem {
                        status,
                        code: "unknown".into(),
                        detail: String::new(),
                    });
                    let retryable =
                        matches!(status, 429 | 503) || problem.code == "idempotency_in_progress";
                    if !retryable {
                        return Err(ClientError::Api { status, problem });
                    }
                    (
                        retry_after.unwrap_or(Duration::from_millis(200 * u64::from(attempt))),
                        problem.code,
                    )
                }
            };
            let wait = wait.min(self.budget.max_wait);
            if attempt >= self.budget.max_attempts
                || started.elapsed() + wait > self.budget.max_total
            {
                return Err(ClientError::Exhausted {
                    attempts: attempt,
                    last,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}
