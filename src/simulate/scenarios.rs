//! The four scenarios. Each request is timed and its status recorded; every
//! 201 (and later 200 for a reschedule or cancel) updates what the run
//! believes the database holds, for the invariant check.

use chrono::{DateTime, NaiveTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::check::{Ack, Kind};
use super::{Run, Scenario, SimulateArgs, VUser};
use crate::client::{Budget, Client, ClientError};

pub fn planned_requests(args: &SimulateArgs) -> u64 {
    match args.scenario {
        Scenario::Stampede | Scenario::Capacity => u64::from(args.users),
        Scenario::Random => u64::from(args.users) * u64::from(args.requests),
        // create + up to one reschedule + up to one cancel per round
        Scenario::Churn => u64::from(args.users) * u64::from(args.requests),
        // hold + confirm or release per round
        Scenario::Holds => u64::from(args.users) * u64::from(args.requests) * 2,
    }
}

fn at(run: &Run, minutes: i64) -> DateTime<Utc> {
    run.day.and_time(NaiveTime::MIN).and_utc() + chrono::Duration::minutes(minutes)
}

fn parse_booking(v: &Value) -> Option<(Uuid, DateTime<Utc>, DateTime<Utc>)> {
    Some((
        Uuid::parse_str(v["id"].as_str()?).ok()?,
        DateTime::parse_from_rfc3339(v["start"].as_str()?)
            .ok()?
            .with_timezone(&Utc),
        DateTime::parse_from_rfc3339(v["end"].as_str()?)
            .ok()?
            .with_timezone(&Utc),
    ))
}

/// One create, recorded.
async fn create(
    run: &Run,
    idx: usize,
    user: &VUser,
    resource: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    let body =
        json!({"resource_id": resource, "start": start.to_rfc3339(), "end": end.to_rfc3339()});
    let t = Instant::now();
    let resp = run
        .http
        .post(format!("{}/v1/bookings", run.target(idx)))
        .bearer_auth(&user.token)
        .json(&body)
        .send()
        .await;
    match resp {
        Err(_) => run.record(None, t.elapsed()),
        Ok(r) => {
            let status = r.status().as_u16();
            let shed = status == 503 && r.headers().contains_key("retry-after");
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if shed {
                run.record_unavailable(t.elapsed());
            } else {
                run.record(Some(status), t.elapsed());
            }
            if status == 201 {
                if let Some((id, s, e)) = parse_booking(&v) {
                    run.ack(
                        id,
                        Ack {
                            resource_id: resource,
                            user_id: user.id,
                            start: s,
                            end: e,
                            cancelled: false,
                            kind: Kind::Booking,
                        },
                    );
                }
            }
        }
    }
}

pub async fn execute(args: &SimulateArgs, run: Arc<Run>, users: &[VUser], resources: &[Uuid]) {
    let limit = args.concurrency.unwrap_or(users.len()).max(1);
    let sem = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, user) in users.iter().enumerate() {
        let (run, user, resources, sem, args) = (
            run.clone(),
            user.clone(),
            resources.to_vec(),
            sem.clone(),
            args.clone(),
        );
        tasks.spawn(async move {
            let mut rng =
                StdRng::seed_from_u64(args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            match args.scenario {
                Scenario::Stampede | Scenario::Capacity => {
                    let _p = sem.acquire().await;
                    create(&run, i, &user, resources[0], at(&run, 600), at(&run, 660)).await;
                }
                Scenario::Random => {
                    for r in 0..args.requests as usize {
                        let resource = resources[rng.gen_range(0..resources.len())];
                        let start = rng.gen_range(32..80) * 15; // 08:00..20:00
                        let len = rng.gen_range(1..=8) * 15;
                        let _p = sem.acquire().await;
                        create(
                            &run,
                            i + r,
                            &user,
                            resource,
                            at(&run, start),
                            at(&run, start + len),
                        )
                        .await;
                    }
                }
                Scenario::Churn => {
                    churn(&run, i, &user, &resources, &mut rng, &sem, args.requests).await
                }
                Scenario::Holds => holds(&run, i, &user, &resources, &mut rng, &sem, &args).await,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    if args.scenario == Scenario::Holds {
        after_expiry(args, &run, users).await;
    }
}

/// POST and record; the status and body.
async fn send(run: &Run, req: reqwest::RequestBuilder) -> Option<(u16, Value)> {
    let t = Instant::now();
    match req.send().await {
        Err(_) => {
            run.record(None, t.elapsed());
            None
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let shed = status == 503 && r.headers().contains_key("retry-after");
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if shed {
                run.record_unavailable(t.elapsed());
            } else {
                run.record(Some(status), t.elapsed());
            }
            Some((status, v))
        }
    }
}

/// Hold a 30-minute slot, then confirm (60 %), release (20 %) or abandon it.
async fn holds(
    run: &Run,
    i: usize,
    user: &VUser,
    resources: &[Uuid],
    rng: &mut StdRng,
    sem: &tokio::sync::Semaphore,
    args: &SimulateArgs,
) {
    for r in 0..args.requests as usize {
        let _p = sem.acquire().await;
        let resource = resources[rng.gen_range(0..resources.len())];
        let start = rng.gen_range(32..80) * 15;
        let base = run.target(i + r);
        let body = json!({"resource_id": resource, "start": at(run, start).to_rfc3339(),
                          "end": at(run, start + 30).to_rfc3339(), "expires_in_seconds": args.hold_seconds});
        let req = run
            .http
            .post(format!("{base}/v1/holds"))
            .bearer_auth(&user.token)
            .json(&body);
        let Some((201, v)) = send(run, req).await else {
            continue;
        };
        let Some((id, s, e)) = parse_booking(&v) else {
            continue;
        };
        run.ack(
            id,
            Ack {
                resource_id: resource,
                user_id: user.id,
                start: s,
                end: e,
                cancelled: false,
                kind: Kind::Hold,
            },
        );
        match rng.gen_range(0..10) {
            0..=5 => {
                let req = run
                    .http
                    .post(format!("{base}/v1/holds/{id}/confirm"))
                    .bearer_auth(&user.token)
                    .header("idempotency-key", format!("confirm-{id}"))
                    .json(&json!({}));
                if let Some((201, _)) = send(run, req).await {
                    run.set_kind(id, Kind::Booking);
                }
            }
            6 | 7 => {
                let req = run
                    .http
                    .delete(format!("{base}/v1/holds/{id}"))
                    .bearer_auth(&user.token);
                if let Some((204, _)) = send(run, req).await {
                    run.set_kind(id, Kind::Released);
                }
            }
            _ => run.progress.inc(1), // abandoned: it expires
        }
    }
}

/// Once every abandoned hold has expired, other users book those slots: an
/// expired hold never blocks (whether or not the sweeper has run yet).
async fn after_expiry(args: &SimulateArgs, run: &Run, users: &[VUser]) {
    let abandoned: Vec<(Uuid, Ack)> = {
        let o = run.observed.lock().unwrap_or_else(|p| p.into_inner());
        o.acks
            .iter()
            .filter(|(_, a)| a.kind == Kind::Hold)
            .map(|(k, a)| (*k, a.clone()))
            .collect()
    };
    if abandoned.is_empty() {
        return;
    }
    tokio::time::sleep(Duration::from_secs(args.hold_seconds as u64 + 1)).await;
    for (n, (_, a)) in abandoned.iter().enumerate() {
        let user = users
            .iter()
            .find(|u| u.id != a.user_id)
            .unwrap_or(&users[0]);
        create(run, n, user, a.resource_id, a.start, a.end).await;
    }
}

fn status_of(r: &Result<crate::db::bookings::Booking, ClientError>) -> Option<u16> {
    match r {
        Ok(_) => Some(200),
        Err(ClientError::Api { status, .. }) => Some(*status),
        Err(_) => None,
    }
}

/// Create, then perhaps reschedule, then perhaps cancel: through the retrying
/// client, so a timed-out request is retried with its Idempotency-Key and can
/// never book twice.
async fn churn(
    run: &Run,
    i: usize,
    user: &VUser,
    resources: &[Uuid],
    rng: &mut StdRng,
    sem: &tokio::sync::Semaphore,
    rounds: u32,
) {
    let mut client = Client::new(run.target(i), &user.token).with_http(run.http.clone());
    client.budget = Budget {
        max_attempts: 6,
        max_total: Duration::from_secs(60),
        max_wait: Duration::from_secs(2),
        timeout: Duration::from_millis(1500),
    };
    for round in 0..rounds as usize {
        let _p = sem.acquire().await;
        let resource = resources[rng.gen_range(0..resources.len())];
        let start = rng.gen_range(32..80) * 15;
        let len = rng.gen_range(1..=4) * 15;
        let t = Instant::now();
        let created = client
            .create_booking(
                resource,
                &at(run, start).to_rfc3339(),
                &at(run, start + len).to_rfc3339(),
                None,
            )
            .await;
        run.record(
            status_of(&created).map(|s| if s == 200 { 201 } else { s }),
            t.elapsed(),
        );
        let Ok(b) = created else { continue };
        run.ack(
            b.id,
            Ack {
                resource_id: resource,
                user_id: user.id,
                start: b.start,
                end: b.end,
                cancelled: false,
                kind: Kind::Booking,
            },
        );
        match rng.gen_range(0..3) {
            0 => {
                let ns = rng.gen_range(32..80) * 15;
                let t = Instant::now();
                let moved = client
                    .reschedule(
                        b.id,
                        &at(run, ns).to_rfc3339(),
                        &at(run, ns + len).to_rfc3339(),
                        Some(b.version),
                    )
                    .await;
                run.record(status_of(&moved), t.elapsed());
                if let Ok(m) = moved {
                    run.move_ack(m.id, m.start, m.end);
                }
            }
            1 => {
                let t = Instant::now();
                let cancelled = client.cancel(b.id).await;
                run.record(status_of(&cancelled), t.elapsed());
                if cancelled.is_ok() {
                    run.cancel_ack(b.id);
                }
            }
            _ => {}
        }
        let _ = round;
    }
}
