//! Migrations apply to a fresh database, to one that already looks like a
//! Supabase project (roles, an `auth` schema with its own auth.uid(), a
//! `public.users`), and applying them twice is a no-op.

use crate::helpers::{admin_options, empty_database};
use booking::db::migrate;
use sqlx::{Connection, PgConnection};

async fn new_database() -> (String, PgConnection) {
    let name = empty_database("mig").await;
    let conn = PgConnection::connect_with(&admin_options(&name))
        .await
        .expect("connect");
    (name, conn)
}

async fn drop_database(name: &str, conn: PgConnection) {
    conn.close().await.expect("close");
    crate::helpers::drop_database(name).await;
}

#[tokio::test]
async fn migrations_apply_to_a_fresh_database_and_twice_is_a_no_op() {
    let (name, mut conn) = new_database().await;
    let applied = migrate::run(&mut conn).await.expect("first run");
    assert_eq!(applied, migrate::MIGRATIONS.len());
    assert_eq!(migrate::run(&mut conn).await.expect("second run"), 0);
    let v: i32 = sqlx::query_scalar("SELECT booking.schema_version()")
        .fetch_one(&mut conn)
        .await
        .expect("version");
    assert_eq!(v, migrate::latest_version());
    drop_database(&name, conn).await;
}

#[tokio::test]
async fn migrations_apply_to_a_supabase_like_database_without_touching_its_objects() {
    let (name, mut conn) = new_database().await;
    sqlx::raw_sql(
        "CREATE SCHEMA auth; \
         CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \
           $$ SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), \
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$; \
         COMMENT ON FUNCTION auth.uid() IS 'supabase-owned'; \
         CREATE SCHEMA extensions; CREATE EXTENSION btree_gist WITH SCHEMA extensions; \
         CREATE TABLE public.users (id bigint PRIMARY KEY, email text); \
         INSERT INTO public.users VALUES (1, 'someone@example.com');",
    )
    .execute(&mut conn)
    .await
    .expect("seed a supabase-like database");
    migrate::run(&mut conn).await.expect("migrate");
    let comment: Option<String> =
        sqlx::query_scalar("SELECT obj_description('auth.uid()'::regprocedure, 'pg_proc')")
            .fetch_one(&mut conn)
            .await
            .expect("comment");
    assert_eq!(
        comment.as_deref(),
        Some("supabase-owned"),
        "auth.uid() was kept, not replaced"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM public.users")
        .fetch_one(&mut conn)
        .await
        .expect("users");
    assert_eq!(n, 1);
    let ours: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.users")
        .fetch_one(&mut conn)
        .await
        .expect("ours");
    assert_eq!(ours, 0);
    assert_eq!(migrate::run(&mut conn).await.expect("again"), 0);
    drop_database(&name, conn).await;
}

#[tokio::test]
async fn a_changed_migration_is_an_error_not_a_silent_skip() {
    let (name, mut conn) = new_database().await;
    migrate::run(&mut conn).await.expect("migrate");
    sqlx::query("UPDATE booking.schema_migrations SET checksum = 'tampered' WHERE version = 1")
        .execute(&mut conn)
        .await
        .expect("tamper");
    let err = migrate::run(&mut conn).await.expect_err("must refuse");
    assert!(
        err.to_string().contains("changed after it was applied"),
        "{err}"
    );
    drop_database(&name, conn).await;
}

/// A database as the first release left it, with bookings in it (made through
/// that release's own functions), upgrades in place: the data is kept, every
/// booking keeps the buffer it was made with, and the new rules hold at once.
#[tokio::test]
async fn a_database_of_the_first_release_upgrades_in_place_with_its_data() {
    let (name, mut conn) = new_database().await;
    assert_eq!(
        migrate::run_up_to(&mut conn, 5).await.expect("release 1"),
        5
    );
    let user: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO booking.users (phone) VALUES ('+14155550950') RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .expect("user");
    let room: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO booking.resources (name, timezone, min_duration_minutes, buffer_minutes) \
         VALUES ('Room', 'UTC', 15, 30) RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .expect("resource");
    // as the first release's server did it: role + claims, its create_booking(…, p_at)
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)")
        .bind(serde_json::json!({"sub": user, "role": "authenticated"}).to_string())
        .execute(&mut *tx)
        .await
        .expect("scope");
    let out: serde_json::Value = sqlx::query_scalar(
        "SELECT booking.create_booking($1, date_trunc('hour', now()) + interval '2 days', date_trunc('hour', now()) + interval '2 days 1 hour', 'old', now())",
    )
    .bind(room)
    .fetch_one(&mut *tx)
    .await
    .expect("old create");
    // the first release's defect: a note-only reschedule stripped the buffer
    let id = out["booking"]["id"].as_str().expect("id").to_string();
    let _: serde_json::Value = sqlx::query_scalar(
        "SELECT booking.reschedule_booking($1::uuid, lower(b.period), upper(b.period), true, 'n', NULL, now()) \
         FROM booking.bookings b WHERE b.id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&mut *tx)
    .await
    .expect("old reschedule");
    let second: serde_json::Value = sqlx::query_scalar(
        "SELECT booking.create_booking($1, date_trunc('hour', now()) + interval '3 days', date_trunc('hour', now()) + interval '3 days 1 hour', NULL, now())",
    )
    .bind(room)
    .fetch_one(&mut *tx)
    .await
    .expect("old create");
    tx.commit().await.expect("commit");
    assert_eq!(out["outcome"], "created", "{out}");
    assert_eq!(second["outcome"], "created", "{second}");
    sqlx::query("UPDATE booking.resources SET buffer_minutes = 45 WHERE id = $1")
        .bind(room)
        .execute(&mut conn)
        .await
        .expect("later buffer change");

    assert_eq!(
        migrate::run(&mut conn).await.expect("upgrade") as i32,
        migrate::latest_version() - 5,
        "every migration after the fifth"
    );
    let rows: Vec<(String, i32, bool, i32)> = sqlx::query_as(
        "SELECT coalesce(note, ''), buffer_minutes, \
                blocked = tstzrange(lower(period), upper(period) + make_interval(mins => buffer_minutes), '[)'), version \
         FROM booking.bookings ORDER BY lower(period)",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    // the stripped row keeps what it had (0: nothing is invented), the other its 30
    assert_eq!(
        rows,
        vec![("n".into(), 0, true, 2), (String::new(), 30, true, 1)]
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.booking_events")
        .fetch_one(&mut conn)
        .await
        .expect("events");
    assert_eq!(events, 3, "history kept, nothing added by the upgrade");
    // the cap's counter (0010) starts from the exact number of active rows
    let live: i32 = sqlx::query_scalar("SELECT live FROM booking.active_counts WHERE user_id = $1")
        .bind(user)
        .fetch_one(&mut conn)
        .await
        .expect("counter");
    assert_eq!(live, 2, "both old bookings are active");
    // the new functions work on the old data, and a note change keeps the buffer
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)")
        .bind(serde_json::json!({"sub": user, "role": "authenticated"}).to_string())
        .execute(&mut *tx)
        .await
        .expect("scope");
    let id2 = second["booking"]["id"].as_str().expect("id").to_string();
    let v: serde_json::Value = sqlx::query_scalar(
        "SELECT to_jsonb(r) FROM booking.bookings b, \
           booking.reschedule_booking($1::uuid, lower(b.period), upper(b.period), true, 'kept') r \
         WHERE b.id = $1::uuid",
    )
    .bind(&id2)
    .fetch_one(&mut *tx)
    .await
    .expect("new reschedule");
    assert_eq!(v["outcome"], "updated", "{v}");
    tx.commit().await.expect("commit");
    let buffer: i32 =
        sqlx::query_scalar("SELECT buffer_minutes FROM booking.bookings WHERE id = $1::uuid")
            .bind(&id2)
            .fetch_one(&mut conn)
            .await
            .expect("buffer");
    assert_eq!(
        buffer, 30,
        "a note change keeps the buffer the booking was made with"
    );
    drop_database(&name, conn).await;
}
