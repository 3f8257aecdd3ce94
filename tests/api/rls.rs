//! RLS is the authority: raw SQL, run the way the server runs it (the login
//! role, switched to `authenticated` with one user's claims), cannot see or
//! touch another user's rows.

use crate::helpers::{at, door, TestApp};
use booking::db::Db;
use serde_json::Value;
use sqlx::{Connection, Row};
use uuid::Uuid;

#[tokio::test]
async fn raw_sql_as_one_user_cannot_see_or_touch_another_users_rows() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        app.user("+14155550400").await,
        app.user("+14155550401").await,
    );
    let room = app.room().await;
    assert_eq!(
        app.book(&a, &room, &at(3, 9, 0), &at(3, 10, 0))
            .await
            .status(),
        201
    );
    let theirs: Value = app
        .book(&b, &room, &at(3, 11, 0), &at(3, 12, 0))
        .await
        .json()
        .await
        .expect("json");
    let b_booking = Uuid::parse_str(theirs["id"].as_str().expect("id")).expect("uuid");

    let mut conn = app.login_conn().await;
    let mut tx = door(&mut conn, "authenticated", Some(a.id)).await;
    let rows: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM booking.bookings")
        .fetch_all(&mut *tx)
        .await
        .expect("select");
    assert_eq!(rows, vec![a.id], "A sees exactly A's booking");
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM booking.booking_events WHERE booking_id = $1")
            .bind(b_booking)
            .fetch_one(&mut *tx)
            .await
            .expect("events");
    assert_eq!(events, 0);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.users")
        .fetch_one(&mut *tx)
        .await
        .expect("users");
    assert_eq!(users, 1, "A sees only A's user row");
    let err = sqlx::query("UPDATE booking.bookings SET status = 'cancelled' WHERE id = $1")
        .bind(b_booking)
        .execute(&mut *tx)
        .await
        .expect_err("direct writes are refused");
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.expect("rollback");
    let mut tx = door(&mut conn, "authenticated", Some(a.id)).await;
    let cancelled: Value =
        sqlx::query_scalar("SELECT to_jsonb(r) FROM booking.cancel_booking($1, NULL) r")
            .bind(b_booking)
            .fetch_one(&mut *tx)
            .await
            .expect("cancel fn");
    assert_eq!(cancelled["outcome"], "not_found");
    tx.rollback().await.expect("rollback");

    let mut tx = door(&mut conn, "authenticated", Some(a.id)).await;
    let err = sqlx::query("DELETE FROM booking.bookings WHERE id = $1")
        .bind(b_booking)
        .execute(&mut *tx)
        .await
        .expect_err("delete");
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.expect("rollback");

    let mut tx = door(&mut conn, "authenticated", Some(a.id)).await;
    let err = sqlx::query(
        "INSERT INTO booking.bookings (resource_id, user_id, period, blocked) \
         VALUES ($1::uuid, $2, tstzrange(now() + interval '9 days', now() + interval '9 days 1 hour'), 'empty')",
    )
    .bind(&room)
    .bind(b.id)
    .execute(&mut *tx)
    .await
    .expect_err("insert as B");
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.expect("rollback");

    let mut tx = door(&mut conn, "authenticated", None).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.bookings")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(n, 0, "no claims: nothing visible");
    tx.rollback().await.expect("rollback");

    // and B's booking is untouched
    let still: Value = app
        .get(&b.token, &format!("/v1/bookings/{b_booking}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(still["status"], "confirmed");
}

#[tokio::test]
async fn every_table_forces_rls_and_the_runtime_login_is_unprivileged() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin_conn().await;
    let tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'booking' AND c.relkind = 'r' AND c.relname <> 'schema_migrations'",
    )
    .fetch_all(&mut admin)
    .await
    .expect("tables");
    assert!(tables.len() >= 4);
    for (name, enabled, forced) in &tables {
        assert!(
            *enabled && *forced,
            "{name}: RLS enabled {enabled}, forced {forced}"
        );
    }
    let mut login = app.login_conn().await;
    let row = sqlx::query(
        "SELECT r.rolsuper, r.rolbypassrls, r.rolinherit, \
           (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS owned_relations, \
           (SELECT count(*) FROM pg_namespace n WHERE n.nspowner = r.oid) AS owned_schemas, \
           (SELECT count(*) FROM pg_proc p WHERE p.proowner = r.oid) AS owned_functions \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut login)
    .await
    .expect("role");
    assert!(!row.get::<bool, _>("rolsuper"));
    assert!(!row.get::<bool, _>("rolbypassrls"));
    assert!(
        !row.get::<bool, _>("rolinherit"),
        "NOINHERIT: no privileges before switching role"
    );
    assert_eq!(row.get::<i64, _>("owned_relations"), 0);
    assert_eq!(row.get::<i64, _>("owned_schemas"), 0);
    assert_eq!(row.get::<i64, _>("owned_functions"), 0);
    // unscoped, the login can read nothing at all
    let err = sqlx::query("SELECT count(*) FROM booking.bookings")
        .fetch_one(&mut login)
        .await
        .expect_err("unscoped");
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[tokio::test]
async fn a_pooled_connection_carries_no_claims_after_a_request() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550402").await;
    let who = app.keys.verify(&u.token).expect("verify");
    let login = app.login_conn().await;
    let opts = crate::helpers::server_login_options(&app.db_name);
    let db = Db::connect_lazy(opts, 1);
    let mut tx = db.begin(&who).await.expect("begin");
    let inside: (String, String) =
        sqlx::query_as("SELECT current_user::text, current_setting('request.jwt.claims', true)")
            .fetch_one(tx.conn())
            .await
            .expect("inside");
    assert_eq!(inside.0, "authenticated");
    assert!(inside.1.contains(&u.id.to_string()));
    tx.commit().await.expect("commit");
    let mut conn = db.pool().acquire().await.expect("same pooled connection");
    let after: (String, Option<String>) = sqlx::query_as(
        "SELECT current_user::text, nullif(current_setting('request.jwt.claims', true), '')",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("after");
    assert_eq!(after.0, booking::pg::LOGIN_ROLE);
    assert_eq!(after.1, None, "claims are gone with the transaction");
    drop(conn);
    db.close().await;
    login.close().await.expect("close");
}

/// The serving pool reads committed whatever the database's default: the
/// write functions refuse REPEATABLE READ, so a role or database default of it
/// must not turn every write into an error.
#[tokio::test]
async fn the_pool_reads_committed_whatever_the_database_default() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin_conn().await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {} SET default_transaction_isolation = 'repeatable read'",
        app.db_name
    ))
    .execute(&mut admin)
    .await
    .expect("alter database");
    admin.close().await.expect("close");
    let server = app.another_server().await;
    let u = server.user("+14155550991").await;
    let room = server.room().await;
    let r = server.book(&u, &room, &at(3, 9, 0), &at(3, 10, 0)).await;
    assert_eq!(r.status(), 201);
}
