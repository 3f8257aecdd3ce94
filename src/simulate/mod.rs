//! `booking simulate`: many concurrent virtual users against one or more
//! running servers (or one started in-process), through the real HTTP API,
//! then an independent check of the invariants in SQL.

pub mod check;
mod report;
mod scenarios;

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::config::Config;
use crate::identity::jwt::Keys;
use crate::identity::Role;
use crate::startup::{Application, Backend};
use check::Ack;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N users fire at one slot at once.
    Stampede,
    /// Users book random, overlapping periods of random lengths on a few resources.
    Random,
    /// Create, reschedule and cancel mixed, retrying timed-out requests with their Idempotency-Key.
    Churn,
    /// A resource with N seats under M > N concurrent users.
    Capacity,
    /// Users hold slots on few resources, then confirm, release or abandon
    /// them; once the abandoned holds expire (`--hold-seconds`, default 30,
    /// so the run waits that long), others book those slots.
    Holds,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of a running server (repeatable: several processes sharing one database).
    /// None: a server is started in-process on the configured database.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    #[arg(long, value_enum, default_value = "stampede")]
    pub scenario: Scenario,
    /// Virtual users.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// Requests per user (random, churn).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub requests: u32,
    /// Requests in flight at most (default: one per user).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Resources (random, churn).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub resources: u32,
    /// Seats (capacity).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub seats: i32,
    /// How long a hold lasts (holds), 30-3600 s.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(30..=3600))]
    pub hold_seconds: i64,
    /// Random seed (periods, operations).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// One virtual user.
#[derive(Debug, Clone)]
pub struct VUser {
    pub id: Uuid,
    pub token: String,
}

/// What the run observed.
#[derive(Default)]
pub struct Observed {
    pub statuses: HashMap<u16, u64>,
    pub latencies: Vec<Duration>,
    /// Requests that got no HTTP answer at all (after retries).
    pub transport_errors: u64,
    /// 503 answers that carried `Retry-After` (the database was down or the
    /// server shed load): honest answers, reported apart from errors.
    pub unavailable: u64,
    pub acks: HashMap<Uuid, Ack>,
}

/// Shared state of a run.
pub struct Run {
    pub targets: Vec<String>,
    pub http: reqwest::Client,
    pub observed: Mutex<Observed>,
    pub progress: indicatif::ProgressBar,
    /// The day the run books on (far from other runs).
    pub day: chrono::NaiveDate,
}

impl Run {
    pub fn target(&self, i: usize) -> &str {
        &self.targets[i % self.targets.len()]
    }

    pub fn record(&self, status: Option<u16>, latency: Duration) {
        let mut o = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match status {
            Some(s) => *o.statuses.entry(s).or_default() += 1,
            None => o.transport_errors += 1,
        }
        o.latencies.push(latency);
        drop(o);
        self.progress.inc(1);
    }

    /// A 503 with `Retry-After`: the server said honestly that it cannot
    /// answer now (nothing was written).
    pub fn record_unavailable(&self, latency: Duration) {
        let mut o = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        o.unavailable += 1;
        o.latencies.push(latency);
        drop(o);
        self.progress.inc(1);
    }

    pub fn ack(&self, id: Uuid, ack: Ack) {
        self.observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acks
            .insert(id, ack);
    }

    /// A hold's acknowledgement changes kind (confirmed into a booking, released).
    pub fn set_kind(&self, id: Uuid, kind: check::Kind) {
        if let Some(a) = self
            .observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acks
            .get_mut(&id)
        {
            a.kind = kind;
        }
    }

    pub fn cancel_ack(&self, id: Uuid) {
        if let Some(a) = self
            .observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acks
            .get_mut(&id)
        {
            a.cancelled = true;
        }
    }

    pub fn move_ack(
        &self,
        id: Uuid,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) {
        if let Some(a) = self
            .observed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acks
            .get_mut(&id)
        {
            a.start = start;
            a.end = end;
        }
    }
}

pub async fn run(args: SimulateArgs, config: Config) -> anyhow::Result<()> {
    let summary = run_summary(args, config).await?;
    if !summary.ok {
        bail!("invariants violated or unexplained 5xx: see the report above");
    }
    Ok(())
}

/// What a run came to, for callers that look closer (tests).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Every invariant held, no 5xx but 503 + `Retry-After`, every request answered.
    pub ok: bool,
    /// 503 answers with `Retry-After`.
    pub unavailable: u64,
    /// Bookings acknowledged with 201.
    pub acknowledged: usize,
}

/// Run and report, without failing on a broken invariant: the summary says.
pub async fn run_summary(args: SimulateArgs, mut config: Config) -> anyhow::Result<Summary> {
    let backend = Backend::open(&config).await?;
    let result = drive(&args, &mut config, &backend).await;
    backend.shutdown().await?;
    result
}

async fn drive(
    args: &SimulateArgs,
    config: &mut Config,
    backend: &Backend,
) -> anyhow::Result<Summary> {
    let mut local = None;
    let targets = if args.targets.is_empty() {
        config.addr = "127.0.0.1:0".parse()?;
        config.rate_limits = false;
        config.db_pool_size = config.db_pool_size.max(16);
        let app = Application::build(config, backend.serve.clone(), &backend.jwt_secret).await?;
        let url = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        local = Some((tx, task));
        vec![url]
    } else {
        args.targets
            .iter()
            .map(|t| t.trim_end_matches('/').to_string())
            .collect()
    };
    let keys = Keys::new(&backend.jwt_secret, &config.jwt_issuers);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.users as usize)
        .timeout(Duration::from_secs(30))
        .build()?;
    let service = keys.mint(Uuid::nil(), Role::Service, None, None, 3600)?;
    // a random day 30-329 days ahead: inside the default 365-day window, apart from other runs
    let offset_days = 30 + i64::from(rand::random::<u16>() % 300);
    let day = (chrono::Utc::now() + chrono::Duration::days(offset_days)).date_naive();

    let resources = make_resources(&http, &targets[0], &service, args).await?;
    let users = make_users(&http, &targets[0], &service, &keys, args.users).await?;
    let total = scenarios::planned_requests(args);
    let progress = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let p = indicatif::ProgressBar::new(total);
        p.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {pos}/{len} {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        p.set_message(format!("{:?}", args.scenario).to_lowercase());
        p
    };
    let run = Arc::new(Run {
        targets: targets.clone(),
        http,
        observed: Mutex::new(Observed::default()),
        progress,
        day,
    });
    let started = Instant::now();
    scenarios::execute(args, run.clone(), &users, &resources).await;
    let elapsed = started.elapsed();
    run.progress.finish_and_clear();

    // the database may be restarting right now (a fault run): wait for it
    let mut attempts = 0;
    let mut conn = loop {
        match PgConnection::connect_with(&backend.owner).await {
            Ok(c) => break c,
            Err(e) if attempts < 120 => {
                attempts += 1;
                tracing::debug!(error = %e, "invariant check: the database is not reachable yet");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("connect for the invariant check"),
        }
    };
    let observed = std::mem::take(&mut *run.observed.lock().unwrap_or_else(|p| p.into_inner()));
    // a node of a distributed database may still be coming back: the check
    // is retried (on a new connection) for up to a minute before it counts
    let mut tries = 0;
    let violations = loop {
        match check::verify(&mut conn, &resources, &observed.acks).await {
            Ok(v) => break v,
            Err(e) if tries < 60 => {
                tries += 1;
                tracing::debug!(error = %e, "invariant check failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Ok(c) = PgConnection::connect_with(&backend.owner).await {
                    conn = c;
                }
            }
            Err(e) => return Err(e).context("the invariant check"),
        }
    };
    conn.close().await?;
    if let Some((tx, task)) = local {
        let _ = tx.send(());
        let _ = task.await;
    }
    let ok = report::print(args, &targets, &observed, elapsed, &violations);
    Ok(Summary {
        ok,
        unavailable: observed.unavailable,
        acknowledged: observed.acks.len(),
    })
}

async fn post_json(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    // the set-up's writes honour 503 + Retry-After, as a client should (on a
    // distributed database concurrent writes of reference tables, such as
    // many new users at once, can meet a distributed deadlock)
    let mut tries = 0;
    loop {
        let r = http
            .post(url.as_str())
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        if status == 503 && tries < 10 {
            tries += 1;
            let wait = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .min(5);
            tokio::time::sleep(std::time::Duration::from_millis(
                wait * 1000 / 2 + 50 * tries,
            ))
            .await;
            continue;
        }
        return Ok((status, r.json().await.unwrap_or(Value::Null)));
    }
}

async fn make_resources(
    http: &reqwest::Client,
    base: &str,
    service: &str,
    args: &SimulateArgs,
) -> anyhow::Result<Vec<Uuid>> {
    let (count, capacity) = match args.scenario {
        Scenario::Stampede => (1, 1),
        Scenario::Capacity => (1, args.seats),
        Scenario::Random | Scenario::Churn | Scenario::Holds => (args.resources, 1),
    };
    let mut out = Vec::new();
    for i in 0..count {
        let body = json!({"name": format!("sim {:?} {i}", args.scenario), "timezone": "UTC", "capacity": capacity});
        let (status, v) =
            post_json(http, format!("{base}/v1/admin/resources"), service, body).await?;
        if status != 201 {
            bail!("creating a resource answered {status}: {v}");
        }
        out.push(Uuid::parse_str(v["id"].as_str().unwrap_or_default())?);
    }
    Ok(out)
}

async fn make_users(
    http: &reqwest::Client,
    base: &str,
    service: &str,
    keys: &Keys,
    n: u32,
) -> anyhow::Result<Vec<VUser>> {
    // a random exchange per run keeps runs' users apart; 415-XXX-NNNN are valid US numbers
    let exchange = 200 + rand::random::<u16>() % 800;
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, url, service, sem) = (
            http.clone(),
            format!("{base}/v1/admin/users"),
            service.to_string(),
            sem.clone(),
        );
        let phone = format!("+1415{exchange:03}{i:04}");
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let (status, v) = post_json(&http, url, &service, json!({ "phone": phone })).await?;
            if status != 200 && status != 201 {
                bail!("creating user {phone} answered {status}: {v}");
            }
            Ok::<(Uuid, String), anyhow::Error>((
                Uuid::parse_str(v["id"].as_str().unwrap_or_default())?,
                phone,
            ))
        });
    }
    let mut users = Vec::with_capacity(n as usize);
    while let Some(r) = tasks.join_next().await {
        let (id, phone) = r??;
        users.push(VUser {
            id,
            token: keys.mint(id, Role::Authenticated, Some(&phone), None, 3600)?,
        });
    }
    Ok(users)
}
