//! What a new policy version changes, said plainly: every field a gate, a role check or
//! the governance reads shows up in the diff, exactly once, in its direction, and undoing
//! the edit says the reverse in the opposite direction.
//!
//! Here: the helpers that check both ways, the environment's fields and the order changes
//! are listed in; `diff/rules.rs` the evidence rules; `diff/trust.rs` roles, grants,
//! naming, builders, governance and keys.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;
#[path = "diff/rules.rs"]
mod rules;
#[path = "diff/trust.rs"]
mod trust;

use custody_crypto::{PrivateKey, Signer as _};
use custody_policy::{Change, Direction, Policy, diff, loosens};
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
fn looser_changes_come_first() {
    let after =
        edited("soak = \"24h\"", "soak = \"48h\"").replace("semver = true", "semver = false");
    let changes = diff(&compiled(POLICY), &compiled(&after));
    let directions: Vec<_> = changes.iter().map(|c| c.direction).collect();
    assert_eq!(directions, [Looser, Stricter], "{changes:#?}");
}
