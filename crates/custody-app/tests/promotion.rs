//! Promotions and their reviews through the use cases on a real SQLite store: who reads a
//! confidential rationale, and what a retry with an idempotency key gets back.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use common::*;
use custody_app::records::{Risk, Verdict};
use custody_app::{AppError, Authenticated, REDACTED, Review};
use custody_model::Authentication;
use custody_policy::Status;

fn review(rationale: &str, confidential: bool) -> Review {
    Review {
        rationale: rationale.into(),
        risk: Risk::Low,
        confidential,
        statement: None,
    }
}

/// `who` reading with `roles`.
fn viewer(who: &str, roles: &[&str]) -> Authenticated {
    Authenticated {
        principal: who.into(),
        auth: Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        },
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// A confidential rationale is read by auditors, admins, its reviewer and the promotion's
/// requester; anyone else reads it as `(confidential)`, without the salt that would let
/// them test guesses against the ledger's commitment. One that is not confidential is read
/// by anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_rationale_is_read_only_by_auditors_admins_and_the_people_involved() {
    let s = setup("approvals = { quorum = 2, roles = [\"approver\"] }").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    s.app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    let waiting = s
        .app
        .promote_to(&actor("sam"), &r, "prod", None)
        .await
        .unwrap();
    let id = waiting.promotion.id;
    let secret = "the fix touches the payment provider's contract";
    for (who, text, confidential) in [("alice", secret, true), ("bob", "diff read", false)] {
        s.app
            .review(
                &actor(who),
                &id,
                Verdict::Approve,
                &review(text, confidential),
                None,
            )
            .await
            .unwrap();
    }
    for (who, roles, reads) in [
        ("alice", &[][..], true), // wrote it
        ("sam", &[], true),       // asked for the promotion
        ("audrey", &["auditor"], true),
        ("ada", &["admin"], true),
        ("bob", &["approver"], false), // reviewed too, but not this review
        ("paul", &["admin:prod"], false),
        ("mallory", &[], false),
    ] {
        let (_, reviews) = s.app.promotion_for(&viewer(who, roles), &id).await.unwrap();
        let by = |name: &str| reviews.iter().find(|r| r.by == name).unwrap();
        let alices = by("alice");
        if reads {
            assert_eq!(alices.rationale, secret, "{who}");
            assert!(alices.rationale_salt.is_some(), "{who}");
        } else {
            assert_eq!(alices.rationale, REDACTED, "{who}");
            assert_eq!(alices.rationale_salt, None, "{who}");
        }
        assert_eq!(by("bob").rationale, "diff read", "{who}");
    }
}

/// A promotion's idempotency key recorded before receipts existed (it names the promotion
/// and the request's fingerprint) still converges: the same request again gets that
/// promotion back, replayed, and another request with the key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_recorded_before_receipts_existed_replays_its_promotion() {
    let s = setup("").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    let first = s
        .app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    // What that version kept for `--idempotency-key retry-1`: the RFC 8785 bytes of the
    // request are hashed.
    let request = format!(r#"{{"actor":"rita","environment":"build","release":"{r}"}}"#);
    let legacy = serde_json::json!({
        "promotion": first.promotion.id,
        "fingerprint": custody_app::attestations::sha256(request.as_bytes()),
    });
    let sqlite = s.sqlite().await;
    sqlx::query("INSERT INTO state (kind, key, version, value, log_index) VALUES ('idempotency', ?, 1, ?, ?)")
        .bind("promote:4:rita:retry-1")
        .bind(legacy.to_string())
        .bind(i64::try_from(first.ledger_index).unwrap())
        .execute(&sqlite)
        .await
        .unwrap();
    sqlite.close().await;
    let app = s.reopened().await;
    let size = app.log().size().await.unwrap();

    let again = app
        .promote_to(&actor("rita"), &r, "build", Some("retry-1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.promotion.id, first.promotion.id);
    assert_eq!(again.decision.id, first.decision.id);
    assert_eq!(
        app.log().size().await.unwrap(),
        size,
        "a replay writes nothing"
    );

    match app
        .promote_to(&actor("rita"), &r, "prod", Some("retry-1"))
        .await
    {
        Err(AppError::Conflict(m)) => {
            assert!(m.contains("already used for a different request"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.log().size().await.unwrap(), size);
}

/// What waits in an environment is listed with the gates it waits on, from the moment it
/// waits until it is decided: certified, it leaves the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_is_listed_as_waiting_until_it_is_decided() {
    let s = setup("approvals = { quorum = 2, roles = [\"approver\"] }").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    s.app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    let waiting_in = |board: Vec<custody_app::BoardColumn>, env: &str| {
        let column = board.into_iter().find(|c| c.environment == env).unwrap();
        column
            .pending
            .into_iter()
            .map(|(id, p)| {
                let gates = p.blocking.into_iter().map(|b| (b.gate, b.status));
                (id, gates.collect::<Vec<_>>())
            })
            .collect::<Vec<_>>()
    };
    // Certified at once: never listed.
    assert_eq!(waiting_in(s.app.board().await.unwrap(), "build"), []);
    let id = s
        .app
        .promote_to(&actor("sam"), &r, "prod", None)
        .await
        .unwrap()
        .promotion
        .id;
    // Waiting on approvals, the one gate that has not passed.
    let listed = [(id.clone(), vec![("approvals".to_owned(), Status::Waiting)])];
    assert_eq!(waiting_in(s.app.board().await.unwrap(), "prod"), listed);
    // One approval of two: still waiting.
    let approve = |who: &'static str| {
        let (app, id) = (&s.app, &id);
        async move {
            app.review(
                &actor(who),
                id,
                Verdict::Approve,
                &review("ok", false),
                None,
            )
            .await
            .unwrap()
        }
    };
    approve("alice").await;
    assert_eq!(waiting_in(s.app.board().await.unwrap(), "prod"), listed);
    let done = approve("bob").await;
    assert_eq!(
        done.promotion.status,
        custody_model::PromotionStatus::Certified
    );
    assert_eq!(waiting_in(s.app.board().await.unwrap(), "prod"), []);
}

/// An approval counts only from its approver's own credential: one made with a token an
/// admin created for them, or with a token made with such a token, or by custody itself,
/// is refused, saying why and what to use instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_from_a_credential_not_the_approvers_own_is_refused() {
    let s = setup("approvals = { quorum = 1, roles = [\"approver\"] }").await;
    let d = s.artifact("shop", "v1", "c1").await;
    let r = s.release("1.0.0", &d).await;
    s.app
        .promote_to(&actor("rita"), &r, "build", None)
        .await
        .unwrap();
    let id = s
        .app
        .promote_to(&actor("sam"), &r, "prod", None)
        .await
        .unwrap()
        .promotion
        .id;
    let token = |created_by: Option<&str>| Authentication::Token {
        token: "tok0123456789abcdef".into(),
        created_by: created_by.map(str::to_owned),
        personal: false,
    };
    for (auth, why) in [
        (
            token(Some("ada")),
            "token tok0123456789abcdef was created by ada, who saw its secret",
        ),
        (
            token(Some("alice")),
            "token tok0123456789abcdef was created with a credential that is not alice's own",
        ),
        (
            token(None),
            "token tok0123456789abcdef was created with a credential that is not alice's own",
        ),
    ] {
        let alice = custody_app::Actor::new("alice", at("2026-11-10T10:00:00Z"))
            .unwrap()
            .authenticated_by(auth);
        match s
            .app
            .review(&alice, &id, Verdict::Approve, &review("ok", false), None)
            .await
        {
            Err(AppError::Denied(m)) => assert!(
                m.starts_with(&format!("an approval counts only from alice's own credential, and {why}\nhint: sign it with your enrolled personal key")),
                "{m}"
            ),
            other => panic!("{why}: {other:?}"),
        }
    }
}
