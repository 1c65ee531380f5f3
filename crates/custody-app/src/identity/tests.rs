//! The identity module's unit tests.

use super::*;

#[test]
fn only_auditors_and_admins_are_privileged() {
    let with = |roles: &[&str]| Authenticated {
        principal: "p".into(),
        auth: Authentication::Local { user: "p".into() },
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    assert!(with(&["viewer", "auditor"]).privileged());
    assert!(with(&["admin"]).privileged());
    assert!(!with(&["approver", "security", "viewer"]).privileged());
    assert!(!with(&[]).privileged());
}

#[test]
fn a_token_asked_for_without_a_term_lasts_ninety_days() {
    let t: CreateToken = serde_json::from_str(r#"{"principal":"argo"}"#).unwrap();
    assert_eq!((t.expires.as_str(), t.description.as_str()), ("90d", ""));
}

#[test]
fn a_token_id_is_tok_and_sixteen_lowercase_hex_digits() {
    assert!(is_token_id("tok0123456789abcdef"));
    for not in [
        "tok0123456789abcde",   // 15 digits
        "tok0123456789abcdef0", // 17
        "tik0123456789abcdef",
        "tok0123456789abcdeF",
        "tok0123456789abcdeg",
        "cst_0123456789abcde",
        "",
    ] {
        assert!(!is_token_id(not), "{not}");
    }
}

#[test]
fn digests_are_the_same_only_byte_for_byte() {
    assert!(same(b"abcd", b"abcd"));
    assert!(same(b"", b""));
    assert!(!same(b"abcd", b"abce"));
    assert!(!same(b"abcd", b"xbcd"));
    assert!(!same(b"abcd", b"abc"));
    // Two differences that would cancel out if they were combined by xor.
    assert!(!same(b"ab", b"ba"));
}
