//! The keyring: every key custody has trusted, with its one purpose, algorithm, name and
//! owner, the spans of time it was trusted, its successor, and its revocation; and the one
//! rule every signature check uses (DESIGN invariant 10):
//!
//! > a signature counts if the ledger recorded it while its key was trusted for that
//! > purpose, and before the key's revocation (or the time it was compromised since).
//!
//! So rotating a key never breaks what it signed while valid, and revoking one with a
//! compromise time denies exactly what the ledger recorded after that time.
//!
//! The keyring changes only through ledger events, and is built from them here (pure: no
//! store, no clock):
//! - **policy versions** (`policy.applied`): a key in a version's bundle is trusted for the
//!   purpose the bundle gives it from the version's application until a version drops it.
//!   A version that puts a new key at the file of a dropped one of the same purpose makes
//!   it the dropped key's successor (a rotation by reviewed policy change);
//! - **`key.rotated`**: the key hands its purpose to a successor, the hand-over signed by
//!   both. From then on a policy version naming the old key names its successor (the
//!   bundle catches up when its owners next change it);
//! - **`key.revoked`**: kept in the checked state record `keyring/current`
//!   ([`KeyringRecord`]) with the rotations, which the projection check compares with the
//!   ledger like every record a decision reads.
//!
//! A key never serves two purposes: the policy compiler refuses a builder key that also
//! signs releases, and a rotation's successor must be a key the keyring has never seen.

use std::collections::BTreeMap;

use custody_crypto::PublicKey;
use custody_model::Timestamp;
use custody_policy::{KeyPurpose, Policy};
use serde::{Deserialize, Serialize};

/// Longest chain of successors followed (a rotation a day for years stays far below).
const MAX_CHAIN: usize = 1_000;

/// The key events the ledger recorded, as the checked state record `keyring/current`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringRecord {
    /// Every rotation, in ledger order.
    pub rotations: Vec<Rotation>,
    /// Every revocation, in ledger order.
    pub revocations: Vec<Revocation>,
}

/// A recorded hand-over from one key to its successor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The purpose handed over.
    pub purpose: KeyPurpose,
    /// The key retired.
    pub from: String,
    /// Its successor.
    pub to: String,
    /// The successor's public key (SPKI PEM).
    pub public_key: String,
    /// When the ledger recorded it.
    pub at: Timestamp,
    /// Who recorded it.
    pub by: String,
    /// How many policy versions the ledger had put in force before it: its place among
    /// them (ledger order, which event times need not follow).
    pub after_versions: u64,
}

/// A recorded revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The key revoked.
    pub key: String,
    /// Its purpose.
    pub purpose: KeyPurpose,
    /// Why.
    pub reason: String,
    /// When it was compromised, if it was.
    pub compromised_since: Option<Timestamp>,
    /// When the ledger recorded the revocation.
    pub at: Timestamp,
    /// Who revoked it.
    pub by: String,
    /// Successors it handed over to after the compromise, revoked with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successors: Vec<String>,
}

impl Revocation {
    /// From when nothing the key signed counts: the compromise time if earlier than the
    /// revocation, else the revocation.
    pub fn cutoff(&self) -> Timestamp {
        self.compromised_since.map_or(self.at, |c| c.min(self.at))
    }
}

/// A span of time a key was trusted: from `from`, until `until` (`None`: still).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Trusted from.
    pub from: Timestamp,
    /// Retired at (exclusive), if it was.
    pub until: Option<Timestamp>,
}

impl Span {
    fn holds(&self, at: Timestamp) -> bool {
        self.from <= at && self.until.is_none_or(|u| at < u)
    }
}

/// How a key came into the keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum Introduced {
    /// A policy version's bundle named it (in file `file`).
    Policy {
        /// The bundle file.
        file: String,
    },
    /// A signed hand-over from `from` made it the successor.
    Rotation {
        /// The key it succeeded.
        from: String,
    },
}

/// One key of the keyring.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Its key id.
    pub key_id: String,
    /// Its one purpose.
    pub purpose: KeyPurpose,
    /// Its algorithm.
    pub algorithm: String,
    /// What the policy calls it (a successor by hand-over: its predecessor's name).
    pub name: String,
    /// Who holds the private key, when known.
    pub owner: Option<String>,
    /// How it came in.
    pub introduced: Introduced,
    /// When it was trusted, oldest first.
    pub trusted: Vec<Span>,
    /// The key that took its place, if one did.
    pub successor: Option<String>,
    /// The key whose place it took, if it took one.
    pub predecessor: Option<String>,
    /// Its revocation, if it was revoked (directly, or with a compromised predecessor).
    pub revoked: Option<Revocation>,
    /// When the policy stops trusting it, if it says (a successor by hand-over inherits
    /// its predecessor's).
    pub expires: Option<Timestamp>,
    /// The key itself.
    pub public_key: PublicKey,
}

/// A key of the keyring as people and the API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    /// Its key id.
    pub key_id: String,
    /// Its one purpose.
    pub purpose: KeyPurpose,
    /// Its algorithm.
    pub algorithm: String,
    /// What the policy calls it.
    pub name: String,
    /// Who holds the private key, when known.
    pub owner: Option<String>,
    /// `active`, `retired` or `revoked`.
    pub status: String,
    /// How it came in.
    pub introduced: Introduced,
    /// When it was trusted, oldest first.
    pub trusted: Vec<Span>,
    /// The key that took its place.
    pub successor: Option<String>,
    /// The key whose place it took.
    pub predecessor: Option<String>,
    /// Its revocation.
    pub revoked: Option<Revocation>,
    /// When the policy stops trusting it, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// Its public key (SPKI PEM).
    pub public_key: String,
}

impl From<&KeyEntry> for KeyView {
    fn from(e: &KeyEntry) -> KeyView {
        KeyView {
            key_id: e.key_id.clone(),
            purpose: e.purpose,
            algorithm: e.algorithm.clone(),
            name: e.name.clone(),
            owner: e.owner.clone(),
            status: e.status().to_owned(),
            introduced: e.introduced.clone(),
            trusted: e.trusted.clone(),
            successor: e.successor.clone(),
            predecessor: e.predecessor.clone(),
            revoked: e.revoked.clone(),
            expires: e.expires,
            public_key: e.public_key.to_pem(),
        }
    }
}

impl KeyEntry {
    /// Whether it is trusted now: its last span is open and it is not revoked.
    pub fn in_force(&self) -> bool {
        self.revoked.is_none() && self.trusted.last().is_some_and(|s| s.until.is_none())
    }

    /// Its status in one word: `active`, `retired` or `revoked`.
    pub fn status(&self) -> &'static str {
        if self.revoked.is_some() {
            "revoked"
        } else if self.in_force() {
            "active"
        } else {
            "retired"
        }
    }

    /// When its trust ends for good: the revocation's cutoff, else the end of its last
    /// span.
    pub fn ended(&self) -> Option<Timestamp> {
        match &self.revoked {
            Some(r) => Some(r.cutoff()),
            None => self.trusted.last().and_then(|s| s.until),
        }
    }
}

/// Every key custody has trusted, by key id.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, KeyEntry>,
}

impl Keyring {
    /// The keyring as `versions` and `record` (the rotations and revocations) make it.
    /// `versions` are the policy versions put in force, in ledger order, each with its
    /// place among every `policy.applied` event (0 for the first) and when. Changes apply
    /// in ledger order: each rotation after the versions it followed.
    pub fn build(versions: &[(u64, Timestamp, &Policy)], record: &KeyringRecord) -> Keyring {
        let mut ring = Keyring::default();
        let mut rotations = record.rotations.iter().peekable();
        for (place, at, policy) in versions {
            while let Some(r) = rotations.next_if(|r| r.after_versions <= *place) {
                ring.apply_rotation(r);
            }
            ring.apply_version(*at, policy);
        }
        for r in rotations {
            ring.apply_rotation(r);
        }
        for r in &record.revocations {
            ring.apply_revocation(r);
        }
        ring
    }

    /// The key the chain of successors from `key_id` ends at.
    fn holder(&self, key_id: &str) -> String {
        let mut id = key_id.to_owned();
        for _ in 0..MAX_CHAIN {
            match self.keys.get(&id).and_then(|e| e.successor.clone()) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    fn apply_version(&mut self, at: Timestamp, policy: &Policy) {
        // What the version trusts, each key read through its successors (a version naming
        // a key rotated away names its successor).
        let mut named: BTreeMap<String, (KeyPurpose, &custody_policy::NamedKey, PublicKey)> =
            BTreeMap::new();
        for key in policy.named_keys() {
            let Some(public) = public_key(policy, &key.key_id, key.purpose) else {
                continue;
            };
            let holder = self.holder(&key.key_id);
            named.insert(holder, (key.purpose, key, public));
        }
        // Keys this version drops are retired now.
        let dropped: Vec<String> = self
            .keys
            .values()
            .filter(|e| e.in_force() && !named.contains_key(&e.key_id))
            .map(|e| e.key_id.clone())
            .collect();
        for id in &dropped {
            if let Some(e) = self.keys.get_mut(id) {
                if let Some(span) = e.trusted.last_mut() {
                    span.until = Some(at);
                }
            }
        }
        for (id, (purpose, key, public)) in named {
            let entry = self.keys.entry(id.clone()).or_insert_with(|| KeyEntry {
                key_id: id.clone(),
                purpose,
                algorithm: key.algorithm.clone(),
                name: key.name.clone(),
                owner: key.owner.clone(),
                introduced: Introduced::Policy {
                    file: key.file.clone(),
                },
                trusted: Vec::new(),
                successor: None,
                predecessor: None,
                revoked: None,
                expires: key.expires,
                public_key: public.clone(),
            });
            if entry.purpose != purpose {
                // One key, one purpose: a key once trusted for another purpose is not
                // trusted for this one.
                continue;
            }
            if key.key_id == id {
                entry.name = key.name.clone();
                entry.owner = key.owner.clone();
            }
            entry.expires = key.expires;
            if entry.trusted.last().is_none_or(|s| s.until.is_some()) {
                entry.trusted.push(Span {
                    from: at,
                    until: None,
                });
            }
        }
        // A new key at the file of a dropped key of the same purpose is its successor.
        for old in dropped {
            let Some(o) = self.keys.get(&old) else {
                continue;
            };
            let (Introduced::Policy { file }, purpose) = (&o.introduced, o.purpose) else {
                continue;
            };
            if o.successor.is_some() {
                continue;
            }
            let next = policy
                .named_keys()
                .iter()
                .find(|k| &k.file == file && k.purpose == purpose && k.key_id != old)
                .map(|k| k.key_id.clone())
                .filter(|n| {
                    self.keys
                        .get(n)
                        .is_some_and(|e| e.predecessor.is_none() && e.trusted.len() == 1)
                });
            if let Some(next) = next {
                if let Some(o) = self.keys.get_mut(&old) {
                    o.successor = Some(next.clone());
                }
                if let Some(n) = self.keys.get_mut(&next) {
                    n.predecessor = Some(old);
                }
            }
        }
    }

    fn apply_rotation(&mut self, r: &Rotation) {
        let Ok(public) = PublicKey::from_pem(&r.public_key) else {
            return;
        };
        let Some(from) = self.keys.get_mut(&r.from) else {
            return;
        };
        if let Some(span) = from.trusted.last_mut() {
            if span.until.is_none() {
                span.until = Some(r.at);
            }
        }
        from.successor = Some(r.to.clone());
        let (name, owner, expires) = (from.name.clone(), from.owner.clone(), from.expires);
        self.keys.insert(
            r.to.clone(),
            KeyEntry {
                key_id: r.to.clone(),
                purpose: r.purpose,
                algorithm: public.algorithm().to_string(),
                name,
                owner,
                introduced: Introduced::Rotation {
                    from: r.from.clone(),
                },
                trusted: vec![Span {
                    from: r.at,
                    until: None,
                }],
                successor: None,
                predecessor: Some(r.from.clone()),
                revoked: None,
                expires,
                public_key: public,
            },
        );
    }

    fn apply_revocation(&mut self, r: &Revocation) {
        for id in std::iter::once(&r.key).chain(&r.successors) {
            if let Some(e) = self.keys.get_mut(id) {
                // A later revocation only ever reaches further back.
                if e.revoked
                    .as_ref()
                    .is_none_or(|was| r.cutoff() < was.cutoff())
                {
                    e.revoked = Some(r.clone());
                }
            }
        }
    }

    /// One key.
    pub fn get(&self, key_id: &str) -> Option<&KeyEntry> {
        self.keys.get(key_id)
    }

    /// Every key, by key id.
    pub fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        self.keys.values()
    }

    /// Every key ever trusted for `purpose` (the candidates a signature is checked
    /// against; [`Keyring::counts`] then says whether it counts).
    pub fn candidates(&self, purpose: KeyPurpose) -> Vec<PublicKey> {
        self.keys
            .values()
            .filter(|e| e.purpose == purpose)
            .map(|e| e.public_key.clone())
            .collect()
    }

    /// Whether a signature by `key_id`, recorded by the ledger at `signed_at`, counts for
    /// `purpose`; if not, why (for a person: which key, what happened to it, when).
    pub fn counts(
        &self,
        key_id: &str,
        purpose: KeyPurpose,
        signed_at: Timestamp,
    ) -> Result<(), String> {
        let Some(e) = self.keys.get(key_id) else {
            return Err(format!("key {key_id} is not in the keyring"));
        };
        if e.purpose != purpose {
            return Err(format!(
                "key {key_id} ({}) is a {} key, not a {} key",
                e.name,
                e.purpose.describe(),
                purpose.describe()
            ));
        }
        if let Some(r) = &e.revoked {
            if signed_at >= r.cutoff() {
                let since = match r.compromised_since {
                    Some(c) => format!(", compromised since {}", c.to_second()),
                    None => String::new(),
                };
                return Err(format!(
                    "key {key_id} ({}) was revoked at {}{since} ({}), and this was signed at {}: re-sign it with a trusted key",
                    e.name,
                    r.at.to_second(),
                    r.reason,
                    signed_at.to_second()
                ));
            }
        }
        if let Some(end) = e.expires.filter(|end| signed_at >= *end) {
            return Err(format!(
                "key {key_id} ({}) expired at {}, before this was signed ({}): sign with its successor",
                e.name,
                end.to_second(),
                signed_at.to_second()
            ));
        }
        if e.trusted.iter().any(|s| s.holds(signed_at)) {
            return Ok(());
        }
        // Signed before the keyring first trusted it: the policy that adopted the key
        // adopted what its holder had signed with it (clocks of separate writers need not
        // agree to the second, nor do the demo's back-dated stories). Only what it signed
        // after it retired, or after its revocation's cutoff, does not count.
        if e.trusted.first().is_none_or(|first| signed_at < first.from) {
            return Ok(());
        }
        Err(match e.ended() {
            Some(end) => format!(
                "key {key_id} ({}) was retired at {}{}, before this was signed ({})",
                e.name,
                end.to_second(),
                e.successor
                    .as_ref()
                    .map(|s| format!(" (its successor is {s})"))
                    .unwrap_or_default(),
                signed_at.to_second()
            ),
            None => format!(
                "key {key_id} ({}) was not trusted when this was signed ({}): the policy had dropped it then",
                e.name,
                signed_at.to_second()
            ),
        })
    }

    /// The key of `policy` that `key_id` counts as, when not itself: following its
    /// successors to one the policy names (a retired key's old signatures count in its
    /// successor's place), else its predecessors (a successor by hand-over counts in the
    /// place of the key the bundle still names). `None`: itself, or no key of the policy.
    pub fn counts_as(&self, key_id: &str, policy: &Policy) -> Option<String> {
        let named = |id: &str| policy.named_key(id).is_some();
        if named(key_id) {
            return None;
        }
        for step in [
            (|e: &KeyEntry| e.successor.clone()) as fn(&KeyEntry) -> Option<String>,
            |e: &KeyEntry| e.predecessor.clone(),
        ] {
            let mut id = key_id.to_owned();
            for _ in 0..MAX_CHAIN {
                let Some(next) = self.keys.get(&id).and_then(step) else {
                    break;
                };
                if named(&next) {
                    return Some(next);
                }
                id = next;
            }
        }
        None
    }

    /// The successors `key_id` handed over to by rotation at or after `since`, and
    /// theirs, in order (revoked with it when it is revoked as compromised since then).
    pub fn handed_over_since(
        &self,
        key_id: &str,
        since: Timestamp,
        record: &KeyringRecord,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut from = key_id.to_owned();
        for _ in 0..MAX_CHAIN {
            let Some(r) = record.rotations.iter().find(|r| r.from == from) else {
                break;
            };
            if r.at >= since || !out.is_empty() {
                out.push(r.to.clone());
            }
            from = r.to.clone();
        }
        out
    }
}

/// The public key `policy` names by `key_id` for `purpose`.
fn public_key(policy: &Policy, key_id: &str, purpose: KeyPurpose) -> Option<PublicKey> {
    match purpose {
        KeyPurpose::ReleaseSigner => policy.release_key(key_id).cloned(),
        KeyPurpose::Builder => policy
            .builders()
            .iter()
            .find(|b| b.key_id == key_id)
            .map(|b| b.key.clone()),
        KeyPurpose::PersonalApproval => policy.person_key(key_id).map(|k| k.key.clone()),
    }
}
