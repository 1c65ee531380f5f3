//! What an environment adds to the gates: its own narrower set of trusted keys and
//! builders (the release key never signing a build), and freezes that hold everyone but
//! break-glass, which never passes a bad signature.

use custody_crypto::Signer as _;
use custody_policy::{Status, compile, evaluate};

use super::{HOUR, NOW, POLICY, blocked, bundle, gate, keys, passing_facts, policy};

#[test]
fn the_release_key_may_not_have_signed_a_build() {
    let (policy, keys) = policy();
    let mut f = passing_facts(&policy, &keys, 1);
    f.release.artifacts[0]
        .provenance
        .as_mut()
        .unwrap()
        .signing_key = f.release.signing_key.clone();
    blocked(
        &evaluate(&policy, &f),
        "release-signature",
        Status::Fail,
        "separation of signing duties",
    );
}

#[test]
fn an_environment_may_narrow_the_trusted_keys_and_builders() {
    let k = keys();
    let narrowed = POLICY.replace(
        "evidence_max_age = \"30d\"",
        "evidence_max_age = \"30d\"\nrelease_keys = [\"keys/release.pub\"]\nbuilders = [\"https://ci.example/builder/v1\"]",
    );
    let policy = compile(&bundle(&narrowed, &k)).unwrap();
    assert!(evaluate(&policy, &passing_facts(&policy, &k, 2)).allowed);

    // A second trusted builder, not allowed for production.
    let mut b = bundle(
        &narrowed.replace(
            "[[environment]]\nname = \"build\"",
            "[[builder]]\nid = \"https://other.example/b\"\nkey = \"keys/other.pub\"\nsource_repos = [\"https://git.example/acme/*\"]\n\n[[environment]]\nname = \"build\"",
        ),
        &k,
    );
    let other = custody_crypto::PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    b.files
        .insert("keys/other.pub".into(), other.public_key().to_pem());
    let policy = compile(&b).unwrap();
    let mut f = passing_facts(&policy, &k, 1);
    let p = f.release.artifacts[0].provenance.as_mut().unwrap();
    p.signing_key = Some(other.key_id().to_string());
    p.builder_id = "https://other.example/b".into();
    blocked(
        &evaluate(&policy, &f),
        "provenance",
        Status::Fail,
        "may not build for production",
    );

    let unknown = POLICY.replace(
        "evidence_max_age = \"30d\"",
        "evidence_max_age = \"30d\"\nbuilders = [\"nobody\"]",
    );
    let err = compile(&bundle(&unknown, &k)).unwrap_err();
    assert!(
        err.to_string()
            .contains("builder \"nobody\" is not a declared [[builder]]"),
        "{err}"
    );
    let unknown = POLICY.replace(
        "evidence_max_age = \"30d\"",
        "evidence_max_age = \"30d\"\nrelease_keys = [\"keys/x.pub\"]",
    );
    let err = compile(&bundle(&unknown, &k)).unwrap_err();
    assert!(
        err.to_string().contains("not a declared [[release_key]]"),
        "{err}"
    );
}

#[test]
fn a_freeze_holds_everyone_but_break_glass_which_never_passes_a_bad_signature() {
    let k = keys();
    let at = |t: i64| custody_model::Timestamp::from_unix_seconds(t).unwrap();
    // Olga, on call, deploys to production only; deployers may break glass there.
    let text = POLICY
        .replace("[roles]\n", "[roles]\n\"deployer:production\" = [\"olga\"]\n")
        .replace(
        "evidence_max_age = \"30d\"",
        &format!(
            "evidence_max_age = \"30d\"\nbreak_glass = [\"deployer\"]\nfreeze = [{{ from = \"{}\", until = \"{}\", reason = \"year-end close\" }}]",
            at(NOW - HOUR),
            at(NOW + HOUR)
        ),
    );
    let policy = compile(&bundle(&text, &k)).unwrap();
    let facts = passing_facts(&policy, &k, 2);
    // In the window, even a fully approved promotion is held.
    let held = evaluate(&policy, &facts);
    blocked(&held, "freeze", Status::Fail, "frozen until");
    let blocking: Vec<&str> = held.blocking().map(|g| g.gate.name()).collect();
    assert_eq!(blocking, ["freeze"]);
    assert!(!held.broke_glass());
    let mut after = facts.clone();
    after.now = NOW + HOUR;
    let d = evaluate(&policy, &after);
    assert!(d.allowed, "{d:#?}");
    assert_eq!(gate(&d, "freeze").reason, "not in a freeze window");

    // Olga, on call, breaks glass: the freeze and the missing approvals are overridden.
    let mut glass = facts.clone();
    glass.requested_by = "olga".into();
    glass.approvals.truncate(1);
    glass.break_glass = Some("payments outage, hotfix".into());
    let d = evaluate(&policy, &glass);
    assert!(d.allowed && d.broke_glass(), "{d:#?}");
    for name in ["freeze", "approvals"] {
        let g = gate(&d, name);
        assert_eq!(g.status, Status::Overridden, "{g:?}");
        assert!(g.reason.starts_with("overridden by break-glass: "), "{g:?}");
    }
    assert_eq!(
        gate(&d, "evidence").status,
        Status::Pass,
        "nothing to override"
    );
    let reason = &gate(&d, "break-glass").reason;
    assert!(
        reason.contains("olga broke glass (payments outage, hotfix)")
            && reason.contains("overridden: freeze, approvals")
            && reason.contains("after-the-fact review is due"),
        "{reason}"
    );
    assert_eq!(d.blocking().count(), 0);
    assert_ne!(
        d.input_digest,
        evaluate(&policy, &facts).input_digest,
        "the reason is a fact"
    );

    // Never past an unsigned release, a bad name or missing provenance.
    let mut unsigned = glass.clone();
    unsigned.release.signing_key = None;
    unsigned.release.signatures = 0;
    blocked(
        &evaluate(&policy, &unsigned),
        "release-signature",
        Status::Fail,
        "unsigned",
    );
    let mut no_provenance = glass.clone();
    no_provenance.release.artifacts[0].provenance = None;
    blocked(
        &evaluate(&policy, &no_provenance),
        "provenance",
        Status::Fail,
        "has no provenance",
    );
    // Only the roles the policy names, and only where it names them.
    let mut alice = glass.clone();
    alice.requested_by = "alice".into();
    let d = evaluate(&policy, &alice);
    blocked(
        &d,
        "break-glass",
        Status::Fail,
        "alice may not break glass into production",
    );
    assert_eq!(
        gate(&d, "freeze").status,
        Status::Fail,
        "nothing overridden"
    );
    let mut staging = glass.clone();
    staging.environment = "staging".into();
    blocked(
        &evaluate(&policy, &staging),
        "break-glass",
        Status::Fail,
        "nobody may break glass into staging",
    );
    // Facts without break-glass serialise as before (their digests are unchanged).
    assert!(
        !serde_json::to_string(&facts)
            .unwrap()
            .contains("break_glass")
    );

    // Mistakes in the policy name their line.
    let unknown_role = text.replace("break_glass = [\"deployer\"]", "break_glass = [\"oncall\"]");
    let err = compile(&bundle(&unknown_role, &k)).unwrap_err().to_string();
    assert!(err.contains("unknown role \"oncall\""), "{err}");
    let backwards = text.replace(
        &format!("from = \"{}\"", at(NOW - HOUR)),
        &format!("from = \"{}\"", at(NOW + 2 * HOUR)),
    );
    let err = compile(&bundle(&backwards, &k)).unwrap_err().to_string();
    assert!(err.contains("`from` before `until`"), "{err}");
}
