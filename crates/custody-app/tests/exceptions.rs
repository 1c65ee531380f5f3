//! Exceptions (waivers) on a real SQLite store: a release blocked by a fixable critical
//! CVE passes once a security reviewer (not its requester) approves an exception naming
//! it, and fails again when the exception expires; the deploy gate follows both ways.
//!
//! Here: the gate following an exception's approval, expiry and revocation. The parts:
//! [`requests`] (who may ask and who may approve, and every refusal) and [`alerts`] (what
//! is about to expire, and a new critical CVE in what runs).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "exceptions/alerts.rs"]
mod alerts;
mod common;
#[path = "exceptions/requests.rs"]
mod requests;

use common::*;
use custody_app::events::{Event, EventBody};
use custody_app::records::Verdict;
use custody_app::{
    AppError, AttachEvidence, ExceptionStatus, PromotionOutcome, Remediation, RemediationAction,
    RequestException, ReviewException,
};
use custody_model::Digest;
use custody_policy::{Decision, GateResult, WaivedFinding};

const CVE: &str = "CVE-2024-3094";

/// The tests' time, at which `actor` acts.
const NOW: &str = "2026-11-10T10:00:00Z";

/// Prod needs a vulnerability scan with nothing above high; sec and sue hold security (sue
/// signs releases, too).
async fn world() -> Setup {
    let text = policy_text(
        "evidence = [\"vulnerability-scan\"]\n[environment.vulnerabilities]\nmax_severity = \"high\"",
    )
    .replace("[roles]\n", "[roles]\nsecurity = [\"sec\", \"sue\"]\n")
    .replace("signer = [\"rita\"", "signer = [\"sue\", \"rita\"");
    setup_policy(&text).await
}

/// A Trivy report with one critical CVE that has a fix.
fn scan() -> AttachEvidence {
    let report = serde_json::json!({"SchemaVersion": 2, "Results": [{"Target": "image", "Type": "debian",
        "Vulnerabilities": [{"VulnerabilityID": CVE, "PkgName": "xz-utils", "InstalledVersion": "5.6.0",
            "FixedVersion": "5.6.2", "Severity": "CRITICAL"}]}]});
    AttachEvidence::with_report("vulnerability-scan", "trivy", report.to_string().as_bytes())
}

/// A Trivy report that finds nothing.
fn clean_scan() -> AttachEvidence {
    AttachEvidence::with_report(
        "vulnerability-scan",
        "trivy",
        br#"{"SchemaVersion": 2, "Results": []}"#,
    )
}

fn waiver(artifact: Option<&Digest>, release: Option<&str>, expires: &str) -> RequestException {
    RequestException {
        finding: WaivedFinding::Vulnerability { id: CVE.into() },
        artifact: artifact.cloned(),
        release: release.map(Into::into),
        environments: vec!["prod".into()],
        plan: Remediation {
            action: RemediationAction::Upgrade,
            owner: "team-shop".into(),
            due: at("2026-11-11T12:00:00Z"),
        },
        reason: "not reachable: the image never runs sshd".into(),
        expires_at: at(expires),
    }
}

/// sam's request for an exception waiving the CVE in artifact `d` in prod until `expires`.
async fn sam_asks(s: &Setup, d: &Digest, expires: &str) -> custody_app::ExceptionRecord {
    s.app
        .request_exception(&actor("sam"), &waiver(Some(d), None, expires), None)
        .await
        .unwrap()
}

/// `who`'s review of exception `id` at time `t`, with a credential of their own.
async fn decide(
    s: &Setup,
    who: &str,
    t: &str,
    id: &str,
    verdict: Verdict,
    text: &str,
) -> custody_app::AppResult<custody_app::ExceptionRecord> {
    s.app
        .review_exception(&someone(who, t), id, verdict, &review(text))
        .await
}

fn review(text: &str) -> ReviewException {
    ReviewException {
        rationale: text.into(),
        statement: None,
    }
}

/// Release 1.0.0 of shop with the scan, certified in build: its digest and id.
async fn scanned(s: &Setup) -> (Digest, String) {
    let d = s.artifact("shop", "v1", "c1").await;
    s.app.attest(&actor("ci"), &d, &scan(), None).await.unwrap();
    let r = s.release("1.0.0", &d).await;
    let built = s.app.promote_to(&actor("rita"), &r, "build", None).await;
    assert!(built.unwrap().decision.decision.allowed);
    (d, r)
}

/// sam asks at `t` to promote release `r` into prod.
async fn sam_promotes(s: &Setup, r: &str, t: &str) -> PromotionOutcome {
    let sam = someone("sam", t);
    s.app.promote_to(&sam, r, "prod", None).await.unwrap()
}

/// Release 1.0.0 of shop with a clean scan, certified in build and in prod: its digest
/// and id.
async fn certified_clean(s: &Setup) -> (Digest, String) {
    let d = s.artifact("shop", "v1", "c1").await;
    s.app
        .attest(&actor("ci"), &d, &clean_scan(), None)
        .await
        .unwrap();
    let r = s.release("1.0.0", &d).await;
    s.promoted(&r, "build").await;
    let certified = sam_promotes(s, &r, NOW).await;
    assert!(certified.decision.decision.allowed);
    (d, r)
}

/// The decision's vulnerabilities gate.
fn vulnerabilities(decision: &Decision) -> &GateResult {
    decision
        .gates
        .iter()
        .find(|g| g.gate.to_string() == "vulnerabilities")
        .unwrap()
}

/// An exception asked for with a token a security reviewer minted for the requester: the
/// reviewer saw its secret and could have asked themselves, so someone else reviews it.
#[tokio::test]
async fn whoever_minted_the_requesters_token_does_not_review_the_exception() {
    let s = world().await;
    let (d, _) = scanned(&s).await;
    let through_sec = custody_app::Actor::new("sam", at(NOW))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Token {
            token: "tok-sam".into(),
            created_by: Some("sec".into()),
            personal: false,
        });
    let asked = s
        .app
        .request_exception(
            &through_sec,
            &waiver(Some(&d), None, "2026-11-12T00:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(asked.requested_through.as_deref(), Some("sec"));
    let t = "2026-11-10T11:00:00Z";
    match decide(&s, "sec", t, &asked.id, Verdict::Approve, "fine").await {
        Err(custody_app::AppError::Denied(m)) => assert!(
            m.contains("sec made the token sam requested exception"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let approved = decide(&s, "sue", t, &asked.id, Verdict::Approve, "fine").await;
    assert_eq!(approved.unwrap().status, ExceptionStatus::Approved);
}

/// Where prod counts only signed approvals, a waiver that holds there is approved only by a
/// signed statement: a security reviewer's sign-in (vouched for by the server's
/// configuration) does not approve it; a rejection needs no signature.
#[tokio::test]
async fn where_prod_counts_only_signed_approvals_so_does_a_waiver_there() {
    let s = world().await;
    // A waiver sec approved with a sign-in before prod asked for signatures.
    let (early, early_release) = scanned(&s).await;
    let before = sam_asks(&s, &early, "2026-11-12T00:00:00Z").await;
    let approved = decide(
        &s,
        "sec",
        "2026-11-10T10:30:00Z",
        &before.id,
        Verdict::Approve,
        "ok",
    );
    assert_eq!(approved.await.unwrap().status, ExceptionStatus::Approved);
    let alice = custody_crypto::PrivateKey::generate(custody_crypto::Algorithm::Ed25519);
    let text = policy_text(
        "evidence = [\"vulnerability-scan\"]\n[environment.vulnerabilities]\nmax_severity = \"high\"",
    )
    .replace("[roles]\n", "[roles]\nsecurity = [\"sec\", \"sue\"]\n")
    .replace("signer = [\"rita\"", "signer = [\"sue\", \"rita\"")
    .replace(
        "[[environment]]\nname = \"prod\"",
        "[[person_key]]\nprincipal = \"alice\"\npath = \"keys/alice.pub\"\n[[environment]]\nname = \"prod\"\napprovals = { quorum = 1, roles = [\"approver\"], signed = true }",
    );
    let mut files = bundle(&text, &s.builder, Some(&s.release_key)).files;
    files.insert(
        "keys/alice.pub".into(),
        custody_crypto::Signer::public_key(&alice).to_pem(),
    );
    // The policy is governed by security: sec proposes, sue approves.
    let asked = s
        .app
        .apply_policy(&actor("sec"), &custody_app::ApplyPolicy { files })
        .await
        .unwrap();
    let id = asked.proposal.expect("a proposal").record.id;
    let review = custody_app::ReviewProposal {
        rationale: "signed approvals in prod".into(),
        statement: None,
    };
    let applied = s
        .app
        .review_proposal(&actor("sue"), &id, Verdict::Approve, &review)
        .await
        .unwrap();
    assert!(applied.changed, "{applied:?}");

    // Once prod counts only signed approvals, that unsigned waiver no longer counts there.
    let now_blocked = sam_promotes(&s, &early_release, "2026-11-10T11:00:00Z").await;
    let why = &vulnerabilities(&now_blocked.decision.decision).reason;
    assert!(
        why.contains(CVE) && why.contains("was not signed with an enrolled personal key"),
        "{why}"
    );

    let d = early;
    let asked = sam_asks(&s, &d, "2026-11-12T00:00:00Z").await;
    let t = "2026-11-10T11:00:00Z";
    match decide(&s, "sec", t, &asked.id, Verdict::Approve, "fine").await {
        Err(custody_app::AppError::Denied(m)) => assert!(
            m.contains("holds in prod, which counts only signed approvals"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let rejected = decide(&s, "sue", t, &asked.id, Verdict::Reject, "no").await;
    assert_eq!(rejected.unwrap().status, ExceptionStatus::Rejected);
}

#[tokio::test]
async fn an_approved_exception_waives_the_cve_until_it_expires() {
    let s = world().await;
    let (d, r) = scanned(&s).await;

    let blocked = sam_promotes(&s, &r, NOW).await.decision.decision;
    assert!(!blocked.allowed);
    let why = vulnerabilities(&blocked);
    assert!(why.reason.contains(CVE), "{blocked:#?}");

    // Asked for by sam, approved by sec.
    let asked = sam_asks(&s, &d, "2026-11-12T00:00:00Z").await;
    assert_eq!(asked.status, ExceptionStatus::Pending);
    assert_eq!(asked.artifacts, vec![d.clone()]);
    // Pending counts for nothing.
    let still = sam_promotes(&s, &r, NOW).await;
    assert!(!still.decision.decision.allowed);

    let at_approval = "2026-11-10T11:00:00Z";
    let approved = decide(
        &s,
        "sec",
        at_approval,
        &asked.id,
        Verdict::Approve,
        "upgrade is scheduled",
    )
    .await
    .unwrap();
    assert_eq!(approved.status, ExceptionStatus::Approved);
    assert_eq!(approved.reviewed_by.as_deref(), Some("sec"));

    // The events say what was asked and decided.
    let size = s.app.log().size().await.unwrap();
    let entries = s.app.log().entries(size - 2, size).await.unwrap();
    let kinds: Vec<String> = entries
        .iter()
        .map(|e| Event::from_leaf(&e.leaf).unwrap().kind().to_owned())
        .collect();
    assert!(
        kinds.ends_with(&["exception.reviewed".to_owned()]),
        "{kinds:?}"
    );
    let reviewed = Event::from_leaf(&entries[1].leaf).unwrap();
    let EventBody::ExceptionReviewed(x) = &reviewed.body else {
        panic!()
    };
    assert_eq!(
        (x.exception.as_str(), x.verdict),
        (asked.id.as_str(), Verdict::Approve)
    );
    assert_eq!(v(&reviewed)["artifacts"][0], d.to_string());

    // Now the promotion passes, naming the exception.
    let now = sam_promotes(&s, &r, "2026-11-10T12:00:00Z").await;
    let now = now.decision.decision;
    assert!(now.allowed, "{now:#?}");
    let gate = vulnerabilities(&now);
    assert!(gate.reason.contains(&asked.id), "{gate:?}");

    // The deploy gate allows it while the exception holds, and denies it once it expires.
    let before = at("2026-11-11T23:59:59Z");
    let v = s.app.verify("prod", &d, before).await.unwrap();
    assert!(v.allowed, "{v:?}");
    assert!(
        v.reasons.iter().any(
            |r| r.starts_with("by exception, not a clean pass: vulnerabilities")
                && r.contains(&asked.id)
        ),
        "{v:?}"
    );
    let after = at("2026-11-12T00:00:00Z");
    let v = s.app.verify("prod", &d, after).await.unwrap();
    assert!(!v.allowed, "{v:?}");
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains(CVE) && r.contains("expired")),
        "{v:?}"
    );

    // A promotion after expiry fails again, saying why.
    let late = sam_promotes(&s, &r, "2026-11-12T00:00:01Z").await;
    let late = late.decision.decision;
    assert!(!late.allowed);
    let gate = vulnerabilities(&late);
    assert!(gate.reason.contains("expired"), "{gate:?}");
}

#[tokio::test]
async fn an_exception_approved_after_certification_reopens_the_deploy_gate() {
    let s = world().await;
    let (d, r) = certified_clean(&s).await;
    let t = at("2026-11-10T10:30:00Z");
    assert!(s.app.verify("prod", &d, t).await.unwrap().allowed);

    // A nightly scan finds the CVE: the gate closes.
    s.app.attest(&actor("ci"), &d, &scan(), None).await.unwrap();
    assert!(!s.app.verify("prod", &d, t).await.unwrap().allowed);

    // An exception for the whole release, approved later, opens it from its approval on.
    let asked = s
        .app
        .request_exception(
            &actor("sam"),
            &waiver(None, Some(&r), "2026-11-13T00:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(asked.release.as_deref(), Some(r.as_str()));
    decide(
        &s,
        "sue",
        "2026-11-10T11:00:00Z",
        &asked.id,
        Verdict::Approve,
        "accepted",
    )
    .await
    .unwrap();
    assert!(
        !s.app.verify("prod", &d, t).await.unwrap().allowed,
        "not before its approval"
    );
    let later = at("2026-11-10T11:00:01Z");
    let v = s.app.verify("prod", &d, later).await.unwrap();
    assert!(v.allowed, "{v:?}");
}

/// An approved exception revoked by a security reviewer stops counting at once (the
/// deploy gate's cached answer too); only a security reviewer or its requester may revoke
/// it, with a rationale, once.
#[tokio::test]
async fn a_revoked_exception_stops_counting_and_only_security_or_its_requester_revokes() {
    let s = world().await;
    let (d, r) = scanned(&s).await;
    let asked = sam_asks(&s, &d, "2026-11-12T00:00:00Z").await;
    decide(
        &s,
        "sec",
        "2026-11-10T11:00:00Z",
        &asked.id,
        Verdict::Approve,
        "upgrade is scheduled",
    )
    .await
    .unwrap();
    let certified = sam_promotes(&s, &r, "2026-11-10T11:10:00Z").await;
    assert!(certified.decision.decision.allowed);
    let t = at("2026-11-10T11:30:00Z");
    assert!(s.app.verify("prod", &d, t).await.unwrap().allowed);

    let revoke = |who: &'static str, text: &'static str, id: String| {
        let app = s.app.clone();
        async move {
            app.revoke_exception(
                &someone(who, "2026-11-10T12:00:00Z"),
                &id,
                &custody_app::RevokeException {
                    rationale: text.into(),
                },
            )
            .await
        }
    };
    let size = s.app.log().size().await.unwrap();
    // Without a rationale, or by someone without the security role: refused, nothing
    // written.
    let empty = revoke("sec", " ", asked.id.clone()).await;
    assert!(matches!(empty, Err(AppError::Invalid(_))), "{empty:?}");
    let rita = revoke("rita", "I changed my mind", asked.id.clone()).await;
    let Err(AppError::Denied(why)) = rita else {
        panic!("{rita:?}")
    };
    assert!(why.contains("takes the security role"), "{why}");
    let mallory = revoke("mallory", "why not", asked.id.clone()).await;
    let Err(AppError::Denied(why)) = mallory else {
        panic!("{mallory:?}")
    };
    assert!(
        why.contains("revoking an exception takes being its requester")
            && why.contains("mallory holds no role"),
        "{why}"
    );
    assert_eq!(s.app.log().size().await.unwrap(), size);

    let revoked = revoke("sue", "the image now runs sshd", asked.id.clone())
        .await
        .unwrap();
    assert_eq!(revoked.status, ExceptionStatus::Revoked);
    let by = revoked.revoked.as_ref().unwrap();
    assert_eq!(
        (by.by.as_str(), by.rationale.as_str()),
        ("sue", "the image now runs sshd")
    );
    let last = s.app.log().size().await.unwrap() - 1;
    let entry = &s.app.log().entries(last, last + 1).await.unwrap()[0];
    let event = Event::from_leaf(&entry.leaf).unwrap();
    assert_eq!(event.kind(), "exception.revoked");
    assert_eq!(v(&event)["exception"], asked.id.as_str());

    // The deploy gate denies what it allowed a moment ago, naming the CVE.
    let v = s.app.verify("prod", &d, t).await.unwrap();
    assert!(!v.allowed, "{v:?}");
    assert!(v.reasons.iter().any(|r| r.contains(CVE)), "{v:?}");
    let again = sam_promotes(&s, &r, "2026-11-10T12:30:00Z").await;
    assert!(!again.decision.decision.allowed);

    // Once is enough.
    let twice = revoke("sec", "again", asked.id.clone()).await;
    let Err(AppError::Conflict(why)) = twice else {
        panic!("{twice:?}")
    };
    assert!(why.contains("already revoked by sue"), "{why}");

    // Its requester may withdraw a request of their own.
    let mine = sam_asks(&s, &d, "2026-11-12T00:00:00Z").await;
    let withdrawn = revoke("sam", "fixed instead", mine.id.clone())
        .await
        .unwrap();
    assert_eq!(withdrawn.status, ExceptionStatus::Revoked);
    // A revoked request can no longer be approved.
    let late = decide(
        &s,
        "sec",
        "2026-11-10T12:10:00Z",
        &mine.id,
        Verdict::Approve,
        "ok",
    )
    .await;
    assert!(matches!(late, Err(AppError::Conflict(_))), "{late:?}");
}
