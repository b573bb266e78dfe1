//! Account fields: usernames, e-mail addresses, passwords and roles.

use std::fmt;

use serde::{Deserialize, Serialize};
use zxcvbn::feedback::Warning;

use super::text::reject_bidi_controls;

/// A username: 3–32 characters of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if !(3..=32).contains(&len) {
            return Err("must be 3 to 32 characters".into());
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return Err("may contain only letters, digits, '_', '.' and '-'".into());
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A plausible e-mail address: `local@domain.tld`, no whitespace or control
/// characters (so it can never inject a mail header), no bidirectional
/// controls (it is shown to operators), at most 254 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an e-mail address; surrounding whitespace is trimmed.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        let invalid = || Err("must be an e-mail address such as ana@example.com".to_owned());
        if email.len() > 254
            || email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"' | '\\'))
            || reject_bidi_controls(email).is_err()
        {
            return invalid();
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return invalid();
        };
        let labels_ok =
            domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain.contains('.') || !labels_ok {
            return invalid();
        }
        Ok(Self(email.to_owned()))
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A password as given at registration: 8–128 characters, not only
/// whitespace, and not a commonly used password (NIST SP 800-63B §5.1.1.2:
/// check new passwords against values known to be common). No composition
/// rules: a few unrelated words make a good password.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Parses a new password.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if !(8..=128).contains(&len) {
            return Err("must be 8 to 128 characters".into());
        }
        if raw.chars().all(char::is_whitespace) {
            return Err("must not be only whitespace".into());
        }
        if is_common_password(raw) {
            return Err("is a commonly used password and easy to guess; a few unrelated words make a better one".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password's characters, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// No entry of the common-passwords list is longer than 20 characters, nor
/// is any variation of one (they keep the length), so longer passwords are
/// not looked up: a margin above 20, and it keeps zxcvbn's matching, which
/// grows with the length, under a millisecond.
const LONGEST_COMMON_PASSWORD_CHARS: usize = 32;

/// Whether `raw` is, or is a trivial variation of, a password on zxcvbn's
/// list of the 30,000 most common ones (from leaked password dumps): the
/// whole password is one entry, in any capitalisation, reversed or with
/// l33t substitutions (`P@ssw0rd`). zxcvbn is used as the maintained
/// source of that list and of the variation matching; its strength score
/// is not used, so ordinary passphrases are not second-guessed.
fn is_common_password(raw: &str) -> bool {
    if raw.chars().count() > LONGEST_COMMON_PASSWORD_CHARS {
        return false;
    }
    let estimate = zxcvbn::zxcvbn(raw, &[]);
    let is_sole_dictionary_match = estimate.sequence().len() == 1;
    let warning = estimate.feedback().and_then(|feedback| feedback.warning());
    matches!(
        warning,
        Some(Warning::ThisIsATop10Password | Warning::ThisIsATop100Password | Warning::ThisIsACommonPassword)
    ) || (is_sole_dictionary_match && warning == Some(Warning::ThisIsSimilarToACommonlyUsedPassword))
}

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Shops: its own cart and orders.
    Customer,
    /// Runs the shop: catalogue, every order, operations.
    Admin,
}

impl Role {
    /// The role's name as stored and as put in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    /// The role with this stored name.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Customer, Role::Admin].into_iter().find(|role| role.as_str() == name)
    }
}

crate::text_column!(Role);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        assert!(Username::parse("ana").is_ok());
        assert!(Username::parse("a.b-c_9").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("ana smith").is_err());
        assert!(Username::parse("ana\r\nBcc: x").is_err());
    }

    #[test]
    fn emails_are_plausible_and_header_safe() {
        assert!(Email::parse("ana@example.com").is_ok());
        assert!(Email::parse("a.b+tag@mail.example.co.uk").is_ok());
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "ana@example.com\r\nBcc: x@y.z",
            "a b@example.com",
            "<a@b.c>",
            "ana@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_have_bounds_and_are_never_printed() {
        assert!(Password::parse("lamp desk 2025").is_ok());
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let password = Password::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn whitespace_and_common_passwords_are_refused() {
        for blank in ["        ", " \t \n  \u{3000}  ", &" ".repeat(128)] {
            assert_eq!(Password::parse(blank).err().as_deref(), Some("must not be only whitespace"), "{blank:?}");
        }
        for common in
            ["12345678", "password", "PASSWORD", "Password1", "p@ssw0rd", "qwertyuiop", "iloveyou", "sunshine"]
        {
            let message = Password::parse(common).expect_err(common);
            assert!(message.contains("commonly used"), "{common}: {message}");
        }
        for fine in ["correct horse battery", "a long password", "hunter2hunter2", "lamp desk 2025", "Kassa orders 42!"]
        {
            assert!(Password::parse(fine).is_ok(), "{fine} refused: {:?}", Password::parse(fine));
        }
    }

    #[test]
    fn emails_refuse_bidirectional_controls() {
        assert!(Email::parse("ana\u{202E}moc.elpmaxe@example.com").is_err());
        assert!(Email::parse("ana@exa\u{2066}mple.com").is_err());
    }
}
