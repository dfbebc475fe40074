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

    /// Parses a number the way GoTrue does (SPEC §5.14 on the Supabase surface): the `+`
    /// optional, spaces and separators dropped, then a non-zero digit and 1 to 14 more.
    pub fn parse_lenient(raw: &str) -> Result<Self, FieldError> {
        let compact: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let digits = compact.strip_prefix('+').unwrap_or(&compact);
        let ok =
            (2..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
        if ok {
            Ok(Phone(format!("+{digits}")))
        } else {
            Err(FieldError::new("phone", "invalid_phone", "Invalid phone number format (E.164 required)"))
        }
    }

    /// The digits without the `+`, as GoTrue shows numbers.
    pub fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
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
        assert_eq!(Phone::parse_lenient("1 415 555 0123").unwrap().as_str(), "+14155550123");
        assert_eq!(Phone::parse_lenient("+34123").unwrap().digits(), "34123");
        for bad in ["17654321098-invalid", "invalid-phone", "+0123", "1", ""] {
            assert!(Phone::parse_lenient(bad).is_err(), "{bad}");
        }
    }
}
