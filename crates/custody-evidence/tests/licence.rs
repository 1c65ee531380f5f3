//! Licence rules: truth tables for OR / AND / WITH / + and deny-wins, unknown licences,
//! and rules that are refused.

#![allow(clippy::unwrap_used, reason = "test code")]

use custody_evidence::licence::{LicenceRules, LicenceRulesError};
use custody_evidence::{Evidence, Format, parse};

fn rules(allow: Option<&[&str]>, deny: &[&str]) -> LicenceRules {
    LicenceRules::new(allow, deny).unwrap()
}

/// Every (expression, allowed?) row against one set of rules.
fn table(r: &LicenceRules, rows: &[(&str, bool)]) {
    for (expr, want) in rows {
        let v = r.evaluate(Some(expr));
        assert_eq!(v.allowed, *want, "{expr}: {}", v.reason);
    }
}

#[test]
fn or_needs_one_side_and_needs_both() {
    let r = rules(Some(&["MIT", "Apache-2.0"]), &[]);
    table(
        &r,
        &[
            ("MIT", true),
            ("GPL-3.0-only", false),
            ("MIT OR GPL-3.0-only", true),
            ("GPL-3.0-only OR MIT", true),
            ("GPL-3.0-only OR LGPL-2.1-only", false),
            ("MIT AND Apache-2.0", true),
            ("MIT AND GPL-3.0-only", false),
            ("(MIT OR GPL-3.0-only) AND Apache-2.0", true),
            ("(MIT AND GPL-3.0-only) OR Apache-2.0", true),
            (
                "(MIT AND GPL-3.0-only) OR (Apache-2.0 AND GPL-2.0-only)",
                false,
            ),
            ("mit or gpl-3.0-only", true), // SPDX ids match whatever their case
            ("MIT or GPL-3.0-only", true),
            ("MIT/GPL-3.0-only", true),
        ],
    );
}

#[test]
fn the_reason_names_the_licences_that_broke_it() {
    let r = rules(Some(&["MIT"]), &["GPL-3.0-only"]);
    let v = r.evaluate(Some("MIT AND GPL-3.0-only"));
    assert!(!v.allowed);
    assert_eq!(
        v.reason,
        "MIT AND GPL-3.0-only is not allowed: GPL-3.0-only is denied"
    );
    let v = r.evaluate(Some("Zlib AND (MIT OR BSD-3-Clause)"));
    assert!(
        v.reason.contains("Zlib is not on the allow list"),
        "{}",
        v.reason
    );
    assert!(r.evaluate(Some("MIT OR GPL-3.0-only")).allowed);
}

#[test]
fn deny_wins_over_allow() {
    let r = rules(Some(&["MIT", "GPL-3.0-only"]), &["GPL-3.0-only"]);
    table(
        &r,
        &[
            ("GPL-3.0-only", false),
            ("MIT OR GPL-3.0-only", true),
            ("MIT AND GPL-3.0-only", false),
        ],
    );
    // Only a deny list: everything else known is allowed.
    let r = rules(None, &["AGPL-3.0-only", "GPL-3.0-only"]);
    table(
        &r,
        &[
            ("MIT", true),
            ("Zlib AND ISC", true),
            ("AGPL-3.0-only", false),
            ("AGPL-3.0-only OR MIT", true),
        ],
    );
}

#[test]
fn with_exceptions() {
    // An entry without an exception covers the licence with any exception (it only grants more).
    let r = rules(Some(&["GPL-2.0-only"]), &[]);
    table(
        &r,
        &[
            ("GPL-2.0-only WITH Classpath-exception-2.0", true),
            ("GPL-2.0-only", true),
        ],
    );
    // An entry with one covers only that pair.
    let r = rules(Some(&["GPL-2.0-only WITH Classpath-exception-2.0"]), &[]);
    table(
        &r,
        &[
            ("GPL-2.0-only WITH Classpath-exception-2.0", true),
            ("GPL-2.0-only", false),
            ("GPL-2.0-only WITH GCC-exception-2.0", false),
        ],
    );
    // Denying the licence denies it with any exception; denying the pair only the pair.
    let r = rules(None, &["GPL-2.0-only"]);
    table(&r, &[("GPL-2.0-only WITH Classpath-exception-2.0", false)]);
    let r = rules(None, &["Apache-2.0 WITH LLVM-exception"]);
    table(
        &r,
        &[
            ("Apache-2.0 WITH LLVM-exception", false),
            ("Apache-2.0", true),
        ],
    );
}

#[test]
fn or_later() {
    let r = rules(Some(&["GPL-3.0-only", "Apache-2.0"]), &[]);
    table(
        &r,
        &[
            ("GPL-2.0-or-later", true), // the recipient may take GPL-3.0
            ("GPL-2.0+", true),         // the deprecated spelling of the same
            ("GPL-2.0-only", false),
            ("GPL-3.0-or-later", true),
            ("Apache-1.0+", true), // Apache-2.0 is a later version
            ("Apache-1.0", false),
        ],
    );
    let r = rules(Some(&["GPL-2.0-only"]), &[]);
    table(
        &r,
        &[
            ("GPL-2.0-or-later", true),
            ("GPL-2.0", true),
            ("GPL-3.0-or-later", false),
        ],
    );
    // Deny is conservative: an or-later grant that reaches a denied version is denied.
    let r = rules(Some(&["GPL-2.0-only"]), &["GPL-3.0-only"]);
    table(&r, &[("GPL-2.0-or-later", false), ("GPL-2.0-only", true)]);
}

#[test]
fn licence_refs_match_only_themselves() {
    let r = rules(Some(&["MIT", "LicenseRef-Acme-Commercial"]), &[]);
    table(
        &r,
        &[
            ("LicenseRef-Acme-Commercial", true),
            ("LicenseRef-Other", false),
            ("MIT AND LicenseRef-Acme-Commercial", true),
        ],
    );
}

#[test]
fn unknown_licences_are_denied_by_default() {
    let r = rules(Some(&["MIT"]), &[]);
    for (licence, needle) in [
        (None, "no licence is declared"),
        (Some("  "), "no licence is declared"),
        (
            Some("License :: OSI Approved :: BSD License"),
            "is not an SPDX expression",
        ),
        (Some("MIT AND"), "is not an SPDX expression"),
        (Some("Foo-1.0"), "is not an SPDX expression"),
    ] {
        let v = r.evaluate(licence);
        assert!(!v.allowed, "{licence:?}");
        assert!(
            v.reason.contains(needle) && v.reason.ends_with("an unknown licence is denied"),
            "{}",
            v.reason
        );
    }
    let lenient = rules(Some(&["MIT"]), &[]).allow_unknown(true);
    assert!(lenient.evaluate(None).allowed);
    assert!(
        !lenient.evaluate(Some("GPL-3.0-only")).allowed,
        "allow_unknown does not allow known licences"
    );
}

#[test]
fn a_deny_list_alone_lets_no_unknown_licence_through() {
    let r = rules(None, &["GPL-3.0-only"]);
    table(
        &r,
        &[
            ("MIT", true),
            ("NOASSERTION", false),
            ("MIT AND NOASSERTION", false),
            ("LicenseRef-Whatever", false),
            ("MIT OR LicenseRef-Whatever", true),
        ],
    );
    let v = r.evaluate(Some("LicenseRef-Whatever"));
    assert!(
        v.reason.contains(
            "LicenseRef-Whatever names no SPDX licence, and an unknown licence is denied"
        ),
        "{}",
        v.reason
    );
    // Allowed when the rules allow unknown licences, or an allow list names it.
    assert!(
        r.clone()
            .allow_unknown(true)
            .evaluate(Some("NOASSERTION"))
            .allowed
    );
    let named = rules(Some(&["MIT", "LicenseRef-Whatever"]), &[]);
    assert!(named.evaluate(Some("LicenseRef-Whatever")).allowed);
    assert!(!named.evaluate(Some("NOASSERTION")).allowed);
}

#[test]
fn ids_match_whatever_their_case() {
    // A lowercase id is the same licence: a deny list denies it, in rules and expressions.
    let r = rules(None, &["gpl-3.0-only"]);
    table(
        &r,
        &[
            ("GPL-3.0-only", false),
            ("gpl-3.0-only", false),
            ("Gpl-3.0-Only", false),
            ("mit and gpl-3.0-only", false),
            ("apache-2.0", true),
            ("GPL-2.0-only WITH classpath-exception-2.0", true),
        ],
    );
    let v = r.evaluate(Some("gpl-3.0-only"));
    assert_eq!(
        v.reason,
        "GPL-3.0-only is not allowed: GPL-3.0-only is denied"
    );
}

#[test]
fn bad_rules_are_refused() {
    let e = LicenceRules::new(Some(&["MIT", "Not A Licence"]), &[]).unwrap_err();
    assert!(
        matches!(&e, LicenceRulesError::BadEntry { list: "allow", entry, .. } if entry == "Not A Licence"),
        "{e}"
    );
    assert!(matches!(
        LicenceRules::new(None, &["MIT OR Apache-2.0"]),
        Err(LicenceRulesError::BadEntry { list: "deny", .. })
    ));
    assert_eq!(
        LicenceRules::new::<&str>(Some(&[]), &[]).unwrap_err(),
        LicenceRulesError::EmptyAllowList
    );
    assert_eq!(
        LicenceRules::new::<&str>(None, &[]).unwrap_err(),
        LicenceRulesError::NoRules
    );
}

#[test]
fn an_sboms_denied_components() {
    let path = format!(
        "{}/testdata/sbom/npm-cyclonedx-1.5.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let Evidence::Sbom(s) = parse(Format::Cyclonedx, &std::fs::read(path).unwrap()).unwrap() else {
        panic!()
    };
    let r = rules(
        Some(&["MIT", "ISC", "BSD-3-Clause", "0BSD", "Python-2.0"]),
        &["GPL-2.0-only", "GPL-3.0-only"],
    );
    let denied: Vec<_> = r
        .denied_components(&s)
        .into_iter()
        .map(|d| (d.name, d.reason))
        .collect();
    // jszip (MIT OR GPL-3.0-or-later) passes by MIT; node-forge (BSD-3-Clause OR GPL-2.0)
    // by BSD-3-Clause; pako needs Zlib too.
    assert_eq!(
        denied,
        [(
            "pako".to_owned(),
            "(MIT AND Zlib) is not allowed: Zlib is not on the allow list".to_owned()
        )]
    );
}
