//! Reading figures back out of EXPLAIN ANALYZE and auto_explain text.

use super::ms;
use std::fmt::Write;

/// Every "Execution Time: 1.234 ms" of an EXPLAIN ANALYZE output, in order.
pub(super) fn execution_times(explain: &str) -> Vec<f64> {
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
pub(super) fn repeated_scan_ms(plan: &str, what: &str) -> Option<(f64, u64)> {
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
pub(super) fn availability_breakdown(explain: &str) -> Option<String> {
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
pub(super) fn statement_ms(block: &str, needle: &str) -> Option<f64> {
    block
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
