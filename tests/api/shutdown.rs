//! A graceful stop finishes requests in flight; readiness follows the
//! database (through a TCP proxy that can cut it off).

use booking::startup::Application;
use serde_json::{json, Value};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::helpers::{at, server_login_options, test_config, TestApp, JWT_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_finishes_requests_in_flight_and_every_201_is_stored() {
    const N: usize = 16;
    let mut app = TestApp::spawn_with(&[("BOOKING_DB_POOL_SIZE", "20")]).await;
    let users = app.users(N).await;
    let room = app.room().await;

    // Hold the resource's row: every create then waits inside PostgreSQL (on
    // its foreign-key check), i.e. in flight in the server, until we let go.
    let mut blocker = app.admin_conn().await;
    let mut tx = blocker.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM booking.resources WHERE id = $1::uuid FOR UPDATE")
        .bind(&room)
        .execute(&mut *tx)
        .await
        .expect("lock the resource");

    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let req = app
                .client
                .post(app.url("/v1/bookings"))
                .bearer_auth(&u.token)
                .json(&json!({"resource_id": room, "start": at(1, i as u32, 0), "end": at(1, i as u32, 30)}));
            tokio::spawn(async move {
                let r = req.send().await?;
                let status = r.status().as_u16();
                let body: Value = r.json().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
        })
        .collect();

    // wait until they are all waiting on the lock
    let mut watcher = app.admin_conn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&app.db_name)
        .fetch_one(&mut watcher)
        .await
        .expect("pg_stat_activity");
        if waiting as usize >= N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {waiting} of {N} creates reached the database"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // stop while they wait, then let them go
    let addr = app.addr.clone();
    let stopper = tokio::spawn(async move {
        app.stop().await;
        app
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // no new connections once stopping
    let late = reqwest::Client::new()
        .get(format!("{addr}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        late.is_err(),
        "a new connection was accepted while stopping"
    );
    tx.commit().await.expect("release");

    let app = tokio::time::timeout(Duration::from_secs(30), stopper)
        .await
        .expect("the server stopped within 30 s")
        .expect("stopper");
    let mut ids = Vec::new();
    for t in tasks {
        let (status, body) = t
            .await
            .expect("task")
            .expect("no connection error for a request sent before the stop");
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    let mut c = app.admin_conn().await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM booking.bookings WHERE id::text = ANY($1) AND status = 'confirmed'",
    )
    .bind(&ids)
    .fetch_one(&mut c)
    .await
    .expect("count");
    assert_eq!(stored as usize, ids.len());
    assert_eq!(ids.len(), N);
    c.close().await.expect("close");
    watcher.close().await.expect("close");
    blocker.close().await.expect("close");
}

// ------------------------------------------------- readiness follows the db

/// Where PostgreSQL really is.
#[derive(Clone)]
enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Upstream {
    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Upstream::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
            Upstream::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a).await?),
        })
    }
}

/// A unix-socket proxy in front of the test PostgreSQL that can be cut (every
/// connection closed, new ones refused) and restored.
struct Proxy {
    dir: tempfile::TempDir,
    cut: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: &sqlx::postgres::PgConnectOptions) -> Proxy {
        let port = target.get_port();
        let upstream = match target.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            None if target.get_host().starts_with('/') => {
                Upstream::Unix(Path::new(target.get_host()).join(format!(".s.PGSQL.{port}")))
            }
            None => Upstream::Tcp(format!("{}:{port}", target.get_host())),
        };
        let dir = tempfile::Builder::new()
            .prefix("pgproxy")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let listener = tokio::net::UnixListener::bind(dir.path().join(format!(".s.PGSQL.{port}")))
            .expect("bind proxy socket");
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let c = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *c.borrow() {
                    continue; // dropped: the database "is gone"
                }
                let upstream = upstream.clone();
                let mut rx = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = upstream.connect().await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { dir, cut, task }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Poll `/readyz` until it answers `want`; its Retry-After presence and body.
async fn wait_for_readyz(
    client: &reqwest::Client,
    base: &str,
    want: u16,
    within: Duration,
) -> (bool, Value) {
    let deadline = Instant::now() + within;
    loop {
        let r = client
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("readyz answers");
        let status = r.status().as_u16();
        let retry = r.headers().contains_key("retry-after");
        let body: Value = r.json().await.expect("json");
        if status == want {
            return (retry, body);
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_database_is_unreachable_and_200_again_when_it_returns() {
    let app = TestApp::spawn().await; // owns the database
    let direct = server_login_options(&app.db_name);
    let proxy = Proxy::start(&direct).await;
    let config = test_config(&[]);
    let server = Application::build(
        &config,
        direct.clone().socket(proxy.dir.path()),
        JWT_SECRET.as_bytes(),
    )
    .await
    .expect("build");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    wait_for_readyz(&client, &base, 200, Duration::from_secs(10)).await;
    // the server is healthy through the proxy; now the database goes away
    proxy.set_cut(true);
    let (retry, body) = wait_for_readyz(&client, &base, 503, Duration::from_secs(10)).await;
    assert!(retry, "503 without Retry-After");
    assert_eq!(body["code"], "unavailable");
    // liveness does not depend on the database
    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    // it comes back: ready again, same process, no restart
    proxy.set_cut(false);
    wait_for_readyz(&client, &base, 200, Duration::from_secs(15)).await;
    let user = app.user("+14155550111").await;
    let r = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 200);

    let _ = stop.send(());
    running
        .await
        .expect("join")
        .expect("server stopped cleanly");
}
