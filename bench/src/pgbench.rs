//! The database's ceiling: pgbench running exactly the SQL one create request
//! executes, through the same non-privileged login the server uses.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

use super::setup::{resource_sql, user_sql, PHONE_BASE};

/// How libpq tools (pgbench, psql) reach the database as one login.
#[derive(Debug, Clone)]
pub enum ConnTarget {
    Socket {
        dir: PathBuf,
        port: u16,
        user: String,
        database: String,
        password: String,
    },
    Url(String),
}

impl ConnTarget {
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        match self {
            ConnTarget::Socket {
                dir,
                port,
                user,
                database,
                password,
            } => {
                cmd.arg("-h")
                    .arg(dir)
                    .arg("-p")
                    .arg(port.to_string())
                    .arg("-U")
                    .arg(user)
                    .arg(database)
                    .env("PGPASSWORD", password);
            }
            ConnTarget::Url(url) => {
                cmd.arg(url);
            }
        }
    }
}

/// The pgbench script: BEGIN; role + claims; create_booking (the per-user
/// lock, the active count and the rules are inside it); COMMIT — the
/// statements the create handler sends,
/// one round trip each. Variables: `n` counts this client's transactions
/// (`-D n=0`, kept between transactions), so every transaction books the
/// next free minute on this client's own resource, for the next of this
/// client's `per` users.
pub fn script() -> String {
    let uid = user_sql(":u::bigint");
    let rid = resource_sql(":rbase::bigint + :client_id");
    format!(
        "\\set u :ubase + :client_id + :clients * (:n % :per)\n\
         \\set ph {PHONE_BASE} + :u\n\
         \\set s :t0 + 60 * :n\n\
         \\set e :s + 60\n\
         \\set n :n + 1\n\
         BEGIN;\n\
         SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', \
           '{{\"aud\":\"authenticated\",\"exp\":2000000000,\"iat\":1700000000,\"iss\":\"booking\",\"phone\":\"+1' || :ph || \
           '\",\"role\":\"authenticated\",\"session_id\":\"00000000-0000-4000-8000-000000000000\",\"sub\":\"' || {uid} || '\"}}', true), \
           set_config('request.jwt.claim.sub', {uid}, true), set_config('request.jwt.claim.role', 'authenticated', true);\n\
         SELECT booking.create_booking({rid}::uuid, to_timestamp(:s), to_timestamp(:e), NULL);\n\
         COMMIT;\n"
    )
}

/// The floor: the minimal correct booking. The same role and claims, then one
/// `INSERT … ON CONFLICT DO NOTHING` into `bench_floor.bookings` — a table
/// with both exclusion constraints (resource, user) and forced row-level
/// security, nothing else: no rules, no history, no cap, no triggers. What a
/// PostgREST insert into such a table costs the database; every create
/// figure is also given as a multiple of it.
pub fn floor_script() -> String {
    let uid = user_sql(":u::bigint");
    let rid = resource_sql(":rbase::bigint + :client_id");
    format!(
        "\\set u :ubase + :client_id + :clients * (:n % :per)\n\
         \\set ph {PHONE_BASE} + :u\n\
         \\set s :t0 + 60 * :n\n\
         \\set e :s + 60\n\
         \\set n :n + 1\n\
         BEGIN;\n\
         SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', \
           '{{\"aud\":\"authenticated\",\"exp\":2000000000,\"iat\":1700000000,\"iss\":\"booking\",\"phone\":\"+1' || :ph || \
           '\",\"role\":\"authenticated\",\"session_id\":\"00000000-0000-4000-8000-000000000000\",\"sub\":\"' || {uid} || '\"}}', true), \
           set_config('request.jwt.claim.sub', {uid}, true), set_config('request.jwt.claim.role', 'authenticated', true);\n\
         INSERT INTO bench_floor.bookings (resource_id, user_id, period) \
           VALUES ({rid}::uuid, {uid}::uuid, tstzrange(to_timestamp(:s), to_timestamp(:e), '[)')) ON CONFLICT DO NOTHING;\n\
         COMMIT;\n"
    )
}

/// What one pgbench run reported.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub tps: f64,
    pub processed: u64,
    pub failed: u64,
    /// Per-transaction latencies from the `-l` log, microseconds.
    pub lat_us: Vec<u32>,
    /// The `-r` per-statement latency block.
    pub per_statement: String,
    pub command: String,
    pub secs: f64,
}

/// Variables of one run.
pub struct Vars {
    pub clients: usize,
    pub per: u64,
    pub ubase: u64,
    pub rbase: u64,
    pub t0: i64,
}

pub async fn run(
    target: &ConnTarget,
    work: &Path,
    tag: &str,
    duration_secs: u64,
    v: &Vars,
    floor: bool,
) -> anyhow::Result<Run> {
    let file = if floor {
        "floor.pgbench"
    } else {
        "create.pgbench"
    };
    let script_path = work.join(file);
    std::fs::write(&script_path, if floor { floor_script() } else { script() })?;
    let log_dir = work.join(format!("pgbench-{tag}"));
    std::fs::create_dir_all(&log_dir)?;
    let threads = v.clients.min(super::procstat::cores()).max(1);
    let mut cmd = tokio::process::Command::new("pgbench");
    cmd.current_dir(&log_dir)
        .arg("-n")
        .arg("-M")
        .arg("prepared")
        .arg("-r")
        .arg("-l")
        .arg("--log-prefix=tx")
        .arg("-c")
        .arg(v.clients.to_string())
        .arg("-j")
        .arg(threads.to_string())
        .arg("-T")
        .arg(duration_secs.to_string())
        .arg("-f")
        .arg(&script_path);
    for (k, val) in [
        ("n", "0".to_string()),
        ("clients", v.clients.to_string()),
        ("per", v.per.to_string()),
        ("ubase", v.ubase.to_string()),
        ("rbase", v.rbase.to_string()),
        ("t0", v.t0.to_string()),
    ] {
        cmd.arg("-D").arg(format!("{k}={val}"));
    }
    let command = format!(
        "pgbench -n -M prepared -r -l -c {} -j {threads} -T {duration_secs} -f {file} -D n=0 -D clients={} -D per={} -D ubase=… -D rbase=… -D t0=… <login booking_authenticator>",
        v.clients, v.clients, v.per
    );
    target.apply(&mut cmd);
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = cmd.output().await.context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        bail!("pgbench failed ({}):\n{stdout}\n{stderr}", out.status);
    }
    let mut r = parse_output(&stdout);
    r.command = command;
    r.secs = duration_secs as f64;
    for entry in std::fs::read_dir(&log_dir)? {
        let text = std::fs::read_to_string(entry?.path()).unwrap_or_default();
        r.lat_us.extend(parse_log(&text));
    }
    if r.processed == 0 {
        bail!("pgbench processed no transaction:\n{stdout}\n{stderr}");
    }
    Ok(r)
}

fn parse_output(stdout: &str) -> Run {
    let mut r = Run::default();
    let mut in_statements = false;
    let mut block = Vec::new();
    for line in stdout.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("tps = ") {
            r.tps = rest
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0.0);
        } else if let Some(rest) = t.strip_prefix("number of transactions actually processed:") {
            r.processed = rest
                .split_whitespace()
                .next()
                .and_then(|x| x.split('/').next())
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
        } else if let Some(rest) = t.strip_prefix("number of failed transactions:") {
            r.failed = rest
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
        }
        if t.starts_with("statement latencies in milliseconds") {
            in_statements = true;
        }
        if in_statements {
            block.push(line.to_string());
        }
    }
    r.per_statement = block.join("\n");
    r
}

/// `client_id transaction_no time script_no time_epoch time_us [...]`:
/// the third field is the latency in microseconds (or `failed`/`skipped`).
fn parse_log(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgbench_output_and_log() {
        let out = "transaction type: create.pgbench\nnumber of transactions actually processed: 1234\n\
                   number of failed transactions: 0 (0.000%)\nlatency average = 6.4 ms\n\
                   tps = 1250.5 (without initial connection time)\nstatement latencies in milliseconds and failures:\n\
                   \t0.002 0 \\set u 1\n";
        let r = parse_output(out);
        assert_eq!(r.processed, 1234);
        assert!((r.tps - 1250.5).abs() < 1e-9);
        assert!(r.per_statement.contains("\\set u"));
        assert_eq!(
            parse_log("0 1 2301 0 1700000000 123\n1 1 failed 0 1700000000 5\n"),
            vec![2301]
        );
    }

    #[test]
    fn the_script_books_the_next_minute() {
        let s = script();
        assert!(s.contains("\\set n :n + 1"));
        assert!(s.contains("booking.create_booking("));
        assert!(s.contains("request.jwt.claim.sub"));
    }
}
