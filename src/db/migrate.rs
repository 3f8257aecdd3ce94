//! Migrations: numbered SQL files compiled into the binary, applied in order,
//! each in its own transaction, under an advisory lock so that several
//! processes starting at once apply each migration exactly once. A migration
//! that changed after it was applied is an error, not a silent skip.
//!
//! Append-only: a released migration is never edited. Every change — a new
//! function body included — is a new numbered file (`CREATE OR REPLACE`, or
//! drop and create); `migrations/RELEASED` lists the released files by
//! checksum and a test fails if one of them changes. We chose whole numbered
//! files over separately tracked function files: one order of application,
//! one history to read, and an upgrade test that replays it from any release.

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use crate::config::Distributed;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sql: include_str!("../../migrations/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "rules",
        sql: include_str!("../../migrations/0002_rules.sql"),
    },
    Migration {
        version: 3,
        name: "rls",
        sql: include_str!("../../migrations/0003_rls.sql"),
    },
    Migration {
        version: 4,
        name: "auth",
        sql: include_str!("../../migrations/0004_auth.sql"),
    },
    Migration {
        version: 5,
        name: "idempotency",
        sql: include_str!("../../migrations/0005_idempotency.sql"),
    },
    Migration {
        version: 6,
        name: "authority",
        sql: include_str!("../../migrations/0006_authority.sql"),
    },
    Migration {
        version: 7,
        name: "webhooks",
        sql: include_str!("../../migrations/0007_webhooks.sql"),
    },
    Migration {
        version: 8,
        name: "flows",
        sql: include_str!("../../migrations/0008_flows.sql"),
    },
    Migration {
        version: 9,
        name: "calendars",
        sql: include_str!("../../migrations/0009_calendars.sql"),
    },
    Migration {
        version: 10,
        name: "fast",
        sql: include_str!("../../migrations/0010_fast.sql"),
    },
];

/// The distributed form of the schema (`BOOKING_DISTRIBUTED=citus`), applied
/// once on a Citus coordinator after the single-node migrations, recorded as
/// version 100. The single-node files stay the default and are never edited;
/// this one turns their result into tables distributed by resource and by
/// user (docs/citus.md).
pub const CITUS: Migration = Migration {
    version: 100,
    name: "citus",
    sql: include_str!("../../migrations/citus/0100_citus.sql"),
};

/// Migrate for the configured form of the schema. A distributed database
/// is never served as a single-node one (its claims would not reach the
/// workers: every read would come back empty), and a single-node migration
/// newer than the distributed form is not applied to it.
pub async fn run_for(conn: &mut PgConnection, distributed: Distributed) -> anyhow::Result<usize> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let result = apply_for(conn, distributed).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    result
}

async fn apply_for(conn: &mut PgConnection, distributed: Distributed) -> anyhow::Result<usize> {
    let citus_done: Option<String> = match sqlx::query_scalar::<_, String>(
        "SELECT checksum FROM booking.schema_migrations WHERE version = $1",
    )
    .bind(CITUS.version)
    .fetch_optional(&mut *conn)
    .await
    {
        Ok(v) => v,
        // no schema yet
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P01") => None,
        Err(e) => return Err(e.into()),
    };
    let sum = hex::encode(Sha256::digest(CITUS.sql.as_bytes()));
    match (distributed, citus_done) {
        (Distributed::None, None) => apply(conn, latest_version()).await,
        (Distributed::None, Some(_)) => bail!(
            "this database has the distributed (Citus) form of the schema: set BOOKING_DISTRIBUTED=citus"
        ),
        (Distributed::Citus, Some(old)) => {
            if old != sum {
                bail!("migration 100 (citus) changed after it was applied");
            }
            let at: i32 = sqlx::query_scalar(
                "SELECT coalesce(max(version), 0) FROM booking.schema_migrations WHERE version < $1",
            )
            .bind(CITUS.version)
            .fetch_one(&mut *conn)
            .await?;
            if at < latest_version() {
                bail!(
                    "single-node migrations {}..{} are newer than this distributed schema and have no \
                     distributed form yet; they are not applied",
                    at + 1,
                    latest_version()
                );
            }
            Ok(0)
        }
        (Distributed::Citus, None) => {
            let n = apply(conn, latest_version()).await?;
            let mut tx = conn.begin().await?;
            // one statement per message, as psql sends a file: Citus passes
            // the whole query string of some commands on to the workers, and
            // a string of several statements fails there
            for (i, stmt) in split_statements(CITUS.sql).into_iter().enumerate() {
                sqlx::raw_sql(stmt)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("migration 100 (citus) failed at statement {}", i + 1))?;
            }
            sqlx::query(
                "INSERT INTO booking.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            )
            .bind(CITUS.version)
            .bind(CITUS.name)
            .bind(&sum)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version = CITUS.version, name = CITUS.name, "migration applied");
            Ok(n + 1)
        }
    }
}

/// Split an SQL script into its statements (at top-level semicolons: not
/// inside quotes, identifiers, dollar-quoted bodies or comments). Empty ones
/// (only whitespace and comments) are left out.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' => {
                // a dollar quote: $$ or $tag$ (tag: letters, digits, _; not a $1 parameter)
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let is_tag = j < b.len()
                    && b[j] == b'$'
                    && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                if is_tag {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(k) => i = j + 1 + k + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            b';' => {
                if has_code(&sql[start..i]) {
                    out.push(&sql[start..i]);
                }
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if has_code(&sql[start..]) {
        out.push(&sql[start..]);
    }
    out
}

/// Whether a piece of SQL has anything but whitespace and comments.
fn has_code(piece: &str) -> bool {
    piece.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with("--")
    })
}

/// The version the code expects the database to be at.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

const LOCK_KEY: i64 = 0x0062_6f6f_6b69_6e67; // "booking"

/// Apply pending migrations; returns how many were applied.
pub async fn run(conn: &mut PgConnection) -> anyhow::Result<usize> {
    run_up_to(conn, latest_version()).await
}

/// Apply pending migrations up to and including `last` (upgrade tests build
/// a database as an earlier release left it).
pub async fn run_up_to(conn: &mut PgConnection, last: i32) -> anyhow::Result<usize> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let result = apply(conn, last).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    result
}

async fn apply(conn: &mut PgConnection, last: i32) -> anyhow::Result<usize> {
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS booking; \
         CREATE TABLE IF NOT EXISTS booking.schema_migrations ( \
           version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, \
           applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *conn)
    .await
    .context("cannot create booking.schema_migrations")?;
    let applied: Vec<(i32, String)> =
        sqlx::query_as("SELECT version, checksum FROM booking.schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let mut count = 0;
    for m in MIGRATIONS.iter().filter(|m| m.version <= last) {
        let sum = hex::encode(Sha256::digest(m.sql.as_bytes()));
        if let Some((_, old)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *old != sum {
                bail!(
                    "migration {} ({}) changed after it was applied",
                    m.version,
                    m.name
                );
            }
            continue;
        }
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("migration {} ({}) failed", m.version, m.name))?;
        sqlx::query(
            "INSERT INTO booking.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(&sum)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        count += 1;
    }
    Ok(count)
}

/// Write the settings every server instance on this database shares (the
/// active-bookings cap), as the schema owner. `booking serve` and `booking
/// migrate` call it at start with their configuration.
pub async fn apply_settings(
    conn: &mut PgConnection,
    max_active_bookings: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE booking.settings SET max_active_bookings = $1 WHERE max_active_bookings <> $1",
    )
    .bind(i32::try_from(max_active_bookings).context("BOOKING_MAX_ACTIVE_BOOKINGS")?)
    .execute(&mut *conn)
    .await
    .context("cannot write booking.settings")?;
    Ok(())
}

/// Create (or update the password of) the non-privileged login role the
/// server serves through: LOGIN, NOINHERIT (no privileges until it switches to
/// a request role), no SUPERUSER, no BYPASSRLS, owns nothing. It may call
/// `booking.create_booking` itself: the one-round-trip create (migration 0010).
pub async fn ensure_login_role(
    conn: &mut PgConnection,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    if !password.chars().all(|c| c.is_ascii_alphanumeric())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("login role name and password must be alphanumeric");
    }
    let sql = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN \
             CREATE ROLE {name} LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
           END IF; END $$; \
         ALTER ROLE {name} WITH LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS PASSWORD '{password}'; \
         GRANT anon, authenticated, service_role TO {name}; \
         GRANT USAGE ON SCHEMA booking TO {name}; \
         GRANT EXECUTE ON FUNCTION booking.create_booking(uuid, timestamptz, timestamptz, text) TO {name};"
    );
    sqlx::raw_sql(&sql).execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `migrations/RELEASED`: "sha256  migrations/NNNN_name.sql" per line.
    const RELEASED: &str = include_str!("../../migrations/RELEASED");

    #[test]
    fn released_migrations_never_change() {
        let mut seen = 0;
        for line in RELEASED.lines().filter(|l| !l.trim().is_empty()) {
            let (sum, path) = line.split_once("  ").expect("sum  path");
            let file = path.rsplit('/').next().expect("file");
            let version: i32 = file[..4].parse().expect("NNNN_");
            let m = MIGRATIONS
                .iter()
                .find(|m| m.version == version)
                .unwrap_or_else(|| panic!("released migration {file} is gone"));
            assert_eq!(
                hex::encode(Sha256::digest(m.sql.as_bytes())),
                sum,
                "released migration {file} changed: add a new migration instead"
            );
            seen += 1;
        }
        assert!(seen >= 5, "RELEASED lists the released migrations");
    }

    #[test]
    fn scripts_split_at_top_level_semicolons_only() {
        let sql =
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
                   -- a comment; with a semicolon\n\
                   SELECT 'a;b', \"x;y\" FROM t; /* c; /* nested; */ d; */ SELECT $tag$ ; $tag$;\n\
                   SELECT $1;\n-- trailing comment only\n";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 4, "{parts:?}");
        assert!(parts[0].contains("RETURN 1; END $$"));
        assert!(parts[1].contains("'a;b'") && parts[1].contains("\"x;y\""));
        assert!(parts[2].contains("$tag$ ; $tag$"));
        assert!(parts[3].contains("SELECT $1"));
        // the distributed migration splits into whole statements
        assert!(split_statements(CITUS.sql).len() > 50);
    }

    #[test]
    fn versions_are_consecutive() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
    }
}
