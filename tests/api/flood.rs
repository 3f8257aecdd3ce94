//! Bounded cost per caller: one user flooding expensive reads cannot take the
//! server from everyone else; past the instance's in-flight limit the answer
//! is 503 + Retry-After at once; a connection that never finishes its request
//! head (or sits idle) is closed; availability answers are bounded.

use crate::helpers::{at, TestApp};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn one_user_flooding_expensive_reads_does_not_slow_another_users_creates() {
    // the defaults of `booking serve` for what one user may have in flight
    let app = TestApp::spawn_with(&[("BOOKING_MAX_IN_FLIGHT_PER_USER", "4")]).await;
    let (flooder, bystander) = (
        app.user("+14155550970").await,
        app.user("+14155550971").await,
    );
    // the most expensive availability allowed: 2 days of a 1-minute grid
    let fine = app.resource(json!({"slot_minutes": 1})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let room = app.room().await;
    let path = format!(
        "/v1/resources/{fine}/availability?from={}&to={}&duration_minutes=1",
        at(2, 0, 0),
        at(4, 0, 0)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, limited, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut flood = Vec::new();
    for _ in 0..48 {
        let (client, url, token) = (app.client.clone(), app.url(&path), flooder.token.clone());
        let (stop, ok, limited, other) = (stop.clone(), ok.clone(), limited.clone(), other.clone());
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client.get(&url).bearer_auth(&token).send().await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(429) => limited.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for h in 8..20 {
        let t = Instant::now();
        let r = app
            .book(&bystander, &room, &at(3, h, 0), &at(3, h, 30))
            .await;
        worst = worst.max(t.elapsed());
        assert_eq!(r.status(), 201, "the bystander's create at {h}:00");
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.expect("flooder");
    }
    let (ok, limited, other) = (
        ok.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    assert!(ok > 0, "the flooder was served too: {ok} ok");
    assert!(limited > 0, "the flooder was limited: {limited} 429s");
    assert_eq!(other, 0, "no other answers to the flooder");
    assert!(
        worst < Duration::from_secs(3),
        "the slowest bystander create took {worst:?}"
    );
}

#[tokio::test]
async fn past_the_in_flight_limit_the_answer_is_503_with_retry_after_at_once() {
    let app = TestApp::spawn_with(&[("BOOKING_MAX_IN_FLIGHT", "2")]).await;
    let users = app.users(12).await;
    let fine = app.resource(json!({"slot_minutes": 1})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!(
        "/v1/resources/{fine}/availability?from={}&to={}&duration_minutes=1",
        at(2, 0, 0),
        at(4, 0, 0)
    );
    let answers = futures::future::join_all(users.iter().map(|u| {
        let req = app.client.get(app.url(&path)).bearer_auth(&u.token);
        async move { req.send().await.expect("send") }
    }))
    .await;
    let shed: Vec<&reqwest::Response> = answers.iter().filter(|r| r.status() == 503).collect();
    assert!(!shed.is_empty(), "some were shed");
    for r in &shed {
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1")
        );
    }
    assert!(answers.iter().any(|r| r.status() == 200));
    assert!(answers
        .iter()
        .all(|r| matches!(r.status().as_u16(), 200 | 503)));
}

#[tokio::test]
async fn availability_beyond_3000_slot_starts_is_422() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550972").await;
    let fine = app.resource(json!({"slot_minutes": 1})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = app
        .get(
            &u.token,
            &format!(
                "/v1/resources/{fine}/availability?from={}&to={}&duration_minutes=1",
                at(2, 0, 0),
                at(33, 0, 0)
            ),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["errors"][0]["field"], "to", "{v}");
    // a week of the usual 15-minute grid is fine
    let room = app.room().await;
    let r = app
        .get(
            &u.token,
            &format!(
                "/v1/resources/{room}/availability?from={}&to={}",
                at(2, 0, 0),
                at(33, 0, 0)
            ),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_head_or_idles_is_closed() {
    let app = TestApp::spawn_with(&[("BOOKING_HEADER_READ_TIMEOUT", "1")]).await;
    let addr = app.addr.trim_start_matches("http://").to_string();
    // slow loris: half a request head, then nothing
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let t = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut closed = false;
    while t.elapsed() < Duration::from_secs(5) {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => continue, // a 408, say; then the close
            Err(_) => break,
        }
    }
    assert!(closed, "the half-open request was not closed");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // idle keep-alive: one request, then silence
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let n = s.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection is closed: {r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}
