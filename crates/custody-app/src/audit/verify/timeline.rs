//! The key history a bundle records: the policy versions in ledger order (the keys each
//! trusts), and the key hand-overs and revocations between them. Every envelope is checked
//! against the keys this says were trusted at its ledger index ([`Timeline::keys`]); what a
//! revocation entered later took back is found by [`Timeline::withdrawn`].

use std::collections::HashMap;
use std::sync::Arc;

use custody_crypto::PublicKey;
use custody_crypto::dsse;
use custody_policy::{Bundle, KeyPurpose, Policy};

use super::{Check, Failure, fail};

/// The policy versions the ledger records, in ledger order, and the key hand-overs and
/// revocations between them: the key history.
#[derive(Default)]
pub(crate) struct Timeline {
    versions: Vec<Version>,
    by_digest: HashMap<String, usize>,
    /// `key.rotated` entries whose hand-over verified with both keys: (index, purpose,
    /// from, successor).
    handovers: Vec<(u64, KeyPurpose, String, PublicKey)>,
    /// `key.revoked` entries, one per key they revoke.
    revocations: Vec<Revocation>,
}

/// A key's revocation: from its cutoff on, nothing the key signed counts.
pub(crate) struct Revocation {
    /// The `key.revoked` entry.
    pub(crate) index: u64,
    /// The key (the one revoked, or a successor it handed over to, revoked with it).
    pub(crate) key: String,
    /// The compromise time, else the revocation's.
    pub(crate) cutoff: custody_model::Timestamp,
    /// Why, as recorded.
    pub(crate) reason: String,
}

/// A policy version and where it took effect.
pub(crate) struct Version {
    /// The `policy.applied` entry.
    pub(crate) index: u64,
    /// Its digest.
    pub(crate) digest: String,
    /// Compiled as recorded (`None`: it did not compile, which was reported).
    pub(crate) policy: Option<Arc<Policy>>,
}

impl Timeline {
    /// The version in force at ledger index `index` (applied by an earlier entry).
    pub(crate) fn at(&self, index: u64) -> Option<&Version> {
        let n = self.versions.partition_point(|v| v.index < index);
        n.checked_sub(1).map(|n| &self.versions[n])
    }

    /// A version by digest.
    pub(crate) fn by_digest(&self, digest: &str) -> Option<&Version> {
        self.by_digest.get(digest).map(|&n| &self.versions[n])
    }

    /// The newest version that compiled.
    pub(crate) fn latest(&self) -> Option<&Policy> {
        self.versions.iter().rev().find_map(|v| v.policy.as_deref())
    }

    /// The keys trusted for `purpose` at ledger index `index`, for what the ledger recorded
    /// at `at` (the keyring's rule, as far as the entries before `index` tell): the policy
    /// in force's keys, each followed through its verified hand-overs (a key that handed
    /// over no longer counts), without the keys revoked with a cutoff at or before `at`,
    /// and without personal keys revoked before `index` at all: a personal statement is
    /// recorded as it is made, so one recorded after its key's revocation counts for
    /// nothing, whatever time it carries (times can be set; the ledger's order cannot).
    pub(crate) fn keys(
        &self,
        index: u64,
        purpose: KeyPurpose,
        at: custody_model::Timestamp,
    ) -> Vec<PublicKey> {
        let Some(policy) = self.at(index).and_then(|v| v.policy.as_deref()) else {
            return Vec::new();
        };
        let mut keys: Vec<PublicKey> = match purpose {
            KeyPurpose::ReleaseSigner => policy.release_keys().cloned().collect(),
            KeyPurpose::Builder => policy.builders().iter().map(|b| b.key.clone()).collect(),
            KeyPurpose::PersonalApproval => {
                policy.person_keys().iter().map(|k| k.key.clone()).collect()
            }
        };
        for (i, p, from, to) in &self.handovers {
            if *i < index && *p == purpose {
                if let Some(n) = keys.iter().position(|k| k.key_id().to_string() == *from) {
                    keys[n] = to.clone();
                }
            }
        }
        keys.retain(|k| {
            let id = k.key_id().to_string();
            !self.revocations.iter().any(|r| {
                r.index < index
                    && r.key == id
                    && (r.cutoff <= at || purpose == KeyPurpose::PersonalApproval)
            })
        });
        keys
    }

    /// A revocation of `key` entered before ledger index `index`, if there is one.
    pub(crate) fn revoked_before(&self, key: &str, index: u64) -> Option<&Revocation> {
        self.revocations
            .iter()
            .find(|r| r.index < index && r.key == key)
    }

    /// The later revocation that withdrew trust from what `key` signed, recorded at ledger
    /// index `index` and time `at`: a revocation entered after it whose cutoff (a compromise
    /// time) is at or before `at`. What was decided then stays right (it is replayed with
    /// the keys known then), but what the signature vouches for no longer counts.
    pub(crate) fn withdrawn(
        &self,
        key: &str,
        index: u64,
        at: custody_model::Timestamp,
    ) -> Option<&Revocation> {
        self.revocations
            .iter()
            .find(|r| r.index > index && r.key == key && r.cutoff <= at)
    }

    /// A `key.rotated` entry: its hand-over must verify with the key handing over (one
    /// trusted for that purpose just before) and with the successor it names.
    pub(super) fn rotated(
        &mut self,
        index: u64,
        at: custody_model::Timestamp,
        r: &crate::events::KeyRotated,
    ) -> Option<Failure> {
        let refused = |why: String| Some(fail(Some(index), Check::Policy, why));
        let Some(from) = self
            .keys(index, r.purpose, at)
            .into_iter()
            .find(|k| k.key_id().to_string() == r.from)
        else {
            return refused(format!(
                "key {} hands over, but it was not a trusted {} key then",
                r.from,
                r.purpose.describe()
            ));
        };
        let to = match PublicKey::from_pem(&r.public_key) {
            Ok(k) if k.key_id().to_string() == r.to => k,
            _ => return refused(format!("the successor's public key is not key {}", r.to)),
        };
        if let Err(e) = dsse::verify(&r.handover, &[from, to.clone()], 2) {
            return refused(format!(
                "the hand-over from {} to {} is not signed by both: {e}",
                r.from, r.to
            ));
        }
        self.handovers.push((index, r.purpose, r.from.clone(), to));
        None
    }

    /// A `key.revoked` entry: the key and the successors it names stop counting from its
    /// cutoff.
    pub(super) fn revoked(
        &mut self,
        index: u64,
        at: custody_model::Timestamp,
        r: &crate::events::KeyRevoked,
    ) {
        let cutoff = r.compromised_since.map_or(at, |c| c.min(at));
        for key in r.keys.iter().map(|k| &k.key).chain(&r.successors) {
            self.revocations.push(Revocation {
                index,
                key: key.clone(),
                cutoff,
                reason: r.reason.clone(),
            });
        }
    }

    pub(super) fn push(
        &mut self,
        index: u64,
        event: &crate::events::PolicyApplied,
    ) -> Option<Failure> {
        let bundle = Bundle {
            files: event.files.clone(),
        };
        let digest = bundle.digest();
        let mut failure = None;
        if digest != event.policy {
            failure = Some(fail(
                Some(index),
                Check::Policy,
                format!(
                    "the policy files digest to {digest}, not the {} the entry names",
                    event.policy
                ),
            ));
        }
        let policy = match custody_policy::compile_recorded(&bundle) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                failure = Some(fail(
                    Some(index),
                    Check::Policy,
                    format!("the recorded policy does not compile: {e}"),
                ));
                None
            }
        };
        self.by_digest
            .insert(event.policy.clone(), self.versions.len());
        self.versions.push(Version {
            index,
            digest: event.policy.clone(),
            policy,
        });
        failure
    }
}
