//! Exceptions and alerts: approved exceptions about to expire are listed (pending and
//! expired ones never), and a new critical CVE in what runs raises one alert naming it,
//! once, and only as news.

use custody_app::AttachEvidence;
use custody_app::events::Event;
use custody_app::records::Verdict;
use custody_model::Timestamp;

use super::common::*;
use super::{CVE, certified_clean, clean_scan, decide, sam_asks, scan, scanned, world};

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

#[tokio::test]
async fn a_new_critical_cve_in_what_runs_raises_an_alert_naming_it() {
    let s = world().await;
    let (d, r) = certified_clean(&s).await;
    let clean = clean_scan();
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
