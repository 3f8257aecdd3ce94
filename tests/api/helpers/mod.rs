//! The test harness: one PostgreSQL per test process (a throw-away private
//! cluster, or `TEST_DATABASE_URL`), a migrated template database, and per
//! test a fresh database cloned from it plus a real server on a random port.
//! Logs are silent unless `TEST_LOG=1`.

#![allow(dead_code)]

pub mod receiver;
pub mod rules;

use booking::config::Config;
use booking::db::migrate;
use booking::identity::jwt::Keys;
use booking::identity::Role;
use booking::pg::{self, Cluster};
use booking::startup::Application;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::collections::HashMap;
use std::sync::OnceLock;
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
const TEMPLATE: &str = "booking_template";
pub const LOGIN_PASSWORD: &str = "testloginpassword";

/// The database server all tests of this process share.
pub struct Server {
    /// Superuser options (database to be set per use).
    admin: PgConnectOptions,
    /// The non-privileged login role.
    login: PgConnectOptions,
    admin_password: String,
    _cluster: Option<Cluster>,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            booking::telemetry::init(booking::config::LogFormat::Pretty);
        }
        std::thread::spawn(|| {
            let (admin, admin_password, cluster) = match std::env::var("TEST_DATABASE_URL") {
                Ok(url) => (
                    url.parse::<PgConnectOptions>().expect("TEST_DATABASE_URL"),
                    reqwest::Url::parse(&url)
                        .ok()
                        .and_then(|u| u.password().map(str::to_string))
                        .unwrap_or_default(),
                    None,
                ),
                Err(_) => {
                    let c = Cluster::ephemeral().expect("start a throw-away PostgreSQL cluster");
                    let pw = c.secrets.admin_password.clone();
                    (c.admin_options("postgres"), pw, Some(c))
                }
            };
            let admin = admin.log_statements(tracing::log::LevelFilter::Trace);
            rt().block_on(async {
                let mut conn = PgConnection::connect_with(&admin.clone().database("postgres"))
                    .await
                    .expect("connect as admin");
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .expect("drop template");
                sqlx::raw_sql(&format!("CREATE DATABASE {TEMPLATE}"))
                    .execute(&mut conn)
                    .await
                    .expect("create template");
                let mut t = PgConnection::connect_with(&admin.clone().database(TEMPLATE))
                    .await
                    .expect("connect template");
                migrate::run(&mut t).await.expect("migrate template");
                migrate::ensure_login_role(&mut t, pg::LOGIN_ROLE, LOGIN_PASSWORD)
                    .await
                    .expect("login role");
                t.close().await.expect("close");
                conn.close().await.expect("close");
            });
            let login = admin
                .clone()
                .username(pg::LOGIN_ROLE)
                .password(LOGIN_PASSWORD);
            Server {
                admin,
                login,
                admin_password,
                _cluster: cluster,
            }
        })
        .join()
        .expect("test database server")
    })
}

/// A postgres:// URL for `user` on database `db` of the test server, as a
/// user would write it in DATABASE_URL (unix sockets as `?host=/dir`).
pub fn database_url(user: &str, password: &str, db: &str) -> String {
    let srv = server();
    let mut u = reqwest::Url::parse("postgres://localhost").expect("url");
    u.set_username(user).expect("user");
    u.set_password(Some(password)).expect("password");
    u.set_path(db);
    match srv.admin.get_socket() {
        Some(dir) => {
            u.query_pairs_mut()
                .append_pair("host", &dir.display().to_string())
                .append_pair("port", &srv.admin.get_port().to_string());
        }
        None => {
            u.set_host(Some(srv.admin.get_host())).expect("host");
            u.set_port(Some(srv.admin.get_port())).expect("port");
        }
    }
    u.to_string()
}

/// The superuser's URL for a database of the test server.
pub fn admin_url(db: &str) -> String {
    let srv = server();
    database_url(srv.admin.get_username(), &srv.admin_password, db)
}

/// The login role's URL for a database of the test server.
pub fn login_url(db: &str) -> String {
    database_url(booking::pg::LOGIN_ROLE, LOGIN_PASSWORD, db)
}

/// A new empty database (not from the template) named `<prefix>_<random>`.
pub async fn empty_database(prefix: &str) -> String {
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&admin_options("postgres"))
        .await
        .expect("admin");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    admin.close().await.expect("close");
    name
}

/// Drop a database made by [`empty_database`], whoever is still connected.
pub async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect_with(&admin_options("postgres"))
        .await
        .expect("admin");
    sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop database");
    admin.close().await.expect("close");
}

/// The superuser's options for any database of the test server.
pub fn admin_options(db_name: &str) -> PgConnectOptions {
    server().admin.clone().database(db_name)
}

/// The login role's options for a test database.
pub fn server_login_options(db_name: &str) -> PgConnectOptions {
    server().login.clone().database(db_name)
}

/// A test's own database and server.
pub struct TestApp {
    pub addr: String,
    pub db_name: String,
    pub client: reqwest::Client,
    pub keys: Keys,
    pub state: booking::http::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub phone: String,
    pub token: String,
}

pub fn test_config(extra: &[(&str, &str)]) -> Config {
    let mut m: HashMap<String, String> = HashMap::new();
    m.insert("BOOKING_ADDR".into(), "127.0.0.1:0".into());
    m.insert(
        "DATABASE_URL".into(),
        "postgres://unused@localhost/unused".into(),
    );
    m.insert("BOOKING_JWT_SECRET".into(), JWT_SECRET.into());
    m.insert("BOOKING_OTP_DELIVERY".into(), "echo".into());
    m.insert("BOOKING_RATE_LIMITS".into(), "off".into());
    m.insert("BOOKING_DB_POOL_SIZE".into(), "10".into());
    // tests fire many requests of one user at once; the flood tests set it low
    m.insert("BOOKING_MAX_IN_FLIGHT_PER_USER".into(), "1000".into());
    // webhook receivers in tests listen on loopback (the SSRF test turns it off)
    m.insert("BOOKING_WEBHOOK_ALLOW_PRIVATE".into(), "on".into());
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(|k| m.get(k).cloned()).expect("test config")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A new database cloned from the template, and a server on it.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        let srv = server();
        let db_name = format!("test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&srv.admin.clone().database("postgres"))
            .await
            .expect("admin");
        sqlx::raw_sql(&format!("CREATE DATABASE {db_name} TEMPLATE {TEMPLATE}"))
            .execute(&mut conn)
            .await
            .expect("clone template");
        conn.close().await.expect("close");
        Self::serve_on(&db_name, extra).await
    }

    /// The test database server's superuser options (no database set).
    pub fn admin_options() -> PgConnectOptions {
        server().admin.clone()
    }

    /// A second server on the same database whose requests go through
    /// `login` (e.g. a pooler in front of the test server).
    pub async fn server_through(&self, login: PgConnectOptions, extra: &[(&str, &str)]) -> TestApp {
        let config = test_config(extra);
        let app = Application::build(&config, login, JWT_SECRET.as_bytes())
            .await
            .expect("build application");
        let addr = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            db_name: String::new(), // not the owner: do not drop the database
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            keys: Keys::new(JWT_SECRET.as_bytes(), &["booking".to_string()]),
            state,
            shutdown: Some(tx),
            server_task: Some(task),
        }
    }

    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// A second server on the same database (several processes, one database).
    pub async fn another_server(&self) -> TestApp {
        let mut app = Self::serve_on(&self.db_name, &[]).await;
        app.db_name = String::new(); // not the owner: do not drop the database
        app
    }

    async fn serve_on(db_name: &str, extra: &[(&str, &str)]) -> TestApp {
        let srv = server();
        let config = test_config(extra);
        if extra
            .iter()
            .any(|(k, _)| *k == "BOOKING_MAX_ACTIVE_BOOKINGS")
        {
            // as `booking serve` does at start, as the schema owner
            let mut c = PgConnection::connect_with(&srv.admin.clone().database(db_name))
                .await
                .expect("admin");
            migrate::apply_settings(&mut c, config.max_active_bookings)
                .await
                .expect("settings");
            c.close().await.expect("close");
        }
        let app = Application::build(
            &config,
            srv.login.clone().database(db_name),
            JWT_SECRET.as_bytes(),
        )
        .await
        .expect("build application");
        let addr = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            db_name: db_name.to_string(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            keys: Keys::new(JWT_SECRET.as_bytes(), &["booking".to_string()]),
            state,
            shutdown: Some(tx),
            server_task: Some(task),
        }
    }

    /// Stop the server gracefully and wait for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.server_task.take() {
            let _ = t.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    /// Move both clocks, the server's and the database's (the one every
    /// booking rule is judged against): `now()` becomes `to` and keeps ticking.
    /// Only the schema owner can move the database's clock.
    pub async fn set_clock(&self, to: chrono::DateTime<chrono::Utc>) {
        self.state.clock.set(to);
        let mut c = self.admin_conn().await;
        sqlx::query("UPDATE booking.settings SET clock_offset = $1::timestamptz - now()")
            .bind(to)
            .execute(&mut c)
            .await
            .expect("set the database clock");
        c.close().await.expect("close");
    }

    /// The superuser, on this test's database (bypasses RLS: for checks only).
    pub async fn admin_conn(&self) -> PgConnection {
        PgConnection::connect_with(&server().admin.clone().database(&self.db_name))
            .await
            .expect("admin conn")
    }

    /// The server's own non-privileged login, on this test's database.
    pub async fn login_conn(&self) -> PgConnection {
        PgConnection::connect_with(&server().login.clone().database(&self.db_name))
            .await
            .expect("login conn")
    }

    pub fn service_token(&self) -> String {
        self.keys
            .mint(Uuid::nil(), Role::Service, None, None, 600)
            .expect("mint")
    }

    /// Create (or find) a user by phone and sign them in.
    pub async fn user(&self, phone: &str) -> TestUser {
        let resp = self
            .client
            .post(self.url("/v1/admin/users"))
            .bearer_auth(self.service_token())
            .json(&json!({ "phone": phone }))
            .send()
            .await
            .expect("create user");
        assert!(resp.status().is_success(), "create user: {}", resp.status());
        let u: Value = resp.json().await.expect("user json");
        let id = Uuid::parse_str(u["id"].as_str().expect("id")).expect("uuid");
        let phone = u["phone"].as_str().expect("phone").to_string();
        let token = self
            .keys
            .mint(id, Role::Authenticated, Some(&phone), None, 600)
            .expect("mint");
        TestUser { id, phone, token }
    }

    /// `n` distinct users.
    pub async fn users(&self, n: usize) -> Vec<TestUser> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(self.user(&format!("+1415555{:04}", 1000 + i)).await);
        }
        out
    }

    /// Create a resource through the admin API; `extra` overrides defaults.
    pub async fn resource(&self, extra: Value) -> Value {
        let mut body = json!({ "name": "Room", "timezone": "UTC" });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let resp = self
            .client
            .post(self.url("/v1/admin/resources"))
            .bearer_auth(self.service_token())
            .json(&body)
            .send()
            .await
            .expect("create resource");
        assert_eq!(resp.status(), 201, "create resource");
        resp.json().await.expect("resource json")
    }

    /// The id of a new default resource (UTC, capacity 1, 15-minute grid).
    pub async fn room(&self) -> String {
        self.resource(json!({})).await["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// POST /v1/bookings (the request is built at once, so arguments may be temporaries).
    pub fn book(
        &self,
        user: &TestUser,
        resource: &str,
        start: &str,
        end: &str,
    ) -> impl std::future::Future<Output = reqwest::Response> + Send + 'static {
        let req = self
            .client
            .post(self.url("/v1/bookings"))
            .bearer_auth(&user.token)
            .json(&json!({ "resource_id": resource, "start": start, "end": end }));
        async move { req.send().await.expect("book") }
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get")
    }

    pub async fn patch(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("patch")
    }

    pub async fn delete(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("delete")
    }

    /// Confirmed bookings on a resource, counted past RLS (superuser).
    pub async fn confirmed_count(&self, resource: &str) -> i64 {
        let mut c = self.admin_conn().await;
        let n = sqlx::query_scalar("SELECT count(*) FROM booking.bookings WHERE resource_id = $1::uuid AND status = 'confirmed'")
            .bind(resource)
            .fetch_one(&mut c)
            .await
            .expect("count");
        c.close().await.expect("close");
        n
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.server_task.take() {
            t.abort();
        }
        if self.db_name.is_empty() {
            return;
        }
        let name = self.db_name.clone();
        let admin = server().admin.clone();
        let _ = std::thread::spawn(move || {
            rt().block_on(async move {
                if let Ok(mut c) = PgConnection::connect_with(&admin.database("postgres")).await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            })
        })
        .join();
    }
}

/// An instant `days` days from now at `hh:mm` UTC, RFC 3339.
pub fn at(days: i64, hh: u32, mm: u32) -> String {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    format!("{}T{:02}:{:02}:00Z", d, hh, mm)
}

/// A transaction as `role` with `user`'s claims, set the way PostgREST does
/// (both the JSON claims and the per-claim settings).
pub async fn door<'c>(
    conn: &'c mut PgConnection,
    role: &str,
    user: Option<Uuid>,
) -> sqlx::Transaction<'c, sqlx::Postgres> {
    let mut tx = conn.begin().await.expect("begin");
    let claims = user
        .map(|u| json!({"sub": u, "role": role, "aud": "authenticated"}).to_string())
        .unwrap_or_default();
    sqlx::query(
        "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
                set_config('request.jwt.claim.sub', $3, true), set_config('request.jwt.claim.role', $1, true)",
    )
    .bind(role)
    .bind(claims)
    .bind(user.map(|u| u.to_string()).unwrap_or_default())
    .execute(&mut *tx)
    .await
    .expect("scope");
    tx
}

pub fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii")
        .to_string()
}

pub async fn assert_problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "expected {status} {code}");
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    let p: Value = r.json().await.expect("problem");
    assert_eq!(p["code"], code, "{p}");
    p
}
