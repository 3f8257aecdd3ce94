//! PgBouncer (Debian's package) in transaction mode in front of the bench's
//! private cluster, for the "through a pooler" row: started if `pgbouncer`
//! is installed, on a free loopback port, pooling the serving login.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::pgbench::ConnTarget;

pub struct Bouncer {
    child: tokio::process::Child,
    port: u16,
    login_password: String,
    owner_url: String,
    jwt_secret: String,
    pub dir: PathBuf,
}

pub fn installed() -> bool {
    std::process::Command::new("pgbouncer")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Bouncer {
    /// `login` and `owner`: the private cluster's logins (a `DATABASE_URL`
    /// run has no pooler row). None when PgBouncer is not installed.
    pub async fn start(
        login: &ConnTarget,
        owner: &ConnTarget,
        jwt_secret: &[u8],
        work: &Path,
        pool_size: u32,
    ) -> anyhow::Result<Option<Bouncer>> {
        if !installed() {
            return Ok(None);
        }
        let (
            ConnTarget::Socket {
                dir,
                port: pg_port,
                user,
                database,
                password,
            },
            ConnTarget::Socket {
                user: owner_user,
                password: owner_password,
                ..
            },
        ) = (login, owner)
        else {
            return Ok(None);
        };
        let root = booking::pg::is_root();
        // as root PgBouncer runs as `postgres`, which may not enter `work`
        let bdir = if root {
            std::env::temp_dir().join(format!("booking-bench-pgbouncer-{}", std::process::id()))
        } else {
            work.join("pgbouncer")
        };
        std::fs::create_dir_all(&bdir)?;
        let port = free_port()?;
        std::fs::write(
            bdir.join("userlist.txt"),
            format!("\"{user}\" \"{password}\"\n"),
        )?;
        let ini = format!(
            "[databases]\n\
             {database} = host={dir} port={pg_port} dbname={database}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = scram-sha-256\n\
             auth_file = {userlist}\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 1000\n\
             server_reset_query = DEALLOCATE ALL\n\
             server_reset_query_always = 1\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {log}\n\
             pidfile = {pid}\n",
            dir = dir.display(),
            userlist = bdir.join("userlist.txt").display(),
            log = bdir.join("pgbouncer.log").display(),
            pid = bdir.join("pgbouncer.pid").display(),
        );
        std::fs::write(bdir.join("pgbouncer.ini"), ini)?;
        let mut cmd = tokio::process::Command::new("pgbouncer");
        // PgBouncer refuses to run as root: as root, it runs as the cluster's
        // own system user (which can also reach the cluster's socket)
        if root {
            let status = std::process::Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&bdir)
                .status()?;
            if !status.success() {
                bail!("cannot hand {} to the postgres user", bdir.display());
            }
            cmd.arg("-u").arg("postgres");
        }
        cmd.arg(bdir.join("pgbouncer.ini"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().context("cannot start pgbouncer")?;
        let owner_url = format!(
            "postgres://{owner_user}:{owner_password}@localhost/{database}?host={}&port={pg_port}",
            dir.display()
        );
        let b = Bouncer {
            child,
            port,
            login_password: password.clone(),
            owner_url,
            jwt_secret: String::from_utf8_lossy(jwt_secret).into_owned(),
            dir: bdir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!(
                    "pgbouncer did not listen within 10 s; see {}",
                    b.dir.join("pgbouncer.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Some(b))
    }

    /// What a `booking serve` needs to serve through this pooler.
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.owner_url.clone()),
            (
                "BOOKING_SERVE_DATABASE_URL".into(),
                format!(
                    "postgres://{}:{}@127.0.0.1:{}/{}",
                    booking::pg::LOGIN_ROLE,
                    self.login_password,
                    self.port,
                    booking::pg::APP_DATABASE
                ),
            ),
            ("BOOKING_JWT_SECRET".into(), self.jwt_secret.clone()),
            ("BOOKING_DB_POOLER".into(), "transaction".into()),
        ]
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        if booking::pg::is_root() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
