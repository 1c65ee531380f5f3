//! `custody demo`: a realistic organisation seeded into an instance, so that its history,
//! its API and (later) its dashboard are worth looking at on first start.

use anyhow::bail;
use clap::Args;
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

fn demo_policy(builder: &PrivateKey, release: &PrivateKey) -> Bundle {
    let mut b = Bundle::default();
    b.files
        .insert("custody.toml".into(), DEMO_POLICY.to_owned());
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
    for (kind, format) in [
        ("test-results", "junit"),
        ("vulnerability-scan", "sarif"),
        ("sbom", "cyclonedx"),
    ] {
        let evidence = AttachEvidence {
            kind: kind.into(),
            format: format.into(),
            digest: sha256(format!("{service} {version} {kind}").as_bytes()),
        };
        app.attest(&ci, &digest, &evidence, None).await?;
    }
    Ok(digest)
}

async fn review(
    app: &App<SqlStore>,
    who: &Actor,
    promotion: &str,
    verdict: Verdict,
    why: &str,
) -> anyhow::Result<()> {
    let review = Review {
        rationale: why.into(),
        risk: Risk::Low,
        confidential: false,
    };
    app.review(who, promotion, verdict, &review, None).await?;
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

async fn seed(app: &App<SqlStore>, story: &Story) -> anyhow::Result<Seeded> {
    let (builder, signer) = (
        PrivateKey::generate(Algorithm::Ed25519),
        PrivateKey::generate(Algorithm::EcdsaP256),
    );
    let policy = ApplyPolicy {
        files: demo_policy(&builder, &signer).files,
    };
    app.apply_policy(&story.actor("sec-lead", 0)?, &policy)
        .await?;
    let mut seeded = Seeded {
        releases: Vec::new(),
        promotions: 0,
        rejected: 0,
        rollbacks: 0,
    };
    let mut hour = 1;
    // One product, "shop", released as its three services together.
    for (n, version) in ["1.0.0", "1.1.0", "1.2.0"].into_iter().enumerate() {
        let mut artifacts = Vec::new();
        for service in SERVICES {
            let digest = build(app, story, hour, service, version, &builder).await?;
            artifacts.push(ManifestArtifact {
                name: service.into(),
                digest,
            });
        }
        let digests: Vec<Digest> = artifacts.iter().map(|a| a.digest.clone()).collect();
        let manifest = RecordRelease::signed(
            "shop",
            version,
            &artifacts,
            "rita",
            story.at(hour)?,
            Some(&signer),
        )?;
        let release = app
            .record_release(&story.actor("rita", hour)?, &manifest, None)
            .await?
            .release;
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
            &alice,
            &staging.promotion.id,
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
                &carol,
                &prod.promotion.id,
                Verdict::Reject,
                "the payments freeze is on until the audit closes",
            )
            .await?;
            seeded.rejected += 1;
        } else {
            review(
                app,
                &bob,
                &prod.promotion.id,
                Verdict::Approve,
                "change reviewed, low blast radius",
            )
            .await?;
            review(
                app,
                &carol,
                &prod.promotion.id,
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
    Ok(seeded)
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let dir = args.instance.dir();
        if dir.is_empty() {
            crate::cmd::init::create_instance(&dir, args.instance.database_url.as_deref(), None)
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
        let entries = app.log().size().await?;
        if args.json {
            print_json(&json!({
                "releases": seeded.releases, "promotions": seeded.promotions, "rejected": seeded.rejected,
                "rollbacks": seeded.rollbacks, "ledger_entries": entries,
            }));
        } else {
            print_line(&format!(
                "seeded the acme demo into {}: {} releases of shop ({}), {} promotions ({} rejected), {} rollback; {entries} ledger entries\n\
                 try: custody history --data-dir {} --env production",
                dir.root().display(),
                seeded.releases.len(),
                SERVICES.join(", "),
                seeded.promotions,
                seeded.rejected,
                seeded.rollbacks,
                dir.root().display()
            ));
        }
        Ok(Outcome::Ok)
    })
}
