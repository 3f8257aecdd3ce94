//! The zero-set-up path, as a new user runs it: `booking serve` with no
//! DATABASE_URL in an empty directory starts its own PostgreSQL, serves,
//! stops cleanly on SIGTERM, and starts again on the same data.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn booking(dir: &Path, args: &[&str], port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_booking"));
    c.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("BOOKING_JWT_SECRET")
        .env_remove("BOOKING_DATA_DIR")
        .env("BOOKING_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null());
    c
}

async fn wait_ready(client: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("booking serve exited early: {status}");
        }
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sigterm_and_wait(child: &mut Child) -> std::process::ExitStatus {
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn token(dir: &Path, port: u16, args: &[&str]) -> String {
    let out = booking(dir, args, port)
        .stderr(Stdio::null())
        .output()
        .expect("token");
    assert!(out.status.success(), "booking {args:?} failed");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(text.lines().count(), 1, "the token alone on stdout");
    text.trim().to_string()
}

#[tokio::test]
async fn serve_without_database_url_runs_its_own_cluster_and_restarts_on_the_same_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let mut serve = booking(dir, &["serve"], port)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_ready(&client, &base, &mut serve).await;
    // tokens minted by the CLI (attaching to the running cluster) are accepted
    let service = token(dir, port, &["token", "--service"]);
    let user = token(dir, port, &["token", "--phone", "+14155550500"]);
    let r: Value = client
        .post(format!("{base}/v1/admin/resources"))
        .bearer_auth(&service)
        .json(&json!({"name": "Room", "timezone": "UTC"}))
        .send()
        .await
        .expect("resource")
        .json()
        .await
        .expect("json");
    let start = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT10:00:00Z")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT11:00:00Z")
        .to_string();
    let created = client
        .post(format!("{base}/v1/bookings"))
        .bearer_auth(&user)
        .json(&json!({"resource_id": r["id"], "start": start, "end": end}))
        .send()
        .await
        .expect("book");
    assert_eq!(created.status(), 201);
    let status = sigterm_and_wait(&mut serve);
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    assert!(
        !dir.join(".booking/pgdata/postmaster.pid").exists(),
        "PostgreSQL was stopped"
    );
    // the secrets and the server log are the owner's alone
    use std::os::unix::fs::PermissionsExt;
    for f in ["secrets.json", "postgres.log"] {
        let mode = std::fs::metadata(dir.join(".booking").join(f))
            .expect(f)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}: {mode:o}");
    }

    let mut again = booking(dir, &["serve"], port)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_ready(&client, &base, &mut again).await;
    let list: Value = client
        .get(format!("{base}/v1/bookings"))
        .bearer_auth(&user)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["items"].as_array().expect("items").len(),
        1,
        "data survived the restart"
    );
    assert!(sigterm_and_wait(&mut again).success());
}

#[test]
fn a_bad_configuration_value_stops_the_program_with_one_line_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = booking(tmp.path(), &["serve"], 1)
        .env("BOOKING_ADDR", "not-an-address")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("utf8");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("BOOKING_ADDR"), "{err}");
}
