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
