//! The bench's data, written with SQL as the owner: users and resources with
//! deterministic ids (so pgbench can compute them), the bulk load of existing
//! bookings (triggers skipped; `blocked` computed here; the exclusion
//! constraints still check every row), and the clean-up after create phases.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::time::Instant;
use uuid::Uuid;

/// Users are `0b000000-0000-4000-8000-<n as 12 hex digits>`.
const USER_NS: u128 = 0x0b00_0000_0000_4000_8000_0000_0000_0000;
/// Resources are `0e000000-0000-4000-8000-<n as 12 hex digits>`.
const RESOURCE_NS: u128 = 0x0e00_0000_0000_4000_8000_0000_0000_0000;

/// The same ids in SQL, from a bigint expression.
pub fn user_sql(n: &str) -> String {
    format!("('0b000000-0000-4000-8000-' || lpad(to_hex({n}), 12, '0'))")
}
pub fn resource_sql(n: &str) -> String {
    format!("('0e000000-0000-4000-8000-' || lpad(to_hex({n}), 12, '0'))")
}

pub fn user_id(n: u64) -> Uuid {
    Uuid::from_u128(USER_NS | u128::from(n))
}
pub fn resource_id(n: u64) -> Uuid {
    Uuid::from_u128(RESOURCE_NS | u128::from(n))
}
/// A valid, unique E.164 number per user.
pub fn phone(n: u64) -> String {
    format!("+1{}", 2_000_000_000u64 + n)
}
pub const PHONE_BASE: u64 = 2_000_000_000;

/// A contiguous block of users or resources: numbers `first .. first + count`.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub first: u64,
    pub count: u64,
}

impl Block {
    pub fn nth(&self, i: u64) -> u64 {
        self.first + i
    }
    pub fn resource_ids(&self) -> Vec<Uuid> {
        (0..self.count).map(|i| resource_id(self.nth(i))).collect()
    }
}

/// Hands out fresh numbers.
#[derive(Debug)]
pub struct Ids {
    next_user: u64,
    next_resource: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            next_user: 1,
            next_resource: 1,
        }
    }
}

/// The rules of a bench resource.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSpec {
    pub slot_minutes: i32,
    pub min_duration_minutes: i32,
    pub buffer_minutes: i32,
}

/// Free-slot resources for creates: 1-minute grid, 10 years ahead.
pub const CREATE_RESOURCE: ResourceSpec = ResourceSpec {
    slot_minutes: 1,
    min_duration_minutes: 1,
    buffer_minutes: 0,
};

pub async fn create_users(
    conn: &mut PgConnection,
    ids: &mut Ids,
    count: u64,
) -> sqlx::Result<Block> {
    let block = Block {
        first: ids.next_user,
        count,
    };
    ids.next_user += count;
    let sql = format!(
        "INSERT INTO booking.users (id, phone) \
         SELECT {}::uuid, '+1' || ({PHONE_BASE} + n)::text FROM generate_series($1::bigint, $2::bigint) n",
        user_sql("n")
    );
    let mut at = block.first;
    let end = block.first + count;
    while at < end {
        let last = (at + 100_000).min(end) - 1;
        sqlx::query(&sql)
            .bind(at as i64)
            .bind(last as i64)
            .execute(&mut *conn)
            .await?;
        at = last + 1;
    }
    Ok(block)
}

pub async fn create_resources(
    conn: &mut PgConnection,
    ids: &mut Ids,
    count: u64,
    spec: ResourceSpec,
) -> sqlx::Result<Block> {
    let block = Block {
        first: ids.next_resource,
        count,
    };
    ids.next_resource += count;
    let sql = format!(
        "INSERT INTO booking.resources (id, name, timezone, capacity, slot_minutes, min_duration_minutes, \
           max_duration_minutes, buffer_minutes, min_notice_minutes, max_advance_days) \
         SELECT {}::uuid, 'bench ' || n, 'UTC', 1, $3, $4, 1440, $5, 0, 3650 \
           FROM generate_series($1::bigint, $2::bigint) n",
        resource_sql("n")
    );
    sqlx::query(&sql)
        .bind(block.first as i64)
        .bind((block.first + count - 1) as i64)
        .bind(spec.slot_minutes)
        .bind(spec.min_duration_minutes)
        .bind(spec.buffer_minutes)
        .execute(conn)
        .await?;
    Ok(block)
}

/// How existing bookings are laid out: booking `j` is on resource `j % R`,
/// belongs to user `j % U` and starts `(j / R) * step` after `t0`. With
/// `U >= R` no user holds two overlapping bookings, and no resource two.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub resources: Block,
    pub users: Block,
    pub rows: u64,
    pub t0: DateTime<Utc>,
    pub step_minutes: i64,
    pub duration_minutes: i32,
    pub buffer_minutes: i32,
}

/// Bulk-load bookings as the owner with triggers skipped
/// (`session_replication_role = replica`): `blocked` (the period widened by
/// the buffer, which `bookings_blocked_derived` checks), the buffer, version,
/// status and timestamps are written here. The
/// exclusion constraints are not triggers: they still check every row.
pub async fn load_bookings(conn: &mut PgConnection, l: &Layout, label: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        l.users.count >= l.resources.count,
        "layout needs at least as many users as resources"
    );
    let sql = format!(
        "INSERT INTO booking.bookings (resource_id, user_id, period, blocked, buffer_minutes, seat, status, version, created_at, updated_at) \
         SELECT {}::uuid, {}::uuid, \
                tstzrange(x.s, x.s + make_interval(mins => $7), '[)'), \
                tstzrange(x.s, x.s + make_interval(mins => $7 + $8), '[)'), \
                $8, 1, 'confirmed', 1, now(), now() \
           FROM generate_series($5::bigint, $6::bigint) AS j, \
                LATERAL (SELECT $9::timestamptz + make_interval(mins => ((j / $2::bigint) * $10::bigint)::int) AS s) AS x",
        resource_sql("$1::bigint + j % $2::bigint"),
        user_sql("$3::bigint + j % $4::bigint"),
    );
    sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await?;
    let started = Instant::now();
    let chunk = 100_000u64;
    let mut at = 0u64;
    let result = async {
        while at < l.rows {
            let last = (at + chunk).min(l.rows) - 1;
            sqlx::query(&sql)
                .bind(l.resources.first as i64)
                .bind(l.resources.count as i64)
                .bind(l.users.first as i64)
                .bind(l.users.count as i64)
                .bind(at as i64)
                .bind(last as i64)
                .bind(l.duration_minutes)
                .bind(l.buffer_minutes)
                .bind(l.t0)
                .bind(l.step_minutes)
                .execute(&mut *conn)
                .await?;
            at = last + 1;
            eprintln!(
                "bench:   {label}: {at}/{} bookings loaded ({:.0} s)",
                l.rows,
                started.elapsed().as_secs_f64()
            );
        }
        Ok::<(), sqlx::Error>(())
    }
    .await;
    sqlx::raw_sql("RESET session_replication_role")
        .execute(&mut *conn)
        .await?;
    result?;
    recount_active(conn).await?;
    Ok(())
}

/// Delete what a create phase booked (its resources are used by no one
/// else), so every phase starts from the stage's nominal row count. History
/// is append-only (a trigger refuses deletes, whoever asks): the bench's
/// superuser steps around it with `session_replication_role = replica`, for
/// its own throw-away rows only, in one transaction.
pub async fn purge(conn: &mut PgConnection, resources: &[Uuid]) -> sqlx::Result<u64> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM booking.booking_events e USING booking.bookings b \
         WHERE e.booking_id = b.id AND b.resource_id = ANY($1)",
    )
    .bind(resources)
    .execute(&mut *tx)
    .await?;
    let r = sqlx::query("DELETE FROM booking.bookings WHERE resource_id = ANY($1)")
        .bind(resources)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected())
}

/// Vacuum, analyze and checkpoint, so that neither autovacuum nor a
/// checkpoint lands in the middle of the next measurement by our doing.
pub async fn settle(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql("VACUUM (ANALYZE) booking.bookings, booking.booking_events, booking.users, booking.resources")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql("CHECKPOINT").execute(&mut *conn).await?;
    Ok(())
}

pub async fn count_bookings(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM booking.bookings")
        .fetch_one(conn)
        .await
}

pub async fn count_on(conn: &mut PgConnection, resources: &[Uuid]) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM booking.bookings WHERE resource_id = ANY($1) AND status = 'confirmed'")
        .bind(resources)
        .fetch_one(conn)
        .await
}

/// The claims JSON the server would put into `request.jwt.claims` for a
/// token of ours (same keys, same order, about the same length).
pub fn claims_json(user: Uuid, phone: &str) -> String {
    serde_json::json!({
        "aud": "authenticated",
        "exp": 2_000_000_000i64,
        "iat": 1_700_000_000i64,
        "iss": "booking",
        "phone": phone,
        "role": "authenticated",
        "session_id": "00000000-0000-4000-8000-000000000000",
        "sub": user.to_string(),
    })
    .to_string()
}

/// The floor's table (see `pgbench::floor_script`): both exclusion
/// constraints and forced row-level security (the caller's own rows), as
/// the owner; `authenticated` may read and insert.
pub async fn create_floor(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS bench_floor; \
         CREATE TABLE IF NOT EXISTS bench_floor.bookings ( \
           id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
           resource_id uuid NOT NULL, user_id uuid NOT NULL, period tstzrange NOT NULL, \
           EXCLUDE USING gist (resource_id WITH =, period WITH &&), \
           EXCLUDE USING gist (user_id WITH =, period WITH &&)); \
         ALTER TABLE bench_floor.bookings ENABLE ROW LEVEL SECURITY; \
         ALTER TABLE bench_floor.bookings FORCE ROW LEVEL SECURITY; \
         DROP POLICY IF EXISTS own ON bench_floor.bookings; \
         CREATE POLICY own ON bench_floor.bookings TO authenticated \
           USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid())); \
         GRANT USAGE ON SCHEMA bench_floor TO authenticated; \
         GRANT SELECT, INSERT ON bench_floor.bookings TO authenticated;",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Make the floor's table hold what `booking.bookings` holds (its live rows),
/// so that both are measured at the same size.
pub async fn fill_floor(conn: &mut PgConnection) -> sqlx::Result<u64> {
    sqlx::raw_sql("TRUNCATE bench_floor.bookings")
        .execute(&mut *conn)
        .await?;
    let r = sqlx::query(
        "INSERT INTO bench_floor.bookings (resource_id, user_id, period) \
         SELECT resource_id, user_id, period FROM booking.bookings \
          WHERE status IN ('held', 'pending', 'confirmed')",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::raw_sql("VACUUM (ANALYZE) bench_floor.bookings")
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

pub async fn purge_floor(conn: &mut PgConnection, resources: &[Uuid]) -> sqlx::Result<u64> {
    let r = sqlx::query("DELETE FROM bench_floor.bookings WHERE resource_id = ANY($1)")
        .bind(resources)
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

pub async fn count_floor(conn: &mut PgConnection, resources: &[Uuid]) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM bench_floor.bookings WHERE resource_id = ANY($1)")
        .bind(resources)
        .fetch_one(conn)
        .await
}

/// The cap's counters (migration 0010) after a bulk load that skipped the
/// triggers: the exact number of active rows per user.
pub async fn recount_active(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql(
        "INSERT INTO booking.active_counts (user_id, live) \
         SELECT user_id, count(*) FROM booking.bookings \
          WHERE status IN ('held', 'pending', 'confirmed') AND upper(period) > now() \
            AND (expires_at IS NULL OR expires_at > now()) \
          GROUP BY user_id \
         ON CONFLICT (user_id) DO UPDATE SET live = EXCLUDED.live",
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_their_sql_spelling() {
        assert_eq!(
            user_id(255).to_string(),
            "0b000000-0000-4000-8000-0000000000ff"
        );
        assert_eq!(
            resource_id(4096).to_string(),
            "0e000000-0000-4000-8000-000000001000"
        );
        assert_eq!(phone(7), "+12000000007");
    }
}
