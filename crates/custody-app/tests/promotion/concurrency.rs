//! Promotions beside others: a server's cache while another process writes the same
//! store, and the same signed approval sent several times at once.

use super::*;

/// A server's cached reads (the deploy gate, a decision's records read ahead) follow its
/// own writes at once, writes another process makes on the same store within a few of
/// the tail's intervals, and its own writes again after those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_ledger_keeps_the_cache_exact_for_own_writes_and_soon_for_others() {
    let s = setup("").await;
    let tail = tokio::spawn({
        let app = s.app.clone();
        async move { app.follow_ledger().await }
    });
    tokio::time::sleep(custody_app::FOLLOW_EVERY * 2).await;
    let now = at("2026-11-10T10:00:00Z");
    let gate = |digest: custody_model::Digest| {
        let app = s.app.clone();
        async move { app.verify("build", &digest, now).await.unwrap().allowed }
    };
    let d1 = s.artifact("shop", "v1", "c1").await;
    let r1 = s.release("1.0.0", &d1).await;
    assert!(!gate(d1.clone()).await, "nothing is certified in build yet");
    s.promoted(&r1, "build").await;
    assert!(
        gate(d1.clone()).await,
        "this process's own certification, at once"
    );

    // Another process certifies 2.0.0 on the same store.
    let other = s.reopened().await;
    let d2 = sha256(b"v2");
    other
        .register(
            &actor("ci"),
            NewArtifact {
                name: "shop".into(),
                digest: Some(d2.clone()),
                build: Some(build("c2", "release")),
                builder_key: Some(&s.builder),
                ..NewArtifact::default()
            },
        )
        .await
        .unwrap();
    let manifest = RecordRelease::signed(
        "shop",
        "2.0.0",
        &[ManifestArtifact {
            name: "shop".into(),
            digest: d2.clone(),
        }],
        "rita",
        now,
        Some(&s.release_key),
    )
    .unwrap();
    let r2 = other
        .record_release(&actor("rita"), &manifest, None)
        .await
        .unwrap()
        .release;
    other
        .promote_to(&actor("rita"), &r2, "build", None)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + custody_app::FOLLOW_EVERY * 40;
    while !gate(d2.clone()).await {
        assert!(
            std::time::Instant::now() < deadline,
            "another process's certification is still not seen"
        );
        tokio::time::sleep(custody_app::FOLLOW_EVERY / 2).await;
    }
    assert!(
        !gate(d1.clone()).await,
        "1.0.0 is no longer build's release"
    );

    // This process certifies 1.0.0 again (a decision reading ahead what the other process
    // wrote), and its gate says so at once.
    s.promoted(&r1, "build").await;
    assert!(gate(d1).await);
    assert!(!gate(d2).await);
    tail.abort();
}

/// The same signed approval sent several times at once counts once: the others are
/// refused as used, at once (not retried until they give up with the store's conflict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_approval_sent_several_times_at_once_counts_once() {
    use custody_app::approval_statement::{self, ApprovalPredicate, Approved};
    let s = setup("approvals = { quorum = 2, roles = [\"approver\"] }").await;
    let alice = PrivateKey::generate(Algorithm::Ed25519);
    let text = format!(
        "{}\n[[person_key]]\nprincipal = \"alice\"\npath = \"keys/alice.pub\"\n",
        policy_text("approvals = { quorum = 2, roles = [\"approver\"] }")
    );
    let mut keyed = bundle(&text, &s.builder, Some(&s.release_key));
    keyed
        .files
        .insert("keys/alice.pub".into(), alice.public_key().to_pem());
    s.app.apply(&operator(), keyed).await.unwrap();
    let d = s.artifact("shop", "v9", "c9").await;
    let r = s.release("9.0.0", &d).await;
    s.promoted(&r, "build").await;
    let waiting = s.promoted(&r, "prod").await;
    let now = at("2026-11-10T10:00:00Z");
    let predicate = ApprovalPredicate {
        approver: "alice".into(),
        verdict: Verdict::Approve,
        rationale: "diff read".into(),
        risk: Some(Risk::Low),
        approves: Approved::promotion(&waiting.promotion, &waiting.decision.decision.policy_digest),
        signed_at: now,
        expires: now.plus_seconds(3600),
    };
    let signed = Review {
        statement: Some(approval_statement::sign(&alice, &predicate).unwrap()),
        ..review("diff read", false)
    };
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let (app, signed) = (s.app.clone(), signed.clone());
            let id = waiting.promotion.id.clone();
            tokio::spawn(async move {
                app.review(&actor("alice"), &id, Verdict::Approve, &signed, None)
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for send in sends {
        results.push(send.await.unwrap());
    }
    let counted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(counted, 1, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(refused, AppError::Denied(_)), "{refused}");
        assert!(refused.to_string().contains("already used"), "{refused}");
    }
}
