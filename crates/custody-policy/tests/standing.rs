//! Typed gates, and a release's standing under the policy in force: what the deploy gate
//! re-checks (everything that does not depend on when it was promoted).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_crypto::{PrivateKey, Signer as _};
use custody_policy::{
    Decision, Facts, Gate, OVERRIDABLE, Policy, Status, compile, evaluate, evaluate_standing,
};
use fixture::{HOUR, NOW, POLICY, bundle, keys, passing_facts};

#[test]
fn gates_serialise_as_the_names_recorded_decisions_carry() {
    for (gate, name) in [
        (Gate::Environment, "environment"),
        (Gate::ReleaseSignature, "release-signature"),
        (Gate::Naming, "naming"),
        (Gate::Provenance, "provenance"),
        (Gate::PreviousEnvironment, "previous-environment"),
        (Gate::Evidence, "evidence"),
        (Gate::Freeze, "freeze"),
        (Gate::Approvals, "approvals"),
        (Gate::BreakGlass, "break-glass"),
        (Gate::Tests, "tests"),
        (Gate::StaticAnalysis, "static-analysis"),
        (Gate::Vulnerabilities, "vulnerabilities"),
        (Gate::Licences, "licences"),
        (Gate::Reproducible, "reproducible"),
    ] {
        assert_eq!(gate.name(), name);
        assert_eq!(gate.to_string(), name);
        assert_eq!(
            format!("{gate:12}|"),
            format!("{name:12}|"),
            "pads like a str"
        );
        assert_eq!(serde_json::to_value(gate).unwrap(), name);
        assert_eq!(serde_json::from_value::<Gate>(name.into()).unwrap(), gate);
    }
    assert!(serde_json::from_value::<Gate>("sbom".into()).is_err());
    assert_eq!(
        OVERRIDABLE,
        [
            Gate::PreviousEnvironment,
            Gate::Evidence,
            Gate::Freeze,
            Gate::Approvals,
            Gate::Tests,
            Gate::StaticAnalysis,
            Gate::Vulnerabilities,
            Gate::Licences,
        ]
    );
}

#[test]
fn a_failed_approvals_or_break_glass_gate_ends_the_promotion() {
    let (policy, k) = fixture::policy();
    let facts = passing_facts(&policy, &k, 1);
    let ends = |mutate: &dyn Fn(&mut Facts)| {
        let mut f = facts.clone();
        mutate(&mut f);
        evaluate(&policy, &f).ends_promotion()
    };
    assert!(!ends(&|_| {}));
    assert!(ends(&|f| f.approvals[0].approve = false));
    assert!(ends(&|f| f.break_glass = Some("no role".into())));
    // Waiting, or failing a gate facts can still change, does not end it.
    assert!(!ends(&|f| f.approvals.truncate(1)));
    assert!(!ends(&|f| f.release.signing_key = None));
    assert!(!ends(&|f| f.previous = None));
}

/// The fixture with a second release key and a second builder, both trusted.
fn wider() -> (String, bundle_keys::Extra) {
    let text = POLICY
        .replace(
            "[[release_key]]\npath = \"keys/release.pub\"",
            "[[release_key]]\npath = \"keys/release.pub\"\n[[release_key]]\npath = \"keys/release2.pub\"",
        )
        .replace(
            "[[environment]]\nname = \"build\"",
            "[[builder]]\nid = \"https://ci2.example/b\"\nkey = \"keys/builder2.pub\"\nsource_repos = [\"https://git.example/acme/**\"]\n\n[[environment]]\nname = \"build\"",
        );
    (text, bundle_keys::Extra::new())
}

mod bundle_keys {
    use super::*;

    pub(crate) struct Extra {
        pub(crate) release2: PrivateKey,
        pub(crate) builder2: PrivateKey,
    }

    impl Extra {
        pub(crate) fn new() -> Extra {
            Extra {
                release2: PrivateKey::ed25519_from_seed(&[8; 32]).unwrap(),
                builder2: PrivateKey::ed25519_from_seed(&[9; 32]).unwrap(),
            }
        }
    }

    pub(crate) fn compile_with(text: &str, extra: &Extra) -> Policy {
        let mut b = bundle(text, &keys());
        b.files.insert(
            "keys/release2.pub".into(),
            extra.release2.public_key().to_pem(),
        );
        b.files.insert(
            "keys/builder2.pub".into(),
            extra.builder2.public_key().to_pem(),
        );
        compile(&b).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn gate(d: &Decision, g: Gate) -> Option<&custody_policy::GateResult> {
    d.gates.iter().find(|r| r.gate == g)
}

#[test]
fn an_environments_release_key_limit_holds_for_a_fresh_promotion() {
    let (text, extra) = wider();
    let limited = text.replace(
        "evidence_max_age = \"30d\"",
        "evidence_max_age = \"30d\"\nrelease_keys = [\"keys/release2.pub\"]",
    );
    let policy = bundle_keys::compile_with(&limited, &extra);
    let facts = passing_facts(&policy, &keys(), 1);
    let d = evaluate(&policy, &facts);
    let g = gate(&d, Gate::ReleaseSignature).unwrap();
    assert_eq!(g.status, Status::Fail, "{d:#?}");
    assert!(
        g.reason.contains("may not sign releases for production"),
        "{g:?}"
    );
    // Signed by the allowed key, it passes.
    let mut f = facts.clone();
    f.release.signing_key = Some(extra.release2.key_id().to_string());
    assert!(evaluate(&policy, &f).allowed);
}

#[test]
fn standing_re_checks_what_a_tightening_changes_and_nothing_time_bound() {
    let (text, extra) = wider();
    let k = keys();
    let before = bundle_keys::compile_with(&text, &extra);
    let certified = passing_facts(&before, &k, 2);
    assert!(evaluate(&before, &certified).allowed);
    let standing = evaluate_standing(&before, &certified);
    assert!(standing.allowed, "{standing:#?}");
    assert_eq!(
        standing.gates.iter().map(|g| g.gate).collect::<Vec<_>>(),
        [
            Gate::ReleaseSignature,
            Gate::Naming,
            Gate::Provenance,
            Gate::Evidence
        ]
    );

    // Later, when approvals have expired, the soak and evidence ages no longer matter
    // and a freeze is on, the release still stands.
    let mut later = certified.clone();
    later.now = NOW + 400 * 24 * HOUR;
    later.approvals.clear();
    later.previous = None;
    assert!(!evaluate(&before, &later).allowed);
    assert!(evaluate_standing(&before, &later).allowed);

    // Each tightening: the standing says no on the same gate a fresh promotion does.
    let tighten = |from: &str, to: &str| -> Policy {
        let t = text.replace(from, to);
        assert_ne!(t, text, "{from}");
        bundle_keys::compile_with(&t, &extra)
    };
    let prod = "evidence_max_age = \"30d\"";
    for (policy, failing, needle) in [
        (
            tighten(
                prod,
                &format!("{prod}\nrelease_keys = [\"keys/release2.pub\"]"),
            ),
            Gate::ReleaseSignature,
            "may not sign releases for production",
        ),
        (
            tighten(
                prod,
                &format!("{prod}\nbuilders = [\"https://ci2.example/b\"]"),
            ),
            Gate::Provenance,
            "may not build for production",
        ),
        (
            tighten(
                "source_repos = [\"https://git.example/acme/*\"]",
                "source_repos = [\"https://git.example/acme/cart\"]",
            ),
            Gate::Provenance,
            "may not build service-0",
        ),
        (
            tighten(
                "artifact = \"^[a-z0-9-]+$\"",
                "artifact = \"^svc-[a-z0-9-]+$\"",
            ),
            Gate::Naming,
            "does not match the naming rule",
        ),
        (
            tighten("\"code-review\"]", "\"code-review\", \"pentest\"]"),
            Gate::Evidence,
            "has no pentest evidence",
        ),
    ] {
        let fresh = evaluate(&policy, &certified);
        let g = gate(&fresh, failing).unwrap();
        assert_eq!(g.status, Status::Fail, "{g:?}");
        let d = evaluate_standing(&policy, &later);
        assert!(!d.allowed, "{needle}: {d:#?}");
        let s = gate(&d, failing).unwrap();
        assert_eq!(s.status, Status::Fail, "{s:?}");
        assert!(s.reason.contains(needle), "{s:?}");
        assert_eq!(d.policy_digest, policy.digest());
    }

    // A removed key is a revoked one, as for a fresh promotion.
    let mut revoked = later.clone();
    revoked.release.signing_key = None;
    let d = evaluate_standing(&before, &revoked);
    assert_eq!(
        gate(&d, Gate::ReleaseSignature).unwrap().status,
        Status::Fail
    );
    let mut unknown = later.clone();
    unknown.environment = "prod".into();
    let d = evaluate_standing(&before, &unknown);
    assert!(!d.allowed);
    assert_eq!(d.gates[0].gate, Gate::Environment);
}
