//! What the dashboard shows: the pipeline board, and one promotion's whole story (gates,
//! reviews, signatures, provenance, VSA and its place in the ledger, proven).
//!
//! Each view reads a bounded number of records, whatever the size of the history: the board
//! reads two per environment, a promotion page its own records and one inclusion proof.

use custody_crypto::dsse::{self, Envelope};
use custody_store::{MAX_ENTRIES_PER_READ, Store};
use serde::Serialize;

use crate::app::App;
use crate::attestations::{ManifestArtifact, ReadProvenance};
use crate::records::{
    ApprovalRecord, ArtifactRecord, Certification, DecisionRecord, EnvironmentRecord,
    PendingPromotion, PromotionRecord, ReleaseRecord, ReviewDue, kind,
};
use crate::{AppError, AppResult};

/// One column of the pipeline board.
#[derive(Debug, Clone, Serialize)]
pub struct BoardColumn {
    /// The environment.
    pub environment: String,
    /// Its certified release, if any.
    pub certified: Option<Certification>,
    /// The promotions waiting to enter it, oldest first, by id (at most
    /// 100).
    pub pending: Vec<(String, PendingPromotion)>,
    /// Whether more are waiting than are listed.
    pub more_pending: bool,
    /// Break-glass promotions certified here and waiting for their after-the-fact
    /// review, oldest first, by id (at most 100).
    pub reviews_due: Vec<(String, ReviewDue)>,
    /// How the certified release stood when its decision let it in.
    pub standing: Option<crate::trust::Standing>,
    /// What deploy tooling last reported running here, drift marked.
    pub running: Option<crate::trust::Running>,
    /// The latest rejections and rollbacks here, newest first.
    pub recent: Vec<crate::trust::Outcome>,
    /// Why the deploy gate denies the certified release now, when it does: it stood when
    /// certified, and evidence since (a new scan), a revoked key or a rejection undid it.
    /// Empty while it stands, or when nothing is certified.
    pub no_longer_stands: Vec<String>,
    /// While it stands only by an approved exception (evidence since found what the
    /// exception waives): the deploy gate's words for each waived gate.
    #[serde(default)]
    pub by_exception: Vec<String>,
}

/// Waiting promotions listed per environment at most.
pub(crate) const PENDING_SHOWN: usize = 100;

/// A release signature as the promotion page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureView {
    /// The key id the signature names, if any.
    pub keyid: Option<String>,
    /// The trusted release key it verifies with: its algorithm and custody key id.
    pub verified_by: Option<(String, String)>,
}

/// An artifact of the release with the provenance custody verified for it.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactView {
    /// Name and digest.
    pub artifact: ManifestArtifact,
    /// Builder, source and parameters, if provenance was verified.
    pub provenance: Option<ReadProvenance>,
}

/// Whether a ledger entry is in the log the latest signed checkpoint commits to.
#[derive(Debug, Clone, Serialize)]
pub struct InclusionCheck {
    /// The entry.
    pub index: u64,
    /// The checkpoint's size.
    pub size: u64,
    /// The checkpoint's root, hex.
    pub root: String,
    /// Hashes in the proof.
    pub proof_hashes: usize,
    /// `Ok` if the proof verified; else why not.
    pub verified: Result<(), String>,
}

/// An artifact's lineage: its build, every event about it, and where it runs now.
#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    /// The artifact as registered.
    pub artifact: ArtifactRecord,
    /// The releases that hold it (their `release.created` events), oldest first.
    pub releases: Vec<crate::HistoryEntry>,
    /// The newest [`LINEAGE_EVENTS`] ledger events that name it, oldest first:
    /// registration, evidence, releases, promotions, decisions, certifications, deploy
    /// reports, rollbacks.
    pub events: Vec<crate::HistoryEntry>,
    /// When there are older events than these: the `before` that continues in history.
    pub older: Option<u64>,
    /// The environments whose certified release holds it now, with that release.
    pub certified_in: Vec<(String, String)>,
}

/// Most events an artifact's lineage lists (the newest); history pages further back.
pub const LINEAGE_EVENTS: usize = 200;

/// The ledger as an auditor first checks it.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerStatus {
    /// The latest signed checkpoint (C2SP note), its size and root.
    pub checkpoint: String,
    /// Entries.
    pub size: u64,
    /// The oldest stored checkpoint with entries, and whether the latest provably extends
    /// it (an RFC 9162 consistency proof, verified here): `None` for an empty log.
    pub consistency: Option<(u64, Result<(), String>)>,
    /// What custody has found wrong with this ledger and still stands: the store's
    /// integrity failure (its history shrank or forked; it is read-only), and the
    /// integrity alerts raised (a leaf or stored hash that fails the check, a state record
    /// that differs from the ledger). While any stands, nothing may vouch for the ledger:
    /// a proof over stored hashes says nothing of a leaf rewritten under them.
    pub doubts: Vec<String>,
}

/// The alert rules that say the ledger (or the state checked against it) cannot be
/// trusted as it stands.
pub(crate) const INTEGRITY_RULES: [&str; 2] = ["ledger-consistency-failure", "state-mismatch"];

/// A promotion with everything that explains it.
#[derive(Debug, Clone, Serialize)]
pub struct PromotionView {
    /// The promotion.
    pub promotion: PromotionRecord,
    /// Its reviews, oldest first (superseded ones too).
    pub reviews: Vec<ApprovalRecord>,
    /// Its latest decision and that decision's ledger index.
    pub decision: Option<(DecisionRecord, u64)>,
    /// The release.
    pub release: ReleaseRecord,
    /// The release manifest's signatures.
    pub signatures: Vec<SignatureView>,
    /// The release's artifacts.
    pub artifacts: Vec<ArtifactView>,
    /// The exceptions asked for about the release or its artifacts, in any state.
    pub exceptions: Vec<crate::ExceptionRecord>,
}

impl<S: Store> App<S> {
    /// The pipeline board: every environment of the policy in force, in order, as it
    /// stands at `now` (the deploy gate's verdict on each certified release, cached).
    pub async fn board(&self, now: custody_model::Timestamp) -> AppResult<Vec<BoardColumn>> {
        let policy = self.policy().await?;
        let size = self.store.size().await?;
        let mut columns = Vec::new();
        for env in policy.environments() {
            let certified = self
                .get::<EnvironmentRecord>(kind::ENVIRONMENT, &env.name)
                .await?
                .and_then(|e| e.value.certified);
            let standing = match &certified {
                Some(c) => self.certified_standing(&policy, &env.name, c).await?,
                None => None,
            };
            let certified_digests = standing.as_ref().map_or(&[][..], |s| &s.artifacts[..]);
            let running = self.running(&env.name, certified_digests, size).await?;
            let recent = self.recent_outcomes(&env.name, size).await?;
            // The gate judges the whole release from any one of its digests.
            let (no_longer_stands, by_exception) = match certified_digests.first() {
                Some(d) => {
                    let digest = d.parse().map_err(|e| {
                        AppError::Integrity(format!("the standing of {}: {e}", env.name))
                    })?;
                    let verdict = self.verify(&env.name, &digest, now).await?;
                    if verdict.allowed {
                        let waived = verdict
                            .reasons
                            .iter()
                            .filter(|r| r.starts_with(crate::environment::BY_EXCEPTION))
                            .cloned()
                            .collect();
                        (Vec::new(), waived)
                    } else {
                        (verdict.reasons.clone(), Vec::new())
                    }
                }
                None => (Vec::new(), Vec::new()),
            };
            let mut pending: Vec<(String, PendingPromotion)> =
                self.in_environment(kind::PENDING, &env.name).await?;
            let more_pending = pending.len() > PENDING_SHOWN;
            pending.truncate(PENDING_SHOWN);
            pending.sort_by_key(|(_, p)| p.requested_at);
            let mut reviews_due: Vec<(String, ReviewDue)> =
                self.in_environment(kind::REVIEW_DUE, &env.name).await?;
            reviews_due.truncate(PENDING_SHOWN);
            reviews_due.sort_by_key(|(_, r)| r.at);
            columns.push(BoardColumn {
                environment: env.name.clone(),
                certified,
                pending,
                more_pending,
                reviews_due,
                standing,
                running,
                recent,
                no_longer_stands,
                by_exception,
            });
        }
        Ok(columns)
    }

    /// Up to [`PENDING_SHOWN`] + 1 records of `kind` keyed `environment/ID`, by ID.
    async fn in_environment<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        environment: &str,
    ) -> AppResult<Vec<(String, T)>> {
        let prefix = format!("{environment}/");
        let rows = self
            .store
            .states(kind, &prefix, PENDING_SHOWN as u64 + 1)
            .await?;
        let mut out = Vec::new();
        for row in rows.iter().take_while(|r| r.key.starts_with(&prefix)) {
            let entry: T = serde_json::from_slice(row.value.as_bytes()).map_err(|e| {
                AppError::Store(custody_store::StoreError::Corrupt(format!(
                    "{kind}/{}: {e}",
                    row.key
                )))
            })?;
            out.push((row.key[prefix.len()..].to_owned(), entry));
        }
        Ok(out)
    }

    /// A promotion with its reviews (redacted for `viewer`), latest decision, release
    /// signatures and provenance.
    pub async fn promotion_view(
        &self,
        viewer: &crate::Authenticated,
        id: &str,
    ) -> AppResult<PromotionView> {
        let (promotion, reviews) = self.promotion_for(viewer, id).await?;
        let decision = match promotion.decisions.last() {
            Some(d) => {
                let record = self
                    .require::<DecisionRecord>(kind::DECISION, d, || format!("no decision {d}"))
                    .await?;
                Some((record.value, record.log_index))
            }
            None => None,
        };
        let release = self.release(&promotion.release).await?;
        let policy = self.policy().await?;
        let signatures = release
            .manifest
            .signatures
            .iter()
            .map(|sig| {
                let alone = Envelope {
                    payload: release.manifest.payload.clone(),
                    payload_type: release.manifest.payload_type.clone(),
                    signatures: vec![sig.clone()],
                };
                let verified_by = policy.release_keys().find_map(|key| {
                    dsse::verify(&alone, std::slice::from_ref(key), 1)
                        .ok()
                        .map(|_| (key.algorithm().to_string(), key.key_id().to_string()))
                });
                SignatureView {
                    keyid: sig.keyid.clone(),
                    verified_by,
                }
            })
            .collect();
        let mut artifacts = Vec::new();
        for a in &release.artifacts {
            let provenance = self
                .get::<ArtifactRecord>(kind::ARTIFACT, &a.digest.to_string())
                .await?
                .and_then(|r| r.value.provenance_facts);
            artifacts.push(ArtifactView {
                artifact: a.clone(),
                provenance,
            });
        }
        let exceptions = self.exceptions_of(&release).await?;
        Ok(PromotionView {
            promotion,
            reviews,
            decision,
            release,
            signatures,
            artifacts,
            exceptions,
        })
    }

    /// Proves that ledger entry `index` is in the log the latest signed checkpoint (whose
    /// signature the store checks with the log key) commits to.
    pub async fn check_inclusion(&self, index: u64) -> AppResult<InclusionCheck> {
        let checkpoint = self.store.checkpoint().await?;
        let leaf = self
            .store
            .entries(index, index + 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::invalid(format!("no ledger entry {index}")))?;
        let proof = self.store.inclusion_proof(index, checkpoint.size).await?;
        let verified = custody_ledger::verify_inclusion(
            &custody_ledger::leaf_hash(&leaf.leaf),
            index,
            checkpoint.size,
            &proof,
            &checkpoint.root,
        )
        .map_err(|e| e.to_string());
        Ok(InclusionCheck {
            index,
            size: checkpoint.size,
            root: hex::encode(checkpoint.root),
            proof_hashes: proof.len(),
            verified,
        })
    }
}

impl<S: Store> App<S> {
    /// An artifact's lineage (commit → build → artifact → releases → promotions →
    /// environments, with rollbacks and drift).
    pub async fn lineage(&self, digest: &custody_model::Digest) -> AppResult<Lineage> {
        let artifact = self
            .require::<ArtifactRecord>(kind::ARTIFACT, &digest.to_string(), || {
                format!("no artifact {digest} is registered")
            })
            .await?
            .value;
        let mut events = self
            .history(&crate::HistoryFilter {
                artifact: Some(digest.clone()),
                limit: LINEAGE_EVENTS + 1,
                ..Default::default()
            })
            .await?;
        let older = (events.len() > LINEAGE_EVENTS).then(|| {
            events.remove(0);
            events[0].index
        });
        let terms = [
            custody_store::search::artifact(&digest.to_string()),
            custody_store::search::event_type("release.created"),
        ];
        let size = self.store.size().await?;
        let releases = self
            .store
            .search(&terms, 0, size, MAX_ENTRIES_PER_READ)
            .await?
            .into_iter()
            .rev()
            .map(crate::HistoryEntry::read)
            .collect::<AppResult<Vec<_>>>()?;
        // Each environment's record (not the board: its waiting promotions are not needed).
        let mut certified_in = Vec::new();
        for env in self.policy().await?.environments() {
            let certified = self
                .get::<EnvironmentRecord>(kind::ENVIRONMENT, &env.name)
                .await?
                .and_then(|e| e.value.certified);
            if let Some(cert) = certified {
                let release = self.release(&cert.release).await?;
                if release.artifacts.iter().any(|a| &a.digest == digest) {
                    certified_in.push((env.name.clone(), cert.release));
                }
            }
        }
        Ok(Lineage {
            artifact,
            releases,
            events,
            older,
            certified_in,
        })
    }

    /// The latest checkpoint, a consistency proof from the oldest stored one checked, and
    /// what custody has found wrong with the ledger that still stands.
    pub async fn ledger_status(&self) -> AppResult<LedgerStatus> {
        let mut doubts: Vec<String> = self
            .store
            .integrity()
            .map(|failure| format!("the ledger is read-only: {failure}"))
            .into_iter()
            .collect();
        doubts.extend(
            self.recent_alerts()
                .await?
                .into_iter()
                .filter(|(alert, _)| INTEGRITY_RULES.contains(&alert.rule.as_str()))
                .map(|(alert, at)| format!("{} (raised {at}): {}", alert.rule, alert.text)),
        );
        let latest = self.store.checkpoint().await?;
        let consistency = match self.store.checkpoints(1, 1).await?.into_iter().next() {
            Some(first) if latest.size > 0 => {
                let checked = match self.store.consistency_proof(first.size, latest.size).await {
                    Ok(proof) => custody_ledger::verify_consistency(
                        first.size,
                        latest.size,
                        &proof,
                        &first.root,
                        &latest.root,
                    )
                    .map_err(|e| e.to_string()),
                    // A damaged history may have no proof to give: that is what the page
                    // then shows, beside what was found.
                    Err(e) if !doubts.is_empty() => Err(e.to_string()),
                    Err(e) => return Err(e.into()),
                };
                Some((first.size, checked))
            }
            _ => None,
        };
        Ok(LedgerStatus {
            checkpoint: latest.note,
            size: latest.size,
            consistency,
            doubts,
        })
    }
}
