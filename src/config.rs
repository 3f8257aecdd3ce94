//! Configuration from the environment (see the contract's table). Every value
//! is checked at start; a bad one stops the program with one line naming the
//! variable, instead of surfacing later as a confusing runtime failure.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration error: always names the offending variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Where the verification code of a phone sign-in goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpDelivery {
    /// Written to the server log (development).
    Console,
    /// POSTed as JSON to an SMS gateway adapter.
    Webhook(String),
    /// Also returned in the API response (automated tests and demos only).
    Echo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// `Debug` is written by hand below: the JWT secret and the passwords in the
/// database URLs never reach a log line.
#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: Option<String>,
    pub serve_database_url: Option<String>,
    pub data_dir: PathBuf,
    /// Absent only when the private cluster is used: then it is generated and
    /// kept in the data dir.
    pub jwt_secret: Option<Vec<u8>>,
    pub jwt_issuers: Vec<String>,
    pub otp_delivery: OtpDelivery,
    pub rate_limits: bool,
    pub log_format: LogFormat,
    pub access_token_ttl_secs: i64,
    /// Lifetime of a refresh token (each use issues a new one).
    pub refresh_token_ttl_secs: i64,
    /// Requests per client IP per 5 minutes on `/v1/auth/*` (when
    /// `rate_limits` is on).
    pub auth_rate_limit: i64,
    pub max_active_bookings: i64,
    pub db_pool_size: u32,
    /// Writes (POST/PUT/PATCH/DELETE under `/v1/`, not `/v1/auth/*`) per
    /// minute per signed-in user, per server instance (when `rate_limits`).
    pub write_rate_per_minute: i64,
    /// The same per client IP (IPv6: per /64).
    pub write_rate_per_minute_ip: i64,
    /// Reads (GET under `/v1/`) per minute per signed-in user, per instance.
    pub read_rate_per_minute: i64,
    /// The same per client IP.
    pub read_rate_per_minute_ip: i64,
    /// Requests of one user in progress at once, per instance (always on).
    pub max_in_flight_per_user: i64,
    /// Requests under `/v1/` in progress at once, per instance (always on):
    /// past it 503 at once, before the pool's queue times out.
    pub max_in_flight: i64,
    /// A connection that has not sent a whole request head within this many
    /// seconds (including an idle keep-alive connection) is closed.
    pub header_read_timeout_secs: i64,
    /// A reused refresh token still returns its successor within this many
    /// seconds of its first use (a double submit), like Supabase Auth.
    pub refresh_reuse_secs: i64,
    /// `BOOKING_WEBHOOK_ALLOW_PRIVATE`: deliver to non-public addresses too.
    pub webhook_allow_private: bool,
    /// `BOOKING_WEBHOOK_DISABLE_AFTER_DAYS`: an endpoint whose every delivery
    /// failed for this many days is disabled (0: never).
    pub webhook_disable_after_days: i64,
    /// `BOOKING_PUBLIC_URL`: the base of URLs the server hands out.
    pub public_url: String,
    /// `BOOKING_EXPIRY_SWEEP_SECONDS`: how often expired holds and pending
    /// bookings are marked expired (0: never; nothing correct depends on it).
    pub expiry_sweep_secs: i64,
    /// `BOOKING_DB_POOLER`: what stands between the server and PostgreSQL.
    pub db_pooler: Pooler,
    /// `BOOKING_DISTRIBUTED`: the schema's single-node form, or Citus's.
    pub distributed: Distributed,
}

/// `BOOKING_DISTRIBUTED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distributed {
    /// One PostgreSQL (the default).
    None,
    /// A Citus coordinator: `migrate` turns the schema into its distributed
    /// form (`migrations/citus/`), and the claims are set with `SET LOCAL`
    /// (they reach the workers; `set_config` does not).
    Citus,
}

/// `BOOKING_DB_POOLER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// PostgreSQL itself, or a pooler in session mode.
    None,
    /// A pooler in transaction mode without prepared-statement support
    /// (PgBouncer before 1.21, Debian 12's 1.18): no statement is sent outside
    /// a transaction, no statement stays prepared, and the session settings
    /// are set per transaction instead of at connect (see `db::Db`).
    Transaction,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Parse from any lookup function (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());

        let addr = match non_empty("BOOKING_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.trim().parse().map_err(|_| {
                bad(
                    "BOOKING_ADDR",
                    format!("`{v}` is not a socket address like 127.0.0.1:8080"),
                )
            })?,
        };
        let database_url = non_empty("DATABASE_URL");
        if let Some(url) = &database_url {
            check_pg_url("DATABASE_URL", url)?;
        }
        let serve_database_url = non_empty("BOOKING_SERVE_DATABASE_URL");
        if let Some(url) = &serve_database_url {
            if database_url.is_none() {
                return Err(bad(
                    "BOOKING_SERVE_DATABASE_URL",
                    "only meaningful together with DATABASE_URL",
                ));
            }
            check_pg_url("BOOKING_SERVE_DATABASE_URL", url)?;
        }
        let data_dir =
            PathBuf::from(non_empty("BOOKING_DATA_DIR").unwrap_or_else(|| "./.booking".into()));
        let jwt_secret = match non_empty("BOOKING_JWT_SECRET") {
            Some(s) if s.len() < 32 => {
                return Err(bad("BOOKING_JWT_SECRET", "must be at least 32 bytes long"))
            }
            Some(s) => Some(s.into_bytes()),
            None if database_url.is_some() => {
                return Err(bad(
                    "BOOKING_JWT_SECRET",
                    "required when DATABASE_URL is set (an HS256 secret of at least 32 bytes)",
                ))
            }
            None => None,
        };
        let jwt_issuers: Vec<String> = non_empty("BOOKING_JWT_ISSUERS")
            .unwrap_or_else(|| "booking".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if jwt_issuers.is_empty() {
            return Err(bad("BOOKING_JWT_ISSUERS", "names no issuer"));
        }
        let otp_delivery = match non_empty("BOOKING_OTP_DELIVERY").as_deref() {
            None | Some("console") => OtpDelivery::Console,
            Some("echo") => OtpDelivery::Echo,
            Some(v) if v.starts_with("webhook:") => {
                let url = &v["webhook:".len()..];
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                    return Err(bad(
                        "BOOKING_OTP_DELIVERY",
                        format!("`{url}` is not an http(s) URL"),
                    ));
                }
                OtpDelivery::Webhook(url.to_string())
            }
            Some(v) => {
                return Err(bad(
                    "BOOKING_OTP_DELIVERY",
                    format!("`{v}` is not one of console, echo, webhook:URL"),
                ))
            }
        };
        let rate_limits = match non_empty("BOOKING_RATE_LIMITS").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => {
                return Err(bad(
                    "BOOKING_RATE_LIMITS",
                    format!("`{v}` is not on or off"),
                ))
            }
        };
        let log_format = match non_empty("BOOKING_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(v) => {
                return Err(bad(
                    "BOOKING_LOG_FORMAT",
                    format!("`{v}` is not json or pretty"),
                ))
            }
        };
        let access_token_ttl_secs =
            int_var(&non_empty, "BOOKING_ACCESS_TOKEN_TTL", 3600, 60, 86_400 * 7)?;
        let refresh_token_ttl_secs = int_var(
            &non_empty,
            "BOOKING_REFRESH_TOKEN_TTL",
            30 * 86_400,
            300,
            365 * 86_400,
        )?;
        let auth_rate_limit = int_var(&non_empty, "BOOKING_AUTH_RATE_LIMIT", 30, 1, 1_000_000)?;
        let max_active_bookings =
            int_var(&non_empty, "BOOKING_MAX_ACTIVE_BOOKINGS", 100, 1, 1_000_000)?;
        let db_pool_size = int_var(&non_empty, "BOOKING_DB_POOL_SIZE", 16, 1, 500)? as u32;
        let write_rate_per_minute = int_var(
            &non_empty,
            "BOOKING_WRITE_RATE_PER_MINUTE",
            60,
            1,
            1_000_000,
        )?;
        let write_rate_per_minute_ip = int_var(
            &non_empty,
            "BOOKING_WRITE_RATE_PER_MINUTE_IP",
            300,
            1,
            1_000_000,
        )?;
        let read_rate_per_minute = int_var(
            &non_empty,
            "BOOKING_READ_RATE_PER_MINUTE",
            600,
            1,
            1_000_000,
        )?;
        let read_rate_per_minute_ip = int_var(
            &non_empty,
            "BOOKING_READ_RATE_PER_MINUTE_IP",
            3000,
            1,
            1_000_000,
        )?;
        let max_in_flight_per_user =
            int_var(&non_empty, "BOOKING_MAX_IN_FLIGHT_PER_USER", 4, 1, 10_000)?;
        let max_in_flight = int_var(&non_empty, "BOOKING_MAX_IN_FLIGHT", 512, 1, 1_000_000)?;
        let header_read_timeout_secs =
            int_var(&non_empty, "BOOKING_HEADER_READ_TIMEOUT", 15, 1, 300)?;
        let refresh_reuse_secs = int_var(&non_empty, "BOOKING_REFRESH_REUSE_SECONDS", 10, 0, 3600)?;
        let webhook_allow_private = match non_empty("BOOKING_WEBHOOK_ALLOW_PRIVATE").as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(v) => {
                return Err(bad(
                    "BOOKING_WEBHOOK_ALLOW_PRIVATE",
                    format!("`{v}` is not on or off"),
                ))
            }
        };
        let db_pooler = match non_empty("BOOKING_DB_POOLER").as_deref() {
            None | Some("none") => Pooler::None,
            Some("transaction") => Pooler::Transaction,
            Some(v) => {
                return Err(bad(
                    "BOOKING_DB_POOLER",
                    format!("`{v}` is not none or transaction"),
                ))
            }
        };
        let distributed = match non_empty("BOOKING_DISTRIBUTED").as_deref() {
            None | Some("none") => Distributed::None,
            Some("citus") => Distributed::Citus,
            Some(v) => {
                return Err(bad(
                    "BOOKING_DISTRIBUTED",
                    format!("`{v}` is not none or citus"),
                ))
            }
        };
        if distributed == Distributed::Citus && database_url.is_none() {
            return Err(bad(
                "BOOKING_DISTRIBUTED",
                "citus needs DATABASE_URL: a Citus coordinator (scripts/citus-cluster up starts one)".to_string(),
            ));
        }
        let webhook_disable_after_days =
            int_var(&non_empty, "BOOKING_WEBHOOK_DISABLE_AFTER_DAYS", 5, 0, 365)?;
        let public_url =
            match non_empty("BOOKING_PUBLIC_URL") {
                None => format!("http://{addr}"),
                Some(u) => match reqwest::Url::parse(&u) {
                    Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                        u.trim_end_matches('/').to_string()
                    }
                    _ => return Err(bad(
                        "BOOKING_PUBLIC_URL",
                        "must be an http:// or https:// URL such as https://booking.example.com",
                    )),
                },
            };
        let expiry_sweep_secs = int_var(&non_empty, "BOOKING_EXPIRY_SWEEP_SECONDS", 5, 0, 3600)?;
        Ok(Config {
            addr,
            database_url,
            serve_database_url,
            data_dir,
            jwt_secret,
            jwt_issuers,
            otp_delivery,
            rate_limits,
            log_format,
            access_token_ttl_secs,
            refresh_token_ttl_secs,
            auth_rate_limit,
            max_active_bookings,
            db_pool_size,
            write_rate_per_minute,
            write_rate_per_minute_ip,
            read_rate_per_minute,
            read_rate_per_minute_ip,
            max_in_flight_per_user,
            max_in_flight,
            header_read_timeout_secs,
            refresh_reuse_secs,
            webhook_allow_private,
            db_pooler,
            distributed,
            webhook_disable_after_days,
            public_url,
            expiry_sweep_secs,
        })
    }
}

/// A URL with its password replaced by `***`.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".into(),
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field(
                "serve_database_url",
                &self.serve_database_url.as_deref().map(redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("jwt_issuers", &self.jwt_issuers)
            .field("otp_delivery", &self.otp_delivery)
            .field("rate_limits", &self.rate_limits)
            .field("log_format", &self.log_format)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("auth_rate_limit", &self.auth_rate_limit)
            .field("max_active_bookings", &self.max_active_bookings)
            .field("db_pool_size", &self.db_pool_size)
            .field("write_rate_per_minute", &self.write_rate_per_minute)
            .field("write_rate_per_minute_ip", &self.write_rate_per_minute_ip)
            .field("read_rate_per_minute", &self.read_rate_per_minute)
            .field("read_rate_per_minute_ip", &self.read_rate_per_minute_ip)
            .field("max_in_flight_per_user", &self.max_in_flight_per_user)
            .field("max_in_flight", &self.max_in_flight)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("refresh_reuse_secs", &self.refresh_reuse_secs)
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("db_pooler", &self.db_pooler)
            .field("distributed", &self.distributed)
            .field(
                "webhook_disable_after_days",
                &self.webhook_disable_after_days,
            )
            .field("public_url", &self.public_url)
            .field("expiry_sweep_secs", &self.expiry_sweep_secs)
            .finish()
    }
}

fn int_var(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(bad(
                var,
                format!("`{v}` is not a whole number in {min}..={max}"),
            )),
        },
    }
}

fn check_pg_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.parse::<sqlx::postgres::PgConnectOptions>()
            .map(|_| ())
            .map_err(|e| bad(var, format!("not a valid PostgreSQL URL: {e}")))
    } else {
        Err(bad(var, "must start with postgres:// or postgresql://"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.jwt_issuers, vec!["booking"]);
        assert_eq!(c.otp_delivery, OtpDelivery::Console);
        assert!(c.rate_limits);
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (k, v) in [
            ("BOOKING_ADDR", "nope"),
            ("DATABASE_URL", "mysql://x"),
            ("BOOKING_JWT_SECRET", "short"),
            ("BOOKING_OTP_DELIVERY", "sms"),
            ("BOOKING_RATE_LIMITS", "maybe"),
            ("BOOKING_LOG_FORMAT", "xml"),
            ("BOOKING_WEBHOOK_ALLOW_PRIVATE", "yes"),
            ("BOOKING_PUBLIC_URL", "ftp://x"),
        ] {
            let e = parse(&[(k, v)]).expect_err(k);
            assert_eq!(e.var, k);
            assert!(e.to_string().starts_with(k));
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = parse(&[
            ("DATABASE_URL", "postgres://owner:hunter2@db.example/x"),
            (
                "BOOKING_JWT_SECRET",
                "a-very-secret-jwt-secret-of-32-bytes-or-more",
            ),
        ])
        .expect("config");
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("a-very-secret"), "{text}");
        assert!(text.contains("owner"), "{text}");
    }

    #[test]
    fn an_external_database_requires_a_secret() {
        let e = parse(&[("DATABASE_URL", "postgres://u@localhost/db")]).expect_err("secret");
        assert_eq!(e.var, "BOOKING_JWT_SECRET");
    }
}
