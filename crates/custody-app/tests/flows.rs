//! The use cases on a real SQLite store, beyond the CLI's end-to-end run: concurrent
//! requests, provenance made elsewhere, discrepancies, drift, revoked keys, and rollbacks
//! that must skip or refuse.
//!
//! Here: concurrent requests, each one append. The parts: [`provenance`] (what a
//! registration or a release manifest must prove, and discrepant rebuilds), [`deploys`]
//! (deploy reports, drift and rollbacks), [`history`] (history slices and lineage),
//! [`authority`] (break-glass, a scoped role, a card's quorum) and [`evidence`] (evidence
//! custody read, before and after certification).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "flows/authority.rs"]
mod authority;
mod common;
#[path = "flows/deploys.rs"]
mod deploys;
#[path = "flows/evidence.rs"]
mod evidence;
#[path = "flows/history.rs"]
mod history;
#[path = "flows/provenance.rs"]
mod provenance;

use std::sync::Arc;

use common::*;
use custody_app::{AppError, Verification};
use custody_model::Digest;

/// The deploy gate's answer for `digest` in `env`, asked at the tests' time.
async fn deploy_gate(s: &Setup, env: &str, digest: &Digest) -> Arc<Verification> {
    s.app
        .verify(env, digest, at("2026-11-10T10:00:00Z"))
        .await
        .unwrap()
}

/// The test pipeline with build asking for `evidence` (a piece of one type).
fn build_needs(evidence: &str) -> String {
    policy_text("").replace(
        "name = \"build\"",
        &format!("name = \"build\"\nevidence = [\"{evidence}\"]"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_promotion_make_one_promotion() {
    let s = setup("").await;
    let d = s.artifact("shop", "v1", "a1").await;
    let r = s.release("1.0.0", &d).await;
    let before = s.app.log().size().await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (app, r) = (s.app.clone(), r.clone());
            tokio::spawn(async move {
                app.promote_to(&actor("rita"), &r, "build", Some("deploy-77"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let o = t.await.unwrap();
        ids.insert(o.promotion.id.clone());
        fresh += usize::from(!o.replayed);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(fresh, 1);
    // promotion.requested, decision.recorded, environment.certified: once.
    let after = s.app.log().size().await.unwrap();
    assert_eq!(after, before + 3);
    // The same key for another request is refused, not replayed.
    let d2 = s.artifact("shop", "v2", "a2").await;
    let r2 = s.release("2.0.0", &d2).await;
    let after = s.app.log().size().await.unwrap();
    match s
        .app
        .promote_to(&actor("rita"), &r2, "build", Some("deploy-77"))
        .await
    {
        Err(AppError::Conflict(m)) => {
            assert!(m.contains("already used for a different request"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.app.log().size().await.unwrap(), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_certifications_leave_the_last_in_the_ledger_certified() {
    let s = setup("").await;
    let mut releases = Vec::new();
    for i in 0..12 {
        let d = s.artifact("shop", &format!("v{i}"), &format!("c{i}")).await;
        releases.push((s.release(&format!("1.{i}.0"), &d).await, d));
    }
    let tasks: Vec<_> = releases
        .iter()
        .map(|(r, _)| {
            let (app, r) = (s.app.clone(), r.clone());
            tokio::spawn(async move {
                app.promote_to(&actor("rita"), &r, "build", None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().decision.decision.allowed);
    }
    let history = s
        .app
        .history(&custody_app::HistoryFilter {
            environment: Some("build".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = history
        .iter()
        .rev()
        .find(|e| v(&e.event)["type"] == "environment.certified")
        .unwrap();
    // Paging back through the same slice, newest first, gives it all exactly once.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .app
            .history(&custody_app::HistoryFilter {
                environment: Some("build".into()),
                before,
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 7);
        assert!(
            page.windows(2).all(|w| w[0].index < w[1].index),
            "oldest first"
        );
        let Some(first) = page.first() else { break };
        before = Some(first.index);
        pages.splice(0..0, page);
    }
    let all: Vec<u64> = history.iter().map(|e| e.index).collect();
    assert_eq!(pages.iter().map(|e| e.index).collect::<Vec<_>>(), all);
    let last_index = last.index;
    let last = v(&last.event);
    let release = last["release"].as_str().unwrap();
    let (_, digest) = releases.iter().find(|(r, _)| r == release).unwrap();
    let v = deploy_gate(&s, "build", digest).await;
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.release.as_deref(), Some(release));
    assert!(v.overridden.is_empty(), "a clean pass: {v:?}");
    // The verdict points at the certification itself, not its append's first entry.
    let at = v.ledger_index.unwrap();
    assert_eq!(at, last_index, "{v:?}");
}
