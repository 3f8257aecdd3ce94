//! Through PgBouncer in transaction mode (Debian's package, 1.18): a server
//! connection serves many clients one transaction at a time, so anything a
//! request set on it would reach the next request. Ours are set with
//! `set_config(…, true)`, i.e. for the transaction only: many users at once
//! through two server connections, and nothing ever left behind.
//!
//! PgBouncer is required in CI (`.ci/run` installs it); elsewhere, without
//! it, the test says so and passes.

use futures::future::join_all;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::helpers::{at, TestApp, LOGIN_PASSWORD};

struct Bouncer {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn installed() -> bool {
    std::process::Command::new("pgbouncer")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// PgBouncer in transaction mode in front of the test server, `pool` server
/// connections per database and user.
async fn start(pool: u32) -> Bouncer {
    let admin = TestApp::admin_options();
    let target = match admin.get_socket() {
        Some(dir) => format!("host={} port={}", dir.display(), admin.get_port()),
        None => format!("host={} port={}", admin.get_host(), admin.get_port()),
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let dir = std::env::temp_dir().join(format!(
        "booking-test-pgbouncer-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("userlist.txt"),
        format!("\"{}\" \"{LOGIN_PASSWORD}\"\n", booking::pg::LOGIN_ROLE),
    )
    .expect("userlist");
    std::fs::write(
        dir.join("pgbouncer.ini"),
        format!(
            "[databases]\n* = {target}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {d}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = {pool}\nmax_client_conn = 200\n\
             server_reset_query = DEALLOCATE ALL\nserver_reset_query_always = 1\n\
             ignore_startup_parameters = extra_float_digits\nlogfile = {d}/pgbouncer.log\n\
             pidfile = {d}/pgbouncer.pid\n",
            d = dir.display()
        ),
    )
    .expect("ini");
    let mut cmd = std::process::Command::new("pgbouncer");
    if booking::pg::is_root() {
        // PgBouncer refuses to run as root: it runs as the cluster's user
        let ok = std::process::Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .expect("chown")
            .success();
        assert!(ok, "chown");
        cmd.arg("-u").arg("postgres");
    }
    let child = cmd
        .arg(dir.join("pgbouncer.ini"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pgbouncer");
    let b = Bouncer { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "pgbouncer did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b
}

fn through(b: &Bouncer, db: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(b.port)
        .username(booking::pg::LOGIN_ROLE)
        .password(LOGIN_PASSWORD)
        .database(db)
        .statement_cache_capacity(0)
        .log_statements(tracing::log::LevelFilter::Trace)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_never_leak_across_pooled_server_connections_through_pgbouncer() {
    if !installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have pgbouncer (apt-get install pgbouncer)"
        );
        eprintln!("pgbouncer is not installed: skipped here (CI runs it)");
        return;
    }
    let direct = TestApp::spawn().await;
    let bouncer = start(2).await;
    // a server whose 8 pooled connections share PgBouncer's 2 server connections
    let app = direct
        .server_through(
            through(&bouncer, direct.db_name()),
            &[
                ("BOOKING_DB_POOLER", "transaction"),
                ("BOOKING_DB_POOL_SIZE", "8"),
            ],
        )
        .await;
    let users = direct.users(8).await;
    let room = direct.room().await;

    // a watcher on the pooler, between the requests: a server connection
    // handed to it never carries a role or claims
    let mut watcher = PgConnection::connect_with(&through(&bouncer, direct.db_name()))
        .await
        .expect("watcher");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let stop = stop.clone();
        async move {
            let mut seen = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // the simple protocol: one message, nothing prepared
                let r = sqlx::raw_sql(
                    "SELECT current_user::text, current_setting('role'), \
                            coalesce(current_setting('request.jwt.claims', true), ''), \
                            coalesce(current_setting('request.jwt.claim.sub', true), '')",
                )
                .fetch_one(&mut watcher)
                .await
                .expect("watch");
                let row: (String, String, String, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                assert_eq!(
                    row,
                    (
                        booking::pg::LOGIN_ROLE.to_string(),
                        "none".to_string(),
                        String::new(),
                        String::new()
                    ),
                    "a pooled server connection kept a request's role or claims"
                );
                seen += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        }
    };

    // every user books, reads their own bookings and themselves, many times,
    // all at once
    let rounds = 6;
    let work = users.iter().enumerate().map(|(i, u)| {
        let (app, room) = (&app, &room);
        async move {
            for k in 0..rounds {
                let r = app
                    .book(
                        u,
                        room,
                        &at(2 + k, (i as u32) * 2, 0),
                        &at(2 + k, (i as u32) * 2 + 1, 0),
                    )
                    .await;
                assert_eq!(r.status(), 201, "create through the pooler");
                let me: Value = app.get(&u.token, "/v1/me").await.json().await.expect("me");
                assert_eq!(me["id"], u.id.to_string(), "/v1/me answers for the caller");
                let list: Value = app
                    .get(&u.token, "/v1/bookings?limit=100")
                    .await
                    .json()
                    .await
                    .expect("list");
                let items = list["items"].as_array().expect("items");
                assert_eq!(items.len(), k as usize + 1, "exactly the caller's bookings");
                assert!(
                    items.iter().all(|b| b["user_id"] == u.id.to_string()),
                    "only the caller's bookings: {list}"
                );
            }
        }
    });
    let ((), seen) = tokio::join!(
        async {
            join_all(work).await;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        },
        watch
    );
    assert!(seen > 10, "the watcher looked {seen} times");

    // and the slot rules hold through the pooler too
    let r = app.book(&users[1], &room, &at(2, 0, 0), &at(2, 1, 0)).await;
    assert_eq!(r.status(), 409, "users[0]'s slot");
    let mut admin = direct.admin_conn().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.bookings")
        .fetch_one(&mut admin)
        .await
        .expect("count");
    assert_eq!(n, 8 * rounds);
    let _ = admin.close().await;
    drop(bouncer);
}
