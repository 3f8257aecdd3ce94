//! BENCHMARKS.md: machine, command, the measured table, the comparisons the
//! issue asks for, the targets (met or missed, and for a miss the evidence
//! gathered in the same run), plans and profile.

mod plans;
mod render;
mod targets;

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
    /// The minimal correct booking (pgbench, `bench_floor.bookings`).
    PgbenchFloor,
    PgbenchCreate,
    ApiCreate,
    /// The API create with 2 and 4 server processes on the one database.
    ApiCreate2,
    ApiCreate4,
    /// The API create through PgBouncer in transaction mode.
    ApiCreateBouncer,
    List,
    Availability,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::PgbenchFloor => "floor, pgbench (minimal correct booking)",
            Kind::PgbenchCreate => "create, pgbench (DB ceiling)",
            Kind::ApiCreate => "create, API (POST /v1/bookings)",
            Kind::ApiCreate2 => "create, API, 2 server processes",
            Kind::ApiCreate4 => "create, API, 4 server processes",
            Kind::ApiCreateBouncer => "create, API through PgBouncer (transaction mode)",
            Kind::List => "list own, API (GET /v1/bookings?limit=50)",
            Kind::Availability => "availability 7 d, API",
        }
    }
    pub fn short(&self) -> &'static str {
        match self {
            Kind::PgbenchFloor => "pgbench floor",
            Kind::PgbenchCreate => "pgbench create",
            Kind::ApiCreate => "API create",
            Kind::ApiCreate2 => "API create, 2 servers",
            Kind::ApiCreate4 => "API create, 4 servers",
            Kind::ApiCreateBouncer => "API create via PgBouncer",
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
    /// The floor's pgbench script.
    pub floor_script: String,
    /// (active bookings each user holds, pgbench creates/s, bookings made,
    /// transactions) for the cap's cost.
    pub cap_cost: Vec<(u64, f64, u64, u64)>,
    /// Why there is no PgBouncer row, if there is none.
    pub pgbouncer_note: Option<String>,
    /// `scripts/citus-bench`'s section (or why there is none).
    pub citus_section: Option<String>,
    pub pgbench_command: String,
    pub elapsed: Duration,
    /// Size of the bookings table at the start of each stage.
    pub sizes: Vec<(Stage, TableSize)>,
    /// One user flooding expensive reads while another books: lines of the
    /// "bounded cost" table.
    pub flood: Vec<String>,
    /// The second wave's figures: rows of the "Second wave" table.
    pub flows: Vec<String>,
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
            flows: Vec::new(),
            pgbench_script: String::new(),
            floor_script: String::new(),
            cap_cost: Vec::new(),
            pgbouncer_note: None,
            citus_section: None,
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
}

#[cfg(test)]
mod tests {
    use super::plans::*;
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
