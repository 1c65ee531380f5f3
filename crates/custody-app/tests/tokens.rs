//! API tokens through the use cases on a real SQLite store: who may make one for whom,
//! which count as their holder's own, how long a chain of tokens each made with the last
//! may grow, and how revoking one ends it and everything made with it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::sync::Arc;

use common::{actor as person, at, setup_policy};
use custody_app::events::{Event, EventBody};
use custody_app::{Actor, App, AppError, AppResult, CreateToken, TokenRecord};
use custody_model::Authentication;
use custody_store::SqlStore;

const POLICY: &str = r#"
version = 1
[roles]
admin = ["ada"]
approver = ["bob"]
[[environment]]
name = "build"
"#;

const NOW: &str = "2026-11-10T10:00:00Z";

async fn app() -> (Arc<App<SqlStore>>, tempfile::TempDir) {
    let s = setup_policy(POLICY).await;
    (s.app, s._dir)
}

fn token_for(principal: &str, expires: &str) -> CreateToken {
    CreateToken {
        principal: principal.into(),
        expires: expires.into(),
        description: "test".into(),
    }
}

/// Makes a token for `principal` as `actor`; returns its record and text.
async fn made(
    app: &App<SqlStore>,
    actor: &Actor,
    principal: &str,
) -> AppResult<(TokenRecord, String)> {
    let (record, text) = app
        .create_token(actor, &token_for(principal, "1h"), None)
        .await?;
    Ok((record, text.expect("a new token's text is shown once")))
}

/// The holder of `text`, acting at `now` with it.
async fn holder(app: &App<SqlStore>, text: &str, now: &str) -> AppResult<Actor> {
    app.authenticate(text, at(now)).await?.actor(at(now))
}

#[tokio::test]
async fn anyone_makes_their_own_token_and_only_an_admin_makes_one_for_someone_else() {
    let (app, _dir) = app().await;
    let (own, text) = made(&app, &person("bob"), "bob").await.unwrap();
    assert_eq!((own.principal.as_str(), own.personal), ("bob", true));
    assert_eq!(own.expires_at, at("2026-11-10T11:00:00Z"));
    let bob = holder(&app, &text, NOW).await.unwrap();
    assert_eq!(bob.principal, "bob");

    match made(&app, &person("bob"), "carol").await {
        Err(AppError::Denied(m)) => assert!(
            m.starts_with("bob may not manage others' API tokens: that takes the admin role, and bob holds approver")
                && m.contains(
                    "roles come from the policy's [roles] (e.g. admin = [\"bob\"]): propose a policy that grants it"
                ),
            "{m}"
        ),
        other => panic!("bob made carol a token: {other:?}"),
    }
    // The operator on the data directory is told how to act as someone else.
    let local = Actor::new("dan", at(NOW))
        .unwrap()
        .authenticated_by(Authentication::Local { user: "dan".into() });
    match made(&app, &local, "carol").await {
        Err(AppError::Denied(m)) => assert!(
            m.contains("on the data directory you act as the operator, dan; to act as someone else use their token"),
            "{m}"
        ),
        other => panic!("dan made carol a token: {other:?}"),
    }
    // An admin may; the token works, but it is not carol's own: her approvals with it
    // would not count.
    let (theirs, text) = made(&app, &person("ada"), "carol").await.unwrap();
    assert_eq!(
        (theirs.principal.as_str(), theirs.personal),
        ("carol", false)
    );
    assert_eq!(holder(&app, &text, NOW).await.unwrap().principal, "carol");

    // Nor is one carol makes for herself with it: its creator saw the secret it was made
    // with.
    let carol = holder(&app, &text, NOW).await.unwrap();
    let (record, _) = made(&app, &carol, "carol").await.unwrap();
    assert_eq!(record.parent.as_deref(), Some(theirs.id.as_str()));
    assert!(!record.personal);

    for expires in ["0s", "-5m"] {
        match app
            .create_token(&person("bob"), &token_for("bob", expires), None)
            .await
        {
            Err(AppError::Invalid(m)) => {
                assert!(m.contains("expires") || m.contains("positive"), "{m}")
            }
            other => panic!("a token for {expires}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_token_works_until_it_expires_and_not_a_second_longer() {
    let (app, _dir) = app().await;
    let (_, text) = made(&app, &person("bob"), "bob").await.unwrap();
    assert!(holder(&app, &text, "2026-11-10T10:59:59Z").await.is_ok());
    for now in ["2026-11-10T11:00:00Z", "2026-11-10T12:00:00Z"] {
        match holder(&app, &text, now).await {
            Err(AppError::Denied(m)) => {
                assert!(m.contains("expired at 2026-11-10T11:00:00Z"), "{m}")
            }
            other => panic!("{now}: {other:?}"),
        }
    }
}

/// A chain of tokens, each made with the last, stops at 32: the 33rd is refused, and
/// tokens made with a token never outlive it.
#[tokio::test]
async fn a_chain_of_tokens_each_made_with_the_last_stops_at_thirty_two() {
    let (app, _dir) = app().await;
    let (first, mut text) = made(&app, &person("bob"), "bob").await.unwrap();
    let mut last = first.clone();
    for length in 2..=32 {
        let bob = holder(&app, &text, NOW).await.unwrap();
        let (record, next) = app
            .create_token(&bob, &token_for("bob", "30d"), None)
            .await
            .unwrap_or_else(|e| panic!("token {length} of the chain: {e}"));
        assert_eq!(record.parent.as_deref(), Some(last.id.as_str()));
        assert_eq!(
            record.expires_at, first.expires_at,
            "never outlives the first"
        );
        assert!(record.personal, "made by bob with his own token");
        last = record;
        text = next.unwrap();
    }
    let bob = holder(&app, &text, NOW).await.unwrap();
    match app.create_token(&bob, &token_for("bob", "1h"), None).await {
        Err(AppError::Invalid(m)) => assert!(m.contains("more than 32 tokens"), "{m}"),
        other => panic!("a 33rd token: {other:?}"),
    }
}

/// Revoking a token ends it and every token made with it, down the chain; the holder may
/// revoke their own, an admin anyone's, nobody else learns whether another's exists; and
/// revoking again changes nothing.
#[tokio::test]
async fn revoking_a_token_ends_its_offspring_and_only_its_holder_or_an_admin_may() {
    let (app, _dir) = app().await;
    let (root, root_text) = made(&app, &person("bob"), "bob").await.unwrap();
    let bob = holder(&app, &root_text, NOW).await.unwrap();
    let (child, child_text) = made(&app, &bob, "bob").await.unwrap();
    let with_child = holder(&app, &child_text, NOW).await.unwrap();
    let (_, grandchild_text) = made(&app, &with_child, "bob").await.unwrap();
    let (_, other_text) = made(&app, &person("bob"), "bob").await.unwrap();
    let (carols, carols_text) = made(&app, &person("carol"), "carol").await.unwrap();

    // Bob cannot revoke carol's token, and is told what he would be told of none.
    for id in [carols.id.as_str(), "tok0000"] {
        match app.revoke_token(&person("bob"), id).await {
            Err(AppError::NotFound(m)) => {
                assert!(m.contains(&format!("bob has no token {id}")), "{m}")
            }
            other => panic!("bob revoked {id}: {other:?}"),
        }
    }
    assert!(holder(&app, &carols_text, NOW).await.is_ok());

    let size = app.log().size().await.unwrap();
    let revoked = app.revoke_token(&person("bob"), &child.id).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(NOW)));
    // The child and the grandchild: two events, the second naming the first.
    let entries = app.log().entries(size, size + 2).await.unwrap();
    let events: Vec<_> = entries
        .iter()
        .map(|e| match Event::from_leaf(&e.leaf).unwrap().body {
            EventBody::TokenRevoked(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[0].token.as_str(),
            events[0].principal.as_str(),
            events[0].cascade_from.as_deref()
        ),
        (child.id.as_str(), "bob", None)
    );
    assert_eq!(events[1].cascade_from.as_deref(), Some(child.id.as_str()));
    assert_eq!(app.log().size().await.unwrap(), size + 2);
    match holder(&app, &child_text, NOW).await {
        Err(AppError::Denied(m)) => assert_eq!(m, format!("token {} was revoked", child.id)),
        other => panic!("{other:?}"),
    }
    match holder(&app, &grandchild_text, NOW).await {
        Err(AppError::Denied(m)) => assert!(m.ends_with(" was revoked"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Its parent and bob's other token stand.
    assert!(holder(&app, &root_text, NOW).await.is_ok());
    assert!(holder(&app, &other_text, NOW).await.is_ok());

    // Again: nothing left to revoke, nothing written.
    let again = app.revoke_token(&person("bob"), &child.id).await.unwrap();
    assert_eq!(again.revoked_at, Some(at(NOW)));
    assert_eq!(app.log().size().await.unwrap(), size + 2);

    // An admin revokes anyone's.
    app.revoke_token(&person("ada"), &carols.id).await.unwrap();
    assert!(holder(&app, &carols_text, NOW).await.is_err());
    match app.revoke_token(&person("ada"), "tok0000").await {
        Err(AppError::NotFound(m)) => assert_eq!(m, "no token tok0000"),
        other => panic!("{other:?}"),
    }
    // Revoking the child left the token it was made with as it was.
    let tokens = app.tokens().await.unwrap();
    let kept = tokens.iter().find(|t| t.id == root.id).unwrap();
    assert_eq!(kept.revoked_at, None);
}

/// A token's text is checked whole: a known id with the wrong secret is refused as any
/// other wrong token is, and a session started with a token holds only while that token
/// stands and names the same principal.
#[tokio::test]
async fn only_the_whole_token_authenticates_and_a_session_lasts_while_its_token_stands() {
    let (app, _dir) = app().await;
    let (record, text) = made(&app, &person("bob"), "bob").await.unwrap();
    let bob = app.authenticate(&text, at(NOW)).await.unwrap();
    assert_eq!(bob.roles, ["approver"]);
    assert_eq!(
        bob.auth,
        Authentication::Token {
            token: record.id.clone(),
            created_by: Some("bob".into()),
            personal: true,
        }
    );
    let wrong = format!("cst_{}_{}", record.id, "0".repeat(64));
    for text in [wrong.as_str(), "cst_tok0000000000000000_00", "bearer", ""] {
        match app.authenticate(text, at(NOW)).await {
            Err(AppError::Denied(m)) => assert!(m.starts_with("the token is not valid"), "{m}"),
            other => panic!("{text}: {other:?}"),
        }
    }

    let again = app.reauthenticate("bob", &bob.auth, at(NOW)).await.unwrap();
    assert_eq!(again, bob);
    match app.reauthenticate("carol", &bob.auth, at(NOW)).await {
        Err(AppError::Denied(m)) => {
            assert_eq!(
                m,
                format!("token {} no longer authenticates carol", record.id)
            )
        }
        other => panic!("{other:?}"),
    }
    app.revoke_token(&person("bob"), &record.id).await.unwrap();
    match app.reauthenticate("bob", &bob.auth, at(NOW)).await {
        Err(AppError::Denied(m)) => assert!(m.contains("was revoked"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A session started otherwise holds with the roles of the policy in force.
    let oidc = Authentication::Oidc {
        issuer: "https://idp.example".into(),
        subject: "ada".into(),
    };
    let ada = app.reauthenticate("ada", &oidc, at(NOW)).await.unwrap();
    assert_eq!(
        (ada.principal.as_str(), ada.roles.as_slice()),
        ("ada", &["admin".to_owned()][..])
    );
}

/// Everyone sees their own tokens; admins and auditors see everyone's.
#[tokio::test]
async fn a_token_list_is_ones_own_unless_one_administers_or_audits() {
    let (app, _dir) = app().await;
    for who in ["bob", "carol", "ada"] {
        made(&app, &person(who), who).await.unwrap();
    }
    let viewer = |who: &str, roles: &[&str]| custody_app::Authenticated {
        principal: who.into(),
        auth: Authentication::Oidc {
            issuer: "https://idp.example".into(),
            subject: who.into(),
        },
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    for (who, roles, sees) in [
        ("bob", &["approver"][..], &["bob"][..]),
        ("dan", &[], &[]),
        ("ada", &["admin"], &["ada", "bob", "carol"]),
        ("audrey", &["auditor"], &["ada", "bob", "carol"]),
    ] {
        let mut of: Vec<String> = app
            .tokens_for(&viewer(who, roles))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.principal)
            .collect();
        of.sort();
        assert_eq!(of, sees, "{who}");
    }
}
