use std::fmt;

use crate::error::FieldError;

/// A phone number in E.164 form: `+`, a non-zero digit, then 7 to 14 more digits.
/// Spaces, dashes, dots and parentheses are accepted as separators and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses and normalises a phone number.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let compact: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let invalid = || {
            FieldError::new(
                "phone",
                "invalid_phone",
                "Enter the phone number in international E.164 form, e.g. +14155550123.",
            )
        };
        let digits = compact.strip_prefix('+').ok_or_else(invalid)?;
        let ok =
            (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
        if ok {
            Ok(Phone(compact))
        } else {
            Err(invalid())
        }
    }

    /// The normalised number, e.g. `+14155550123`.
    pub fn as_str(&self) -> &str {
        &self.0
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
    fn e164() {
        assert_eq!(Phone::parse("+1 (415) 555-0123").unwrap().as_str(), "+14155550123");
        for bad in ["14155550123", "+0123456789", "+12", "+1234567890123456", "+1415abc0123", ""] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }
}
