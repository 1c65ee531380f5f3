//! Who and what is trusted, each change moving its way: who holds which role where and
//! until when, naming and builders, the governance, and the keys (kept, replaced, named
//! whole).

use custody_crypto::{PrivateKey, Signer as _};
use custody_policy::{Change, compile, diff};

use super::{
    Looser, Neutral, POLICY, Stricter, both_ways, bundle, compiled, edited, governed, keys, short,
    texts, with_person_key,
};

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
