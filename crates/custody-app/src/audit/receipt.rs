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

use custody_crypto::PublicKey;
use custody_crypto::note::NoteVerifier;
use custody_ledger::{Checkpoint, Hash, leaf_hash, verify_inclusion};
use custody_model::Digest;
use custody_store::{MAX_ENTRIES_PER_READ, SqlStore, Store, search};
use serde::{Deserialize, Serialize};

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
    /// The attestor's public key (SPKI PEM) that signed the VSA.
    pub attestor: String,
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
    /// The receipt of the latest certification of `digest` in `environment`.
    pub async fn audit_receipt(&self, digest: &Digest, environment: &str) -> AppResult<Receipt> {
        let anchor = self.store.checkpoint().await?;
        let terms = [
            search::artifact(&digest.to_string()),
            search::environment(environment),
        ];
        let (mut end, mut found, mut decision) = (anchor.size, None, None);
        'search: while end > 0 {
            let page = self
                .store
                .search(&terms, 0, end, MAX_ENTRIES_PER_READ)
                .await?;
            for entry in &page {
                let Ok(event) = Event::from_leaf(&entry.leaf) else {
                    continue;
                };
                match (&event.body, &found) {
                    (EventBody::EnvironmentCertified(c), None) => {
                        found = Some((entry.clone(), c.decision.clone()))
                    }
                    (EventBody::DecisionRecorded(d), Some((_, id))) if d.decision == *id => {
                        decision = Some(entry.clone());
                        break 'search;
                    }
                    _ => {}
                }
            }
            match page.last() {
                Some(last) if page.len() as u64 == MAX_ENTRIES_PER_READ => end = last.index,
                _ => break,
            }
        }
        let (Some((certification, _)), Some(decision)) = (found, decision) else {
            return Err(AppError::not_found(format!(
                "{digest} was never certified in {environment}"
            )));
        };
        let certified = Event::from_leaf(&certification.leaf)
            .map_err(|e| AppError::Integrity(e.to_string()))?;
        let EventBody::EnvironmentCertified(c) = certified.body else {
            return Err(AppError::Integrity("a certification is not one".into()));
        };
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
        Ok(Receipt {
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
        })
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
    /// The attestor key that signed the VSA.
    pub attestor_key: Option<String>,
    /// What was checked, in words.
    pub checked: Vec<String>,
    /// What failed (empty: the receipt verified).
    pub failures: Vec<String>,
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
        attestor_key: None,
        checked: Vec::new(),
        failures: Vec::new(),
    };
    let root = match Checkpoint::open(&r.checkpoint, &verifier) {
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
        let attestor = match attestor_key {
            Some(k) => Ok(k.clone()),
            None => PublicKey::from_pem(&r.attestor).map_err(|e| e.to_string()),
        };
        match attestor.and_then(|k| super::verify::vsa_of(d, std::slice::from_ref(&k)).map(|()| k))
        {
            Ok(k) => {
                report.attestor_key = Some(k.key_id().to_string());
                // (About the decision's artifacts: whether the receipt's digest is one
                // of them is agree()'s to say.)
                report.checked.push(format!(
                    "the decision's VSA is signed by attestor key {} (named by the decision entry), about the decision's {} artifact(s), with verificationResult PASSED",
                    k.key_id(),
                    d.artifacts.len()
                ));
            }
            Err(why) => report.failures.push(why),
        }
    }
    if !proved {
        for c in &mut report.checked[content_from..] {
            c.push_str(" (as the entries say: they are not proved in the log)");
        }
    }
    Ok(report)
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
