//! What a new policy version changes, said plainly: every field a gate, a role check or
//! the governance reads shows up in the diff, exactly once, in its direction, and undoing
//! the edit says the reverse in the opposite direction.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_crypto::{PrivateKey, Signer as _};
use custody_policy::{Change, Direction, Policy, compile, diff, loosens};
use fixture::{POLICY, bundle, compiled, edited, governed, keys, with_person_key};

use Direction::{Looser, Neutral, Stricter};

/// The fixture with `rules` appended: its last environment, production, takes them.
fn with(rules: &str) -> String {
    format!("{POLICY}{rules}")
}

fn opposite(d: Direction) -> Direction {
    match d {
        Looser => Stricter,
        Stricter => Looser,
        Neutral => Neutral,
    }
}

fn one(direction: Direction, what: &str) -> Vec<Change> {
    vec![Change {
        direction,
        what: what.to_owned(),
    }]
}

/// `before` to `after` is exactly the change `forth` in `direction`; `after` back to
/// `before` exactly `back` in the opposite direction.
#[track_caller]
fn both_ways(before: &Policy, after: &Policy, direction: Direction, forth: &str, back: &str) {
    assert_eq!(diff(before, after), one(direction, forth), "forth");
    assert_eq!(diff(after, before), one(opposite(direction), back), "back");
    assert_eq!(loosens(&diff(before, after)), direction == Looser);
    assert_eq!(loosens(&diff(after, before)), direction == Stricter);
}

/// [`both_ways`] for two policy texts.
#[track_caller]
fn texts(before: &str, after: &str, direction: Direction, forth: &str, back: &str) {
    both_ways(&compiled(before), &compiled(after), direction, forth, back);
}

/// A key id as the diff shows it: its first 16 hex digits.
fn short(key: &PrivateKey) -> String {
    let id = key.public_key().key_id().to_string();
    assert_eq!(id.len(), 64, "{id}");
    id[..16].to_owned()
}

#[test]
fn the_same_policy_changes_nothing_and_loosens_nothing() {
    assert!(diff(&compiled(POLICY), &compiled(POLICY)).is_empty());
    assert!(!loosens(&[]));
    assert_eq!(Looser.to_string(), "looser");
    assert_eq!(Stricter.to_string(), "stricter");
    assert_eq!(format!("{Neutral:>8}"), " neutral", "pads like a str");
}

#[test]
fn every_environment_field_moves_its_way() {
    let prod_approvals =
        "approvals = { quorum = 3, roles = [\"approver\", \"security\"], expires = \"24h\" }";
    let cases: &[(&str, &str, Direction, &str, &str)] = &[
        (
            prod_approvals,
            "",
            Looser,
            "production: approvals no longer required",
            "production: 3 approval(s) now required from approver or security",
        ),
        (
            prod_approvals,
            "approvals = { quorum = 2, roles = [\"approver\", \"security\"], expires = \"24h\" }",
            Looser,
            "production: 2 approval(s) required (was 3)",
            "production: 3 approval(s) required (was 2)",
        ),
        (
            prod_approvals,
            "approvals = { quorum = 3, roles = [\"approver\"], expires = \"24h\" }",
            Stricter,
            "production: holders of security may no longer approve",
            "production: holders of security may now approve",
        ),
        (
            prod_approvals,
            "approvals = { quorum = 3, roles = [\"approver\", \"security\"], expires = \"48h\" }",
            Looser,
            "production: an approval counts for 2d (was 1d)",
            "production: an approval counts for 1d (was 2d)",
        ),
        (
            "soak = \"24h\"",
            "soak = \"1h\"",
            Looser,
            "production: soak 1h (was 1d)",
            "production: soak 1d (was 1h)",
        ),
        (
            "soak = \"24h\"\n",
            "",
            Looser,
            "production: soak none (was 1d)",
            "production: soak 1d (was none)",
        ),
        (
            "verified = true\n",
            "",
            Looser,
            "production: a verified deploy in staging is no longer required",
            "production: a verified deploy in staging is now required",
        ),
        (
            "evidence_max_age = \"30d\"",
            "evidence_max_age = \"60d\"",
            Looser,
            "production: evidence max age 60d (was 30d)",
            "production: evidence max age 30d (was 60d)",
        ),
        (
            "evidence_max_age = \"30d\"\n",
            "",
            Looser,
            "production: evidence max age none (was 30d)",
            "production: evidence max age 30d (was none)",
        ),
        (
            "\"licence-scan\", ",
            "",
            Looser,
            "production: evidence licence-scan no longer required",
            "production: evidence licence-scan now required",
        ),
        (
            "name = \"production\"\n",
            "name = \"production\"\nbreak_glass = [\"security\"]\n",
            Looser,
            "production: holders of security may now break glass",
            "production: holders of security may no longer break glass",
        ),
        (
            "name = \"production\"\n",
            "name = \"production\"\nbuilders = [\"https://ci.example/builder/v1\"]\n",
            Stricter,
            "production: only builders https://ci.example/builder/v1 count",
            "production: any trusted builders now count",
        ),
        (
            "name = \"production\"\n",
            "name = \"production\"\nfreeze = [{ from = \"2026-12-20T00:00:00Z\", until = \"2027-01-05T00:00:00Z\", reason = \"holidays\" }]\n",
            Stricter,
            "production: freeze 2026-12-20T00:00:00Z to 2027-01-05T00:00:00Z (holidays) added",
            "production: freeze 2026-12-20T00:00:00Z to 2027-01-05T00:00:00Z (holidays) lifted",
        ),
        (
            "after = \"test\"\n",
            "",
            Looser,
            "staging: releases no longer need to pass an earlier environment",
            "staging: releases must now pass test first",
        ),
    ];
    for (from, to, direction, forth, back) in cases {
        texts(POLICY, &edited(from, to), *direction, forth, back);
    }
}

#[test]
fn who_holds_which_role_and_until_when_moves_its_way() {
    texts(
        POLICY,
        &edited("\"dave\"]", "\"dave\", \"eve\"]"),
        Looser,
        "eve gains approver",
        "eve loses approver",
    );
    // A grant's end shows when it is gained, whoever else holds what until when.
    let ending = "{ principal = \"eve\", until = \"2027-01-01T00:00:00Z\" }";
    texts(
        &edited("security = [\"sam\"]", &format!("security = [{ending}]")),
        &edited("security = [\"sam\"]", &format!("security = [{ending}]")).replacen(
            "\"dave\"]",
            "\"dave\", \"eve\"]",
            1,
        ),
        Looser,
        "eve gains approver",
        "eve loses approver",
    );
    texts(
        &edited(
            "approver = [\"alice\"",
            &format!("approver = [{}, \"alice\"", ending.replace("eve", "zed")),
        ),
        &edited(
            "approver = [\"alice\"",
            &format!("approver = [{}, \"alice\"", ending.replace("eve", "zed")),
        )
        .replacen("\"dave\"]", "\"dave\", \"eve\"]", 1),
        Looser,
        "eve gains approver",
        "eve loses approver",
    );
    texts(
        POLICY,
        &edited("\"dave\"]", &format!("\"dave\", {ending}]")),
        Looser,
        "eve gains approver until 2027-01-01T00:00:00Z",
        "eve loses approver",
    );
}

#[test]
fn a_grant_moved_to_one_environment_is_one_gained_and_one_lost() {
    let after = compiled(&edited(
        "approver = [\"alice\", \"bob\", \"carol\", \"dave\"]",
        "approver = [\"alice\", \"bob\", \"carol\"]\n\"approver:production\" = [\"dave\"]",
    ));
    assert_eq!(
        diff(&compiled(POLICY), &after),
        vec![
            Change {
                direction: Looser,
                what: "dave gains approver:production".into()
            },
            Change {
                direction: Stricter,
                what: "dave loses approver".into()
            },
        ]
    );
}

#[test]
fn a_grant_that_ends_sooner_is_stricter_and_one_that_ends_later_looser() {
    let until = |t: &str| {
        edited(
            "security = [\"sam\"]",
            &format!("security = [{{ principal = \"sam\", until = \"{t}\" }}]"),
        )
    };
    texts(
        POLICY,
        &until("2027-01-01T00:00:00Z"),
        Stricter,
        "sam's security now ends 2027-01-01T00:00:00Z",
        "sam's security now does not end",
    );
    texts(
        &until("2027-01-01T00:00:00Z"),
        &until("2028-01-01T00:00:00Z"),
        Looser,
        "sam's security now ends 2028-01-01T00:00:00Z",
        "sam's security now ends 2027-01-01T00:00:00Z",
    );
}

#[test]
fn naming_and_builders_move_their_way() {
    texts(
        POLICY,
        &edited("semver = true", "semver = false"),
        Looser,
        "release versions need no longer be SemVer",
        "release versions must be SemVer",
    );
    texts(
        POLICY,
        &edited(
            "source_repos = [\"https://git.example/acme/*\"]",
            "source_repos = [\"https://git.example/acme/*\", \"https://git.example/other/**\"]",
        ),
        Looser,
        "builder https://ci.example/builder/v1 may now build https://git.example/other/**",
        "builder https://ci.example/builder/v1 may no longer build https://git.example/other/**",
    );
    texts(
        POLICY,
        &edited(
            "artifact = \"^[a-z0-9-]+$\"",
            "artifact = \"^[a-z0-9.-]+$\"",
        ),
        Neutral,
        // The rule as enforced: whole names only.
        "artifact naming rule ^(?:[a-z0-9.-]+)$ (was ^(?:[a-z0-9-]+)$)",
        "artifact naming rule ^(?:[a-z0-9-]+)$ (was ^(?:[a-z0-9.-]+)$)",
    );
    texts(
        POLICY,
        &edited("release = \"^[a-z0-9-]+$\"", "release = \"^[a-z]+$\""),
        Neutral,
        "release naming rule ^(?:[a-z]+)$ (was ^(?:[a-z0-9-]+)$)",
        "release naming rule ^(?:[a-z0-9-]+)$ (was ^(?:[a-z]+)$)",
    );
}

#[test]
fn governance_changes_move_their_way() {
    texts(
        &governed(),
        &governed().replace("quorum = 2", "quorum = 1"),
        Looser,
        "policy changes need 1 approvals from owners (was 2)",
        "policy changes need 2 approvals from owners (was 1)",
    );
    texts(
        &governed(),
        &governed().replace(
            "owners = [\"security\"]",
            "owners = [\"security\", \"admin\"]",
        ),
        Looser,
        "policy changes: holders of admin now approve them",
        "policy changes: holders of admin no longer approve them",
    );
    let bob = PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    both_ways(
        &compiled(POLICY),
        &compile(&with_person_key(POLICY, "bob", &bob, "keys/bob.pub")).unwrap(),
        Looser,
        &format!("personal approval key of bob ({}) enrolled", short(&bob)),
        &format!("personal approval key of bob ({}) withdrawn", short(&bob)),
    );
}

#[test]
fn a_kept_key_shows_its_expiry_name_and_holder() {
    let k = keys();
    let release = short(&k.release);
    let key = |extra: &str| {
        edited(
            "path = \"keys/release.pub\"",
            &format!("path = \"keys/release.pub\"{extra}"),
        )
    };
    let what = |name: &str| format!("release signer key {release} ({name})");
    texts(
        POLICY,
        &key("\nexpires = \"2027-06-30T00:00:00Z\""),
        Stricter,
        &format!(
            "{} expires at 2027-06-30T00:00:00Z (was never)",
            what("release")
        ),
        &format!(
            "{} expires never (was at 2027-06-30T00:00:00Z)",
            what("release")
        ),
    );
    texts(
        &key("\nexpires = \"2027-06-30T00:00:00Z\""),
        &key("\nexpires = \"2028-06-30T00:00:00Z\""),
        Looser,
        &format!(
            "{} expires at 2028-06-30T00:00:00Z (was at 2027-06-30T00:00:00Z)",
            what("release")
        ),
        &format!(
            "{} expires at 2027-06-30T00:00:00Z (was at 2028-06-30T00:00:00Z)",
            what("release")
        ),
    );
    // A new name or holder changes no gate: neutral, and the expiry kept says nothing.
    let expiring = key("\nexpires = \"2027-06-30T00:00:00Z\"");
    texts(
        &expiring,
        &key("\nexpires = \"2027-06-30T00:00:00Z\"\nname = \"signer\""),
        Neutral,
        &format!("{} renamed (was release)", what("signer")),
        &format!("{} renamed (was signer)", what("release")),
    );
    texts(
        &expiring,
        &key("\nexpires = \"2027-06-30T00:00:00Z\"\nowner = \"rita\""),
        Neutral,
        &format!("{} now held by rita (was nobody named)", what("release")),
        &format!("{} now held by nobody named (was rita)", what("release")),
    );
}

#[test]
fn a_replaced_key_is_one_trusted_and_one_no_longer_trusted() {
    let other = PrivateKey::p256_from_scalar(&[9; 32]).unwrap();
    // Under another name: a new key is not the old one renamed.
    let mut b = bundle(
        &edited(
            "path = \"keys/release.pub\"",
            "path = \"keys/release.pub\"\nname = \"release 2027\"",
        ),
        &keys(),
    );
    b.files
        .insert("keys/release.pub".into(), other.public_key().to_pem());
    let (old, new) = (short(&keys().release), short(&other));
    let mut expected = vec![
        Change {
            direction: Looser,
            what: format!("release key {new} trusted"),
        },
        Change {
            direction: Stricter,
            what: format!("release key {old} no longer trusted"),
        },
    ];
    expected.sort();
    assert_eq!(diff(&compiled(POLICY), &compile(&b).unwrap()), expected);
}

/// Only a key id (64 hex digits) is shortened: any other name, of whatever length, is
/// shown whole.
#[test]
fn a_builder_is_named_whole_whatever_its_length() {
    let long = format!("https://ci.example/{}", "b".repeat(45));
    assert_eq!(long.len(), 64);
    let with_long = POLICY.replace("https://ci.example/builder/v1", &long);
    texts(
        &with_long,
        &with_long.replacen(
            "name = \"production\"\n",
            &format!("name = \"production\"\nbuilders = [\"{long}\"]\n"),
            1,
        ),
        Stricter,
        &format!("production: only builders {long} count"),
        "production: any trusted builders now count",
    );
}

#[test]
fn looser_changes_come_first() {
    let after =
        edited("soak = \"24h\"", "soak = \"48h\"").replace("semver = true", "semver = false");
    let changes = diff(&compiled(POLICY), &compiled(&after));
    let directions: Vec<_> = changes.iter().map(|c| c.direction).collect();
    assert_eq!(directions, [Looser, Stricter], "{changes:#?}");
}

#[test]
fn test_and_static_analysis_rules_move_their_way() {
    let tests = "[environment.tests]\nmin_tests = 10\n";
    texts(
        POLICY,
        &with(tests),
        Stricter,
        "production: test reports are now read",
        "production: test reports are no longer read",
    );
    texts(
        &with(tests),
        &with("[environment.tests]\nmin_tests = 1\n"),
        Looser,
        "production: at least 1 test cases (was 10)",
        "production: at least 10 test cases (was 1)",
    );
    texts(
        &with(tests),
        &with("[environment.tests]\nmin_tests = 10\nallow_failures = true\n"),
        Looser,
        "production: failing tests are now allowed",
        "production: failing tests are no longer allowed",
    );
    let sarif = |limits: &str| with(&format!("[environment.static_analysis]\n{limits}\n"));
    texts(
        POLICY,
        &sarif("max_error = 0"),
        Stricter,
        "production: static analysis is now read",
        "production: static analysis is no longer read",
    );
    texts(
        &sarif("max_error = 0"),
        &sarif("max_error = 2"),
        Looser,
        "production: 2 error-level findings allowed (was 0)",
        "production: 0 error-level findings allowed (was 2)",
    );
    texts(
        &sarif("max_error = 0"),
        &sarif("max_error = 0\nmax_warning = 5"),
        Stricter,
        "production: 5 warning-level findings allowed (was any number)",
        "production: any number warning-level findings allowed (was 5)",
    );
    texts(
        &sarif("max_error = 0\nmax_note = 5"),
        &sarif("max_error = 0\nmax_note = 4"),
        Stricter,
        "production: 4 note-level findings allowed (was 5)",
        "production: 5 note-level findings allowed (was 4)",
    );
}

#[test]
fn vulnerability_rules_move_their_way() {
    let vulns = |rule: &str| with(&format!("[environment.vulnerabilities]\n{rule}\n"));
    let medium = vulns("max_severity = \"medium\"");
    // The default rule allows up to high.
    texts(
        POLICY,
        &medium,
        Stricter,
        "production: vulnerabilities up to medium allowed (was high)",
        "production: vulnerabilities up to high allowed (was medium)",
    );
    texts(
        &medium,
        &vulns("max_severity = \"critical\""),
        Looser,
        "production: vulnerabilities up to critical allowed (was medium)",
        "production: vulnerabilities up to medium allowed (was critical)",
    );
    texts(
        &medium,
        &vulns("max_severity = \"none\""),
        Stricter,
        "production: vulnerabilities up to none allowed (was medium)",
        "production: vulnerabilities up to medium allowed (was none)",
    );
    texts(
        POLICY,
        &vulns("fixable_only = false"),
        Stricter,
        "production: vulnerabilities without a fix now block",
        "production: vulnerabilities without a fix no longer block",
    );
    texts(
        POLICY,
        &vulns("unknown_as = \"low\""),
        Looser,
        "production: a vulnerability of unknown severity counts as low (was high)",
        "production: a vulnerability of unknown severity counts as high (was low)",
    );
    texts(
        POLICY,
        &vulns("max_age = \"24h\""),
        Stricter,
        "production: vulnerability scans up to 1d old (was any)",
        "production: vulnerability scans up to any old (was 1d)",
    );
    texts(
        &vulns("max_age = \"24h\""),
        &vulns("max_age = \"48h\""),
        Looser,
        "production: vulnerability scans up to 2d old (was 1d)",
        "production: vulnerability scans up to 1d old (was 2d)",
    );
}

#[test]
fn licence_rebuild_and_standing_rules_move_their_way() {
    let licences = |rule: &str| with(&format!("[environment.licences]\n{rule}\n"));
    let gpl = licences("deny = [\"GPL-3.0-only\"]");
    texts(
        POLICY,
        &gpl,
        Stricter,
        "production: licences are now checked",
        "production: licences are no longer checked",
    );
    texts(
        &gpl,
        &licences("deny = [\"GPL-3.0-only\", \"AGPL-3.0-only\"]"),
        Stricter,
        "production: licence AGPL-3.0-only now denied",
        "production: licence AGPL-3.0-only no longer denied",
    );
    texts(
        &gpl,
        &licences("deny = [\"GPL-3.0-only\"]\nallow = [\"MIT\"]"),
        Stricter,
        "production: only listed licences are allowed",
        "production: every licence not denied is allowed",
    );
    texts(
        &licences("allow = [\"MIT\"]"),
        &licences("allow = [\"MIT\", \"Apache-2.0\"]"),
        Looser,
        "production: licence Apache-2.0 now allowed",
        "production: licence Apache-2.0 no longer allowed",
    );
    texts(
        &gpl,
        &licences("deny = [\"GPL-3.0-only\"]\nallow_unknown = true"),
        Looser,
        "production: unknown or missing licences now pass",
        "production: unknown or missing licences no longer pass",
    );
    texts(
        POLICY,
        &with("reproducible = 2\n"),
        Stricter,
        "production: agreeing rebuilds required 2 (was none)",
        "production: agreeing rebuilds required none (was 2)",
    );
    texts(
        &with("reproducible = 2\n"),
        &with("reproducible = 3\n"),
        Stricter,
        "production: agreeing rebuilds required 3 (was 2)",
        "production: agreeing rebuilds required 2 (was 3)",
    );
    texts(
        POLICY,
        &with("standing = \"warn\"\n"),
        Looser,
        "production: when evidence rules fail after certification the deploy gate only warns",
        "production: when evidence rules fail after certification the deploy gate denies",
    );
}
