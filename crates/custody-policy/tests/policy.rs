//! The policy compiler's errors and every gate's verdicts, pass and fail.
//!
//! Here: a complete promotion passing, each gate refusing with its reason, evaluation as
//! a pure function; `policy/compiler.rs` what the compiler refuses; `policy/environments.rs`
//! an environment's own trusted keys and builders, freezes and break-glass.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "policy/compiler.rs"]
mod compiler;
#[path = "policy/environments.rs"]
mod environments;
mod fixture;

use custody_policy::{Decision, Status, evaluate};
use fixture::{HOUR, NOW, POLICY, bundle, keys, passing_facts, policy};

fn gate<'a>(d: &'a Decision, name: &str) -> &'a custody_policy::GateResult {
    d.gates
        .iter()
        .find(|g| g.gate.name() == name)
        .unwrap_or_else(|| panic!("no gate {name}: {d:?}"))
}

/// The provenance of artifact `i` of the release, to change.
fn provenance(f: &mut custody_policy::Facts, i: usize) -> &mut custody_policy::ProvenanceFacts {
    f.release.artifacts[i].provenance.as_mut().unwrap()
}

#[track_caller]
fn blocked(d: &Decision, name: &str, status: Status, needle: &str) {
    assert!(!d.allowed, "allowed: {d:?}");
    let g = gate(d, name);
    assert_eq!(g.status, status, "{g:?}");
    assert!(g.reason.contains(needle), "{:?} lacks {needle:?}", g.reason);
}

#[test]
fn a_complete_promotion_passes_every_gate() {
    let (policy, keys) = policy();
    let d = evaluate(&policy, &passing_facts(&policy, &keys, 3));
    assert!(d.allowed, "{d:#?}");
    let names: Vec<_> = d.gates.iter().map(|g| g.gate.name()).collect();
    assert_eq!(
        names,
        [
            "release-signature",
            "naming",
            "provenance",
            "previous-environment",
            "evidence",
            "approvals"
        ]
    );
    assert_eq!(gate(&d, "approvals").reason, "approved by alice, bob, sam");
    assert_eq!(d.blocking().count(), 0);
    assert!(!d.broke_glass(), "nobody broke glass");
    assert!(d.input_digest.starts_with("sha256:"));
    assert_eq!(d.policy_digest, policy.digest());
    let environments: Vec<_> = policy
        .environments()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(environments, ["build", "test", "staging", "production"]);
    assert_eq!(policy.pipeline(), "build → test → staging → production");
}

#[test]
fn evaluation_is_a_pure_function_of_policy_and_facts() {
    let (policy, keys) = policy();
    let facts = passing_facts(&policy, &keys, 2);
    assert_eq!(evaluate(&policy, &facts), evaluate(&policy, &facts));
    let mut later = facts.clone();
    later.now += 30 * HOUR; // approvals expire
    let d = evaluate(&policy, &later);
    assert_ne!(d.input_digest, evaluate(&policy, &facts).input_digest);
    blocked(&d, "approvals", Status::Waiting, "expired at");
}

#[test]
fn each_gate_says_no_with_its_reason() {
    let (policy, keys) = policy();
    let base = passing_facts(&policy, &keys, 2);
    let check =
        |mutate: &dyn Fn(&mut custody_policy::Facts), name: &str, status: Status, needle: &str| {
            let mut f = base.clone();
            mutate(&mut f);
            blocked(&evaluate(&policy, &f), name, status, needle);
        };
    check(
        &|f| f.release.signing_key = None,
        "release-signature",
        Status::Fail,
        "not signed by a trusted release key",
    );
    check(
        &|f| {
            f.release.signing_key = None;
            f.release.signatures = 0;
        },
        "release-signature",
        Status::Fail,
        "unsigned",
    );
    check(
        &|f| f.release.signing_key = Some("ff".repeat(32)),
        "release-signature",
        Status::Fail,
        "not a trusted release key",
    );
    check(
        &|f| f.release.artifacts[0].name = "Bad_Name".into(),
        "naming",
        Status::Fail,
        "Bad_Name",
    );
    check(
        &|f| f.release.version = "1.4".into(),
        "naming",
        Status::Fail,
        "SemVer",
    );
    check(
        &|f| f.release.artifacts[1].provenance = None,
        "provenance",
        Status::Fail,
        "service-1 has no provenance",
    );
    check(
        &|f| provenance(f, 0).source_repo = "https://evil.example/x".into(),
        "provenance",
        Status::Fail,
        "may not build",
    );
    check(
        &|f| provenance(f, 0).builder_id = "other".into(),
        "provenance",
        Status::Fail,
        "belongs to",
    );
    check(
        &|f| provenance(f, 0).subject_matches = false,
        "provenance",
        Status::Fail,
        "another digest",
    );
    check(
        &|f| f.previous = None,
        "previous-environment",
        Status::Fail,
        "never certified in staging",
    );
    check(
        &|f| f.previous.as_mut().unwrap().certified_at = Some(NOW - HOUR),
        "previous-environment",
        Status::Waiting,
        "soaking in staging",
    );
    check(
        &|f| f.previous.as_mut().unwrap().deploy_verified = false,
        "previous-environment",
        Status::Waiting,
        "no successful deploy",
    );
    check(
        &|f| f.release.artifacts[0].evidence.retain(|e| e.kind != "sbom"),
        "evidence",
        Status::Fail,
        "service-0 has no sbom evidence",
    );
    check(
        &|f| f.release.artifacts[0].evidence[0].at = NOW - 31 * 24 * HOUR,
        "evidence",
        Status::Fail,
        "younger than 30d",
    );
    check(
        &|f| f.environment = "prod".into(),
        "environment",
        Status::Fail,
        "unknown environment",
    );
    // Approvals: each way one can fail to count.
    check(
        &|f| f.approvals.truncate(2),
        "approvals",
        Status::Waiting,
        "2 of 3 approvals",
    );
    check(
        &|f| f.approvals[0].by = "rita".into(),
        "approvals",
        Status::Waiting,
        "rita (requested the promotion)",
    );
    check(
        &|f| f.approvals[0].by = "ci-bot".into(),
        "approvals",
        Status::Waiting,
        "ci-bot (built an artifact",
    );
    check(
        &|f| {
            f.release.signed_by = "carol".into();
            f.approvals[0].by = "carol".into()
        },
        "approvals",
        Status::Waiting,
        "carol (signed the release)",
    );
    check(
        &|f| f.approvals[0].by = "mallory".into(),
        "approvals",
        Status::Waiting,
        "mallory (holds none of the roles",
    );
    check(
        &|f| f.approvals[1].by = "alice".into(),
        "approvals",
        Status::Waiting,
        "alice (already counted)",
    );
    check(
        &|f| f.approvals[0].superseded = true,
        "approvals",
        Status::Waiting,
        "superseded",
    );
    check(
        &|f| f.approvals[0].expires_at = NOW,
        "approvals",
        Status::Waiting,
        "expired at",
    );
    check(
        &|f| f.approvals[0].release_digest = "sha256:bbbb".into(),
        "approvals",
        Status::Waiting,
        "another release",
    );
    // An approval is bound to its environment: staging's does not count in production.
    check(
        &|f| f.approvals[0].environment = "staging".into(),
        "approvals",
        Status::Waiting,
        "alice (given for another release, environment or policy version)",
    );
    // An approval counts for no longer than the rule's `expires` (production: 24h), however
    // long its own expiry.
    check(
        &|f| {
            f.approvals[0].at = NOW - 24 * HOUR;
            f.approvals[0].expires_at = NOW + 48 * HOUR;
        },
        "approvals",
        Status::Waiting,
        "alice (expired at",
    );
    check(
        &|f| f.approvals[0].policy_digest = "sha256:old".into(),
        "approvals",
        Status::Waiting,
        "policy version",
    );
    check(
        &|f| f.approvals[0].approve = false,
        "approvals",
        Status::Fail,
        "rejected by alice",
    );
}

/// Each reason in full where its words depend on what was refused, and each bound met
/// exactly: a soak that ends now, a report exactly as old as allowed.
#[test]
fn reasons_name_what_was_refused_and_bounds_met_exactly_pass() {
    let (policy, keys) = policy();
    let base = passing_facts(&policy, &keys, 2);
    let reason = |mutate: &dyn Fn(&mut custody_policy::Facts), name: &str| {
        let mut f = base.clone();
        mutate(&mut f);
        let d = evaluate(&policy, &f);
        assert!(!d.allowed, "{d:#?}");
        gate(&d, name).reason.clone()
    };
    assert_eq!(
        reason(&|f| f.release.signing_key = None, "release-signature"),
        "the release manifest is not signed by a trusted release key (its signatures are by unknown or revoked keys)"
    );
    assert_eq!(
        reason(
            &|f| {
                f.release.signing_key = None;
                f.release.refused_keys = vec!["key 1234 was revoked".into()];
            },
            "release-signature"
        ),
        "the release manifest is not signed by a trusted release key: key 1234 was revoked"
    );
    let unsigned_provenance = |f: &mut custody_policy::Facts, refused: &[&str]| {
        let p = provenance(f, 1);
        p.signing_key = None;
        p.refused_keys = refused.iter().map(|r| (*r).to_owned()).collect();
    };
    assert_eq!(
        reason(&|f| unsigned_provenance(f, &[]), "provenance"),
        "the provenance of service-1 is not signed by a trusted builder key"
    );
    assert_eq!(
        reason(
            &|f| unsigned_provenance(f, &["key 5678 expired", "key 9abc unknown"]),
            "provenance"
        ),
        "the provenance of service-1 is not signed by a trusted builder key: key 5678 expired; key 9abc unknown"
    );
    // Each artifact's source judged on its own, the first one's allowed source aside.
    assert_eq!(
        reason(
            &|f| provenance(f, 1).source_repo = "https://git.example/other/shop".into(),
            "provenance"
        ),
        "builder \"https://ci.example/builder/v1\" may not build service-1 (from https://git.example/other/shop)"
    );
    // Only a digest, and too old: the age is the problem, not the missing report.
    assert_eq!(
        reason(
            &|f| {
                for e in &mut f.release.artifacts[0].evidence {
                    if e.kind == "sbom" {
                        e.read = Some(false);
                        e.at = NOW - 31 * 24 * HOUR;
                    }
                }
            },
            "evidence"
        ),
        "artifact service-0 has no sbom evidence younger than 30d"
    );

    let passes = |mutate: &dyn Fn(&mut custody_policy::Facts)| {
        let mut f = base.clone();
        mutate(&mut f);
        let d = evaluate(&policy, &f);
        assert!(d.allowed, "{d:#?}");
    };
    // Production soaks 24h in staging: certified exactly 24h ago is ready, a second less is not.
    passes(&|f| f.previous.as_mut().unwrap().certified_at = Some(NOW - 24 * HOUR));
    blocked(
        &{
            let mut f = base.clone();
            f.previous.as_mut().unwrap().certified_at = Some(NOW - 24 * HOUR + 1);
            evaluate(&policy, &f)
        },
        "previous-environment",
        Status::Waiting,
        "soaking in staging for 1d",
    );
    // Evidence exactly 30d old is young enough.
    passes(&|f| {
        for e in &mut f.release.artifacts[0].evidence {
            e.at = NOW - 30 * 24 * HOUR;
        }
    });
}
