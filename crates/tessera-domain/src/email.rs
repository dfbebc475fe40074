use std::fmt;
use std::str::FromStr;

use crate::error::FieldError;

/// A syntactically valid email address, trimmed and lower-cased, so that two spellings
/// of one address compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// The domain of [`Email::placeholder`].
const NO_ADDRESS_DOMAIN: &str = "no-address.invalid";

impl Email {
    /// Trims, validates and normalises an address.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let invalid = || FieldError::new("email", "invalid_email", "Enter a valid email address.");
        if trimmed.is_empty() || trimmed.len() > 254 {
            return Err(invalid());
        }
        let normalised = trimmed.to_lowercase();
        let parsed = email_address::EmailAddress::from_str(&normalised).map_err(|_| invalid())?;
        // A deliverable address has a dotted domain and no display-name or literal IP.
        let domain = parsed.domain();
        if !domain.contains('.')
            || domain.starts_with('[')
            || domain.ends_with('.')
            || normalised.contains(char::is_whitespace)
            || normalised != parsed.email()
            || domain == NO_ADDRESS_DOMAIN
        {
            return Err(invalid());
        }
        Ok(Email(normalised))
    }

    /// The placeholder of a user who has no address (an anonymous user, or one a provider
    /// gave none or one already taken): unique, in the reserved `.invalid` domain, and
    /// never accepted from a client, so it can neither be typed nor receive mail.
    pub fn placeholder(unique: &str) -> Email {
        Email(format!("{}@{NO_ADDRESS_DOMAIN}", unique.to_lowercase()))
    }

    /// Whether a stored address is a [`Email::placeholder`].
    pub fn is_placeholder(stored: &str) -> bool {
        stored.ends_with(NO_ADDRESS_DOMAIN) && stored.split_once('@').is_some_and(|(_, d)| d == NO_ADDRESS_DOMAIN)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        let e = Email::parse("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "alice.smith@example.com");
        assert_eq!(e.local_part(), "alice.smith");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "plain", "a@b", "a@@b.com", "a b@c.com", "<a@b.com>", "a@[127.0.0.1]", "Name <a@b.com>"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
