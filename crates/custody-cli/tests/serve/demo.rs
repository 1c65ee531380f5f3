//! A newcomer's first hour with the service: the demo fills a running server, its tokens
//! sign in to the dashboard and answer the exports, `/metrics` counts what the ledger
//! records, and the CLI works through the server with each person's own token.

use serde_json::Value;

use super::common::*;
use super::{as_client, call, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_starts_the_service_and_fills_it_with_the_demo() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let out = run(custody().args(["demo", "--json", "--data-dir"]).arg(&data));
    expect_code(&out, 0);
    let seeded: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Four releases, the last waiting in staging for an approver.
    let releases = seeded["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 4);
    assert_eq!(releases[3], "shop@1.3.0");
    assert_eq!(
        (seeded["rejected"].as_u64(), seeded["rollbacks"].as_u64()),
        (Some(1), Some(1))
    );
    // It ends with a way in: tokens for its admin (the operator, also an approver), an
    // auditor and a viewer, and the cast with their roles.
    let me = operator(&data);
    let sign_in = seeded["sign_in"].as_array().unwrap();
    let token_of = |who: &str| {
        sign_in
            .iter()
            .find(|s| s["principal"] == who)
            .unwrap_or_else(|| panic!("no token for {who} in {sign_in:?}"))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admin = token_of(&me);
    assert!(seeded["dashboard"].as_str().unwrap().ends_with("/login"));
    let cast = seeded["cast"].as_array().unwrap();
    assert!(
        cast.iter()
            .any(|c| c["principal"] == "alice" && c["roles"][0] == "approver"),
        "{cast:?}"
    );
    // A second run would muddle the story: refused.
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 2);
    until_servers_see_local_writes();

    // The demo's admin token signs in to the dashboard, as an admin and approver.
    let cookie = session_cookie(&server.base, &admin).await;
    let board = http()
        .get(format!("{}/", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(board.status().as_u16(), 200);
    let board = board.text().await.unwrap();
    assert!(
        board.contains("Waiting (1)") && board.contains(">shop@1.3.0</a> by rita"),
        "{board}"
    );
    let (status, me) = call(
        "GET",
        &format!("{}/api/v1/whoami", server.base),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"admin") && roles.contains(&"approver"),
        "{me}"
    );
    // The sign-in page says where tokens come from.
    let (_, login) = get(&format!("{}/login", server.base)).await;
    assert!(
        login.contains("custody token create") && login.contains("custody demo"),
        "{login}"
    );

    // The dashboard's exports answer a script's bearer token (the auditor's printed by the
    // demo), never a redirect to the sign-in page; a bad token gets 401.
    let export = |token: &str, path: &str| {
        let url = format!("{}{path}", server.base);
        let token = token.to_owned();
        async move {
            let client = custody_server::http_client::client_builder(None)
                .unwrap()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let r = client
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, csv) = export(&token_of("audrey"), "/history.csv?env=production").await;
    assert_eq!(status, 200, "{csv}");
    assert!(csv.starts_with("index,at,type"), "{csv}");
    assert!(csv.contains("rollback"), "{csv}");
    let (status, json) = export(&token_of("vic"), "/history.json?env=production").await;
    assert_eq!(status, 200, "{json}");
    assert!(serde_json::from_str::<Value>(&json).unwrap().is_array());
    let (status, _) = export("cst_not-a-token", "/history.csv").await;
    assert_eq!(status, 401);
    // Pages other than the exports still want a session: a bearer token is not a sign-in.
    let (status, _) = export(&admin, "/").await;
    assert_eq!(status, 303);

    // The running server shows it: an auditor of the demo organisation reads the history.
    let audrey = token(&data, "audrey", &[]);
    let (status, history) = call(
        "GET",
        &format!("{}/api/v1/history?env=production&limit=1000", server.base),
        Some(&audrey),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let types = event_types(&history);
    for t in [
        "environment.certified",
        "approval.recorded",
        "rollback",
        "deploy.reported",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let out = run(custody()
        .args(["history", "--principal", "carol", "--data-dir"])
        .arg(&data));
    expect_saying(&out, "rejected shop@1.1.0 → production");
    let check = run(custody().args(["log", "check", "--data-dir"]).arg(&data));
    expect_code(&check, 0);

    // /metrics, parsed by the Prometheus project's own Python parser, counts what the
    // ledger records of the demo.
    // Only with a token of someone who may read the history (here a viewer's).
    let scraper = token(&data, "vic", &[]);
    until_servers_see_local_writes();
    let all = run(custody()
        .args(["history", "--json", "--limit", "0", "--data-dir"])
        .arg(&data));
    let all: Vec<Value> = serde_json::from_slice(&all.stdout).unwrap();
    let recorded = |kind: &str, key: &str, value: &str| {
        all.iter()
            .filter(|e| e["event"]["type"] == kind && e["event"][key] == value)
            .count() as f64
    };
    let anonymous = http()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let samples = scrape_metrics(&server.base, &scraper).await;
    let sample = |name: &str, labels: &[(&str, &str)]| metric(&samples, name, labels);
    for env in ["build", "test", "staging", "production"] {
        let e = [("environment", env)];
        assert_eq!(
            sample("custody_promotions_requested_total", &e),
            recorded("promotion.requested", "environment", env),
            "{env}"
        );
        assert_eq!(
            sample("custody_certifications_total", &e),
            recorded("environment.certified", "environment", env),
            "{env}"
        );
        assert_eq!(
            sample("custody_decisions_total", &e),
            recorded("decision.recorded", "environment", env),
            "{env}"
        );
        assert_eq!(
            sample("custody_time_to_promotion_seconds_count", &e),
            recorded("environment.certified", "environment", env),
            "every certification had its request in the ledger: {env}"
        );
    }
    for verdict in ["approve", "reject"] {
        assert_eq!(
            sample("custody_reviews_total", &[("verdict", verdict)]),
            recorded("approval.recorded", "verdict", verdict)
        );
    }
    assert_eq!(sample("custody_rollbacks_total", &[]), 1.0);
    assert_eq!(
        sample("custody_deploys_reported_total", &[("status", "failed")]),
        recorded("deploy.reported", "status", "failed")
    );
    assert_eq!(
        sample(
            "custody_gate_results_total",
            &[("gate", "approvals"), ("status", "fail")]
        ),
        1.0,
        "the one rejection"
    );
    assert_eq!(sample("custody_ledger_entries", &[]), all.len() as f64);
    // The demo's reviews come minutes after the requests.
    let production = [("environment", "production")];
    assert!(sample("custody_time_to_promotion_seconds_sum", &production) > 0.0);
    assert!(sample("custody_approval_latency_seconds_sum", &production) > 0.0);
    assert!(
        sample(
            "custody_http_request_duration_seconds_count",
            &[("route", "/api/v1/history")]
        ) >= 1.0
    );

    // The CLI as a client of the server: each person with their own token.
    let remote = |who: &str, args: &[&str]| as_client(&data, &server.base, who, args);
    let out = remote("audrey", &["history", "--principal", "carol", "--json"]);
    expect_code(&out, 0);
    let events: Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["type"] == "decision.recorded")
        .unwrap()["event"]["decision"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_code(&remote("audrey", &["decision", "show", &decision]), 0);
    let out = remote("audrey", &["decision", "replay", &decision]);
    expect_saying(&out, "replayed to the same outcome");
    let out = remote("audrey", &["decision", "replay", "dec-none"]);
    expect_refusal(&out, 2, "dec-none");
    // Releases and promotions read through the server, as on the data directory.
    let out = remote("audrey", &["release", "show", "shop@1.0.0", "--json"]);
    expect_code(&out, 0);
    let release: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(release["signed_by"].is_string(), "{release}");
    let now_in: Vec<&str> = release["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["current"] == true)
        .map(|e| e["environment"].as_str().unwrap())
        .collect();
    assert_eq!(
        now_in,
        ["production"],
        "the demo rolled production back to 1.0.0"
    );
    let out = remote("audrey", &["release", "show", "shop@9.9.9"]);
    expect_refusal(&out, 2, "not found: no release shop@9.9.9");
    let out = remote("audrey", &["promotion", "show", "prm-none"]);
    expect_refusal(&out, 2, "not found: no promotion prm-none");
    let out = remote(
        "rita",
        &["promote", "shop@1.2.0", "--to", "staging", "--json"],
    );
    expect_code(&out, 1); // waits for an approval
    let pending: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = pending["promotion"]["id"].as_str().unwrap().to_owned();
    // The operator made rita's token (and saw its secret), so their approval would not
    // count; alice's, signed with her own key and sent with her token, does.
    let out = remote(
        &operator(&data),
        &["approve", &id, "--rationale", "mine", "--risk", "low"],
    );
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("made the token the promotion was requested with"),
        "{}",
        stderr(&out)
    );
    let alice_key = data.join("demo-keys/alice.key");
    let out = remote(
        "alice",
        &[
            "approve",
            &id,
            "--rationale",
            "re-test after the fix",
            "--risk",
            "low",
            "--sign-key",
            alice_key.to_str().unwrap(),
        ],
    );
    expect_code(&out, 0);
    assert!(stdout(&out).contains("certified"), "{}", stdout(&out));
    // Those went through the server: its appends were timed.
    let samples = scrape_metrics(&server.base, &scraper).await;
    let committed = [("outcome", "committed")];
    assert!(
        metric(
            &samples,
            "custody_ledger_append_duration_seconds_count",
            &committed
        ) >= 2.0
    );
    assert!(
        metric(
            &samples,
            "custody_ledger_append_duration_seconds_sum",
            &committed
        ) > 0.0
    );
    // A refusal over HTTP exits 1 with what is missing, as it would locally.
    let out = remote("vic", &["promote", "shop@1.2.0", "--to", "build"]);
    expect_refusal(&out, 1, "may not request promotions");
    let out = run(custody()
        .args(["history"])
        .env("CUSTODY_SERVER", &server.base));
    expect_refusal(&out, 1, "--token");
    assert!(server.stop().success());
}
