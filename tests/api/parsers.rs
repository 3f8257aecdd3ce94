//! Property tests of the pure parsers in `domain/`: they never panic on any
//! input, and what they accept round-trips.

use booking::domain::time_range::parse_instant;
use booking::domain::{OpeningHours, Phone, TimeRange};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings near what a client might send for a phone: digits, separators,
/// letters, a plus, unicode.
fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[+]?[0-9 ().+-]{0,40}",
        "[+][0-9]{1,3}[ -]?[0-9]{2,5}[ -]?[0-9]{2,8}",
        any::<String>(),
    ]
}

/// Insert separators (one of `allowed`, or none) between the digits of an
/// E.164 number, never right after the `+`.
fn formatted(e164: &str, seps: &[u8], allowed: &[char]) -> String {
    let mut out = String::from("+");
    for (i, d) in e164.trim_start_matches('+').chars().enumerate() {
        if i > 0 {
            let pick = usize::from(seps.get(i).copied().unwrap_or(0)) % (allowed.len() + 2);
            if let Some(c) = allowed.get(pick) {
                out.push(*c);
            }
        }
        out.push(d);
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn phone_parsing_never_panics_and_what_it_accepts_is_e164(s in phone_like()) {
        if let Ok(p) = Phone::parse(&s) {
            let e = p.as_str();
            prop_assert!(e.starts_with('+'));
            prop_assert!(e.len() >= 8 && e.len() <= 16, "{e}");
            prop_assert!(e[1..].chars().all(|c| c.is_ascii_digit()), "{e}");
            // normalising is idempotent
            prop_assert_eq!(Phone::parse(e).map(|q| q.as_str().to_string()), Ok(e.to_string()));
            let _ = p.masked();
        }
    }

    #[test]
    fn spaces_do_not_change_what_a_phone_number_is(
        digits in "[1-9][0-9]{6,13}",
        seps in proptest::collection::vec(any::<u8>(), 16),
    ) {
        let plain = format!("+{digits}");
        let pretty = formatted(&plain, &seps, &[' ']);
        let a = Phone::parse(&plain).ok();
        let b = Phone::parse(&pretty).ok();
        prop_assert_eq!(a, b, "{} vs {}", plain, pretty);
    }

    #[test]
    fn valid_us_numbers_round_trip_in_usual_formats(
        line in 0u32..10_000,
        seps in proptest::collection::vec(any::<u8>(), 16),
    ) {
        let e164 = format!("+1415555{line:04}");
        for text in [
            e164.clone(),
            formatted(&e164, &seps, &[' ']),
            format!("+1 (415) 555-{line:04}"),
            format!("+1-415-555-{line:04}"),
            format!("  +1 415 555 {line:04} "),
        ] {
            let parsed = Phone::parse(&text);
            prop_assert!(parsed.is_ok(), "{} refused: {:?}", text, parsed);
            let parsed = parsed.expect("ok");
            prop_assert_eq!(parsed.as_str(), e164.as_str());
        }
    }

    #[test]
    fn instant_parsing_never_panics(s in prop_oneof![
        "\\PC{0,40}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        any::<String>(),
    ]) {
        if let Ok(t) = parse_instant(&s) {
            // what it accepts prints back to the same instant
            prop_assert_eq!(parse_instant(&t.to_rfc3339()), Ok(t));
        }
    }

    #[test]
    fn any_instant_with_any_offset_round_trips(
        secs in -62_135_500_000i64..253_402_200_000,
        nanos in 0u32..1_000_000_000,
        offset_min in -(23 * 60 + 59)..=(23 * 60 + 59),
        fmt in 0usize..4,
    ) {
        let t = Utc.timestamp_opt(secs, nanos).single().expect("in range");
        let zone = FixedOffset::east_opt(offset_min * 60).expect("offset");
        let local: DateTime<FixedOffset> = t.with_timezone(&zone);
        let text = match fmt {
            0 => local.to_rfc3339(),
            1 => local.to_rfc3339_opts(SecondsFormat::Nanos, false),
            2 => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            _ => format!("  {}  ", local.to_rfc3339()),
        };
        prop_assert_eq!(parse_instant(&text), Ok(t), "{}", text);
    }

    #[test]
    fn a_time_range_exists_exactly_when_start_is_before_end_and_overlap_is_half_open(
        a in -1_000_000i64..1_000_000, la in 1i64..10_000,
        b in -1_000_000i64..1_000_000, lb in 1i64..10_000,
    ) {
        let t = |s: i64| Utc.timestamp_opt(1_900_000_000 + s, 0).single().expect("t");
        prop_assert!(TimeRange::new(t(a), t(a)).is_err());
        prop_assert!(TimeRange::new(t(a + la), t(a)).is_err());
        let x = TimeRange::new(t(a), t(a + la)).expect("x");
        let y = TimeRange::new(t(b), t(b + lb)).expect("y");
        prop_assert_eq!(x.overlaps(&y), y.overlaps(&x));
        prop_assert_eq!(x.overlaps(&y), a < b + lb && b < a + la);
        // touching is not overlapping
        let next = TimeRange::new(t(a + la), t(a + la + lb)).expect("next");
        prop_assert!(!x.overlaps(&next));
    }
}

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::from),
        "[0-2][0-9]:[0-6][0-9]".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("mon".to_string()),
                    Just("sun".to_string()),
                    "[a-z]{1,5}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Valid opening hours: per day, ordered non-overlapping intervals built from
/// sorted cut points in [0, 1440].
fn valid_hours() -> impl Strategy<Value = Value> {
    let day = proptest::collection::btree_set(0u32..=1440, 0..8).prop_map(|cuts| {
        let cuts: Vec<u32> = cuts.into_iter().collect();
        let intervals: Vec<Value> = cuts
            .chunks_exact(2)
            .filter(|p| p[0] < 1440)
            .map(|p| json!([hhmm(p[0]), hhmm(p[1])]))
            .collect();
        Value::Array(intervals)
    });
    proptest::collection::btree_map(
        proptest::sample::select(booking::domain::hours::DAYS.to_vec()),
        day,
        0..8,
    )
    .prop_map(|m| {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Map<String, Value>>(),
        )
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn opening_hours_parsing_never_panics_on_any_json(v in any_json()) {
        if let Ok(h) = OpeningHours::parse(&v) {
            // accepted hours are stable under a second parse
            let once = h.into_value();
            let twice = OpeningHours::parse(&once).expect("reparse").into_value();
            prop_assert_eq!(once, twice);
        }
    }

    #[test]
    fn valid_opening_hours_are_accepted_and_round_trip(v in valid_hours()) {
        let h = OpeningHours::parse(&v);
        prop_assert!(h.is_ok(), "{} refused: {:?}", v, h);
        prop_assert_eq!(h.expect("ok").into_value(), v);
    }

    #[test]
    fn an_interval_that_closes_before_it_opens_is_refused(a in 0u32..1440, b in 0u32..1440) {
        prop_assume!(b <= a);
        let v = json!({"mon": [[hhmm(a), hhmm(b)]]});
        prop_assert!(OpeningHours::parse(&v).is_err());
    }
}

/// Found by the properties above when dots and dashes were allowed anywhere:
/// the `phonenumber` crate refused some valid numbers when a dot or dash
/// followed a digit run that starts with the country code (`+141-555-50000`,
/// `+14.1.5.5.5.5.0.0.0.0`); `Phone::parse` now hands it `+` and the digits.
#[test]
fn dots_and_dashes_anywhere_do_not_change_what_a_phone_number_is() {
    for (text, want) in [
        ("+141-555-50000", "+14155550000"),
        ("+331-42-12-34-56", "+33142123456"),
        ("+1415-5-550000", "+14155550000"),
        ("+141.555.50000", "+14155550000"),
    ] {
        assert_eq!(
            Phone::parse(text).map(|p| p.as_str().to_string()),
            Ok(want.to_string()),
            "{text}"
        );
    }
    proptest!(config(), |(digits in "[1-9][0-9]{6,13}", seps in proptest::collection::vec(any::<u8>(), 16))| {
        let plain = format!("+{digits}");
        let pretty = formatted(&plain, &seps, &[' ', '.', '-']);
        prop_assert_eq!(Phone::parse(&plain).ok(), Phone::parse(&pretty).ok(), "{} vs {}", plain, pretty);
    });
}
