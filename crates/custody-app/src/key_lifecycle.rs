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

use std::sync::Arc;

use custody_crypto::PublicKey;
use custody_crypto::dsse::Envelope;
use custody_model::Timestamp;
use custody_policy::{KeyPurpose, Policy};
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};

use crate::app::{App, Versioned, event, write};
use crate::events::{self, EventBody, KeyUse};
use crate::keyring::{Keyring, KeyringRecord, Revocation, Rotation};
use crate::records::{PolicyRecord, kind};
use crate::{Actor, AppError, AppResult};

/// The DSSE payload type of a key hand-over statement.
pub const HANDOVER_PAYLOAD_TYPE: &str = "application/vnd.custody.key-handover+json";

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
    /// Its purpose.
    pub purpose: KeyPurpose,
    /// A rotation's successor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// A revocation's: the successors the key handed over to since the cutoff, revoked
    /// with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_with: Vec<String>,
    /// A revocation: what was recorded, from when nothing counts, and what stopped
    /// counting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevokedNow>,
    /// The ledger index of the event.
    pub ledger_index: u64,
}

/// A revocation as recorded, with its cutoff and what stopped counting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedNow {
    /// The revocation.
    #[serde(flatten)]
    pub revocation: Revocation,
    /// From when nothing the key signed counts.
    pub cutoff: Timestamp,
    /// What stopped counting (as the event and its alert name it).
    pub affected: Vec<String>,
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
        Ok(self.keyring_with_record().await?.0)
    }

    /// The keyring and the record it was built from (a change writes the record expecting
    /// that version, so two changes decided on the same keyring cannot both land).
    async fn keyring_with_record(
        &self,
    ) -> AppResult<(Arc<Keyring>, Option<Arc<Versioned<KeyringRecord>>>)> {
        let record = self.keyring_record().await?;
        let ring = self.keyring_on(record.as_ref()).await?;
        Ok((ring, record))
    }

    /// The keyring built on `record` (and the policy in force and its history).
    async fn keyring_on(
        &self,
        record: Option<&Arc<Versioned<KeyringRecord>>>,
    ) -> AppResult<Arc<Keyring>> {
        let policy = self.policy().await?;
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

    /// Appends a key change: `event`, and the keyring record `next` written expecting the
    /// version the change was decided on. Another change that landed first is a conflict
    /// the caller can retry (the keyring it decides on then includes that change).
    async fn append_key_change(
        &self,
        event: custody_model::CanonicalJson,
        next: &KeyringRecord,
        decided_on: Option<&Arc<Versioned<KeyringRecord>>>,
    ) -> AppResult<u64> {
        let expect = decided_on.map_or(Expect::Absent, |r| Expect::Version(r.version));
        match self
            .append(
                vec![event],
                vec![write(kind::KEYRING, "current", next, expect)?],
                None,
            )
            .await
        {
            Ok(appended) => Ok(appended.first_index),
            Err(AppError::Store(custody_store::StoreError::Conflict { .. })) => {
                Err(AppError::conflict(
                    "another key change landed while this one was decided; run the command again (it is decided afresh on the keyring as it now stands)",
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `key_id` is one of this instance's own keys: the receipt (attestor) key, or
    /// one the opener reserved (the log key).
    pub(crate) fn is_own_key(&self, key_id: &str) -> bool {
        self.attestor.public_key().key_id().to_string() == key_id
            || self
                .reserved_keys
                .lock()
                .is_ok_and(|keys| keys.iter().any(|k| k == key_id))
    }

    /// Reserves this instance's own keys (the log key) for their one purpose: no rotation
    /// may make one of them a release signer or builder, and no policy may name one.
    pub fn reserve_keys(&self, key_ids: impl IntoIterator<Item = String>) {
        if let Ok(mut keys) = self.reserved_keys.lock() {
            keys.extend(key_ids);
        }
    }

    /// Refuses a policy version that would trust a key against the keyring: one of this
    /// instance's own keys, a key the keyring holds for another purpose (one key, one
    /// purpose), a revoked key (never trusted again), or a new `expires` already past (that
    /// would revoke what the key signed since, silently: `custody key revoke
    /// --compromised-since` says so instead).
    pub(crate) async fn keys_may_be_trusted(&self, new: &Policy, now: Timestamp) -> AppResult<()> {
        let named = new.named_keys();
        if let Some(k) = named.iter().find(|k| self.is_own_key(&k.key_id)) {
            return Err(AppError::invalid(format!(
                "{} {} is one of this custody instance's own keys (its log or receipt key): one key never serves two purposes",
                k.file, k.key_id
            )));
        }
        if self
            .get::<PolicyRecord>(kind::POLICY, "current")
            .await?
            .is_none()
        {
            return Ok(()); // the first policy: no keyring yet
        }
        let ring = self.keyring().await?;
        for k in named {
            let known = ring.get(&k.key_id);
            if let Some(e) = known.filter(|e| e.purpose != k.purpose) {
                return Err(AppError::invalid(format!(
                    "{} names key {} as a {} key, but the keyring holds it as a {} key ({}): one key never serves two purposes",
                    k.file,
                    k.key_id,
                    k.purpose.describe(),
                    e.purpose.describe(),
                    e.name
                )));
            }
            if let Some(r) = known.and_then(|e| e.revoked.as_ref()) {
                return Err(AppError::invalid(format!(
                    "{} names key {}, revoked at {} ({}): a revoked key is never trusted again; remove it and name a new key",
                    k.file,
                    k.key_id,
                    r.at.to_second(),
                    r.reason
                )));
            }
            let changed = known.is_none_or(|e| e.expires != k.expires);
            if let Some(end) = k.expires.filter(|end| changed && *end <= now) {
                return Err(AppError::invalid(format!(
                    "{}: key {} would expire at {}, which is past: that would silently revoke what it signed since; use `custody key revoke --compromised-since` instead",
                    k.file,
                    k.key_id,
                    end.to_second()
                )));
            }
        }
        Ok(())
    }

    /// Why a personal key the keyring does not count now (revoked, retired) may not sign a
    /// statement about to be recorded, if it may not (`Ok(Err(why))`). The keyring is built
    /// on its record as the store holds it now (`fresh`: read by the caller with other
    /// records, not through the state cache), never a cached one that another process's
    /// revocation may have outdated.
    ///
    /// Invariant: a personal key revoked in the ledger signs nothing recorded after its
    /// revocation, whatever time the statement and the writer's clock give. Times are an
    /// input the data directory's operator may set (`CUSTODY_NOW`), the ledger's order is
    /// not: a statement backdated before the compromise still comes after the revocation.
    pub(crate) async fn personal_key_counts(
        &self,
        key_id: &str,
        now: Timestamp,
        fresh: Option<Option<Versioned<KeyringRecord>>>,
    ) -> AppResult<Result<(), String>> {
        let record = match fresh {
            Some(record) => record,
            None => {
                self.get_checked::<KeyringRecord>(kind::KEYRING, "current")
                    .await?
            }
        };
        let ring = self.keyring_on(record.map(Arc::new).as_ref()).await?;
        if let Err(why) = ring.counts(key_id, KeyPurpose::PersonalApproval, now) {
            return Ok(Err(why));
        }
        Ok(match ring.get(key_id).and_then(|e| e.revoked.as_ref()) {
            Some(r) => Err(format!(
                "key {key_id} was revoked at {} ({}): it signs nothing recorded after its revocation, whatever time the statement carries",
                r.at.to_second(),
                r.reason
            )),
            None => Ok(()),
        })
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
        let payload = envelope
            .unverified_payload()
            .map_err(|e| AppError::invalid(format!("the hand-over's payload: {e}")))?;
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
        let (ring, record) = self.keyring_with_record().await?;
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
                match &old.successor {
                    Some(s) => format!(": it was already rotated to {s}; rotate that key instead"),
                    None => "; trust a new key through a policy change (`custody policy propose`)"
                        .to_owned(),
                }
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
        if self.is_own_key(&handover.to) {
            return Err(AppError::invalid(format!(
                "the successor {} is one of this custody instance's own keys (its log or receipt key): one key never serves two purposes",
                handover.to
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
        let mut next = record.as_ref().map(|r| r.value.clone()).unwrap_or_default();
        next.rotations.push(Rotation {
            purpose: handover.purpose,
            from: handover.from.clone(),
            to: handover.to.clone(),
            public_key: handover.public_key.clone(),
            at: actor.now,
            by: actor.principal.clone(),
            after_versions: self.policy_versions_applied().await?,
        });
        let event = event(
            actor,
            EventBody::KeyRotated(events::KeyRotated {
                purpose: handover.purpose,
                from: handover.from.clone(),
                to: handover.to.clone(),
                public_key: handover.public_key.clone(),
                handover: envelope.clone(),
                keys,
            }),
        )?;
        let ledger_index = self
            .append_key_change(event, &next, record.as_ref())
            .await?;
        Ok(KeyChanged {
            key: handover.from,
            purpose: handover.purpose,
            successor: Some(handover.to),
            revoked_with: Vec::new(),
            revocation: None,
            ledger_index,
        })
    }

    /// Revokes a key (named by its id or a unique prefix of it, see
    /// [`Keyring::resolve`]): nothing it signed at or after `compromised_since` (else now)
    /// counts from now on, nor anything signed by successors it handed over to since then.
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
        let (ring, record) = self.keyring_with_record().await?;
        // The key as the keyring names it: what is recorded is its whole id, never the
        // prefix it was given by.
        let key = ring.resolve(key_id)?;
        let key_id = key.key_id.as_str();
        let cutoff = request
            .compromised_since
            .map_or(actor.now, |c| c.min(actor.now));
        // Revoked already: only a revocation reaching further back adds anything.
        if let Some(r) = key.revoked.as_ref().filter(|r| r.cutoff() <= cutoff) {
            return Err(AppError::conflict(format!(
                "key {key_id} ({}) was already revoked at {} by {} ({}), from {} on; to move the compromise time earlier, revoke it again with an earlier --compromised-since",
                key.name,
                r.at.to_second(),
                r.by,
                r.reason,
                r.cutoff().to_second()
            )));
        }
        let mut next = record.as_ref().map(|r| r.value.clone()).unwrap_or_default();
        let successors = ring.handed_over_since(key_id, cutoff, &next);
        let mut signers = vec![key_id.to_owned()];
        signers.extend(successors.iter().cloned());
        let affected = self.signed_since(&signers, cutoff, actor.now).await?;
        let revocation = Revocation {
            key: key_id.to_owned(),
            purpose: key.purpose,
            reason: reason.to_owned(),
            compromised_since: request.compromised_since,
            at: actor.now,
            by: actor.principal.clone(),
            successors: successors.clone(),
        };
        next.revocations.push(revocation.clone());
        let event = event(
            actor,
            EventBody::KeyRevoked(events::KeyRevoked {
                purpose: key.purpose,
                reason: reason.to_owned(),
                compromised_since: request.compromised_since,
                successors: successors.clone(),
                affected: affected.clone(),
                keys: vec![KeyUse::of(&key.public_key)],
            }),
        )?;
        let ledger_index = self
            .append_key_change(event, &next, record.as_ref())
            .await?;
        Ok(KeyChanged {
            key: key_id.to_owned(),
            purpose: key.purpose,
            successor: None,
            revoked_with: successors,
            revocation: Some(RevokedNow {
                revocation,
                cutoff,
                affected,
            }),
            ledger_index,
        })
    }
}
