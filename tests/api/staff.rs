//! Staff (a resource's owner): who sees and changes a booking on a resource,
//! over HTTP and in raw SQL.

use crate::helpers::rules::*;
use crate::helpers::{door, TestApp, TestUser};
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

struct Staffed {
    app: TestApp,
    a: TestUser,
    b: TestUser,
    owner1: TestUser,
    owner2: TestUser,
    r1: String,
    r2: String,
}

async fn staffed() -> Staffed {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let a = app.user("+14155550630").await;
    let b = app.user("+14155550631").await;
    let owner1 = app.user("+14155550632").await;
    let owner2 = app.user("+14155550633").await;
    let r1 = resource_id(&app, json!({"name": "R1", "owner_id": owner1.id})).await;
    let r2 = resource_id(&app, json!({"name": "R2", "owner_id": owner2.id})).await;
    Staffed {
        app,
        a,
        b,
        owner1,
        owner2,
        r1,
        r2,
    }
}

async fn listed(app: &TestApp, token: &str, resource: &str) -> Vec<String> {
    let resp = app
        .get(token, &format!("/v1/bookings?resource_id={resource}"))
        .await;
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.expect("json");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn staff_see_and_cancel_bookings_on_their_resource_but_cannot_move_them() {
    let Staffed {
        app,
        a,
        b,
        owner1,
        owner2,
        r1,
        r2,
    } = staffed().await;
    let service = app.service_token();
    let first = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T09:00:00Z",
        "2027-06-03T10:00:00Z",
    )
    .await;
    let second = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T11:00:00Z",
        "2027-06-03T12:00:00Z",
    )
    .await;
    let third = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T13:00:00Z",
        "2027-06-03T14:00:00Z",
    )
    .await;
    // and one on R2 that nobody but A and owner2 sees
    booked(
        &app,
        &a,
        &r2,
        "2027-06-03T15:00:00Z",
        "2027-06-03T16:00:00Z",
    )
    .await;
    let id = first["id"].as_str().expect("id").to_string();
    let p = path_of(&first);
    let hist = format!("{p}/history");
    let moved = json!({"start": "2027-06-03T09:30:00Z", "end": "2027-06-03T10:30:00Z"});

    // list with resource_id = R1
    assert!(listed(&app, &a.token, &r1).await.contains(&id));
    assert!(listed(&app, &owner1.token, &r1).await.contains(&id));
    assert_eq!(listed(&app, &owner1.token, &r1).await.len(), 3);
    assert!(listed(&app, &service, &r1).await.contains(&id));
    assert!(listed(&app, &b.token, &r1).await.is_empty());
    assert!(listed(&app, &owner2.token, &r1).await.is_empty());
    assert_eq!(listed(&app, &owner2.token, &r2).await.len(), 1);
    assert!(listed(&app, &owner1.token, &r2).await.is_empty());
    // without resource_id a list is one's own bookings only
    let own: Value = app
        .get(&owner1.token, "/v1/bookings")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(own["items"].as_array().expect("items").len(), 0);

    // get and history
    for (who, token, want) in [
        ("A", &a.token, 200),
        ("owner1", &owner1.token, 200),
        ("service", &service, 200),
        ("B", &b.token, 404),
        ("owner2", &owner2.token, 404),
    ] {
        assert_eq!(app.get(token, &p).await.status(), want, "{who} get");
        assert_eq!(app.get(token, &hist).await.status(), want, "{who} history");
    }

    // reschedule: only the customer (and the service role)
    for (who, token, want) in [
        ("B", &b.token, 404),
        ("owner2", &owner2.token, 404),
        ("owner1", &owner1.token, 403),
    ] {
        let (status, body) = outcome(app.patch(token, &p, moved.clone()).await).await;
        assert_eq!(status, want, "{who} reschedule: {body}");
    }
    let still: Value = app.get(&a.token, &p).await.json().await.expect("json");
    assert_eq!(
        (still["start"].clone(), still["version"].clone()),
        (json!("2027-06-03T09:00:00Z"), json!(1))
    );
    let (status, body) = outcome(app.patch(&a.token, &p, moved.clone()).await).await;
    assert_eq!(status, 200, "A reschedules: {body}");
    assert_eq!(body["start"], "2027-06-03T09:30:00Z");

    // cancel: B and owner2 cannot, owner1 can
    assert_eq!(app.delete(&b.token, &p).await.status(), 404);
    assert_eq!(app.delete(&owner2.token, &p).await.status(), 404);
    let (status, body) = outcome(app.delete(&owner1.token, &p).await).await;
    assert_eq!(status, 200, "owner1 cancels: {body}");
    assert_eq!(body["status"], "cancelled");
    let h: Value = app.get(&a.token, &hist).await.json().await.expect("json");
    let last = &h["items"][2];
    assert_eq!(last["action"], "cancelled");
    assert_eq!(last["actor_id"], owner1.id.to_string());

    // A cancels their own
    assert_eq!(app.delete(&a.token, &path_of(&second)).await.status(), 200);
    // the service role reads, moves and cancels
    let p3 = path_of(&third);
    assert_eq!(
        app.get(&service, &format!("{p3}/history")).await.status(),
        200
    );
    let (status, body) = outcome(
        app.patch(
            &service,
            &p3,
            json!({"start": "2027-06-03T13:30:00Z", "end": "2027-06-03T14:30:00Z"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "service reschedules: {body}");
    let (status, body) = outcome(app.delete(&service, &p3).await).await;
    assert_eq!(status, 200, "service cancels: {body}");
    assert_eq!(body["status"], "cancelled");
    let admin_list: Value = app
        .get(
            &service,
            &format!("/v1/admin/bookings?resource_id={r1}&user_id={}", a.id),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(admin_list["items"].as_array().expect("items").len(), 3);
    assert_eq!(app.confirmed_count(&r1).await, 0);
}

#[tokio::test]
async fn raw_sql_as_staff_sees_and_cancels_but_cannot_move_and_other_staff_see_nothing() {
    let Staffed {
        app,
        a,
        owner1,
        owner2,
        r1,
        ..
    } = staffed().await;
    let bk = booked(
        &app,
        &a,
        &r1,
        "2027-06-03T09:00:00Z",
        "2027-06-03T10:00:00Z",
    )
    .await;
    let id = Uuid::parse_str(bk["id"].as_str().expect("id")).expect("uuid");
    let mut conn = app.login_conn().await;

    // owner of R2: nothing visible, nothing changes
    let mut tx = door(&mut conn, "authenticated", Some(owner2.id)).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.bookings")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(n, 0);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.booking_events")
        .fetch_one(&mut *tx)
        .await
        .expect("events");
    assert_eq!(events, 0);
    let err = sqlx::query("UPDATE booking.bookings SET status = 'cancelled' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect_err("direct writes are refused");
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.expect("rollback");
    let mut tx = door(&mut conn, "authenticated", Some(owner2.id)).await;
    let out: Value = sqlx::query_scalar("SELECT to_jsonb(r) FROM booking.cancel_booking($1) r")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .expect("cancel fn");
    assert_eq!(out["outcome"], "not_found");
    tx.rollback().await.expect("rollback");

    // owner of R1: sees the row and its history
    let mut tx = door(&mut conn, "authenticated", Some(owner1.id)).await;
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM booking.bookings WHERE id = $1")
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .expect("select");
    assert_eq!(seen, vec![a.id]);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM booking.booking_events WHERE booking_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .expect("events");
    assert_eq!(events, 1);
    // moving it directly is refused
    let err = sqlx::query(
        "UPDATE booking.bookings SET period = tstzrange(lower(period) + interval '1 hour', upper(period) + interval '1 hour') \
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .expect_err("staff moves a booking");
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.expect("rollback");
    // the move through the function is refused as well
    let mut tx = door(&mut conn, "authenticated", Some(owner1.id)).await;
    let out: Value = sqlx::query_scalar(
        "SELECT to_jsonb(r) FROM booking.reschedule_booking($1, '2027-06-03T11:00:00Z', '2027-06-03T12:00:00Z') r",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .expect("reschedule fn");
    assert_eq!(out["outcome"], "forbidden");
    tx.rollback().await.expect("rollback");
    // cancelling works
    let mut tx = door(&mut conn, "authenticated", Some(owner1.id)).await;
    let out: Value = sqlx::query_scalar("SELECT to_jsonb(r) FROM booking.cancel_booking($1) r")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .expect("cancel fn");
    assert_eq!(out["outcome"], "updated");
    tx.commit().await.expect("commit");
    conn.close().await.expect("close");

    let now: Value = app
        .get(&a.token, &path_of(&bk))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(now["status"], "cancelled");
    assert_eq!(now["start"], "2027-06-03T09:00:00Z");
    let h: Value = app
        .get(&a.token, &format!("{}/history", path_of(&bk)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(h["items"][1]["actor_id"], owner1.id.to_string());
}
