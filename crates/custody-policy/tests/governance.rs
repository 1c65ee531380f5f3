//! Who may change the policy and with which keys people approve (what a new version
//! changes is in `diff.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_crypto::{PrivateKey, Signer as _};
use custody_policy::{Role, compile};
use fixture::{GOVERNED, NOW, POLICY, bundle, compiled, governed, keys, with_person_key};

#[test]
fn without_governance_the_security_role_owns_the_policy_with_one_approval() {
    let policy = compiled(POLICY);
    assert_eq!(policy.governance().owners, vec![Role::Security]);
    assert_eq!(policy.governance().quorum, 1);
    assert!(policy.owns("sam", NOW));
    assert!(!policy.owns("alice", NOW));
    // One owner cannot approve their own change: nobody could approve one.
    assert!(!policy.governed(NOW));
    assert!(!policy.names_a_quorum());
    assert!(compiled(&governed()).governed(NOW));
    assert!(compiled(&governed()).names_a_quorum());
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
    let none = governed().replace("owners = [\"security\"]", "owners = []");
    let err = compile(&bundle(&none, &keys())).unwrap_err().to_string();
    assert!(
        err.contains("[governance] names no owner roles, so nobody could approve a change"),
        "{err}"
    );
    // A role named twice owns once.
    let twice = governed().replace(
        "owners = [\"security\"]",
        "owners = [\"security\", \"security\"]",
    );
    assert_eq!(compiled(&twice).governance().owners, vec![Role::Security]);
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

#[test]
fn without_governance_a_second_owner_whose_grant_ends_is_refused_too() {
    // The defaults (security's holders, a quorum of 1): sam alone is a fresh instance's
    // first policy (nobody could approve a change; `policy check` warns), but sam and a
    // second holder whose grant ends would leave it ungoverned once the date passes.
    let ending = POLICY.replace(
        "security = [\"sam\"]",
        "security = [\"sam\", { principal = \"sol\", until = \"2026-11-18T12:00:00Z\" }]",
    );
    let err = compile(&bundle(&ending, &keys())).unwrap_err().to_string();
    assert!(
        err.contains(
            "without [governance], a change is approved by 1 security holder other than its proposer, which needs at least 2 owners whose grants do not end (no `until`); [roles] gives 1: when the grants of sol end"
        ),
        "{err}"
    );
    // With a second lasting holder the ending one is extra, and compiles.
    let lasting = POLICY.replace(
        "security = [\"sam\"]",
        "security = [\"sam\", \"sue\", { principal = \"sol\", until = \"2026-11-18T12:00:00Z\" }]",
    );
    assert!(compiled(&lasting).governed(NOW));
    // A recorded policy is read as it was recorded.
    assert!(custody_policy::compile_recorded(&bundle(&ending, &keys())).is_ok());
}

#[test]
fn a_person_key_belongs_to_one_person_and_serves_no_other_purpose() {
    let bob = PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    let policy = compile(&with_person_key(POLICY, "bob", &bob, "keys/bob.pub")).unwrap();
    let id = bob.public_key().key_id().to_string();
    assert_eq!(policy.person_key(&id).unwrap().principal, "bob");
    let enrolled: Vec<_> = policy
        .person_keys()
        .iter()
        .map(|k| (k.principal.as_str(), k.key_id.as_str()))
        .collect();
    assert_eq!(enrolled, [("bob", id.as_str())]);
    assert!(compiled(POLICY).person_keys().is_empty());
    // The release keys are the release key alone: a personal key signs no release.
    let release: Vec<_> = policy.release_keys().map(|k| k.key_id()).collect();
    assert_eq!(release, [keys().release.public_key().key_id()]);
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

/// `signed = true` counts only approvals signed with an enrolled key: a quorum of more
/// approvers than enrolled a key could never be met, and is refused at its line; enrolling
/// enough makes it compile, and turning it on is a stricter change (off, a looser one).
#[test]
fn signed_approvals_need_enough_enrolled_approvers_and_tighten_the_rules() {
    let strict = POLICY.replace(
        "approvals = { quorum = 1, roles = [\"approver\"], expires = \"72h\" }",
        "approvals = { quorum = 1, roles = [\"approver\"], expires = \"72h\", signed = true }",
    );
    let err = compile(&bundle(&strict, &keys())).unwrap_err();
    assert!(
        err.0.iter().any(|e| e.line == 33
            && e.message.contains("only 0 of the people holding the roles")
            && e.message.contains("[[person_key]]")),
        "{err}"
    );
    let bob = PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    let enrolled = compile(&with_person_key(&strict, "bob", &bob, "keys/bob.pub")).unwrap();
    let staging = enrolled.environment("staging").unwrap();
    assert!(staging.approvals.as_ref().unwrap().signed);
    let before = compile(&with_person_key(POLICY, "bob", &bob, "keys/bob.pub")).unwrap();
    let changes = custody_policy::diff(&before, &enrolled);
    let tightened: Vec<_> = changes
        .iter()
        .filter(|c| c.what.contains("approvals count only when signed"))
        .map(|c| c.direction)
        .collect();
    assert_eq!(
        tightened,
        [custody_policy::Direction::Stricter],
        "{changes:?}"
    );
    let back = custody_policy::diff(&enrolled, &before);
    assert!(
        back.iter()
            .any(|c| c.direction == custody_policy::Direction::Looser
                && c.what.contains("signed or not")),
        "{back:?}"
    );
}
