//! `custody artifact`, `custody attest`: what releases are made of.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use custody_app::attestations::BuildFields;
use custody_app::{AttachEvidence, RegisterArtifact};
use custody_crypto::dsse::Envelope;
use custody_model::{Digest, DigestAlgorithm, Timestamp};
use serde_json::json;

use crate::Outcome;
use crate::context::{Acting, Target};
use crate::custody::Custody;
use crate::input::{MAX_DOCUMENT, load_signer, print_json, print_line, read_limited};

#[derive(Debug, Subcommand)]
pub(crate) enum ArtifactCommand {
    /// Register an artifact by name and digest (or a file to hash), with its build and
    /// provenance.
    ///
    /// Provenance made elsewhere (--provenance ENVELOPE) must verify with a builder key the
    /// policy trusts and be about this digest. Or declare the build (--source-repo,
    /// --commit, --builder-id, --param …) and sign SLSA v1 provenance with --builder-key.
    ///
    /// Example: custody artifact register --name shop --file shop.tar --source-repo
    /// https://git.example/acme/shop --commit 4f2c… --builder-id https://ci.example/b
    /// --builder-key builder.key --token $CI_TOKEN
    Register(Box<RegisterArgs>),
    /// Compare two builds side by side: every field of their SLSA provenance (source,
    /// parameters, internal parameters, resolved dependencies, non-deterministic steps,
    /// byproducts, run metadata), marking where they differ. Use it on a provenance
    /// discrepancy (the same source and parameters gave two digests) to see why.
    ///
    /// Example: custody artifact compare sha256:4f2c… sha256:9ab1… --server URL --token $T
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// One build's digest.
    a: Digest,
    /// The other build's digest.
    b: Digest,
    /// Show only the fields that differ.
    #[arg(long)]
    differences: bool,
    #[command(flatten)]
    target: crate::context::ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    /// The artifact's name.
    #[arg(long)]
    name: String,
    /// Hash this file for the digest.
    #[arg(long, conflicts_with = "digest")]
    file: Option<PathBuf>,
    /// The digest (sha256:HEX), when there is no file here.
    #[arg(long)]
    digest: Option<Digest>,
    /// A DSSE envelope of SLSA v1 provenance made elsewhere.
    #[arg(long, value_name = "ENVELOPE")]
    provenance: Option<PathBuf>,
    /// Sign provenance from the declared build with this builder key (PKCS#8 PEM file, or a
    /// `pkcs11:` URI naming a key in a token).
    #[arg(long, value_name = "KEY")]
    builder_key: Option<PathBuf>,
    /// Source repository URL of the build.
    #[arg(long, requires = "commit")]
    source_repo: Option<String>,
    /// Source commit of the build.
    #[arg(long)]
    commit: Option<String>,
    /// The builder's SLSA id.
    #[arg(long)]
    builder_id: Option<String>,
    /// A build parameter, NAME=VALUE (repeat).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A fact about the build environment, NAME=VALUE (repeat).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    environment: Vec<String>,
    /// When the build started (RFC 3339).
    #[arg(long)]
    started: Option<Timestamp>,
    /// When the build finished (RFC 3339).
    #[arg(long)]
    finished: Option<Timestamp>,
    /// A step the build declares non-deterministic (repeat).
    #[arg(long = "nondeterministic", value_name = "STEP")]
    nondeterministic: Vec<String>,
    /// The build's invocation id (CI run id).
    #[arg(long)]
    invocation_id: Option<String>,
    #[command(flatten)]
    acting: Acting,
}

fn pairs(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("{what} {p:?} is not NAME=VALUE"))
        })
        .collect()
}

pub(crate) fn artifact(command: ArtifactCommand) -> anyhow::Result<Outcome> {
    let a = match command {
        ArtifactCommand::Register(a) => a,
        ArtifactCommand::Compare(a) => return crate::block_on(compare(a)),
    };
    crate::block_on(async move {
        let (digest, size) = match (&a.file, &a.digest) {
            (Some(path), _) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let len = file.metadata()?.len();
                let bar = crate::progress::bytes_bar(len, 64 << 20, &path.display().to_string());
                let d =
                    custody_crypto::hashing::digest_reader(file, DigestAlgorithm::Sha256, |n| {
                        bar.set_position(n)
                    })
                    .with_context(|| format!("hashing {}", path.display()))?;
                bar.finish_and_clear();
                (d, Some(len))
            }
            (None, Some(d)) => (d.clone(), None),
            (None, None) => bail!("give --file PATH to hash, or --digest sha256:HEX"),
        };
        let build = match (&a.source_repo, &a.commit, &a.builder_id) {
            (Some(repo), Some(commit), Some(builder)) => Some(BuildFields {
                builder_id: builder.clone(),
                source_repo: repo.clone(),
                source_commit: commit.clone(),
                parameters: pairs(&a.params, "--param")?,
                environment: pairs(&a.environment, "--env")?,
                started: a.started,
                finished: a.finished,
                nondeterministic_steps: a.nondeterministic.clone(),
                invocation_id: a.invocation_id.clone(),
            }),
            (None, None, None) => None,
            _ => bail!("a declared build needs --source-repo, --commit and --builder-id together"),
        };
        let provenance = match &a.provenance {
            Some(path) => Some(
                Envelope::from_json(&read_limited(path, MAX_DOCUMENT, "provenance envelope")?)
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
            None => None,
        };
        let key = a.builder_key.as_deref().map(load_signer).transpose()?;
        // The builder's key never leaves this machine: provenance is signed here, whether
        // the artifact is then registered locally or through a server.
        let provenance = match (&key, &build, provenance) {
            (Some(k), Some(b), None) => Some(custody_app::attestations::sign_provenance(
                k, &a.name, &digest, b,
            )?),
            (Some(_), None, None) => bail!(
                "signing provenance needs the build: --source-repo, --commit and --builder-id"
            ),
            (Some(_), _, Some(_)) => bail!("give either --provenance or --builder-key, not both"),
            (None, _, p) => p,
        };
        let request = RegisterArtifact {
            name: a.name.clone(),
            digest,
            size,
            build,
            provenance,
        };
        let custody = Custody::open(&a.acting.target).await?;
        let r = custody.register_artifact(&request).await?;
        {
            if a.acting.json {
                print_json(&json!(r));
            } else {
                print_line(&r.digest.to_string());
                if !r.created {
                    eprintln!("already registered as {}; nothing recorded", a.name);
                } else if r.agreeing.len() > 1 {
                    eprintln!(
                        "recorded as a rebuild: {} builders agree on this digest ({})",
                        r.agreeing.len(),
                        r.agreeing.join(", ")
                    );
                }
                if !r.discrepancy.is_empty() {
                    eprintln!(
                        "warning: provenance discrepancy: the same source and parameters also built {} as {}",
                        a.name,
                        r.discrepancy
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        Ok(Outcome::Ok)
    })
}

/// Evidence formats and the evidence type each provides.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EvidenceFormat {
    /// JUnit XML test results → test-results.
    Junit,
    /// SARIF 2.1.0 static analysis → static-analysis.
    Sarif,
    /// OSV JSON → vulnerability-scan.
    Osv,
    /// Grype JSON → vulnerability-scan.
    Grype,
    /// Trivy JSON → vulnerability-scan.
    Trivy,
    /// CycloneDX JSON SBOM → sbom.
    Cyclonedx,
    /// SPDX JSON SBOM → sbom.
    Spdx,
    /// A DSSE envelope made elsewhere, signed by a key the policy trusts → attestation.
    Dsse,
}

impl EvidenceFormat {
    fn kind(self) -> &'static str {
        match self {
            EvidenceFormat::Junit => "test-results",
            EvidenceFormat::Sarif => "static-analysis",
            EvidenceFormat::Osv | EvidenceFormat::Grype | EvidenceFormat::Trivy => {
                "vulnerability-scan"
            }
            EvidenceFormat::Cyclonedx | EvidenceFormat::Spdx => "sbom",
            EvidenceFormat::Dsse => "attestation",
        }
    }

    fn name(self) -> &'static str {
        match self {
            EvidenceFormat::Junit => "junit",
            EvidenceFormat::Sarif => "sarif",
            EvidenceFormat::Osv => "osv",
            EvidenceFormat::Grype => "grype",
            EvidenceFormat::Trivy => "trivy",
            EvidenceFormat::Cyclonedx => "cyclonedx",
            EvidenceFormat::Spdx => "spdx",
            EvidenceFormat::Dsse => "dsse",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    /// The artifact the evidence is about.
    #[arg(long)]
    artifact: Digest,
    /// The evidence's format.
    #[arg(long = "type", value_enum)]
    format: EvidenceFormat,
    /// Record it as this evidence type instead of the format's (e.g. code-review; a
    /// CycloneDX scan result listing `vulnerabilities`: --type cyclonedx --kind
    /// vulnerability-scan).
    #[arg(long)]
    kind: Option<String>,
    /// Makes a retry return the first result instead of attaching the evidence twice.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// The evidence file.
    file: PathBuf,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The report's digest (sha256:HEX).
    digest: Digest,
    /// Write it to this file (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    target: crate::context::ReadTarget,
}

pub(crate) fn report(a: ReportArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let bytes = Custody::reading(&a.target).await?.report(&a.digest).await?;
        // What the store (or the server) gave back must be what the ledger names.
        let got = custody_app::attestations::sha256(&bytes);
        if got != a.digest {
            bail!(
                "the report answered for {} hashes to {got}: the store does not hold what the ledger names; run `custody log check`",
                a.digest
            );
        }
        match &a.out {
            Some(path) => {
                std::fs::write(path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!(
                    "wrote {} bytes to {} ({})",
                    bytes.len(),
                    path.display(),
                    a.digest
                );
            }
            None => {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                // A reader that stops early (`| head`) ends the command quietly.
                if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(Outcome::Ok)
    })
}

impl Custody {
    pub(crate) async fn report(&self, digest: &Digest) -> custody_app::AppResult<Vec<u8>> {
        match self {
            Custody::Local { app, .. } => Ok(app.report(digest).await?.to_vec()),
            Custody::Remote(c) => {
                let path = format!(
                    "/api/v1/reports/{}",
                    crate::client::segment(&digest.to_string())
                );
                let (status, bytes) = c
                    .exchange(reqwest::Method::GET, &path, &(), None::<&()>, None)
                    .await?;
                match status.is_success() {
                    true => Ok(bytes),
                    false => Err(crate::client::error_of(status, &bytes)),
                }
            }
        }
    }
}

pub(crate) fn attest(a: AttestArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let bytes = read_limited(&a.file, MAX_DOCUMENT, "evidence file")?;
        // custody reads the report itself (here, or on the server it is sent to) and
        // refuses it, naming the line or JSON path, when it is not what --type says.
        let kind = a.kind.clone().unwrap_or_else(|| a.format.kind().to_owned());
        let request = AttachEvidence::with_report(&kind, a.format.name(), &bytes);
        let custody = Custody::open(&a.target).await?;
        let reading = crate::progress::spinner(
            bytes.len() as u64,
            8 << 20,
            &format!(
                "custody reads the {} MB {} report, keeps it and signs what it says",
                bytes.len() >> 20,
                a.format.name()
            ),
        );
        let index = custody
            .attest(&a.artifact, &request, a.idempotency_key.as_deref())
            .await;
        reading.finish_and_clear();
        let index = index?;
        print_line(&format!(
            "{kind} evidence recorded for {} (ledger index {index})",
            a.artifact
        ));
        Ok(Outcome::Ok)
    })
}

async fn compare(a: CompareArgs) -> anyhow::Result<Outcome> {
    let mut c = Custody::reading(&a.target)
        .await?
        .compare_builds(&a.a, &a.b)
        .await?;
    if a.differences {
        c.fields.retain(|f| !f.same);
    }
    if a.json {
        print_json(&json!(c));
        return Ok(Outcome::Ok);
    }
    let show = |v: &Option<serde_json::Value>| match v {
        None => "(not said)".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let mut lines = Vec::new();
    for (i, b) in c.builds.iter().enumerate() {
        lines.push(format!(
            "{}: {} {} built by {}, registered by {} at {}",
            ["A", "B"][i],
            b.name,
            b.digest,
            b.builder_id
                .as_deref()
                .unwrap_or("(no verified provenance)"),
            b.registered_by,
            crate::input::when(b.registered_at)
        ));
    }
    lines.push(match c.same_source {
        true => "same source and parameters: any difference below is in how they were built".into(),
        false => "built from different source or parameters".into(),
    });
    for f in &c.fields {
        match f.same {
            true => lines.push(format!("  = {}: {}", f.field, show(&f.values[0]))),
            false => {
                lines.push(format!("  ≠ {}", f.field));
                lines.push(format!("      A: {}", show(&f.values[0])));
                lines.push(format!("      B: {}", show(&f.values[1])));
            }
        }
    }
    if c.fields.is_empty() {
        lines.push("  (no fields differ)".into());
    }
    print_line(&lines.join("\n"));
    Ok(Outcome::Ok)
}

impl Custody {
    pub(crate) async fn compare_builds(
        &self,
        a: &Digest,
        b: &Digest,
    ) -> custody_app::AppResult<custody_app::BuildComparison> {
        match self {
            Custody::Local { app, .. } => app.compare_builds(a, b).await,
            Custody::Remote(c) => {
                let path = format!(
                    "/api/v1/artifacts/{}/compare/{}",
                    crate::client::segment(&a.to_string()),
                    crate::client::segment(&b.to_string())
                );
                c.get(&path, &()).await
            }
        }
    }
}
