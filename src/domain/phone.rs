//! Phone numbers in E.164, parsed with a libphonenumber port (not a regex), so
//! `+1 (415) 555-0123` becomes `+14155550123` and impossible numbers fail.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPhone(pub &'static str);

impl Phone {
    pub fn parse(input: &str) -> Result<Phone, InvalidPhone> {
        let s = input.trim();
        if s.is_empty() {
            return Err(InvalidPhone("phone is required"));
        }
        if s.len() > 32 {
            return Err(InvalidPhone("phone is too long"));
        }
        if s.chars().any(|c| c.is_alphabetic()) {
            return Err(InvalidPhone("phone must contain digits only (with optional +, spaces, dashes, dots, parentheses)"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err(InvalidPhone(
                "phone contains characters that are not allowed",
            ));
        }
        if !s.starts_with('+') {
            return Err(InvalidPhone(
                "phone must be in international format, starting with + and the country code",
            ));
        }
        // the separators carry no meaning, and the parser is thrown by some
        // groupings (`+141-555-50000`): hand it `+` and the digits only
        let compact: String = std::iter::once('+')
            .chain(s.chars().filter(char::is_ascii_digit))
            .collect();
        let n =
            phonenumber::parse(None, &compact).map_err(|_| InvalidPhone("not a phone number"))?;
        if !phonenumber::is_valid(&n) {
            return Err(InvalidPhone("not a valid phone number"));
        }
        let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Phone(e164))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: country code and last two digits only.
    pub fn masked(&self) -> String {
        let s = &self.0;
        let tail = &s[s.len().saturating_sub(2)..];
        format!("{}…{}", &s[..s.len().min(3)], tail)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_numbers_normalise_to_e164() {
        for (input, want) in [
            ("+1 (415) 555-0123", "+14155550123"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+49 1512 3456789", "+4915123456789"),
            ("+14155550123", "+14155550123"),
        ] {
            assert_eq!(Phone::parse(input).expect(input).as_str(), want);
        }
    }

    #[test]
    fn impossible_input_is_refused() {
        for input in [
            "",
            "   ",
            "abc",
            "+1 800 FLOWERS",
            "4155550123",
            "+1234",
            &"9".repeat(40),
            "+999 123 456 789",
            "+1 415 555 0123; drop",
        ] {
            assert!(Phone::parse(input).is_err(), "{input:?} accepted");
        }
    }
}
