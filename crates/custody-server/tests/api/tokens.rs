//! Tokens made with tokens: a token its principal made with a token never outlives the one
//! it was made with, and ends when that one is revoked, however many generations down, and
//! whatever the revocation's cascade saw. The ledger records each token ended so, and the
//! state still checks against it.

use crate::state_check::behind_the_ledger;
use crate::support::{Answer, Backend, TestServer};

/// The id of a token `cst_<id>_<secret>`.
fn id_of(token: &str) -> &str {
    token.split('_').nth(1).unwrap()
}

/// Makes a token for `principal` with `token`, asking it to last `expires`.
async fn make(server: &TestServer, token: &str, principal: &str, expires: &str) -> Answer {
    let body = format!(r#"{{"principal":"{principal}","expires":"{expires}"}}"#);
    server
        .call("POST", "/api/v1/tokens", Some(token), Some(&body), &[])
        .await
}

/// The token text of a 201 answer to [`make`].
fn made(answer: &Answer) -> String {
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

/// Whether `token` is refused, and why.
async fn refused(server: &TestServer, token: &str) -> Option<String> {
    let answer = server
        .call("GET", "/api/v1/tokens", Some(token), None, &[])
        .await;
    (answer.status == 401).then(|| answer.error().to_owned())
}

/// A token made with a token for oneself never outlives it (the test tokens last 30 days):
/// a leaked or short-lived token cannot be turned into a lasting one. Asked for longer, it
/// ends when its maker does; asked for shorter, when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_with_a_token_never_outlives_it() {
    let server = TestServer::start(Backend::Sqlite).await;
    let vic = server.token("vic");
    let made = |expires: &'static str| {
        let server = &server;
        async move {
            let answer = make(server, vic, "vic", expires).await;
            assert_eq!(answer.status, 201, "{}", answer.body);
            let at: custody_model::Timestamp = answer.body["record"]["expires_at"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            at.unix_seconds() - server.state.now().unix_seconds()
        }
    };
    assert_eq!(made("3650d").await, 30 * 86_400, "it outlived its maker");
    assert_eq!(made("7d").await, 7 * 86_400);
}

/// Revoking a token revokes its offspring: the token made with it and the one made with
/// that, each recorded in the ledger as ended with it, while a token of the same principal
/// made otherwise keeps working. The state still matches the ledger afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_revokes_the_tokens_made_with_it() {
    let server = TestServer::start(Backend::Sqlite).await;
    let vic = server.token("vic").to_owned();
    let child = made(&make(&server, &vic, "vic", "7d").await);
    let grandchild = made(&make(&server, &child, "vic", "1d").await);
    let root = server.token("root").to_owned();
    let other = made(&make(&server, &root, "vic", "7d").await);
    for token in [&child, &grandchild, &other] {
        assert_eq!(refused(&server, token).await, None, "it works before");
    }
    let path = format!("/api/v1/tokens/{}/revoke", id_of(&vic));
    let answer = server.call("POST", &path, Some(&vic), None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    for token in [&vic, &child, &grandchild] {
        let why = refused(&server, token).await;
        assert_eq!(
            why.as_deref(),
            Some(&*format!("token {} was revoked", id_of(token)))
        );
    }
    assert_eq!(
        refused(&server, &other).await,
        None,
        "an admin-made token stands"
    );
    let list = server
        .call("GET", "/api/v1/tokens", Some(&root), None, &[])
        .await;
    let listed = |id: &str| {
        list.body
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(listed(id_of(&child))["parent"], id_of(&vic));
    assert_eq!(listed(id_of(&grandchild))["parent"], id_of(&child));
    assert!(listed(id_of(&grandchild))["revoked_at"].is_string());
    assert!(listed(id_of(&other))["revoked_at"].is_null());
    assert!(
        listed(id_of(&other))["parent"].is_null(),
        "made by an admin for vic"
    );

    let history = server
        .call(
            "GET",
            "/api/v1/history?principal=vic",
            Some(&root),
            None,
            &[],
        )
        .await;
    let cascaded: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "token.revoked")
        .filter(|e| e["event"]["cascade_from"] == id_of(&vic))
        .map(|e| e["event"]["token"].as_str().unwrap())
        .collect();
    assert_eq!(cascaded.len(), 2, "{}", history.body);
    assert!(cascaded.contains(&id_of(&child)) && cascaded.contains(&id_of(&grandchild)));
    let report = server.state.app.check_state(|_| {}).await.unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
}

/// A token made with a token in the moment that token was revoked (its credential checked
/// just before the revocation, the token written just after, so the cascade never saw it)
/// still does not work: a token stands only while every token it was made with does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_with_a_token_as_it_was_revoked_does_not_work() {
    let server = TestServer::start(Backend::Sqlite).await;
    let vic = server.token("vic").to_owned();
    let path = format!("/api/v1/tokens/{}/revoke", id_of(&vic));
    let answer = server.call("POST", &path, Some(&vic), None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The request that made it authenticated before the revocation landed.
    let as_vic = custody_app::Actor::new("vic", server.state.now())
        .unwrap()
        .authenticated_by(custody_model::Authentication::Token {
            token: id_of(&vic).into(),
            created_by: Some("vic".into()),
            personal: true,
        });
    let request = custody_app::CreateToken {
        principal: "vic".into(),
        expires: "7d".into(),
        description: String::new(),
    };
    let (record, late) = server
        .state
        .app
        .create_token(&as_vic, &request, None)
        .await
        .unwrap();
    assert_eq!(record.parent.as_deref(), Some(id_of(&vic)));
    let why = refused(&server, &late.unwrap()).await;
    assert_eq!(
        why.as_deref(),
        Some(&*format!(
            "token {} was made with token {}, which was revoked",
            record.id,
            id_of(&vic)
        ))
    );
}

/// Tampering with a token's lineage in the state (cutting it loose from the token it was
/// made with, so that revoking that one would spare it) is a difference from the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_cut_loose_from_its_maker_differs_from_the_ledger() {
    let server = TestServer::start(Backend::Sqlite).await;
    let vic = server.token("vic").to_owned();
    let child = made(&make(&server, &vic, "vic", "7d").await);
    let report = server.state.app.check_state(|_| {}).await.unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    let sql = format!(
        "UPDATE state SET value = replace(value, '\"parent\":\"{}\",\"personal\":true', \
         '\"personal\":false') WHERE kind = 'token' AND key = '{}'",
        id_of(&vic),
        id_of(&child)
    );
    assert_eq!(behind_the_ledger(&server.location, &sql).await, 1);
    let report = server.state.app.check_state(|_| {}).await.unwrap();
    let lines: Vec<String> = report.differences.iter().map(|d| d.what.clone()).collect();
    let all = lines.join("\n");
    assert!(all.contains("parent"), "{all}");
    assert!(all.contains("personal"), "{all}");
    assert_eq!(
        report.differences[0].record,
        format!("token/{}", id_of(&child))
    );
}

/// A chain of tokens each made with the last ends at 32: the 33rd is refused when asked
/// for (400, naming the limit), not made and then refused at every use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_tokens_is_refused_when_it_would_grow_too_long() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut last = server.token("vic").to_owned();
    for _ in 1..32 {
        last = made(&make(&server, &last, "vic", "1d").await);
    }
    assert_eq!(refused(&server, &last).await, None, "the 32nd works");
    let before = server.size().await;
    let answer = make(&server, &last, "vic", "1d").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.error().contains("more than 32 tokens"),
        "{}",
        answer.body
    );
    assert_eq!(server.size().await, before);
}

/// Each person lists their own tokens; an auditor or admin lists every token. Someone who
/// may not manage others' tokens gets the same 404 for another's token as for one that
/// does not exist, so token ids cannot be probed; an admin may revoke anyone's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_see_and_revoke_their_own_tokens_and_learn_nothing_of_others() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (vic, bob) = (
        server.token("vic").to_owned(),
        server.token("bob").to_owned(),
    );
    let spare = made(&make(&server, &vic, "vic", "7d").await);
    let principals = |token: &str| {
        let server = &server;
        let token = token.to_owned();
        async move {
            let answer = server
                .call("GET", "/api/v1/tokens", Some(&token), None, &[])
                .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let mut seen: Vec<String> = answer
                .body
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["principal"].as_str().unwrap().to_owned())
                .collect();
            seen.sort();
            seen.dedup();
            (answer.body.as_array().unwrap().len(), seen)
        }
    };
    assert_eq!(principals(&vic).await, (2, vec!["vic".to_owned()]));
    let (all, seen) = principals(server.token("audrey")).await;
    assert!(all > 2 && seen.contains(&"bob".to_owned()), "{seen:?}");
    assert!(principals(server.token("root")).await.0 == all);

    // bob may not revoke vic's token, and cannot tell it from one that does not exist.
    let revoke = |token: String, id: String| {
        let server = &server;
        async move {
            let path = format!("/api/v1/tokens/{id}/revoke");
            server.call("POST", &path, Some(&token), None, &[]).await
        }
    };
    let others = revoke(bob.clone(), id_of(&spare).to_owned()).await;
    let unknown = revoke(bob.clone(), "tok0000000000".to_owned()).await;
    assert_eq!(
        (others.status.as_u16(), unknown.status.as_u16()),
        (404, 404)
    );
    assert_eq!(
        others.error().replace(id_of(&spare), "ID"),
        unknown.error().replace("tok0000000000", "ID"),
        "the answers differ"
    );
    assert_eq!(refused(&server, &spare).await, None, "it still works");
    // An admin may, and is told plainly of an id that does not exist.
    let root = server.token("root").to_owned();
    assert_eq!(
        revoke(root.clone(), id_of(&spare).to_owned()).await.status,
        200
    );
    let missing = revoke(root, "tok0000000000".to_owned()).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error(), "no token tok0000000000");
}

/// Only a token's hash is kept: its secret is nowhere in the database's files (the
/// database and its write-ahead log, which hold the ledger too) nor in what the ledger
/// serves, though the token's id is in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_secret_is_kept_nowhere_only_its_hash() {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = made(&make(&server, server.token("root"), "vic", "1d").await);
    let (id, secret) = (id_of(&token), token.rsplit('_').next().unwrap());
    assert!(secret.len() >= 32, "{token}");
    let custody_store::Location::Sqlite(db) = &server.location else {
        unreachable!("an SQLite server")
    };
    let mut files = 0;
    let mut id_seen = false;
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(secret), "the secret is in a database file");
        id_seen |= text.contains(id);
        files += 1;
    }
    assert!(files >= 2 && id_seen, "the search found the token's record");
    let size = server.size().await;
    let ledger = server
        .call(
            "GET",
            &format!("/api/v1/log/entries?start=0&end={size}"),
            Some(server.token("root")),
            None,
            &[],
        )
        .await;
    assert_eq!(ledger.status, 200, "{}", ledger.body);
    let ledger = ledger.body.to_string();
    assert!(ledger.contains(id) && !ledger.contains(secret), "{ledger}");
}
