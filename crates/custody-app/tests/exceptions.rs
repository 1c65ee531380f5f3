//! Exceptions (waivers) on a real SQLite store: a release blocked by a fixable critical
//! CVE passes once a security reviewer (not its requester) approves an exception naming
//! it, and fails again when the exception expires; the deploy gate follows both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use common::*;
use custody_app::events::{Event, EventBody};
use custody_app::records::Verdict;
use custody_app::{
    Actor, AppError, AttachEvidence, ExceptionStatus, Remediation, RemediationAction,
    RequestException, ReviewException,
};
use custody_model::{Digest, Timestamp};
use custody_policy::WaivedFinding;

const CVE: &str = "CVE-2024-3094";

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

fn someone(who: &str, t: &str) -> Actor {
    Actor::new(who, at(t))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        })
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

#[tokio::test]
async fn an_approved_exception_waives_the_cve_until_it_expires() {
    let s = world().await;
    let (d, r) = scanned(&s).await;

    let blocked = s.app.promote_to(&actor("sam"), &r, "prod", None).await;
    let blocked = blocked.unwrap().decision.decision;
    assert!(!blocked.allowed);
    let why = blocked
        .gates
        .iter()
        .find(|g| g.gate.to_string() == "vulnerabilities");
    assert!(why.unwrap().reason.contains(CVE), "{blocked:#?}");

    // Asked for by sam, approved by sec.
    let asked = sam_asks(&s, &d, "2026-11-12T00:00:00Z").await;
    assert_eq!(asked.status, ExceptionStatus::Pending);
    assert_eq!(asked.artifacts, vec![d.clone()]);
    // Pending counts for nothing.
    let still = s.app.promote_to(&actor("sam"), &r, "prod", None).await;
    assert!(!still.unwrap().decision.decision.allowed);

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
    let now = s
        .app
        .promote_to(&someone("sam", "2026-11-10T12:00:00Z"), &r, "prod", None)
        .await
        .unwrap()
        .decision
        .decision;
    assert!(now.allowed, "{now:#?}");
    let gate = now
        .gates
        .iter()
        .find(|g| g.gate.to_string() == "vulnerabilities")
        .unwrap();
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
    let late = s
        .app
        .promote_to(&someone("sam", "2026-11-12T00:00:01Z"), &r, "prod", None)
        .await
        .unwrap()
        .decision
        .decision;
    assert!(!late.allowed);
    let gate = late
        .gates
        .iter()
        .find(|g| g.gate.to_string() == "vulnerabilities")
        .unwrap();
    assert!(gate.reason.contains("expired"), "{gate:?}");
}

#[tokio::test]
async fn an_exception_approved_after_certification_reopens_the_deploy_gate() {
    let s = world().await;
    let d = s.artifact("shop", "v1", "c1").await;
    s.app
        .attest(
            &actor("ci"),
            &d,
            &AttachEvidence::with_report(
                "vulnerability-scan",
                "trivy",
                br#"{"SchemaVersion": 2, "Results": []}"#,
            ),
            None,
        )
        .await
        .unwrap();
    let r = s.release("1.0.0", &d).await;
    s.app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    let certified = s.app.promote_to(&actor("sam"), &r, "prod", None).await;
    assert!(certified.unwrap().decision.decision.allowed);
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

#[tokio::test]
async fn who_may_ask_and_who_may_approve() {
    let s = world().await;
    let (d, _) = scanned(&s).await;
    let size = s.app.log().size().await.unwrap();
    let ask = |who: &str, req: RequestException| {
        let app = s.app.clone();
        let who = actor(who);
        async move { app.request_exception(&who, &req, None).await }
    };
    // Malformed requests are refused naming the problem, and write nothing.
    let mut no_reason = waiver(Some(&d), None, "2026-11-12T00:00:00Z");
    no_reason.reason = " ".into();
    let both = waiver(Some(&d), Some("shop@1.0.0"), "2026-11-12T00:00:00Z");
    let past = waiver(Some(&d), None, "2026-11-10T09:00:00Z");
    let too_long = waiver(Some(&d), None, "2028-01-01T00:00:00Z");
    let mut unknown_env = waiver(Some(&d), None, "2026-11-12T00:00:00Z");
    unknown_env.environments = vec!["moon".into()];
    let stranger = sha_of("never registered");
    let unregistered = waiver(Some(&stranger), None, "2026-11-12T00:00:00Z");
    for (req, says) in [
        (no_reason, "needs a reason"),
        (both, "give exactly one"),
        (past, "not after now"),
        (too_long, "at most 365 days"),
        (unknown_env, "no environment \"moon\""),
    ] {
        match ask("sam", req).await {
            Err(AppError::Invalid(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("{says}: {other:?}"),
        }
    }
    assert!(matches!(
        ask("sam", unregistered).await,
        Err(AppError::NotFound(_))
    ));
    // Builders cannot ask (no promote permission).
    assert!(matches!(
        ask("ci", waiver(Some(&d), None, "2026-11-12T00:00:00Z")).await,
        Err(AppError::Denied(_))
    ));
    assert_eq!(s.app.log().size().await.unwrap(), size);

    let x = ask("sam", waiver(Some(&d), None, "2026-11-12T00:00:00Z"))
        .await
        .unwrap();
    let own = ask("sue", waiver(Some(&d), None, "2026-11-12T00:00:00Z"))
        .await
        .unwrap();
    let ok = review("fine");
    let t = "2026-11-10T11:00:00Z";
    // An approver without the security role, the requester (though she holds it), and a
    // credential minted by someone else are all refused; nothing is written.
    let size = s.app.log().size().await.unwrap();
    let refused = [
        s.app
            .review_exception(&someone("alice", t), &x.id, Verdict::Approve, &ok)
            .await,
        s.app
            .review_exception(&someone("sue", t), &own.id, Verdict::Approve, &ok)
            .await,
    ];
    for r in &refused {
        assert!(matches!(r, Err(AppError::Denied(_))), "{r:?}");
    }
    let Err(AppError::Denied(why)) = &refused[0] else {
        unreachable!()
    };
    assert!(
        why.contains("security role") && why.contains("prod"),
        "{why}"
    );
    let Err(AppError::Denied(why)) = &refused[1] else {
        unreachable!()
    };
    assert!(why.contains("someone else"), "{why}");
    let minted =
        Actor::new("sec", at(t))
            .unwrap()
            .authenticated_by(custody_model::Authentication::Token {
                token: "tok-1".into(),
                created_by: Some("admin".into()),
                personal: false,
            });
    let r = s
        .app
        .review_exception(&minted, &x.id, Verdict::Approve, &ok)
        .await;
    assert!(
        matches!(&r, Err(AppError::Denied(w)) if w.contains("own credential")),
        "{r:?}"
    );
    assert_eq!(s.app.log().size().await.unwrap(), size);
    let missing = s
        .app
        .review_exception(&someone("sec", t), "x-nope", Verdict::Approve, &ok)
        .await;
    assert!(matches!(missing, Err(AppError::NotFound(_))), "{missing:?}");

    // Rejected once, it stays rejected.
    let rejected = decide(&s, "sec", t, &x.id, Verdict::Reject, "fix it")
        .await
        .unwrap();
    assert_eq!(rejected.status, ExceptionStatus::Rejected);
    let again = s
        .app
        .review_exception(&someone("sue", t), &x.id, Verdict::Approve, &ok)
        .await;
    assert!(matches!(again, Err(AppError::Conflict(_))), "{again:?}");

    // Listed, newest first, and findable from the release.
    let all = s.app.exceptions(10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&x.id.as_str()) && ids.contains(&own.id.as_str()));

    // An idempotent retry returns the first request.
    let req = waiver(Some(&d), None, "2026-11-12T00:00:00Z");
    let first = s
        .app
        .request_exception(&actor("sam"), &req, Some("k1"))
        .await
        .unwrap();
    let size = s.app.log().size().await.unwrap();
    let retry = s
        .app
        .request_exception(&actor("sam"), &req, Some("k1"))
        .await
        .unwrap();
    assert_eq!(first.id, retry.id);
    assert_eq!(s.app.log().size().await.unwrap(), size);
}

#[tokio::test]
async fn approved_exceptions_about_to_expire_are_listed_for_alerts() {
    let s = world().await;
    let (d, _) = scanned(&s).await;
    let x = sam_asks(&s, &d, "2026-11-12T00:00:00Z").await;
    let day = 86_400;
    let now: Timestamp = at("2026-11-11T00:00:00Z");
    // Pending: never listed.
    assert!(
        s.app
            .expiring_exceptions(now, day)
            .await
            .unwrap()
            .is_empty()
    );
    decide(
        &s,
        "sec",
        "2026-11-10T11:00:00Z",
        &x.id,
        Verdict::Approve,
        "ok",
    )
    .await
    .unwrap();
    let soon = s.app.expiring_exceptions(now, day).await.unwrap();
    assert_eq!(soon.len(), 1);
    assert_eq!((soon[0].0.id.as_str(), soon[0].1), (x.id.as_str(), day));
    assert!(
        s.app
            .expiring_exceptions(now, day - 1)
            .await
            .unwrap()
            .is_empty()
    );
    // Expired: no longer "about to".
    let gone = at("2026-11-12T00:00:00Z");
    assert!(
        s.app
            .expiring_exceptions(gone, day)
            .await
            .unwrap()
            .is_empty()
    );
}

fn sha_of(text: &str) -> Digest {
    custody_app::attestations::sha256(text.as_bytes())
}

#[tokio::test]
async fn a_new_critical_cve_in_what_runs_raises_an_alert_naming_it() {
    let s = world().await;
    let d = s.artifact("shop", "v1", "c1").await;
    let clean = AttachEvidence::with_report(
        "vulnerability-scan",
        "trivy",
        br#"{"SchemaVersion": 2, "Results": []}"#,
    );
    s.app.attest(&actor("ci"), &d, &clean, None).await.unwrap();
    let r = s.release("1.0.0", &d).await;
    s.app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    let certified = s.app.promote_to(&actor("sam"), &r, "prod", None).await;
    assert!(certified.unwrap().decision.decision.allowed);
    let event_at = |index: u64| {
        let app = s.app.clone();
        async move {
            let entry = app.log().entries(index, index + 1).await.unwrap();
            Event::from_leaf(&entry[0].leaf).unwrap()
        }
    };
    let now = at("2026-11-10T10:00:30Z");

    // Clean evidence again: nothing to say.
    let clean_index = s.app.attest(&actor("ci"), &d, &clean, None).await.unwrap();
    let quiet = s
        .app
        .recheck_alerts(clean_index, &event_at(clean_index).await, now)
        .await;
    assert!(quiet.unwrap().is_empty());

    // The nightly scan: prod's certified release no longer stands; build's does (it asks
    // for no scan), so only prod is named.
    let index = s.app.attest(&actor("ci"), &d, &scan(), None).await.unwrap();
    let event = event_at(index).await;
    let alerts = s.app.recheck_alerts(index, &event, now).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.rule, "certified-release-no-longer-stands");
    assert_eq!(a.severity, "critical");
    assert_eq!(a.subject["environment"], "prod");
    assert!(a.text.contains(CVE) && a.text.contains(&r), "{}", a.text);
    // A server catching up re-checks the earlier clean scan too: the newer scan is the
    // news, not it, so it is not named as the cause.
    let caught_up = s
        .app
        .recheck_alerts(clean_index, &event_at(clean_index).await, now)
        .await;
    assert!(caught_up.unwrap().is_empty());
    // Nor is a piece attached after the scan, which found nothing: the scan stays the
    // cause, and the only one named.
    let sbom = AttachEvidence::with_report(
        "sbom",
        "cyclonedx",
        br#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": "xz-utils", "version": "5.6.0"}]}"#,
    );
    let after = s.app.attest(&actor("ci"), &d, &sbom, None).await.unwrap();
    let after_alerts = s
        .app
        .recheck_alerts(after, &event_at(after).await, now)
        .await;
    assert!(after_alerts.unwrap().is_empty());
    assert_eq!(
        s.app
            .recheck_alerts(index, &event, now)
            .await
            .unwrap()
            .len(),
        1
    );
    // Seen again long after (a restart replaying history): not news.
    let later = now.plus_seconds(custody_app::RECHECK_WINDOW_SECONDS as u64 + 1);
    assert!(
        s.app
            .recheck_alerts(index, &event, later)
            .await
            .unwrap()
            .is_empty()
    );
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
    let certified = s
        .app
        .promote_to(&someone("sam", "2026-11-10T11:10:00Z"), &r, "prod", None)
        .await
        .unwrap();
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
    let again = s
        .app
        .promote_to(&someone("sam", "2026-11-10T12:30:00Z"), &r, "prod", None)
        .await
        .unwrap();
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

/// An exception asked for with a clock set forward (a far `CUSTODY_NOW`) would outlast
/// the longest term from when it is approved: the approval, by its own clock, refuses it
/// and records nothing.
#[tokio::test]
async fn an_exception_asked_for_ahead_of_the_clock_cannot_outlast_its_longest_term() {
    let s = world().await;
    let (d, _) = scanned(&s).await;
    let ahead = Actor::new("sam", at("2027-11-01T00:00:00Z"))
        .unwrap()
        .authenticated_by(custody_model::Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: "sam".into(),
        });
    let mut asked = waiver(Some(&d), None, "2028-10-01T00:00:00Z");
    asked.plan.due = at("2028-01-01T00:00:00Z");
    let asked = s.app.request_exception(&ahead, &asked, None).await.unwrap();
    let before = s.app.log().size().await.unwrap();
    let refused = decide(
        &s,
        "sec",
        "2026-11-10T11:00:00Z",
        &asked.id,
        Verdict::Approve,
        "ok",
    )
    .await
    .unwrap_err();
    assert_eq!(refused.fault(), custody_app::Fault::Conflict, "{refused}");
    assert!(
        refused.to_string().contains("more than 365 days from now"),
        "{refused}"
    );
    assert_eq!(s.app.log().size().await.unwrap(), before);
}
