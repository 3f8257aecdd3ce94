//! A half-open period `[start, end)` with `start < end`, in UTC.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeRange {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<TimeRange, &'static str> {
        if end <= start {
            return Err("end must be after start");
        }
        Ok(TimeRange { start, end })
    }
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
    /// Half-open overlap: touching periods do not overlap.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Parse an RFC 3339 timestamp that carries an offset (`Z` or `+02:00`).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, &'static str> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 timestamp with an offset, like 2030-01-31T09:00:00Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s).expect(s)
    }

    #[test]
    fn adjacent_periods_do_not_overlap() {
        let a = TimeRange::new(t("2030-01-01T09:00:00Z"), t("2030-01-01T10:00:00Z")).expect("a");
        let b = TimeRange::new(t("2030-01-01T10:00:00Z"), t("2030-01-01T11:00:00Z")).expect("b");
        assert!(!a.overlaps(&b));
        let c = TimeRange::new(t("2030-01-01T09:59:00Z"), t("2030-01-01T11:00:00Z")).expect("c");
        assert!(a.overlaps(&c));
    }

    #[test]
    fn empty_and_reversed_periods_are_refused() {
        assert!(TimeRange::new(t("2030-01-01T10:00:00Z"), t("2030-01-01T10:00:00Z")).is_err());
        assert!(TimeRange::new(t("2030-01-01T11:00:00Z"), t("2030-01-01T10:00:00Z")).is_err());
        assert!(parse_instant("2030-01-01T10:00:00").is_err());
        assert!(parse_instant("tomorrow").is_err());
    }
}
