//! What one caller may cost: requests in progress (per instance and per user,
//! always on) and request rates on writes (`POST`, `PUT`, `PATCH`, `DELETE`)
//! and reads (`GET`) under `/v1/` (except `/v1/auth/*`, which has its own
//! per-IP limit counted in the database, see `auth_limit.rs`), per client IP
//! and per signed-in user, each with its own allowance.
//!
//! Token buckets kept in this process: a key may spend its whole minute's
//! allowance at once (the burst) and then one request every `60 / rate`
//! seconds. Over the limit: 429 `rate_limited` with `Retry-After` (seconds
//! until one more request is allowed). The counts are **per server
//! instance**: behind a load balancer with N instances a client gets up to N
//! times the rate. That is the intended trade-off: no database round trip on
//! the write path; the hard invariants (no double booking, the per-user cap on
//! active bookings) are enforced by PostgreSQL, not here.
//!
//! - IPv4 addresses count one by one, IPv6 addresses by /64 (one subscriber's
//!   network). The address is the TCP peer's: behind a reverse proxy every
//!   client shares the proxy's address, so raise `BOOKING_WRITE_RATE_PER_MINUTE_IP`
//!   there (forwarded-for headers are not trusted).
//! - The user is the `sub` of a *valid* bearer token. Requests with a missing
//!   or bad token count against the IP only (and are then refused with 401).
//!   The service role (administration) is not limited.
//! - Memory is bounded: a bucket idle long enough to be full again is the same
//!   as no bucket and is dropped by a sweep; past [`MAX_KEYS`] keys the least
//!   recently used are dropped first.
//! - Off with `BOOKING_RATE_LIMITS=off` (benchmarks, load tests from one
//!   address).

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::AppState;
use crate::error::problem_response;

/// Most keys kept per table (IPs, users) before the least recently used go.
pub const MAX_KEYS: usize = 100_000;

/// How often idle buckets are swept at most.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Ip,
    User,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::User => "user",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets of one kind of key.
#[derive(Debug)]
struct Table<K> {
    /// Tokens per minute; also the bucket's capacity (the burst).
    per_minute: f64,
    buckets: HashMap<K, Bucket>,
    last_sweep: Instant,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(per_minute: i64, now: Instant, max_keys: usize) -> Self {
        Table {
            per_minute: per_minute.max(1) as f64,
            buckets: HashMap::new(),
            last_sweep: now,
            max_keys,
        }
    }

    fn per_second(&self) -> f64 {
        self.per_minute / 60.0
    }

    /// Time for an empty bucket to fill up (a minute's allowance refills in a
    /// minute): after that a bucket is as good as absent.
    fn full_after(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Tokens the key holds now (without spending any).
    fn tokens(&self, key: &K, now: Instant) -> f64 {
        match self.buckets.get(key) {
            None => self.per_minute,
            Some(b) => {
                let dt = now.saturating_duration_since(b.last).as_secs_f64();
                (b.tokens + dt * self.per_second()).min(self.per_minute)
            }
        }
    }

    /// Whole seconds until the key holds one token, at least 1.
    fn wait_secs(&self, tokens: f64) -> u64 {
        let secs = ((1.0 - tokens) / self.per_second()).ceil();
        if secs.is_finite() && secs >= 1.0 {
            secs as u64
        } else {
            1
        }
    }

    fn spend(&mut self, key: &K, now: Instant) {
        let tokens = self.tokens(key, now) - 1.0;
        self.buckets
            .insert(key.clone(), Bucket { tokens, last: now });
        self.bound(now);
    }

    /// Drop full buckets (periodically) and, past the cap, the least
    /// recently used ones.
    fn bound(&mut self, now: Instant) {
        let full_after = self.full_after();
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY
            || self.buckets.len() > self.max_keys
        {
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last) < full_after);
            self.last_sweep = now;
        }
        if self.buckets.len() > self.max_keys {
            let mut by_age: Vec<(K, Instant)> = self
                .buckets
                .iter()
                .map(|(k, b)| (k.clone(), b.last))
                .collect();
            by_age.sort_by_key(|(_, last)| *last);
            // drop down to 90% so that this O(n log n) step stays rare
            let excess = self.buckets.len() - self.max_keys * 9 / 10;
            for (k, _) in by_age.into_iter().take(excess) {
                self.buckets.remove(&k);
            }
        }
    }

    fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// The client-address key: IPv4 as is, IPv6 by /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpKey {
    V4([u8; 4]),
    V6Net([u16; 4]),
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpKey::V6Net([s[0], s[1], s[2], s[3]])
            }
        }
    }
}

/// As counters name it: `203.0.113.7`, `2001:db8:1:2::/64`.
impl std::fmt::Display for IpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpKey::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(*o)),
            IpKey::V6Net(s) => write!(f, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]),
        }
    }
}

/// Both tables, behind one lock so that a request is checked against both
/// and spends from both, or from neither.
#[derive(Debug)]
pub struct Limiter {
    ips: Table<IpKey>,
    users: Table<Uuid>,
}

impl Limiter {
    pub fn new(per_ip_per_minute: i64, per_user_per_minute: i64) -> Self {
        Self::with_max_keys(per_ip_per_minute, per_user_per_minute, MAX_KEYS)
    }

    pub fn with_max_keys(per_ip: i64, per_user: i64, max_keys: usize) -> Self {
        let now = Instant::now();
        Limiter {
            ips: Table::new(per_ip, now, max_keys),
            users: Table::new(per_user, now, max_keys),
        }
    }

    /// Admit one request (spending a token of each key given) or say which
    /// limit refuses it and for how many seconds.
    pub fn check(
        &mut self,
        ip: Option<IpKey>,
        user: Option<Uuid>,
        now: Instant,
    ) -> Result<(), (Scope, u64)> {
        if let Some(u) = &user {
            let t = self.users.tokens(u, now);
            if t < 1.0 {
                return Err((Scope::User, self.users.wait_secs(t)));
            }
        }
        if let Some(ip) = &ip {
            let t = self.ips.tokens(ip, now);
            if t < 1.0 {
                return Err((Scope::Ip, self.ips.wait_secs(t)));
            }
        }
        if let Some(u) = &user {
            self.users.spend(u, now);
        }
        if let Some(ip) = &ip {
            self.ips.spend(ip, now);
        }
        Ok(())
    }

    /// Keys currently held (IPs, users).
    pub fn keys(&self) -> (usize, usize) {
        (self.ips.len(), self.users.len())
    }
}

/// Requests in progress: all of them under `/v1/`, and per user. Counted in
/// this process; a guard gives its place back when the request is answered.
#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    per_user: HashMap<Uuid, usize>,
    /// Users with an expensive request (availability) in progress: one each.
    heavy: std::collections::HashSet<Uuid>,
}

/// A place taken in [`InFlight`], given back on drop.
struct InFlightGuard {
    table: Arc<Mutex<InFlight>>,
    user: Option<Uuid>,
    heavy: bool,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.total = t.total.saturating_sub(1);
        if let Some(u) = self.user {
            if let Some(n) = t.per_user.get_mut(&u) {
                *n -= 1;
                if *n == 0 {
                    t.per_user.remove(&u);
                }
            }
            if self.heavy {
                t.heavy.remove(&u);
            }
        }
    }
}

/// Requests whose cost grows with their range (availability computes up to
/// 3000 candidate starts): one user may have one of them in progress.
pub fn is_heavy(path: &str) -> bool {
    path.ends_with("/availability")
}

/// Why a request was not admitted.
enum Refusal {
    /// Too many requests in progress on this instance: 503.
    Busy,
    /// This user already has as many requests in progress as allowed: 429.
    UserInFlight,
}

/// The middleware's state: the app (configuration, token keys), the buckets
/// of this server instance (writes and reads apart) and what is in flight.
#[derive(Clone)]
pub struct Limits {
    state: AppState,
    writes: Arc<Mutex<Limiter>>,
    reads: Arc<Mutex<Limiter>>,
    in_flight: Arc<Mutex<InFlight>>,
}

impl Limits {
    pub fn new(state: AppState) -> Self {
        let c = &state.config;
        let writes = Limiter::new(c.write_rate_per_minute_ip, c.write_rate_per_minute);
        let reads = Limiter::new(c.read_rate_per_minute_ip, c.read_rate_per_minute);
        Limits {
            state,
            writes: Arc::new(Mutex::new(writes)),
            reads: Arc::new(Mutex::new(reads)),
            in_flight: Arc::new(Mutex::new(InFlight::default())),
        }
    }

    fn enter(&self, user: Option<Uuid>, heavy: bool) -> Result<InFlightGuard, Refusal> {
        let c = &self.state.config;
        let mut t = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if t.total >= c.max_in_flight as usize {
            return Err(Refusal::Busy);
        }
        let heavy = heavy && user.is_some();
        if let Some(u) = user {
            if heavy && t.heavy.contains(&u) {
                return Err(Refusal::UserInFlight);
            }
            let n = t.per_user.entry(u).or_default();
            if *n >= c.max_in_flight_per_user as usize {
                return Err(Refusal::UserInFlight);
            }
            *n += 1;
            if heavy {
                t.heavy.insert(u);
            }
        }
        t.total += 1;
        Ok(InFlightGuard {
            table: self.in_flight.clone(),
            user,
            heavy,
        })
    }
}

/// Is this request a write that the limits cover?
pub fn is_limited_write(method: &Method, path: &str) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && path.starts_with("/v1/")
        && !path.starts_with("/v1/auth/")
}

/// The layer, in front of every `/v1/` route:
/// 1. at most `BOOKING_MAX_IN_FLIGHT` requests in progress on this instance
///    (else 503 + `Retry-After` at once, before the pool's queue times out);
/// 2. at most `BOOKING_MAX_IN_FLIGHT_PER_USER` of one user's, and one of
///    their availability answers (else 429), so one caller's slow or
///    expensive requests cannot hold every connection or every core;
/// 3. with `BOOKING_RATE_LIMITS=on`, the write and read rates per user and
///    per address (429 + `Retry-After`).
///
/// The service role is administration and is only subject to the first.
pub async fn admit(State(l): State<Limits>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let who = req
        .extensions()
        .get::<super::middleware::Bearer>()
        .and_then(|b| b.identity().cloned());
    let service = who.as_ref().is_some_and(|w| w.is_service());
    let user = who.filter(|w| !w.is_service()).map(|w| w.user_id);
    let _guard = match l.enter(user, is_heavy(path)) {
        Ok(g) => g,
        Err(Refusal::Busy) => {
            metrics::counter!("load_shed_total", "reason" => "in_flight").increment(1);
            return problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server is at its limit of requests in progress; retry shortly".into(),
                None,
                Some(1),
            );
        }
        Err(Refusal::UserInFlight) => {
            metrics::counter!("rate_limited_total", "scope" => "user_in_flight").increment(1);
            return problem_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "you already have {} requests (or an availability answer) in progress; wait for one to finish",
                    l.state.config.max_in_flight_per_user
                ),
                None,
                Some(1),
            );
        }
    };
    let write = is_limited_write(req.method(), path);
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    if !l.state.config.rate_limits || service || !(write || read) || path.starts_with("/v1/auth/") {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| IpKey::from(c.0.ip()));
    let table = if write { &l.writes } else { &l.reads };
    let verdict = {
        let mut limiter = table.lock().unwrap_or_else(|e| e.into_inner());
        limiter.check(ip, user, Instant::now())
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err((scope, secs)) => {
            metrics::counter!("rate_limited_total", "scope" => scope.as_str()).increment(1);
            problem_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many {} requests from this {}; retry in {secs} s",
                    if write { "write" } else { "read" },
                    match scope {
                        Scope::Ip => "address",
                        Scope::User => "user",
                    }
                ),
                None,
                Some(secs),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpKey> {
        Some(IpKey::from(IpAddr::from([10, 0, 0, n])))
    }

    #[test]
    fn a_user_gets_the_burst_then_waits_for_a_token() {
        let mut l = Limiter::new(1000, 3);
        let u = Some(Uuid::new_v4());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip(1), u, t0).is_ok());
        }
        // 3 per minute: one token every 20 s
        assert_eq!(l.check(ip(1), u, t0), Err((Scope::User, 20)));
        assert_eq!(
            l.check(ip(1), u, t0 + Duration::from_secs(15)),
            Err((Scope::User, 5))
        );
        assert!(l.check(ip(1), u, t0 + Duration::from_secs(20)).is_ok());
        // another user from the same address is not affected
        assert!(l.check(ip(1), Some(Uuid::new_v4()), t0).is_ok());
    }

    #[test]
    fn an_address_is_limited_whoever_signs_in_from_it() {
        let mut l = Limiter::new(2, 1000);
        let t0 = Instant::now();
        assert!(l.check(ip(1), Some(Uuid::new_v4()), t0).is_ok());
        assert!(l.check(ip(1), None, t0).is_ok());
        assert_eq!(
            l.check(ip(1), Some(Uuid::new_v4()), t0),
            Err((Scope::Ip, 30))
        );
        assert!(l.check(ip(2), None, t0).is_ok());
    }

    #[test]
    fn a_refused_request_spends_nothing() {
        let mut l = Limiter::new(1, 2);
        let u = Some(Uuid::new_v4());
        let t0 = Instant::now();
        assert!(l.check(ip(1), u, t0).is_ok());
        for _ in 0..5 {
            assert_eq!(l.check(ip(1), u, t0), Err((Scope::Ip, 60)));
        }
        // the user's bucket only paid for the admitted request
        assert!(l.check(ip(2), u, t0).is_ok());
        assert_eq!(l.check(ip(3), u, t0), Err((Scope::User, 30)));
    }

    #[test]
    fn only_writes_under_v1_outside_sign_in_are_limited() {
        assert!(is_limited_write(&Method::POST, "/v1/bookings"));
        assert!(is_limited_write(&Method::PATCH, "/v1/me"));
        assert!(is_limited_write(&Method::DELETE, "/v1/bookings/x"));
        assert!(is_limited_write(&Method::POST, "/v1/admin/resources"));
        assert!(!is_limited_write(&Method::GET, "/v1/bookings"));
        assert!(!is_limited_write(&Method::POST, "/v1/auth/otp"));
        assert!(!is_limited_write(&Method::POST, "/healthz"));
    }

    #[test]
    fn ipv6_addresses_count_by_64_bit_network() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(IpKey::from(a), IpKey::from(b));
        assert_ne!(IpKey::from(a), IpKey::from(c));
        assert_eq!(IpKey::from(a).to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            IpKey::from(IpAddr::from([10, 0, 0, 1])).to_string(),
            "10.0.0.1"
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(
            IpKey::from(mapped),
            IpKey::from(IpAddr::from([10, 0, 0, 1]))
        );
    }

    #[test]
    fn memory_stays_bounded_and_idle_keys_go() {
        let mut l = Limiter::with_max_keys(60, 60, 100);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let _ = l.check(None, Some(Uuid::from_u128(i.into())), t0);
        }
        assert!(l.keys().1 <= 100, "{:?}", l.keys());
        // a minute later every bucket is full again: the sweep drops them
        let later = t0 + Duration::from_secs(61);
        let _ = l.check(None, Some(Uuid::new_v4()), later);
        assert_eq!(l.keys().1, 1);
    }
}
