//! `custody release`: signed releases naming exact artifact digests, created and read.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use custody_app::attestations::ManifestArtifact;
use custody_app::{AppResult, RecordRelease, ReleaseView};
use serde_json::json;

use crate::Outcome;
use crate::context::{ReadTarget, Recording};
use crate::custody::Custody;
use crate::input::{load_signer, print_json, print_line, when};

#[derive(Debug, Subcommand)]
pub(crate) enum ReleaseCommand {
    /// Create a release: a manifest naming exact artifact digests, signed with a release
    /// key that signed none of their builds.
    ///
    /// Example: custody release create shop 1.4.2 --artifact shop=sha256:… --sign-key
    /// release.key --token $RITA_TOKEN
    Create(ReleaseCreateArgs),
    /// Show a release: its manifest digest and artifacts, who created it, the key whose
    /// signature counts as the gates judge it (trusted when the release was recorded, not
    /// revoked by then) and why any other does not, and each environment where it is (or
    /// was) certified, with why the deploy gate refuses it now where it does.
    ///
    /// Example: custody release show shop@1.4.2 --server https://custody.example --token
    /// $TOKEN
    Show(ReleaseShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReleaseShowArgs {
    /// The release, NAME@VERSION.
    release: String,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the release as JSON (its record, `signed_by`, `signature_refused` and
    /// `environments`, each with `gate_refuses` where the gate refuses it now).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReleaseCreateArgs {
    /// The release name.
    name: String,
    /// Its version (SemVer, if the policy says so).
    #[arg(value_name = "VERSION")]
    release_version: String,
    /// An artifact, NAME=sha256:HEX (repeat).
    #[arg(long = "artifact", value_name = "NAME=DIGEST", required = true)]
    artifacts: Vec<String>,
    /// The release signing key (PKCS#8 PEM file, or a `pkcs11:` URI naming a key in a
    /// token). Without it the release is recorded unsigned and no gate will pass it.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
    #[command(flatten)]
    recording: Recording,
}

pub(crate) fn run(command: ReleaseCommand) -> anyhow::Result<Outcome> {
    match command {
        ReleaseCommand::Create(a) => create(a),
        ReleaseCommand::Show(a) => crate::block_on(show(a)),
    }
}

fn create(a: ReleaseCreateArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let artifacts = a
            .artifacts
            .iter()
            .map(|s| {
                let (name, digest) = s
                    .split_once('=')
                    .with_context(|| format!("--artifact {s:?} is not NAME=sha256:HEX"))?;
                Ok(ManifestArtifact {
                    name: name.to_owned(),
                    digest: digest
                        .parse()
                        .with_context(|| format!("--artifact {s:?}"))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let key = a.sign_key.as_deref().map(load_signer).transpose()?;
        // The release key never leaves this machine: the manifest is signed here, whether
        // it is then recorded locally or through a server.
        let custody = Custody::open(&a.recording.target).await?;
        // The manifest names who made it as custody knows them (the token's holder, or the
        // operator), never a name the caller types.
        let by = custody.whoami().await?.principal;
        let manifest = custody_app::attestations::release_manifest(
            &a.name,
            &a.release_version,
            &artifacts,
            &by,
            crate::context::now()?,
        )?;
        let manifest = match &key {
            Some(k) => custody_app::attestations::sign_release(k, &manifest)?,
            None => custody_app::attestations::unsigned(&manifest),
        };
        let r = custody
            .record_release(&RecordRelease { manifest }, a.recording.key())
            .await?;
        // Of the release recorded (a retry's is the first call's, whatever this one signed).
        if r.signing_key.is_none() {
            let why = match &key {
                None => "no --sign-key: ".to_owned(),
                Some(k) => format!(
                    "key {} is no release key the policy in force trusts: ",
                    k.key_id()
                ),
            };
            eprintln!(
                "warning: {why}{} is recorded without the signature of a trusted release key, and cannot be promoted until one signs it\nhint: `custody key list` shows the release keys; sign with one of them",
                r.release
            );
        }
        if a.recording.json {
            print_json(&json!(r));
        } else {
            print_line(&format!("{} {}", r.release, r.digest));
        }
        Ok(Outcome::Ok)
    })
}

async fn show(a: ReleaseShowArgs) -> anyhow::Result<Outcome> {
    let release = Custody::reading(&a.target)
        .await?
        .release(&a.release)
        .await?;
    if a.json {
        print_json(&json!(release));
    } else {
        print_line(&describe(&release));
    }
    Ok(Outcome::Ok)
}

/// A release, for people.
fn describe(v: &ReleaseView) -> String {
    let r = &v.release;
    let mut lines = vec![
        format!("release {}  {}", r.id(), r.digest),
        format!("  created by {} at {}", r.created_by, when(r.created_at)),
        match &v.signed_by {
            Some(key) => format!("  signed by release key {key}"),
            None => "  no signature on its manifest counts: no gate passes it".into(),
        },
    ];
    lines.extend(
        v.signature_refused
            .iter()
            .map(|why| format!("  a signature does not count: {why}")),
    );
    lines.push("  artifacts:".into());
    lines.extend(
        r.artifacts
            .iter()
            .map(|a| format!("    {}  {}", a.name, a.digest)),
    );
    if v.environments.is_empty() {
        lines.push("  certified nowhere yet".into());
    }
    for e in &v.environments {
        let c = &e.certification;
        let how = if c.by_rollback {
            "by rollback"
        } else {
            "by promotion"
        };
        let now = if e.current {
            "certified now"
        } else {
            "certified before"
        };
        let failed = if e.failed {
            "; a rollout of it failed there"
        } else {
            ""
        };
        let refused: String = e
            .gate_refuses
            .iter()
            .map(|why| format!("\n    the deploy gate refuses it now: {why}"))
            .collect();
        lines.push(format!(
            "  {}: {now} ({how} {}, decision {}, at {}; first at {}){failed}{refused}",
            e.environment,
            c.promotion,
            c.decision,
            when(c.at),
            when(e.first_certified_at)
        ));
    }
    lines.join("\n")
}

impl Custody {
    /// Release `id` (`NAME@VERSION`) as it is read.
    pub(crate) async fn release(&self, id: &str) -> AppResult<ReleaseView> {
        match self {
            Custody::Local { app, .. } => app.release_view(id, crate::custody::now()?).await,
            Custody::Remote(c) => {
                let path = format!("/api/v1/releases/{}", crate::client::segment(id));
                c.get(&path, &()).await
            }
        }
    }
}
