//! On the real Supabase shape: a database built by Supabase's own init
//! scripts and migrations (`scripts/supabase-db`, from `vendor/`), migrated by
//! `booking` as Supabase's demoted `postgres`, served through `authenticator`,
//! and used by people who signed in through Supabase Auth — GoTrue-shaped
//! tokens for users who exist only in `auth.users` — with both definitions of
//! `auth.uid()` a Supabase database may carry. Then the supabase-js door: the
//! database functions called as `authenticated` with claims set the way
//! PostgREST sets them.

use booking::config::Config;
use booking::db::migrate;
use booking::startup::Application;
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::sync::OnceLock;
use uuid::Uuid;

const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
const ISSUER: &str = "https://abcdefghijklmnopqrst.supabase.co/auth/v1";

/// The Supabase-shaped cluster of this test process.
struct Supa {
    postgres: PgConnectOptions,
    authenticator: PgConnectOptions,
}

fn supa() -> &'static Supa {
    static SUPA: OnceLock<Supa> = OnceLock::new();
    SUPA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("booking-sb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/supabase-db");
        // stop it and remove it when this process ends, however it ends
        let me = std::process::id();
        let d = dir.display().to_string();
        // the watchdog outlives this process by design: nobody waits for it
        #[allow(clippy::zombie_processes)]
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null; do sleep 1; done; '{script}' stop '{d}' >/dev/null 2>&1; rm -rf '{d}'"
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("watchdog");
        let out = std::process::Command::new(script)
            .arg("start")
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run scripts/supabase-db");
        assert!(
            out.status.success(),
            "scripts/supabase-db start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let opts = |k: &str| -> PgConnectOptions {
            env.get(k)
                .unwrap_or_else(|| panic!("{k} missing"))
                .parse()
                .expect("url")
        };
        Supa {
            postgres: opts("SUPABASE_POSTGRES_URL"),
            authenticator: opts("SUPABASE_AUTHENTICATOR_URL"),
        }
    })
}

/// The `auth.uid()` of the supabase/postgres init scripts, before GoTrue
/// replaces it (older projects): it reads only `request.jwt.claim.sub`.
const OLD_UID: &str = "CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \
    $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid; $$";

struct SupaApp {
    addr: String,
    db: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl SupaApp {
    /// A clone of the template, migrated by `booking` as `postgres`, and a
    /// server on it through `authenticator`.
    async fn spawn(old_uid: bool) -> SupaApp {
        let s = supa();
        let db = format!("sb_{}", Uuid::new_v4().simple());
        let mut c = PgConnection::connect_with(&s.postgres.clone().database("postgres"))
            .await
            .expect("connect as postgres");
        sqlx::raw_sql(&format!("CREATE DATABASE {db} TEMPLATE supabase_template"))
            .execute(&mut c)
            .await
            .expect("clone the template");
        c.close().await.expect("close");
        let mut c = self::connect(&s.postgres, &db).await;
        let (superuser,): (bool,) =
            sqlx::query_as("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                .fetch_one(&mut c)
                .await
                .expect("role");
        assert!(!superuser, "Supabase's postgres is not a superuser");
        if old_uid {
            sqlx::raw_sql(OLD_UID)
                .execute(&mut c)
                .await
                .expect("old auth.uid()");
        }
        migrate::run(&mut c).await.expect("migrate as postgres");
        c.close().await.expect("close");

        let mut m: HashMap<String, String> = HashMap::new();
        m.insert("BOOKING_ADDR".into(), "127.0.0.1:0".into());
        m.insert(
            "DATABASE_URL".into(),
            "postgres://unused@localhost/x".into(),
        );
        m.insert("BOOKING_JWT_SECRET".into(), SECRET.into());
        m.insert("BOOKING_JWT_ISSUERS".into(), format!("booking,{ISSUER}"));
        m.insert("BOOKING_RATE_LIMITS".into(), "off".into());
        m.insert("BOOKING_MAX_IN_FLIGHT_PER_USER".into(), "100".into());
        let config = Config::from_lookup(|k| m.get(k).cloned()).expect("config");
        let app = Application::build(
            &config,
            s.authenticator.clone().database(&db),
            SECRET.as_bytes(),
        )
        .await
        .expect("build");
        let addr = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        SupaApp {
            addr,
            db,
            http: reqwest::Client::new(),
            _stop: tx,
        }
    }

    fn url(&self, p: &str) -> String {
        format!("{}{}", self.addr, p)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn connect(opts: &PgConnectOptions, db: &str) -> PgConnection {
    PgConnection::connect_with(&opts.clone().database(db))
        .await
        .expect("connect")
}

/// A user as Supabase Auth has them: a row in `auth.users` only (the table of
/// the init scripts; GoTrue's own migrations add columns such as `phone`).
async fn auth_user(app: &SupaApp, phone: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    let mut c = connect(&supa().postgres, &app.db).await;
    sqlx::query(
        "INSERT INTO auth.users (instance_id, id, aud, role, email, raw_app_meta_data, created_at, updated_at) \
         VALUES ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2, $3, now(), now())",
    )
    .bind(id)
    .bind(format!("{id}@example.com"))
    .bind(json!({"provider": "phone", "phone": phone}))
    .execute(&mut c)
    .await
    .expect("auth.users");
    c.close().await.expect("close");
    id
}

/// A token as GoTrue issues it (phone without '+', its own claims).
fn gotrue_token(id: Uuid, phone: Option<&str>) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "aud": "authenticated", "exp": now + 3600, "iat": now, "iss": ISSUER,
        "sub": id, "email": format!("{id}@example.com"), "phone": phone.unwrap_or(""),
        "app_metadata": {"provider": "phone", "providers": ["phone"]},
        "user_metadata": {}, "role": "authenticated", "aal": "aal1",
        "amr": [{"method": "otp", "timestamp": now}], "session_id": Uuid::new_v4(),
        "is_anonymous": false
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode")
}

fn service_token() -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"aud": "authenticated", "exp": now + 3600, "iat": now, "iss": ISSUER,
                        "sub": Uuid::nil(), "role": "service_role"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode")
}

fn day(n: i64, hh: u32) -> String {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(n);
    format!("{d}T{hh:02}:00:00Z")
}

async fn user_flow(old_uid: bool) {
    use reqwest::Method;
    let app = SupaApp::spawn(old_uid).await;
    let (status, room) = app
        .send(
            Method::POST,
            &service_token(),
            "/v1/admin/resources",
            Some(json!({"name": "Studio", "timezone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().expect("id").to_string();
    let alice = auth_user(&app, Some("14155550123")).await;
    let bob = auth_user(&app, None).await;
    let (ta, tb) = (
        gotrue_token(alice, Some("14155550123")),
        gotrue_token(bob, None),
    );

    // me: provisioned from the claims, with Supabase's id and an E.164 phone
    let (status, me) = app.send(Method::GET, &ta, "/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], alice.to_string());
    assert_eq!(me["phone"], "+14155550123");
    let (status, me) = app
        .send(
            Method::PATCH,
            &tb,
            "/v1/me",
            Some(json!({"display_name": "Bob"})),
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], bob.to_string());
    assert_eq!(me["phone"], Value::Null, "no phone needed");

    // book: a Supabase user's first act may be a booking; the conflict between two
    let body = |s: &str, e: &str| json!({"resource_id": room, "start": s, "end": e});
    let carol = auth_user(&app, Some("14155550124")).await;
    let tc = gotrue_token(carol, Some("14155550124"));
    let (status, carol_b) = app
        .send(
            Method::POST,
            &tc,
            "/v1/bookings",
            Some(body(&day(3, 9), &day(3, 10))),
        )
        .await;
    assert_eq!(status, 201, "first act is a booking: {carol_b}");
    assert_eq!(carol_b["user_id"], carol.to_string());
    let (status, b1) = app
        .send(
            Method::POST,
            &ta,
            "/v1/bookings",
            Some(body(&day(3, 11), &day(3, 12))),
        )
        .await;
    assert_eq!(status, 201, "{b1}");
    let (status, clash) = app
        .send(
            Method::POST,
            &tb,
            "/v1/bookings",
            Some(body(&day(3, 11), &day(3, 12))),
        )
        .await;
    assert_eq!(status, 409, "{clash}");
    assert_eq!(clash["code"], "slot_taken");
    // at once: exactly one of many Supabase users gets a slot
    let users: Vec<Uuid> = join_all((0..8).map(|_| auth_user(&app, None))).await;
    let tokens: Vec<String> = users.iter().map(|u| gotrue_token(*u, None)).collect();
    let answers = join_all(tokens.iter().map(|t| {
        app.send(
            Method::POST,
            t,
            "/v1/bookings",
            Some(body(&day(4, 9), &day(4, 10))),
        )
    }))
    .await;
    let mut codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![201, 409, 409, 409, 409, 409, 409, 409],
        "{answers:?}"
    );

    // isolation and list
    let b1_path = format!("/v1/bookings/{}", b1["id"].as_str().expect("id"));
    let (status, _) = app.send(Method::GET, &tb, &b1_path, None).await;
    assert_eq!(status, 404, "Bob cannot see Alice's booking");
    let (status, list) = app.send(Method::GET, &ta, "/v1/bookings", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    // reschedule and cancel
    let (status, moved) = app
        .send(
            Method::PATCH,
            &ta,
            &b1_path,
            Some(json!({"start": day(5, 11), "end": day(5, 12)})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let (status, _) = app
        .send(
            Method::PATCH,
            &tb,
            &b1_path,
            Some(json!({"start": day(6, 11), "end": day(6, 12)})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.send(Method::DELETE, &tb, &b1_path, None).await;
    assert_eq!(status, 404);
    let (status, gone) = app.send(Method::DELETE, &ta, &b1_path, None).await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["status"], "cancelled");
    let (status, h) = app
        .send(Method::GET, &ta, &format!("{b1_path}/history"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(h["items"].as_array().map(Vec::len), Some(3), "{h}");
    // a resource that does not exist is a 404, not a foreign-key 500
    let (status, nf) = app
        .send(
            Method::POST,
            &ta,
            "/v1/bookings",
            Some(json!({"resource_id": Uuid::new_v4(), "start": day(3, 13), "end": day(3, 14)})),
        )
        .await;
    assert_eq!(status, 404, "{nf}");
    // our own sign-in still works beside Supabase's (booking-issued tokens)
    let (status, _) = app
        .send(
            Method::POST,
            &service_token(),
            "/v1/admin/users",
            Some(json!({"phone": "+14155550199"})),
        )
        .await;
    assert_eq!(status, 201);

    // supabase-js: rpc as `authenticated`, claims set as PostgREST sets them
    let mut c = connect(&supa().authenticator, &app.db).await;
    // PostgREST before v9 set one setting per claim, later ones the JSON
    // document; a database with the old auth.uid() only ever met the former
    let ways = [
        ("request.jwt.claim.sub", "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claim.sub', $2, true), set_config('request.jwt.claim.role', 'authenticated', true)"),
        ("request.jwt.claims", "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)"),
    ];
    for (label, set) in ways.iter().take(if old_uid { 1 } else { 2 }) {
        let mut tx = c.begin().await.expect("begin");
        sqlx::query(set)
            .bind(json!({"sub": bob, "role": "authenticated", "phone": ""}).to_string())
            .bind(bob.to_string())
            .execute(&mut *tx)
            .await
            .expect("claims");
        let me: Value = sqlx::query_scalar("SELECT booking.me()")
            .fetch_one(&mut *tx)
            .await
            .expect("rpc me");
        assert_eq!(me["id"], bob.to_string(), "{label}");
        let out: Value = sqlx::query_scalar(
            "SELECT to_jsonb(r) FROM booking.create_booking($1::uuid, $2::timestamptz, $3::timestamptz) r",
        )
        .bind(&room)
        .bind(day(7, 9))
        .bind(day(7, 10))
        .fetch_one(&mut *tx)
        .await
        .expect("rpc create");
        assert_eq!(out["outcome"], "created", "{label}: {out}");
        assert_eq!(out["user_id"], bob.to_string());
        let err = sqlx::query("UPDATE booking.bookings SET blocked = 'empty'")
            .execute(&mut *tx)
            .await
            .expect_err("no direct writes");
        assert!(err.to_string().contains("permission denied"), "{err}");
        tx.rollback().await.expect("rollback");
    }
    c.close().await.expect("close");
}

#[tokio::test]
async fn supabase_auth_users_work_on_a_database_built_by_supabases_scripts() {
    user_flow(false).await;
}

#[tokio::test]
async fn supabase_auth_users_work_where_auth_uid_reads_only_the_sub_claim() {
    user_flow(true).await;
}
