//! The simulator's closing report.

use std::time::Duration;

use super::check::Violation;
use super::{Observed, SimulateArgs};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Print the table and the invariants; true when the run passed.
pub fn print(
    args: &SimulateArgs,
    targets: &[String],
    o: &Observed,
    elapsed: Duration,
    violations: &[Violation],
) -> bool {
    let mut lat = o.latencies.clone();
    lat.sort();
    let count = |s: u16| o.statuses.get(&s).copied().unwrap_or(0);
    let fivexx: u64 = o
        .statuses
        .iter()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    let attempts: u64 = o.statuses.values().sum::<u64>() + o.transport_errors + o.unavailable;
    let other: u64 = attempts
        - count(200)
        - count(201)
        - count(204)
        - count(409)
        - count(422)
        - count(429)
        - fivexx
        - o.transport_errors
        - o.unavailable;
    println!(
        "scenario   {:?} ({} users, targets: {})",
        args.scenario,
        args.users,
        targets.join(", ")
    );
    println!(
        "attempts   {attempts} in {:.2} s = {:.0} req/s",
        elapsed.as_secs_f64(),
        attempts as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "answers    201: {}  200: {}  204: {}  409: {}  422: {}  429: {}  503+Retry-After: {}  other 5xx: {}  other: {}  no answer: {}",
        count(201),
        count(200),
        count(204),
        count(409),
        count(422),
        count(429),
        o.unavailable,
        fivexx,
        other,
        o.transport_errors
    );
    println!(
        "latency    p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    let confirmed = o.acks.values().filter(|a| !a.cancelled).count();
    println!(
        "bookings   {} acknowledged, {} still confirmed",
        o.acks.len(),
        confirmed
    );
    if violations.is_empty() {
        println!("invariants OK: no overlap per seat, no user overlap, every 201 is in the database as told, no unacknowledged row");
    } else {
        println!("invariants VIOLATED ({}):", violations.len());
        for v in violations.iter().take(20) {
            println!("  {}: {}", v.invariant, v.detail);
        }
    }
    if fivexx > 0 || o.transport_errors > 0 {
        println!(
            "FAILED: {fivexx} server errors and {} requests without an answer",
            o.transport_errors
        );
    }
    violations.is_empty() && fivexx == 0 && o.transport_errors == 0
}
