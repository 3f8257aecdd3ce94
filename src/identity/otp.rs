//! One-time sign-in codes: 6 digits from the OS CSPRNG, kept only as
//! HMAC-SHA256 under a server key, compared in constant time, valid 5 minutes,
//! used once, dead after 5 wrong tries; and their delivery (console, webhook,
//! echo). The code itself is never logged, except by `console` delivery, whose
//! whole point is to put it in the log.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::Rng;
use sha2::Sha256;
use std::sync::OnceLock;
use std::time::Duration;
use subtle::ConstantTimeEq;

use crate::config::OtpDelivery;
use crate::db::signin::SendWindow;
use crate::domain::Phone;

/// How long a code is valid.
pub const TTL_SECS: i64 = 300;
/// Wrong tries after which a code dies.
pub const MAX_ATTEMPTS: i32 = 5;
/// No new code for a phone within this many seconds of the last one.
pub const RESEND_AFTER_SECS: i64 = 60;
/// At most this many codes per phone per rolling hour.
pub const HOURLY_CAP: i64 = 5;

/// Webhook delivery: per-attempt timeout and number of attempts.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
pub const WEBHOOK_ATTEMPTS: u32 = 3;

/// A fresh 6-digit code, uniformly drawn from the OS CSPRNG.
pub fn generate() -> String {
    let n: u32 = OsRng.gen_range(0..1_000_000);
    format!("{n:06}")
}

/// HMAC-SHA256(key, phone || 0x00 || code): binding the phone means a code
/// hash is worthless for any other number.
pub fn hash(key: &[u8], phone: &str, code: &str) -> anyhow::Result<Vec<u8>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| anyhow::anyhow!("OTP key rejected: {e}"))?;
    mac.update(phone.as_bytes());
    mac.update(&[0]);
    mac.update(code.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Constant-time equality of two hashes.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Seconds to wait before another code may be sent to this phone, if any:
/// 60 s after the last one, and until the oldest of the last hour's sends
/// leaves the window once the hourly cap is reached.
pub fn must_wait(w: &SendWindow, now: DateTime<Utc>) -> Option<u64> {
    let mut wait = 0i64;
    if let Some(latest) = w.latest {
        wait = wait.max(ceil_secs(
            latest + chrono::Duration::seconds(RESEND_AFTER_SECS) - now,
        ));
    }
    if w.count >= HOURLY_CAP {
        if let Some(oldest) = w.oldest {
            wait = wait.max(ceil_secs(oldest + chrono::Duration::hours(1) - now));
        }
    }
    (wait > 0).then_some(wait as u64)
}

fn ceil_secs(d: chrono::Duration) -> i64 {
    let ms = d.num_milliseconds();
    if ms <= 0 {
        0
    } else {
        (ms + 999) / 1000
    }
}

/// Why a code could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("OTP delivery failed: {0}")]
pub struct DeliveryFailed(pub String);

/// Deliver a code as configured. `Echo` delivers nothing: the handler puts the
/// code in its response.
pub async fn deliver(
    mode: &OtpDelivery,
    phone: &Phone,
    code: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DeliveryFailed> {
    match mode {
        OtpDelivery::Console => {
            // the code is what a developer needs; the number stays masked in
            // logs, as everywhere else
            tracing::info!(phone = %phone.masked(), code, expires_at = %expires_at, "sign-in code (console delivery)");
            Ok(())
        }
        OtpDelivery::Echo => Ok(()),
        OtpDelivery::Webhook(url) => {
            let body = serde_json::json!({
                "phone": phone.as_str(),
                "code": code,
                "expires_at": expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            });
            post_with_retries(url, &body).await
        }
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .connect_timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// POST the body; retry (bounded, with a short backoff) on network errors,
/// timeouts, 408, 429 and 5xx. Any other answer but 2xx is final.
async fn post_with_retries(url: &str, body: &serde_json::Value) -> Result<(), DeliveryFailed> {
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        match client().post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let s = r.status();
                last = format!("gateway answered {s}");
                let retryable = s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429;
                if !retryable {
                    break;
                }
            }
            // Without the URL: it may carry a gateway credential.
            Err(e) => last = format!("request failed: {}", e.without_url()),
        }
        tracing::warn!(attempt, error = %last, "OTP webhook attempt failed");
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
    }
    Err(DeliveryFailed(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn console_delivery_logs_the_code_and_only_a_masked_phone() {
        let out = Captured::default();
        let w = out.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(sub);
        let phone = Phone::parse("+14155550123").expect("phone");
        deliver(&OtpDelivery::Console, &phone, "424242", chrono::Utc::now())
            .await
            .expect("delivered");
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        assert!(text.contains("424242"), "{text}");
        assert!(
            !text.contains("4155550123"),
            "the full number is logged: {text}"
        );
        assert!(text.contains(&phone.masked()), "{text}");
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let c = generate();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn the_hash_depends_on_key_phone_and_code() {
        let h = hash(b"k1", "+14155550123", "123456").expect("hash");
        assert_eq!(h.len(), 32);
        assert!(same(
            &h,
            &hash(b"k1", "+14155550123", "123456").expect("hash")
        ));
        assert!(!same(
            &h,
            &hash(b"k2", "+14155550123", "123456").expect("hash")
        ));
        assert!(!same(
            &h,
            &hash(b"k1", "+14155550124", "123456").expect("hash")
        ));
        assert!(!same(
            &h,
            &hash(b"k1", "+14155550123", "123457").expect("hash")
        ));
    }

    #[test]
    fn resend_and_hourly_cap_waits() {
        let now = Utc::now();
        let s = chrono::Duration::seconds;
        assert_eq!(must_wait(&SendWindow::default(), now), None);
        let recent = SendWindow {
            count: 1,
            oldest: Some(now - s(10)),
            latest: Some(now - s(10)),
        };
        assert_eq!(must_wait(&recent, now), Some(50));
        let capped = SendWindow {
            count: HOURLY_CAP,
            oldest: Some(now - s(600)),
            latest: Some(now - s(120)),
        };
        assert_eq!(must_wait(&capped, now), Some(3000));
    }
}
