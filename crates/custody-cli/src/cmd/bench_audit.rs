//! `custody bench audit`: offline verification of a large bundle, against the Python
//! verifier of the test suite on the same bundle, in the same run.
//!
//! Two bundles of the same length are made in a temporary directory: one whose entries
//! carry no envelope (the cost of hashing and placing entries: checkpoints, leaf hashes,
//! the tree, parsing events), and one where every `--signed-every`th entry registers an
//! artifact with SLSA provenance signed by a builder key (the cost of envelopes against
//! the key history). Both are complete bundles of a real log's shape: a policy version
//! first, checkpoints spread over the log with consistency proofs between them.
//!
//! Three baselines are measured in the same run on the same files: one SHA-256 pass over
//! the bundle's bytes on one core (what merely reading and hashing it costs: verification
//! hashes every leaf once and walks the tree, so it should stay within a small factor of
//! this), the Python verifier when `--python` is given, and strict Ed25519 verification
//! alone (the signatures of the signed bundle's envelopes, verified bare on every core: the
//! ceiling for signatures per second, since each is checked on its own, never batched; and
//! with the Python time, the ceiling of the factor over Python: the signatures' time alone).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use custody_app::attestations::{BuildFields, sha256, sign_provenance};
use custody_app::audit::{BundleWriter, Confidential, Scope, format};
use custody_app::events::{self, Event, EventBody};
use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_ledger::{Checkpoint, MemoryTree, leaf_hash, prove_consistency};
use custody_model::Timestamp;
use rayon::prelude::*;
use serde_json::json;

use crate::Outcome;
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Ledger entries in each bundle.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// In the signed bundle, every Nth entry carries a signed provenance envelope.
    #[arg(long, default_value_t = 4)]
    signed_every: u64,
    /// The Python interpreter for the baseline (with rfc8785 and cryptography); without
    /// it, no baseline is measured.
    #[arg(long, value_name = "PYTHON")]
    python: Option<PathBuf>,
    /// The Python verifier (the test suite's tests/interop/audit_verify.py).
    #[arg(long, value_name = "SCRIPT", requires = "python")]
    python_verifier: Option<PathBuf>,
    /// Make the bundles in this directory and keep them (e.g. to profile `custody audit
    /// verify` on them); by default they are made in a temporary directory and removed.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What the issue asks of verification (entries hashed and signatures verified per
/// second on two cores, and the factor over the Python verifier).
const TARGET_ENTRIES_PER_SECOND: f64 = 200_000.0;
const TARGET_SIGNATURES_PER_SECOND: f64 = 40_000.0;
const TARGET_TIMES_PYTHON: f64 = 10.0;

const ORIGIN: &str = "bench.custody/log";

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<Outcome> {
    let temp = tempfile::Builder::new()
        .prefix(".custody-bench-audit-")
        .tempdir_in(".")
        .context("creating a temporary directory here")?;
    let dir = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => temp.path().to_owned(),
    };
    let log = PrivateKey::generate(Algorithm::Ed25519);
    let log_pub = dir.join("log.pub");
    std::fs::write(&log_pub, log.public_key().to_pem())?;
    let signer = NoteSigner::new(ORIGIN, Box::new(log))?;
    let mut results = Vec::new();
    for (name, every) in [("hashing", 0), ("signed", args.signed_every.max(1))] {
        let path = dir.join(format!("{name}.bundle"));
        let made = Instant::now();
        let (envelopes, signed) = make_bundle(&path, &signer, args.entries, every)?;
        let made = made.elapsed();
        let started = Instant::now();
        let key = custody_crypto::PublicKey::from_pem(&std::fs::read_to_string(&log_pub)?)?;
        let bar = crate::progress::bar(args.entries, 0, &format!("verifying the {name} bundle"));
        let report = custody_app::audit::verify_bundle(
            std::io::BufReader::new(std::fs::File::open(&path)?),
            &key,
            &mut |p| bar.set_position(p.entries),
        )?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.ok(),
            "the {name} bundle did not verify: {:?}",
            report.failures.first()
        );
        let signatures = report.checked.signatures();
        let sha256 = sha256_seconds(&path)?;
        let python = match (&args.python, &args.python_verifier) {
            (Some(py), Some(script)) => Some(python_seconds(py, script, &path, &log_pub)?),
            _ => None,
        };
        let bare = signed.map(|s| s.per_second()).transpose()?;
        results.push(json!({
            "bundle": name,
            "entries": report.checked.entries,
            "envelopes": envelopes,
            "signatures": signatures,
            "bytes": std::fs::metadata(&path)?.len(),
            "made_seconds": made.as_secs_f64(),
            "seconds": seconds,
            "entries_per_second": report.checked.entries as f64 / seconds,
            "signatures_per_second": signatures as f64 / seconds,
            "sha256_seconds": sha256,
            "times_sha256": seconds / sha256,
            "python_seconds": python,
            "times_python": python.map(|p| p / seconds),
            "bare_ed25519_per_second": bare,
            "of_bare_ed25519": bare.map(|b| signatures as f64 / seconds / b),
            // The signatures alone, verified bare on every core: no verifier that checks
            // each one on its own finishes sooner, so Python's time over this is the most
            // any could reach over it on this machine.
            "signatures_alone_seconds": bare.map(|b| signatures as f64 / b),
            "ceiling_times_python": python.zip(bare).map(|(p, b)| p / (signatures as f64 / b)),
        }));
    }
    if args.json {
        print_json(&json!({
            "threads": rayon::current_num_threads(),
            "targets": {
                "entries_per_second": TARGET_ENTRIES_PER_SECOND,
                "signatures_per_second": TARGET_SIGNATURES_PER_SECOND,
                "times_python": TARGET_TIMES_PYTHON,
            },
            "results": results,
        }));
    } else {
        for r in &results {
            print_line(&human(r));
        }
    }
    Ok(Outcome::Ok)
}

/// One bundle's result for a person: the numbers the issue names, each beside its target.
fn human(r: &serde_json::Value) -> String {
    let f = |k: &str| r[k].as_f64().unwrap_or_default();
    let mut out = format!(
        "{} bundle: {} entries, {} signatures, {:.0} MB, verified in {:.2} s on {} threads\n",
        r["bundle"].as_str().unwrap_or_default(),
        r["entries"],
        r["signatures"],
        f("bytes") / 1e6,
        f("seconds"),
        rayon::current_num_threads()
    );
    out.push_str(&format!(
        "  entries/s            {:>10.0}  (target {TARGET_ENTRIES_PER_SECOND:.0})\n",
        f("entries_per_second")
    ));
    out.push_str(&format!(
        "  signatures/s         {:>10.0}  (target {TARGET_SIGNATURES_PER_SECOND:.0})\n",
        f("signatures_per_second")
    ));
    if let Some(bare) = r["bare_ed25519_per_second"].as_f64() {
        out.push_str(&format!(
            "  bare strict Ed25519  {bare:>10.0}  signatures/s on every core, alone (verification reaches {:.0}% of it)\n",
            100.0 * f("of_bare_ed25519")
        ));
    }
    out.push_str(&format!(
        "  vs one SHA-256 pass  {:>10.1}x slower ({:.2} s)\n",
        f("times_sha256"),
        f("sha256_seconds")
    ));
    match r["python_seconds"].as_f64() {
        Some(p) => {
            out.push_str(&format!(
                "  vs Python verifier   {:>10.1}x faster ({p:.2} s; target {TARGET_TIMES_PYTHON:.0}x)",
                f("times_python")
            ));
            if let Some(ceiling) = r["ceiling_times_python"].as_f64() {
                out.push_str(&format!(
                    "\n  signatures alone     {:>10.2} s  on every core: no verifier is more than {ceiling:.1}x Python here",
                    f("signatures_alone_seconds")
                ));
            }
        }
        None => out
            .push_str("  vs Python verifier   (not measured: pass --python and --python-verifier)"),
    }
    out
}

/// Signatures of the signed bundle's envelopes, kept to time strict verification alone.
struct Signed {
    key: custody_crypto::PublicKey,
    /// (PAE message, signature)
    signatures: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Signed {
    /// Strict verifications per second on every core (each signature verified alone, as
    /// the verifier does).
    fn per_second(&self) -> anyhow::Result<f64> {
        use custody_crypto::Verifier as _;
        let started = Instant::now();
        self.signatures
            .par_iter()
            .try_for_each(|(message, sig)| self.key.verify(message, sig))?;
        Ok(self.signatures.len() as f64 / started.elapsed().as_secs_f64())
    }
}

/// Times one SHA-256 pass over `bundle`'s bytes, streamed from the file as `custody
/// digest` does (the baseline: reading and hashing the bytes once, on one core).
fn sha256_seconds(bundle: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let digest = custody_crypto::hashing::digest_reader(
        std::fs::File::open(bundle)?,
        custody_model::DigestAlgorithm::Sha256,
        |_| {},
    )?;
    std::hint::black_box(digest);
    Ok(started.elapsed().as_secs_f64())
}

/// Times the Python verifier on `bundle`; it must agree that the bundle verifies.
fn python_seconds(
    python: &Path,
    script: &Path,
    bundle: &Path,
    log_pub: &Path,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(bundle)
        .arg(log_pub)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "the Python verifier did not pass the bundle: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(seconds)
}

/// How many envelopes' signatures the bare baseline verifies (enough for a steady rate).
const BARE_SIGNATURES: usize = 20_000;

/// Writes a complete bundle of `entries` entries to `path`: a policy version trusting a
/// builder key, then artifacts (every `every`th with signed provenance; 0: none) and
/// evidence about them. Returns the number of envelopes, and when there are some, the
/// first [`BARE_SIGNATURES`] of their signatures.
fn make_bundle(
    path: &Path,
    log: &NoteSigner,
    entries: u64,
    every: u64,
) -> anyhow::Result<(u64, Option<Signed>)> {
    let builder = PrivateKey::generate(Algorithm::Ed25519);
    let at: Timestamp = "2026-11-01T00:00:00Z".parse()?;
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "custody.toml".to_owned(),
        "version = 1\n[[builder]]\nid = \"https://ci.bench/b\"\nkey = \"keys/builder.pub\"\nsource_repos = [\"https://git.bench/*\"]\n[[environment]]\nname = \"build\"\n".to_owned(),
    );
    files.insert("keys/builder.pub".to_owned(), builder.public_key().to_pem());
    let policy = custody_policy::Bundle {
        files: files.clone(),
    }
    .digest();
    let first = Event {
        at,
        actor: "bench".into(),
        auth: None,
        body: EventBody::PolicyApplied(events::PolicyApplied {
            policy,
            previous: None,
            files,
            proposal: None,
            proposed_by: None,
            approvers: Vec::new(),
            changes: Vec::new(),
            bootstrap: true,
        }),
    };
    let mut leaves = vec![first.to_leaf()?.into_bytes()];
    let rest: Vec<anyhow::Result<Vec<u8>>> = (1..entries)
        .into_par_iter()
        .map(|i| {
            let digest = sha256(format!("artifact {}", i / every.max(1)).as_bytes());
            let body = if every > 0 && i % every == 0 {
                let build = BuildFields {
                    builder_id: "https://ci.bench/b".into(),
                    source_repo: "https://git.bench/app".into(),
                    source_commit: format!("{i:040x}"),
                    parameters: Default::default(),
                    environment: Default::default(),
                    started: None,
                    finished: None,
                    nondeterministic_steps: vec![],
                    invocation_id: None,
                };
                EventBody::ArtifactRegistered(events::ArtifactRegistered {
                    artifact: events::ArtifactName {
                        name: "app".into(),
                        digest: digest.clone(),
                        size: None,
                    },
                    artifacts: vec![digest.clone()],
                    provenance: Some(sign_provenance(&builder, "app", &digest, &build)?),
                    build: Some(build),
                    builder_id: Some("https://ci.bench/b".into()),
                    source: Some(events::SourceRef {
                        repository: "https://git.bench/app".into(),
                        commit: format!("{i:040x}"),
                    }),
                    keys: vec![events::KeyUse::of(builder.public_key())],
                })
            } else {
                EventBody::EvidenceAttached(events::EvidenceAttached {
                    artifacts: vec![digest],
                    kind: "test-results".into(),
                    format: "junit".into(),
                    evidence: sha256(format!("report {i}").as_bytes()),
                    report: None,
                    keys: Vec::new(),
                    statement: None,
                })
            };
            let event = Event {
                at,
                actor: "ci-bot".into(),
                auth: None,
                body,
            };
            Ok(event.to_leaf()?.into_bytes())
        })
        .collect();
    for leaf in rest {
        leaves.push(leaf?);
    }
    let signatures: Vec<(Vec<u8>, Vec<u8>)> = leaves
        .iter()
        .filter_map(|leaf| match Event::from_leaf(leaf) {
            Ok(Event {
                body:
                    EventBody::ArtifactRegistered(events::ArtifactRegistered {
                        provenance: Some(envelope),
                        ..
                    }),
                ..
            }) => Some(envelope),
            _ => None,
        })
        .take(BARE_SIGNATURES)
        .map(|envelope| {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
            let payload = b64.decode(&envelope.payload)?;
            let sig = envelope
                .signatures
                .first()
                .context("an unsigned envelope")?;
            let sig = b64.decode(&sig.sig)?;
            Ok((
                custody_crypto::dsse::pae(&envelope.payload_type, &payload),
                sig,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let signed = (!signatures.is_empty()).then(|| Signed {
        key: builder.public_key().clone(),
        signatures,
    });
    let hashes: Vec<[u8; 32]> = leaves.par_iter().map(|l| leaf_hash(l)).collect();
    let mut tree = MemoryTree::new();
    for h in &hashes {
        tree.append(*h);
    }
    // Checkpoints spread over the log, the last at its size, each signed by the log key.
    let k = (format::MAX_CHECKPOINTS as u64).min(entries).max(1);
    let sizes: Vec<u64> = (1..=k)
        .map(|j| j * entries / k)
        .filter(|s| *s > 0)
        .collect();
    let mut out = BundleWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?), 0);
    out.json(
        format::MANIFEST,
        &format::Manifest {
            format: format::FORMAT.into(),
            origin: ORIGIN.into(),
            scope: Scope::All,
            exported_at: at,
            exported_by: "bench".into(),
            confidential: Confidential::Included,
            anchor: entries,
            complete: true,
        },
    )?;
    let mut checkpoints = Vec::new();
    for &size in &sizes {
        let root = tree.root(size).context("a root")?;
        let note = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root,
            extensions: vec![],
        }
        .sign(log)?;
        checkpoints.push(format::CheckpointLine {
            size,
            note,
            handover: None,
        });
    }
    out.json_lines(format::CHECKPOINTS, &checkpoints)?;
    let mut proofs = Vec::new();
    for pair in sizes.windows(2) {
        proofs.push(format::ConsistencyLine {
            from: pair[0],
            to: pair[1],
            hashes: prove_consistency(&tree, pair[0], pair[1])?,
        });
    }
    out.json_lines(format::CONSISTENCY, &proofs)?;
    out.json(
        format::KEYS,
        &format::KeysFile {
            log: log.verifier().to_text(),
            attestors: vec![],
        },
    )?;
    for (index, (leaf, hash)) in leaves.into_iter().zip(hashes).enumerate() {
        out.entry(&format::EntryLine {
            index: index as u64,
            leaf_hash: hash,
            leaf: String::from_utf8(leaf)?,
            proof: None,
            facts: None,
            rationale: None,
            rationale_salt: None,
            withheld: false,
        })?;
    }
    out.finish()?;
    Ok(((entries - 1).checked_div(every).unwrap_or(0), signed))
}
