//! `custody demo`: a realistic organisation seeded into an instance, so that its history,
//! its API and (later) its dashboard are worth looking at on first start.

use anyhow::bail;
use clap::Args;
use custody_app::approval_statement::{self, ApprovalPredicate, Approved};
use custody_app::attestations::{BuildFields, ManifestArtifact, sha256};
use custody_app::events::DeployStatus;
use custody_app::{
    Actor, App, ApplyPolicy, AttachEvidence, DeployReport, Promote, PromotionOutcome,
    RecordRelease, RegisterArtifact, Review,
};
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::{Digest, Risk, Timestamp, Verdict};
use custody_policy::Bundle;
use custody_store::SqlStore;
use serde_json::json;

use crate::Outcome;
use crate::context::InstanceArgs;
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Seed even though the instance already holds more than its starter policy.
    #[arg(long)]
    force: bool,
    /// Print what was seeded as JSON.
    #[arg(long)]
    json: bool,
}

const SERVICES: [&str; 3] = ["checkout", "payments", "catalog"];
/// The builder the demo policy trusts (as `policies/demo.toml` names it).
const BUILDER_ID: &str = "https://ci.acme.example/builder/v1";
/// The demo organisation's pipeline.
const DEMO_POLICY: &str = include_str!("../policies/demo.toml");

/// The demo's people with keys of their own: the approvers, who sign their reviews, and
/// olga, who signs when she breaks glass. Their private keys are left in the data
/// directory's `demo-keys/` (for `--sign-key`: this is a demo).
const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "olga"];

/// Where the demo leaves its people's keys, in the data directory.
const DEMO_KEYS: &str = "demo-keys";

/// The keys of the story: the builder's, the release signer's, and each approver's own.
struct Keys {
    builder: PrivateKey,
    release: PrivateKey,
    people: std::collections::BTreeMap<&'static str, PrivateKey>,
}

fn demo_policy(keys: &Keys, operator: &str) -> Bundle {
    let (builder, release) = (&keys.builder, &keys.release);
    let mut b = Bundle::default();
    b.files.insert(
        "custody.toml".into(),
        DEMO_POLICY.replace("OPERATOR", operator),
    );
    for (who, key) in &keys.people {
        b.files
            .insert(format!("keys/{who}.pub"), key.public_key().to_pem());
    }
    b.files
        .insert("keys/builder.pub".into(), builder.public_key().to_pem());
    b.files.insert(
        "keys/release-signer.pub".into(),
        release.public_key().to_pem(),
    );
    b
}

/// The clock of the story: days ago, in hours.
struct Story {
    start: i64,
}

impl Story {
    fn at(&self, hours: i64) -> anyhow::Result<Timestamp> {
        Ok(Timestamp::from_unix_seconds(self.start + hours * 3600)?)
    }

    fn actor(&self, who: &str, hours: i64) -> anyhow::Result<Actor> {
        Ok(Actor::new(who, self.at(hours)?)?)
    }

    /// Someone acting `minutes` into hour `hours` (reviews take a while, so the metrics of
    /// approval latency and time to promotion have something to show).
    fn actor_after(&self, who: &str, hours: i64, minutes: i64) -> anyhow::Result<Actor> {
        let at = Timestamp::from_unix_seconds(self.start + hours * 3600 + minutes * 60)?;
        Ok(Actor::new(who, at)?)
    }
}

struct Seeded {
    releases: Vec<String>,
    promotions: u64,
    rejected: u64,
    rollbacks: u64,
    /// The people's own keys, to leave in the data directory.
    people: std::collections::BTreeMap<&'static str, PrivateKey>,
}

/// Leaves the people's key pairs in `dir` (replacing those of an earlier demo, whose public
/// halves the policy in force no longer enrols).
fn leave_keys(dir: &std::path::Path, seeded: &Seeded) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (who, key) in &seeded.people {
        let (private, public) = (
            dir.join(format!("{who}.key")),
            dir.join(format!("{who}.pub")),
        );
        for old in [&private, &public] {
            if old.exists() {
                std::fs::remove_file(old)?;
            }
        }
        crate::cmd::key::write_key_pair(key, &private, &public)?;
    }
    Ok(())
}

async fn build(
    app: &App<SqlStore>,
    story: &Story,
    hours: i64,
    service: &str,
    version: &str,
    builder: &PrivateKey,
) -> anyhow::Result<Digest> {
    let digest = sha256(format!("{service} {version} image").as_bytes());
    let commit = sha256(format!("{service} {version} commit").as_bytes()).hex()[..40].to_owned();
    let ci = story.actor("ci-bot", hours)?;
    let build = BuildFields {
        builder_id: BUILDER_ID.into(),
        source_repo: format!("https://git.acme.example/acme/{service}"),
        source_commit: commit,
        parameters: [
            ("profile".to_owned(), "release".to_owned()),
            ("target".to_owned(), "linux/amd64".to_owned()),
        ]
        .into(),
        environment: [("runner".to_owned(), "ubuntu-24.04".to_owned())].into(),
        started: Some(story.at(hours)?),
        finished: Some(story.at(hours)?),
        nondeterministic_steps: vec!["embeds the build timestamp".into()],
        invocation_id: Some(format!("run-{service}-{version}")),
    };
    let registration =
        RegisterArtifact::signed_by(builder, service, digest.clone(), Some(48_000_000), build)?;
    app.register_artifact(&ci, &registration).await?;
    // Real reports, which custody reads: a digest alone would be evidence of nothing.
    for (kind, format, report) in reports(service, version) {
        let evidence = AttachEvidence::with_report(kind, format, report.as_bytes());
        app.attest(&ci, &digest, &evidence, None).await?;
    }
    Ok(digest)
}

/// The CI's reports about `service` at `version`: its tests (all passing), a static
/// analysis and a vulnerability scan with nothing found, and its SBOM.
fn reports(service: &str, version: &str) -> [(&'static str, &'static str, String); 4] {
    let cases: String = [
        "builds_a_cart",
        "checks_out",
        "refunds_in_full",
        "survives_a_retry",
    ]
    .iter()
    .map(|case| format!(r#"<testcase classname="{service}" name="{case}" time="0.02"/>"#))
    .collect();
    let junit = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><testsuite name="{service} {version}" tests="4" failures="0" errors="0" skipped="0">{cases}</testsuite>"#
    );
    let sarif = r#"{"version":"2.1.0","$schema":"https://json.schemastore.org/sarif-2.1.0.json","runs":[{"tool":{"driver":{"name":"semgrep","rules":[]}},"results":[]}]}"#;
    let scan = format!(
        r#"{{"SchemaVersion":2,"ArtifactName":"{service}:{version}","ArtifactType":"container_image","Results":[{{"Target":"{service}:{version} (debian 12.7)","Class":"os-pkgs","Type":"debian","Vulnerabilities":[]}}]}}"#
    );
    let sbom = format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"metadata":{{"component":{{"type":"application","name":"{service}","version":"{version}"}}}},"components":[{{"type":"library","name":"serde","version":"1.0.210","purl":"pkg:cargo/serde@1.0.210","licenses":[{{"expression":"MIT OR Apache-2.0"}}]}},{{"type":"library","name":"tokio","version":"1.41.0","purl":"pkg:cargo/tokio@1.41.0","licenses":[{{"license":{{"id":"MIT"}}}}]}}]}}"#
    );
    [
        ("test-results", "junit", junit),
        ("static-analysis", "sarif", sarif.to_owned()),
        ("vulnerability-scan", "trivy", scan),
        ("sbom", "cyclonedx", sbom),
    ]
}

/// `who` reviews the promotion of `outcome`, signing the review with their own key.
async fn review(
    app: &App<SqlStore>,
    keys: &Keys,
    who: &Actor,
    outcome: &PromotionOutcome,
    verdict: Verdict,
    why: &str,
) -> anyhow::Result<()> {
    let p = &outcome.promotion;
    let key = keys
        .people
        .get(who.principal.as_str())
        .ok_or_else(|| anyhow::anyhow!("{} has no key in the demo", who.principal))?;
    let predicate = ApprovalPredicate {
        approver: who.principal.clone(),
        verdict,
        rationale: why.into(),
        risk: Some(Risk::Low),
        approves: Approved::promotion(p, &outcome.decision.decision.policy_digest),
        signed_at: who.now,
        expires: who.now.plus_seconds(3600),
    };
    let review = Review {
        rationale: why.into(),
        risk: Risk::Low,
        confidential: false,
        statement: Some(approval_statement::sign(key, &predicate)?),
    };
    app.review(who, &p.id, verdict, &review, None).await?;
    Ok(())
}

async fn promote(
    app: &App<SqlStore>,
    who: &Actor,
    release: &str,
    environment: &str,
) -> anyhow::Result<PromotionOutcome> {
    let request = Promote {
        release: release.parse()?,
        environment: environment.into(),
        break_glass: None,
        statement: None,
    };
    Ok(app.promote(who, &request, None).await?)
}

async fn deploy(
    app: &App<SqlStore>,
    who: &Actor,
    environment: &str,
    digests: &[Digest],
    succeeded: bool,
) -> anyhow::Result<custody_app::DeployOutcome> {
    let report = DeployReport {
        environment: environment.into(),
        digests: digests.to_vec(),
        status: if succeeded {
            DeployStatus::Succeeded
        } else {
            DeployStatus::Failed
        },
    };
    Ok(app.deploy_report(who, &report, None).await?)
}

/// Builds shop's services at `version` and records the release, signed by rita with the
/// release key, at hour `hour`: its id and the artifacts' digests.
async fn record_shop(
    app: &App<SqlStore>,
    story: &Story,
    hour: i64,
    version: &str,
    keys: &Keys,
) -> anyhow::Result<(String, Vec<Digest>)> {
    let mut artifacts = Vec::new();
    for service in SERVICES {
        let digest = build(app, story, hour, service, version, &keys.builder).await?;
        artifacts.push(ManifestArtifact {
            name: service.into(),
            digest,
        });
    }
    let digests = artifacts.iter().map(|a| a.digest.clone()).collect();
    let manifest = RecordRelease::signed(
        "shop",
        version,
        &artifacts,
        "rita",
        story.at(hour)?,
        Some(&keys.release),
    )?;
    let release = app
        .record_release(&story.actor("rita", hour)?, &manifest, None)
        .await?
        .release;
    Ok((release, digests))
}

async fn seed(app: &App<SqlStore>, story: &Story) -> anyhow::Result<Seeded> {
    let keys = Keys {
        builder: PrivateKey::generate(Algorithm::Ed25519),
        release: PrivateKey::generate(Algorithm::EcdsaP256),
        people: PEOPLE
            .into_iter()
            .map(|who| (who, PrivateKey::generate(Algorithm::Ed25519)))
            .collect(),
    };
    // The operator seeding the demo puts its first real policy in force (a bootstrap: the
    // starter policy has no owners to approve it).
    let (operator, user) = crate::context::operator()?;
    let bootstrap = Actor::new(operator.as_str(), story.at(0)?)?
        .authenticated_by(custody_model::Authentication::Local { user });
    let policy = ApplyPolicy {
        files: demo_policy(&keys, &operator).files,
    };
    app.apply_policy(&bootstrap, &policy).await?;
    let mut seeded = Seeded {
        releases: Vec::new(),
        promotions: 0,
        rejected: 0,
        rollbacks: 0,
        people: Default::default(),
    };
    let mut hour = 1;
    // One product, "shop", released as its three services together.
    for (n, version) in ["1.0.0", "1.1.0", "1.2.0"].into_iter().enumerate() {
        let (release, digests) = record_shop(app, story, hour, version, &keys).await?;
        seeded.releases.push(release.clone());
        for env in ["build", "test"] {
            promote(app, &story.actor("rita", hour)?, &release, env).await?;
            seeded.promotions += 1;
        }
        hour += 1;
        let staging = promote(app, &story.actor("rita", hour)?, &release, "staging").await?;
        seeded.promotions += 1;
        let alice = story.actor_after("alice", hour, 35)?;
        review(
            app,
            &keys,
            &alice,
            &staging,
            Verdict::Approve,
            "tests and scans are clean",
        )
        .await?;
        deploy(
            app,
            &story.actor_after("argo", hour, 50)?,
            "staging",
            &digests,
            true,
        )
        .await?;
        hour += 2; // the soak time
        let prod = promote(app, &story.actor("rita", hour)?, &release, "production").await?;
        seeded.promotions += 1;
        let (bob, carol) = (
            story.actor_after("bob", hour, 45)?,
            story.actor_after("carol", hour, 95)?,
        );
        if n == 1 {
            // 1.1.0 is rejected for production.
            review(
                app,
                &keys,
                &carol,
                &prod,
                Verdict::Reject,
                "the payments freeze is on until the audit closes",
            )
            .await?;
            seeded.rejected += 1;
        } else {
            review(
                app,
                &keys,
                &bob,
                &prod,
                Verdict::Approve,
                "change reviewed, low blast radius",
            )
            .await?;
            review(
                app,
                &keys,
                &carol,
                &prod,
                Verdict::Approve,
                "canary looked healthy",
            )
            .await?;
            hour += 2;
            // 1.2.0's rollout fails: production rolls back to 1.0.0 by itself.
            let argo = story.actor("argo", hour)?;
            let report = deploy(app, &argo, "production", &digests, n != 2).await?;
            seeded.rollbacks += u64::from(report.rollback.is_some());
        }
        hour += 6;
    }
    // 1.3.0 waits in staging for an approver: the first thing to try in the dashboard.
    let (release, _) = record_shop(app, story, hour, "1.3.0", &keys).await?;
    seeded.releases.push(release.clone());
    for env in ["build", "test", "staging"] {
        promote(app, &story.actor("rita", hour)?, &release, env).await?;
        seeded.promotions += 1;
    }
    seeded.people = keys.people;
    Ok(seeded)
}

/// The demo's people and services with their roles (as `policies/demo.toml` grants them).
const CAST: [(&str, &[&str]); 11] = [
    ("alice", &["approver"]),
    ("bob", &["approver"]),
    ("carol", &["approver"]),
    ("rita", &["signer"]),
    ("ci-bot", &["builder"]),
    ("argo", &["deployer"]),
    ("olga", &["deployer:production (may break glass)"]),
    ("sec-lead", &["security"]),
    ("sasha", &["security"]),
    ("audrey", &["auditor"]),
    ("vic", &["viewer"]),
];

/// A token printed at the end of the demo, to sign in to the dashboard with.
struct SignIn {
    principal: String,
    roles: Vec<String>,
    token: String,
}

/// Tokens to sign in with, made by the operator as any admin would: the operator's own
/// (admin and approver; its holder made it, so approvals sent with it count), an
/// auditor's and a viewer's (to see what each role is shown).
async fn sign_in_tokens(app: &App<SqlStore>) -> anyhow::Result<Vec<SignIn>> {
    let (operator, user) = crate::context::operator()?;
    let now = crate::context::now()?;
    let me = Actor::new(operator.as_str(), now)?
        .authenticated_by(custody_model::Authentication::Local { user });
    let mut out = Vec::new();
    for (principal, roles) in [
        (
            operator.as_str(),
            vec!["admin".to_owned(), "approver".to_owned()],
        ),
        ("audrey", vec!["auditor".to_owned()]),
        ("vic", vec!["viewer".to_owned()]),
    ] {
        let request = custody_app::CreateToken {
            principal: principal.to_owned(),
            expires: "7d".into(),
            description: "custody demo: dashboard sign-in".into(),
        };
        let (_, token) = app.create_token(&me, &request, None).await?;
        let Some(token) = token else {
            bail!("the token for {principal} was not shown");
        };
        out.push(SignIn {
            principal: principal.to_owned(),
            roles,
            token,
        });
    }
    Ok(out)
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let dir = args.instance.dir();
        if dir.is_empty() {
            crate::cmd::init::create_instance(
                &dir,
                args.instance.database_url.as_deref(),
                None,
                Default::default(),
            )
            .await?;
        }
        let app = args.instance.app().await?;
        let size = app.log().size().await?;
        if size > 1 && !args.force {
            bail!(
                "{} already holds {size} ledger entries; the demo seeds a fresh instance\nhint: use another --data-dir, or --force to add the demo to this one",
                dir.root().display()
            );
        }
        // The story happened over the last few days, so that soak times and expiries are real.
        let now = crate::context::now()?.unix_seconds();
        let story = Story {
            start: now - 3 * 24 * 3600,
        };
        let seeded = seed(&app, &story).await?;
        let keys_dir = dir.root().join(DEMO_KEYS);
        leave_keys(&keys_dir, &seeded)?;
        let sign_in = sign_in_tokens(&app).await?;
        let entries = app.log().size().await?;
        let listen = dir.config()?.server.listen;
        let dashboard = format!("http://{listen}/login");
        if args.json {
            let tokens: Vec<_> = sign_in
                .iter()
                .map(|s| json!({"principal": s.principal, "roles": s.roles, "token": s.token}))
                .collect();
            let cast: Vec<_> = CAST
                .iter()
                .map(|(who, roles)| json!({"principal": who, "roles": roles}))
                .collect();
            print_json(&json!({
                "releases": seeded.releases, "promotions": seeded.promotions, "rejected": seeded.rejected,
                "rollbacks": seeded.rollbacks, "ledger_entries": entries,
                "dashboard": dashboard, "sign_in": tokens, "cast": cast,
                "people_keys": keys_dir,
            }));
        } else {
            let mut lines = vec![format!(
                "seeded the acme demo into {}: {} releases of shop (its services: {}), {} promotions ({} rejected), {} rollback; {entries} ledger entries\n\
                 try: custody history --data-dir {} --env production",
                dir.root().display(),
                seeded.releases.len(),
                SERVICES.join(", "),
                seeded.promotions,
                seeded.rejected,
                seeded.rollbacks,
                dir.root().display()
            )];
            lines.push(format!(
                "\nthe dashboard: with `custody serve` running, open {dashboard} (where config.toml's [server] listen says; or the address `serve --listen` printed) and paste a token:"
            ));
            for s in &sign_in {
                lines.push(format!(
                    "  {:12} {:32} {}",
                    s.principal,
                    s.roles.join(", "),
                    s.token
                ));
            }
            lines.push(
                "(each shown once; made by you, the operator, so your own approvals count)\n\ncast:"
                    .to_owned(),
            );
            for (who, roles) in CAST {
                lines.push(format!("  {who:12} {}", roles.join(", ")));
            }
            lines.push(format!(
                "\ntheir own keys, to sign approvals and break glass with (--sign-key): {}/{{{}}}.key",
                keys_dir.display(),
                PEOPLE.join(",")
            ));
            print_line(&lines.join("\n"));
        }
        Ok(Outcome::Ok)
    })
}
