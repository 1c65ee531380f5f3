//! Who may ask for an exception and who may approve one: malformed requests and the wrong
//! people refused, writing nothing; a rejection that stays; an idempotent retry; and an
//! exception asked for ahead of the clock refused at approval.

use custody_app::attestations::sha256;
use custody_app::records::Verdict;
use custody_app::{Actor, AppError, ExceptionStatus, RequestException};

use super::common::*;
use super::{decide, review, scanned, waiver, world};

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
    let stranger = sha256(b"never registered");
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
        decide(&s, "alice", t, &x.id, Verdict::Approve, "fine").await,
        decide(&s, "sue", t, &own.id, Verdict::Approve, "fine").await,
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
    let missing = decide(&s, "sec", t, "x-nope", Verdict::Approve, "fine").await;
    assert!(matches!(missing, Err(AppError::NotFound(_))), "{missing:?}");

    // Rejected once, it stays rejected.
    let rejected = decide(&s, "sec", t, &x.id, Verdict::Reject, "fix it")
        .await
        .unwrap();
    assert_eq!(rejected.status, ExceptionStatus::Rejected);
    let again = decide(&s, "sue", t, &x.id, Verdict::Approve, "fine").await;
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

/// An exception asked for with a clock set forward (a far `CUSTODY_NOW`) would outlast
/// the longest term from when it is approved: the approval, by its own clock, refuses it
/// and records nothing.
#[tokio::test]
async fn an_exception_asked_for_ahead_of_the_clock_cannot_outlast_its_longest_term() {
    let s = world().await;
    let (d, _) = scanned(&s).await;
    let ahead = someone("sam", "2027-11-01T00:00:00Z");
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
