//! The gates over licences, a standing that a new scan takes back or only warns about,
//! break-glass past evidence but not past agreeing rebuilds, and the rules' mistakes
//! refused at their line.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_policy::{
    ExceptionFacts, ProvenanceFacts, Status, WaivedFinding, compile, evaluate, evaluate_standing,
};
use fixture::reports::*;
use fixture::{HOUR, NOW, POLICY, bundle, keys, passing_facts};

#[test]
fn licences_are_judged_as_spdx_expressions_and_unknown_is_denied() {
    let (policy, k) = rules_policy(LICENCES);
    let facts = passing_facts(&policy, &k, 1);
    let ok = with(
        &policy,
        facts.clone(),
        "sbom",
        &sbom(&[
            ("a", Some("MIT OR GPL-3.0-only")),
            ("b", Some("Apache-2.0")),
        ]),
        NOW - HOUR,
    );
    assert!(
        evaluate(&policy, &ok).allowed,
        "{:#?}",
        evaluate(&policy, &ok)
    );
    let both = with(
        &policy,
        facts.clone(),
        "sbom",
        &sbom(&[("a", Some("MIT AND GPL-3.0-only"))]),
        NOW - HOUR,
    );
    fails(
        &evaluate(&policy, &both),
        "licences",
        &["MIT AND GPL-3.0-only (a@1.0)", "GPL-3.0-only is denied"],
    );
    let unknown = with(
        &policy,
        facts.clone(),
        "sbom",
        &sbom(&[("c", None), ("d", Some("Acme Proprietary"))]),
        NOW - HOUR,
    );
    fails(
        &evaluate(&policy, &unknown),
        "licences",
        &[
            "no licence (c@1.0)",
            "an unknown licence is denied",
            "d@1.0",
        ],
    );
    // The real npm SBOM: its packages are MIT, (MIT OR GPL-3.0-or-later), BSD-3-Clause, 0BSD…
    let npm = with(
        &policy,
        facts.clone(),
        "sbom",
        &report("sbom/npm-cyclonedx-1.5.json"),
        NOW - HOUR,
    );
    let d = evaluate(&policy, &npm);
    assert!(
        !gate(&d, "licences").reason.contains("jszip"),
        "MIT OR GPL-3.0-or-later passes: {d:#?}"
    );

    // A licence waived for one package by an exception in force.
    let mut waived = both.clone();
    waived.exceptions.push(ExceptionFacts {
        finding: WaivedFinding::Licence {
            licence: "MIT AND GPL-3.0-only".into(),
            package: "a".into(),
        },
        ..exception("exc-l", "")
    });
    let d = evaluate(&policy, &waived);
    assert!(d.allowed, "{d:#?}");
    assert!(gate(&d, "licences").reason.contains("exception exc-l"));
    waived.exceptions[0].finding = WaivedFinding::Licence {
        licence: "MIT AND GPL-3.0-only".into(),
        package: "b".into(),
    };
    assert!(!evaluate(&policy, &waived).allowed);

    let (lenient, k) =
        rules_policy("[environment.licences]\ndeny = [\"GPL-3.0-only\"]\nallow_unknown = true\n");
    let unknown = fresh(&lenient, &k, "sbom", &sbom(&[("c", None)]));
    assert!(evaluate(&lenient, &unknown).allowed);
}

#[test]
fn a_new_scan_takes_a_standing_back_or_only_warns() {
    let (policy, k) = rules_policy("");
    let facts = passing_facts(&policy, &k, 1);
    assert!(evaluate_standing(&policy, &facts).allowed);
    let scanned = with(
        &policy,
        facts.clone(),
        "vulnerability-scan",
        &scan(),
        NOW + HOUR,
    );
    let d = evaluate_standing(&policy, &scanned);
    fails(&d, "vulnerabilities", &["above high with a known fix"]);

    let (warn, k) = rules_policy("standing = \"warn\"\n");
    let scanned = with(
        &warn,
        passing_facts(&warn, &k, 1),
        "vulnerability-scan",
        &scan(),
        NOW + HOUR,
    );
    let d = evaluate_standing(&warn, &scanned);
    assert!(d.allowed, "{d:#?}");
    let g = gate(&d, "vulnerabilities");
    assert_eq!(g.status, Status::Warn);
    assert!(
        g.reason
            .starts_with("warning (production only warns after certification)"),
        "{}",
        g.reason
    );
    assert_eq!(d.warnings().count(), 1);
    // A promotion is still refused: warning is for what changes after certification.
    assert!(!evaluate(&warn, &scanned).allowed);
}

#[test]
fn break_glass_passes_evidence_content_but_never_agreeing_rebuilds() {
    let (policy, k) = rules_policy("break_glass = [\"security\"]\nreproducible = 2\n");
    let mut facts = fresh(&policy, &k, "test-results", &report("junit/pytest.xml"));
    facts.requested_by = "sam".into();
    facts.break_glass = Some("outage".into());
    let d = evaluate(&policy, &facts);
    assert_eq!(gate(&d, "tests").status, Status::Overridden);
    assert_eq!(gate(&d, "reproducible").status, Status::Fail);
    assert!(!d.allowed);
}

#[test]
fn independent_builders_must_agree_where_the_environment_asks() {
    let (policy, k) = rules_policy("reproducible = 2\n");
    let facts = passing_facts(&policy, &k, 1);
    fails(
        &evaluate(&policy, &facts),
        "reproducible",
        &[
            "1 of the 2 independent trusted builders required agree",
            "https://ci.example/builder/v1",
        ],
    );
    // The same builder again is not independent.
    let mut again = facts.clone();
    again.release.artifacts[0]
        .rebuilds
        .push(facts.release.artifacts[0].provenance.clone().unwrap());
    fails(&evaluate(&policy, &again), "reproducible", &["1 of the 2"]);
    // A second trusted builder whose provenance names the same digest agrees.
    let k2 = custody_crypto::PrivateKey::ed25519_from_seed(&[7; 32]).unwrap();
    use custody_crypto::Signer as _;
    let text = format!("{POLICY}reproducible = 2\n").replace(
        "[[environment]]\nname = \"build\"",
        "[[builder]]\nid = \"https://rebuild.example/v1\"\nkey = \"keys/rebuilder.pub\"\nsource_repos = [\"https://git.example/acme/*\"]\n\n[[environment]]\nname = \"build\"",
    );
    let mut b = bundle(&text, &k);
    b.files
        .insert("keys/rebuilder.pub".into(), k2.public_key().to_pem());
    let two = compile(&b).unwrap();
    let mut agreed = facts.clone();
    for a in &mut agreed.approvals {
        a.policy_digest = two.digest().into(); // approvals are bound to the policy version
    }
    assert!(!evaluate(&two, &agreed).allowed);
    agreed.release.artifacts[0].rebuilds.push(ProvenanceFacts {
        signing_key: Some(k2.public_key().key_id().to_string()),
        builder_id: "https://rebuild.example/v1".into(),
        ..facts.release.artifacts[0].provenance.clone().unwrap()
    });
    assert!(
        evaluate(&two, &agreed).allowed,
        "{:#?}",
        evaluate(&two, &agreed)
    );
    assert!(evaluate_standing(&two, &agreed).allowed);
    // …but not a rebuild whose provenance is about another digest.
    agreed.release.artifacts[0].rebuilds[0].subject_matches = false;
    assert!(!evaluate(&two, &agreed).allowed);
}

/// Static analysis needs one limit of the three, not all of them.
#[test]
fn one_static_analysis_limit_is_enough() {
    let k = keys();
    for limit in ["max_error = 0", "max_warning = 3", "max_note = 10"] {
        let text = format!("{POLICY}[environment.static_analysis]\n{limit}\n");
        compile(&bundle(&text, &k)).unwrap();
    }
}

#[test]
fn mistakes_in_the_rules_are_refused_at_their_line() {
    let k = keys();
    for (rules, line, needle) in [
        (
            "[environment.vulnerabilities]\nmax_severity = \"severe\"\n",
            2,
            "max_severity \"severe\" is not a severity",
        ),
        (
            "[environment.vulnerabilities]\nunknown_as = \"none\"\n",
            2,
            "use critical, high, medium or low",
        ),
        (
            "[environment.vulnerabilities]\nmax_age = \"forever\"\n",
            2,
            "",
        ),
        (
            "[environment.licences]\nallow = [\"MIT\", \"Not A Licence\"]\n",
            2,
            "allow list entry \"Not A Licence\"",
        ),
        (
            "[environment.licences]\ndeny = [\"Not A Licence\"]\n",
            2,
            "deny list entry \"Not A Licence\"",
        ),
        (
            "[environment.licences]\nallow = []\n",
            2,
            "the allow list is empty",
        ),
        (
            "[environment.licences]\nallow_unknown = true\n",
            1,
            "neither an allow nor a deny list",
        ),
        ("[environment.static_analysis]\n", 1, "sets no limit"),
        (
            "[environment.tests]\nmin_test = 3\n",
            2,
            "unknown field `min_test`",
        ),
        (
            "standing = \"maybe\"\n",
            1,
            "standing \"maybe\" is not deny or warn",
        ),
        ("reproducible = 1\n", 1, "at least 2"),
    ] {
        let text = format!("{POLICY}{rules}");
        let errors = compile(&bundle(&text, &k)).unwrap_err();
        // One mistake, one error: said once, where it is.
        assert_eq!(errors.0.len(), 1, "{rules}: {errors}");
        let first = &errors.0[0];
        let expected = POLICY.lines().count() + line;
        assert_eq!(first.line, expected, "{rules}: {errors}");
        assert!(first.message.contains(needle), "{rules}: {errors}");
    }
}

#[test]
fn vulnerabilities_past_the_recorded_list_still_block_and_no_exception_waives_them() {
    // 103 fixable criticals: the first 100 are recorded by id, three only counted.
    let ids: Vec<String> = (0..103).map(|i| format!("CVE-2024-{}", 1000 + i)).collect();
    let findings: Vec<_> = ids
        .iter()
        .map(|id| (id.as_str(), "openssl", "CRITICAL", Some("3.0.7")))
        .collect();
    let (policy, k) = rules_policy("");
    let facts = fresh(&policy, &k, "vulnerability-scan", &trivy(&findings));
    fails(
        &evaluate(&policy, &facts),
        "vulnerabilities",
        &[
            "artifact service-0: 103 vulnerabilities above high",
            "CVE-2024-1099 in openssl",
            "; and 3 more not listed",
        ],
    );
    // Every recorded one waived: the three beyond still block, and say so alone.
    let mut waived = facts;
    waived.exceptions = ids[..100]
        .iter()
        .enumerate()
        .map(|(i, id)| exception(&format!("exc-{i}"), id))
        .collect();
    let d = evaluate(&policy, &waived);
    fails(
        &d,
        "vulnerabilities",
        &[
            "artifact service-0: 3 vulnerabilities above high with a known fix: and 3 more not listed",
        ],
    );
}

#[test]
fn denied_licences_past_the_recorded_list_still_block_and_no_exception_waives_them() {
    let (policy, k) = rules_policy(LICENCES);
    // Twelve packages under one denied licence: ten are named, two only counted.
    let names: Vec<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    let components: Vec<_> = names
        .iter()
        .map(|n| (n.as_str(), Some("GPL-3.0-only")))
        .collect();
    let facts = fresh(&policy, &k, "sbom", &sbom(&components));
    fails(
        &evaluate(&policy, &facts),
        "licences",
        &["GPL-3.0-only (p00@1.0, ", "p09@1.0, 2 more not listed): "],
    );
    let waiver = |n: &str| ExceptionFacts {
        finding: WaivedFinding::Licence {
            licence: "GPL-3.0-only".into(),
            package: n.into(),
        },
        ..exception(&format!("exc-{n}"), "")
    };
    // The ten named waived: the two beyond still block, and say so alone.
    let mut waived = facts.clone();
    waived.exceptions = names[..10].iter().map(|n| waiver(n)).collect();
    fails(
        &evaluate(&policy, &waived),
        "licences",
        &["artifact service-0: GPL-3.0-only (2 more not listed): "],
    );
    // An exception no longer in force says why it does not count, and only it.
    let mut ended = facts;
    ended.exceptions = vec![ExceptionFacts {
        expires_at: NOW - 1,
        ..waiver("p03")
    }];
    let d = evaluate(&policy, &ended);
    let reason = &gate(&d, "licences").reason;
    assert!(
        reason.ends_with(" (exception exc-p03 expired at 2026-11-18T11:06:39Z)"),
        "{reason}"
    );

    // More denied licences than are recorded: the rest are counted.
    let many: Vec<(String, String)> = (0..101)
        .map(|i| (format!("q{i:03}"), format!("LicenseRef-acme-{i:03}")))
        .collect();
    let components: Vec<_> = many
        .iter()
        .map(|(n, l)| (n.as_str(), Some(l.as_str())))
        .collect();
    let facts = fresh(&policy, &k, "sbom", &sbom(&components));
    fails(
        &evaluate(&policy, &facts),
        "licences",
        &[
            "LicenseRef-acme-000 (q000@1.0)",
            "; and 1 more denied licences",
        ],
    );
}

#[test]
fn a_warn_standing_softens_only_the_content_gates_that_failed() {
    let (warn, k) = rules_policy("standing = \"warn\"\n");
    let mut facts = with(
        &warn,
        passing_facts(&warn, &k, 1),
        "vulnerability-scan",
        &trivy(&[("CVE-2024-0003", "curl", "LOW", Some("8.5.0"))]),
        NOW + HOUR,
    );
    let d = evaluate_standing(&warn, &facts);
    assert!(d.allowed, "{d:#?}");
    assert_eq!(
        d.warnings().count(),
        0,
        "a passing content gate stays passed"
    );
    assert_eq!(gate(&d, "vulnerabilities").status, Status::Pass);
    // A failing gate that reads no evidence's content still fails.
    facts.release.artifacts[0]
        .evidence
        .retain(|e| e.kind != "sbom");
    let d = evaluate_standing(&warn, &facts);
    fails(&d, "evidence", &["sbom"]);
}

#[test]
fn a_waived_finding_reads_as_people_name_it() {
    let cve = WaivedFinding::Vulnerability {
        id: "CVE-2024-0001".into(),
    };
    assert_eq!(cve.to_string(), "vulnerability CVE-2024-0001");
    let licence = WaivedFinding::Licence {
        licence: "GPL-3.0-only".into(),
        package: "readline@8.2".into(),
    };
    assert_eq!(licence.to_string(), "licence GPL-3.0-only of readline@8.2");
}
