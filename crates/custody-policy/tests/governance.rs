//! Who may change the policy, with which keys people approve, and what a new version
//! changes, said plainly: every field a gate reads shows up in the diff, in the right
//! direction.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_crypto::{PrivateKey, Signer as _};
use custody_policy::{Direction, Policy, Role, compile, diff, loosens};
use fixture::{NOW, POLICY, bundle, keys};

fn compiled(text: &str) -> Policy {
    compile(&bundle(text, &keys())).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn edited(from: &str, to: &str) -> String {
    assert!(POLICY.contains(from), "{from:?} not in the fixture");
    POLICY.replacen(from, to, 1)
}

const GOVERNED: &str = "[governance]\nowners = [\"security\"]\nquorum = 2\n";

fn governed() -> String {
    edited(
        "security = [\"sam\"]",
        "security = [\"sam\", \"sue\", \"sid\"]",
    ) + GOVERNED
}

#[track_caller]
fn change(before: &str, after: &str, direction: Direction, needle: &str) {
    let changes = diff(&compiled(before), &compiled(after));
    assert!(
        changes
            .iter()
            .any(|c| c.direction == direction && c.what.contains(needle)),
        "no {direction} change containing {needle:?}: {changes:#?}"
    );
}

#[test]
fn without_governance_the_security_role_owns_the_policy_with_one_approval() {
    let policy = compiled(POLICY);
    assert_eq!(policy.governance().owners, vec![Role::Security]);
    assert_eq!(policy.governance().quorum, 1);
    assert!(policy.owns("sam", NOW));
    assert!(!policy.owns("alice", NOW));
    // One owner cannot approve their own change: nobody could approve one.
    assert!(!policy.governed(NOW));
    assert!(compiled(&governed()).governed(NOW));
}

#[test]
fn a_quorum_the_owners_cannot_reach_without_the_proposer_is_refused_at_its_line() {
    let text = POLICY.to_owned() + GOVERNED;
    let err = compile(&bundle(&text, &keys())).unwrap_err().to_string();
    assert!(
        err.contains(
            "a quorum of 2 owners other than the proposer needs at least 3 people holding security"
        ),
        "{err}"
    );
    let zero = governed().replace("quorum = 2", "quorum = 0");
    let err = compile(&bundle(&zero, &keys())).unwrap_err().to_string();
    assert!(err.contains("quorum of 0"), "{err}");
    let nobody = governed().replace("owners = [\"security\"]", "owners = [\"overlord\"]");
    let err = compile(&bundle(&nobody, &keys())).unwrap_err().to_string();
    assert!(err.contains("unknown role \"overlord\""), "{err}");
}

#[test]
fn an_owner_whose_grant_ended_no_longer_owns_and_never_leaves_the_policy_ungoverned() {
    // On top of enough lasting owners: sid's grant ends, the policy stays governed.
    let text = governed().replace(
        "\"sid\"]",
        "\"sid\", { principal = \"sol\", until = \"2026-11-18T12:00:00Z\" }]",
    );
    let policy = compiled(&text);
    let ended = 1_795_003_200; // 2026-11-18T12:00:00Z
    assert!(policy.owns("sol", ended - 1));
    assert!(!policy.owns("sol", ended));
    assert!(policy.governed(ended) && policy.names_a_quorum());
    // Instead of them: refused, since the date passing would leave nobody to approve.
    let instead = governed().replace(
        "\"sid\"]",
        "{ principal = \"sid\", until = \"2026-11-18T12:00:00Z\" }]",
    );
    let err = custody_policy::compile(&bundle(&instead, &keys())).unwrap_err();
    assert!(
        err.to_string()
            .contains("needs at least 3 owners whose grants do not end"),
        "{err}"
    );
    // A policy recorded before that rule: once its owner's grant ends nobody can approve
    // a change, but it still names a quorum, so its operator cannot replace it alone.
    let recorded = custody_policy::compile_recorded(&bundle(&instead, &keys())).unwrap();
    assert!(!recorded.governed(ended) && recorded.names_a_quorum());
}

fn with_person_key(
    text: &str,
    principal: &str,
    key: &PrivateKey,
    path: &str,
) -> custody_policy::Bundle {
    let mut b = bundle(
        &format!("{text}\n[[person_key]]\nprincipal = \"{principal}\"\npath = \"{path}\"\n"),
        &keys(),
    );
    b.files.insert(path.into(), key.public_key().to_pem());
    b
}

#[test]
fn a_person_key_belongs_to_one_person_and_serves_no_other_purpose() {
    let bob = PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    let policy = compile(&with_person_key(POLICY, "bob", &bob, "keys/bob.pub")).unwrap();
    let id = bob.public_key().key_id().to_string();
    assert_eq!(policy.person_key(&id).unwrap().principal, "bob");
    assert!(policy.person_key("0000").is_none());

    // The release key enrolled as someone's approval key.
    let b = with_person_key(POLICY, "bob", &keys().release, "keys/release.pub");
    let err = compile(&b).unwrap_err().to_string();
    assert!(err.contains("already a release or builder key"), "{err}");

    // One key, two people.
    let mut b = with_person_key(POLICY, "bob", &bob, "keys/bob.pub");
    let text = b.files["custody.toml"].clone()
        + "\n[[person_key]]\nprincipal = \"alice\"\npath = \"keys/bob.pub\"\n";
    b.files.insert("custody.toml".into(), text);
    let err = compile(&b).unwrap_err().to_string();
    assert!(err.contains("already bob's"), "{err}");

    let b = bundle(
        &format!("{POLICY}\n[[person_key]]\nprincipal = \"bob\"\npath = \"keys/missing.pub\"\n"),
        &keys(),
    );
    let err = compile(&b).unwrap_err().to_string();
    assert!(
        err.contains("\"keys/missing.pub\" is not in the policy bundle"),
        "{err}"
    );
}

#[test]
fn the_same_policy_changes_nothing() {
    assert!(diff(&compiled(POLICY), &compiled(POLICY)).is_empty());
}

#[test]
fn removing_production_approvals_is_looser_and_said_plainly() {
    let after = edited(
        "approvals = { quorum = 3, roles = [\"approver\", \"security\"], expires = \"24h\" }",
        "",
    );
    change(
        POLICY,
        &after,
        Direction::Looser,
        "production: approvals no longer required",
    );
    assert!(loosens(&diff(&compiled(POLICY), &compiled(&after))));
    change(
        &after,
        POLICY,
        Direction::Stricter,
        "production: 3 approval(s) now required",
    );
}

#[test]
fn every_gate_field_shows_in_the_diff_in_its_direction() {
    use Direction::{Looser, Stricter};
    let prod_approvals =
        "approvals = { quorum = 3, roles = [\"approver\", \"security\"], expires = \"24h\" }";
    let cases: &[(&str, &str, Direction, &str)] = &[
        (
            prod_approvals,
            "approvals = { quorum = 2, roles = [\"approver\", \"security\"], expires = \"24h\" }",
            Looser,
            "production: 2 approval(s) required (was 3)",
        ),
        (
            prod_approvals,
            "approvals = { quorum = 3, roles = [\"approver\"], expires = \"24h\" }",
            Stricter,
            "holders of security may no longer approve",
        ),
        (
            prod_approvals,
            "approvals = { quorum = 3, roles = [\"approver\", \"security\"], expires = \"48h\" }",
            Looser,
            "an approval counts for 2d (was 1d)",
        ),
        (
            "soak = \"24h\"",
            "soak = \"1h\"",
            Looser,
            "production: soak 1h (was 1d)",
        ),
        (
            "soak = \"24h\"",
            "soak = \"48h\"",
            Stricter,
            "production: soak 2d",
        ),
        ("soak = \"24h\"\n", "", Looser, "production: soak none"),
        (
            "verified = true\n",
            "",
            Looser,
            "verified deploy in staging is no longer required",
        ),
        (
            "evidence_max_age = \"30d\"",
            "evidence_max_age = \"60d\"",
            Looser,
            "evidence max age 60d (was 30d)",
        ),
        (
            "evidence_max_age = \"30d\"",
            "evidence_max_age = \"7d\"",
            Stricter,
            "evidence max age 7d",
        ),
        (
            "\"licence-scan\", ",
            "",
            Looser,
            "production: evidence licence-scan no longer required",
        ),
        (
            "evidence = [\"test-results\"]",
            "evidence = [\"test-results\", \"sbom\"]",
            Stricter,
            "test: evidence sbom now required",
        ),
        (
            "approver = [\"alice\", \"bob\", \"carol\", \"dave\"]",
            "approver = [\"alice\", \"bob\", \"carol\", \"dave\", \"eve\"]",
            Looser,
            "eve gains approver",
        ),
        (
            "approver = [\"alice\", \"bob\", \"carol\", \"dave\"]",
            "approver = [\"alice\", \"bob\", \"carol\"]\n\"approver:production\" = [\"dave\"]",
            Looser,
            "dave gains approver:production",
        ),
        (
            "approver = [\"alice\", \"bob\", \"carol\", \"dave\"]",
            "approver = [\"alice\", \"bob\", \"carol\"]\n\"approver:production\" = [\"dave\"]",
            Stricter,
            "dave loses approver",
        ),
        (
            "semver = true",
            "semver = false",
            Looser,
            "release versions need no longer be SemVer",
        ),
        (
            "source_repos = [\"https://git.example/acme/*\"]",
            "source_repos = [\"https://git.example/acme/*\", \"https://git.example/other/**\"]",
            Looser,
            "may now build https://git.example/other/**",
        ),
        (
            "name = \"production\"\n",
            "name = \"production\"\nbreak_glass = [\"security\"]\n",
            Looser,
            "production: holders of security may now break glass",
        ),
        (
            "name = \"production\"\n",
            "name = \"production\"\nbuilders = [\"https://ci.example/builder/v1\"]\n",
            Stricter,
            "production: only builders https://ci.example/builder/v1 count",
        ),
        (
            "name = \"production\"\n",
            "name = \"production\"\nfreeze = [{ from = \"2026-12-20T00:00:00Z\", until = \"2027-01-05T00:00:00Z\", reason = \"holidays\" }]\n",
            Stricter,
            "freeze 2026-12-20T00:00:00Z to 2027-01-05T00:00:00Z (holidays) added",
        ),
        (
            "after = \"test\"\n",
            "",
            Looser,
            "staging: releases no longer need to pass an earlier environment",
        ),
    ];
    for (from, to, direction, needle) in cases {
        change(POLICY, &edited(from, to), *direction, needle);
    }
    // A grant that ends later is looser; one that now ends is stricter.
    let ending = edited(
        "security = [\"sam\"]",
        "security = [{ principal = \"sam\", until = \"2027-01-01T00:00:00Z\" }]",
    );
    change(
        POLICY,
        &ending,
        Stricter,
        "sam's security now ends 2027-01-01T00:00:00Z",
    );
    change(&ending, POLICY, Looser, "sam's security now does not end");
}

#[test]
fn keys_and_governance_changes_are_named() {
    use Direction::{Looser, Stricter};
    let fewer = governed().replace("quorum = 2", "quorum = 1");
    change(
        &governed(),
        &fewer,
        Looser,
        "policy changes need 1 approvals from owners (was 2)",
    );
    let admins = governed().replace(
        "owners = [\"security\"]",
        "owners = [\"security\", \"admin\"]",
    );
    change(
        &governed(),
        &admins,
        Looser,
        "holders of admin now approve them",
    );

    let bob = PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    let enrolled = compile(&with_person_key(POLICY, "bob", &bob, "keys/bob.pub")).unwrap();
    let plain = compiled(POLICY);
    let changes = diff(&plain, &enrolled);
    assert!(
        changes
            .iter()
            .any(|c| c.direction == Looser && c.what.starts_with("personal approval key of bob (")),
        "{changes:#?}"
    );
    assert!(
        diff(&enrolled, &plain)
            .iter()
            .any(|c| c.direction == Stricter && c.what.contains("withdrawn"))
    );

    let mut other = bundle(POLICY, &keys());
    other.files.insert(
        "keys/release.pub".into(),
        PrivateKey::p256_from_scalar(&[9; 32])
            .unwrap()
            .public_key()
            .to_pem(),
    );
    let changes = diff(&plain, &compile(&other).unwrap());
    assert!(
        changes
            .iter()
            .any(|c| c.direction == Looser && c.what.contains("trusted")),
        "{changes:#?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.direction == Stricter && c.what.contains("no longer trusted")),
        "{changes:#?}"
    );
}

#[test]
fn looser_changes_come_first() {
    let after =
        edited("soak = \"24h\"", "soak = \"48h\"").replace("semver = true", "semver = false");
    let changes = diff(&compiled(POLICY), &compiled(&after));
    assert_eq!(
        changes.first().map(|c| c.direction),
        Some(Direction::Looser),
        "{changes:#?}"
    );
}

#[test]
fn what_evidence_must_say_shows_in_the_diff_in_its_direction() {
    // The fixture's last environment takes the rules appended to it.
    let with = |rules: &str| format!("{POLICY}{rules}");
    let tests = "[environment.tests]\nmin_tests = 10\n";
    change(
        POLICY,
        &with(tests),
        Direction::Stricter,
        "test reports are now read",
    );
    change(&with(tests), POLICY, Direction::Looser, "no longer read");
    change(
        &with(tests),
        &with("[environment.tests]\nmin_tests = 1\n"),
        Direction::Looser,
        "at least 1 test cases (was 10)",
    );
    change(
        &with(tests),
        &with("[environment.tests]\nmin_tests = 10\nallow_failures = true\n"),
        Direction::Looser,
        "failing tests are now allowed",
    );
    let high = "[environment.vulnerabilities]\nmax_severity = \"medium\"\n";
    change(
        &with(high),
        &with("[environment.vulnerabilities]\nmax_severity = \"critical\"\n"),
        Direction::Looser,
        "vulnerabilities up to critical allowed (was medium)",
    );
    change(
        &with(high),
        &with("[environment.vulnerabilities]\nmax_severity = \"low\"\n"),
        Direction::Stricter,
        "up to low",
    );
    change(
        POLICY,
        &with("standing = \"warn\"\n"),
        Direction::Looser,
        "only warns",
    );
    let licences = "[environment.licences]\ndeny = [\"GPL-3.0-only\"]\n";
    change(
        POLICY,
        &with(licences),
        Direction::Stricter,
        "licences are now checked",
    );
    change(
        &with(licences),
        &with("[environment.licences]\ndeny = [\"GPL-3.0-only\", \"AGPL-3.0-only\"]\n"),
        Direction::Stricter,
        "AGPL-3.0-only now denied",
    );
    assert!(loosens(&diff(
        &compiled(&with(licences)),
        &compiled(POLICY)
    )));
}
