//! The policy compiler's errors and every gate's verdicts, pass and fail.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_crypto::Signer as _;
use custody_policy::{Decision, Status, compile, evaluate};
use fixture::{HOUR, NOW, POLICY, bundle, keys, passing_facts, policy};

fn gate<'a>(d: &'a Decision, name: &str) -> &'a custody_policy::GateResult {
    d.gates
        .iter()
        .find(|g| g.gate.name() == name)
        .unwrap_or_else(|| panic!("no gate {name}: {d:?}"))
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
        &|f| {
            f.release.artifacts[0]
                .provenance
                .as_mut()
                .unwrap()
                .source_repo = "https://evil.example/x".into()
        },
        "provenance",
        Status::Fail,
        "may not build",
    );
    check(
        &|f| {
            f.release.artifacts[0]
                .provenance
                .as_mut()
                .unwrap()
                .builder_id = "other".into()
        },
        "provenance",
        Status::Fail,
        "belongs to",
    );
    check(
        &|f| {
            f.release.artifacts[0]
                .provenance
                .as_mut()
                .unwrap()
                .subject_matches = false
        },
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

#[track_caller]
fn compile_error(text: &str, line: usize, needle: &str) {
    let err = compile(&bundle(text, &keys())).expect_err("compiled");
    assert!(
        err.0
            .iter()
            .any(|e| e.line == line && e.message.contains(needle)),
        "no error at line {line} containing {needle:?}:\n{err}"
    );
    assert!(err.to_string().starts_with("custody.toml:"), "{err}");
}

#[test]
fn mistakes_in_a_policy_name_their_line() {
    let env = |rest: &str| {
        format!(
            "version = 1\n[roles]\napprover = [\"alice\", \"bob\"]\n\n[[environment]]\nname = \"build\"\n\n[[environment]]\nname = \"test\"\n{rest}"
        )
    };
    compile_error(
        &env("after = \"nowhere\"\n"),
        10,
        "unknown environment \"nowhere\"",
    );
    compile_error(
        &env("after = \"prod\"\n[[environment]]\nname = \"prod\"\n"),
        10,
        "declared later",
    );
    compile_error(
        &env("approvals = { quorum = 0, roles = [\"approver\"] }\n"),
        10,
        "quorum of 0",
    );
    compile_error(
        &env("approvals = { quorum = 3, roles = [\"approver\"] }\n"),
        10,
        "can never be met",
    );
    compile_error(
        &env("approvals = { quorum = 1, roles = [\"ghosts\"] }\n"),
        10,
        "unknown role \"ghosts\"",
    );
    compile_error(
        &env("approvals = { quorum = 1, roles = [] }\n"),
        10,
        "nobody could approve",
    );
    compile_error(&env("soak = \"1h\"\n"), 9, "no `after`");
    compile_error(
        &env("after = \"build\"\nsoak = \"a day\"\n"),
        11,
        "not a duration",
    );
    compile_error(&env("colour = \"red\"\n"), 10, "unknown field `colour`");
    compile_error(
        &env("[[environment]]\nname = \"test\"\n"),
        11,
        "declared twice",
    );
    compile_error(&env("evidence = [\"Tests\"]\n"), 10, "evidence type");
    compile_error(
        "version = 2\n[[environment]]\nname = \"a\"\n",
        1,
        "version 2 is not supported",
    );
    compile_error("version = 1\n[[environment]\nname = \"a\"\n", 2, "");
    compile_error(
        "version = 1\n[naming]\nartifact = \"([a-z\"\n[[environment]]\nname = \"a\"\n",
        3,
        "not a valid regular expression",
    );
    compile_error(
        "version = 1\n[[release_key]]\npath = \"keys/missing.pub\"\n[[environment]]\nname = \"a\"\n",
        3,
        "not in the policy bundle",
    );
    compile_error(
        "version = 1\n[[builder]]\nid = \"b\"\nkey = \"keys/builder.pub\"\nsource_repos = []\n[[environment]]\nname = \"a\"\n",
        5,
        "no source repositories",
    );
    compile_error(
        "version = 1\n[[release_key]]\npath = \"keys/builder.pub\"\n[[builder]]\nid = \"b\"\nkey = \"keys/builder.pub\"\nsource_repos = [\"x\"]\n[[environment]]\nname = \"a\"\n",
        6,
        "separation of signing duties",
    );
    // Several mistakes are all reported at once.
    let err = compile(&bundle(
        &env("after = \"nowhere\"\nsoak = \"x\"\n"),
        &keys(),
    ))
    .unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
}

#[test]
fn the_policy_digest_covers_every_file() {
    let k = keys();
    let a = compile(&bundle(POLICY, &k)).unwrap();
    let mut b = bundle(POLICY, &k);
    b.files.insert(
        "keys/release.pub".into(),
        custody_crypto::PrivateKey::ed25519_from_seed(&[9; 32])
            .unwrap()
            .public_key()
            .to_pem(),
    );
    assert_ne!(a.digest(), compile(&b).unwrap().digest());
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

/// A quorum counts only the people who hold an approving role in that environment: as
/// many as the quorum compiles; a viewer beside too few approvers does not make up the
/// number.
#[test]
fn a_quorum_counts_only_those_who_could_approve_there() {
    let env = |roles: &str| {
        format!(
            "version = 1\n[roles]\n{roles}\n\n[[environment]]\nname = \"build\"\napprovals = {{ quorum = 2, roles = [\"approver\"] }}\n"
        )
    };
    compile(&bundle(&env("approver = [\"alice\", \"bob\"]"), &keys())).unwrap();
    let text = env("approver = [\"alice\"]\nviewer = [\"vic\"]");
    let line = text
        .lines()
        .position(|l| l.starts_with("approvals"))
        .unwrap()
        + 1;
    compile_error(&text, line, "only 1 people hold");
}

/// A policy file is at most [`MAX_POLICY_FILE`] bytes, that many included, however it
/// arrives; a larger one is refused naming the file, and nothing of it is compiled.
#[test]
fn a_policy_file_is_bounded() {
    let k = keys();
    let mut b = bundle(POLICY, &k);
    let pad = |text: &str, to: usize| format!("{text}#{}\n", "x".repeat(to - text.len() - 2));
    let at = pad(POLICY, custody_policy::MAX_POLICY_FILE);
    assert_eq!(at.len(), custody_policy::MAX_POLICY_FILE);
    b.files.insert("custody.toml".into(), at);
    compile(&b).unwrap();
    let over = pad(POLICY, custody_policy::MAX_POLICY_FILE + 1);
    b.files.insert("notes.rego".into(), over);
    let err = compile(&b).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].file, "notes.rego");
    assert!(err.0[0].message.contains("at most 1048576"), "{err}");
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
        let p = f.release.artifacts[1].provenance.as_mut().unwrap();
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
            &|f| {
                f.release.artifacts[1]
                    .provenance
                    .as_mut()
                    .unwrap()
                    .source_repo = "https://git.example/other/shop".into()
            },
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
