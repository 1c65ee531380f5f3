//! Every alert rule reaches a webhook once, is recorded once in the ledger and counted in
//! `/metrics`, and a webhook that never answers keeps every alert, shown on the dashboard.

use serde_json::Value;

use super::common::*;
use super::{call, dashboard_page, deliveries, grant_roles, poll, register_shop, trust_new_keys};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_rule_reaches_a_webhook_once_and_a_failing_one_is_kept() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let received = temp.path().join("received.jsonl");
    // The receiver refuses the first three deliveries, then takes them.
    let (_receiver, hook) = listening(python_script("webhook_receiver.py").arg(&received).arg("3"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("approval_sla = \"24h\"", "approval_sla = \"1h\"")
        .replace("denied_threshold = 5", "denied_threshold = 3")
        .replace("expiry_warning = \"2h\"", "expiry_warning = \"73h\"");
    std::fs::write(
        &config,
        format!(
            "{text}\n[[alerts.webhook]]\nname = \"ops\"\nurl = \"{hook}\"\n\n[[alerts.webhook]]\nname = \"down\"\nurl = \"{down}\"\n"
        ),
    )
    .unwrap();
    let (builder_key, release_key) = trust_new_keys(temp.path(), &data);
    // Promotions into build wait for an approver, so one can wait past the SLA.
    let policy = data.join("policy/custody.toml");
    let p = std::fs::read_to_string(&policy).unwrap().replace(
        "[[environment]]\nname = \"build\"\n",
        "[[environment]]\nname = \"build\"\napprovals = { quorum = 2, roles = [\"approver\"], expires = \"72h\" }\nevidence = [\"test-results\"]\nevidence_max_age = \"74h\"\nbreak_glass = [\"signer\"]\n",
    );
    std::fs::write(&policy, p).unwrap();
    // approver-1 signs her approvals with her own key.
    let (approver_key, approver_pub) = generate_key(temp.path(), "approver-1", "ed25519");
    std::fs::copy(&approver_pub, data.join("policy/keys/approver-1.pub")).unwrap();
    // rita signs when she breaks glass: it overrides the approvals, so it takes her key.
    let (rita_key, rita_pub) = generate_key(temp.path(), "rita", "ed25519");
    std::fs::copy(&rita_pub, data.join("policy/keys/rita.pub")).unwrap();
    let enrolled = std::fs::read_to_string(&policy).unwrap()
        + "\n[[person_key]]\nprincipal = \"approver-1\"\npath = \"keys/approver-1.pub\"\n"
        + "\n[[person_key]]\nprincipal = \"rita\"\npath = \"keys/rita.pub\"\n";
    std::fs::write(&policy, enrolled).unwrap();
    let server = Server::start(&data);
    grant_roles(
        &data,
        "admin = [\"root\"]\ndeployer = [\"argo\"]\nviewer = [\"vic\"]\nsigner = [\"rita\"]\nbuilder = [\"ci\"]",
    );
    let tokens: std::collections::BTreeMap<&str, String> = ["ci", "rita", "approver-1", "argo"]
        .into_iter()
        .map(|who| (who, token(&data, who, &[])))
        .collect();
    let local = |who: &str, args: &[&str]| {
        let mut command = custody();
        command
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("CUSTODY_TOKEN", &tokens[who]);
        if matches!(args.first(), Some(&("approve" | "reject"))) {
            command.arg("--sign-key").arg(&approver_key);
        }
        if args.contains(&"--break-glass") && who == "rita" {
            command.arg("--sign-key").arg(&rita_key);
        }
        run(&mut command)
    };
    let register = |file: &str, body: &str| {
        let path = temp.path().join(file);
        std::fs::write(&path, body).unwrap();
        let args = register_shop(&path, "abc", &builder_key);
        let out = local("ci", &args.iter().map(String::as_str).collect::<Vec<_>>());
        expect_code(&out, 0);
        stdout(&out).trim().to_owned()
    };
    // A provenance discrepancy: the same source and parameters, another digest.
    let digest = register("shop-1.tar", "shop v1");
    let other = register("shop-2.tar", "shop v1, but not quite");
    // The two builds side by side, over HTTP: the same source and parameters.
    let out = run(custody()
        .args([
            "artifact",
            "compare",
            &digest,
            &other,
            "--json",
            "--server",
            &server.base,
        ])
        .env("CUSTODY_TOKEN", &tokens["rita"]));
    expect_code(&out, 0);
    let compared: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(compared["same_source"], true, "{compared:#}");
    assert_eq!(compared["builds"][1]["digest"], other.as_str());
    assert!(
        compared["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |f| f["field"] == "buildDefinition.externalParameters.source.commit"
                    && f["same"] == true
            ),
        "{compared:#}"
    );
    // And on the artifact's page, marked as a discrepancy.
    let cookie = session_cookie(&server.base, &tokens["rita"]).await;
    let artifact = page(&server.base, &cookie, &format!("/artifacts/{digest}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        artifact.contains("Provenance discrepancy") && artifact.contains(&other),
        "{artifact}"
    );
    // An unsigned release promoted: its signature gate fails.
    let artifact = format!("shop={digest}");
    expect_code(
        &local(
            "rita",
            &[
                "release",
                "create",
                "shop",
                "1.0.0",
                "--artifact",
                &artifact,
            ],
        ),
        0,
    );
    let unsigned = local("rita", &["promote", "shop@1.0.0", "--to", "build"]);
    expect_code(&unsigned, 1);
    assert!(
        stdout(&unsigned).contains("FAIL  release-signature"),
        "{}",
        stdout(&unsigned)
    );
    // Its test results, attached two hours ago: 72 h left of the 74 h they stay fresh,
    // within the 73 h warning.
    let two_hours_ago = custody_model::Timestamp::from_unix_seconds(
        custody_app::Clock::now(&custody_app::SystemClock).unix_seconds() - 7200,
    )
    .unwrap();
    let junit = temp.path().join("junit.xml");
    std::fs::write(&junit, "<testsuite tests=\"3\" failures=\"0\"/>").unwrap();
    expect_code(
        &run(custody()
            .args(["attest", "--artifact", &digest, "--type", "junit"])
            .arg(&junit)
            .arg("--data-dir")
            .arg(&data)
            .env("CUSTODY_TOKEN", &tokens["ci"])
            .env("CUSTODY_NOW", two_hours_ago.to_string())),
        0,
    );
    // A signed one, asked for two hours ago, still waiting for its approver.
    expect_code(
        &local(
            "rita",
            &[
                "release",
                "create",
                "shop",
                "1.0.1",
                "--artifact",
                &artifact,
                "--sign-key",
                release_key.to_str().unwrap(),
            ],
        ),
        0,
    );
    // Rita, acting two hours ago.
    let rita_then = |args: &[&str]| {
        let mut command = custody();
        command
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("CUSTODY_TOKEN", &tokens["rita"])
            .env("CUSTODY_NOW", two_hours_ago.to_string());
        if args.contains(&"--break-glass") {
            command.arg("--sign-key").arg(&rita_key);
        }
        run(&mut command)
    };
    let out = rita_then(&["promote", "shop@1.0.1", "--to", "build", "--json"]);
    expect_code(&out, 1);
    let waiting: Value = serde_json::from_slice(&out.stdout).unwrap();
    let waiting = waiting["promotion"]["id"].as_str().unwrap().to_owned();
    // One of the two approvals it needs, valid 72 h: within the 73 h warning.
    let out = local(
        "approver-1",
        &[
            "approve",
            &waiting,
            "--rationale",
            "looks right",
            "--risk",
            "low",
        ],
    );
    expect_saying(&out, "1 of 2 approvals");
    // Rita breaks glass into build with the same release, two hours ago: loud at once,
    // and nobody has reviewed it since (past the 1 h SLA).
    let out = rita_then(&[
        "promote",
        "shop@1.0.1",
        "--to",
        "build",
        "--break-glass",
        "hotfix for the outage",
    ]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("OVER"), "{}", stdout(&out));
    // And once more, now; this one an approver rejects after the fact.
    let out = local(
        "rita",
        &[
            "promote",
            "shop@1.0.1",
            "--to",
            "build",
            "--break-glass",
            "second attempt",
            "--json",
        ],
    );
    expect_code(&out, 0);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    let again = again["promotion"]["id"].as_str().unwrap().to_owned();
    let out = local(
        "approver-1",
        &[
            "reject",
            &again,
            "--rationale",
            "no incident justified this",
            "--risk",
            "high",
        ],
    );
    expect_code(&out, 0);
    // A digest running in build that was never certified there.
    let stranger = format!("sha256:{}", "e".repeat(64));
    expect_code(
        &local(
            "argo",
            &[
                "deploy",
                "report",
                "--env",
                "build",
                "--digest",
                &stranger,
                "--status",
                "succeeded",
            ],
        ),
        0,
    );
    // A viewer trying, again and again, to report deploys.
    let vic = token(&data, "vic", &[]);
    for _ in 0..3 {
        let (status, _) = call(
            "POST",
            &format!("{}/api/v1/deploys", server.base),
            Some(&vic),
            Some(format!(
                r#"{{"environment":"build","digests":["{stranger}"],"status":"succeeded"}}"#
            )),
        )
        .await;
        assert_eq!(status, 403);
    }

    let rules = [
        "provenance-discrepancy",
        "missing-or-invalid-signature",
        "approval-waiting-past-sla",
        "approval-about-to-expire",
        "evidence-about-to-expire",
        "break-glass-used",
        "break-glass-review-overdue",
        "break-glass-review-rejected",
        "digest-mismatch",
        "repeated-denied-access",
    ];
    let deliveries = poll(60, async || {
        let got = deliveries(&received);
        let has = |rule: &str| got.iter().any(|d| d["body"]["alert"]["rule"] == rule);
        if rules.iter().all(|r| has(r)) {
            return Ok(got);
        }
        Err(format!("not every rule's alert arrived: {got:?}"))
    })
    .await;
    // Each alert arrived once, with a Slack-compatible text.
    let mut ids: Vec<&str> = deliveries
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an alert arrived twice: {deliveries:?}");
    for d in &deliveries {
        assert!(
            d["body"]["text"]
                .as_str()
                .unwrap()
                .starts_with("[custody] "),
            "{d}"
        );
        assert_eq!(d["body"]["alert"]["id"], d["id"]);
    }
    // Each is recorded once in the ledger; the refused attempts are recorded too (the
    // server records the third refusal after the receiver saw it: wait for it).
    let failed_to_ops = |events: &[Value]| {
        events
            .iter()
            .filter(|e| {
                e["event"]["type"] == "alert.delivery_failed" && e["event"]["webhook"] == "ops"
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let out = run(custody()
            .args(["history", "--json", "--limit", "0", "--data-dir"])
            .arg(&data));
        let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        if failed_to_ops(&events) >= 3 || std::time::Instant::now() >= deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"]["type"] == kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("alert.raised").len(), all);
    let scraper = token(&data, "root", &[]);
    until_servers_see_local_writes();
    let samples = scrape_metrics(&server.base, &scraper).await;
    assert_eq!(
        metric(&samples, "custody_alerts_raised_total", &[]),
        all as f64
    );
    assert_eq!(
        metric(
            &samples,
            "custody_break_glass_total",
            &[("environment", "build")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &samples,
            "custody_alerts_raised_total",
            &[("rule", "digest-mismatch"), ("severity", "critical")]
        ),
        1.0
    );
    assert_eq!(
        failed_to_ops(&events),
        3,
        "the receiver refused three deliveries"
    );
    // The webhook that never answers keeps every alert, shown on the dashboard.
    let page = dashboard_page(&data, &server.base, "root", "/alerts").await;
    for rule in rules {
        assert!(
            page.contains(&format!("data-rule=\"{rule}\"")),
            "{rule} not shown"
        );
    }
    let outbox = page
        .split("id=\"outbox\"")
        .nth(1)
        .expect("the failing deliveries are shown");
    assert_eq!(outbox.matches("<td>down</td>").count(), all, "{outbox}");
    assert!(
        !outbox.contains("<td>ops</td>"),
        "delivered ones left the outbox"
    );
    assert!(server.stop().success());
}
