//! Performance round two (#14, migration 0010): the faster paths keep every
//! guarantee. The one-statement create leaves nothing on its connection; the
//! cap's counter is only ever an upper bound and the trigger enforces the cap
//! at every door; the foreign keys' guarantees hold without foreign keys.

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{assert_problem, at, TestApp};

fn code_and_constraint(e: &sqlx::Error) -> (String, String) {
    match e {
        sqlx::Error::Database(d) => (
            d.code().map(|c| c.to_string()).unwrap_or_default(),
            d.constraint().unwrap_or_default().to_string(),
        ),
        other => panic!("not a database error: {other}"),
    }
}

#[tokio::test]
async fn the_one_statement_create_books_once_and_leaves_no_role_or_claims_behind() {
    let app = TestApp::spawn().await;
    let user = app.user("+14155550960").await;
    let room = app.room().await;
    let room_id: Uuid = room.parse().expect("uuid");
    let mut conn = app.login_conn().await;
    let claims = json!({"sub": user.id, "role": "authenticated"}).to_string();
    let start = chrono::DateTime::parse_from_rfc3339(&at(3, 9, 0)).expect("start");
    let end = chrono::DateTime::parse_from_rfc3339(&at(3, 10, 0)).expect("end");
    let row: (String, Option<Uuid>, Option<Uuid>) = sqlx::query_as(&format!(
        "SELECT outcome, id, user_id FROM ({}) r",
        booking::db::bookings::CREATE_ONE_TRIP
    ))
    .bind(room_id)
    .bind(start)
    .bind(end)
    .bind(None::<String>)
    .bind("authenticated")
    .bind(&claims)
    .bind(user.id.to_string())
    .fetch_one(&mut conn)
    .await
    .expect("one-statement create");
    assert_eq!(row.0, "created");
    assert_eq!(row.2, Some(user.id), "booked as the caller of the claims");
    let id = row.1.expect("id");

    // the same connection afterwards: the login again, no role, no claims
    let (who, role, claims_left, sub_left): (String, String, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT current_user::text, current_setting('role'), \
                    nullif(current_setting('request.jwt.claims', true), ''), \
                    nullif(current_setting('request.jwt.claim.sub', true), '')",
        )
        .fetch_one(&mut conn)
        .await
        .expect("after");
    assert_eq!(who, booking::pg::LOGIN_ROLE);
    assert_eq!(role, "none");
    assert_eq!(claims_left, None);
    assert_eq!(sub_left, None);
    // and as the login it reads nothing
    let err = sqlx::query("SELECT count(*) FROM booking.bookings")
        .execute(&mut conn)
        .await
        .expect_err("the login itself may not read bookings");
    assert_eq!(code_and_constraint(&err).0, "42501");

    // the function ran once: one row, one history entry by the caller
    let mut admin = app.admin_conn().await;
    let (rows, events, actor): (i64, i64, Option<Uuid>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM booking.bookings WHERE resource_id = $1), \
                (SELECT count(*) FROM booking.booking_events WHERE booking_id = $2), \
                (SELECT actor_id FROM booking.booking_events WHERE booking_id = $2)",
    )
    .bind(room_id)
    .bind(id)
    .fetch_one(&mut admin)
    .await
    .expect("count");
    assert_eq!((rows, events, actor), (1, 1, Some(user.id)));

    // through HTTP (the server takes this path: its login may call
    // create_booking), a create and the same slot again
    let r = app.book(&user, &room, &at(4, 9, 0), &at(4, 10, 0)).await;
    assert_eq!(r.status(), 201);
    let other = app.user("+14155550961").await;
    let r = app.book(&other, &room, &at(4, 9, 0), &at(4, 10, 0)).await;
    assert_problem(r, 409, "slot_taken").await;
}

#[tokio::test]
async fn the_cap_counter_is_an_upper_bound_that_corrects_itself_and_the_trigger_enforces_the_cap() {
    let app = TestApp::spawn_with(&[("BOOKING_MAX_ACTIVE_BOOKINGS", "3")]).await;
    let user = app.user("+14155550962").await;
    let room = app.room().await;
    for h in 0..2 {
        let r = app
            .book(&user, &room, &at(2, 9 + h, 0), &at(2, 10 + h, 0))
            .await;
        assert_eq!(r.status(), 201);
    }
    let mut admin = app.admin_conn().await;
    assert_eq!(counter(&mut admin, user.id).await, 2, "kept by the trigger");

    // an overcount (as rows that ended leave behind) costs an exact count,
    // not a wrong refusal, and is corrected by it
    sqlx::query("UPDATE booking.active_counts SET live = 50 WHERE user_id = $1")
        .bind(user.id)
        .execute(&mut admin)
        .await
        .expect("overcount");
    let r = app.book(&user, &room, &at(2, 12, 0), &at(2, 13, 0)).await;
    assert_eq!(r.status(), 201, "2 active of 3: the third fits");
    assert_eq!(
        counter(&mut admin, user.id).await,
        3,
        "corrected to the exact number"
    );
    let r = app.book(&user, &room, &at(2, 14, 0), &at(2, 15, 0)).await;
    let p = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "active_bookings", "{p}");

    // past the write functions (the owner writing directly): the trigger
    // refuses the fourth active row all the same
    let err = sqlx::query(
        "INSERT INTO booking.bookings (resource_id, user_id, period, blocked, seat) \
         VALUES ($1::uuid, $2, tstzrange(now() + interval '5 days', now() + interval '5 days 1 hour'), \
                 tstzrange(now() + interval '5 days', now() + interval '5 days 1 hour'), 1)",
    )
    .bind(&room)
    .bind(user.id)
    .execute(&mut admin)
    .await
    .expect_err("a fourth active row");
    assert_eq!(
        code_and_constraint(&err),
        ("23514".to_string(), "bookings_active_cap".to_string())
    );
    // a cancelled one frees a place (the counter only ever rises; the next
    // write past it counts exactly, under its lock)
    let list: Value = app
        .get(&user.token, "/v1/bookings")
        .await
        .json()
        .await
        .expect("list");
    let first = list["items"][0]["id"].as_str().expect("id").to_string();
    let r = app
        .delete(&user.token, &format!("/v1/bookings/{first}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(counter(&mut admin, user.id).await, 3, "not decremented");
    let r = app.book(&user, &room, &at(2, 14, 0), &at(2, 15, 0)).await;
    assert_eq!(r.status(), 201);
    assert_eq!(counter(&mut admin, user.id).await, 3, "2 exact + this one");
    let r = app.book(&user, &room, &at(2, 16, 0), &at(2, 17, 0)).await;
    assert_problem(r, 422, "validation_failed").await;
}

#[tokio::test]
async fn a_booking_always_refers_to_an_existing_user_and_resource_without_foreign_keys() {
    let app = TestApp::spawn().await;
    let user = app.user("+14155550963").await;
    let room = app.room().await;
    let r = app.book(&user, &room, &at(2, 9, 0), &at(2, 10, 0)).await;
    assert_eq!(r.status(), 201);
    let mut admin = app.admin_conn().await;
    let insert = "INSERT INTO booking.bookings (resource_id, user_id, period, blocked, seat) \
                  VALUES ($1::uuid, $2, tstzrange(now() + interval '6 days', now() + interval '6 days 1 hour'), \
                          tstzrange(now() + interval '6 days', now() + interval '6 days 1 hour'), 1)";
    // no such user
    let err = sqlx::query(insert)
        .bind(&room)
        .bind(Uuid::new_v4())
        .execute(&mut admin)
        .await
        .expect_err("unknown user");
    assert_eq!(
        code_and_constraint(&err),
        ("23503".to_string(), "bookings_user_id_fkey".to_string())
    );
    // no such resource
    let err = sqlx::query(insert)
        .bind(Uuid::new_v4().to_string())
        .bind(user.id)
        .execute(&mut admin)
        .await
        .expect_err("unknown resource");
    assert_eq!(
        code_and_constraint(&err),
        ("23503".to_string(), "bookings_resource_id_fkey".to_string())
    );
    // the user and the resource cannot go while bookings refer to them
    let mut tx = admin.begin().await.expect("begin");
    let err = sqlx::query("DELETE FROM booking.users WHERE id = $1")
        .bind(user.id)
        .execute(&mut *tx)
        .await
        .expect_err("delete user");
    assert_eq!(
        code_and_constraint(&err),
        ("23503".to_string(), "bookings_user_id_fkey".to_string())
    );
    tx.rollback().await.expect("rollback");
    let mut tx = admin.begin().await.expect("begin");
    let err = sqlx::query("DELETE FROM booking.resources WHERE id = $1::uuid")
        .bind(&room)
        .execute(&mut *tx)
        .await
        .expect_err("delete resource");
    assert_eq!(
        code_and_constraint(&err),
        ("23503".to_string(), "bookings_resource_id_fkey".to_string())
    );
    tx.rollback().await.expect("rollback");
    // ids never change, and none of the three tables is emptied at once
    for sql in [
        "UPDATE booking.users SET id = gen_random_uuid() WHERE id = $1::uuid",
        "UPDATE booking.resources SET id = gen_random_uuid() WHERE id = $1::uuid",
    ] {
        let id = if sql.contains("users") {
            user.id.to_string()
        } else {
            room.clone()
        };
        let err = sqlx::query(sql)
            .bind(id)
            .execute(&mut admin)
            .await
            .expect_err("an id changed");
        assert_eq!(code_and_constraint(&err).0, "23503", "{sql}");
    }
    for table in ["bookings", "users", "resources"] {
        let mut tx = admin.begin().await.expect("begin");
        let err = sqlx::raw_sql(&format!("TRUNCATE booking.{table} CASCADE"))
            .execute(&mut *tx)
            .await
            .expect_err("truncate");
        assert_eq!(code_and_constraint(&err).0, "23503", "{table}");
        tx.rollback().await.expect("rollback");
    }
    // bookings are never deleted (history refers to them)
    let err = sqlx::query("DELETE FROM booking.bookings")
        .execute(&mut admin)
        .await
        .expect_err("delete bookings");
    assert_eq!(code_and_constraint(&err).0, "23503");
    // a user without bookings can still be removed
    let lonely = app.user("+14155550964").await;
    sqlx::query("DELETE FROM booking.users WHERE id = $1")
        .bind(lonely.id)
        .execute(&mut admin)
        .await
        .expect("a user with no bookings goes");
}

async fn counter(conn: &mut PgConnection, uid: Uuid) -> i32 {
    sqlx::query_scalar("SELECT live FROM booking.active_counts WHERE user_id = $1")
        .bind(uid)
        .fetch_one(conn)
        .await
        .expect("counter")
}
