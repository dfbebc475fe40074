use std::fmt;

use crate::error::FieldError;

/// Free text a person typed (a name, a location, a bio): trimmed, blank meaning none, at
/// most `max` characters, no control characters but line breaks and tabs. Every broken
/// rule is reported under `field`.
pub fn bounded_text(field: &str, raw: &str, max: usize) -> Result<Option<String>, Vec<FieldError>> {
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let mut errors = Vec::new();
    if value.chars().count() > max {
        errors.push(FieldError::new(field, "too_long", format!("At most {max} characters.")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        errors.push(FieldError::new(field, "invalid_characters", "Control characters are not allowed."));
    }
    if errors.is_empty() {
        Ok(Some(value.to_owned()))
    } else {
        Err(errors)
    }
}

/// A person's name as shown (`full_name`): [`bounded_text`] of at most
/// [`FullName::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a name given under `field` (`full_name`, or the profile's `name`); blank is
    /// no name.
    pub fn parse(field: &str, raw: &str) -> Result<Option<FullName>, Vec<FieldError>> {
        Ok(bounded_text(field, raw, Self::MAX_CHARS)?.map(FullName))
    }

    /// The name, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, for storing.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for FullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(FullName::parse("full_name", "  Ada Lovelace ").unwrap().unwrap().as_str(), "Ada Lovelace");
        assert_eq!(FullName::parse("full_name", "   ").unwrap(), None);
        let long = "é".repeat(FullName::MAX_CHARS + 1);
        let errors = FullName::parse("name", &long).unwrap_err();
        assert_eq!((errors[0].field.as_str(), errors[0].code.as_str()), ("name", "too_long"));
        assert!(FullName::parse("full_name", &"é".repeat(FullName::MAX_CHARS)).is_ok());
        let errors = FullName::parse("full_name", "Ada\u{7}").unwrap_err();
        assert_eq!(errors[0].code, "invalid_characters");
        assert_eq!(bounded_text("bio", "line\nbreak\tand tab", 50).unwrap().as_deref(), Some("line\nbreak\tand tab"));
    }
}
