//! An external database (`DATABASE_URL`), as on any PostgreSQL >= 14 or a
//! Supabase project: migrations run as its owner, requests are served through
//! `BOOKING_SERVE_DATABASE_URL`, and a serving login that cannot switch to the
//! request roles is refused at start with a line naming the variable.

use crate::helpers::{
    admin_options, admin_url, at, drop_database, empty_database, login_url, test_config, JWT_SECRET,
};
use booking::identity::jwt::Keys;
use booking::identity::Role;
use booking::startup::{Application, Backend};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

#[tokio::test]
async fn an_external_database_is_migrated_by_its_owner_and_served_through_the_serve_login() {
    let db = empty_database("ext").await;
    let (owner, serve) = (admin_url(&db), login_url(&db));
    let config = test_config(&[
        ("DATABASE_URL", owner.as_str()),
        ("BOOKING_SERVE_DATABASE_URL", serve.as_str()),
    ]);
    let backend = Backend::open(&config)
        .await
        .expect("open the external database");
    assert!(backend.cluster.is_none());
    let app = Application::build(&config, backend.serve.clone(), &backend.jwt_secret)
        .await
        .expect("build");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let keys = Keys::new(JWT_SECRET.as_bytes(), &["booking".to_string()]);
    let service = keys
        .mint(Uuid::nil(), Role::Service, None, None, 600)
        .expect("mint");
    let user: Value = http
        .post(format!("{base}/v1/admin/users"))
        .bearer_auth(&service)
        .json(&json!({"phone": "+14155550800"}))
        .send()
        .await
        .expect("user")
        .json()
        .await
        .expect("json");
    let uid = Uuid::parse_str(user["id"].as_str().expect("id")).expect("uuid");
    let token = keys
        .mint(uid, Role::Authenticated, Some("+14155550800"), None, 600)
        .expect("mint");
    let room: Value = http
        .post(format!("{base}/v1/admin/resources"))
        .bearer_auth(&service)
        .json(&json!({"name": "R", "timezone": "UTC"}))
        .send()
        .await
        .expect("room")
        .json()
        .await
        .expect("json");
    let r = http
        .post(format!("{base}/v1/bookings"))
        .bearer_auth(&token)
        .json(&json!({"resource_id": room["id"], "start": at(2, 9, 0), "end": at(2, 10, 0)}))
        .send()
        .await
        .expect("book");
    assert_eq!(r.status(), 201);
    let ready = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let _ = tx.send(());
    let _ = task.await;
    backend.shutdown().await.expect("shutdown");
    drop_database(&db).await;
}

#[tokio::test]
async fn a_serve_login_that_cannot_switch_roles_is_refused_at_start() {
    let db = empty_database("ext").await;
    let role = format!("plain_{}", &Uuid::new_v4().simple().to_string()[..8]);
    let mut admin = PgConnection::connect_with(&admin_options(&db))
        .await
        .expect("admin");
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'plainpassword'"
    ))
    .execute(&mut admin)
    .await
    .expect("role");
    let owner = admin_url(&db);
    let serve = crate::helpers::database_url(&role, "plainpassword", &db);
    let config = test_config(&[
        ("DATABASE_URL", owner.as_str()),
        ("BOOKING_SERVE_DATABASE_URL", serve.as_str()),
    ]);
    let err = Backend::open(&config).await.err().expect("must refuse");
    let text = format!("{err:#}");
    assert!(
        text.contains("BOOKING_SERVE_DATABASE_URL") && text.contains("GRANT"),
        "{text}"
    );
    sqlx::raw_sql(&format!("DROP ROLE {role}"))
        .execute(&mut admin)
        .await
        .ok();
    admin.close().await.expect("close");
    drop_database(&db).await;
}
