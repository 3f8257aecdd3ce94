//! Database access. The caller owns the transaction: a request opens one
//! [`Scoped`] transaction — already switched to the caller's role with the
//! caller's claims, both set *locally* so nothing outlives it on a pooled
//! connection — and passes `&mut PgConnection` to the small functions of the
//! per-table modules. There is no way to reach the pool unscoped from a handler.

pub mod bookings;
pub mod calendars;
pub mod closures;
pub mod idempotency;
pub mod migrate;
pub mod resources;
pub mod retry;
pub mod signin;
pub mod users;
pub mod webhooks;

use crate::config::{Distributed, Pooler};
use crate::identity::Identity;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::time::Duration;

/// The serving pool. Connections are the non-privileged login role; each
/// carries timeouts so that nothing hangs: a statement never runs longer than
/// 5 s, a lock is never waited for longer than 2 s (then 55P03, retried or a
/// 503), and an idle transaction is cut after 15 s.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    pooler: Pooler,
    distributed: Distributed,
    /// Whether the login may call `booking.create_booking` itself (0 = not
    /// known yet, 1 = yes, 2 = no): see [`Db::one_trip_create`].
    one_trip: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

pub const STATEMENT_TIMEOUT: &str = "5s";
pub const LOCK_TIMEOUT: &str = "2s";

impl Db {
    pub fn connect_lazy(opts: PgConnectOptions, max: u32) -> Db {
        Db::connect_lazy_via(opts, max, Pooler::None)
    }

    /// On a Citus coordinator (`BOOKING_DISTRIBUTED=citus`): the claims are
    /// set with `SET LOCAL`, one statement each, which Citus replays on every
    /// worker connection of the transaction (`citus.propagate_set_commands =
    /// 'local'`, set by the migration); `set_config` would stay on the
    /// coordinator and the workers' row-level security would see no caller.
    /// The one-statement create is not used (its claims are `set_config`).
    pub fn on(mut self, distributed: Distributed) -> Db {
        self.distributed = distributed;
        if distributed == Distributed::Citus {
            self.one_trip.store(2, std::sync::atomic::Ordering::Relaxed);
        }
        self
    }

    /// The same through a pooler. In transaction mode (PgBouncer before
    /// 1.21) a server connection is ours only inside a transaction: the
    /// session settings travel with each transaction (`set_config(…, true)`
    /// in the scoping statement) instead of as startup options, which such a
    /// pooler refuses; no statement stays prepared (sqlx then parses each
    /// statement anew, inside the transaction, on the connection it runs
    /// on; configure the pooler with `server_reset_query = DEALLOCATE ALL`
    /// and `server_reset_query_always = 1` so the names it leaves are
    /// dropped); and the one-statement create is not used.
    pub fn connect_lazy_via(opts: PgConnectOptions, max: u32, pooler: Pooler) -> Db {
        let opts = match pooler {
            Pooler::None => Db::with_session_options(opts),
            Pooler::Transaction => opts.statement_cache_capacity(0),
        };
        // No ping before each use (one round trip less per request): a
        // connection that died while idle fails its first statement with a
        // connection-class error, and the whole transaction is retried (see
        // `retry`); idle connections are also closed after 5 minutes.
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(max)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(opts);
        Db {
            pool,
            pooler,
            distributed: Distributed::None,
            one_trip: std::sync::Arc::new(std::sync::atomic::AtomicU8::new(match pooler {
                Pooler::None => 0,
                Pooler::Transaction => 2,
            })),
        }
    }

    fn with_session_options(opts: PgConnectOptions) -> PgConnectOptions {
        opts.options([
            ("statement_timeout", STATEMENT_TIMEOUT),
            ("lock_timeout", LOCK_TIMEOUT),
            ("idle_in_transaction_session_timeout", "15s"),
            // the write functions refuse REPEATABLE READ; a database or role
            // default must not turn every write into an error
            // (a space in the startup `options` must be escaped with a backslash)
            ("default_transaction_isolation", "read\\ committed"),
            ("TimeZone", "UTC"),
        ])
    }

    /// Whether a create can be one statement — role, claims and
    /// `create_booking` together, one round trip, its own implicit
    /// transaction — instead of BEGIN, set_config, create, COMMIT. It can when
    /// the login itself may execute `create_booking` (EXECUTE is checked as
    /// the statement starts, before it switches the role): migration 0010
    /// and `ensure_login_role` grant that to the logins they know. Asked once.
    pub async fn one_trip_create(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self.one_trip.load(Relaxed) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let known: Result<bool, sqlx::Error> = sqlx::query_scalar(
            "SELECT has_schema_privilege('booking', 'USAGE') \
                AND has_function_privilege('booking.create_booking(uuid, timestamptz, timestamptz, text)', 'EXECUTE')",
        )
        .fetch_one(&self.pool)
        .await;
        match known {
            Ok(yes) => {
                self.one_trip.store(if yes { 1 } else { 2 }, Relaxed);
                yes
            }
            // not known (the database is away): the ordinary path this time
            Err(_) => false,
        }
    }

    pub fn distributed(&self) -> Distributed {
        self.distributed
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begin a transaction scoped to `who`: `role` and the claims set with
    /// `set_config(..., true)`, i.e. for this transaction only. The claims are
    /// set both ways PostgREST has ever set them — `request.jwt.claims` (one
    /// JSON document) and `request.jwt.claim.sub` / `.role` — so that either
    /// definition of `auth.uid()` a Supabase database may carry sees the
    /// caller. Still one statement, one round trip.
    pub async fn begin(&self, who: &Identity) -> Result<Scoped, sqlx::Error> {
        if self.distributed == Distributed::Citus {
            return self.begin_citus(Some(who)).await;
        }
        let mut tx = self.pool.begin().await?;
        let sql = match self.pooler {
            Pooler::None => {
                "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
                        set_config('request.jwt.claim.sub', $3, true), set_config('request.jwt.claim.role', $1, true)"
            }
            Pooler::Transaction => {
                "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
                        set_config('request.jwt.claim.sub', $3, true), set_config('request.jwt.claim.role', $1, true), \
                        set_config('statement_timeout', $4, true), set_config('lock_timeout', $5, true), \
                        set_config('idle_in_transaction_session_timeout', '15s', true), \
                        set_config('TimeZone', 'UTC', true)"
            }
        };
        let mut q = sqlx::query(sql)
            .bind(who.db_role())
            .bind(who.claims_json())
            .bind(who.user_id.to_string());
        if self.pooler == Pooler::Transaction {
            q = q.bind(STATEMENT_TIMEOUT).bind(LOCK_TIMEOUT);
        }
        q.execute(&mut *tx).await?;
        Ok(Scoped { tx })
    }

    /// [`Db::begin`] on a Citus coordinator: the role with `set_config`
    /// (never `SET LOCAL ROLE`: Citus would replay it on the connections a
    /// SECURITY DEFINER function opens as its owner), each claim and the lock
    /// timeout with its own `SET LOCAL` statement (a statement of several
    /// would be replayed whole on the workers), as quoted literals (`SET`
    /// takes no parameters).
    async fn begin_citus(&self, who: Option<&Identity>) -> Result<Scoped, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let role = who.map(|w| w.db_role()).unwrap_or("anon");
        sqlx::query("SELECT set_config('role', $1, true)")
            .bind(role)
            .execute(&mut *tx)
            .await?;
        if let Some(w) = who {
            for (name, value) in [
                ("request.jwt.claims", w.claims_json()),
                ("request.jwt.claim.sub", w.user_id.to_string()),
                ("request.jwt.claim.role", role.to_string()),
            ] {
                let sql = format!("SET LOCAL \"{name}\" = {}", quote_literal(&value));
                simple(&mut tx, sql).await?;
            }
        }
        simple(
            &mut tx,
            format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"),
        )
        .await?;
        Ok(Scoped { tx })
    }

    /// A transaction as `anon` with no claims (readiness checks).
    pub async fn begin_anon(&self) -> Result<Scoped, sqlx::Error> {
        if self.distributed == Distributed::Citus {
            return self.begin_citus(None).await;
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "SELECT set_config('role', 'anon', true), set_config('statement_timeout', $1, true), \
                    set_config('lock_timeout', $2, true)",
        )
        .bind(STATEMENT_TIMEOUT)
        .bind(LOCK_TIMEOUT)
        .execute(&mut *tx)
        .await?;
        Ok(Scoped { tx })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One statement by the simple protocol (nothing prepared).
async fn simple(tx: &mut Transaction<'static, Postgres>, sql: String) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    let conn: &mut PgConnection = tx;
    conn.execute(sqlx::raw_sql(&sql)).await?;
    Ok(())
}

/// A string as an SQL literal whatever `standard_conforming_strings` says:
/// an escape string (`E'…'`) with its backslashes and quotes escaped. NUL,
/// which PostgreSQL text cannot hold, is dropped (JSON from serde escapes it).
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A transaction running as the request's caller.
pub struct Scoped {
    tx: Transaction<'static, Postgres>,
}

impl Scoped {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
    /// Commit. An error that proves nothing was committed (a serialization
    /// failure or deadlock found at commit, a deferred constraint, an aborted
    /// transaction) passes through as it is, to be retried or mapped. Anything
    /// else — a lost connection, a pooler's "server conn crashed", a shutdown —
    /// does not say whether the commit happened: that is a 503 which is never
    /// retried here (a client's retry with its Idempotency-Key is safe; ours
    /// could double-apply).
    pub async fn commit(self) -> Result<(), crate::error::ApiError> {
        match self.tx.commit().await {
            Ok(()) => Ok(()),
            // the server refused the commit: nothing of it happened
            Err(sqlx::Error::Database(d))
                if d.code().is_some_and(|c| {
                    c.starts_with("40") || c.starts_with("23") || c.starts_with("25")
                }) =>
            {
                Err(sqlx::Error::Database(d).into())
            }
            Err(e) => {
                tracing::warn!(error = %e, "the connection failed during COMMIT: outcome unknown");
                metrics::counter!("booking_db_commit_unknown_total").increment(1);
                Err(crate::error::ApiError::Unavailable { retry_after: 1 })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quote_literal;

    #[test]
    fn literals_are_quoted_whatever_they_hold() {
        assert_eq!(quote_literal("abc"), "E'abc'");
        assert_eq!(quote_literal("a'b"), "E'a\\'b'");
        assert_eq!(
            quote_literal("a\\'; DROP TABLE x; --"),
            "E'a\\\\\\'; DROP TABLE x; --'"
        );
        assert_eq!(quote_literal("\0"), "E''");
    }
}
