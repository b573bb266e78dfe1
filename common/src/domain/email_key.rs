//! The form e-mail addresses are compared in: Unicode NFKC, then full
//! Unicode case folding, then NFKC again (the "NFKC_Casefold" recipe), so
//! `Ana@Example.com`, `ana@example.com`, `ＡＮＡ@example.com` (full-width)
//! and `ana@EXAMPLE.COM` are one account. Two addresses with the same key
//! cannot both register.

use unicode_normalization::UnicodeNormalization;

use super::account::Email;

/// The comparison key of an e-mail address (see the module docs).
pub fn email_key(email: &Email) -> String {
    key_of(email.as_ref())
}

/// The comparison key of any text, e.g. what a user typed to log in.
pub fn key_of(text: &str) -> String {
    let composed: String = text.trim().nfkc().collect();
    unicase::UniCase::new(composed).to_folded_case().nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        email_key(&Email::parse(raw).expect("valid address"))
    }

    #[test]
    fn case_width_and_compatibility_forms_fold_to_one_key() {
        assert_eq!(key("Ana@Example.COM"), "ana@example.com");
        assert_eq!(key("ＡＮＡ@example.com"), "ana@example.com", "full-width letters");
        assert_eq!(key("ﬁona@example.com"), "fiona@example.com", "the fi ligature");
        assert_eq!(key("STRASSE@example.com"), key("straße@example.com"), "full case folding");
        assert_eq!(key("Ångström@example.com"), key("A\u{30a}ngstro\u{308}m@example.com"), "composed or not");
        assert_ne!(key("ana@example.com"), key("anna@example.com"));
    }
}
