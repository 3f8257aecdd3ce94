//! Calendars: a booking as text/calendar, secret feed URLs, and the page.
//! iCalendar output is also parsed by an independent implementation
//! (Python's `icalendar`, installed by CI).

use crate::helpers::rules::path_of;
use crate::helpers::{at, header, TestApp};
use serde_json::{json, Value};

/// Parse with Python's icalendar; the (UID, SEQUENCE, STATUS, DTSTART) of each
/// VEVENT. Where Python's icalendar is missing the check is skipped, except
/// in CI (CI=true), where its absence fails the test.
fn parse_independently(ics: &str) -> Option<Vec<(String, String, String, String)>> {
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.read())
for e in cal.walk('VEVENT'):
    print(str(e['UID']), int(e['SEQUENCE']), str(e['STATUS']), e.decoded('DTSTART').isoformat(), sep='|')
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut i) = c.stdin.take() {
                i.write_all(ics.as_bytes())?;
            }
            c.wait_with_output()
        });
    match out {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| {
                    let p: Vec<&str> = l.split('|').collect();
                    (p[0].into(), p[1].into(), p[2].into(), p[3].into())
                })
                .collect(),
        ),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named") => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must install Python's icalendar"
            );
            None
        }
        Ok(o) => panic!(
            "icalendar refused our output: {}\n{ics}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            assert!(std::env::var("CI").is_err(), "python3: {e}");
            None
        }
    }
}

async fn ics_of(app: &TestApp, token: &str, path: &str) -> (u16, String) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .header("accept", "text/calendar")
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    if status == 200 {
        assert!(header(&r, "content-type").starts_with("text/calendar"));
    }
    (status, r.text().await.expect("text"))
}

#[tokio::test]
async fn a_booking_as_icalendar_follows_its_version_and_status() {
    let app = TestApp::spawn().await;
    let room = app.resource(json!({"name": "Studio, north"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let u = app.user("+14155550300").await;
    let other = app.user("+14155550301").await;
    let b: Value = app
        .book(&u, &room, &at(2, 10, 0), &at(2, 11, 0))
        .await
        .json()
        .await
        .expect("b");
    let path = path_of(&b);
    let id = b["id"].as_str().expect("id");
    let (s, text) = ics_of(&app, &u.token, &path).await;
    assert_eq!(s, 200);
    assert!(text.contains(&format!("UID:{id}@booking")), "{text}");
    assert!(text.contains("SEQUENCE:0") && text.contains("STATUS:CONFIRMED"));
    assert!(text.contains("SUMMARY:Studio\\, north"));
    assert_eq!(
        ics_of(&app, &other.token, &path).await.0,
        404,
        "someone else's is 404"
    );
    app.patch(
        &u.token,
        &path,
        json!({"start": at(2, 12, 0), "end": at(2, 13, 0)}),
    )
    .await;
    app.delete(&u.token, &path).await;
    let (_, text) = ics_of(&app, &u.token, &path).await;
    assert!(
        text.contains("SEQUENCE:2") && text.contains("STATUS:CANCELLED"),
        "{text}"
    );
    if let Some(events) = parse_independently(&text) {
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, format!("{id}@booking"));
        assert_eq!(events[0].1, "2");
        assert_eq!(events[0].2, "CANCELLED");
        assert!(events[0].3.ends_with("+00:00"), "UTC: {}", events[0].3);
    }
    // JSON stays the default
    let j = app.get(&u.token, &path).await;
    assert!(header(&j, "content-type").starts_with("application/json"));
}

#[tokio::test]
async fn feeds_are_secret_urls_that_can_be_replaced_and_revoked() {
    let app = TestApp::spawn().await;
    let staff = app.user("+14155550310").await;
    let u = app.user("+14155550311").await;
    let other = app.user("+14155550312").await;
    let room = app.resource(json!({"owner_id": staff.id})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mine: Value = app
        .book(&u, &room, &at(2, 9, 0), &at(2, 10, 0))
        .await
        .json()
        .await
        .expect("b");
    let gone: Value = app
        .book(&u, &room, &at(2, 11, 0), &at(2, 12, 0))
        .await
        .json()
        .await
        .expect("b");
    app.delete(&u.token, &path_of(&gone)).await;
    let theirs: Value = app
        .book(&other, &room, &at(2, 13, 0), &at(2, 14, 0))
        .await
        .json()
        .await
        .expect("b");
    let post = |token: &str, path: &str| {
        app.client
            .post(app.url(path))
            .bearer_auth(token.to_string())
            .send()
    };
    let r = post(&u.token, "/v1/me/calendar-feed").await.expect("feed");
    assert_eq!(r.status(), 201);
    let url = r.json::<Value>().await.expect("json")["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        url.starts_with(&app.addr) && url.contains("/ical/") && url.ends_with(".ics"),
        "{url}"
    );
    let feed = app.client.get(&url).send().await.expect("feed");
    assert_eq!(feed.status(), 200, "no Authorization header needed");
    let text = feed.text().await.expect("text");
    assert!(text.contains(&format!("UID:{}@booking", mine["id"].as_str().expect("id"))));
    assert!(text.contains(&format!("UID:{}@booking", gone["id"].as_str().expect("id"))));
    assert!(text.contains("STATUS:CANCELLED"));
    assert!(
        !text.contains(theirs["id"].as_str().expect("id")),
        "only the user's own"
    );
    if let Some(events) = parse_independently(&text) {
        assert_eq!(events.len(), 2);
    }
    // a new URL replaces the old one; revoking ends it
    let url2 = post(&u.token, "/v1/me/calendar-feed")
        .await
        .expect("feed")
        .json::<Value>()
        .await
        .expect("json")["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_ne!(url, url2);
    assert_eq!(
        app.client.get(&url).send().await.expect("old").status(),
        404
    );
    assert_eq!(
        app.delete(&u.token, "/v1/me/calendar-feed").await.status(),
        204
    );
    assert_eq!(
        app.client
            .get(&url2)
            .send()
            .await
            .expect("revoked")
            .status(),
        404
    );
    assert_eq!(
        app.delete(&u.token, "/v1/me/calendar-feed").await.status(),
        404
    );
    for bad in ["/ical/nope.ics", "/ical/AAAA", "/ical/%2e%2e%2fv1%2fme.ics"] {
        assert_eq!(
            app.client
                .get(app.url(bad))
                .send()
                .await
                .expect("bad")
                .status(),
            404,
            "{bad}"
        );
    }
    // a resource's feed: its owner only, every booking on it
    assert_eq!(
        post(&u.token, &format!("/v1/resources/{room}/calendar-feed"))
            .await
            .expect("f")
            .status(),
        403
    );
    assert_eq!(
        post(
            &u.token,
            &format!("/v1/resources/{}/calendar-feed", uuid::Uuid::new_v4())
        )
        .await
        .expect("f")
        .status(),
        404
    );
    let r = post(&staff.token, &format!("/v1/resources/{room}/calendar-feed"))
        .await
        .expect("feed");
    assert_eq!(r.status(), 201);
    let url = r.json::<Value>().await.expect("json")["url"]
        .as_str()
        .expect("url")
        .to_string();
    let text = app
        .client
        .get(&url)
        .send()
        .await
        .expect("feed")
        .text()
        .await
        .expect("text");
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 3, "{text}");
    // the token is stored hashed
    let mut c = app.admin_conn().await;
    let token = url
        .rsplit('/')
        .next()
        .expect("file")
        .trim_end_matches(".ics")
        .to_string();
    let plain: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.calendar_feeds WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'")
        .bind(&token)
        .fetch_one(&mut c)
        .await
        .expect("count");
    assert_eq!(plain, 0);
    sqlx::Connection::close(c).await.expect("close");
}

#[tokio::test]
async fn the_booking_page_is_served_from_the_binary_with_a_strict_csp() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/")).send().await.expect("page");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/html"));
    let csp = header(&r, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().await.expect("html");
    assert!(html.contains("/app.js") && !html.contains("http://") && !html.contains("https://"));
    for (path, kind) in [("/app.js", "text/javascript"), ("/app.css", "text/css")] {
        let r = app.client.get(app.url(path)).send().await.expect("asset");
        assert_eq!(r.status(), 200);
        assert!(header(&r, "content-type").starts_with(kind));
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    }
}
