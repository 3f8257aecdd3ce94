//! BENCHMARKS.md: machine, command, the measured table, the comparisons the
//! issue asks for, the targets (met or missed, and for a miss the evidence
//! gathered in the same run), plans and profile.

use sqlx::PgConnection;
use std::fmt::Write;
use std::time::Duration;

use super::load::{Lat, Observed};
use super::procstat::CpuUsage;
use super::profile::Profile;
use super::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Small,
    Big,
}

impl Stage {
    pub fn rows(&self, s: &Settings) -> u64 {
        match self {
            Stage::Small => s.small_rows,
            Stage::Big => s.big_rows,
        }
    }
    pub fn label(&self, s: &Settings) -> String {
        human(self.rows(s))
    }
    pub fn tag(&self) -> &'static str {
        match self {
            Stage::Small => "small",
            Stage::Big => "big",
        }
    }
}

/// 10000 -> "10k", 1000000 -> "1M".
pub fn human(n: u64) -> String {
    if n >= 1_000_000 && n % 100_000 == 0 {
        let m = n as f64 / 1e6;
        format!("{}M", trim(m))
    } else if n >= 1_000 && n % 100 == 0 {
        format!("{}k", trim(n as f64 / 1e3))
    } else {
        n.to_string()
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PgbenchCreate,
    ApiCreate,
    List,
    Availability,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::PgbenchCreate => "create, pgbench (DB ceiling)",
            Kind::ApiCreate => "create, API (POST /v1/bookings)",
            Kind::List => "list own, API (GET /v1/bookings?limit=50)",
            Kind::Availability => "availability 7 d, API",
        }
    }
    fn short(&self) -> &'static str {
        match self {
            Kind::PgbenchCreate => "pgbench create",
            Kind::ApiCreate => "API create",
            Kind::List => "API list",
            Kind::Availability => "API availability",
        }
    }
}

/// How quiet the machine was just before a measurement.
#[derive(Debug, Clone, Default)]
pub struct Quiet {
    pub builds: Vec<String>,
    pub other_pct_before: f64,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub kind: Kind,
    pub stage: Stage,
    pub existing: i64,
    pub clients: usize,
    pub ok: u64,
    pub statuses: String,
    /// Successful requests (transactions) per second.
    pub throughput: f64,
    pub lat: Lat,
    pub cpu: CpuUsage,
    pub quiet: Quiet,
    pub sanity: String,
    /// Which repetition (create runs are repeated; see `--repeat`).
    pub run: usize,
    /// pgbench's `-r` block (pgbench rows only).
    pub per_statement: String,
}

impl Row {
    #[allow(clippy::too_many_arguments)]
    pub fn http(
        kind: Kind,
        stage: Stage,
        existing: i64,
        clients: usize,
        expected: u16,
        mut obs: Observed,
        cpu: CpuUsage,
        quiet: Quiet,
        sanity: String,
    ) -> Row {
        let ok = obs.count(expected);
        Row {
            kind,
            stage,
            existing,
            clients,
            ok,
            statuses: obs.status_text(),
            throughput: ok as f64 / obs.secs.max(1e-9),
            lat: Lat::from_us(&mut obs.lat_us),
            cpu,
            quiet,
            sanity,
            run: 0,
            per_statement: String::new(),
        }
    }

    pub fn under_load(&self) -> bool {
        !self.quiet.builds.is_empty() || self.cpu.other_pct() > 10.0
    }

    pub fn one_line(&self) -> String {
        format!(
            "{:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({}); CPU: PostgreSQL {:.0}%, server {:.0}%, load generator {:.0}%, other {:.0}%",
            self.throughput,
            self.lat.p50,
            self.lat.p99,
            self.statuses,
            self.cpu.pg_pct(),
            self.cpu.server_pct(),
            self.cpu.loadgen_pct(),
            self.cpu.other_pct()
        )
    }

    /// CPU milliseconds per successful request: (PostgreSQL, server, load generator).
    pub fn cpu_per_req(&self) -> (f64, f64, f64) {
        let n = (self.ok as f64).max(1.0);
        (
            1000.0 * self.cpu.pg / n,
            1000.0 * self.cpu.server / n,
            1000.0 * self.cpu.loadgen() / n,
        )
    }
}

#[derive(Debug, Clone)]
pub struct StampedeRound {
    pub users: u64,
    pub total: Duration,
    pub lat: Lat,
    pub statuses: String,
    pub one_winner: bool,
    pub cpu: CpuUsage,
    pub quiet: Quiet,
}

#[derive(Debug, Clone)]
pub struct Stampede {
    pub lat: Lat,
    pub rounds: Vec<StampedeRound>,
}

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub nproc: usize,
    pub mem: String,
    pub cpu: String,
    pub kernel: String,
    pub pg_version: String,
    pub pg_settings: Vec<(String, String)>,
}

impl Machine {
    pub async fn gather(conn: &mut PgConnection) -> anyhow::Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<f64>().ok())
            .map(|k| format!("{:.1} GiB", k / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let pg_version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&mut *conn)
            .await?;
        let pg_settings: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, current_setting(name) FROM pg_settings \
             WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'work_mem', \
                            'effective_cache_size', 'jit', 'wal_buffers', 'max_wal_size') ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(Machine {
            nproc: super::procstat::cores(),
            mem,
            cpu,
            kernel,
            pg_version,
            pg_settings,
        })
    }
}

pub struct Report {
    pub settings: Settings,
    pub machine: Machine,
    pub command: String,
    pub server_pool: u32,
    pub date: String,
    pub rows: Vec<Row>,
    pub stampede: Option<Stampede>,
    pub rss_peak_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    pub explain_list: String,
    pub explain_availability: String,
    pub profile: Option<Profile>,
    pub profile_row: Option<Row>,
    pub profile_note: Option<String>,
    pub loads: Vec<String>,
    pub pgbench_script: String,
    pub pgbench_command: String,
    pub elapsed: Duration,
    /// Size of the bookings table at the start of each stage.
    pub sizes: Vec<(Stage, TableSize)>,
    /// One user flooding expensive reads while another books: lines of the
    /// "bounded cost" table.
    pub flood: Vec<String>,
}

/// Bytes of a table and of its indexes.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableSize {
    pub heap: i64,
    pub indexes: i64,
}

fn bytes(b: i64) -> String {
    format!("{:.0} MiB", b as f64 / 1024.0 / 1024.0)
}

impl TableSize {
    pub async fn of_bookings(conn: &mut PgConnection) -> sqlx::Result<TableSize> {
        let (heap, indexes): (i64, i64) = sqlx::query_as(
            "SELECT pg_table_size('booking.bookings'), pg_indexes_size('booking.bookings')",
        )
        .fetch_one(conn)
        .await?;
        Ok(TableSize { heap, indexes })
    }
    fn total(&self) -> String {
        bytes(self.heap + self.indexes)
    }
    fn detail(&self) -> String {
        format!(
            "table {}, indexes {}",
            bytes(self.heap),
            bytes(self.indexes)
        )
    }
}

fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

/// Every "Execution Time: 1.234 ms" of an EXPLAIN ANALYZE output, in order.
fn execution_times(explain: &str) -> Vec<f64> {
    explain
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("Execution Time:")
                .and_then(|r| r.trim().strip_suffix("ms"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

/// Time spent in plan nodes whose child is a scan of `what` (e.g. the
/// per-candidate aggregate over `CTE Scan on busy`): the sum of actual total
/// time × loops, and the largest loop count.
fn repeated_scan_ms(plan: &str, what: &str) -> Option<(f64, u64)> {
    let lines: Vec<&str> = plan.lines().collect();
    let mut total = 0.0;
    let mut loops_max = 0;
    for (i, line) in lines.iter().enumerate() {
        if !line.contains(what) {
            continue;
        }
        // the parent node: the nearest line above with timings
        let Some(l) = lines[..i].iter().rev().find(|l| l.contains("actual time=")) else {
            continue;
        };
        let time = l
            .split("actual time=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.split("..").nth(1))
            .and_then(|v| v.parse::<f64>().ok());
        let loops = l
            .split("loops=")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(t), Some(n)) = (time, loops) {
            total += t * n as f64;
            loops_max = loops_max.max(n);
        }
    }
    (loops_max > 0).then_some((total, loops_max))
}

/// Where an availability call's time goes, from its auto_explain notices:
/// the slowest statement inside the function, how many candidate slots it
/// checked and whether it calls `booking.slot_problem` per candidate, and
/// the time spent outside any statement (procedural code).
fn availability_breakdown(explain: &str) -> Option<String> {
    let total = *execution_times(explain).first()?;
    let mut nested = Vec::new();
    for chunk in explain.split("NOTICE:  duration: ").skip(1) {
        let d: f64 = chunk.split_whitespace().next()?.parse().ok()?;
        if chunk.contains("Function Scan on availability") {
            continue;
        }
        nested.push((d, chunk));
    }
    let sum: f64 = nested.iter().map(|(d, _)| d).sum();
    let (d, text) = nested.iter().copied().max_by(|a, b| a.0.total_cmp(&b.0))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = format!(
        "The slowest statement inside the function takes {} ms of the {} ms",
        ms(d),
        ms(total)
    );
    if let Some(i) = lines
        .iter()
        .position(|l| l.contains("Function Scan on generate_series"))
    {
        let rows = lines[i]
            .rsplit("rows=")
            .next()
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let removed = lines[i + 1..]
            .iter()
            .take(3)
            .find_map(|l| l.trim().strip_prefix("Rows Removed by Filter:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let n = rows + removed;
        let per_candidate = lines[i..]
            .iter()
            .take(2)
            .any(|l| l.contains("slot_problem"));
        if n > 0 && per_candidate {
            let _ = write!(
                out,
                ": it checks {n} candidate slots and calls `booking.slot_problem` (plpgsql) for each, \
                 about {:.1} µs per candidate",
                1000.0 * d / n as f64
            );
        }
    }
    let _ = write!(
        out,
        "; {} ms are spent outside any SQL statement of the function (its procedural code).",
        ms((total - sum).max(0.0))
    );
    Some(out)
}

/// Average latency (ms) of the pgbench statement containing `needle`.
fn statement_ms(block: &str, needle: &str) -> Option<f64> {
    block
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
    why: String,
}

impl Report {
    pub fn new(settings: Settings, machine: Machine, command: String, server_pool: u32) -> Report {
        Report {
            settings,
            machine,
            command,
            server_pool,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            rows: Vec::new(),
            stampede: None,
            rss_peak_kib: None,
            rss_end_kib: None,
            explain_list: String::new(),
            explain_availability: String::new(),
            profile: None,
            profile_row: None,
            profile_note: None,
            loads: Vec::new(),
            flood: Vec::new(),
            pgbench_script: String::new(),
            pgbench_command: String::new(),
            elapsed: Duration::ZERO,
            sizes: Vec::new(),
        }
    }

    /// With the CPU saturated, the mean latency is clients × CPU per request
    /// ÷ cores (Little's law); with this run's p99 ÷ mean, the CPU per
    /// request (all processes) that would bring p99 down to `target` ms.
    fn cpu_budget(&self, r: &Row, target: f64) -> String {
        let (pg, srv, generator) = r.cpu_per_req();
        let have = pg + srv + generator;
        let tail = r.lat.p99 / r.lat.mean.max(1e-9);
        let need = target / tail * self.machine.nproc as f64 / r.clients as f64;
        format!(
            "At {} clients p99 is {:.1} × the mean, so p99 ≤ {target} ms needs a mean of ≤ {} ms, i.e. at most {} ms \
             of CPU per request in all on {} cores: {:.0}% of the {} ms measured. ",
            r.clients,
            tail,
            ms(target / tail),
            ms(need),
            self.machine.nproc,
            100.0 * need / have.max(1e-9),
            ms(have)
        )
    }

    /// The run of a scenario the comparisons use: the fastest of its
    /// repetitions (on a shared machine noise only ever slows a run down).
    fn find(&self, kind: Kind, stage: Stage, clients: usize) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| r.kind == kind && r.stage == stage && r.clients == clients)
            .max_by(|a, b| a.throughput.total_cmp(&b.throughput))
    }

    fn runs_of(&self, kind: Kind) -> usize {
        self.rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.run + 1)
            .max()
            .unwrap_or(1)
    }

    /// The scenario's name in tables, with its run when it was repeated.
    fn row_name(&self, r: &Row) -> String {
        let n = self.runs_of(r.kind);
        if n <= 1 {
            return r.kind.name().to_string();
        }
        let used = self
            .find(r.kind, r.stage, r.clients)
            .map(|b| std::ptr::eq(b, r))
            .unwrap_or(false);
        format!(
            "{}, run {}/{n}{}",
            r.kind.name(),
            r.run + 1,
            if used { " ✓" } else { "" }
        )
    }

    fn max_clients(&self) -> usize {
        self.settings.clients.iter().copied().max().unwrap_or(32)
    }

    fn stages(&self) -> [Stage; 2] {
        [Stage::Small, Stage::Big]
    }

    fn label(&self, st: Stage) -> String {
        st.label(&self.settings)
    }

    fn statements_for(&self, st: Stage, c: usize) -> Option<&str> {
        self.find(Kind::PgbenchCreate, st, c)
            .map(|r| r.per_statement.as_str())
    }

    fn targets(&self) -> Vec<Target> {
        let c = self.max_clients();
        let cores = self.machine.nproc;
        let mut out = Vec::new();

        // 1. create throughput vs the database's ceiling
        {
            let mut measured = Vec::new();
            let mut met = Some(true);
            let mut why = String::new();
            for st in self.stages() {
                match (
                    self.find(Kind::ApiCreate, st, c),
                    self.find(Kind::PgbenchCreate, st, c),
                ) {
                    (Some(a), Some(p)) => {
                        let ratio = a.throughput / p.throughput.max(1e-9);
                        measured.push(format!(
                            "{ratio:.3} at {} ({:.0} vs {:.0}/s)",
                            self.label(st),
                            a.throughput,
                            p.throughput
                        ));
                        if ratio < 0.7 {
                            met = Some(false);
                        }
                        let (apg, asrv, agen) = a.cpu_per_req();
                        let (ppg, _, pgen) = p.cpu_per_req();
                        let at = apg + asrv + agen;
                        let pt = ppg + pgen;
                        let verdict = if ratio < 0.7 {
                            format!(
                                "{:.0}% short of 0.7 × pgbench ({:.0}/s needed, {:.0}/s measured)",
                                100.0 * (1.0 - ratio / 0.7),
                                0.7 * p.throughput,
                                a.throughput
                            )
                        } else if ratio < 0.75 {
                            format!(
                                "met by a small margin ({ratio:.3}): a noisier run could miss it"
                            )
                        } else {
                            format!("met ({ratio:.3})")
                        };
                        let _ = write!(
                            why,
                            "At {}: {verdict}. CPU per create (ms): API = PostgreSQL {} + server {} + load generator {} \
                             = **{}**; pgbench = PostgreSQL {} + pgbench {} = **{}**. The {cores} cores were {:.0}% busy \
                             during the API run ({:.0}% during pgbench), so throughput is bounded by CPU per request: \
                             {cores} cores ÷ {} ms ≈ {:.0}/s against {cores} ÷ {} ms ≈ {:.0}/s, a ceiling ratio of {:.2}. ",
                            self.label(st),
                            ms(apg),
                            ms(asrv),
                            ms(agen),
                            ms(at),
                            ms(ppg),
                            ms(pgen),
                            ms(pt),
                            100.0 - a.cpu.idle_pct(),
                            100.0 - p.cpu.idle_pct(),
                            ms(at),
                            1000.0 * cores as f64 / at.max(1e-9),
                            ms(pt),
                            1000.0 * cores as f64 / pt.max(1e-9),
                            pt / at.max(1e-9),
                        );
                        if apg > ppg * 1.05 {
                            let _ = write!(
                                why,
                                "PostgreSQL itself spends {:.0}% more CPU per API create than per pgbench transaction: \
                                 the server sends more, smaller round trips (sqlx checks every pooled connection with a \
                                 Sync round trip before lending it, then BEGIN, set_config, the lock, the count, \
                                 create_booking, COMMIT: 7 round trips, each a wake-up of a backend; pgbench sends 6, all \
                                 prepared). ",
                                100.0 * (apg / ppg.max(1e-9) - 1.0),
                            );
                        }
                    }
                    _ => met = None,
                }
            }
            if met == Some(false) {
                why.push_str(
                    "The server and the load generator share the machine with PostgreSQL; on a box this small every \
                     millisecond of HTTP, JSON, JWT and logging work is taken from the database. See 'Where the CPU goes' \
                     and the profile below.",
                );
            }
            out.push(Target {
                what: format!("create ≥ 0.7 × pgbench at {c} clients"),
                measured: measured.join("; "),
                met,
                why,
            });
        }

        // 2. p99 create
        {
            let mut measured = Vec::new();
            let mut met = Some(true);
            let mut why = String::new();
            for st in self.stages() {
                if let Some(a) = self.find(Kind::ApiCreate, st, c) {
                    measured.push(format!("{} ms at {}", ms(a.lat.p99), self.label(st)));
                    if a.lat.p99 > 25.0 {
                        met = Some(false);
                        let _ = write!(
                            why,
                            "At {}: {:.0}% over (p99 {} ms, p50 {} ms). With {c} requests always in flight, \
                             Little's law gives a mean latency of {c} ÷ {:.0}/s = {} ms: the requests queue for \
                             {cores} cores (and for {} pooled connections). ",
                            self.label(st),
                            100.0 * (a.lat.p99 / 25.0 - 1.0),
                            ms(a.lat.p99),
                            ms(a.lat.p50),
                            a.throughput,
                            ms(1000.0 * c as f64 / a.throughput.max(1e-9)),
                            self.server_pool,
                        );
                        if let Some(p) = self.find(Kind::PgbenchCreate, st, c) {
                            let _ = write!(
                                why,
                                "pgbench, the database alone at {c} clients, has p50 {} ms and p99 {} ms",
                                ms(p.lat.p50),
                                ms(p.lat.p99)
                            );
                            if let Some(block) = self.statements_for(st, c) {
                                if let Some(commit) = statement_ms(block, "COMMIT") {
                                    let _ = write!(
                                        why,
                                        " (COMMIT, the WAL flush, averages {} ms of it; create_booking {} ms)",
                                        ms(commit),
                                        ms(statement_ms(block, "create_booking").unwrap_or(0.0))
                                    );
                                }
                            }
                            why.push_str(". ");
                            if p.lat.p99 > 25.0 {
                                why.push_str(
                                    "The database alone misses the target too, so no server code can meet it on this \
                                     machine at this concurrency: it needs less CPU per transaction in PostgreSQL, more \
                                     cores, or fewer transactions in flight. ",
                                );
                            }
                            if a.lat.p99 < p.lat.p99 {
                                let _ = write!(
                                    why,
                                    "(The API's p99 is lower than pgbench's: its pool of {} connections admits at \
                                     most {} transactions at once and queues the rest in order, where pgbench keeps \
                                     {c} backends competing for {cores} cores.) ",
                                    self.server_pool, self.server_pool
                                );
                            }
                        }
                    }
                } else {
                    met = None;
                }
            }
            out.push(Target {
                what: format!("p99 create ≤ 25 ms at {c} clients"),
                measured: measured.join("; "),
                met,
                why,
            });
        }

        // 3. list p99 at the big stage
        {
            let mut measured = Vec::new();
            let mut met = Some(true);
            let mut why = String::new();
            for &cl in &self.settings.clients {
                if let Some(r) = self.find(Kind::List, Stage::Big, cl) {
                    measured.push(format!("{} ms at {cl} clients", ms(r.lat.p99)));
                    if r.lat.p99 > 10.0 {
                        met = Some(false);
                        let (pg, srv, generator) = r.cpu_per_req();
                        let _ = write!(
                            why,
                            "At {cl} clients: {:.0}% over (p99 {} ms, p50 {} ms, {:.0}/s). The time is queueing for \
                             CPU: {cl} requests in flight ÷ {:.0}/s = {} ms mean by Little's law, with CPU per request \
                             PostgreSQL {} + server {} + load generator {} ms on {cores} cores. ",
                            100.0 * (r.lat.p99 / 10.0 - 1.0),
                            ms(r.lat.p99),
                            ms(r.lat.p50),
                            r.throughput,
                            r.throughput,
                            ms(1000.0 * cl as f64 / r.throughput.max(1e-9)),
                            ms(pg),
                            ms(srv),
                            ms(generator),
                        );
                    }
                } else {
                    met = None;
                }
            }
            if met == Some(false) {
                if let Some(r) = self
                    .settings
                    .clients
                    .iter()
                    .filter_map(|&cl| self.find(Kind::List, Stage::Big, cl))
                    .next()
                {
                    why.push_str(&self.cpu_budget(r, 10.0));
                }
                let t = execution_times(&self.explain_list);
                if let (Some(generic), Some(bare)) = (t.get(1), t.get(2)) {
                    let _ = write!(
                        why,
                        "The query is an index scan of one user's rows, not a scan of the table (EXPLAIN below), \
                         and runs in {} ms with the generic plan a pooled connection uses; the same rows as `b.*` \
                         take {} ms, so computing the API's columns is {:.0}% of the query.",
                        ms(*generic),
                        ms(*bare),
                        100.0 * (1.0 - bare / generic.max(1e-9))
                    );
                }
            }
            out.push(Target {
                what: format!("list p99 ≤ 10 ms at {} rows", self.label(Stage::Big)),
                measured: measured.join("; "),
                met,
                why,
            });
        }

        // 4. growth small -> big
        {
            let mut worst: Option<(f64, String)> = None;
            let mut measured = Vec::new();
            let mut met = Some(true);
            for kind in [Kind::ApiCreate, Kind::List] {
                for &cl in &self.settings.clients {
                    match (
                        self.find(kind, Stage::Small, cl),
                        self.find(kind, Stage::Big, cl),
                    ) {
                        (Some(a), Some(b)) => {
                            let r50 = b.lat.p50 / a.lat.p50.max(1e-9);
                            let r99 = b.lat.p99 / a.lat.p99.max(1e-9);
                            measured.push(format!(
                                "{} {cl}: p50 ×{r50:.2}, p99 ×{r99:.2}",
                                kind.short()
                            ));
                            for (r, what) in [(r50, "p50"), (r99, "p99")] {
                                if worst.as_ref().map(|w| r > w.0).unwrap_or(true) {
                                    worst =
                                        Some((r, format!("{} {cl} clients {what}", kind.short())));
                                }
                            }
                            if r50 > 1.5 || r99 > 1.5 {
                                met = Some(false);
                            }
                        }
                        _ => met = None,
                    }
                }
            }
            let mut why = String::new();
            if met == Some(false) {
                if let Some((r, w)) = &worst {
                    let _ = write!(why, "Worst: {w}, ×{r:.2}. ");
                }
                for kind in [Kind::ApiCreate, Kind::List] {
                    for &cl in &self.settings.clients {
                        let (Some(a), Some(b)) = (
                            self.find(kind, Stage::Small, cl),
                            self.find(kind, Stage::Big, cl),
                        ) else {
                            continue;
                        };
                        if b.lat.p50 / a.lat.p50.max(1e-9) <= 1.5
                            && b.lat.p99 / a.lat.p99.max(1e-9) <= 1.5
                        {
                            continue;
                        }
                        let (apg, asrv, _) = a.cpu_per_req();
                        let (bpg, bsrv, _) = b.cpu_per_req();
                        let _ = write!(
                            why,
                            "{} at {cl} clients: CPU per request PostgreSQL {} → {} ms, server {} → {} ms",
                            kind.short(),
                            ms(apg),
                            ms(bpg),
                            ms(asrv),
                            ms(bsrv)
                        );
                        if kind == Kind::ApiCreate {
                            if let (Some(pa), Some(pb)) = (
                                self.find(Kind::PgbenchCreate, Stage::Small, cl),
                                self.find(Kind::PgbenchCreate, Stage::Big, cl),
                            ) {
                                let (ppa, _, _) = pa.cpu_per_req();
                                let (ppb, _, _) = pb.cpu_per_req();
                                let _ = write!(
                                    why,
                                    "; the same creates through pgbench: PostgreSQL {} → {} ms per transaction, \
                                     p50 ×{:.2}",
                                    ms(ppa),
                                    ms(ppb),
                                    pb.lat.p50 / pa.lat.p50.max(1e-9)
                                );
                            }
                        }
                        why.push_str(". ");
                    }
                }
                if let (Some(small), Some(big)) = (
                    self.sizes.iter().find(|(st, _)| *st == Stage::Small),
                    self.sizes.iter().find(|(st, _)| *st == Stage::Big),
                ) {
                    let _ = write!(
                        why,
                        "The bookings table with its indexes grows from {} to {} ({}), against shared_buffers of {}: \
                         at {} the working set of a create (the heap's last pages plus a path through each of six \
                         indexes, two of them GiST) no longer stays in PostgreSQL's own cache. ",
                        small.1.total(),
                        big.1.total(),
                        big.1.detail(),
                        self.machine
                            .pg_settings
                            .iter()
                            .find(|(k, _)| k == "shared_buffers")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default(),
                        self.label(Stage::Big)
                    );
                }
                let _ = write!(
                    why,
                    "Each figure is one {}-second run on a shared VM: repeat the bench before reading much into a \
                     difference that shows at one concurrency level only.",
                    self.settings.duration.as_secs()
                );
            }
            out.push(Target {
                what: format!(
                    "{} latency within 1.5 × of {} (create and list, p50 and p99)",
                    self.label(Stage::Big),
                    self.label(Stage::Small)
                ),
                measured: measured.join("; "),
                met,
                why,
            });
        }

        // 5. RSS
        {
            let peak = self.rss_peak_kib.map(|k| k as f64 / 1024.0);
            let met = peak.map(|p| p <= 64.0);
            let why = match (met, peak) {
                (Some(false), Some(p)) => format!(
                    "{:.0}% over. The peak (VmHWM) is reached during the stampede, when {} connections are open at once \
                     (each with its own buffers and a task); at the end the RSS is {}.",
                    100.0 * (p / 64.0 - 1.0),
                    self.settings.stampede_users,
                    mib(self.rss_end_kib)
                ),
                _ => String::new(),
            };
            out.push(Target {
                what: "server peak RSS ≤ 64 MiB".into(),
                measured: format!(
                    "{} peak (VmHWM), {} at the end",
                    mib(self.rss_peak_kib),
                    mib(self.rss_end_kib)
                ),
                met,
                why,
            });
        }

        // 6. availability
        {
            let mut measured = Vec::new();
            let mut met = Some(true);
            let mut why = String::new();
            for st in self.stages() {
                for &cl in &self.settings.clients {
                    if let Some(r) = self.find(Kind::Availability, st, cl) {
                        measured.push(format!(
                            "{} ms ({cl} clients, table {})",
                            ms(r.lat.p99),
                            self.label(st)
                        ));
                        if r.lat.p99 >= 20.0 {
                            met = Some(false);
                            let (pg, srv, generator) = r.cpu_per_req();
                            let _ = write!(
                                why,
                                "At {cl} clients, table {}: {:.0}% over (p99 {} ms, p50 {} ms, {:.0}/s); CPU per request \
                                 PostgreSQL {} + server {} + load generator {} ms; mean by Little's law {cl} ÷ {:.0}/s = {} ms. ",
                                self.label(st),
                                100.0 * (r.lat.p99 / 20.0 - 1.0),
                                ms(r.lat.p99),
                                ms(r.lat.p50),
                                r.throughput,
                                ms(pg),
                                ms(srv),
                                ms(generator),
                                r.throughput,
                                ms(1000.0 * cl as f64 / r.throughput.max(1e-9)),
                            );
                        }
                    } else {
                        met = None;
                    }
                }
            }
            if met == Some(false) {
                if let Some(x) = execution_times(&self.explain_availability).first() {
                    let _ = write!(
                        why,
                        "One call takes {} ms inside PostgreSQL (EXPLAIN ANALYZE below, one call in an otherwise idle \
                         session). {}",
                        ms(*x),
                        if *x >= 20.0 {
                            "Even one client at a time cannot get under 20 ms. "
                        } else {
                            ""
                        }
                    );
                }
                if let Some(b) = availability_breakdown(&self.explain_availability) {
                    why.push_str(&b);
                    why.push(' ');
                }
                if let Some(r) = self
                    .settings
                    .clients
                    .iter()
                    .filter_map(|&cl| self.find(Kind::Availability, Stage::Big, cl))
                    .next()
                {
                    why.push_str(&self.cpu_budget(r, 20.0));
                }
                if let Some((t, n)) =
                    repeated_scan_ms(&self.explain_availability, "CTE Scan on busy")
                {
                    let _ = write!(
                        why,
                        "Of that, {} ms go to counting busy seats per candidate slot: a scan of the materialized \
                         `busy` CTE (no index) repeated for every candidate, up to {n} times (loops in the plan), so \
                         the work grows with candidate slots × bookings in the window; most of the rest is \
                         `booking.slot_problem` (plpgsql) called once per candidate.",
                        ms(t)
                    );
                }
            }
            out.push(Target {
                what: format!(
                    "availability p99 < 20 ms, 7 days, resource with {} bookings",
                    human(self.settings.small_rows)
                ),
                measured: measured.join("; "),
                met,
                why,
            });
        }
        out
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<52} {:>9} {:>7} {:>10} {:>9} {:>9}",
            "scenario", "existing", "clients", "ok/s", "p50 ms", "p99 ms"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<52} {:>9} {:>7} {:>10.0} {:>9} {:>9}{}",
                self.row_name(r),
                human(r.existing as u64),
                r.clients,
                r.throughput,
                ms(r.lat.p50),
                ms(r.lat.p99),
                if r.under_load() { "  (under load)" } else { "" }
            );
        }
        if let Some(st) = &self.stampede {
            let _ = writeln!(
                s,
                "stampede: {} users × {} rounds: p99 {} ms, total {} ms (worst round)",
                self.settings.stampede_users,
                st.rounds.len(),
                ms(st.lat.p99),
                ms(st
                    .rounds
                    .iter()
                    .map(|r| r.total.as_secs_f64() * 1000.0)
                    .fold(0.0, f64::max))
            );
        }
        for l in &self.flood {
            let _ = writeln!(s, "flood: {l}");
        }
        let _ = writeln!(s, "server peak RSS: {}", mib(self.rss_peak_kib));
        for t in self.targets() {
            let _ = writeln!(
                s,
                "{:<8} {} — {}",
                match t.met {
                    Some(true) => "MET",
                    Some(false) => "MISSED",
                    None => "n/a",
                },
                t.what,
                t.measured
            );
        }
        s
    }

    pub fn render(&self) -> String {
        let s = &self.settings;
        let m = &self.machine;
        let mut o = String::new();
        let w = &mut o;
        let _ = writeln!(w, "# Benchmarks\n");
        if s.quick {
            let _ = writeln!(
                w,
                "> **QUICK SMOKE RUN** (`--quick`): small tables and short runs. The numbers only show that the \
                 bench works; they are not the benchmark.\n"
            );
        }
        if cfg!(debug_assertions) {
            let _ = writeln!(
                w,
                "> **DEBUG BUILD**: meaningless numbers. Use `scripts/bench`.\n"
            );
        }
        let _ = writeln!(
            w,
            "Generated by `booking-bench` on {} in {:.1} minutes. Every number below comes from that one run on the \
             machine described here; re-run with the command below to reproduce it.\n",
            self.date,
            self.elapsed.as_secs_f64() / 60.0
        );

        // targets first: the question the issue asks
        let _ = writeln!(w, "## Targets\n");
        let _ = writeln!(w, "| target | measured | |");
        let _ = writeln!(w, "|---|---|---|");
        let targets = self.targets();
        for t in &targets {
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                t.what,
                t.measured,
                match t.met {
                    Some(true) => "**met**",
                    Some(false) => "**missed**",
                    None => "not measured",
                }
            );
        }
        let _ = writeln!(w);
        for t in targets.iter().filter(|t| !t.why.trim().is_empty()) {
            let _ = writeln!(
                w,
                "- **{}: {}.** {}\n",
                t.what,
                match t.met {
                    Some(true) => "met",
                    Some(false) => "missed",
                    None => "not measured",
                },
                t.why.trim()
            );
        }

        let _ = writeln!(w, "## Machine\n");
        let _ = writeln!(w, "| | |\n|---|---|");
        let _ = writeln!(w, "| CPU | {} |", m.cpu);
        let _ = writeln!(w, "| cores (nproc) | {} |", m.nproc);
        let _ = writeln!(w, "| memory | {} |", m.mem);
        let _ = writeln!(w, "| kernel | {} |", m.kernel);
        let _ = writeln!(w, "| PostgreSQL | {} |", m.pg_version);
        let settings: Vec<String> = m
            .pg_settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(w, "| PostgreSQL settings | {} |", settings.join(", "));
        let _ = writeln!(
            w,
            "| server | `booking serve` (release build{}), a child process: BOOKING_RATE_LIMITS=off, \
             BOOKING_MAX_ACTIVE_BOOKINGS=1000000, pool {} connections, logs at the default level to a file |",
            if cfg!(debug_assertions) {
                ": NO, debug"
            } else {
                ""
            },
            self.server_pool
        );
        let _ = writeln!(
            w,
            "| everything on one box | PostgreSQL, the server and the load generator (or pgbench) share the {} cores |\n",
            m.nproc
        );
        let loaded: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.under_load())
            .map(|r| {
                format!(
                    "{} {} {} clients (other processes {:.0}% CPU just before, {:.0}% during{})",
                    r.kind.short(),
                    self.label(r.stage),
                    r.clients,
                    r.quiet.other_pct_before,
                    r.cpu.other_pct(),
                    if r.quiet.builds.is_empty() {
                        String::new()
                    } else {
                        format!("; builds running: {}", r.quiet.builds.join(" "))
                    }
                )
            })
            .collect();
        if loaded.is_empty() {
            let _ = writeln!(
                w,
                "Load: before every run the bench waited for a quiet machine (no other cargo/rustc, other processes \
                 < 15% CPU); during every run other processes used ≤ 10% of the CPU (column 'other').\n"
            );
        } else {
            let _ = writeln!(
                w,
                "**Measured under load** (other processes > 10% CPU, or another build running): {}.\n",
                loaded.join("; ")
            );
        }

        let _ = writeln!(w, "## Command\n");
        let _ = writeln!(w, "```sh\n{}\n```\n", self.command);
        let _ = writeln!(
            w,
            "`scripts/bench` builds the release `booking` and `booking-bench` binaries and runs `target/release/booking-bench \"$@\"` against the first. \
             Settings of this run: {} s measured per run after {} s of warm-up (HTTP), concurrency {}, \
             stages of {} and {} existing bookings, stampede {} users × {} rounds, create runs × {}.\n",
            s.duration.as_secs(),
            s.warmup.as_secs(),
            s.clients
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            s.small_rows,
            s.big_rows,
            s.stampede_users,
            s.stampede_rounds,
            s.repeat
        );

        let _ = writeln!(w, "## Method\n");
        let _ = writeln!(
            w,
            "- A fresh private cluster in a temporary data dir (or `DATABASE_URL`), migrated; the release server as a \
               separate process on a free port, attached to it with the same data dir (same JWT secret).\n\
             - **Stage {}**: {} bookings on one resource (15-min grid, no buffer), one an hour, 30 min each, {} per \
               user. **Stage {}**: {} more, spread over resources of {} bookings each (buffer 15 min) and users with {} \
               each. Bulk-loaded as the owner with `session_replication_role = replica` (triggers skipped, `blocked` \
               computed by the loader; the exclusion constraints still check every row), then `VACUUM (ANALYZE)` and \
               `CHECKPOINT`.\n\
             - **create, pgbench**: the database's ceiling. pgbench (`-M prepared`, through the serving login \
               `booking_authenticator`) runs exactly the statements one create request sends: BEGIN; `set_config` of \
               role and claims; the per-user advisory lock; the active-bookings count; `booking.create_booking(...)`; \
               COMMIT. Each client books the next free minute on its own resource (1-min grid, 10 years ahead) for \
               one of its own {} users in turn, so every transaction books (checked: bookings created = transactions).\n\
             - **create, API**: the same bookings through `POST /v1/bookings`: an in-process load generator \
               (reqwest, keep-alive) with one worker per client, each sending one request at a time for the run's \
               duration (closed loop, like pgbench's clients); every request timed, every status counted. The \
               bookings a create run makes are deleted afterwards (then VACUUM), so every run starts from the \
               stage's row count.\n\
             - **stampede**: {} users with their own tokens and warm connections send the same slot at the same \
               instant; exactly one may win.\n\
             - **list**: `GET /v1/bookings?limit=50` by users who hold {} bookings each, cycling through up to {} of them.\n\
             - **availability**: `GET /v1/resources/{{id}}/availability` over 7 days (`duration_minutes={}`) on the \
               resource with {} bookings, the window moving day by day through its booked span, asked by users who \
               hold bookings on it.\n\
             - CPU columns: CPU time of PostgreSQL (our postmaster and its children), the server, the load generator \
               (this process, or pgbench) and everything else, from /proc, over the measured window, as a share of all \
               cores. Latencies are nearest-rank percentiles over every request of the measured window.\n",
            self.label(Stage::Small),
            s.small_rows,
            super::BOOKINGS_PER_USER,
            self.label(Stage::Big),
            s.big_rows - s.small_rows,
            super::BOOKINGS_PER_RESOURCE,
            super::BOOKINGS_PER_USER,
            super::PER_CLIENT,
            s.stampede_users,
            super::BOOKINGS_PER_USER,
            super::LIST_SAMPLE,
            super::AVAIL_MINUTES,
            s.small_rows,
        );
        for l in &self.loads {
            let _ = writeln!(w, "- Load: {l}.");
        }
        for (st, size) in &self.sizes {
            let _ = writeln!(
                w,
                "- `booking.bookings` at the start of stage {}: {} ({}).",
                self.label(*st),
                size.total(),
                size.detail()
            );
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Results\n");
        if self.runs_of(Kind::ApiCreate) > 1 || self.runs_of(Kind::PgbenchCreate) > 1 {
            let _ = writeln!(
                w,
                "The create runs were repeated {} times, pgbench and API alternating at each concurrency; the \
                 comparisons and targets use the fastest run of each (✓): on a shared machine noise only ever slows \
                 a run down, and the spread between runs shows how much.\n",
                self.runs_of(Kind::ApiCreate)
            );
        }
        let _ = writeln!(
            w,
            "| scenario | existing bookings | clients | ok/s | mean ms | p50 ms | p90 ms | p99 ms | max ms | answers | CPU % PostgreSQL / server / load gen / other / idle | check |"
        );
        let _ = writeln!(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                w,
                "| {}{} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} | {} |",
                self.row_name(r),
                if r.under_load() { " (under load)" } else { "" },
                r.existing,
                r.clients,
                r.throughput,
                ms(r.lat.mean),
                ms(r.lat.p50),
                ms(r.lat.p90),
                ms(r.lat.p99),
                ms(r.lat.max),
                r.statuses,
                r.cpu.pg_pct(),
                r.cpu.server_pct(),
                r.cpu.loadgen_pct(),
                r.cpu.other_pct(),
                r.cpu.idle_pct(),
                r.sanity
            );
        }
        let _ = writeln!(w);

        if !self.flood.is_empty() {
            let _ = writeln!(w, "### Bounded cost: one user floods, another books\n");
            let _ = writeln!(
                w,
                "A bystander books (1 client, closed loop) alone, then while one other user floods the most expensive \
                 availability answer allowed (2 days of a 1-minute grid, 2880 starts) from 48 concurrent clients. \
                 The per-user in-flight limit (`BOOKING_MAX_IN_FLIGHT_PER_USER`, default 4) answers the flood's excess with 429 at once.\n"
            );
            let _ = writeln!(
                w,
                "| run | bystander creates/s | p50 ms | p99 ms | max ms | flooder answers |"
            );
            let _ = writeln!(w, "|---|--:|--:|--:|--:|---|");
            for l in &self.flood {
                let _ = writeln!(w, "{l}");
            }
            let _ = writeln!(w);
        }

        if let Some(st) = &self.stampede {
            let _ = writeln!(w, "### Hot-slot stampede\n");
            let _ = writeln!(
                w,
                "| round | users | total time ms | p50 ms | p99 ms | max ms | answers | exactly one booking | CPU % PostgreSQL / server / load gen / other / idle |"
            );
            let _ = writeln!(w, "|--:|--:|--:|--:|--:|--:|---|---|---|");
            for (i, r) in st.rounds.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0}{} |",
                    i + 1,
                    r.users,
                    r.total.as_secs_f64() * 1000.0,
                    ms(r.lat.p50),
                    ms(r.lat.p99),
                    ms(r.lat.max),
                    r.statuses,
                    if r.one_winner { "yes" } else { "**NO**" },
                    r.cpu.pg_pct(),
                    r.cpu.server_pct(),
                    r.cpu.loadgen_pct(),
                    r.cpu.other_pct(),
                    r.cpu.idle_pct(),
                    if r.quiet.builds.is_empty() { String::new() } else { format!(" (builds running: {})", r.quiet.builds.join(" ")) }
                );
            }
            let _ = writeln!(
                w,
                "\nAll rounds: p50 {} ms, p99 {} ms, max {} ms. Latency is from the common start to each answer; \
                 the losers' 409 `slot_taken` come after the winner's transaction commits.\n",
                ms(st.lat.p50),
                ms(st.lat.p99),
                ms(st.lat.max)
            );
        }

        let _ = writeln!(w, "### API ÷ pgbench (create)\n");
        let _ = writeln!(
            w,
            "| existing | clients | pgbench tx/s | API req/s | API ÷ pgbench | pgbench p50 / p99 ms | API p50 / p99 ms |"
        );
        let _ = writeln!(w, "|--:|--:|--:|--:|--:|---|---|");
        for st in self.stages() {
            for &c in &s.clients {
                if let (Some(p), Some(a)) = (
                    self.find(Kind::PgbenchCreate, st, c),
                    self.find(Kind::ApiCreate, st, c),
                ) {
                    let _ = writeln!(
                        w,
                        "| {} | {c} | {:.0} | {:.0} | **{:.2}** | {} / {} | {} / {} |",
                        self.label(st),
                        p.throughput,
                        a.throughput,
                        a.throughput / p.throughput.max(1e-9),
                        ms(p.lat.p50),
                        ms(p.lat.p99),
                        ms(a.lat.p50),
                        ms(a.lat.p99)
                    );
                }
            }
        }
        let _ = writeln!(w);

        let _ = writeln!(
            w,
            "### Growth {} → {} existing bookings\n",
            self.label(Stage::Small),
            self.label(Stage::Big)
        );
        let _ = writeln!(
            w,
            "| scenario | clients | ok/s | p50 ms | p99 ms | ok/s × | p50 × | p99 × |"
        );
        let _ = writeln!(w, "|---|--:|---|---|---|--:|--:|--:|");
        for kind in [
            Kind::PgbenchCreate,
            Kind::ApiCreate,
            Kind::List,
            Kind::Availability,
        ] {
            for &c in &s.clients {
                if let (Some(a), Some(b)) = (
                    self.find(kind, Stage::Small, c),
                    self.find(kind, Stage::Big, c),
                ) {
                    let _ = writeln!(
                        w,
                        "| {} | {c} | {:.0} → {:.0} | {} → {} | {} → {} | {:.2} | {:.2} | {:.2} |",
                        kind.short(),
                        a.throughput,
                        b.throughput,
                        ms(a.lat.p50),
                        ms(b.lat.p50),
                        ms(a.lat.p99),
                        ms(b.lat.p99),
                        b.throughput / a.throughput.max(1e-9),
                        b.lat.p50 / a.lat.p50.max(1e-9),
                        b.lat.p99 / a.lat.p99.max(1e-9)
                    );
                }
            }
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "### Where the CPU goes\n");
        let _ = writeln!(
            w,
            "CPU milliseconds per successful request (transaction for pgbench), measured from /proc over the \
             measured window. 'ceiling' is {} cores ÷ the total: the rate at which this box runs out of CPU.\n",
            m.nproc
        );
        let _ = writeln!(
            w,
            "| scenario | existing | clients | PostgreSQL | server | load generator | total | ceiling /s | measured /s |"
        );
        let _ = writeln!(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in &self.rows {
            let (pg, srv, generator) = r.cpu_per_req();
            let total = pg + srv + generator;
            let _ = writeln!(
                w,
                "| {}{} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
                r.kind.short(),
                if self.runs_of(r.kind) > 1 {
                    format!(" run {}", r.run + 1)
                } else {
                    String::new()
                },
                self.label(r.stage),
                r.clients,
                ms(pg),
                if r.kind == Kind::PgbenchCreate {
                    "–".to_string()
                } else {
                    ms(srv)
                },
                ms(generator),
                ms(total),
                1000.0 * m.nproc as f64 / total.max(1e-9),
                r.throughput
            );
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## Server memory\n");
        let _ = writeln!(
            w,
            "Peak RSS of the server process (VmHWM from /proc/<pid>/status, read just before it was stopped, after \
             every scenario above including the stampede{}): **{}**; RSS at that moment: {}.\n",
            if self.profile.is_some() {
                " and the profiled run"
            } else {
                ""
            },
            mib(self.rss_peak_kib),
            mib(self.rss_end_kib)
        );

        let _ = writeln!(w, "## pgbench\n");
        let _ = writeln!(w, "Script (`create.pgbench`):\n");
        let _ = writeln!(w, "```\n{}```\n", self.pgbench_script);
        let _ = writeln!(w, "Command: `{}`\n", self.pgbench_command);
        let _ = writeln!(w, "Per-statement latencies (`-r`):\n");
        for st in self.stages() {
            for &c in &s.clients {
                if let Some(r) = self.find(Kind::PgbenchCreate, st, c) {
                    let _ = writeln!(
                        w,
                        "{}, {c} clients{}:\n\n```\n{}\n```\n",
                        self.label(st),
                        if self.runs_of(Kind::PgbenchCreate) > 1 {
                            format!(" (run {}, the fastest)", r.run + 1)
                        } else {
                            String::new()
                        },
                        r.per_statement
                    );
                }
            }
        }

        let _ = writeln!(
            w,
            "## EXPLAIN (ANALYZE, BUFFERS) at {} existing bookings\n",
            self.label(Stage::Big)
        );
        let _ = writeln!(
            w,
            "As the owner with `role = authenticated` and a user's claims set in the transaction, so Row Level \
             Security is part of the plan.\n"
        );
        let _ = writeln!(
            w,
            "### List (`GET /v1/bookings?limit=50`, the query of `db::bookings::list`)\n"
        );
        let _ = writeln!(w, "```\n{}\n```\n", self.explain_list);
        let _ = writeln!(
            w,
            "### Availability (7 days, {} bookings on the resource)\n",
            s.small_rows
        );
        let _ = writeln!(
            w,
            "After six warm-up calls in the same session (as a pooled connection has made them): the call, then \
             (auto_explain, nested statements) the plans of the statements inside the function.\n"
        );
        let _ = writeln!(w, "```\n{}\n```\n", self.explain_availability);

        let _ = writeln!(w, "## Profile\n");
        match (&self.profile, &self.profile_row) {
            (Some(p), Some(r)) => {
                let _ = writeln!(
                    w,
                    "`perf record -a -F 499` during one more API create run at {} clients, {} existing ({:.0}/s, p50 \
                     {} ms, p99 {} ms under perf; not used above). Share of all samples of both cores:\n",
                    r.clients,
                    self.label(r.stage),
                    r.throughput,
                    ms(r.lat.p50),
                    ms(r.lat.p99)
                );
                let _ = writeln!(w, "| process | % of samples |\n|---|--:|");
                for (g, pct) in &p.by_group {
                    let _ = writeln!(w, "| {g} | {pct:.1} |");
                }
                let _ = writeln!(
                    w,
                    "\nServer: share of its samples per binary, then top symbols:\n\n```\n{}\n\n{}\n```\n",
                    p.server_dso, p.server_top
                );
                let _ = writeln!(
                    w,
                    "PostgreSQL: share of its samples per binary, then top symbols:\n\n```\n{}\n\n{}\n```\n",
                    p.pg_dso, p.pg_top
                );
            }
            _ => {
                let _ = writeln!(
                    w,
                    "{}\n",
                    self.profile_note
                        .clone()
                        .unwrap_or_else(|| "Not profiled (`--no-profile`).".into())
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(10_000), "10k");
        assert_eq!(human(1_000_000), "1M");
        assert_eq!(human(2_500_000), "2.5M");
        assert_eq!(human(50_000), "50k");
        assert_eq!(human(1234), "1234");
    }

    #[test]
    fn reads_explain_and_pgbench_blocks() {
        let e = "Limit (...)\nPlanning Time: 0.1 ms\nExecution Time: 0.456 ms\n";
        assert_eq!(execution_times(e), vec![0.456]);
        let p = "  ->  Aggregate  (cost=1..2 rows=1 width=8) (actual time=0.041..0.050 rows=1 loops=672)\n          Buffers: shared hit=166\n        ->  CTE Scan on busy bz  (cost=0..1 rows=3 width=4) (actual time=0.025..0.040 rows=1 loops=672)\n";
        let (t, n) = repeated_scan_ms(p, "CTE Scan on busy").unwrap_or_default();
        assert_eq!(n, 672);
        assert!((t - 33.6).abs() < 1e-6);
        let b = "statement latencies in milliseconds and failures:\n   0.050  0  BEGIN;\n   1.250  0  COMMIT;\n";
        assert_eq!(statement_ms(b, "COMMIT"), Some(1.25));
        let a = "Function Scan on availability  (actual time=10.3..10.4 rows=168 loops=1)\n\
                 Execution Time: 10.000 ms\n\
                 NOTICE:  duration: 0.500 ms  plan:\nAggregate (actual time=0.4..0.5 rows=1 loops=1)\n\
                 NOTICE:  duration: 6.720 ms  plan:\nSort\n\
                 ->  Function Scan on generate_series t  (cost=0.03..277.53 rows=1 width=8) (actual time=0.204..6.357 rows=168 loops=1)\n\
                       Filter: ((t >= $5) AND (booking.slot_problem($11, t, (t + $13), $5) IS NULL))\n\
                       Rows Removed by Filter: 504\n\
                 NOTICE:  duration: 10.392 ms  plan:\nFunction Scan on availability\n";
        let text = availability_breakdown(a).unwrap_or_default();
        assert!(text.contains("6.72 ms of the 10.0 ms"), "{text}");
        assert!(text.contains("672 candidate slots"), "{text}");
        assert!(text.contains("2.78 ms are spent outside"), "{text}");
    }
}
