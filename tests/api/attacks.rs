//! The direct-SQL door, tried as an attacker would: user A, holding role
//! `authenticated` with A's own claims (what psql, PostgREST and supabase-js
//! give a signed-in user), tries every way to break a rule or touch user B's
//! rows; `anon` and `service_role` try what they should not be able to. Each
//! attempt must be refused or provably harmless, and an independent check
//! over the whole database afterwards finds no rule broken.
//!
//! Also the first finding of the hardening issue over HTTP: a note-only PATCH
//! used to strip a booking's buffer.

use crate::helpers::door;
use crate::helpers::rules::{booked, pin, t};
use crate::helpers::{TestApp, TestUser};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Run `sql` in a fresh transaction of A's (or anyone's) door and return the
/// error text, or "ok" when the statement was accepted (then rolled back).
async fn attempt(conn: &mut PgConnection, role: &str, user: Option<Uuid>, sql: &str) -> String {
    let mut tx = door(conn, role, user).await;
    let r = sqlx::raw_sql(sql).execute(&mut *tx).await;
    let _ = tx.rollback().await;
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

/// A write function's outcome, called through A's door and committed.
async fn call(conn: &mut PgConnection, user: Uuid, sql: &str) -> Value {
    let mut tx = door(conn, "authenticated", Some(user)).await;
    let v: Value = sqlx::query_scalar(sql)
        .fetch_one(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.commit().await.expect("commit");
    v
}

fn refused(what: &str, err: &str) {
    assert!(
        err.contains("permission denied") || err.contains("does not exist"),
        "{what}: expected a refusal, got: {err}"
    );
}

async fn booking_id(app: &TestApp, u: &TestUser, room: &str, s: &str, e: &str) -> Uuid {
    let b = booked(app, u, room, s, e).await;
    Uuid::parse_str(b["id"].as_str().expect("id")).expect("uuid")
}

#[tokio::test]
async fn a_note_only_patch_keeps_the_buffer() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let (alice, bob) = (
        app.user("+14155550900").await,
        app.user("+14155550901").await,
    );
    let room = app.resource(json!({"buffer_minutes": 30})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let id = booking_id(
        &app,
        &alice,
        &room,
        "2027-06-03T10:00:00Z",
        "2027-06-03T11:00:00Z",
    )
    .await;
    let bob_late = app
        .book(&bob, &room, "2027-06-03T11:00:00Z", "2027-06-03T12:00:00Z")
        .await;
    assert_eq!(bob_late.status(), 409, "inside Alice's buffer");
    let r = app
        .patch(
            &alice.token,
            &format!("/v1/bookings/{id}"),
            json!({"start": "2027-06-03T10:00:00Z", "end": "2027-06-03T11:00:00Z", "note": "window seat"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let bob_again = app
        .book(&bob, &room, "2027-06-03T11:00:00Z", "2027-06-03T12:00:00Z")
        .await;
    assert_eq!(bob_again.status(), 409, "the buffer survives a note change");
    let mut admin = app.admin_conn().await;
    let (blocked_end,): (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT upper(blocked) FROM booking.bookings WHERE id = $1")
            .bind(id)
            .fetch_one(&mut admin)
            .await
            .expect("blocked");
    assert_eq!(blocked_end, t("2027-06-03T11:30:00Z"));
    admin.close().await.expect("close");
}

#[tokio::test]
async fn user_a_through_the_direct_sql_door_cannot_break_a_rule_or_touch_b() {
    let app = TestApp::spawn_with(&[("BOOKING_MAX_ACTIVE_BOOKINGS", "3")]).await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let (a, b) = (
        app.user("+14155550910").await,
        app.user("+14155550911").await,
    );
    let room = app
        .resource(json!({
            "buffer_minutes": 30, "slot_minutes": 30, "min_notice_minutes": 60,
            "max_advance_days": 30,
            "opening_hours": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]],
                              "wed": [["09:00", "17:00"]], "thu": [["09:00", "17:00"]],
                              "fri": [["09:00", "17:00"]]}
        }))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // 2027-06-02 is a Wednesday
    let a_booking = booking_id(
        &app,
        &a,
        &room,
        "2027-06-02T09:00:00Z",
        "2027-06-02T10:00:00Z",
    )
    .await;
    let b_booking = booking_id(
        &app,
        &b,
        &room,
        "2027-06-02T13:00:00Z",
        "2027-06-02T14:00:00Z",
    )
    .await;
    let mut c = app.login_conn().await;
    let auth = "authenticated";
    let (ua, ub) = (Some(a.id), Some(b.id));

    // --- tables: no direct write of any kind, on A's rows or B's ---
    for sql in [
        format!("INSERT INTO booking.bookings (resource_id, user_id, period, blocked) VALUES ('{room}', '{}', tstzrange('2027-06-02 03:00+00', '2027-06-02 03:07+00'), 'empty')", a.id),
        format!("UPDATE booking.bookings SET blocked = 'empty' WHERE id = '{a_booking}'"),
        format!("UPDATE booking.bookings SET period = tstzrange('2027-06-02 02:00+00', '2027-06-02 05:00+00') WHERE id = '{a_booking}'"),
        format!("UPDATE booking.bookings SET user_id = '{}' WHERE id = '{a_booking}'", b.id),
        format!("UPDATE booking.bookings SET seat = 2 WHERE id = '{a_booking}'"),
        format!("UPDATE booking.bookings SET status = 'cancelled' WHERE id = '{b_booking}'"),
        format!("UPDATE booking.bookings SET note = 'x', version = 1 WHERE id = '{a_booking}'"),
        format!("DELETE FROM booking.bookings WHERE id = '{a_booking}'"),
        "TRUNCATE booking.bookings".to_string(),
        format!("INSERT INTO booking.booking_events (booking_id, action, actor_id, new_period) VALUES ('{b_booking}', 'cancelled', '{}', tstzrange(now(), now() + interval '1 hour'))", a.id),
        format!("UPDATE booking.booking_events SET action = 'cancelled' WHERE booking_id = '{a_booking}'"),
        format!("DELETE FROM booking.booking_events WHERE booking_id = '{a_booking}'"),
        "UPDATE booking.settings SET max_active_bookings = 1000000, clock_offset = '-10 years'".to_string(),
        "SELECT * FROM booking.settings".to_string(),
        "UPDATE booking.resources SET buffer_minutes = 0".to_string(),
        format!("INSERT INTO booking.users (id, phone) VALUES ('{}', '+14155550999')", Uuid::new_v4()),
        format!("UPDATE booking.users SET phone = '+14155550998' WHERE id = '{}'", a.id),
        "SELECT * FROM booking.schema_migrations".to_string(),
        "UPDATE booking.schema_migrations SET checksum = 'x'".to_string(),
        "SELECT * FROM booking.otp_codes".to_string(),
        "SELECT * FROM booking.server_keys".to_string(),
        "SELECT * FROM booking.auth_sessions".to_string(),
    ] {
        refused(&sql, &attempt(&mut c, auth, ua, &sql).await);
    }

    // --- functions: the old signatures with a caller-supplied clock are gone;
    // internals are not executable ---
    for sql in [
        format!("SELECT to_jsonb(r) FROM booking.create_booking('{room}', '2027-06-02 10:30+00', '2027-06-02 11:30+00', NULL, '2020-01-01') r"),
        format!("SELECT to_jsonb(r) FROM booking.reschedule_booking('{a_booking}', '2027-06-02 10:30+00', '2027-06-02 11:30+00', false, NULL, NULL, '2020-01-01') r"),
        format!("SELECT * FROM booking.availability('{room}', '2027-06-02', '2027-06-03', 60, '2020-01-01')"),
        "SELECT booking.clock()".to_string(),
        format!("SELECT booking.ensure_user('{}')", b.id),
        format!("SELECT booking.seats_in_use_beyond('{room}', 1)"),
        format!("SELECT booking.slot_problem(r, now(), now(), now()) FROM booking.resources r WHERE id = '{room}'"),
    ] {
        refused(&sql, &attempt(&mut c, auth, ua, &sql).await);
    }

    // --- the write functions apply every rule, against the database clock ---
    let create = |s: &str, e: &str| {
        format!("SELECT to_jsonb(r) FROM booking.create_booking('{room}', '{s}', '{e}') r")
    };
    for (s, e, field) in [
        ("2027-06-02T10:10:00Z", "2027-06-02T11:10:00Z", "start"), // off the grid
        ("2027-06-02T18:00:00Z", "2027-06-02T19:00:00Z", "start"), // closed
        ("2027-06-05T10:00:00Z", "2027-06-05T11:00:00Z", "start"), // Saturday: closed
        ("2027-05-31T10:00:00Z", "2027-05-31T11:00:00Z", "start"), // in the past
        ("2027-06-01T06:30:00Z", "2027-06-01T07:00:00Z", "start"), // inside the notice
        ("2027-07-30T10:00:00Z", "2027-07-30T11:00:00Z", "start"), // beyond the advance window
        ("2027-06-02T11:00:00Z", "2027-06-02T10:00:00Z", "end"),   // backwards
    ] {
        let v = call(&mut c, a.id, &create(s, e)).await;
        assert_eq!(v["outcome"], "invalid", "{s}..{e}: {v}");
        assert_eq!(v["field"], field, "{s}..{e}: {v}");
    }
    // inside B's buffer (B holds 13:00-14:00 + 30 min)
    let v = call(
        &mut c,
        a.id,
        &create("2027-06-02T14:00:00Z", "2027-06-02T14:30:00Z"),
    )
    .await;
    assert_eq!(v["outcome"], "slot_taken", "{v}");
    // a control character in the note
    let v = call(
        &mut c,
        a.id,
        &format!("SELECT to_jsonb(r) FROM booking.create_booking('{room}', '2027-06-03 10:00+00', '2027-06-03 11:00+00', E'a\\x01b') r"),
    )
    .await;
    assert_eq!(v["field"], "note", "{v}");

    // --- the cap: A holds 1, may reach 3, not 4 ---
    for day in ["03", "04"] {
        let v = call(
            &mut c,
            a.id,
            &create(
                &format!("2027-06-{day}T09:00:00Z"),
                &format!("2027-06-{day}T10:00:00Z"),
            ),
        )
        .await;
        assert_eq!(v["outcome"], "created", "{v}");
    }
    let v = call(
        &mut c,
        a.id,
        &create("2027-06-07T09:00:00Z", "2027-06-07T10:00:00Z"),
    )
    .await;
    assert_eq!(v["field"], "active_bookings", "{v}");

    // --- B's rows: invisible, and no function touches them ---
    for sql in [
        format!("SELECT to_jsonb(r) FROM booking.cancel_booking('{b_booking}') r"),
        format!("SELECT to_jsonb(r) FROM booking.reschedule_booking('{b_booking}', '2027-06-02 15:00+00', '2027-06-02 16:00+00') r"),
    ] {
        let v = call(&mut c, a.id, &sql).await;
        assert_eq!(v["outcome"], "not_found", "{sql}: {v}");
    }
    let mut tx = door(&mut c, auth, ua).await;
    let seen: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM booking.bookings WHERE user_id <> $1) \
              + (SELECT count(*) FROM booking.booking_events e JOIN booking.bookings b ON b.id = e.booking_id WHERE b.user_id <> $1) \
              + (SELECT count(*) FROM booking.users WHERE id <> $1)",
    )
    .bind(a.id)
    .fetch_one(&mut *tx)
    .await
    .expect("count");
    assert_eq!(seen, 0, "A sees nothing of B's");
    tx.rollback().await.expect("rollback");

    // --- a booking that has started does not move (and so cannot escape the cap) ---
    app.set_clock(t("2027-06-02T09:30:00Z")).await;
    let v = call(
        &mut c,
        a.id,
        &format!("SELECT to_jsonb(r) FROM booking.reschedule_booking('{a_booking}', '2027-06-09 09:00+00', '2027-06-09 10:00+00') r"),
    )
    .await;
    assert_eq!(v["outcome"], "invalid", "{v}");
    let v = call(
        &mut c,
        a.id,
        &format!("SELECT to_jsonb(r) FROM booking.reschedule_booking('{a_booking}', '2027-06-02 09:00+00', '2027-06-02 10:00+00', true, 'running late') r"),
    )
    .await;
    assert_eq!(v["outcome"], "updated", "a note may still change: {v}");

    // --- anon: nothing at all ---
    for sql in [
        "SELECT * FROM booking.bookings".to_string(),
        "SELECT * FROM booking.users".to_string(),
        "SELECT * FROM booking.resources".to_string(),
        format!(
            "SELECT to_jsonb(r) FROM booking.create_booking('{room}', '2027-06-03 13:00+00', '2027-06-03 14:00+00') r"
        ),
        format!("SELECT to_jsonb(r) FROM booking.cancel_booking('{b_booking}') r"),
        "SELECT booking.me()".to_string(),
        format!("SELECT * FROM booking.availability('{room}', '2027-06-02', '2027-06-03', 60)"),
    ] {
        refused(&sql, &attempt(&mut c, "anon", ub, &sql).await);
    }
    // --- service_role: administration, but history and migrations stay put ---
    for sql in [
        format!("UPDATE booking.booking_events SET action = 'cancelled' WHERE booking_id = '{b_booking}'"),
        format!("DELETE FROM booking.booking_events WHERE booking_id = '{b_booking}'"),
        "UPDATE booking.schema_migrations SET checksum = 'x'".to_string(),
        "DELETE FROM booking.schema_migrations".to_string(),
        format!("UPDATE booking.bookings SET blocked = 'empty' WHERE id = '{b_booking}'"),
        format!("SELECT to_jsonb(r) FROM booking.create_booking('{room}', '2027-06-03 13:00+00', '2027-06-03 14:00+00') r"),
    ] {
        refused(&sql, &attempt(&mut c, "service_role", None, &sql).await);
    }
    c.close().await.expect("close");

    // --- even the schema owner cannot rewrite history ---
    let mut admin = app.admin_conn().await;
    let err = sqlx::query("UPDATE booking.booking_events SET action = 'cancelled'")
        .execute(&mut admin)
        .await
        .expect_err("history is append-only");
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("TRUNCATE booking.booking_events CASCADE")
        .execute(&mut admin)
        .await
        .expect_err("no truncate");
    assert!(err.to_string().contains("append-only"), "{err}");

    // --- the independent check: every rule holds over the whole database ---
    let broken: Vec<String> = sqlx::query_scalar(
        "SELECT 'overlap ' || x.id || ' ' || y.id FROM booking.bookings x JOIN booking.bookings y \
           ON x.resource_id = y.resource_id AND x.seat = y.seat AND x.id < y.id AND x.blocked && y.blocked \
          WHERE x.status = 'confirmed' AND y.status = 'confirmed' \
         UNION ALL \
         SELECT 'user overlap ' || x.id FROM booking.bookings x JOIN booking.bookings y \
           ON x.user_id = y.user_id AND x.id < y.id AND x.period && y.period \
          WHERE x.status = 'confirmed' AND y.status = 'confirmed' \
         UNION ALL \
         SELECT 'blocked ' || id FROM booking.bookings b \
          WHERE b.blocked <> tstzrange(lower(b.period), upper(b.period) + make_interval(mins => b.buffer_minutes), '[)') \
             OR b.buffer_minutes <> (SELECT buffer_minutes FROM booking.resources r WHERE r.id = b.resource_id) \
         UNION ALL \
         SELECT 'rule ' || b.id || ' ' || booking.slot_problem(r, lower(b.period), upper(b.period), '2027-06-01T06:08:00Z')::text \
           FROM booking.bookings b JOIN booking.resources r ON r.id = b.resource_id \
          WHERE booking.slot_problem(r, lower(b.period), upper(b.period), '2027-06-01T06:08:00Z') IS NOT NULL \
         UNION ALL \
         SELECT 'cap ' || user_id FROM booking.bookings WHERE status = 'confirmed' \
          GROUP BY user_id HAVING count(*) > 3 \
         UNION ALL \
         SELECT 'history ' || b.id FROM booking.bookings b \
          WHERE NOT EXISTS (SELECT 1 FROM booking.booking_events e WHERE e.booking_id = b.id AND e.action = 'created')",
    )
    .fetch_all(&mut admin)
    .await
    .expect("check");
    assert!(broken.is_empty(), "{broken:?}");
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE user_id = $1), count(*) FILTER (WHERE user_id = $2) FROM booking.bookings",
    )
    .bind(a.id)
    .bind(b.id)
    .fetch_one(&mut admin)
    .await
    .expect("counts");
    assert_eq!(counts, (3, 1), "exactly the bookings the rules allowed");
    admin.close().await.expect("close");
}

/// From the security review of the direct-SQL door: a clock frozen by a long
/// transaction, the cap under REPEATABLE READ, locks on someone else's
/// booking, functions executable by roles not meant to, drawn history ids,
/// self-made idempotency records, display names past the rules.
#[tokio::test]
async fn the_reviews_findings_stay_closed() {
    let app = TestApp::spawn().await;
    pin(&app, "2027-06-01T06:07:30Z").await;
    let (a, b) = (
        app.user("+14155550920").await,
        app.user("+14155550921").await,
    );
    let room = app.room().await;
    let b_booking = booking_id(
        &app,
        &b,
        &room,
        "2027-06-02T13:00:00Z",
        "2027-06-02T14:00:00Z",
    )
    .await;
    let mut c = app.login_conn().await;

    // a transaction held open does not hold the clock: 0.7 s before 10:00,
    // a one-second wait inside the transaction, then 10:00 is in the past
    app.set_clock(t("2027-06-01T09:59:59.300Z")).await;
    let mut tx = door(&mut c, "authenticated", Some(a.id)).await;
    sqlx::query("SELECT pg_sleep(1.0)")
        .execute(&mut *tx)
        .await
        .expect("sleep");
    let v: Value = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(r) FROM booking.create_booking('{room}', '2027-06-01 10:00+00', '2027-06-01 11:00+00') r"
    ))
    .fetch_one(&mut *tx)
    .await
    .expect("create");
    tx.rollback().await.expect("rollback");
    assert_eq!(v["outcome"], "invalid", "{v}");
    assert_eq!(v["field"], "start", "{v}");
    pin(&app, "2027-06-01T06:07:30Z").await;

    // REPEATABLE READ would let the cap's count miss concurrent creates
    let mut tx = c.begin().await.expect("begin");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .expect("rr");
    sqlx::query("SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)")
        .bind(json!({"sub": a.id, "role": "authenticated"}).to_string())
        .execute(&mut *tx)
        .await
        .expect("scope");
    let err = sqlx::query(&format!(
        "SELECT to_jsonb(r) FROM booking.create_booking('{room}', '2027-06-03 10:00+00', '2027-06-03 11:00+00') r"
    ))
    .execute(&mut *tx)
    .await
    .expect_err("refused under REPEATABLE READ");
    assert!(err.to_string().contains("READ COMMITTED"), "{err}");
    tx.rollback().await.expect("rollback");

    // A calling cancel on B's booking takes no lock on it: B still cancels at once
    let mut tx = door(&mut c, "authenticated", Some(a.id)).await;
    let v: Value = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(r) FROM booking.cancel_booking('{b_booking}') r"
    ))
    .fetch_one(&mut *tx)
    .await
    .expect("cancel fn");
    assert_eq!(v["outcome"], "not_found");
    let v: Value = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(r) FROM booking.reschedule_booking('{b_booking}', '2027-06-02 15:00+00', '2027-06-02 16:00+00') r"
    ))
    .fetch_one(&mut *tx)
    .await
    .expect("reschedule fn");
    assert_eq!(v["outcome"], "not_found");
    let started = std::time::Instant::now();
    let r = app
        .delete(&b.token, &format!("/v1/bookings/{b_booking}"))
        .await;
    assert_eq!(r.status(), 200, "B cancels while A's transaction is open");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    tx.rollback().await.expect("rollback");

    // every function of the schema: executable exactly by whom it is meant for
    let mut admin = app.admin_conn().await;
    let grants: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "SELECT p.proname::text, has_function_privilege('anon', p.oid, 'EXECUTE'), \
                has_function_privilege('authenticated', p.oid, 'EXECUTE'), \
                has_function_privilege('service_role', p.oid, 'EXECUTE') \
           FROM pg_proc p WHERE p.pronamespace = 'booking'::regnamespace ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .expect("grants");
    let user_fns = [
        "availability",
        "booking_json",
        "calendar_feed",
        "calendar_feed_exists",
        "create_calendar_feed",
        "revoke_calendar_feed",
        "cancel_booking",
        "cancel_series",
        "confirm_hold",
        "create_booking",
        "create_hold",
        "create_series",
        "decide_booking",
        "release_hold",
        "me",
        "remember_response",
        "reschedule_booking",
        "schema_version",
        "set_display_name",
    ];
    let service_fns = [
        "add_closure",
        "availability",
        "booking_json",
        "cancel_booking",
        "cancel_series",
        "confirm_hold",
        "decide_booking",
        "expire_due",
        "release_hold",
        "remove_closure",
        "reschedule_booking",
        "schema_version",
        "seats_in_use_beyond",
        "webhook_backlog",
        "webhook_claim",
        "webhook_prune",
        "webhook_purge_endpoint",
        "webhook_resend",
        "webhook_settle",
        "webhook_settle_batch",
    ];
    for (name, anon, user, service) in &grants {
        // anon: the schema version, and a calendar feed by its token's hash
        // (the token is the credential: calendar apps send no header)
        let anon_fns = ["schema_version", "calendar_feed", "calendar_feed_exists"];
        assert_eq!(*anon, anon_fns.contains(&name.as_str()), "anon on {name}");
        assert_eq!(
            *user,
            user_fns.contains(&name.as_str()),
            "authenticated on {name}"
        );
        assert_eq!(
            *service,
            service_fns.contains(&name.as_str()),
            "service_role on {name}"
        );
    }
    admin.close().await.expect("close");

    for sql in [
        "SELECT nextval('booking.booking_events_id_seq')".to_string(),
        format!("UPDATE booking.users SET display_name = '<script>' WHERE id = '{}'", a.id),
        format!("INSERT INTO booking.idempotency_keys (user_id, key, fingerprint, response_status, response_body) VALUES ('{}', 'k', 'f', 200, 'x')", a.id),
    ] {
        refused(&sql, &attempt(&mut c, "authenticated", Some(a.id), &sql).await);
    }
    for bad in ["<script>", "a\u{85}b", "   "] {
        let err = attempt(
            &mut c,
            "authenticated",
            Some(a.id),
            &format!("SELECT booking.set_display_name('{bad}')"),
        )
        .await;
        assert!(err.contains("display_name"), "{bad:?}: {err}");
    }
    let err = attempt(
        &mut c,
        "authenticated",
        Some(a.id),
        "SELECT booking.remember_response('k', 'f', 200, 'x', '{\"set-cookie\": \"sid=1\"}')",
    )
    .await;
    assert!(err.contains("not a response"), "{err}");
    let v = call(
        &mut c,
        a.id,
        &format!("SELECT to_jsonb(r) FROM booking.create_booking('{room}', '2027-06-03 10:00+00', '2027-06-03 11:00+00', E'a\\u0085b') r"),
    )
    .await;
    assert_eq!(
        v["field"], "note",
        "C1 controls are control characters: {v}"
    );
    c.close().await.expect("close");
}

/// A phone claimed by a user another issuer provisioned cannot be used to
/// sign in here: that issuer vouched for it, not our code.
#[tokio::test]
async fn our_phone_sign_in_never_reaches_a_user_another_issuer_provisioned() {
    let app = TestApp::spawn().await;
    let mut c = app.login_conn().await;
    let mut tx = c.begin().await.expect("begin");
    let foreign = Uuid::new_v4();
    sqlx::query("SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)")
        .bind(json!({"sub": foreign, "role": "authenticated", "iss": "https://elsewhere.example/auth/v1", "phone": "14155550930"}).to_string())
        .execute(&mut *tx)
        .await
        .expect("scope");
    let me: Value = sqlx::query_scalar("SELECT booking.me()")
        .fetch_one(&mut *tx)
        .await
        .expect("me");
    tx.commit().await.expect("commit");
    assert_eq!(me["phone"], "+14155550930");
    c.close().await.expect("close");
    let sent = app
        .client
        .post(app.url("/v1/auth/otp"))
        .json(&json!({"phone": "+14155550930"}))
        .send()
        .await
        .expect("otp");
    let code = sent.json::<Value>().await.expect("json")["dev_code"]
        .as_str()
        .expect("echo mode")
        .to_string();
    let r = app
        .client
        .post(app.url("/v1/auth/verify"))
        .json(&json!({"phone": "+14155550930", "code": code}))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), 401);
}
