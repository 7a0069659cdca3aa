//! The one rule by which Infra compares strings that SCIM calls case-insensitive (`caseExact:
//! false`, such as `userName`, `emails.value`, a Group's `displayName`).
//!
//! Only the 26 ASCII letters fold (`A`-`Z` to `a`-`z`); every other code point is compared exactly,
//! and no Unicode normalization is applied. Full Unicode lower-casing would make different people
//! collide: the Kelvin sign `U+212A` lower-cases to an ASCII `k`, so `\u{212A}ate@x` would be
//! `kate@x`; `İ` (U+0130) lower-cases to `i̇`, two code points. Identity providers compare logins
//! the same conservative way, and RFC 7643 leaves the case-insensitive comparison to the service
//! provider. The consequence: `ÄRGER` and `ärger` are two different userNames. Pure.
//!
//! The same rule keys the object name of a User (`directory::naming`), the directory's indexes,
//! and filter, sort and PATCH comparisons (`scim::values`), so a lookup, a filter and the API
//! server's uniqueness always agree.

use std::borrow::Cow;

/// `s` folded for comparison: ASCII letters lower-cased, everything else as it is. Borrows when
/// there is nothing to fold.
pub fn fold_case(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) { Cow::Owned(s.to_ascii_lowercase()) } else { Cow::Borrowed(s) }
}

/// Whether `a` and `b` are the same under [`fold_case`].
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_letters_fold() {
        assert_eq!(fold_case("Kate@Example.COM"), "kate@example.com");
        assert!(same("KATE@x", "kate@x"));
        assert!(matches!(fold_case("kate@x"), Cow::Borrowed(_)));
    }

    #[test]
    fn kelvin_sign_is_not_k() {
        // U+212A KELVIN SIGN lower-cases to ASCII `k` under Unicode rules.
        assert_eq!("\u{212A}".to_lowercase(), "k");
        assert_eq!(fold_case("\u{212A}ate@x"), "\u{212A}ate@x");
        assert!(!same("\u{212A}ate@x", "kate@x"));
        assert!(!same("\u{212A}ate@x", "KATE@x"));
    }

    #[test]
    fn german_sharp_s_is_compared_exactly() {
        // ß upper-cases to "SS" and ẞ (U+1E9E) lower-cases to ß; neither is folded here.
        assert_eq!(fold_case("STRAẞE"), "straẞe");
        assert!(!same("straße", "strasse"));
        assert!(!same("straße", "STRASSE"));
        assert!(!same("straße", "straẞe"));
    }

    #[test]
    fn turkish_dotted_and_dotless_i_are_compared_exactly() {
        // İ (U+0130) lower-cases to "i̇" (two code points); ı (U+0131) upper-cases to I.
        assert_eq!("İ".to_lowercase(), "i\u{307}");
        assert_eq!(fold_case("İnci"), "İnci");
        assert!(!same("İnci", "inci"));
        assert!(!same("ınci", "inci"));
        assert!(!same("ınci", "INCI"));
        // Only the ASCII letters around them fold.
        assert!(!same("İNCİ@X", "İnci@x"));
        assert!(same("İNCI@X", "İnci@x"));
    }

    #[test]
    fn no_unicode_normalization() {
        // é precomposed (U+00E9) and e + combining acute (U+0065 U+0301) stay different.
        assert!(!same("caf\u{e9}", "cafe\u{301}"));
        assert_eq!(fold_case("CAF\u{c9}"), "caf\u{c9}");
    }
}
