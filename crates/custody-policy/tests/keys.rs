//! Every key a policy trusts, by name: what it is for, what the policy calls it, who holds
//! it and its file; a `[[release_key]]`'s name and owner are checked like any field.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_crypto::{PrivateKey, Signer as _};
use custody_policy::{KeyPurpose, compile};
use fixture::{POLICY, bundle, keys};

/// The fixture's pipeline with its release key named and owned, and Bob's approval key.
fn named_policy(release_key: &str) -> custody_policy::Bundle {
    let text = POLICY.replace(
        "[[release_key]]\npath = \"keys/release.pub\"\n",
        &format!("[[release_key]]\npath = \"keys/release.pub\"\n{release_key}"),
    );
    assert!(
        POLICY.contains("[[release_key]]\npath = \"keys/release.pub\"\n"),
        "the fixture declares its release key as expected"
    );
    let mut b = bundle(
        &format!("{text}\n[[person_key]]\nprincipal = \"bob\"\npath = \"keys/bob.pub\"\n"),
        &keys(),
    );
    let bob = PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    b.files
        .insert("keys/bob.pub".into(), bob.public_key().to_pem());
    b
}

#[test]
fn every_trusted_key_has_a_purpose_a_name_and_a_file() {
    let k = keys();
    let policy = compile(&named_policy(
        "name = \"release signer\"\nowner = \"rita\"\n",
    ))
    .unwrap();
    let named: Vec<_> = policy
        .named_keys()
        .iter()
        .map(|n| {
            (
                n.purpose,
                n.name.as_str(),
                n.owner.as_deref(),
                n.file.as_str(),
                n.algorithm.as_str(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (
                KeyPurpose::ReleaseSigner,
                "release signer",
                Some("rita"),
                "keys/release.pub",
                "ecdsa-p256"
            ),
            (
                KeyPurpose::Builder,
                "https://ci.example/builder/v1",
                None,
                "keys/builder.pub",
                "ed25519"
            ),
            (
                KeyPurpose::PersonalApproval,
                "bob",
                Some("bob"),
                "keys/bob.pub",
                "ed25519"
            ),
        ]
    );
    // Found by the id the ledger records.
    let release_id = k.release.public_key().key_id().to_string();
    assert_eq!(
        policy.named_key(&release_id).unwrap().name,
        "release signer"
    );
    assert!(policy.named_key(&"0".repeat(64)).is_none());
    // A name is for people: it is not what a decision checks, so a renamed key still
    // verifies as the same key.
    assert!(policy.release_key(&release_id).is_some());
}

#[test]
fn a_release_key_without_a_name_is_called_after_its_file() {
    let policy = compile(&named_policy("")).unwrap();
    let release = &policy.named_keys()[0];
    assert_eq!(release.name, "release");
    assert_eq!(release.owner, None);
    assert_eq!(KeyPurpose::ReleaseSigner.describe(), "release signer");
}

#[test]
fn a_blank_or_overlong_name_or_owner_is_refused_at_its_line() {
    for (field, why) in [
        (
            "name = \"  \"\n",
            "name must be 1 to 100 printable characters",
        ),
        (
            &format!("owner = \"{}\"\n", "x".repeat(101)),
            "owner must be 1 to 100 printable characters",
        ),
        ("owner = \"a\\u0007b\"\n", "owner must be 1 to 100"),
        // Invisible formatting characters too.
        (
            "name = \"sig\\u202Ener\"\n",
            "name must be 1 to 100 printable",
        ),
        ("nickname = \"r\"\n", "unknown field `nickname`"),
    ] {
        let err = compile(&named_policy(field)).unwrap_err().to_string();
        assert!(err.contains(why), "{field}: {err}");
        // At the field's line: the `[[release_key]]` table's, in the fixture's text.
        let line = POLICY
            .lines()
            .position(|l| l == "path = \"keys/release.pub\"")
            .unwrap()
            + 2;
        assert!(err.contains(&format!(":{line}:")), "{field}: {err}");
    }
}

#[test]
fn a_purpose_is_written_and_read_back_by_one_name() {
    let names: Vec<_> = KeyPurpose::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, ["release-signer", "builder", "personal-approval"]);
    for p in KeyPurpose::ALL {
        assert_eq!(KeyPurpose::parse(p.as_str()), Some(p));
    }
    assert_eq!(KeyPurpose::parse("release signer"), None);
    assert_eq!(KeyPurpose::parse(""), None);
}

#[test]
fn a_name_of_exactly_the_longest_length_is_kept() {
    let name = "n".repeat(100);
    let policy = compile(&named_policy(&format!("name = \"{name}\"\n"))).unwrap();
    assert!(
        policy.named_keys().iter().any(|k| k.name == name),
        "{:?}",
        policy.named_keys()
    );
}
