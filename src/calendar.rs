//! Bookings as iCalendar (RFC 5545), built with the `icalendar` crate: UID
//! `<booking id>@booking`, SEQUENCE = version − 1, STATUS following the
//! booking, times in UTC, SUMMARY = the resource's name.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use uuid::Uuid;

/// One booking, as a calendar shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub id: Uuid,
    pub resource_name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: String,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

fn event(e: &Entry) -> Event {
    let status = match e.status.as_str() {
        "confirmed" => EventStatus::Confirmed,
        "pending" => EventStatus::Tentative,
        _ => EventStatus::Cancelled, // cancelled, rejected, expired
    };
    Event::new()
        .uid(&format!("{}@booking", e.id))
        .sequence(u32::try_from(e.version - 1).unwrap_or(0))
        .summary(&e.resource_name)
        .starts(e.starts_at)
        .ends(e.ends_at)
        .status(status)
        .timestamp(e.updated_at)
        .last_modified(e.updated_at)
        .created(e.created_at)
        .done()
}

/// A calendar of these bookings, named `name`.
pub fn render(name: &str, entries: &[Entry]) -> String {
    let mut cal = Calendar::new();
    cal.name(name);
    for e in entries {
        cal.push(event(e));
    }
    cal.done().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_has_the_contracts_fields() {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("t")
                .with_timezone(&Utc)
        };
        let e = Entry {
            id: Uuid::nil(),
            resource_name: "Room, 1; \"north\"".into(),
            starts_at: t("2030-01-10T09:00:00Z"),
            ends_at: t("2030-01-10T10:00:00Z"),
            status: "pending".into(),
            version: 3,
            updated_at: t("2029-12-01T08:00:00Z"),
            created_at: t("2029-11-01T08:00:00Z"),
        };
        let text = render("My bookings", &[e]);
        for line in [
            "BEGIN:VCALENDAR",
            "UID:00000000-0000-0000-0000-000000000000@booking",
            "SEQUENCE:2",
            "STATUS:TENTATIVE",
            "DTSTART:20300110T090000Z",
            "DTEND:20300110T100000Z",
            "SUMMARY:Room\\, 1\\; \"north\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.contains("\r\n"), "lines end in CRLF");
    }
}
