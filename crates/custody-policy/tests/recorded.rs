//! Decisions recorded by an earlier engine still deserialise, keep their JSON shape, and
//! replay to the same outcome (see `testdata/recorded/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use custody_policy::{Bundle, Decision, Facts, compile, evaluate, facts_digest};
use serde_json::Value;

fn recorded_bundle() -> Bundle {
    let mut b = Bundle::default();
    for (path, text) in [
        (
            "custody.toml",
            include_str!("../testdata/recorded/custody.toml"),
        ),
        (
            "keys/builder.pub",
            include_str!("../testdata/recorded/keys/builder.pub"),
        ),
        (
            "keys/release.pub",
            include_str!("../testdata/recorded/keys/release.pub"),
        ),
    ] {
        b.files.insert(path.into(), text.into());
    }
    b
}

#[test]
fn recorded_decisions_replay_to_the_same_outcome() {
    let policy = compile(&recorded_bundle()).expect("the recorded policy still compiles");
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("../testdata/recorded/decisions.json")).unwrap();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let facts: Facts = serde_json::from_value(case["facts"].clone())
            .unwrap_or_else(|e| panic!("{name}: facts: {e}"));
        let recorded: Decision = serde_json::from_value(case["decision"].clone())
            .unwrap_or_else(|e| panic!("{name}: decision: {e}"));
        // The shapes round-trip: what is stored is what would be stored again.
        assert_eq!(
            serde_json::to_value(&facts).unwrap(),
            case["facts"],
            "{name}"
        );
        assert_eq!(
            serde_json::to_value(&recorded).unwrap(),
            case["decision"],
            "{name}"
        );
        assert_eq!(facts_digest(&facts), recorded.input_digest, "{name}");
        // The engine names the crate's version, which a release bumps; the rest must agree.
        let replayed = Decision {
            engine: recorded.engine.clone(),
            ..evaluate(&policy, &facts)
        };
        assert_eq!(replayed, recorded, "{name}: replay differs");
    }
}

/// A policy recorded before governance was checked still compiles as recorded (its
/// decisions replay), where a new policy with the same text is refused.
#[test]
fn a_recorded_policy_is_read_as_recorded_where_a_new_one_is_refused() {
    let mut b = recorded_bundle();
    let text =
        b.files["custody.toml"].clone() + "\n[governance]\nowners = [\"security\"]\nquorum = 5\n";
    b.files.insert("custody.toml".into(), text);
    let err = compile(&b).unwrap_err().to_string();
    assert!(
        err.contains("a quorum of 5 owners other than the proposer"),
        "{err}"
    );
    let policy = custody_policy::compile_recorded(&b).expect("recorded as it was");
    assert_eq!(policy.governance().quorum, 5);
}

/// A recorded policy's role names that are not custody's (legacy roles) still grant and
/// approve as they did, each named once; a new policy naming them is refused.
#[test]
fn a_recorded_policys_legacy_roles_still_grant_and_approve() {
    let text = "version = 1\n[roles]\nrelease-managers = [\"ron\"]\napprover = [\"alice\"]\n[[environment]]\nname = \"prod\"\napprovals = { quorum = 1, roles = [\"release-managers\", \"release-managers\", \"approver\"], expires = \"24h\" }\n";
    let mut b = Bundle::default();
    b.files.insert("custody.toml".into(), text.into());
    let err = compile(&b).unwrap_err().to_string();
    assert!(err.contains("release-managers"), "{err}");
    let recorded = custody_policy::compile_recorded(&b).unwrap();
    assert_eq!(
        recorded.legacy_grants(),
        [("ron".to_owned(), "release-managers".to_owned())]
    );
    let managers = ["release-managers".to_owned()];
    assert!(recorded.holds_legacy("ron", &managers));
    assert!(!recorded.holds_legacy("alice", &managers));
    assert!(!recorded.holds_legacy("ron", &[]));
    assert!(!recorded.holds_legacy("ron", &["approver".to_owned()]));
    let rule = recorded
        .environment("prod")
        .unwrap()
        .approvals
        .as_ref()
        .unwrap();
    assert_eq!(rule.legacy_roles, managers);
    assert_eq!(rule.roles, [custody_policy::Role::Approver]);
}
