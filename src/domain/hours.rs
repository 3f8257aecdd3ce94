//! Opening hours: `mon`..`sun` mapped to lists of `["HH:MM","HH:MM"]` local-time
//! intervals (`24:00` allowed as an end). `null` means always open. Intervals of
//! one day must be ordered and must not overlap.

use serde_json::{Map, Value};

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, PartialEq)]
pub struct OpeningHours(Value);

fn minutes(s: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if h == 24 && m == 0 && allow_24 {
        return Some(1440);
    }
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl OpeningHours {
    /// Parse the JSON value (not null). Errors are messages for the field.
    pub fn parse(v: &Value) -> Result<OpeningHours, String> {
        let obj = v
            .as_object()
            .ok_or("must be an object mapping mon..sun to lists of [\"HH:MM\",\"HH:MM\"]")?;
        let mut out = Map::new();
        for (day, list) in obj {
            if !DAYS.contains(&day.as_str()) {
                return Err(format!(
                    "`{day}` is not one of mon, tue, wed, thu, fri, sat, sun"
                ));
            }
            out.insert(day.clone(), parse_intervals(day, list)?);
        }
        Ok(OpeningHours(Value::Object(out)))
    }

    pub fn into_value(self) -> Value {
        self.0
    }
}

/// One day's list of `["HH:MM","HH:MM"]` intervals, in order, not overlapping.
fn parse_intervals(day: &str, list: &Value) -> Result<Value, String> {
    let items = list
        .as_array()
        .ok_or(format!("{day}: must be a list of intervals"))?;
    let mut prev_end = 0;
    let mut norm = Vec::new();
    for (i, iv) in items.iter().enumerate() {
        let pair = iv.as_array().filter(|a| a.len() == 2);
        let (a, b) = match pair.map(|p| (p[0].as_str(), p[1].as_str())) {
            Some((Some(a), Some(b))) => (a, b),
            _ => return Err(format!("{day}[{i}]: must be [\"HH:MM\",\"HH:MM\"]")),
        };
        let open = minutes(a, false).ok_or(format!("{day}[{i}]: `{a}` is not a time HH:MM"))?;
        let close = minutes(b, true).ok_or(format!("{day}[{i}]: `{b}` is not a time HH:MM"))?;
        if close <= open {
            return Err(format!("{day}[{i}]: closes before it opens"));
        }
        if i > 0 && open < prev_end {
            return Err(format!(
                "{day}[{i}]: overlaps or precedes the interval before it"
            ));
        }
        prev_end = close;
        norm.push(Value::from(vec![a.to_string(), b.to_string()]));
    }
    Ok(Value::Array(norm))
}

/// At most this many dated overrides per resource.
pub const MAX_DATE_OVERRIDES: usize = 1000;

/// `{"YYYY-MM-DD": [intervals]}`: each key a real date, each value like one
/// day of opening hours (`[]`: closed all day).
pub fn parse_date_overrides(v: &Value) -> Result<Value, String> {
    let obj = v
        .as_object()
        .ok_or("must be an object mapping YYYY-MM-DD to lists of [\"HH:MM\",\"HH:MM\"]")?;
    if obj.len() > MAX_DATE_OVERRIDES {
        return Err(format!("at most {MAX_DATE_OVERRIDES} dates"));
    }
    let mut out = Map::new();
    for (date, list) in obj {
        let ok = date.len() == 10 && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok();
        if !ok {
            return Err(format!("`{date}` is not a date YYYY-MM-DD"));
        }
        out.insert(date.clone(), parse_intervals(date, list)?);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn good_hours_parse() {
        let v = json!({"mon": [["09:00","12:00"],["13:00","17:00"]], "sat": [["10:00","24:00"]], "sun": []});
        assert!(OpeningHours::parse(&v).is_ok());
    }

    #[test]
    fn date_overrides_parse_and_refuse() {
        assert!(parse_date_overrides(
            &json!({"2030-12-24": [["09:00","12:00"]], "2030-12-25": []})
        )
        .is_ok());
        for v in [
            json!([]),
            json!({"2030-02-30": []}),
            json!({"24.12.2030": []}),
            json!({"2030-12-24": [["12:00","09:00"]]}),
        ] {
            assert!(parse_date_overrides(&v).is_err(), "{v} accepted");
        }
    }

    #[test]
    fn bad_hours_are_refused() {
        for v in [
            json!([]),
            json!({"monday": []}),
            json!({"mon": [["9:00","12:00"]]}),
            json!({"mon": [["12:00","09:00"]]}),
            json!({"mon": [["09:00","12:00"],["11:00","13:00"]]}),
            json!({"mon": [["24:00","24:00"]]}),
            json!({"mon": [["09:00"]]}),
            json!({"mon": "09:00-17:00"}),
        ] {
            assert!(OpeningHours::parse(&v).is_err(), "{v} accepted");
        }
    }
}
