//! A system-wide `perf` profile of one extra API create run: which processes
//! take the CPU, and which functions inside the server and PostgreSQL.
//! Separate from the measured runs (perf costs CPU itself).

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::procstat::{proc_stat, Watch};

pub fn available() -> bool {
    std::process::Command::new("perf")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub struct Recording {
    child: tokio::process::Child,
    data: PathBuf,
}

/// `perf record -a` for `secs` seconds.
pub fn start(work: &Path, secs: f64) -> anyhow::Result<Recording> {
    let data = work.join("perf.data");
    let child = tokio::process::Command::new("perf")
        .arg("record")
        .arg("-a")
        .arg("-F")
        .arg("499")
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg("sleep")
        .arg(format!("{secs:.1}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run perf record")?;
    Ok(Recording { child, data })
}

/// What the profile showed.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Share of all samples (both cores, idle included) per process group.
    pub by_group: Vec<(String, f64)>,
    /// Share of the server's samples per binary (kernel, libc, booking).
    pub server_dso: String,
    pub server_top: String,
    pub pg_dso: String,
    pub pg_top: String,
}

async fn report(data: &Path, extra: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("perf")
        .arg("report")
        .arg("-i")
        .arg(data)
        .arg("--stdio")
        .arg("--no-children")
        .args(extra)
        .output()
        .await
        .context("cannot run perf report")?;
    if !out.status.success() {
        bail!(
            "perf report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join("\n"))
}

fn tgid(tid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Sum `pct  dso  [x] symbol` rows per dso.
fn by_dso(text: &str) -> String {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some(pct), Some(dso)) = (it.next(), it.next()) {
            if let Ok(p) = pct.trim_end_matches('%').parse::<f64>() {
                *sums.entry(dso.to_string()).or_default() += p;
            }
        }
    }
    let mut v: Vec<(String, f64)> = sums.into_iter().filter(|(_, p)| *p >= 0.5).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.iter()
        .map(|(d, p)| format!("{p:6.1}%  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn top(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

impl Recording {
    pub async fn finish(mut self, watch: Watch) -> anyhow::Result<Profile> {
        self.child.wait().await?;
        let me = std::process::id();
        // samples per pid, grouped like procstat
        let by_pid = report(&self.data, &["--sort", "pid", "--percent-limit", "0"]).await?;
        let mut groups: BTreeMap<String, f64> = BTreeMap::new();
        for line in by_pid.lines() {
            let mut it = line.split_whitespace();
            let (Some(pct), Some(who)) = (it.next(), it.next()) else {
                continue;
            };
            let Ok(pct) = pct.trim_end_matches('%').parse::<f64>() else {
                continue;
            };
            let (tid, comm) = who.split_once(':').unwrap_or((who, ""));
            let tid: u32 = tid.parse().unwrap_or(0);
            // perf's "pid" is the thread id: find the process it belongs to
            let pid = tgid(tid).unwrap_or(tid);
            let group = if pid == me {
                "load generator (booking-bench)".to_string()
            } else if Some(pid) == watch.server {
                "server (booking serve)".to_string()
            } else if comm == "postgres"
                || (watch.postmaster.is_some() && proc_stat(pid).map(|s| s.1) == watch.postmaster)
            {
                "PostgreSQL".to_string()
            } else if tid == 0 || comm == "swapper" {
                "idle".to_string()
            } else {
                format!("other: {comm}")
            };
            *groups.entry(group).or_default() += pct;
        }
        let mut by_group: Vec<(String, f64)> = groups.into_iter().collect();
        by_group.sort_by(|a, b| b.1.total_cmp(&a.1));
        let server = watch.server.map(|p| p.to_string());
        let server_filter: Vec<&str> = match &server {
            Some(pid) => vec!["--pid", pid],
            None => vec!["--comm", "booking"],
        };
        let pg_filter = ["--comm", "postgres"];
        let breakdown = |filter: &[&str], sort: &str, limit: &str| {
            let mut args: Vec<String> = filter.iter().map(|s| s.to_string()).collect();
            for a in [
                "--sort",
                sort,
                "--percentage",
                "relative",
                "--percent-limit",
                limit,
            ] {
                args.push(a.to_string());
            }
            let data = self.data.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                report(&data, &args).await
            }
        };
        // (`--sort dso` alone folds kernel samples into the user binary:
        // sum the dso,sym rows instead)
        let server_all = breakdown(&server_filter, "dso,sym", "0").await?;
        let pg_all = breakdown(&pg_filter, "dso,sym", "0").await?;
        let (server_dso, server_top) = (by_dso(&server_all), top(&server_all, 25));
        let (pg_dso, pg_top) = (by_dso(&pg_all), top(&pg_all, 25));
        let _ = std::fs::remove_file(&self.data);
        Ok(Profile {
            by_group,
            server_dso,
            server_top,
            pg_dso,
            pg_top,
        })
    }
}
