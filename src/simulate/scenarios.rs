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

use super::check::Ack;
use super::{Run, Scenario, SimulateArgs, VUser};
use crate::client::{Budget, Client, ClientError};

pub fn planned_requests(args: &SimulateArgs) -> u64 {
    match args.scenario {
        Scenario::Stampede | Scenario::Capacity => u64::from(args.users),
        Scenario::Random => u64::from(args.users) * u64::from(args.requests),
        // create + up to one reschedule + up to one cancel per round
        Scenario::Churn => u64::from(args.users) * u64::from(args.requests),
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
            }
        });
    }
    while tasks.join_next().await.is_some() {}
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
