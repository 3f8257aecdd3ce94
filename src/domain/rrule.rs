//! The RFC 5545 RRULE subset of recurring series: `FREQ=DAILY|WEEKLY`,
//! `INTERVAL`, `BYDAY` (with WEEKLY), and exactly one of `COUNT` (1-100) or
//! `UNTIL`. Parsed and checked here for clear 422s; the occurrences are
//! expanded by the database (`booking.series_starts`) in the resource's time
//! zone, with the same tz rules that judge every booking — so the instants a
//! series asks for and the rules that accept them cannot disagree.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// The parts of an RRULE the database expands.
#[derive(Debug, Clone)]
pub struct Rule {
    pub freq: String,
    pub interval: i32,
    pub byday: Option<Vec<String>>,
    pub count: Option<i32>,
    pub until: Option<DateTime<Utc>>,
    /// The rule as given (without `RRULE:`), kept with the series.
    pub text: String,
}

const DAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// Parse an RRULE (with or without the `RRULE:` prefix); the error says why.
pub fn parse(text: &str) -> Result<Rule, String> {
    let body = text.trim();
    let body = body
        .strip_prefix("RRULE:")
        .or_else(|| body.strip_prefix("rrule:"))
        .unwrap_or(body);
    if body.is_empty() || body.len() > 200 {
        return Err(
            "must be an RRULE such as FREQ=WEEKLY;COUNT=10 (at most 200 characters)".into(),
        );
    }
    let (mut freq, mut interval, mut byday, mut count, mut until) = (None, None, None, None, None);
    for part in body.split(';') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not NAME=VALUE"))?;
        let k = k.trim().to_ascii_uppercase();
        let v = v.trim();
        let dup = |seen: bool| {
            if seen {
                Err(format!("{k} is given twice"))
            } else {
                Ok(())
            }
        };
        match k.as_str() {
            "FREQ" => {
                dup(freq.is_some())?;
                let f = v.to_ascii_uppercase();
                if f != "DAILY" && f != "WEEKLY" {
                    return Err(format!("FREQ={v} is not supported; use DAILY or WEEKLY"));
                }
                freq = Some(f);
            }
            "INTERVAL" => {
                dup(interval.is_some())?;
                interval = Some(
                    v.parse::<i32>()
                        .ok()
                        .filter(|n| (1..=52).contains(n))
                        .ok_or("INTERVAL must be a whole number from 1 to 52")?,
                );
            }
            "BYDAY" => {
                dup(byday.is_some())?;
                let mut days = Vec::new();
                for d in v.split(',') {
                    let d = d.trim().to_ascii_uppercase();
                    if !DAYS.contains(&d.as_str()) {
                        return Err(format!(
                            "BYDAY: `{d}` is not one of MO, TU, WE, TH, FR, SA, SU"
                        ));
                    }
                    if !days.contains(&d) {
                        days.push(d);
                    }
                }
                byday = Some(days);
            }
            "COUNT" => {
                dup(count.is_some())?;
                count = Some(
                    v.parse::<i32>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or("COUNT must be a whole number from 1 to 100")?,
                );
            }
            "UNTIL" => {
                dup(until.is_some())?;
                until = Some(parse_until(v)?);
            }
            "WKST" if v.eq_ignore_ascii_case("MO") => {}
            other => {
                return Err(format!(
                    "{other} is not supported (FREQ, INTERVAL, BYDAY, COUNT, UNTIL)"
                ))
            }
        }
    }
    let freq = freq.ok_or("FREQ is required")?;
    if byday.is_some() && freq != "WEEKLY" {
        return Err("BYDAY is supported with FREQ=WEEKLY only".into());
    }
    if count.is_some() == until.is_some() {
        return Err("exactly one of COUNT or UNTIL is required".into());
    }
    Ok(Rule {
        freq,
        interval: interval.unwrap_or(1),
        byday,
        count,
        until,
        text: body.to_string(),
    })
}

/// `UNTIL`: a UTC date-time (`20270131T090000Z`) or a date (`20270131`, the
/// whole of that UTC day).
fn parse_until(v: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%SZ") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y%m%d") {
        if let Some(t) = d.and_hms_opt(23, 59, 59) {
            return Ok(t.and_utc());
        }
    }
    Err(format!(
        "UNTIL `{v}` must be a UTC date-time like 20270131T090000Z or a date like 20270131"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_parses() {
        let r = parse("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,we,MO;COUNT=10").expect("rule");
        assert_eq!(r.freq, "WEEKLY");
        assert_eq!(r.interval, 2);
        assert_eq!(r.byday, Some(vec!["MO".to_string(), "WE".to_string()]));
        assert_eq!(r.count, Some(10));
        let r = parse("FREQ=DAILY;UNTIL=20270131T090000Z").expect("rule");
        assert_eq!(
            r.until.map(|t| t.to_rfc3339()),
            Some("2027-01-31T09:00:00+00:00".into())
        );
        assert!(parse("FREQ=DAILY;UNTIL=20270131").is_ok());
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "FREQ=MONTHLY;COUNT=2",
            "FREQ=DAILY",
            "FREQ=DAILY;COUNT=2;UNTIL=20270101",
            "FREQ=DAILY;COUNT=101",
            "FREQ=DAILY;COUNT=0",
            "FREQ=DAILY;BYDAY=MO;COUNT=2",
            "FREQ=WEEKLY;BYDAY=XX;COUNT=2",
            "FREQ=WEEKLY;INTERVAL=0;COUNT=2",
            "FREQ=WEEKLY;BYMONTH=1;COUNT=2",
            "FREQ=WEEKLY;COUNT=2;COUNT=3",
            "FREQ=DAILY;UNTIL=tomorrow",
            "COUNT=3",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
