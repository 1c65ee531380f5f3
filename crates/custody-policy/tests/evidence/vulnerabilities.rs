//! The vulnerability gate: a fixable critical finding blocks until an exception in force
//! waives it (by its own id or its one CVE, never by an alias it shares); the rule reads
//! severity, fix and the scan's age; and neither a report saying nothing nor another
//! tool's clean scan hides a finding.

use custody_policy::{ExceptionFacts, Status, evaluate, evaluate_standing};

use crate::fixture::reports::*;
use crate::fixture::{HOUR, NOW, passing_facts};

#[test]
fn a_fixable_critical_vulnerability_blocks_until_an_exception_in_force_waives_it() {
    let (policy, k) = rules_policy("");
    let facts = scanned(&policy, &k);
    let d = evaluate(&policy, &facts);
    let g = gate(&d, "vulnerabilities");
    assert_eq!(g.status, Status::Fail, "{g:?}");
    assert!(
        g.reason.contains("above high with a known fix"),
        "{}",
        g.reason
    );
    let critical = ["CVE-2024-0001".to_owned()];
    assert!(
        g.reason.contains("1 vulnerabilities above high with a known fix: CVE-2024-0001 in openssl 1.0.0 (critical, fixed in 3.0.7"),
        "{}",
        g.reason
    );
    assert!(
        !g.reason.contains("CVE-2024-0002"),
        "no fix: does not count"
    );
    assert!(!g.reason.contains("CVE-2024-0003"), "high is allowed");

    // Waived, each one, while the exceptions are in force.
    let mut waived = facts.clone();
    waived.exceptions = critical
        .iter()
        .enumerate()
        .map(|(i, id)| exception(&format!("exc-{i}"), id))
        .collect();
    let d = evaluate(&policy, &waived);
    assert!(d.allowed, "{d:#?}");
    assert!(
        gate(&d, "vulnerabilities")
            .reason
            .contains("(exception exc-0)")
    );

    // In force from the instant it is approved until the instant it expires.
    let mut edges = waived.clone();
    edges.exceptions[0].approved_at = NOW;
    edges.exceptions[0].expires_at = NOW + 1;
    assert!(evaluate(&policy, &edges).allowed);

    // Expired, self-approved, approved by someone without the security role, scoped to
    // another environment or another artifact: each does not count, and says why.
    for (mutate, why) in [
        (
            Box::new(|x: &mut ExceptionFacts| x.expires_at = NOW)
                as Box<dyn Fn(&mut ExceptionFacts)>,
            "expired at",
        ),
        (
            Box::new(|x: &mut ExceptionFacts| x.approved_by = "rita".into()),
            "approved their own request",
        ),
        (
            Box::new(|x: &mut ExceptionFacts| x.approved_by = "alice".into()),
            "did not hold the security role",
        ),
        (
            Box::new(|x: &mut ExceptionFacts| x.approved_at = NOW + 1),
            "approved only at",
        ),
    ] {
        let mut f = waived.clone();
        mutate(&mut f.exceptions[0]);
        let d = evaluate(&policy, &f);
        fails(&d, "vulnerabilities", &[&critical[0], why]);
    }
    let mut elsewhere = waived.clone();
    elsewhere.exceptions[0].environments = vec!["staging".into()];
    fails(
        &evaluate(&policy, &elsewhere),
        "vulnerabilities",
        &[&critical[0]],
    );
    let mut other = waived.clone();
    other.exceptions[0].artifact = Some(format!("sha256:{:064x}", 9));
    fails(
        &evaluate(&policy, &other),
        "vulnerabilities",
        &[&critical[0]],
    );
    // A release-wide exception covers every artifact of that release only.
    let mut release = waived;
    release.exceptions[0].artifact = None;
    release.exceptions[0].release = Some("shop@1.4.2".into());
    assert!(evaluate(&policy, &release).allowed);
    release.exceptions[0].release = Some("shop@1.4.1".into());
    assert!(!evaluate(&policy, &release).allowed);
}

#[test]
fn the_vulnerability_rule_reads_severity_fix_and_age() {
    // Nothing above low may stay, fix or not: more findings count.
    let (strict, k) = rules_policy(
        "[environment.vulnerabilities]\nmax_severity = \"low\"\nfixable_only = false\nmax_age = \"2h\"\n",
    );
    let facts = scanned(&strict, &k);
    let d = evaluate(&strict, &facts);
    fails(
        &d,
        "vulnerabilities",
        &[
            "3 vulnerabilities above low",
            "CVE-2024-0002 in zlib 1.0.0 (critical, no fix known",
        ],
    );
    // The real Trivy report's medium findings count too under this rule.
    let alpine = fresh(
        &strict,
        &k,
        "vulnerability-scan",
        &report("vuln/trivy-alpine-310.json"),
    );
    fails(
        &evaluate(&strict, &alpine),
        "vulnerabilities",
        &["CVE-2019-1549", "medium"],
    );
    // An unrated finding is judged as `unknown_as` says.
    let unrated = trivy(&[("CVE-2024-0009", "x", "UNKNOWN", Some("2"))]);
    let (medium, k) = rules_policy("[environment.vulnerabilities]\nmax_severity = \"medium\"\n");
    let f = fresh(&medium, &k, "vulnerability-scan", &unrated);
    fails(
        &evaluate(&medium, &f),
        "vulnerabilities",
        &["CVE-2024-0009"],
    );
    let (lenient_unknown, k) = rules_policy(
        "[environment.vulnerabilities]\nmax_severity = \"medium\"\nunknown_as = \"low\"\n",
    );
    let f = fresh(&lenient_unknown, &k, "vulnerability-scan", &unrated);
    assert!(evaluate(&lenient_unknown, &f).allowed);
    // `none`: no finding is allowed, a low one included.
    let low = trivy(&[("CVE-2024-0010", "x", "LOW", Some("2"))]);
    let (none, k) = rules_policy("[environment.vulnerabilities]\nmax_severity = \"none\"\n");
    let f = fresh(&none, &k, "vulnerability-scan", &low);
    fails(&evaluate(&none, &f), "vulnerabilities", &["CVE-2024-0010"]);
    // Critical allowed: nothing counts; but the scan must be young enough at promotion.
    let (lenient, k) = rules_policy(
        "[environment.vulnerabilities]\nmax_severity = \"critical\"\nmax_age = \"2h\"\n",
    );
    let facts = scanned(&lenient, &k);
    assert!(evaluate(&lenient, &facts).allowed);
    // Exactly as old as allowed is young enough.
    let mut edge = facts.clone();
    edge.now += HOUR;
    assert!(evaluate(&lenient, &edge).allowed);
    let mut later = facts.clone();
    later.now += 2 * HOUR;
    fails(
        &evaluate(&lenient, &later),
        "vulnerabilities",
        &["newest vulnerability scan is from", "older than 2h"],
    );
    // A standing does not judge age: it was judged when promoted.
    assert!(evaluate_standing(&lenient, &later).allowed);
    // An explicit rule needs a scan.
    let bare = passing_facts(&lenient, &k, 1);
    fails(
        &evaluate(&lenient, &bare),
        "vulnerabilities",
        &["has no vulnerability scan custody has read"],
    );
}

/// `facts` whose newest report (the last piece of each artifact) claims to come from
/// `format` instead (a second scanner, in these tests).
fn from_tool(mut facts: custody_policy::Facts, format: &str) -> custody_policy::Facts {
    for a in &mut facts.release.artifacts {
        if let Some(r) = a.evidence.last_mut().and_then(|e| e.report.as_mut()) {
            r.format = format.into();
        }
    }
    facts
}

#[test]
fn a_report_saying_nothing_or_another_tools_clean_scan_never_hides_a_finding() {
    let (policy, k) = rules_policy("");
    let dirty = scanned(&policy, &k);
    fails(
        &evaluate(&policy, &dirty),
        "vulnerabilities",
        &["CVE-2024-0001"],
    );

    // A newer piece of the same type that lists no vulnerabilities at all (an SBOM):
    // it says nothing about them, so the scan still stands.
    let sbom_later = with(
        &policy,
        dirty.clone(),
        "vulnerability-scan",
        &sbom(&[("left-pad", Some("MIT"))]),
        NOW - HOUR / 2,
    );
    fails(
        &evaluate(&policy, &sbom_later),
        "vulnerabilities",
        &["CVE-2024-0001"],
    );

    // Another scanner's clean report replaces nothing: both tools' findings count.
    let clean = trivy(&[]);
    let other_tool = from_tool(
        with(
            &policy,
            dirty.clone(),
            "vulnerability-scan",
            &clean,
            NOW - HOUR / 2,
        ),
        "grype",
    );
    fails(
        &evaluate(&policy, &other_tool),
        "vulnerabilities",
        &["CVE-2024-0001"],
    );

    // A re-scan that does not say what it scanned replaces nothing.
    let unsaid = with(
        &policy,
        dirty.clone(),
        "vulnerability-scan",
        &clean,
        NOW - HOUR / 2,
    );
    fails(
        &evaluate(&policy, &unsaid),
        "vulnerabilities",
        &["CVE-2024-0001"],
    );
    // The same tool's re-scan of the same target replaces its last report; a clean scan
    // of another image hides nothing.
    let about = |mut facts: custody_policy::Facts, subject: &str| {
        for a in &mut facts.release.artifacts {
            if let Some(r) = a.evidence.last_mut().and_then(|e| e.report.as_mut()) {
                r.subject = subject.into();
            }
        }
        facts
    };
    let dirty_shop = about(dirty, "shop:1.4.2");
    let elsewhere = about(
        with(
            &policy,
            dirty_shop.clone(),
            "vulnerability-scan",
            &clean,
            NOW - HOUR / 2,
        ),
        "alpine:3.19",
    );
    fails(
        &evaluate(&policy, &elsewhere),
        "vulnerabilities",
        &["CVE-2024-0001"],
    );
    let same_image = about(
        with(
            &policy,
            dirty_shop,
            "vulnerability-scan",
            &clean,
            NOW - HOUR / 2,
        ),
        "shop:1.4.2",
    );
    assert!(evaluate(&policy, &same_image).allowed);

    // Where the environment requires a vulnerability scan and the only piece of that type
    // custody read lists no vulnerabilities, the rule applies and fails closed, rather than
    // vanishing for want of a report to read.
    let silent = fresh(
        &policy,
        &k,
        "vulnerability-scan",
        &sbom(&[("left-pad", Some("MIT"))]),
    );
    fails(
        &evaluate(&policy, &silent),
        "vulnerabilities",
        &["artifact service-0 has no vulnerability scan custody has read"],
    );
}

#[test]
fn an_exception_waives_a_finding_by_its_own_id_or_its_one_cve_never_by_a_shared_alias() {
    let (policy, k) = rules_policy("");
    let dirty = scanned(&policy, &k);
    let aliased = |id: &str, aliases: &[&str]| {
        let mut f = dirty.clone();
        for a in &mut f.release.artifacts {
            for e in &mut a.evidence {
                for v in e.report.iter_mut().flat_map(|r| &mut r.vulnerabilities) {
                    let fact = &mut v.counted[0];
                    fact.id = id.into();
                    fact.aliases = aliases.iter().map(|a| a.to_string()).collect();
                }
            }
        }
        f.exceptions = vec![exception("exc-0", "CVE-2024-0001")];
        f
    };
    // Its own id, or the one CVE an advisory names: waived, whatever the case.
    assert!(evaluate(&policy, &aliased("CVE-2024-0001", &[])).allowed);
    assert!(evaluate(&policy, &aliased("cve-2024-0001", &[])).allowed);
    assert!(evaluate(&policy, &aliased("GHSA-aaaa-bbbb-cccc", &["cve-2024-0001"])).allowed);
    assert!(evaluate(&policy, &aliased("GHSA-aaaa-bbbb-cccc", &["CVE-2024-0001"])).allowed);
    // A different CVE listing the waived one as an alias, or an advisory naming several
    // CVEs: not waived by it.
    for (id, aliases) in [
        ("CVE-2024-9999", &["CVE-2024-0001"][..]),
        (
            "GHSA-aaaa-bbbb-cccc",
            &["CVE-2024-0001", "CVE-2024-9999"][..],
        ),
    ] {
        fails(
            &evaluate(&policy, &aliased(id, aliases)),
            "vulnerabilities",
            &[id],
        );
    }
}
