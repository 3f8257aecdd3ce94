//! Where the CPU goes during a phase, from `/proc`: the server process, the
//! PostgreSQL processes of our cluster (the postmaster and its children), the
//! load generator (this process, or pgbench), and everything else on the
//! machine. On a 2-core box that split explains most throughput gaps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The processes we account for by name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch {
    pub server: Option<u32>,
    pub postmaster: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    Pg,
    Server,
    Bench,
    Pgbench,
}

/// CPU time used during a phase, in core-seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsage {
    pub wall: f64,
    pub cores: usize,
    pub pg: f64,
    pub server: f64,
    pub bench: f64,
    pub pgbench: f64,
    /// Busy time of the whole machine not explained by the groups above.
    pub other: f64,
}

impl CpuUsage {
    pub fn capacity(&self) -> f64 {
        self.wall * self.cores as f64
    }
    fn pct(&self, x: f64) -> f64 {
        if self.capacity() > 0.0 {
            100.0 * x / self.capacity()
        } else {
            0.0
        }
    }
    pub fn pg_pct(&self) -> f64 {
        self.pct(self.pg)
    }
    pub fn server_pct(&self) -> f64 {
        self.pct(self.server)
    }
    /// The load generator: this process or pgbench.
    pub fn loadgen(&self) -> f64 {
        self.bench + self.pgbench
    }
    pub fn loadgen_pct(&self) -> f64 {
        self.pct(self.loadgen())
    }
    pub fn other_pct(&self) -> f64 {
        self.pct(self.other)
    }
    pub fn idle_pct(&self) -> f64 {
        (100.0 - self.pct(self.pg + self.server + self.loadgen() + self.other)).max(0.0)
    }
}

pub fn ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// (comm, ppid, utime + stime in ticks) of one process.
pub fn proc_stat(pid: u32) -> Option<(String, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, ppid, utime + stime))
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Busy ticks of the whole machine (all cores) from /proc/stat.
fn machine_busy() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
}

struct Tracked {
    group: Group,
    base: u64,
    last: u64,
}

fn sample(watch: &Watch, me: u32, first: bool, seen: &mut HashMap<u32, Tracked>) {
    for pid in all_pids() {
        let Some((comm, ppid, t)) = proc_stat(pid) else {
            continue;
        };
        let group = if pid == me {
            Group::Bench
        } else if Some(pid) == watch.server {
            Group::Server
        } else if watch.postmaster.is_some()
            && (Some(pid) == watch.postmaster || Some(ppid) == watch.postmaster)
        {
            Group::Pg
        } else if comm == "pgbench" && ppid == me {
            Group::Pgbench
        } else {
            continue;
        };
        match seen.get_mut(&pid) {
            Some(tr) if tr.group == group && t >= tr.last => tr.last = t,
            Some(_) => {}
            None => {
                seen.insert(
                    pid,
                    Tracked {
                        group,
                        base: if first { t } else { 0 },
                        last: t,
                    },
                );
            }
        }
    }
}

/// A background sampler; [`Monitor::finish`] returns the usage since start.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<CpuUsage>,
}

impl Monitor {
    pub fn start(watch: Watch) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let me = std::process::id();
            let started = Instant::now();
            let busy0 = machine_busy().unwrap_or(0);
            let mut seen = HashMap::new();
            sample(&watch, me, true, &mut seen);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                sample(&watch, me, false, &mut seen);
            }
            let busy1 = machine_busy().unwrap_or(busy0);
            let wall = started.elapsed().as_secs_f64();
            let tps = ticks_per_sec();
            let mut by = HashMap::<Group, u64>::new();
            for tr in seen.values() {
                *by.entry(tr.group).or_default() += tr.last.saturating_sub(tr.base);
            }
            let get = |g: Group| by.get(&g).copied().unwrap_or(0) as f64 / tps;
            let ours =
                get(Group::Pg) + get(Group::Server) + get(Group::Bench) + get(Group::Pgbench);
            let busy = busy1.saturating_sub(busy0) as f64 / tps;
            CpuUsage {
                wall,
                cores: cores(),
                pg: get(Group::Pg),
                server: get(Group::Server),
                bench: get(Group::Bench),
                pgbench: get(Group::Pgbench),
                other: (busy - ours).max(0.0),
            }
        });
        Monitor { stop, handle }
    }

    pub fn finish(self) -> CpuUsage {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Processes of someone else's build (cargo, rustc, linkers), not our ancestors.
pub fn foreign_builds() -> Vec<String> {
    const BUILD: [&str; 9] = [
        "cargo",
        "rustc",
        "clippy-driver",
        "rustdoc",
        "cc1",
        "cc1plus",
        "ld",
        "rust-lld",
        "collect2",
    ];
    let mut ancestors = Vec::new();
    let mut p = std::process::id();
    while p > 1 {
        ancestors.push(p);
        match proc_stat(p) {
            Some((_, ppid, _)) => p = ppid,
            None => break,
        }
    }
    all_pids()
        .into_iter()
        .filter(|pid| !ancestors.contains(pid))
        .filter_map(|pid| {
            let (comm, _, _) = proc_stat(pid)?;
            BUILD
                .contains(&comm.as_str())
                .then(|| format!("{comm}({pid})"))
        })
        .collect()
}

/// Peak and current resident set size of a process, KiB (VmHWM, VmRSS).
pub fn rss_kib(pid: u32) -> (Option<u64>, Option<u64>) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    (field("VmHWM:"), field("VmRSS:"))
}
