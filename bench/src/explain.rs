//! Plans, as the owner through psql with `role = authenticated` and a user's
//! claims set (so Row Level Security is in the plan); the availability
//! function's inner query comes from auto_explain (nested statements), sent
//! to the client as notices.

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::pgbench::ConnTarget;
use super::setup::claims_json;

/// Run a psql script; returns (stdout, stderr).
pub async fn psql(target: &ConnTarget, script: &str) -> anyhow::Result<(String, String)> {
    let mut cmd = tokio::process::Command::new("psql");
    cmd.arg("-X")
        .arg("-q")
        .arg("-A")
        .arg("-t")
        .arg("-f")
        .arg("-");
    target.apply(&mut cmd);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("cannot run psql")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await?;
        stdin.shutdown().await?;
    }
    let out = child.wait_with_output().await?;
    Ok((
        String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
        String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
    ))
}

fn as_user(user: Uuid, phone: &str) -> String {
    format!(
        "BEGIN;\nSELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{}', true) \\g /dev/null\n",
        claims_json(user, phone)
    )
}

/// The list query the server sends for `GET /v1/bookings?limit=50` (see
/// `db::bookings::list`): custom plan with literals, then the generic plan a
/// long-lived pooled connection ends up using.
pub async fn list(target: &ConnTarget, user: Uuid, phone: &str) -> anyhow::Result<String> {
    let cols = booking::db::bookings::BOOKING_COLUMNS;
    let q = format!("SELECT {cols} FROM booking.bookings b WHERE true AND b.user_id = $1 ORDER BY lower(b.period), b.id LIMIT $2");
    let script = format!(
        "{}\\echo '-- custom plan (literals)'\n\
         EXPLAIN (ANALYZE, BUFFERS) {};\n\
         PREPARE l(uuid, bigint) AS {q};\n\
         SET LOCAL plan_cache_mode = force_generic_plan;\n\
         \\echo '-- generic plan (prepared statement, as a pooled connection runs it)'\n\
         EXPLAIN (ANALYZE, BUFFERS) EXECUTE l('{user}', 51);\n\
         \\echo '-- diagnostic: the same rows and order, b.* instead of the API columns'\n\
         EXPLAIN (ANALYZE, BUFFERS) {};\n\
         ROLLBACK;\n",
        as_user(user, phone),
        q.replace("$1", &format!("'{user}'")).replace("$2", "51"),
        q.replace(cols, "b.*")
            .replace("$1", &format!("'{user}'"))
            .replace("$2", "51"),
    );
    let (out, err) = psql(target, &script).await?;
    Ok(join(out, err))
}

/// `booking.availability` over `[from, to)`: the call, then (auto_explain)
/// the plans of the statements inside it.
pub async fn availability(
    target: &ConnTarget,
    resource: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    minutes: i32,
    user: Uuid,
    phone: &str,
) -> anyhow::Result<String> {
    let f = from.to_rfc3339_opts(SecondsFormat::Secs, true);
    let t = to.to_rfc3339_opts(SecondsFormat::Secs, true);
    let call = format!("booking.availability('{resource}', '{f}', '{t}', {minutes})");
    let script = format!(
        "{who}{warm}ROLLBACK;\n\
         LOAD 'auto_explain';\n\
         SET auto_explain.log_min_duration = 0;\n\
         SET auto_explain.log_analyze = on;\n\
         SET auto_explain.log_buffers = on;\n\
         SET auto_explain.log_nested_statements = on;\n\
         SET auto_explain.log_level = 'notice';\n\
         {who}EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM {call};\n\
         ROLLBACK;\n",
        who = as_user(user, phone),
        // six calls first, as a pooled connection has made them: from the
        // sixth on, plpgsql may switch the inner query to a generic plan
        warm = format!("SELECT count(*) FROM {call} \\g /dev/null\n").repeat(6),
    );
    let (out, err) = psql(target, &script).await?;
    Ok(join(out, err))
}

fn join(out: String, err: String) -> String {
    // psql prints notices as "psql:<stdin>:12: NOTICE:  ..."
    let err: Vec<String> = err
        .lines()
        .map(|l| match l.find("NOTICE:") {
            Some(i) => l[i..].to_string(),
            None => l.to_string(),
        })
        .collect();
    if err.is_empty() {
        out
    } else {
        format!("{out}\n{}", err.join("\n"))
    }
}
