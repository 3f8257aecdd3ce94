//! Database faults: PostgreSQL restarted in the middle of a run against two
//! servers. While it is down the servers answer 503 + `Retry-After` (never a
//! 500, never a hang), they recover by themselves, the retrying client rides
//! the 503s out, and the simulator's independent check finds every
//! acknowledged booking and no unacknowledged one. And the private cluster:
//! when its postmaster dies, `booking serve` exits non-zero so that a
//! supervisor restarts it.

use crate::helpers::{test_config, JWT_SECRET};
use booking::db::migrate;
use booking::pg::{self, Cluster};
use booking::simulate::{Scenario, SimulateArgs};
use booking::startup::Application;
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// A PostgreSQL of this test's own (the shared one must not restart under
/// the other tests), migrated, with the serving login.
async fn own_cluster() -> (Cluster, String) {
    let c = tokio::task::spawn_blocking(Cluster::ephemeral)
        .await
        .expect("join")
        .expect("cluster");
    c.ensure_database(pg::APP_DATABASE).await.expect("db");
    let mut conn = PgConnection::connect_with(&c.admin_options(pg::APP_DATABASE))
        .await
        .expect("connect");
    migrate::run(&mut conn).await.expect("migrate");
    migrate::ensure_login_role(&mut conn, pg::LOGIN_ROLE, &c.secrets.login_password)
        .await
        .expect("login");
    conn.close().await.expect("close");
    let o = c.admin_options(pg::APP_DATABASE);
    let mut u = reqwest::Url::parse("postgres://localhost").expect("url");
    u.set_username(o.get_username()).expect("user");
    u.set_password(Some(&c.secrets.admin_password)).expect("pw");
    u.set_path(pg::APP_DATABASE);
    u.query_pairs_mut()
        .append_pair(
            "host",
            &o.get_socket().expect("socket").display().to_string(),
        )
        .append_pair("port", &o.get_port().to_string());
    (c, u.to_string())
}

async fn restart_mid_run(
    scenario: Scenario,
    users: u32,
    requests: u32,
    down: Duration,
) -> booking::simulate::Summary {
    let (mut cluster, url) = own_cluster().await;
    let serve = cluster.connect_options(pg::LOGIN_ROLE, pg::APP_DATABASE);
    let mut targets = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..2 {
        let app = Application::build(&test_config(&[]), serve.clone(), JWT_SECRET.as_bytes())
            .await
            .expect("build");
        targets.push(format!("http://{}", app.local_addr()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        stops.push(tx);
    }
    let args = SimulateArgs {
        targets,
        scenario,
        users,
        requests,
        concurrency: Some(32),
        resources: 3,
        seats: 5,
        hold_seconds: 30,
        seed: 7,
        quiet: true,
    };
    let config = test_config(&[("DATABASE_URL", &url)]);
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // let it get going (users and resources are made first), then restart
    let restarter = {
        let finished = finished.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let early = finished.load(std::sync::atomic::Ordering::SeqCst);
            let cluster = tokio::task::spawn_blocking(move || {
                cluster.restart(down).expect("restart");
                cluster
            })
            .await
            .expect("join");
            (cluster, early)
        })
    };
    let result = tokio::time::timeout(
        Duration::from_secs(180),
        booking::simulate::run_summary(args, config),
    )
    .await
    .expect("the run finishes");
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut cluster, early) = restarter.await.expect("join");
    assert!(!early, "the run ended before the restart: make it longer");
    let summary = result.expect("the run");
    assert!(
        summary.ok,
        "{scenario:?} across a restart: {summary:?} (see the report above)"
    );
    assert!(summary.acknowledged > 0, "{summary:?}");
    drop(stops);
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("join")
        .expect("stop");
    summary
}

#[tokio::test]
async fn a_database_restart_in_a_random_run_is_503s_and_loses_nothing() {
    // down for longer than the pool waits for a connection (3 s): some
    // requests must be answered 503 + Retry-After, none 500
    let s = restart_mid_run(Scenario::Random, 200, 15, Duration::from_secs(4)).await;
    assert!(s.unavailable > 0, "the outage was seen: {s:?}");
}

#[tokio::test]
async fn a_database_restart_in_a_churn_run_is_ridden_out_by_the_retrying_client() {
    restart_mid_run(Scenario::Churn, 200, 10, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn serve_exits_non_zero_when_its_private_clusters_postmaster_dies() {
    let dir = tempfile::Builder::new()
        .prefix("booking-pmdeath")
        .tempdir_in("/tmp")
        .expect("dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_booking"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BOOKING_DATA_DIR", dir.path().join("data"))
        .env("BOOKING_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn booking serve");
    let http = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let mut up = false;
    for _ in 0..300 {
        if http
            .get(&ready)
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "booking serve did not become ready");
    let pidfile = std::fs::read_to_string(dir.path().join("data/pgdata/postmaster.pid"))
        .expect("postmaster.pid");
    let pid: i32 = pidfile
        .lines()
        .next()
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("booking serve exits after its postmaster died")
        .expect("wait");
    assert!(!status.success(), "exit status {status}");
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err).await;
    }
    assert!(err.contains("stopped unexpectedly"), "{err}");
}
