//! `custody bench promotions`: promotions end to end on a fresh instance, then the deploy
//! gate answered from the store they leave. Baseline in the same run: a bare read of the
//! ledger head through the same store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use custody_app::approval_statement::{self, ApprovalPredicate, Approved};
use custody_app::attestations::{BuildFields, ManifestArtifact, sha256};
use custody_app::{
    Actor, App, ApplyPolicy, AttachEvidence, CreateToken, Promote, RecordRelease, RegisterArtifact,
    Review,
};
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::{Digest, Risk, Timestamp, Verdict};
use custody_policy::Bundle;
use custody_store::SqlStore;
use serde_json::json;

use crate::Outcome;
use crate::cmd::bench::{PromotionsArgs, percentile_ms, subject};
use crate::input::{print_json, print_line};

const ARTIFACTS: u64 = 3;

fn policy(builder: &PrivateKey, release: &PrivateKey, approver: &PrivateKey) -> Bundle {
    let mut b = Bundle::default();
    b.files.insert(
        "custody.toml".into(),
        include_str!("../policies/bench.toml").into(),
    );
    b.files
        .insert("keys/builder.pub".into(), builder.public_key().to_pem());
    b.files
        .insert("keys/release.pub".into(), release.public_key().to_pem());
    b.files
        .insert("keys/alice.pub".into(), approver.public_key().to_pem());
    b
}

fn stats(v: &mut [Duration]) -> serde_json::Value {
    v.sort_unstable();
    json!({"p50_ms": percentile_ms(v, 0.5), "p99_ms": percentile_ms(v, 0.99)})
}

/// Seeds `releases` releases of three artifacts each; returns their ids and digests.
async fn seed(
    app: &App<SqlStore>,
    releases: u64,
    now: Timestamp,
    approver: &PrivateKey,
) -> anyhow::Result<Vec<(String, Vec<Digest>)>> {
    let (builder, signer) = (
        PrivateKey::generate(Algorithm::Ed25519),
        PrivateKey::generate(Algorithm::EcdsaP256),
    );
    let bundle = ApplyPolicy {
        files: policy(&builder, &signer, approver).files,
    };
    let operator =
        Actor::new("sec-lead", now)?.authenticated_by(custody_model::Authentication::Local {
            user: "bench".into(),
        });
    app.apply_policy(&operator, &bundle).await?;
    let (ci, rita) = (Actor::new("ci-bot", now)?, Actor::new("rita", now)?);
    let mut out = Vec::new();
    for r in 0..releases {
        let mut artifacts = Vec::new();
        for a in 0..ARTIFACTS {
            let digest = sha256(format!("release {r} artifact {a}").as_bytes());
            let build = BuildFields {
                builder_id: "https://ci.example/builder/v1".into(),
                source_repo: "https://git.example/acme/shop".into(),
                source_commit: format!("{r:040x}"),
                parameters: [("artifact".to_owned(), a.to_string())].into(),
                environment: Default::default(),
                started: None,
                finished: None,
                nondeterministic_steps: Vec::new(),
                invocation_id: None,
            };
            let name = format!("svc-{a}");
            let registration =
                RegisterArtifact::signed_by(&builder, &name, digest.clone(), None, build)?;
            app.register_artifact(&ci, &registration).await?;
            let evidence = AttachEvidence::with_report(
                "test-results",
                "junit",
                br#"<testsuite name="svc" tests="1"><testcase name="works"/></testsuite>"#,
            );
            app.attest(&ci, &digest, &evidence, None).await?;
            artifacts.push(ManifestArtifact { name, digest });
        }
        let version = format!("1.{r}.0");
        let manifest =
            RecordRelease::signed("shop", &version, &artifacts, "rita", now, Some(&signer))?;
        app.record_release(&rita, &manifest, None).await?;
        out.push((
            format!("shop@{version}"),
            artifacts.into_iter().map(|a| a.digest).collect(),
        ));
    }
    Ok(out)
}

/// Runs `total` promotions of the seeded releases to `env` from `concurrency` tasks.
async fn promote_all(
    app: &Arc<App<SqlStore>>,
    releases: &Arc<Vec<(String, Vec<Digest>)>>,
    env: &'static str,
    total: u64,
    concurrency: u64,
    now: Timestamp,
) -> anyhow::Result<(f64, Vec<Duration>, u64)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (app, releases) = (app.clone(), releases.clone());
        let count = total / concurrency + u64::from(t < total % concurrency);
        tasks.push(tokio::spawn(async move {
            let actor = Actor::new("rita", now)?;
            let mut latencies = Vec::with_capacity(count as usize);
            let mut certified = 0;
            for i in 0..count {
                let (release, _) =
                    &releases[((t + i * concurrency) % releases.len() as u64) as usize];
                let t0 = Instant::now();
                let request = Promote {
                    release: release.parse()?,
                    environment: env.to_owned(),
                    break_glass: None,
                    statement: None,
                };
                let outcome = app.promote(&actor, &request, None).await?;
                latencies.push(t0.elapsed());
                certified += u64::from(outcome.decision.decision.allowed);
            }
            anyhow::Ok((latencies, certified))
        }));
    }
    let (mut all, mut certified) = (Vec::new(), 0);
    for t in tasks {
        let (l, c) = t.await??;
        all.extend(l);
        certified += c;
    }
    Ok((start.elapsed().as_secs_f64(), all, certified))
}

pub(crate) async fn run(args: PromotionsArgs) -> anyhow::Result<Outcome> {
    if args.releases == 0 || args.promotions == 0 || args.concurrency == 0 {
        bail!("--releases, --promotions and --concurrency must be at least 1");
    }
    let subject = subject(None, args.database_url.as_deref()).await?;
    let attestor = PrivateKey::generate(Algorithm::Ed25519);
    let app = Arc::new(App::new(subject.store, Box::new(attestor)));
    // Followed as a server follows it: the state cache serves the hot records only while
    // the ledger's tail is watched, and a server's gate and reviews read through it.
    let follower = tokio::spawn({
        let app = app.clone();
        async move { app.follow_ledger().await }
    });
    let now: Timestamp = crate::context::now()?;
    let seed_start = Instant::now();
    let alice = PrivateKey::generate(Algorithm::Ed25519);
    let releases = Arc::new(seed(&app, args.releases, now, &alice).await?);
    let seed_seconds = seed_start.elapsed().as_secs_f64();

    // Certifying promotions into one environment (they contend for its record) and
    // promotions that wait for an approval (they do not).
    let (secs, mut lat, certified) = promote_all(
        &app,
        &releases,
        "build",
        args.promotions,
        args.concurrency,
        now,
    )
    .await?;
    let (wsecs, mut wlat, _) = promote_all(
        &app,
        &releases,
        "test",
        args.promotions,
        args.concurrency,
        now,
    )
    .await?;

    // Approvals signed with a personal key: each checked (the DSSE signature against the
    // enrolled key, every bound field) and certifying its promotion.
    let mut signed = Vec::new();
    for (release, _) in releases.iter().take(100) {
        let request = Promote {
            release: release.parse()?,
            environment: "test".into(),
            break_glass: None,
            statement: None,
        };
        let waiting = app
            .promote(&Actor::new("rita", now)?, &request, None)
            .await?;
        let p = &waiting.promotion;
        let t0 = Instant::now();
        let predicate = ApprovalPredicate {
            approver: "alice".into(),
            verdict: Verdict::Approve,
            rationale: "bench".into(),
            risk: Some(Risk::Low),
            approves: Approved::promotion(p, &waiting.decision.decision.policy_digest),
            signed_at: now,
            expires: now.plus_seconds(3600),
        };
        let review = Review {
            rationale: "bench".into(),
            risk: Risk::Low,
            confidential: false,
            statement: Some(approval_statement::sign(&alice, &predicate)?),
        };
        let outcome = app
            .review(
                &Actor::new("alice", now)?,
                &p.id,
                Verdict::Approve,
                &review,
                None,
            )
            .await?;
        signed.push(t0.elapsed());
        if outcome.promotion.status != custody_model::PromotionStatus::Certified {
            bail!("a signed approval did not certify {}", p.id);
        }
    }

    let mut gate = Vec::with_capacity(args.verifies as usize);
    let mut head = Vec::with_capacity(args.verifies as usize);
    let mut allowed = 0;
    // Certify a known release last, so the gate has a known answer.
    let latest = &releases[releases.len() - 1];
    let request = Promote {
        release: latest.0.parse()?,
        environment: "build".into(),
        break_glass: None,
        statement: None,
    };
    app.promote(&Actor::new("rita", now)?, &request, None)
        .await?;
    let mut seed_rng = 0x2545_f491_4f6c_dd1du64;
    for i in 0..args.verifies {
        seed_rng ^= seed_rng << 13;
        seed_rng ^= seed_rng >> 7;
        seed_rng ^= seed_rng << 17;
        // Mostly the certified release's digests (allowed), some others (denied).
        let digest = if i % 4 == 0 {
            &releases[(seed_rng % releases.len() as u64) as usize].1[0]
        } else {
            &latest.1[(seed_rng % ARTIFACTS) as usize]
        };
        let t0 = Instant::now();
        allowed += u64::from(app.verify("build", digest, now).await?.allowed);
        gate.push(t0.elapsed());
        let t0 = Instant::now();
        app.log().checkpoint().await?;
        head.push(t0.elapsed());
    }
    let entries = app.log().size().await?;
    follower.abort();
    let _ = follower.await; // it held a share of the app
    let pages = if args.pages > 0 {
        let Ok(app) = Arc::try_unwrap(app) else {
            bail!("the app is still shared");
        };
        time_pages(app, &releases, args.pages, now).await?
    } else {
        json!(null)
    };
    let result = json!({
        "pages": pages,
        "releases": args.releases,
        "seed_seconds": seed_seconds,
        "concurrency": args.concurrency,
        "certifying_promotions": {"count": args.promotions, "certified": certified, "per_second": args.promotions as f64 / secs, "latency": stats(&mut lat)},
        "waiting_promotions": {"count": args.promotions, "per_second": args.promotions as f64 / wsecs, "latency": stats(&mut wlat)},
        "signed_approvals": {"count": signed.len(), "latency": stats(&mut signed)},
        "promotions_in_store": 2 * args.promotions,
        "ledger_entries": entries,
        "verify": {"count": args.verifies, "allowed": allowed, "latency": stats(&mut gate)},
        "baseline_head_read": stats(&mut head),
    });
    if args.json {
        print_json(&result);
    } else {
        if let Some(pages) = result["pages"].as_object() {
            for (page, t) in pages {
                print_line(&format!(
                    "page {page}: p50 {:.2} ms, p99 {:.2} ms (first view {:.2} ms)",
                    t["p50_ms"].as_f64().unwrap_or_default(),
                    t["p99_ms"].as_f64().unwrap_or_default(),
                    t["first_ms"].as_f64().unwrap_or_default()
                ));
            }
        }
        print_line(&format!(
            "seeded {} releases ({} artifacts each, signed provenance, evidence) in {seed_seconds:.1} s\n\
             certifying promotions: {} from {} requesters at {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({certified} certified)\n\
             waiting promotions:    {} at {:.0}/s, p50 {:.2} ms, p99 {:.2} ms\n\
             signed approvals (sign, check, certify): {} p50 {:.2} ms, p99 {:.2} ms\n\
             verify (deploy gate) with {} promotions and {entries} ledger entries in the store: p50 {:.3} ms, p99 {:.3} ms ({allowed} of {} allowed)\n\
             baseline head read: p50 {:.3} ms, p99 {:.3} ms",
            args.releases,
            ARTIFACTS,
            args.promotions,
            args.concurrency,
            args.promotions as f64 / secs,
            result["certifying_promotions"]["latency"]["p50_ms"]
                .as_f64()
                .unwrap_or_default(),
            result["certifying_promotions"]["latency"]["p99_ms"]
                .as_f64()
                .unwrap_or_default(),
            args.promotions,
            args.promotions as f64 / wsecs,
            result["waiting_promotions"]["latency"]["p50_ms"]
                .as_f64()
                .unwrap_or_default(),
            result["waiting_promotions"]["latency"]["p99_ms"]
                .as_f64()
                .unwrap_or_default(),
            result["signed_approvals"]["count"],
            result["signed_approvals"]["latency"]["p50_ms"]
                .as_f64()
                .unwrap_or_default(),
            result["signed_approvals"]["latency"]["p99_ms"]
                .as_f64()
                .unwrap_or_default(),
            2 * args.promotions,
            result["verify"]["latency"]["p50_ms"]
                .as_f64()
                .unwrap_or_default(),
            result["verify"]["latency"]["p99_ms"]
                .as_f64()
                .unwrap_or_default(),
            args.verifies,
            result["baseline_head_read"]["p50_ms"]
                .as_f64()
                .unwrap_or_default(),
            result["baseline_head_read"]["p99_ms"]
                .as_f64()
                .unwrap_or_default(),
        ));
    }
    Ok(Outcome::Ok)
}

/// Serves `app` on loopback and times each dashboard page `times` times, one request at a
/// time (so the latency is the server's work plus loopback HTTP, which /healthz measures).
async fn time_pages(
    app: App<SqlStore>,
    releases: &[(String, Vec<Digest>)],
    times: u64,
    now: Timestamp,
) -> anyhow::Result<serde_json::Value> {
    // The operator makes a token for alice and one of its own (the access review is the
    // auditors' and admins').
    let bench_token = |principal: &'static str| {
        let app = &app;
        async move {
            let request = CreateToken {
                principal: principal.into(),
                expires: "1h".into(),
                description: "bench".into(),
            };
            let (_, token) = app
                .create_token(&Actor::new("root", now)?, &request, None)
                .await?;
            anyhow::Ok(token.unwrap_or_default())
        }
    };
    let token = bench_token("alice").await?;
    let root = bench_token("root").await?;
    let waiting = app
        .board(now)
        .await?
        .into_iter()
        .find(|c| c.environment == "test")
        .and_then(|c| c.pending.first().map(|(id, _)| id.clone()))
        .unwrap_or_default();
    let certified = app
        .board(now)
        .await?
        .into_iter()
        .find(|c| c.environment == "build")
        .and_then(|c| c.certified.map(|c| c.promotion))
        .unwrap_or_default();
    let digest = releases[releases.len() - 1].1[0].to_string();
    let oidc = custody_server::oidc::Oidc::default();
    let state = custody_server::ServerState::new(app, oidc, Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custody_server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let client = custody_server::http_client::client(None)?;
    let pages = [
        ("/healthz (baseline)", "/healthz".to_owned()),
        ("/ (pipeline board)", "/".to_owned()),
        ("/promotions/ID (waiting)", format!("/promotions/{waiting}")),
        (
            "/promotions/ID (certified)",
            format!("/promotions/{certified}"),
        ),
        ("/history", "/history".to_owned()),
        ("/history?env=build", "/history?env=build".to_owned()),
        (
            "/history?principal=…&env=…&since=… (three terms and a time range)",
            format!(
                "/history?principal=requester-7&env=test&since={}",
                Timestamp::from_unix_seconds(now.unix_seconds() - 86_400)?
            ),
        ),
        (
            "/artifacts/DIGEST (lineage)",
            format!("/artifacts/{digest}"),
        ),
        ("/alerts", "/alerts".to_owned()),
        ("/keys", "/keys".to_owned()),
        ("/policy", "/policy".to_owned()),
        ("/access (access review)", "/access".to_owned()),
        ("/history.csv (export)", "/history.csv".to_owned()),
        ("/ledger", "/ledger".to_owned()),
        ("/charts", "/charts".to_owned()),
        ("/metrics", "/metrics".to_owned()),
    ];
    let mut out = serde_json::Map::new();
    for (name, path) in pages {
        let token = if path == "/access" { &root } else { &token };
        // The first view (after the server started, its followers may still be reading the
        // ledger), then `times` timed views.
        let mut latencies = Vec::with_capacity(times as usize + 1);
        for _ in 0..=times {
            let t0 = Instant::now();
            let response = client
                .get(format!("{base}{path}"))
                .header("cookie", format!("custody_token={token}"))
                .bearer_auth(token)
                .send()
                .await?;
            let status = response.status();
            response.bytes().await?;
            latencies.push(t0.elapsed());
            if !status.is_success() {
                bail!("{path} answered {status}");
            }
        }
        let first = latencies.remove(0);
        let mut timed = stats(&mut latencies);
        timed["first_ms"] = json!(first.as_secs_f64() * 1000.0);
        out.insert(name.into(), timed);
    }
    let _ = stop.send(());
    server.await??;
    Ok(serde_json::Value::Object(out))
}
