//! The private PostgreSQL cluster: zero set-up for development, demos and tests.
//!
//! With no `DATABASE_URL`, `booking` finds the server binaries on the machine,
//! runs `initdb` once in `BOOKING_DATA_DIR/pgdata` (with a generated password),
//! starts `postgres` as a child process listening only on a unix socket in the
//! data dir, and stops it cleanly on shutdown. PostgreSQL refuses to run as
//! root, so when we are root the cluster runs as the `postgres` system user.
//! A second `booking` command (say `booking token` while `booking serve` runs)
//! finds the running postmaster through `postmaster.pid` and attaches to it.

mod binaries;
mod secrets;

pub use binaries::find_bin_dir;
pub use secrets::Secrets;

use anyhow::{bail, Context};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cluster's superuser (owner of every object; runs migrations).
pub const ADMIN_USER: &str = "booking_admin";
/// The non-privileged login the server serves requests through.
pub const LOGIN_ROLE: &str = "booking_authenticator";
/// The application database inside the private cluster.
pub const APP_DATABASE: &str = "booking";

/// A running cluster: started by us (and stopped by us), or attached to.
pub struct Cluster {
    data_dir: PathBuf,
    opts: StartOptions,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
    pub secrets: Secrets,
}

/// Settings of a cluster we start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Throw-away cluster for tests: no fsync, removed when the process ends.
    pub ephemeral: bool,
}

/// uid/gid to run the server binaries as, when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// Open the private cluster in `data_dir`: attach to its running
    /// postmaster, or initialise (first use) and start it.
    pub fn open(data_dir: &Path, opts: StartOptions) -> anyhow::Result<Cluster> {
        let bin = find_bin_dir()?;
        let run_as = run_as()?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
        if run_as.is_some() {
            // the postgres user must be able to reach its directories below ours
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711))?;
        }
        let secrets = Secrets::load_or_create(&data_dir)?;
        let (pgdata, socket_dir) = match run_as {
            Some(r) if !traversable(&data_dir, r) => outside_data_dir(&data_dir, r)?,
            _ => (data_dir.join("pgdata"), data_dir.join("run")),
        };
        for dir in [&pgdata, &socket_dir] {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            if let Some(r) = run_as {
                std::os::unix::fs::chown(dir, Some(r.uid), Some(r.gid))?;
            }
        }

        if let Some((pid, port)) = running_postmaster(&pgdata) {
            tracing::info!(pid, "attaching to the running private PostgreSQL cluster");
            return Ok(Cluster {
                data_dir,
                opts,
                pgdata,
                socket_dir,
                port,
                child: None,
                secrets,
            });
        }

        if !pgdata.join("PG_VERSION").exists() {
            initdb(&bin, &pgdata, &socket_dir, &secrets, run_as)?;
        }
        let port = 5432;
        let log_path = data_dir.join("postgres.log");
        // the server log may hold statements and user data: owner-only
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)?;
        std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o600))?;
        let mut cmd = std::process::Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&pgdata)
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg("listen_addresses=")
            .arg("-c")
            .arg(format!("unix_socket_directories={}", socket_dir.display()))
            .arg("-c")
            .arg("max_connections=200")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // own process group: a Ctrl-C in the terminal reaches us, and we
            // stop the cluster after the last request, not before
            .process_group(0);
        if opts.ephemeral {
            for setting in [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                // a test dropping its database must not wait a minute for a
                // connection still authenticating
                "authentication_timeout=5s",
            ] {
                cmd.arg("-c").arg(setting);
            }
        }
        if let Some(r) = run_as {
            cmd.uid(r.uid).gid(r.gid);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.join("postgres").display()))?;
        let pid = child.id();
        spawn_watchdog(pid, &pgdata, opts.ephemeral.then_some(data_dir.as_path()))?;
        let mut cluster = Cluster {
            data_dir: data_dir.clone(),
            opts,
            pgdata,
            socket_dir,
            port,
            child: Some(child),
            secrets,
        };
        cluster.wait_ready(&log_path)?;
        tracing::info!(pid, data_dir = %data_dir.display(), "private PostgreSQL cluster started");
        Ok(cluster)
    }

    /// A throw-away cluster in a new temporary directory (tests).
    pub fn ephemeral() -> anyhow::Result<Cluster> {
        let dir = std::env::temp_dir().join(format!(
            "booking-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Cluster::open(&dir, StartOptions { ephemeral: true })
    }

    fn wait_ready(&mut self, log_path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "PostgreSQL exited during start ({status}); last lines of {}:\n{}",
                        log_path.display(),
                        tail(log_path, 15)
                    );
                }
            }
            if self
                .socket_dir
                .join(format!(".s.PGSQL.{}", self.port))
                .exists()
                && self.pgdata.join("postmaster.pid").exists()
            {
                let ready = std::fs::read_to_string(self.pgdata.join("postmaster.pid"))
                    .map(|s| {
                        s.lines()
                            .nth(7)
                            .map(|l| l.trim() == "ready")
                            .unwrap_or(false)
                    })
                    .unwrap_or(false);
                if ready {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL did not become ready within 60 s; see {}",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connection options for `user` (password from the secrets) to `database`.
    pub fn connect_options(&self, user: &str, database: &str) -> PgConnectOptions {
        let password = if user == LOGIN_ROLE {
            &self.secrets.login_password
        } else {
            &self.secrets.admin_password
        };
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(self.port)
            .username(user)
            .password(password)
            .database(database)
            .log_statements(tracing::log::LevelFilter::Trace)
    }

    /// The superuser's options for the application database.
    pub fn admin_options(&self, database: &str) -> PgConnectOptions {
        self.connect_options(ADMIN_USER, database)
    }

    /// Create `database` if it does not exist yet.
    pub async fn ensure_database(&self, database: &str) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect_with(&self.admin_options("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            let sql = format!("CREATE DATABASE {}", quote_ident(database));
            sqlx::raw_sql(&sql).execute(&mut conn).await?;
        }
        conn.close().await?;
        Ok(())
    }

    /// The postmaster's pid, from `postmaster.pid` (ours or the one we
    /// attached to).
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pgdata.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stop (fast), stay down for `down`, and start again on the same files:
    /// what a restart of the database looks like to its servers (tests).
    pub fn restart(&mut self, down: Duration) -> anyhow::Result<()> {
        self.stop()?;
        std::thread::sleep(down);
        let fresh = Cluster::open(&self.data_dir, self.opts)?;
        drop(std::mem::replace(self, fresh));
        Ok(())
    }

    /// True when this process started the cluster (and so must stop it).
    pub fn is_owned(&self) -> bool {
        self.child.is_some()
    }

    /// Fast shutdown: active transactions are rolled back, then a clean
    /// checkpoint. Waits up to 30 s. A no-op for an attached cluster.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                tracing::info!("private PostgreSQL cluster stopped");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(child.id(), "QUIT");
        child.wait()?;
        bail!("PostgreSQL did not stop within 30 s and was sent SIGQUIT")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping the private cluster");
        }
    }
}

/// Whether process `pid` is gone (or a zombie: exited, not yet reaped).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Double quotes an identifier for SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn initdb(
    bin: &Path,
    pgdata: &Path,
    socket_dir: &Path,
    secrets: &Secrets,
    run_as: Option<RunAs>,
) -> anyhow::Result<()> {
    let pwfile = socket_dir.join("initdb.pw");
    std::fs::write(&pwfile, &secrets.admin_password)?;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))?;
    if let Some(r) = run_as {
        std::os::unix::fs::chown(&pwfile, Some(r.uid), Some(r.gid))?;
    }
    let mut cmd = std::process::Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(pgdata)
        .arg("-U")
        .arg(ADMIN_USER)
        .arg(format!("--pwfile={}", pwfile.display()))
        .arg("--auth=scram-sha-256")
        .arg("--encoding=UTF8")
        .arg("--no-locale")
        .arg("--no-instructions")
        .stdin(std::process::Stdio::null());
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid).current_dir(pgdata);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", bin.join("initdb").display()))?;
    let _ = std::fs::remove_file(&pwfile);
    if !out.status.success() {
        bail!(
            "initdb failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The pid and port of a live postmaster serving `pgdata`, if any.
fn running_postmaster(pgdata: &Path) -> Option<(u32, u16)> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let port: u16 = lines.nth(2)?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let alive_postgres = String::from_utf8_lossy(&cmdline).contains("postgres");
    alive_postgres.then_some((pid, port))
}

/// Whether the `postgres` user can reach `dir` (execute permission on every
/// ancestor directory).
fn traversable(dir: &Path, r: RunAs) -> bool {
    dir.ancestors().skip(1).all(|d| match std::fs::metadata(d) {
        Ok(m) => {
            let mode = m.mode();
            if m.uid() == r.uid {
                mode & 0o100 != 0
            } else if m.gid() == r.gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            }
        }
        Err(_) => false,
    })
}

/// When we run as root inside a directory the `postgres` user cannot reach
/// (a 0700 home or `mktemp -d`), the cluster's files go to a directory it can
/// reach — `/var/lib/postgresql/booking/<hash of the data dir>` (or the same
/// under the system temp dir) — and `<data dir>/pgdata` links to it, so the
/// data dir still names its cluster. Permissions of the user's own
/// directories are never loosened.
fn outside_data_dir(data_dir: &Path, r: RunAs) -> anyhow::Result<(PathBuf, PathBuf)> {
    use sha2::Digest;
    let id = hex::encode(&sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes())[..8]);
    let home = Path::new("/var/lib/postgresql");
    let parent = if home.is_dir() && traversable(&home.join("x"), r) {
        home.join("booking")
    } else {
        std::env::temp_dir().join("booking-clusters")
    };
    let base = parent.join(id);
    // The names are predictable and, under the temp dir, anyone may create
    // them first: as root we never follow a symlink or trust a directory
    // someone else made (or may write to).
    for d in [&parent, &base] {
        match std::fs::create_dir(d) {
            Ok(()) => std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", d.display())),
        }
        ensure_own_dir(d)?;
    }
    let link = data_dir.join("pgdata");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(base.join("pgdata"), &link)?;
    }
    tracing::warn!(
        cluster = %base.display(),
        "the postgres system user cannot reach {}; the private cluster's files live in {} (linked as {})",
        data_dir.display(),
        base.display(),
        link.display()
    );
    Ok((base.join("pgdata"), base.join("run")))
}

/// `d` must be a real directory (not a symlink) owned by us and writable by
/// nobody else.
pub fn ensure_own_dir(d: &Path) -> anyhow::Result<()> {
    let m =
        std::fs::symlink_metadata(d).with_context(|| format!("cannot inspect {}", d.display()))?;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if m.file_type().is_symlink() || !m.is_dir() {
        bail!(
            "{} is not a plain directory (a symlink?): refusing to use it",
            d.display()
        );
    }
    if m.uid() != me {
        bail!(
            "{} belongs to uid {}, not to us: refusing to use it",
            d.display(),
            m.uid()
        );
    }
    if m.mode() & 0o022 != 0 {
        bail!("{} is writable by others: refusing to use it", d.display());
    }
    Ok(())
}

/// Whether this process runs as root (PostgreSQL, and PgBouncer, refuse to:
/// they run as the `postgres` system user then).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
        == 0
}

/// When we are root, the `postgres` system user to run the cluster as.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    if !is_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == "postgres" {
            if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                return Ok(Some(RunAs { uid, gid }));
            }
        }
    }
    bail!(
        "running as root, and PostgreSQL refuses to run as root: create an unprivileged `postgres` \
         system user (installing the `postgresql` package does), run booking as a normal user, or set DATABASE_URL"
    )
}

/// A shell that outlives nothing: when this process ends, however it ends, it
/// stops the cluster (and, for a throw-away cluster, removes its directory).
fn spawn_watchdog(pg_pid: u32, pgdata: &Path, remove_dir: Option<&Path>) -> anyhow::Result<()> {
    let me = std::process::id();
    // the pid is only ours while it is a postgres on our data dir: after a
    // restart (or once it has exited) the number may belong to anyone
    let ours = format!(
        "tr '\\0' ' ' < /proc/{pg_pid}/cmdline 2>/dev/null | grep -qF -- '{}'",
        pgdata.display().to_string().replace('\'', "")
    );
    let cleanup = match remove_dir {
        Some(dir) => format!("rm -rf '{}'", dir.display().to_string().replace('\'', "")),
        None => String::new(),
    };
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         if {ours}; then kill -INT {pg_pid}; fi; \
         while {ours}; do sleep 0.2; done; {cleanup}"
    );
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the cluster watchdog")?;
    Ok(())
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn rand_suffix() -> String {
    use rand::Rng;
    let n: u32 = rand::thread_rng().gen();
    format!("{n:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_or_a_shared_directory_is_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let real = t.path().join("real");
        std::fs::create_dir(&real).expect("dir");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(ensure_own_dir(&real).is_ok());
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(
            ensure_own_dir(&link).is_err(),
            "a symlink is never followed"
        );
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(ensure_own_dir(&real).is_err(), "writable by others");
    }

    #[test]
    fn secrets_are_created_owner_only() {
        let t = tempfile::tempdir().expect("tmp");
        let s = Secrets::load_or_create(t.path()).expect("secrets");
        let m = std::fs::metadata(t.path().join("secrets.json")).expect("file");
        assert_eq!(m.mode() & 0o777, 0o600);
        let again = Secrets::load_or_create(t.path()).expect("again");
        assert_eq!(s.jwt_secret, again.jwt_secret);
    }
}
