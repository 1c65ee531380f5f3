//! The keyring's use cases: reading it, rotating a key to a successor with a hand-over
//! signed by both, and revoking a key (with the time it was compromised since).
//!
//! A rotation is not a proposal: the hand-over must be signed by the key handing over,
//! which no quorum can sign for, and it adds no signer (the old key retires the moment its
//! successor starts), so nothing gets looser. A revocation only denies, so it takes effect
//! at once; both are recorded with who did it and raise an alert. Changing *which* keys a
//! policy trusts (a new key, a key for another purpose) stays a policy change its owners
//! approve.
//!
//! The keyring is built from the policy versions the ledger records and the keyring
//! record, and kept for as long as neither changes (see keyring.rs).

use std::collections::BTreeMap;
use std::sync::Arc;

use custody_crypto::PublicKey;
use custody_crypto::dsse::Envelope;
use custody_model::Timestamp;
use custody_policy::{KeyPurpose, Policy};
use custody_store::{Expect, Store, search};
use serde::{Deserialize, Serialize};

use crate::app::{App, Versioned, event, write};
use crate::events::{self, EventBody, KeyUse};
use crate::keyring::{Keyring, KeyringRecord, Revocation, Rotation};
use crate::records::{PolicyRecord, kind};
use crate::{Actor, AppError, AppResult, HistoryEntry};

/// The DSSE payload type of a key hand-over statement.
pub const HANDOVER_PAYLOAD_TYPE: &str = "application/vnd.custody.key-handover+json";

/// Policy versions read at most to build the keyring (newest first; a key trusted only
/// by older versions than these is unknown, so what it signed no longer counts).
pub const MAX_POLICY_VERSIONS: u64 = 10_000;

/// Longest revocation reason.
const MAX_REASON: usize = 1_000;

/// What a hand-over statement says: `from` hands `purpose` to `to`, whose public key it
/// carries. Both keys sign it, so it proves the old key's holder agreed and the new key's
/// holder holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// The purpose handed over.
    pub purpose: KeyPurpose,
    /// The key handing over.
    pub from: String,
    /// The successor.
    pub to: String,
    /// The successor's public key (SPKI PEM).
    pub public_key: String,
}

impl Handover {
    /// The statement's bytes (canonical JSON).
    pub fn payload(&self) -> AppResult<Vec<u8>> {
        let value = serde_json::to_value(self).map_err(|e| AppError::invalid(e.to_string()))?;
        Ok(custody_model::CanonicalJson::from_value(&value)
            .map_err(|e| AppError::invalid(e.to_string()))?
            .as_bytes()
            .to_vec())
    }

    /// The hand-over from `old` to `new` for `purpose`, signed by both.
    pub fn sign(
        purpose: KeyPurpose,
        old: &dyn custody_crypto::Signer,
        new: &dyn custody_crypto::Signer,
    ) -> AppResult<Envelope> {
        let statement = Handover {
            purpose,
            from: old.public_key().key_id().to_string(),
            to: new.public_key().key_id().to_string(),
            public_key: new.public_key().to_pem(),
        };
        let payload = statement.payload()?;
        // The hint securesystemslib computes, so Python verifiers match the keys.
        let hint = custody_crypto::dsse::KeyIdHint::Securesystemslib;
        let mut envelope = custody_crypto::dsse::sign(old, HANDOVER_PAYLOAD_TYPE, &payload, hint)
            .map_err(|e| AppError::invalid(e.to_string()))?;
        envelope
            .add_signature(new, hint)
            .map_err(|e| AppError::invalid(e.to_string()))?;
        Ok(envelope)
    }
}

/// A rotation to record (the body of `POST /api/v1/keys/rotate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// The hand-over statement, signed by the key handing over and by its successor.
    #[schema(value_type = Object)]
    pub handover: Envelope,
}

/// A revocation to record (the body of `POST /api/v1/keys/{key}/revoke`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    /// Why (for the ledger and the alert).
    pub reason: String,
    /// When the key was compromised, if it was (RFC 3339): nothing it signed from then on
    /// counts. Absent: nothing signed from the revocation on.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub compromised_since: Option<Timestamp>,
}

/// What a rotation or revocation did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyChanged {
    /// The key rotated away or revoked.
    pub key: String,
    /// The successor (a rotation), or the successors revoked with it (a revocation).
    pub others: Vec<String>,
    /// The ledger index of the event.
    pub ledger_index: u64,
}

impl<S: Store> App<S> {
    /// The keyring record (`None` before any rotation or revocation).
    pub(crate) async fn keyring_record(&self) -> AppResult<Option<Arc<Versioned<KeyringRecord>>>> {
        self.get_hot_checked::<KeyringRecord>(kind::KEYRING, "current")
            .await
    }

    /// The keyring: every key custody has trusted, with its spans, successor and
    /// revocation.
    pub async fn keyring(&self) -> AppResult<Arc<Keyring>> {
        let policy = self.policy().await?;
        let record = self.keyring_record().await?;
        let stamp = (
            policy.digest().to_owned(),
            record.as_ref().map(|r| r.version),
        );
        if let Some((built, ring)) = self.keyring.lock().ok().and_then(|k| k.clone()) {
            if built == stamp {
                return Ok(ring);
            }
        }
        let history = self.policy_history(&policy).await?;
        let versions: Vec<(u64, Timestamp, &Policy)> = history
            .iter()
            .map(|(place, at, p)| (*place, *at, p.as_ref()))
            .collect();
        let empty = KeyringRecord::default();
        let ring = Arc::new(Keyring::build(
            &versions,
            record.as_ref().map_or(&empty, |r| &r.value),
        ));
        if let Ok(mut kept) = self.keyring.lock() {
            *kept = Some((stamp, ring.clone()));
        }
        Ok(ring)
    }

    /// Refuses a personal key the keyring does not count now (revoked, retired).
    pub(crate) async fn personal_key_counts(&self, key_id: &str, now: Timestamp) -> AppResult<()> {
        self.keyring()
            .await?
            .counts(key_id, KeyPurpose::PersonalApproval, now)
            .map_err(|why| AppError::denied(format!("the signed approval does not count: {why}")))
    }

    /// The keys in force whose validity ends within `warning` seconds of `now` (or has
    /// ended), with the seconds left.
    pub async fn expiring_keys(
        &self,
        now: Timestamp,
        warning: i64,
    ) -> AppResult<Vec<(crate::keyring::KeyView, i64)>> {
        let ring = self.keyring().await?;
        let horizon = warning;
        Ok(ring
            .entries()
            .filter(|e| e.in_force())
            .filter_map(|e| {
                let left = e.expires?.unix_seconds() - now.unix_seconds();
                (left <= horizon).then(|| (crate::keyring::KeyView::from(e), left))
            })
            .collect())
    }

    /// Every key custody has trusted: those in force first, each purpose together.
    pub async fn keys(&self) -> AppResult<Vec<crate::keyring::KeyView>> {
        let ring = self.keyring().await?;
        let mut keys: Vec<_> = ring.entries().map(crate::keyring::KeyView::from).collect();
        keys.sort_by(|a, b| {
            (a.status != "active", a.purpose, &a.name, &a.key_id).cmp(&(
                b.status != "active",
                b.purpose,
                &b.name,
                &b.key_id,
            ))
        });
        Ok(keys)
    }

    /// How many `policy.applied` events the ledger holds (a rotation's place among them).
    async fn policy_versions_applied(&self) -> AppResult<u64> {
        let term = [search::event_type("policy.applied")];
        let (mut count, mut end) = (0u64, self.store.size().await?);
        loop {
            let page = self.store.search(&term, 0, end, 1_000).await?;
            let Some(last) = page.last() else { break };
            end = last.index;
            count += page.len() as u64;
        }
        Ok(count)
    }

    /// Every policy version put in force, in ledger order, with its place among every
    /// `policy.applied` event and when; ending with the one in force (`current`). At most
    /// the newest [`MAX_POLICY_VERSIONS`].
    async fn policy_history(
        &self,
        current: &Arc<Policy>,
    ) -> AppResult<Vec<(u64, Timestamp, Arc<Policy>)>> {
        let mut applied = Vec::new();
        let mut end = self.store.size().await?;
        let term = [search::event_type("policy.applied")];
        while (applied.len() as u64) < MAX_POLICY_VERSIONS {
            let page = self.store.search(&term, 0, end, 1_000).await?;
            let Some(last) = page.last() else { break };
            end = last.index;
            for entry in page {
                let entry = HistoryEntry::read(entry)?;
                if let EventBody::PolicyApplied(p) = entry.event.body {
                    applied.push((entry.event.at, p.policy));
                }
            }
        }
        let total = self.policy_versions_applied().await?;
        let first = total.saturating_sub(applied.len() as u64);
        applied.reverse();
        let mut compiled: BTreeMap<String, Arc<Policy>> = BTreeMap::new();
        compiled.insert(current.digest().to_owned(), current.clone());
        let mut out = Vec::with_capacity(applied.len() + 1);
        for (place, (at, digest)) in (first..).zip(applied) {
            if !compiled.contains_key(&digest) {
                let Some(record) = self
                    .get_checked::<PolicyRecord>(kind::POLICY_VERSION, &digest)
                    .await?
                else {
                    continue; // a version recorded before versions were kept
                };
                let Ok(policy) = custody_policy::compile_recorded(&record.value.bundle) else {
                    continue;
                };
                compiled.insert(digest.clone(), Arc::new(policy));
            }
            if let Some(p) = compiled.get(&digest) {
                out.push((place, at, p.clone()));
            }
        }
        if out
            .last()
            .is_none_or(|(_, _, p)| p.digest() != current.digest())
        {
            let record: Versioned<PolicyRecord> = self
                .require(kind::POLICY, "current", || {
                    "no policy is in force yet".into()
                })
                .await?;
            out.push((total, record.value.applied_at, current.clone()));
        }
        Ok(out)
    }

    /// Rotates a key to its successor: `request.handover` must be a [`Handover`] signed by
    /// the key handing over (trusted now for that purpose) and by the successor (a key the
    /// keyring has never seen, for any purpose).
    pub async fn rotate_key(&self, actor: &Actor, request: &RotateKey) -> AppResult<KeyChanged> {
        self.permit(actor, crate::Permission::Policy).await?;
        let envelope = &request.handover;
        if envelope.payload_type != HANDOVER_PAYLOAD_TYPE {
            return Err(AppError::invalid(format!(
                "the hand-over's payload type is {:?}, not {HANDOVER_PAYLOAD_TYPE}",
                envelope.payload_type
            )));
        }
        // Read before it is verified only to learn which two keys must have signed it.
        let payload = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(&envelope.payload)
                .map_err(|e| AppError::invalid(format!("the hand-over's payload: {e}")))?
        };
        let handover: Handover = serde_json::from_slice(&payload)
            .map_err(|e| AppError::invalid(format!("the hand-over statement: {e}")))?;
        let successor = PublicKey::from_pem(&handover.public_key)
            .map_err(|e| AppError::invalid(format!("the hand-over's public key: {e}")))?;
        if successor.key_id().to_string() != handover.to {
            return Err(AppError::invalid(format!(
                "the hand-over names successor {} but carries the public key {}",
                handover.to,
                successor.key_id()
            )));
        }
        if handover.purpose == KeyPurpose::PersonalApproval {
            return Err(AppError::invalid(
                "a personal approval key changes by enrolling its successor in the policy ([[person_key]]), which the policy's owners approve; rotate release signer and builder keys here",
            ));
        }
        let ring = self.keyring().await?;
        let Some(old) = ring.get(&handover.from) else {
            return Err(AppError::not_found(format!(
                "key {} is not in the keyring; `custody key list` shows the keys custody trusts",
                handover.from
            )));
        };
        if old.purpose != handover.purpose {
            return Err(AppError::invalid(format!(
                "key {} is a {} key, not a {} key: a key hands over only its own purpose",
                old.key_id,
                old.purpose.describe(),
                handover.purpose.describe()
            )));
        }
        if !old.in_force() {
            return Err(AppError::conflict(format!(
                "key {} ({}) is {} and cannot hand over{}",
                old.key_id,
                old.name,
                old.status(),
                old.successor
                    .as_ref()
                    .map(|s| format!(": it was already rotated to {s}"))
                    .unwrap_or_default()
            )));
        }
        if let Some(seen) = ring.get(&handover.to) {
            return Err(AppError::invalid(format!(
                "the successor {} is already in the keyring (a {} key, {}): a successor must be a new key, and one key never serves two purposes",
                seen.key_id,
                seen.purpose.describe(),
                seen.status()
            )));
        }
        // Both must sign: the old key consents, the new key is held.
        let signers = [old.public_key.clone(), successor.clone()];
        custody_crypto::dsse::verify(envelope, &signers, 2).map_err(|e| {
            AppError::denied(format!(
                "the hand-over must be signed by both {} and {}: {e}",
                handover.from, handover.to
            ))
        })?;
        let keys = vec![KeyUse::of(&old.public_key), KeyUse::of(&successor)];
        let rotation = Rotation {
            purpose: handover.purpose,
            from: handover.from.clone(),
            to: handover.to.clone(),
            public_key: handover.public_key.clone(),
            at: actor.now,
            by: actor.principal.clone(),
            after_versions: self.policy_versions_applied().await?,
        };
        let record = self.keyring_record().await?;
        let (mut next, expect) = match &record {
            Some(r) => (r.value.clone(), Expect::Version(r.version)),
            None => (KeyringRecord::default(), Expect::Absent),
        };
        next.rotations.push(rotation);
        let appended = self
            .append(
                vec![event(
                    actor,
                    EventBody::KeyRotated(events::KeyRotated {
                        purpose: handover.purpose,
                        from: handover.from.clone(),
                        to: handover.to.clone(),
                        public_key: handover.public_key.clone(),
                        handover: envelope.clone(),
                        keys,
                    }),
                )?],
                vec![write(kind::KEYRING, "current", &next, expect)?],
                None,
            )
            .await?;
        Ok(KeyChanged {
            key: handover.from,
            others: vec![handover.to],
            ledger_index: appended.first_index,
        })
    }

    /// Revokes a key: nothing it signed at or after `compromised_since` (else now) counts
    /// from now on, nor anything signed by successors it handed over to since then.
    pub async fn revoke_key(
        &self,
        actor: &Actor,
        key_id: &str,
        request: &RevokeKey,
    ) -> AppResult<KeyChanged> {
        self.permit(actor, crate::Permission::Policy).await?;
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(AppError::invalid(format!(
                "a revocation needs a reason of 1 to {MAX_REASON} characters (what happened, for the auditor and the alert)"
            )));
        }
        crate::limits::label("reason", reason, MAX_REASON)?;
        if let Some(since) = request.compromised_since {
            if since > actor.now {
                return Err(AppError::invalid(format!(
                    "compromised since {} is in the future (now is {})",
                    since.to_second(),
                    actor.now.to_second()
                )));
            }
        }
        let ring = self.keyring().await?;
        let Some(key) = ring.get(key_id) else {
            return Err(AppError::not_found(format!(
                "key {key_id} is not in the keyring; `custody key list` shows every key custody has trusted"
            )));
        };
        if let Some(r) = &key.revoked {
            return Err(AppError::conflict(format!(
                "key {key_id} ({}) was already revoked at {} by {} ({})",
                key.name,
                r.at.to_second(),
                r.by,
                r.reason
            )));
        }
        let record = self.keyring_record().await?;
        let (mut next, expect) = match &record {
            Some(r) => (r.value.clone(), Expect::Version(r.version)),
            None => (KeyringRecord::default(), Expect::Absent),
        };
        let cutoff = request
            .compromised_since
            .map_or(actor.now, |c| c.min(actor.now));
        let successors = ring.handed_over_since(key_id, cutoff, &next);
        let mut signers = vec![key_id.to_owned()];
        signers.extend(successors.iter().cloned());
        let affected = self.signed_since(&signers, cutoff).await?;
        next.revocations.push(Revocation {
            key: key_id.to_owned(),
            purpose: key.purpose,
            reason: reason.to_owned(),
            compromised_since: request.compromised_since,
            at: actor.now,
            by: actor.principal.clone(),
            successors: successors.clone(),
        });
        let appended = self
            .append(
                vec![event(
                    actor,
                    EventBody::KeyRevoked(events::KeyRevoked {
                        purpose: key.purpose,
                        reason: reason.to_owned(),
                        compromised_since: request.compromised_since,
                        successors: successors.clone(),
                        affected,
                        keys: vec![KeyUse::of(&key.public_key)],
                    }),
                )?],
                vec![write(kind::KEYRING, "current", &next, expect)?],
                None,
            )
            .await?;
        Ok(KeyChanged {
            key: key_id.to_owned(),
            others: successors,
            ledger_index: appended.first_index,
        })
    }
}
