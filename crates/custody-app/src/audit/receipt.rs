//! A receipt for whoever receives a release (`custody-audit-receipt/v1`): one small JSON
//! file proving, with nothing but the log's public key, that an artifact was certified in
//! an environment.
//!
//! It holds the certifying decision's leaf (with its VSA, the signed decision receipt) and
//! the `environment.certified` leaf, each with its inclusion proof in the tree of a signed
//! checkpoint, and the attestor's public key. The attestor key is trusted through the log:
//! the proven decision leaf records the key id of the VSA's signature, and a key counts
//! only if its id (SHA-256 of its SPKI DER, or the securesystemslib id of it) is that one;
//! `--attestor-key` pins a key instead. A receipt proves that the certification happened
//! (and was in the log as of its checkpoint), not that it still stands: for that, ask the
//! deploy gate, or follow the log.
//!
//! After the log key was rotated, the receipt's checkpoint is signed by the new key alone;
//! so that whoever holds an older key can check it, the receipt carries every log-key
//! hand-over up to its checkpoint (the hand-over checkpoint signed by the retiring and the
//! new key, its `log.key_rotated` event proved its last leaf, and a consistency proof from
//! it to the receipt's checkpoint), followed the way a bundle's are
//! ([`super::verify::follow_log_keys`]).

use custody_crypto::PublicKey;
use custody_crypto::note::NoteVerifier;
use custody_ledger::{Hash, LogKeys, leaf_hash, verify_consistency, verify_inclusion};
use custody_model::Digest;
use custody_store::{SqlStore, Store, search};
use serde::{Deserialize, Serialize};

use super::standing::Standing;
use crate::app::App;
use crate::events::{DecisionRecorded, EnvironmentCertified, Event, EventBody};
use crate::{AppError, AppResult};

/// The format a receipt says it is.
pub const RECEIPT_FORMAT: &str = "custody-audit-receipt/v1";
/// The largest receipt read (its two leaves are each at most 1 MiB).
pub const MAX_RECEIPT: u64 = 4 << 20;

/// A receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The artifact.
    pub digest: String,
    /// The environment it was certified in.
    pub environment: String,
    /// The release that carried it.
    pub release: String,
    /// The signed checkpoint the entries are proved in.
    pub checkpoint: String,
    /// Its size.
    pub tree_size: u64,
    /// The `decision.recorded` entry (its VSA is the signed decision receipt).
    pub decision: ProvedEntry,
    /// The `environment.certified` entry.
    pub certification: ProvedEntry,
    /// The attestor's public key (SPKI PEM) that signed the VSA (may be left out of a
    /// receipt whose checker pins the key with `--attestor-key`).
    #[serde(default)]
    pub attestor: String,
    /// The log-key hand-overs up to the checkpoint, oldest first (absent when the log
    /// key never changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handovers: Vec<ReceiptHandover>,
}

/// A log-key hand-over a receipt carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptHandover {
    /// The hand-over checkpoint (signed by the retiring and the new log key).
    pub checkpoint: String,
    /// Its size.
    pub size: u64,
    /// Its last leaf, the `log.key_rotated` event, exactly as hashed.
    pub leaf: String,
    /// The leaf's inclusion proof in the hand-over checkpoint's tree, hex.
    #[serde(with = "crate::log::hex_hashes")]
    pub proof: Vec<Hash>,
    /// The consistency proof from the hand-over checkpoint to the receipt's, hex.
    #[serde(with = "crate::log::hex_hashes")]
    pub consistency: Vec<Hash>,
}

/// A leaf with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvedEntry {
    /// Its ledger index.
    pub index: u64,
    /// The leaf, exactly as hashed.
    pub leaf: String,
    /// Its inclusion proof in the checkpoint's tree, hex.
    #[serde(with = "crate::log::hex_hashes")]
    pub proof: Vec<Hash>,
}

impl App<SqlStore> {
    /// The receipt of the certification of `digest` in `environment` that stands now:
    /// the one of the release the environment is certified to run (even if a rollback
    /// brought it back). When the release it runs does not hold `digest`, the newest
    /// certification of `digest` there no longer stands: refused (a conflict saying
    /// what replaced it and what to do) unless `historical` asks for it anyway. Returns
    /// the receipt and whether what it proves still stands.
    pub async fn audit_receipt(
        &self,
        digest: &Digest,
        environment: &str,
        historical: bool,
    ) -> AppResult<(Receipt, Standing)> {
        let anchor = self.store.checkpoint().await?;
        let change = self.newest_change(environment, anchor.size).await?;
        let runs = match &change {
            Some(c) if self.release_holds(&c.release, digest).await? => Some(c.release.clone()),
            _ => None,
        };
        let (env, artifact) = (
            search::environment(environment),
            search::artifact(&digest.to_string()),
        );
        let terms = [
            search::event_type("environment.certified"),
            env.clone(),
            artifact.clone(),
        ];
        let found = self
            .newest(&terms, anchor.size, |e| match e.body {
                EventBody::EnvironmentCertified(c)
                    if runs.as_ref().is_none_or(|r| *r == c.release) =>
                {
                    Some(c)
                }
                _ => None,
            })
            .await?;
        let Some((certification, c)) = found else {
            return Err(AppError::not_found(format!(
                "{digest} was never certified in {environment}"
            )));
        };
        let terms = [search::event_type("decision.recorded"), env, artifact];
        let decision = self
            .newest(&terms, certification.index, |e| match e.body {
                EventBody::DecisionRecorded(d) if d.decision == c.decision => Some(d),
                _ => None,
            })
            .await?;
        let Some((decision, d)) = decision else {
            return Err(AppError::Integrity(format!(
                "the decision {} of the certification at entry {} is not in the ledger",
                c.decision, certification.index
            )));
        };
        let standing = match (&runs, change) {
            (Some(_), change) => Standing::Stands {
                restored_at: change.filter(|c| c.rollback).map(|c| c.index),
            },
            (None, Some(change)) => {
                // Named by what replaced it first, and by what runs there now.
                let first = self
                    .first_change_after(environment, certification.index, anchor.size)
                    .await?
                    .filter(|first| first.index != change.index);
                match first {
                    Some(first) => Standing::Replaced {
                        entry: first.index,
                        now: change.release,
                        how: format!("{}; since then {}", first.how, change.how),
                    },
                    None => Standing::Replaced {
                        entry: change.index,
                        now: change.release,
                        how: change.how,
                    },
                }
            }
            (None, None) => Standing::Replaced {
                entry: certification.index,
                now: String::new(),
                how: "nothing is certified there now".into(),
            },
        };
        if let (Standing::Replaced { now, how, .. }, false) = (&standing, historical) {
            let glass = d
                .break_glass
                .as_ref()
                .map_or(String::new(), |r| format!(" (by break-glass: {r:?})"));
            return Err(AppError::conflict(format!(
                "{digest} was certified in {environment} with {} at ledger index {}{glass}, but that certification no longer stands: {how}, and {now} does not hold {digest}. A receipt would prove only that it was certified once, and could be taken for what runs there now. To prove what runs there now, ask for the receipt of a digest of {now}; to write this one anyway, as a record of the past, pass --historical",
                c.release, certification.index
            )));
        }
        let mut proved = Vec::new();
        for e in [decision, certification] {
            proved.push(ProvedEntry {
                index: e.index,
                proof: self.store.inclusion_proof(e.index, anchor.size).await?,
                leaf: String::from_utf8(e.leaf).map_err(|e| AppError::Integrity(e.to_string()))?,
            });
        }
        let certification = proved
            .pop()
            .ok_or_else(|| AppError::Integrity("no entry".into()))?;
        let decision = proved
            .pop()
            .ok_or_else(|| AppError::Integrity("no entry".into()))?;
        let mut handovers = Vec::new();
        let sizes: Vec<u64> = self.store.log_keys().handovers().collect();
        for size in sizes.into_iter().filter(|s| *s <= anchor.size) {
            let (Some(h), Some(cp)) = (
                self.handover_at(size).await?,
                self.store.checkpoints(size, 1).await?.pop(),
            ) else {
                return Err(AppError::Integrity(format!(
                    "the log-key hand-over checkpoint of {size} entries is missing"
                )));
            };
            handovers.push(ReceiptHandover {
                checkpoint: cp.note,
                size,
                leaf: h.leaf,
                proof: h.proof,
                consistency: self.store.consistency_proof(size, anchor.size).await?,
            });
        }
        let receipt = Receipt {
            format: RECEIPT_FORMAT.into(),
            origin: self.log().verifier_key(),
            digest: digest.to_string(),
            environment: environment.into(),
            release: c.release,
            checkpoint: anchor.note,
            tree_size: anchor.size,
            decision,
            certification,
            attestor: self.attestor_key().to_pem(),
            handovers,
        };
        Ok((receipt, standing))
    }
}

/// What checking a receipt found.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptReport {
    /// The artifact.
    pub digest: String,
    /// The environment.
    pub environment: String,
    /// The release.
    pub release: String,
    /// The checkpoint's size.
    pub tree_size: u64,
    /// When it was certified (as the proven leaf says).
    pub certified_at: Option<String>,
    /// The ledger index of the certification.
    pub entry: u64,
    /// The break-glass reason, when the certifying decision broke glass (as the proven
    /// decision leaf says): an exception to the policy, not a clean pass.
    pub break_glass: Option<String>,
    /// The gates the decision overrode (by break-glass).
    pub overridden: Vec<String>,
    /// The attestor key that signed the VSA.
    pub attestor_key: Option<String>,
    /// What was checked, in words.
    pub checked: Vec<String>,
    /// What failed (empty: the receipt verified).
    pub failures: Vec<String>,
    /// What the receipt proves, in one sentence (only when it verified).
    pub proves: Option<String>,
    /// What no receipt can prove.
    pub does_not_prove: String,
}

/// Why a receipt could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt.
    #[error("not a custody receipt: {0}")]
    Format(String),
    /// The log key does not fit the receipt's origin.
    #[error("the log key: {0}")]
    LogKey(String),
}

/// Checks a receipt offline with the log key (and the attestor key, if pinned).
pub fn verify_receipt(
    bytes: &[u8],
    log_key: &PublicKey,
    attestor_key: Option<&PublicKey>,
) -> Result<ReceiptReport, ReceiptError> {
    let r: Receipt =
        serde_json::from_slice(bytes).map_err(|e| ReceiptError::Format(e.to_string()))?;
    if r.format != RECEIPT_FORMAT {
        return Err(ReceiptError::Format(format!(
            "format {:?}, not {RECEIPT_FORMAT}",
            r.format
        )));
    }
    let verifier =
        NoteVerifier::new(&r.origin, log_key).map_err(|e| ReceiptError::LogKey(e.to_string()))?;
    let mut report = ReceiptReport {
        digest: r.digest.clone(),
        environment: r.environment.clone(),
        release: r.release.clone(),
        tree_size: r.tree_size,
        certified_at: None,
        entry: r.certification.index,
        break_glass: None,
        overridden: Vec::new(),
        attestor_key: None,
        checked: Vec::new(),
        failures: Vec::new(),
        proves: None,
        does_not_prove: format!(
            "that the certification still stands: a rollback, or the certification of another release, after entry {} may have replaced it. Ask the deploy gate (custody verify --env {} {}) or follow the log (custody log watch) and check the entries after it",
            r.certification.index, r.environment, r.digest
        ),
    };
    let keys = match follow(&r, verifier, &mut report) {
        Some(keys) => keys,
        None => return Ok(report),
    };
    let root = match keys.open(&r.checkpoint) {
        Ok(cp) if cp.size == r.tree_size => {
            report.checked.push(format!(
                "the checkpoint of {} entries is signed by the log key",
                cp.size
            ));
            Some(cp.root)
        }
        Ok(cp) => {
            report.failures.push(format!(
                "the checkpoint signs {} entries, the receipt says {}",
                cp.size, r.tree_size
            ));
            None
        }
        Err(e) => {
            report.failures.push(format!(
                "the checkpoint does not verify with the log key: {e}"
            ));
            None
        }
    };
    if let Some(root) = root {
        consistent(&r, &keys, &root, &mut report);
    }
    for (what, e) in [
        ("decision", &r.decision),
        ("certification", &r.certification),
    ] {
        let Some(root) = root else { break };
        match verify_inclusion(
            &leaf_hash(e.leaf.as_bytes()),
            e.index,
            r.tree_size,
            &e.proof,
            &root,
        ) {
            Ok(()) => report.checked.push(format!(
                "the {what} (entry {}) is in the signed tree",
                e.index
            )),
            Err(err) => report.failures.push(format!(
                "the {what} (entry {}) is not proved in the signed tree: {err}",
                e.index
            )),
        }
    }
    // What follows reads the leaves: true of the log only if they were proved above.
    let proved = report.failures.is_empty();
    let content_from = report.checked.len();
    let decision = match Event::from_leaf(r.decision.leaf.as_bytes()).map(|e| e.body) {
        Ok(EventBody::DecisionRecorded(d)) => Some(d),
        _ => {
            report
                .failures
                .push("the decision entry is not a decision".into());
            None
        }
    };
    let certification = Event::from_leaf(r.certification.leaf.as_bytes());
    let certified: Option<EnvironmentCertified> = match certification {
        Ok(Event {
            at,
            body: EventBody::EnvironmentCertified(c),
            ..
        }) => {
            report.certified_at = Some(at.to_string());
            Some(c)
        }
        _ => {
            report
                .failures
                .push("the certification entry is not a certification".into());
            None
        }
    };
    if let (Some(d), Some(c)) = (&decision, &certified) {
        agree(&r, d, c, &mut report);
    }
    if let Some(d) = &decision {
        let (attestor, from) = match attestor_key {
            Some(k) => (Ok(k.clone()), "given (--attestor-key)"),
            None if r.attestor.is_empty() => (
                Err("the receipt carries no attestor key: give the one you trust with --attestor-key".to_owned()),
                "in the receipt",
            ),
            None => (
                PublicKey::from_pem(&r.attestor)
                    .map_err(|e| format!("the receipt's attestor key: {e}")),
                "in the receipt",
            ),
        };
        match attestor
            .and_then(|k| super::verify::vsa_of(d, std::slice::from_ref(&k), from).map(|m| (k, m)))
        {
            Ok((k, marked)) => {
                report.attestor_key = Some(k.key_id().to_string());
                // (About the decision's artifacts: whether the receipt's digest is one
                // of them is agree()'s to say.)
                report.checked.push(format!(
                    "the decision's VSA is signed by attestor key {} (named by the decision entry), about the decision's {} artifact(s), with verificationResult PASSED{}",
                    k.key_id(),
                    d.artifacts.len(),
                    match (d.break_glass.is_some(), marked) {
                        (true, true) => format!(
                            ", marked as a break-glass exception ({})",
                            crate::attestations::BREAK_GLASS_LEVEL
                        ),
                        (true, false) => {
                            ", with no break-glass mark (signed before custody marked them)"
                                .to_owned()
                        }
                        _ => String::new(),
                    }
                ));
            }
            Err(why) => report.failures.push(why),
        }
    }
    if let Some(d) = &decision {
        exception(d, &mut report);
    }
    if !proved {
        for c in &mut report.checked[content_from..] {
            c.push_str(" (as the entries say: they are not proved in the log)");
        }
    }
    if report.failures.is_empty() {
        report.proves = Some(proves(&report));
    }
    Ok(report)
}

/// Follows the hand-overs the receipt carries from the key given. `None` (the failure
/// reported) when one fails: nothing the receipt says can then be proved.
fn follow(r: &Receipt, given: NoteVerifier, report: &mut ReceiptReport) -> Option<LogKeys> {
    let mut keys = LogKeys::new(given);
    let steps: Vec<(u64, &str, &[u8], &[Hash])> = r
        .handovers
        .iter()
        .map(|h| {
            (
                h.size,
                h.checkpoint.as_str(),
                h.leaf.as_bytes(),
                h.proof.as_slice(),
            )
        })
        .collect();
    if let Err(why) = super::verify::follow_log_keys(&mut keys, &steps) {
        report.failures.push(why);
        return None;
    }
    for h in &r.handovers {
        report.checked.push(format!(
            "the log-key hand-over at {} entries is signed by the retiring and the new log key, its log.key_rotated event proved its last leaf",
            h.size
        ));
    }
    Some(keys)
}

/// Each hand-over's checkpoint is extended by the receipt's: the log the new key signs
/// is the one handed over.
fn consistent(r: &Receipt, keys: &LogKeys, root: &Hash, report: &mut ReceiptReport) {
    for h in &r.handovers {
        // Followed above, so it opens; a failure to is reported as inconsistent.
        let ok = keys.open(&h.checkpoint).is_ok_and(|cp| {
            cp.size == h.size
                && cp.size <= r.tree_size
                && verify_consistency(cp.size, r.tree_size, &h.consistency, &cp.root, root).is_ok()
        });
        if ok {
            report.checked.push(format!(
                "the checkpoint of {} entries extends the hand-over's of {}",
                r.tree_size, h.size
            ));
        } else {
            report.failures.push(format!(
                "the checkpoint of {} entries is not proved consistent with the log-key hand-over at {} entries",
                r.tree_size, h.size
            ));
        }
    }
}

/// A break-glass decision, from its proven leaf: the reason and the gates it overrode.
fn exception(d: &DecisionRecorded, report: &mut ReceiptReport) {
    report.overridden = d
        .gates
        .iter()
        .filter(|g| g.status == custody_policy::Status::Overridden)
        .map(|g| g.gate.to_string())
        .collect();
    if d.break_glass.is_some() || !report.overridden.is_empty() {
        report.break_glass = Some(d.break_glass.clone().unwrap_or_default());
        report.checked.push(format!(
            "the decision broke glass (\"{}\"), overriding {}: an exception to the policy, not a clean pass",
            d.break_glass.as_deref().unwrap_or(""),
            if report.overridden.is_empty() {
                "no gate".to_owned()
            } else {
                report.overridden.join(", ")
            }
        ));
    }
}

/// What a verified receipt proves, in one sentence.
fn proves(r: &ReceiptReport) -> String {
    let how = match &r.break_glass {
        Some(reason) => format!(
            " BY BREAK-GLASS (\"{reason}\", overriding {}), an exception to the policy and not a clean pass,",
            if r.overridden.is_empty() {
                "no gate".to_owned()
            } else {
                r.overridden.join(", ")
            }
        ),
        None => String::new(),
    };
    format!(
        "{} was certified in {} at ledger index {}{how} with release {} (at {}), in the log as of its checkpoint of {} entries",
        r.digest,
        r.environment,
        r.entry,
        r.release,
        r.certified_at.as_deref().map_or_else(
            || "?".to_owned(),
            |t| t
                .parse::<custody_model::Timestamp>()
                .map_or_else(|_| t.to_owned(), |t| t.to_second().to_string())
        ),
        r.tree_size
    )
}

/// The two entries say what the receipt says: the decision allowed the release into the
/// environment, and the certification is that decision's, naming the digest.
fn agree(r: &Receipt, d: &DecisionRecorded, c: &EnvironmentCertified, report: &mut ReceiptReport) {
    let names = |artifacts: &[Digest]| artifacts.iter().any(|a| a.to_string() == r.digest);
    let ok = d.allowed
        && d.environment == r.environment
        && d.release == r.release
        && names(&d.artifacts)
        && c.decision == d.decision
        && c.environment == r.environment
        && c.release == r.release
        && names(&c.artifacts)
        && r.certification.index > r.decision.index;
    if ok {
        report.checked.push(format!(
            "decision {} allowed {} (with {}) into {}, and entry {} certified it",
            d.decision, r.release, r.digest, r.environment, r.certification.index
        ));
    } else {
        report.failures.push(format!(
            "the entries do not say that {} was certified in {} by {}: the receipt was altered or assembled from other entries",
            r.digest, r.environment, r.release
        ));
    }
}
