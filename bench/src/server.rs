//! The server under test: the release `booking` binary (`BOOKING_BIN`, or the
//! one beside this executable, as `scripts/bench` builds them), `serve`, as a
//! separate child process (so its memory can be read from /proc), attached to
//! the bench's database with the bench's data dir, and so the same JWT secret.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use booking::config::Config;

pub struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    pub base: String,
    pub log: PathBuf,
    pub pool_size: u32,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    pub async fn start(config: &Config, work: &Path) -> anyhow::Result<Server> {
        Server::start_named(config, work, "server", &[]).await
    }

    /// Another server process (its log `<name>.log`), with `env` on top of
    /// the bench's settings.
    pub async fn start_named(
        config: &Config,
        work: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let exe = match std::env::var_os("BOOKING_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .context("cannot find this executable")?
                .with_file_name("booking"),
        };
        if !exe.exists() {
            bail!(
                "{} does not exist: build it (scripts/bench does) or set BOOKING_BIN",
                exe.display()
            );
        }
        let port = free_port()?;
        let log = work.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("serve")
            .env("BOOKING_ADDR", format!("127.0.0.1:{port}"))
            .env("BOOKING_DATA_DIR", &config.data_dir)
            .env("BOOKING_RATE_LIMITS", "off")
            .env("BOOKING_MAX_ACTIVE_BOOKINGS", "1000000")
            .env("BOOKING_WEBHOOK_ALLOW_PRIVATE", "on")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = Server {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log,
            pool_size: config.db_pool_size,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited during start ({status}); see {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 20)
                );
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the server was not ready within 60 s; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Peak and current resident set size, KiB.
    pub fn rss_kib(&self) -> (Option<u64>, Option<u64>) {
        super::procstat::rss_kib(self.pid)
    }

    /// SIGTERM (graceful), then wait; SIGKILL after 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                self.child.start_kill()?;
                let _ = self.child.wait().await;
                bail!("the server did not stop within 30 s of SIGTERM and was killed")
            }
        }
    }
}

pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
