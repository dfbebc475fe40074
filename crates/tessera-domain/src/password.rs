use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use crate::email::Email;
use crate::error::FieldError;

/// The common-password list shipped with the binary (see `data/README.md`).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt").lines().map(str::trim).filter(|l| !l.is_empty()).collect()
});

/// How many entries the shipped common-password list holds.
pub fn common_password_count() -> usize {
    COMMON_PASSWORDS.len()
}

/// A password as it is hashed and compared: Unicode NFKC (NIST SP 800-63B-4 §3.1.1.2),
/// so the same passphrase typed on two keyboards (a precomposed "é" or "e" + U+0301, a
/// full-width "Ａ") is the same password. ASCII passwords are returned as they are.
pub fn normalize_password(password: &str) -> Cow<'_, str> {
    if password.is_ascii() || is_nfkc_quick(password.chars()) == IsNormalized::Yes {
        Cow::Borrowed(password)
    } else {
        Cow::Owned(password.nfkc().collect())
    }
}

/// What `char::is_whitespace` matches (Unicode White_Space), as the inside of a regular
/// expression's character class, for the patterns of the API document.
pub const WHITESPACE_CLASS: &str = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// What `char::is_control` matches (C0, DEL and C1), as the inside of a character class.
pub const CONTROL_CLASS: &str = r"\x00-\x1f\x7f-\x9f";

/// A special character: not an ASCII letter or digit, not whitespace, not a control.
fn is_special(c: char) -> bool {
    !c.is_ascii_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

/// The rules a new password must satisfy (SPEC §5.1). Every rule can be configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    pub require_special: bool,
    pub reject_common: bool,
    pub reject_email: bool,
}

/// The default policy of SPEC §5.1 (the server's defaults live in the settings table;
/// this one is for the rules' own tests).
#[cfg(test)]
impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 128,
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_special: true,
            reject_common: true,
            reject_email: true,
        }
    }
}

impl PasswordPolicy {
    /// A regular expression (ECMA-262 and Python alike) that matches exactly the
    /// passwords meeting the length, character-class and control-character rules; the
    /// common-password and email rules cannot be written as one.
    pub fn pattern(&self) -> String {
        let any = format!("[^{CONTROL_CLASS}]");
        let mut p = String::from("^");
        let mut need = |on: bool, class: &str| {
            if on {
                p.push_str(&format!("(?={any}*{class})"));
            }
        };
        need(self.require_uppercase, "[A-Z]");
        need(self.require_lowercase, "[a-z]");
        need(self.require_digit, "[0-9]");
        need(self.require_special, &format!("[^A-Za-z0-9{WHITESPACE_CLASS}{CONTROL_CLASS}]"));
        p.push_str(&format!("{any}{{{},{}}}$", self.min_length, self.max_length));
        p
    }

    /// Checks `password` against every rule and returns all the rules it breaks, each as
    /// a field error on `field`. Length and character classes are those of the password
    /// as typed, so that [`PasswordPolicy::pattern`] describes them exactly: letters and
    /// digits are ASCII (`A`–`Z`, `a`–`z`, `0`–`9`), a special character is anything else
    /// but whitespace, and control characters are refused. The common-password and email
    /// rules look at the normalised form (the one that is hashed).
    pub fn check(&self, field: &str, password: &str, email: Option<&Email>) -> Result<(), Vec<FieldError>> {
        let mut broken = Vec::new();
        // Cc: C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F).
        if password.chars().any(char::is_control) {
            broken.push(FieldError::new(
                field,
                "password_control_character",
                "The password must not contain control characters (such as NUL, tab or newline).",
            ));
        }
        let len = password.chars().count();
        if len < self.min_length {
            broken.push(FieldError::new(
                field,
                "password_too_short",
                format!("The password must be at least {} characters long.", self.min_length),
            ));
        }
        if len > self.max_length {
            broken.push(FieldError::new(
                field,
                "password_too_long",
                format!("The password must be at most {} characters long.", self.max_length),
            ));
        }
        if self.require_uppercase && !password.chars().any(|c| c.is_ascii_uppercase()) {
            broken.push(FieldError::new(
                field,
                "password_no_uppercase",
                "The password must contain an upper-case letter.",
            ));
        }
        if self.require_lowercase && !password.chars().any(|c| c.is_ascii_lowercase()) {
            broken.push(FieldError::new(
                field,
                "password_no_lowercase",
                "The password must contain a lower-case letter.",
            ));
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            broken.push(FieldError::new(field, "password_no_digit", "The password must contain a digit."));
        }
        if self.require_special && !password.chars().any(is_special) {
            broken.push(FieldError::new(
                field,
                "password_no_special",
                "The password must contain a special character.",
            ));
        }
        let normal = normalize_password(password).to_lowercase();
        if self.reject_common && COMMON_PASSWORDS.contains(normal.as_str()) {
            broken.push(FieldError::new(field, "password_too_common", "This password is too common."));
        }
        if self.reject_email {
            if let Some(email) = email {
                let local = email.local_part();
                if local.chars().count() >= 3 && normal.contains(local) {
                    broken.push(FieldError::new(
                        field,
                        "password_contains_email",
                        "The password must not contain your email address.",
                    ));
                }
            }
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(r: Result<(), Vec<FieldError>>) -> Vec<String> {
        r.err().unwrap_or_default().into_iter().map(|e| e.code).collect()
    }

    #[test]
    fn ships_at_least_ten_thousand_common_passwords() {
        assert!(common_password_count() >= 10_000, "{}", common_password_count());
    }

    #[test]
    fn names_every_broken_rule() {
        let p = PasswordPolicy::default();
        assert_eq!(
            codes(p.check("password", "xqzv", None)),
            ["password_too_short", "password_no_uppercase", "password_no_digit", "password_no_special"]
        );
        assert!(p.check("password", "Str0ng!Passphrase", None).is_ok());
        assert_eq!(codes(p.check("password", &"Aa1!".repeat(40), None)), ["password_too_long"]);
    }

    #[test]
    fn rejects_common_and_email() {
        let p = PasswordPolicy { require_uppercase: false, require_special: false, ..Default::default() };
        assert_eq!(codes(p.check("password", "password1", None)), ["password_too_common"]);
        let email = Email::parse("johnsmith@example.com").unwrap();
        assert_eq!(
            codes(PasswordPolicy::default().check("password", "JohnSmith#2024x", Some(&email))),
            ["password_contains_email"]
        );
    }

    #[test]
    fn refuses_control_characters_and_measures_the_password_as_typed() {
        let p = PasswordPolicy::default();
        for bad in ["Str0ng!\0Passphrase", "Str0ng!\tPassphrase", "Str0ng!\u{7f}Pass", "Str0ng!\u{85}Pass"] {
            assert_eq!(codes(p.check("password", bad, None)), ["password_control_character"], "{bad:?}");
        }
        // "ﬃ" is one character as typed ("ffi" once normalised, which is what is hashed).
        let relaxed = PasswordPolicy {
            min_length: 3,
            require_uppercase: false,
            require_digit: false,
            require_special: false,
            reject_common: false,
            ..Default::default()
        };
        assert_eq!(codes(relaxed.check("password", "\u{fb03}", None)), ["password_too_short", "password_no_lowercase"]);
        // Letters and digits are ASCII; anything else that is not whitespace is special.
        assert_eq!(codes(p.check("password", "ÀÉÎÕÜ1!ab", None)), ["password_no_uppercase"]);
        assert!(p.check("password", "Abcdefg1é", None).is_ok());
        assert_eq!(normalize_password("Caf\u{e9}"), normalize_password("Cafe\u{301}"));
        assert_eq!(normalize_password("\u{ff21}bc"), "Abc");
        assert!(matches!(normalize_password("plain ascii"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_pattern_spells_out_the_length_and_class_rules() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.pattern(),
            format!(
                "^(?=[^{c}]*[A-Z])(?=[^{c}]*[a-z])(?=[^{c}]*[0-9])(?=[^{c}]*[^A-Za-z0-9{w}{c}])[^{c}]{{8,128}}$",
                c = CONTROL_CLASS,
                w = WHITESPACE_CLASS
            )
        );
        let none = PasswordPolicy {
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_special: false,
            ..Default::default()
        };
        assert_eq!(none.pattern(), format!("^[^{CONTROL_CLASS}]{{8,128}}$"));
    }

    #[test]
    fn rules_can_be_relaxed() {
        let p = PasswordPolicy {
            min_length: 4,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_special: false,
            reject_common: false,
            reject_email: false,
            ..Default::default()
        };
        assert!(p.check("password", "abcd", None).is_ok());
    }
}
