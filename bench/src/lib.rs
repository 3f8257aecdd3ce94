//! `booking-bench`: the reproducible benchmark behind BENCHMARKS.md, a package
//! of its own beside the service (the service binary does not carry it). It
//! runs the release `booking` binary as the server under test.
//!
//! One run: a fresh private cluster in a temporary data dir (or
//! `DATABASE_URL`), the release server as a separate child process, then
//! - the database's ceiling: pgbench running exactly the SQL of one create
//!   request, through the serving login;
//! - the same over HTTP with an in-process closed-loop load generator, plus a
//!   hot-slot stampede, listing one's bookings and 7-day availability;
//! - both at two table sizes (default 10,000 and 1,000,000 existing
//!   bookings, bulk-loaded with SQL);
//! - the server's peak RSS, EXPLAIN (ANALYZE, BUFFERS) of the list and
//!   availability queries, a perf profile; then the report.

mod explain;
mod flows;
mod load;
mod pgbench;
mod pooler;
mod procstat;
mod profile;
mod report;
mod server;
mod setup;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveTime, SecondsFormat, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use booking::config::Config;
use booking::identity::jwt::Keys;
use booking::identity::Role;
use booking::startup::Backend;
use load::{Lat, MakeRequest};
use pgbench::ConnTarget;
use procstat::{CpuUsage, Monitor, Watch};
use report::{Kind, Quiet, Report, Row, Stage, Stampede};
use setup::{phone, user_id, Block, Ids, Layout, ResourceSpec, CREATE_RESOURCE};

// The command's help text is on `cli::Command::Bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Measured seconds per scenario and concurrency [default: 10; --quick: 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration_secs: Option<u64>,
    /// Unmeasured warm-up before each HTTP run, seconds [default: 2; --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup_secs: Option<u64>,
    /// Existing bookings in the first stage, all on the one resource the
    /// availability runs query [default: 10000; --quick: 2000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(200..=100_000))]
    pub small_rows: Option<u64>,
    /// Existing bookings in the second stage [default: 1000000; --quick: 50000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1_000..=20_000_000))]
    pub big_rows: Option<u64>,
    /// Concurrency levels (clients), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [8usize, 32])]
    pub clients: Vec<usize>,
    /// Users firing at one slot at once [default: 1000; --quick: 200].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=10_000))]
    pub stampede_users: Option<u64>,
    /// Runs of each create scenario, pgbench and API alternating; comparisons use the
    /// fastest of each [default: 2; --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub repeat: Option<u64>,
    /// Stampede rounds (a fresh slot and fresh users each) [default: 3; --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub stampede_rounds: Option<u64>,
    /// The report [default: BENCHMARKS.md; --quick: target/BENCHMARKS.quick.md].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// A short smoke run (small sizes, short runs); its report says so.
    #[arg(long)]
    pub quick: bool,
    /// Skip the perf profile run.
    #[arg(long)]
    pub no_profile: bool,
    /// Keep the temporary directory (cluster, server log, pgbench logs).
    #[arg(long)]
    pub keep: bool,
    /// Longest total wait for other builds/loads to finish before measuring anyway, seconds.
    #[arg(long, default_value_t = 600)]
    pub max_idle_wait_secs: u64,
}

/// The resolved settings of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub small_rows: u64,
    pub big_rows: u64,
    pub clients: Vec<usize>,
    pub stampede_users: u64,
    pub stampede_rounds: u64,
    pub repeat: usize,
    pub output: PathBuf,
    pub profile: bool,
    pub max_idle_wait: Duration,
}

impl Settings {
    fn from_args(a: &BenchArgs) -> anyhow::Result<Settings> {
        let q = a.quick;
        let pick =
            |v: Option<u64>, full: u64, quick: u64| v.unwrap_or(if q { quick } else { full });
        let mut clients: Vec<usize> = a.clients.clone();
        clients.sort_unstable();
        clients.dedup();
        if clients.is_empty() || clients.iter().any(|&c| c == 0 || c > 512) {
            bail!("--clients: each level must be 1..=512");
        }
        let small_rows = pick(a.small_rows, 10_000, 2_000);
        let big_rows = pick(a.big_rows, 1_000_000, 50_000);
        if big_rows <= small_rows {
            bail!("--big-rows must be larger than --small-rows");
        }
        Ok(Settings {
            quick: q,
            duration: Duration::from_secs(pick(a.duration_secs, 10, 3)),
            warmup: Duration::from_secs(pick(a.warmup_secs, 2, 1)),
            small_rows,
            big_rows,
            clients,
            stampede_users: pick(a.stampede_users, 1000, 200),
            stampede_rounds: pick(a.stampede_rounds, 3, 1),
            repeat: pick(a.repeat, 2, 1) as usize,
            output: a.output.clone().unwrap_or_else(|| {
                PathBuf::from(if q {
                    "target/BENCHMARKS.quick.md"
                } else {
                    "BENCHMARKS.md"
                })
            }),
            profile: !a.no_profile,
            max_idle_wait: Duration::from_secs(a.max_idle_wait_secs),
        })
    }
}

/// Users per client in a create run: client `c` books for users
/// `c, c + clients, c + 2 clients, ...` in turn.
const PER_CLIENT: u64 = 64;
/// Existing bookings per user in both stages (what one list page shows).
const BOOKINGS_PER_USER: u64 = 50;
/// Existing bookings per resource in the second stage's spread.
const BOOKINGS_PER_RESOURCE: u64 = 1000;
/// Users whose tokens the list runs cycle through.
const LIST_SAMPLE: u64 = 2000;
/// Availability: window and requested duration.
const AVAIL_DAYS: i64 = 7;
const AVAIL_MINUTES: i32 = 30;

pub async fn run(args: BenchArgs, mut config: Config) -> anyhow::Result<()> {
    let settings = Settings::from_args(&args)?;
    let started = Instant::now();
    let work = std::env::temp_dir().join(format!(
        "booking-bench-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&work)?;
    {
        use std::os::unix::fs::PermissionsExt;
        // the cluster may run as the `postgres` user: it must reach the data dir
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    }
    if config.database_url.is_none() {
        config.data_dir = work.join("data");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "bench: WARNING: this is a debug build; numbers are meaningless (use scripts/bench)"
        );
    }
    eprintln!("bench: work dir {}", work.display());
    eprintln!("bench: starting the database");
    let backend = Backend::open(&config).await?;
    // Ctrl-C / SIGTERM: dropping the run kills the server child; then the
    // cluster is stopped as on any other exit
    let result = tokio::select! {
        r = bench(&settings, &config, &backend, &work, started) => r,
        _ = booking::startup::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    let stopped = backend.shutdown().await;
    match &result {
        Ok(_) if !args.keep => {
            let _ = std::fs::remove_dir_all(&work);
        }
        _ => eprintln!("bench: kept {}", work.display()),
    }
    let report = result?;
    stopped?;
    if let Some(dir) = settings.output.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(&settings.output, report.render())
        .with_context(|| format!("cannot write {}", settings.output.display()))?;
    println!("{}", report.summary());
    println!("report written to {}", settings.output.display());
    Ok(())
}

/// Everything a phase needs.
struct Ctx<'a> {
    s: &'a Settings,
    config: &'a Config,
    jwt_secret: Vec<u8>,
    owner: PgConnection,
    keys: Keys,
    server: server::Server,
    login: ConnTarget,
    owner_tool: ConnTarget,
    work: PathBuf,
    watch: Watch,
    ids: Ids,
    t0: DateTime<Utc>,
    avail: Uuid,
    avail_users: Block,
    big_users: Option<Block>,
    idle_budget: Duration,
    report: Report,
}

fn tool_targets(config: &Config, backend: &Backend) -> anyhow::Result<(ConnTarget, ConnTarget)> {
    match (&backend.cluster, &config.database_url) {
        (Some(cluster), _) => {
            let socket = |o: &PgConnectOptions| -> anyhow::Result<(PathBuf, u16)> {
                Ok((
                    o.get_socket()
                        .context("the private cluster has no socket dir")?
                        .clone(),
                    o.get_port(),
                ))
            };
            let (dir, port) = socket(&backend.serve)?;
            let login = ConnTarget::Socket {
                dir: dir.clone(),
                port,
                user: booking::pg::LOGIN_ROLE.into(),
                database: booking::pg::APP_DATABASE.into(),
                password: cluster.secrets.login_password.clone(),
            };
            let owner = ConnTarget::Socket {
                dir,
                port,
                user: booking::pg::ADMIN_USER.into(),
                database: booking::pg::APP_DATABASE.into(),
                password: cluster.secrets.admin_password.clone(),
            };
            Ok((login, owner))
        }
        (None, Some(url)) => Ok((
            ConnTarget::Url(
                config
                    .serve_database_url
                    .clone()
                    .unwrap_or_else(|| url.clone()),
            ),
            ConnTarget::Url(url.clone()),
        )),
        (None, None) => bail!("no database"),
    }
}

async fn bench(
    s: &Settings,
    config: &Config,
    backend: &Backend,
    work: &Path,
    started: Instant,
) -> anyhow::Result<Report> {
    let owner_opts = backend
        .owner
        .clone()
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(3600));
    let mut owner = PgConnection::connect_with(&owner_opts).await?;
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut owner)
            .await?;
    if !superuser {
        bail!("the bench needs a superuser owner login (bulk load with session_replication_role, auto_explain): DATABASE_URL's login is not one");
    }
    let backend_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut owner)
        .await?;
    let postmaster = u32::try_from(backend_pid)
        .ok()
        .and_then(procstat::proc_stat)
        // a remote database's backend pid means nothing here
        .filter(|(comm, _, _)| comm == "postgres")
        .map(|(_, ppid, _)| ppid);
    let machine = report::Machine::gather(&mut owner).await?;
    let (login, owner_tool) = tool_targets(config, backend)?;
    for tool in ["pgbench", "psql"] {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            bail!("`{tool}` is not installed (apt-get install postgresql-client)");
        }
    }

    eprintln!("bench: starting the server (a child process)");
    let server = server::Server::start(config, work).await?;
    let watch = Watch {
        server: Some(server.pid),
        postmaster,
    };
    let t0 = (Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_time(NaiveTime::MIN)
        .and_utc();
    let command = std::env::var("BOOKING_BENCH_COMMAND").unwrap_or_else(|_| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        format!("booking {}", args.join(" "))
    });
    let mut report = Report::new(s.clone(), machine, command, server.pool_size);
    report.pgbench_script = pgbench::script();
    report.floor_script = pgbench::floor_script();
    let mut ctx = Ctx {
        s,
        config,
        jwt_secret: backend.jwt_secret.clone(),
        owner,
        keys: Keys::new(&backend.jwt_secret, &config.jwt_issuers),
        server,
        login,
        owner_tool,
        work: work.to_path_buf(),
        watch,
        ids: Ids::default(),
        t0,
        avail: Uuid::nil(),
        avail_users: Block { first: 0, count: 0 },
        big_users: None,
        idle_budget: s.max_idle_wait,
        report,
    };
    let result = ctx.all().await;
    let (peak, now) = ctx.server.rss_kib();
    ctx.report.rss_peak_kib = peak;
    ctx.report.rss_end_kib = now;
    let stopped = ctx.server.stop().await;
    result?;
    stopped?;
    ctx.owner.close().await?;
    ctx.report.elapsed = started.elapsed();
    Ok(ctx.report)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Ctx<'_> {
    async fn all(&mut self) -> anyhow::Result<()> {
        let s = self.s;
        // stage 1: the availability resource with `small_rows` bookings, one an
        // hour (30 minutes each), 50 per user
        eprintln!("bench: loading {} bookings on one resource", s.small_rows);
        let avail = setup::create_resources(
            &mut self.owner,
            &mut self.ids,
            1,
            ResourceSpec {
                slot_minutes: 15,
                min_duration_minutes: 15,
                buffer_minutes: 0,
            },
        )
        .await?;
        self.avail = avail.resource_ids()[0];
        self.avail_users = setup::create_users(
            &mut self.owner,
            &mut self.ids,
            (s.small_rows / BOOKINGS_PER_USER).max(1),
        )
        .await?;
        let t = Instant::now();
        setup::load_bookings(
            &mut self.owner,
            &Layout {
                resources: avail,
                users: self.avail_users,
                rows: s.small_rows,
                t0: self.t0,
                step_minutes: 60,
                duration_minutes: 30,
                buffer_minutes: 0,
            },
            "stage 1",
        )
        .await?;
        setup::settle(&mut self.owner).await?;
        setup::create_floor(&mut self.owner).await?;
        setup::fill_floor(&mut self.owner).await?;
        self.report.loads.push(format!(
            "{} bookings on one resource (one an hour, 30 min each; {} users × {}): {:.1} s incl. VACUUM ANALYZE",
            s.small_rows,
            self.avail_users.count,
            BOOKINGS_PER_USER,
            t.elapsed().as_secs_f64()
        ));
        self.stage(Stage::Small).await?;

        // stage 2: up to `big_rows`, spread over many resources and users
        let rows = s.big_rows - s.small_rows;
        let users = (rows / BOOKINGS_PER_USER).max(1);
        let resources = (rows / BOOKINGS_PER_RESOURCE).clamp(1, users);
        eprintln!("bench: loading {rows} more bookings ({resources} resources, {users} users)");
        let t = Instant::now();
        let res = setup::create_resources(
            &mut self.owner,
            &mut self.ids,
            resources,
            ResourceSpec {
                slot_minutes: 15,
                min_duration_minutes: 15,
                buffer_minutes: 15,
            },
        )
        .await?;
        let big = setup::create_users(&mut self.owner, &mut self.ids, users).await?;
        setup::load_bookings(
            &mut self.owner,
            &Layout {
                resources: res,
                users: big,
                rows,
                t0: self.t0,
                step_minutes: 60,
                duration_minutes: 30,
                buffer_minutes: 15,
            },
            "stage 2",
        )
        .await?;
        setup::settle(&mut self.owner).await?;
        let t_floor = Instant::now();
        let copied = setup::fill_floor(&mut self.owner).await?;
        self.report.loads.push(format!(
            "the floor's table filled with the same {copied} rows: {:.1} s",
            t_floor.elapsed().as_secs_f64()
        ));
        self.big_users = Some(big);
        self.report.loads.push(format!(
            "{rows} bookings over {resources} resources (buffer 15 min) and {users} users ({BOOKINGS_PER_USER} each): {:.1} s incl. VACUUM ANALYZE",
            t.elapsed().as_secs_f64()
        ));
        self.stage(Stage::Big).await?;
        self.explain().await?;
        self.citus().await;
        if s.profile {
            if profile::available() {
                if let Err(e) = self.profile().await {
                    eprintln!("bench: profile failed: {e:#}");
                    self.report.profile_note = Some(format!("The profile run failed: {e:#}"));
                }
            } else {
                self.report.profile_note = Some("perf is not installed: no profile".into());
            }
        }
        Ok(())
    }

    async fn stage(&mut self, stage: Stage) -> anyhow::Result<()> {
        let size = report::TableSize::of_bookings(&mut self.owner).await?;
        self.report.sizes.push((stage, size));
        let clients = self.s.clients.clone();
        // pgbench and the API alternate, so that each comparison is made
        // between runs close in time
        for &c in &clients {
            for run in 0..self.s.repeat {
                self.pgbench_create(stage, c, run, true).await?;
                self.pgbench_create(stage, c, run, false).await?;
                self.api_create(stage, c, false, run).await?;
            }
        }
        // scaling out the server on one database: N processes, then the
        // same through PgBouncer (transaction mode), at the most clients
        let c = self.s.clients.iter().copied().max().unwrap_or(32);
        for n in [2usize, 4] {
            self.api_create_servers(stage, c, n).await?;
        }
        self.api_create_pgbouncer(stage, c).await?;
        if stage == Stage::Small {
            self.cap_cost().await?;
        }
        if stage == Stage::Small {
            self.stampede().await?;
            self.flood().await?;
            self.flows().await?;
        }
        for &c in &clients {
            self.list(stage, c).await?;
        }
        for &c in &clients {
            self.availability(stage, c).await?;
        }
        Ok(())
    }

    fn token(&self, n: u64) -> anyhow::Result<String> {
        self.keys.mint(
            user_id(n),
            Role::Authenticated,
            Some(&phone(n)),
            None,
            4 * 3600,
        )
    }

    /// Wait (within the budget) until no foreign build runs and other
    /// processes use little CPU; say how quiet it was.
    async fn quiet(&mut self) -> Quiet {
        loop {
            let builds = procstat::foreign_builds();
            let m = Monitor::start(self.watch);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let u = tokio::task::spawn_blocking(move || m.finish())
                .await
                .unwrap_or_default();
            let other = u.other_pct();
            if (builds.is_empty() && other < 15.0) || self.idle_budget.is_zero() {
                if !builds.is_empty() || other >= 15.0 {
                    eprintln!("bench: measuring under load (waited long enough): {builds:?}, other processes {other:.0}% CPU");
                }
                return Quiet {
                    builds,
                    other_pct_before: other,
                };
            }
            eprintln!(
                "bench: waiting for a quiet machine: {builds:?}, other processes {other:.0}% CPU"
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
            self.idle_budget = self.idle_budget.saturating_sub(Duration::from_secs(6));
        }
    }

    /// Measure `drive` with the CPU monitor over the measured window only.
    async fn measured_http(
        &mut self,
        clients: usize,
        make: MakeRequest,
    ) -> anyhow::Result<(load::Observed, CpuUsage)> {
        let (warmup, measure, watch) = (self.s.warmup, self.s.duration, self.watch);
        let mon = tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let m = Monitor::start(watch);
            tokio::time::sleep(measure).await;
            tokio::task::spawn_blocking(move || m.finish())
                .await
                .unwrap_or_default()
        });
        let obs = load::drive(clients, warmup, measure, make).await;
        let cpu = mon.await?;
        Ok((obs, cpu))
    }

    async fn existing(&mut self) -> anyhow::Result<i64> {
        Ok(setup::count_bookings(&mut self.owner).await?)
    }

    async fn pgbench_create(
        &mut self,
        stage: Stage,
        c: usize,
        run_no: usize,
        floor: bool,
    ) -> anyhow::Result<()> {
        let existing = self.existing().await?;
        let users =
            setup::create_users(&mut self.owner, &mut self.ids, c as u64 * PER_CLIENT).await?;
        let res =
            setup::create_resources(&mut self.owner, &mut self.ids, c as u64, CREATE_RESOURCE)
                .await?;
        let quiet = self.quiet().await;
        eprintln!(
            "bench: {} pgbench {}, {c} clients",
            stage.label(self.s),
            if floor { "floor" } else { "create" }
        );
        let m = Monitor::start(self.watch);
        let run = pgbench::run(
            &self.login,
            &self.work,
            &format!("{}-{c}-{run_no}", stage.tag()),
            self.s.duration.as_secs(),
            &pgbench::Vars {
                clients: c,
                per: PER_CLIENT,
                ubase: users.first,
                rbase: res.first,
                t0: self.t0.timestamp(),
            },
            floor,
        )
        .await;
        let cpu = tokio::task::spawn_blocking(move || m.finish())
            .await
            .unwrap_or_default();
        let mut run = run?;
        let ids = res.resource_ids();
        let created = if floor {
            let n = setup::count_floor(&mut self.owner, &ids).await?;
            setup::purge_floor(&mut self.owner, &ids).await?;
            n
        } else {
            let n = setup::count_on(&mut self.owner, &ids).await?;
            setup::purge(&mut self.owner, &ids).await?;
            n
        };
        setup::settle(&mut self.owner).await?;
        let ok = run.processed.saturating_sub(run.failed);
        let sanity = if created as u64 == ok {
            format!("{created} bookings created = transactions")
        } else {
            format!("WARNING: {created} bookings created for {ok} transactions")
        };
        let lat = Lat::from_us(&mut run.lat_us);
        let row = Row {
            kind: if floor {
                Kind::PgbenchFloor
            } else {
                Kind::PgbenchCreate
            },
            stage,
            existing,
            clients: c,
            ok,
            statuses: format!("{} tx, {} failed", run.processed, run.failed),
            throughput: run.tps,
            lat,
            cpu,
            quiet,
            sanity,
            run: run_no,
            per_statement: run.per_statement.clone(),
        };
        eprintln!("bench:   {}", row.one_line());
        if !floor {
            self.report.pgbench_command = run.command.clone();
        }
        self.report.rows.push(row);
        Ok(())
    }

    /// Create on free slots over HTTP: client `w` books the next minute on
    /// its own resource, for the next of its users.
    async fn api_create(
        &mut self,
        stage: Stage,
        c: usize,
        under_perf: bool,
        run: usize,
    ) -> anyhow::Result<Option<(Row, profile::Recording)>> {
        let bases = vec![self.server.base.clone()];
        self.api_create_on(stage, c, under_perf, run, bases, Kind::ApiCreate)
            .await
    }

    /// The API create with `n` `booking serve` processes on the one database
    /// (this one and `n - 1` more), the clients spread over them.
    async fn api_create_servers(&mut self, stage: Stage, c: usize, n: usize) -> anyhow::Result<()> {
        let mut extra = Vec::new();
        for i in 1..n {
            extra.push(
                server::Server::start_named(self.config, &self.work, &format!("server-{i}"), &[])
                    .await?,
            );
        }
        let mut bases = vec![self.server.base.clone()];
        bases.extend(extra.iter().map(|s| s.base.clone()));
        let kind = if n == 2 {
            Kind::ApiCreate2
        } else {
            Kind::ApiCreate4
        };
        let result = self.api_create_on(stage, c, false, 0, bases, kind).await;
        for s in extra {
            s.stop().await?;
        }
        result?;
        Ok(())
    }

    /// The API create through PgBouncer in transaction mode (Debian's
    /// package, if installed): one more server, its requests served through
    /// the pooler (`BOOKING_DB_POOLER=transaction`).
    async fn api_create_pgbouncer(&mut self, stage: Stage, c: usize) -> anyhow::Result<()> {
        let Some(bouncer) = pooler::Bouncer::start(
            &self.login,
            &self.owner_tool,
            &self.jwt_secret,
            &self.work,
            self.server.pool_size,
        )
        .await?
        else {
            self.report.pgbouncer_note = Some(
                "PgBouncer is not installed here (apt-get install pgbouncer): no PgBouncer row"
                    .into(),
            );
            return Ok(());
        };
        let env = bouncer.server_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let srv =
            server::Server::start_named(self.config, &self.work, "server-pgbouncer", &env).await?;
        let result = self
            .api_create_on(
                stage,
                c,
                false,
                0,
                vec![srv.base.clone()],
                Kind::ApiCreateBouncer,
            )
            .await;
        srv.stop().await?;
        bouncer.stop().await;
        result?;
        Ok(())
    }

    async fn api_create_on(
        &mut self,
        stage: Stage,
        c: usize,
        under_perf: bool,
        run: usize,
        bases: Vec<String>,
        kind: Kind,
    ) -> anyhow::Result<Option<(Row, profile::Recording)>> {
        let existing = self.existing().await?;
        let users =
            setup::create_users(&mut self.owner, &mut self.ids, c as u64 * PER_CLIENT).await?;
        let res =
            setup::create_resources(&mut self.owner, &mut self.ids, c as u64, CREATE_RESOURCE)
                .await?;
        let tokens: Vec<String> = (0..users.count)
            .map(|i| self.token(users.nth(i)))
            .collect::<anyhow::Result<_>>()?;
        let tokens = Arc::new(tokens);
        let resources = Arc::new(res.resource_ids());
        let http = load::http_client(c)?;
        let urls: Vec<String> = bases.iter().map(|b| format!("{b}/v1/bookings")).collect();
        let t0 = self.t0;
        let make: MakeRequest = Arc::new(move |w, k| {
            let ui = w as u64 + c as u64 * (k % PER_CLIENT);
            let start = t0 + chrono::Duration::minutes(k as i64);
            let end = start + chrono::Duration::minutes(1);
            let body = format!(
                "{{\"resource_id\":\"{}\",\"start\":\"{}\",\"end\":\"{}\"}}",
                resources[w],
                rfc3339(start),
                rfc3339(end)
            );
            http.post(urls[w % urls.len()].as_str())
                .bearer_auth(&tokens[ui as usize])
                .header("content-type", "application/json")
                .body(body)
        });
        let quiet = self.quiet().await;
        eprintln!(
            "bench: {} {}, {c} clients{}",
            stage.label(self.s),
            kind.short(),
            if under_perf { " (under perf)" } else { "" }
        );
        let recording = if under_perf {
            let secs = self.s.warmup.as_secs_f64() + self.s.duration.as_secs_f64();
            Some(profile::start(&self.work, secs)?)
        } else {
            None
        };
        let (obs, cpu) = self.measured_http(c, make).await?;
        let ids = res.resource_ids();
        let created = setup::count_on(&mut self.owner, &ids).await?;
        setup::purge(&mut self.owner, &ids).await?;
        setup::settle(&mut self.owner).await?;
        let sanity = format!("{created} bookings created in all (warm-up included)");
        let mut row = Row::http(kind, stage, existing, c, 201, obs, cpu, quiet, sanity);
        row.run = run;
        eprintln!("bench:   {}", row.one_line());
        match recording {
            Some(r) => Ok(Some((row, r))),
            None => {
                self.report.rows.push(row);
                Ok(None)
            }
        }
    }

    /// `stampede_users` users POST the same slot at the same moment.
    async fn stampede(&mut self) -> anyhow::Result<()> {
        let n = self.s.stampede_users;
        let mut rounds = Vec::new();
        let mut all_lat = Vec::new();
        for round in 0..self.s.stampede_rounds {
            let users = setup::create_users(&mut self.owner, &mut self.ids, n).await?;
            let res = setup::create_resources(
                &mut self.owner,
                &mut self.ids,
                1,
                ResourceSpec {
                    slot_minutes: 15,
                    min_duration_minutes: 15,
                    buffer_minutes: 0,
                },
            )
            .await?;
            let rid = res.resource_ids()[0];
            let start = self.t0 + chrono::Duration::hours(36);
            let body = format!(
                "{{\"resource_id\":\"{rid}\",\"start\":\"{}\",\"end\":\"{}\"}}",
                rfc3339(start),
                rfc3339(start + chrono::Duration::hours(1))
            );
            let http = load::http_client(n as usize)?;
            load::warm_connections(&http, &self.server.base, n as usize).await;
            let quiet = self.quiet().await;
            eprintln!("bench: stampede round {}: {n} users on one slot", round + 1);
            let barrier = Arc::new(tokio::sync::Barrier::new(n as usize + 1));
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..n {
                let token = self.token(users.nth(i))?;
                let (http, barrier, body) = (http.clone(), barrier.clone(), body.clone());
                let url = format!("{}/v1/bookings", self.server.base);
                tasks.spawn(async move {
                    barrier.wait().await;
                    let t = Instant::now();
                    let status = match http
                        .post(url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            r.bytes().await.ok().map(|_| s)
                        }
                        Err(_) => None,
                    };
                    (t, Instant::now(), status)
                });
            }
            let m = Monitor::start(self.watch);
            barrier.wait().await;
            let mut obs = load::Observed::default();
            let (mut first, mut last) = (None::<Instant>, None::<Instant>);
            while let Some(r) = tasks.join_next().await {
                let (t, done, status) = r?;
                first = Some(first.map_or(t, |f| f.min(t)));
                last = Some(last.map_or(done, |l| l.max(done)));
                match status {
                    Some(s) => *obs.statuses.entry(s).or_default() += 1,
                    None => obs.transport_errors += 1,
                }
                obs.lat_us
                    .push(u32::try_from((done - t).as_micros()).unwrap_or(u32::MAX));
            }
            let cpu = tokio::task::spawn_blocking(move || m.finish())
                .await
                .unwrap_or_default();
            let total = match (first, last) {
                (Some(f), Some(l)) => l - f,
                _ => Duration::ZERO,
            };
            let created = setup::count_on(&mut self.owner, &[rid]).await?;
            all_lat.extend(obs.lat_us.iter().copied());
            let lat = Lat::from_us(&mut obs.lat_us);
            eprintln!(
                "bench:   {} in {:.0} ms, p50 {:.1} ms, p99 {:.1} ms; {created} booking in the database",
                obs.status_text(),
                total.as_secs_f64() * 1000.0,
                lat.p50,
                lat.p99
            );
            rounds.push(report::StampedeRound {
                users: n,
                total,
                lat,
                statuses: obs.status_text(),
                one_winner: obs.count(201) == 1 && created == 1,
                cpu,
                quiet,
            });
        }
        self.report.stampede = Some(Stampede {
            lat: Lat::from_us(&mut all_lat),
            rounds,
        });
        Ok(())
    }

    /// Users with bookings, and their tokens, for this stage.
    fn list_users(&self, stage: Stage) -> anyhow::Result<Vec<(u64, String)>> {
        let mut pool: Vec<u64> = (0..self.avail_users.count)
            .map(|i| self.avail_users.nth(i))
            .collect();
        if let (Stage::Big, Some(b)) = (stage, self.big_users) {
            pool.extend((0..b.count).map(|i| b.nth(i)));
        }
        let step = (pool.len() as u64 / LIST_SAMPLE).max(1) as usize;
        pool.into_iter()
            .step_by(step)
            .map(|n| Ok((n, self.token(n)?)))
            .collect()
    }

    async fn list(&mut self, stage: Stage, c: usize) -> anyhow::Result<()> {
        let existing = self.existing().await?;
        let users = Arc::new(self.list_users(stage)?);
        let http = load::http_client(c)?;
        let url = format!("{}/v1/bookings?limit=50", self.server.base);
        // what a page holds
        let probe: serde_json::Value = http
            .get(url.as_str())
            .bearer_auth(&users[0].1)
            .send()
            .await?
            .json()
            .await?;
        let items = probe["items"].as_array().map(|a| a.len()).unwrap_or(0);
        let n = users.len();
        let make: MakeRequest = Arc::new(move |w, k| {
            let i = (w + c * k as usize) % n;
            http.get(url.as_str()).bearer_auth(&users[i].1)
        });
        let quiet = self.quiet().await;
        eprintln!("bench: {} list, {c} clients", stage.label(self.s));
        let (obs, cpu) = self.measured_http(c, make).await?;
        let sanity = format!("{items} bookings per page; {n} users cycled");
        let row = Row::http(Kind::List, stage, existing, c, 200, obs, cpu, quiet, sanity);
        eprintln!("bench:   {}", row.one_line());
        self.report.rows.push(row);
        Ok(())
    }

    /// A 7-day window on the resource with `small_rows` bookings, somewhere
    /// in its booked span; slot `i` picks the day.
    fn avail_window(&self, i: u64) -> (DateTime<Utc>, DateTime<Utc>) {
        let span_days = self.s.small_rows / 24;
        let starts = span_days.saturating_sub(AVAIL_DAYS as u64).max(1);
        let from = self.t0 + chrono::Duration::days((i % starts) as i64);
        (from, from + chrono::Duration::days(AVAIL_DAYS))
    }

    async fn availability(&mut self, stage: Stage, c: usize) -> anyhow::Result<()> {
        let existing = self.existing().await?;
        let users: Vec<String> = (0..self.avail_users.count.min(LIST_SAMPLE))
            .map(|i| self.token(self.avail_users.nth(i)))
            .collect::<anyhow::Result<_>>()?;
        let base = format!(
            "{}/v1/resources/{}/availability",
            self.server.base, self.avail
        );
        let urls: Vec<String> = (0..512)
            .map(|i| {
                let (f, t) = self.avail_window(i);
                format!(
                    "{base}?from={}&to={}&duration_minutes={AVAIL_MINUTES}",
                    rfc3339(f),
                    rfc3339(t)
                )
            })
            .collect();
        let (users, urls) = (Arc::new(users), Arc::new(urls));
        let http = load::http_client(c)?;
        let probe: serde_json::Value = http
            .get(urls[1].as_str())
            .bearer_auth(&users[0])
            .send()
            .await?
            .json()
            .await?;
        let slots = probe["slots"].as_array().map(|a| a.len()).unwrap_or(0);
        let make: MakeRequest = {
            let (users, urls, http) = (users.clone(), urls.clone(), http.clone());
            Arc::new(move |w, k| {
                let i = w + c * k as usize;
                http.get(urls[i % urls.len()].as_str())
                    .bearer_auth(&users[i % users.len()])
            })
        };
        let quiet = self.quiet().await;
        eprintln!("bench: {} availability, {c} clients", stage.label(self.s));
        let (obs, cpu) = self.measured_http(c, make).await?;
        let sanity = format!(
            "{slots} free {AVAIL_MINUTES}-min slots per 7-day answer; {} bookings on the resource",
            self.s.small_rows
        );
        let row = Row::http(
            Kind::Availability,
            stage,
            existing,
            c,
            200,
            obs,
            cpu,
            quiet,
            sanity,
        );
        eprintln!("bench:   {}", row.one_line());
        self.report.rows.push(row);
        Ok(())
    }

    /// A bystander's creates alone, then while another user floods the most
    /// expensive availability answer allowed from 48 clients.
    async fn flood(&mut self) -> anyhow::Result<()> {
        const FLOODERS: usize = 48;
        let users = setup::create_users(&mut self.owner, &mut self.ids, 2).await?;
        let res =
            setup::create_resources(&mut self.owner, &mut self.ids, 2, CREATE_RESOURCE).await?;
        let ids = res.resource_ids();
        let (room, fine) = (ids[0], ids[1]);
        let bystander = Arc::new(self.token(users.nth(0))?);
        let flooder = Arc::new(self.token(users.nth(1))?);
        let http = load::http_client(FLOODERS + 1)?;
        let base = self.server.base.clone();
        let t0 = self.t0;
        let create: MakeRequest = {
            let (http, url, token) = (http.clone(), format!("{base}/v1/bookings"), bystander);
            // one counter over both runs: every create books the next free minute
            let next = Arc::new(std::sync::atomic::AtomicI64::new(0));
            Arc::new(move |_w, _k| {
                let o = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let start = t0 + chrono::Duration::minutes(2 * o);
                let end = start + chrono::Duration::minutes(1);
                http.post(url.as_str())
                    .bearer_auth(token.as_str())
                    .header("content-type", "application/json")
                    .body(format!(
                        "{{\"resource_id\":\"{room}\",\"start\":\"{}\",\"end\":\"{}\"}}",
                        rfc3339(start),
                        rfc3339(end)
                    ))
            })
        };
        let flood: MakeRequest = {
            let url = format!(
                "{base}/v1/resources/{fine}/availability?from={}&to={}&duration_minutes=1",
                rfc3339(t0),
                rfc3339(t0 + chrono::Duration::days(2))
            );
            Arc::new(move |_w, _k| http.get(url.as_str()).bearer_auth(flooder.as_str()))
        };
        let (warmup, measure) = (self.s.warmup, self.s.duration);
        let line = |label: &str, obs: &mut load::Observed, flood: Option<&load::Observed>| {
            let ok = obs.count(201);
            let lat = Lat::from_us(&mut obs.lat_us);
            format!(
                "| {label} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
                ok as f64 / obs.secs.max(1e-9),
                lat.p50,
                lat.p99,
                lat.max,
                flood.map(|f| f.status_text()).unwrap_or_else(|| "—".into())
            )
        };
        let _ = self.quiet().await;
        eprintln!("bench: bystander creates, alone");
        let mut alone = load::drive(1, warmup, measure, create.clone()).await;
        eprintln!(
            "bench: bystander creates while one user floods availability ({FLOODERS} clients)"
        );
        let flooding = tokio::spawn(load::drive(FLOODERS, warmup, measure, flood));
        let mut beside = load::drive(1, warmup, measure, create).await;
        let flooded = flooding.await?;
        let a = line("alone", &mut alone, None);
        let b = line("during the flood", &mut beside, Some(&flooded));
        eprintln!("bench:   {a}\nbench:   {b}");
        self.report.flood = vec![a, b];
        setup::purge(&mut self.owner, &ids).await?;
        Ok(())
    }

    /// One PostgreSQL vs Citus (a coordinator and two workers) on this
    /// machine: `scripts/citus-bench`, when Citus is installed or its source
    /// is in `vendor/citus`; its markdown goes into the report as it is.
    async fn citus(&mut self) {
        let root = std::env::var_os("BOOKING_BENCH_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let script = root.join("scripts/citus-bench");
        let installed = std::path::Path::new("/usr/lib/postgresql/15/lib/citus.so").exists();
        let source = root.join("vendor/citus/citus-13.2.2.tar.gz").exists();
        if !script.exists() || !(installed || source) {
            self.report.citus_section = Some(
                "### Distributed (Citus)\n\nNot measured: neither Citus nor its source (vendor/citus) is here.\n".into(),
            );
            return;
        }
        let _ = self.quiet().await;
        eprintln!("bench: single node vs Citus (scripts/citus-bench)");
        let bin =
            std::env::var_os("BOOKING_BIN").unwrap_or_else(|| "target/release/booking".into());
        let out = tokio::process::Command::new(&script)
            .env("BOOKING_BIN", bin)
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        self.report.citus_section = Some(match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => format!(
                "### Distributed (Citus)\n\n`scripts/citus-bench` failed ({}):\n\n```\n{}\n```\n",
                o.status,
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Err(e) => {
                format!("### Distributed (Citus)\n\n`scripts/citus-bench` did not run: {e}\n")
            }
        });
    }

    /// The cap's cost against the user's number of bookings: pgbench's create
    /// by users (one per client) who hold no booking, then by users who hold
    /// `CAP_HELD` active bookings each.
    async fn cap_cost(&mut self) -> anyhow::Result<()> {
        const CAP_HELD: u64 = 1000;
        let c = self.s.clients.iter().copied().max().unwrap_or(32);
        let mut tps = Vec::new();
        for held in [0, CAP_HELD] {
            let users = setup::create_users(&mut self.owner, &mut self.ids, c as u64).await?;
            let res =
                setup::create_resources(&mut self.owner, &mut self.ids, c as u64, CREATE_RESOURCE)
                    .await?;
            let mut purge = res.resource_ids();
            if held > 0 {
                let theirs = setup::create_resources(
                    &mut self.owner,
                    &mut self.ids,
                    c as u64,
                    CREATE_RESOURCE,
                )
                .await?;
                setup::load_bookings(
                    &mut self.owner,
                    &Layout {
                        resources: theirs,
                        users,
                        rows: c as u64 * held,
                        // far from the creates' minutes: no overlap with them
                        t0: self.t0 + chrono::Duration::days(3000),
                        step_minutes: 60,
                        duration_minutes: 30,
                        buffer_minutes: 0,
                    },
                    "cap",
                )
                .await?;
                purge.extend(theirs.resource_ids());
                setup::settle(&mut self.owner).await?;
            }
            let _ = self.quiet().await;
            eprintln!("bench: pgbench create by users holding {held} active bookings, {c} clients");
            let run = pgbench::run(
                &self.login,
                &self.work,
                &format!("cap-{held}"),
                self.s.duration.as_secs(),
                &pgbench::Vars {
                    clients: c,
                    per: 1,
                    ubase: users.first,
                    rbase: res.first,
                    t0: self.t0.timestamp(),
                },
                false,
            )
            .await?;
            let created = setup::count_on(&mut self.owner, &res.resource_ids()).await?;
            eprintln!("bench:   {:.0} tx/s, {created} bookings", run.tps);
            setup::purge(&mut self.owner, &purge).await?;
            setup::settle(&mut self.owner).await?;
            tps.push((held, run.tps, created as u64, run.processed));
        }
        self.report.cap_cost = tps;
        Ok(())
    }

    /// Creates/s over HTTP at `c` clients (the API create of the main
    /// table, unrecorded); with the number of bookings made (warm-up included).
    async fn create_rate(&mut self, c: usize) -> anyhow::Result<(f64, u64)> {
        let users =
            setup::create_users(&mut self.owner, &mut self.ids, c as u64 * PER_CLIENT).await?;
        let res =
            setup::create_resources(&mut self.owner, &mut self.ids, c as u64, CREATE_RESOURCE)
                .await?;
        let tokens: Arc<Vec<String>> = Arc::new(
            (0..users.count)
                .map(|i| self.token(users.nth(i)))
                .collect::<anyhow::Result<_>>()?,
        );
        let resources = Arc::new(res.resource_ids());
        let http = load::http_client(c)?;
        let url = format!("{}/v1/bookings", self.server.base);
        let t0 = self.t0;
        let make: MakeRequest = Arc::new(move |w, k| {
            let ui = w as u64 + c as u64 * (k % PER_CLIENT);
            let start = t0 + chrono::Duration::minutes(k as i64);
            http.post(url.as_str())
                .bearer_auth(&tokens[ui as usize])
                .header("content-type", "application/json")
                .body(format!(
                    "{{\"resource_id\":\"{}\",\"start\":\"{}\",\"end\":\"{}\"}}",
                    resources[w],
                    rfc3339(start),
                    rfc3339(start + chrono::Duration::minutes(1))
                ))
        });
        let _ = self.quiet().await;
        let obs = load::drive(c, self.s.warmup, self.s.duration, make).await;
        let ids = res.resource_ids();
        let created = setup::count_on(&mut self.owner, &ids).await? as u64;
        setup::purge(&mut self.owner, &ids).await?;
        setup::settle(&mut self.owner).await?;
        Ok((obs.count(201) as f64 / obs.secs.max(1e-9), created))
    }

    /// Hold then confirm, closed loop, `c` clients: bookings/s.
    async fn hold_confirm_rate(&mut self, c: usize) -> anyhow::Result<f64> {
        let users =
            setup::create_users(&mut self.owner, &mut self.ids, c as u64 * PER_CLIENT).await?;
        let res =
            setup::create_resources(&mut self.owner, &mut self.ids, c as u64, CREATE_RESOURCE)
                .await?;
        let tokens: Arc<Vec<String>> = Arc::new(
            (0..users.count)
                .map(|i| self.token(users.nth(i)))
                .collect::<anyhow::Result<_>>()?,
        );
        let resources = Arc::new(res.resource_ids());
        let http = load::http_client(c)?;
        let base = self.server.base.clone();
        let t0 = self.t0;
        let _ = self.quiet().await;
        let from = Instant::now() + self.s.warmup;
        let end = from + self.s.duration;
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..c {
            let (http, base, tokens, resources) = (
                http.clone(),
                base.clone(),
                tokens.clone(),
                resources.clone(),
            );
            tasks.spawn(async move {
                let mut done = 0u64;
                let mut k = 0u64;
                while Instant::now() < end {
                    let token = &tokens[(w as u64 + c as u64 * (k % PER_CLIENT)) as usize];
                    let start = t0 + chrono::Duration::minutes(k as i64);
                    k += 1;
                    let counted = Instant::now() >= from;
                    let held = http
                        .post(format!("{base}/v1/holds"))
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(format!(
                            "{{\"resource_id\":\"{}\",\"start\":\"{}\",\"end\":\"{}\"}}",
                            resources[w],
                            rfc3339(start),
                            rfc3339(start + chrono::Duration::minutes(1))
                        ))
                        .send()
                        .await;
                    let Ok(r) = held else { continue };
                    let Ok(v) = r.json::<serde_json::Value>().await else {
                        continue;
                    };
                    let Some(id) = v["id"].as_str() else { continue };
                    let ok = http
                        .post(format!("{base}/v1/holds/{id}/confirm"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .map(|r| r.status().as_u16() == 201)
                        .unwrap_or(false);
                    if ok && counted && Instant::now() <= end {
                        done += 1;
                    }
                }
                done
            });
        }
        let mut total = 0;
        while let Some(r) = tasks.join_next().await {
            total += r.unwrap_or(0);
        }
        let ids = res.resource_ids();
        setup::purge(&mut self.owner, &ids).await?;
        setup::settle(&mut self.owner).await?;
        Ok(total as f64 / self.s.duration.as_secs_f64().max(1e-9))
    }

    /// 7-day availability answers/s on the loaded resource at `c` clients.
    async fn avail_rate(&mut self, c: usize) -> anyhow::Result<f64> {
        let users: Arc<Vec<String>> = Arc::new(
            (0..self.avail_users.count.min(LIST_SAMPLE))
                .map(|i| self.token(self.avail_users.nth(i)))
                .collect::<anyhow::Result<_>>()?,
        );
        let base = format!(
            "{}/v1/resources/{}/availability",
            self.server.base, self.avail
        );
        let urls: Arc<Vec<String>> = Arc::new(
            (0..512)
                .map(|i| {
                    let (f, t) = self.avail_window(i);
                    format!(
                        "{base}?from={}&to={}&duration_minutes={AVAIL_MINUTES}",
                        rfc3339(f),
                        rfc3339(t)
                    )
                })
                .collect(),
        );
        let http = load::http_client(c)?;
        let make: MakeRequest = Arc::new(move |w, k| {
            let i = w + c * k as usize;
            http.get(urls[i % urls.len()].as_str())
                .bearer_auth(&users[i % users.len()])
        });
        let _ = self.quiet().await;
        let obs = load::drive(c, self.s.warmup, self.s.duration, make).await;
        Ok(obs.count(200) as f64 / obs.secs.max(1e-9))
    }

    /// The second wave's figures (see `flows.rs`).
    async fn flows(&mut self) -> anyhow::Result<()> {
        let c = self.s.clients.iter().copied().max().unwrap_or(32);
        let mut lines = Vec::new();

        eprintln!("bench: creates with no webhook endpoint, {c} clients");
        let (none, _) = self.create_rate(c).await?;
        // the outbox's own cost: an endpoint whose receiver never answers in
        // the window, so the worker has its few deliveries in flight and
        // spends nothing; every create writes its message
        let stalled = flows::Receiver::start_with_delay(Duration::from_secs(3600)).await?;
        sqlx::query("INSERT INTO booking.webhook_endpoints (url, secret) VALUES ($1, $2)")
            .bind(&stalled.url)
            .bind(format!("whsec_{}=", "A".repeat(43)))
            .execute(&mut self.owner)
            .await?;
        eprintln!("bench: creates with one subscribed endpoint, delivery stalled, {c} clients");
        let (written, _) = self.create_rate(c).await?;
        sqlx::query("DELETE FROM booking.webhook_endpoints")
            .execute(&mut self.owner)
            .await?;
        stalled.stop();
        let cost = 1.0 - written / none.max(1e-9);
        lines.push(format!(
            "| creates/s, {c} clients: no endpoint → one subscribed endpoint (the outbox's writes) | {none:.0} → {written:.0} | outbox cost {:.1} % (target ≤ 10 %: {}) |",
            cost * 100.0,
            if cost <= 0.10 { "met" } else { "missed" }
        ));
        let rx = flows::Receiver::start().await?;
        sqlx::query("INSERT INTO booking.webhook_endpoints (url, secret) VALUES ($1, $2)")
            .bind(&rx.url)
            .bind(format!("whsec_{}=", "A".repeat(43)))
            .execute(&mut self.owner)
            .await?;
        eprintln!("bench: creates with one subscribed endpoint, {c} clients");
        let (with, created) = self.create_rate(c).await?;
        let got = rx.wait_for(created, Duration::from_secs(180)).await;
        let (mps, lag50, lag99) = rx.summary();
        rx.stop();
        sqlx::query("DELETE FROM booking.webhook_endpoints")
            .execute(&mut self.owner)
            .await?;
        lines.push(format!(
            "| creates/s, {c} clients, while the same server delivers every message to a local receiver | {with:.0} | {:.2}× creates with no endpoint (delivery shares the 2 cores) |",
            with / none.max(1e-9)
        ));
        lines.push(format!(
            "| webhook delivery to a local receiver (while and after those creates) | {mps:.0} messages/s | {got} of {created} delivered; lag (event → received) p50 {lag50} ms, p99 {lag99} ms |"
        ));

        eprintln!("bench: hold + confirm, {c} clients");
        let hc = self.hold_confirm_rate(c).await?;
        lines.push(format!(
            "| bookings/s, {c} clients: plain create → hold then confirm (two requests) | {none:.0} → {hc:.0} | {:.2}× a plain create |",
            hc / none.max(1e-9)
        ));

        eprintln!("bench: 52-week series");
        let users = setup::create_users(&mut self.owner, &mut self.ids, 5).await?;
        let res =
            setup::create_resources(&mut self.owner, &mut self.ids, 5, CREATE_RESOURCE).await?;
        let http = load::http_client(1)?;
        let mut times = Vec::new();
        for (i, r) in res.resource_ids().iter().enumerate() {
            let token = self.token(users.nth(i as u64))?;
            let start = self.t0 + chrono::Duration::hours(9);
            let t = Instant::now();
            let resp = http
                .post(format!("{}/v1/series", self.server.base))
                .bearer_auth(&token)
                .json(&serde_json::json!({"resource_id": r, "start": rfc3339(start),
                    "end": rfc3339(start + chrono::Duration::hours(1)), "rrule": "FREQ=WEEKLY;COUNT=52"}))
                .send()
                .await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if resp.status().as_u16() != 201 {
                bail!(
                    "a 52-week series answered {}: {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                );
            }
            times.push(ms);
        }
        times.sort_by(f64::total_cmp);
        setup::purge(&mut self.owner, &res.resource_ids()).await?;
        lines.push(format!(
            "| a 52-week series (52 bookings, one request, all or nothing) | median {:.1} ms | of 5 (min {:.1}, max {:.1}) |",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        ));

        let ac = 8.min(c);
        eprintln!("bench: availability without and with 50 closures, {ac} clients");
        let plain = self.avail_rate(ac).await?;
        sqlx::query(
            "INSERT INTO booking.closures (resource_id, period, reason)              SELECT $1, tstzrange($2::timestamptz + make_interval(hours => 30 * g) + interval '30 minutes',                                   $2::timestamptz + make_interval(hours => 30 * g) + interval '45 minutes'), 'bench'                FROM generate_series(0, 49) g",
        )
        .bind(self.avail)
        .bind(self.t0)
        .execute(&mut self.owner)
        .await?;
        let closed = self.avail_rate(ac).await?;
        sqlx::query("DELETE FROM booking.closures WHERE reason = 'bench'")
            .execute(&mut self.owner)
            .await?;
        lines.push(format!(
            "| 7-day availability answers/s, {ac} clients: no closures → 50 closures on the resource | {plain:.0} → {closed:.0} | {:.2}× |",
            closed / plain.max(1e-9)
        ));
        for l in &lines {
            eprintln!("bench:   {l}");
        }
        self.report.flows = lines;
        Ok(())
    }

    async fn explain(&mut self) -> anyhow::Result<()> {
        eprintln!("bench: EXPLAIN (ANALYZE, BUFFERS)");
        let big = self.big_users.unwrap_or(self.avail_users);
        let n = big.nth(big.count / 2);
        self.report.explain_list = explain::list(&self.owner_tool, user_id(n), &phone(n)).await?;
        let (from, to) = self.avail_window(100);
        let u = self.avail_users.nth(0);
        self.report.explain_availability = explain::availability(
            &self.owner_tool,
            self.avail,
            from,
            to,
            AVAIL_MINUTES,
            user_id(u),
            &phone(u),
        )
        .await?;
        Ok(())
    }

    async fn profile(&mut self) -> anyhow::Result<()> {
        let c = self.s.clients.iter().copied().max().unwrap_or(32);
        if let Some((row, rec)) = self.api_create(Stage::Big, c, true, 0).await? {
            self.report.profile = Some(rec.finish(self.watch).await?);
            self.report.profile_row = Some(row);
        }
        Ok(())
    }
}
