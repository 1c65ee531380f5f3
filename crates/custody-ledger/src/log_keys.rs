//! The log key's history: which key signs the checkpoints of which sizes, learned only from
//! hand-overs the keys themselves signed.
//!
//! A log key is replaced by appending a `log.key_rotated` event ([`LogKeyRotation`]) and
//! signing the checkpoint that ends with it, the *hand-over checkpoint*, with both the old
//! and the new key (the origin line stays the same, so a C2SP verifier holding either key
//! accepts it). Checkpoints smaller than the hand-over are the old key's, later ones the new
//! key's alone.
//!
//! [`LogKeys::follow`] is how a verifier that trusts one key comes to trust the next: the
//! hand-over checkpoint must verify with the key it trusts *and* with the new key, and the
//! event, proved included as its last leaf, must name the trusted key as the old one and
//! the new key exactly. So the history comes from what the keys signed, never from a
//! database row or a file beside them: a rotation cannot be forged without the old key,
//! and (because the new key signs too) a history cannot be grafted onto a key by someone
//! holding only an older one.
//!
//! What this module does not do: find the hand-overs (callers look the events up and
//! bring the checkpoint, the leaf and its inclusion proof) or store anything.

use custody_crypto::note::{self, NoteVerifier};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::{Hash, leaf_hash};
use crate::verify::verify_inclusion;

/// The `type` of the ledger event that hands the log over to a new key.
pub const LOG_KEY_ROTATED: &str = "log.key_rotated";

/// The fields of a `log.key_rotated` event (besides `type`, `at`, `actor`, `auth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogKeyRotation {
    /// The retiring key's id (hex SHA-256 of its SPKI DER).
    pub old_key_id: String,
    /// The retiring key as a C2SP verifier key: `origin+hash+base64(0x01 ‖ key)`.
    pub old_key: String,
    /// The successor's key id.
    pub new_key_id: String,
    /// The successor as a C2SP verifier key (its public key, under the same origin).
    pub new_key: String,
    /// The successor's 4-byte note key hash, 8 hex digits.
    pub new_key_hash: String,
    /// The size of the hand-over checkpoint: this event is its last leaf.
    pub size: u64,
}

impl LogKeyRotation {
    /// The hand-over from `old` to `new` at a checkpoint of `size` entries.
    pub fn new(old: &NoteVerifier, new: &NoteVerifier, size: u64) -> Self {
        LogKeyRotation {
            old_key_id: old.public_key().key_id().to_string(),
            old_key: old.to_text(),
            new_key_id: new.public_key().key_id().to_string(),
            new_key: new.to_text(),
            new_key_hash: format!("{:08x}", new.key_hash()),
            size,
        }
    }

    /// Reads a ledger leaf: `None` if it is not a `log.key_rotated` event, an error if it
    /// is one but malformed.
    pub fn from_leaf(leaf: &[u8]) -> Option<Result<Self, CheckpointError>> {
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<&'a str>,
        }
        let kind: Kind<'_> = serde_json::from_slice(leaf).ok()?;
        if kind.kind != Some(LOG_KEY_ROTATED) {
            return None;
        }
        let bad =
            |e: String| CheckpointError::Handover(format!("the {LOG_KEY_ROTATED} event: {e}"));
        Some(
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(leaf)
                .map_err(|e| bad(e.to_string()))
                .and_then(|mut fields| {
                    for envelope in ["type", "at", "actor", "auth"] {
                        fields.remove(envelope);
                    }
                    serde_json::from_value(fields.into()).map_err(|e| bad(e.to_string()))
                }),
        )
    }

    /// The successor's verifier, checked against the key id and key hash recorded beside it.
    pub fn successor(&self) -> Result<NoteVerifier, CheckpointError> {
        let bad = |e: String| CheckpointError::Handover(e);
        let new = NoteVerifier::from_text(&self.new_key)
            .map_err(|e| bad(format!("the new key {:?}: {e}", self.new_key)))?;
        if self.new_key_hash != format!("{:08x}", new.key_hash())
            || self.new_key_id != new.public_key().key_id().to_string()
        {
            return Err(bad(format!(
                "the new key's recorded hash {} or id {} is not that of {}",
                self.new_key_hash, self.new_key_id, self.new_key
            )));
        }
        Ok(new)
    }
}

/// The keys of one log, in the order they signed, with the hand-over size of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKeys {
    /// `(hand-over size, key)`; the first key's size is 0 (it signed from the start).
    eras: Vec<(u64, NoteVerifier)>,
}

impl LogKeys {
    /// A history that starts with `first` (the key a verifier trusts to begin with).
    pub fn new(first: NoteVerifier) -> Self {
        LogKeys {
            eras: vec![(0, first)],
        }
    }

    /// The key that signs the log's checkpoints now.
    pub fn current(&self) -> &NoteVerifier {
        // Never empty: `new` puts one key in and nothing takes one out.
        let (_, key) = &self.eras[self.eras.len() - 1];
        key
    }

    /// Every key of this history, in the order they signed.
    pub fn keys(&self) -> impl Iterator<Item = &NoteVerifier> + '_ {
        self.eras.iter().map(|(_, key)| key)
    }

    /// The first key of this history.
    pub fn first(&self) -> &NoteVerifier {
        &self.eras[0].1
    }

    /// The sizes of the hand-over checkpoints followed, oldest first.
    pub fn handovers(&self) -> impl Iterator<Item = u64> + '_ {
        self.eras.iter().skip(1).map(|(size, _)| *size)
    }

    /// Whether `key` is one of this history's keys.
    pub fn contains(&self, key: &NoteVerifier) -> bool {
        self.eras.iter().any(|(_, k)| k == key)
    }

    /// Where `key` retired: the size of the hand-over that replaced it and its successor.
    /// `None` for the current key and for a key that is not this history's.
    pub fn retirement(&self, key: &NoteVerifier) -> Option<(u64, &NoteVerifier)> {
        let i = self.eras.iter().position(|(_, k)| k == key)?;
        self.eras.get(i + 1).map(|(size, next)| (*size, next))
    }

    /// The keys that must have signed a checkpoint of `size`: the key in force, and at a
    /// hand-over both the retiring key and its successor.
    fn signers_for(&self, size: u64) -> Vec<&NoteVerifier> {
        let mut signers = Vec::new();
        for (i, (from, key)) in self.eras.iter().enumerate() {
            if i == 0 || *from < size {
                signers = vec![key];
            } else if *from == size {
                signers.push(key);
            }
        }
        signers
    }

    /// Verifies a signed checkpoint with the key in force at its size (both keys at a
    /// hand-over) and parses it. A checkpoint before a hand-over signed only by the new
    /// key, or after it signed only by the old key, is refused.
    pub fn open(&self, signed: &str) -> Result<Checkpoint, CheckpointError> {
        let all: Vec<NoteVerifier> = self.eras.iter().map(|(_, k)| k.clone()).collect();
        // Any of the keys first, to read the size it claims; then exactly the keys due.
        let opened = note::open(signed, &all)?;
        let size = Checkpoint::from_body(opened.text())?.size;
        let mut checkpoint = None;
        for key in self.signers_for(size) {
            checkpoint = Some(Checkpoint::open(signed, key).map_err(|e| {
                CheckpointError::Handover(format!(
                    "a checkpoint of {size} entries must be signed by log key {} ({}): {e}",
                    key.to_text(),
                    self.describe_era(key)
                ))
            })?);
        }
        checkpoint.ok_or_else(|| CheckpointError::Handover("no log key".into()))
    }

    fn describe_era(&self, key: &NoteVerifier) -> String {
        let Some(i) = self.eras.iter().position(|(_, k)| k == key) else {
            return "not a key of this log".into();
        };
        match (self.eras[i].0, self.eras.get(i + 1)) {
            (0, None) => "the only key".into(),
            (from, None) => format!("in force after the hand-over at {from}"),
            (0, Some((to, _))) => format!("in force up to the hand-over at {to}"),
            (from, Some((to, _))) => format!("in force from the hand-over at {from} to {to}"),
        }
    }

    /// Follows a hand-over to the next key: `checkpoint` must verify with the current key
    /// and with the successor, `leaf` must be a `log.key_rotated` event handing the current
    /// key over to that successor at exactly the checkpoint's size, and `proof` must prove
    /// it the checkpoint's last leaf. Returns the hand-over checkpoint. Nothing changes on
    /// an error.
    pub fn follow(
        &mut self,
        checkpoint: &str,
        leaf: &[u8],
        proof: &[Hash],
    ) -> Result<Checkpoint, CheckpointError> {
        let bad = |e: String| CheckpointError::Handover(e);
        let current = self.current().clone();
        let (cp, rotation) = proved_rotation(checkpoint, leaf, proof, &current)?;
        let last = self.eras.last().map_or(0, |(size, _)| *size);
        if cp.size <= last {
            return Err(bad(format!(
                "a hand-over at {} cannot follow the one at {last}",
                cp.size
            )));
        }
        if rotation.old_key != current.to_text()
            || rotation.old_key_id != current.public_key().key_id().to_string()
        {
            return Err(bad(format!(
                "the {LOG_KEY_ROTATED} event hands over {}, not the log key {}",
                rotation.old_key,
                current.to_text()
            )));
        }
        let new = rotation.successor()?;
        self.check_other(&new, &current, checkpoint, "new")?;
        self.eras.push((cp.size, new));
        Ok(cp)
    }

    /// Follows a hand-over backwards, to the key before this history's first: for a
    /// verifier that trusts a later key and reads checkpoints signed before it. The
    /// trusted key vouches for its predecessor by having signed the hand-over: `checkpoint`
    /// must verify with the first key and with the retiring key the event names, the event
    /// must hand that key over to the first key at exactly the checkpoint's size (and
    /// before any hand-over already known), and `proof` must prove it the checkpoint's
    /// last leaf. Returns the hand-over checkpoint. Nothing changes on an error.
    pub fn follow_back(
        &mut self,
        checkpoint: &str,
        leaf: &[u8],
        proof: &[Hash],
    ) -> Result<Checkpoint, CheckpointError> {
        let bad = |e: String| CheckpointError::Handover(e);
        let first = self.first().clone();
        let (cp, rotation) = proved_rotation(checkpoint, leaf, proof, &first)?;
        if let Some((next, _)) = self.eras.get(1).filter(|(next, _)| cp.size >= *next) {
            return Err(bad(format!(
                "a hand-over at {} cannot precede the one at {next}",
                cp.size
            )));
        }
        if rotation.successor()? != first {
            return Err(bad(format!(
                "the {LOG_KEY_ROTATED} event hands over to {}, not the log key {}",
                rotation.new_key,
                first.to_text()
            )));
        }
        let old = NoteVerifier::from_text(&rotation.old_key)
            .map_err(|e| bad(format!("the old key {:?}: {e}", rotation.old_key)))?;
        if rotation.old_key_id != old.public_key().key_id().to_string() {
            return Err(bad(format!(
                "the old key's recorded id {} is not that of {}",
                rotation.old_key_id, rotation.old_key
            )));
        }
        self.check_other(&old, &first, checkpoint, "retiring")?;
        self.eras[0].0 = cp.size;
        self.eras.insert(0, (0, old));
        Ok(cp)
    }

    /// The other key of a hand-over (`role`: "new" or "retiring") is a fresh key under the
    /// same origin as `known`, and signed the hand-over checkpoint too.
    fn check_other(
        &self,
        other: &NoteVerifier,
        known: &NoteVerifier,
        checkpoint: &str,
        role: &str,
    ) -> Result<(), CheckpointError> {
        let bad = |e: String| CheckpointError::Handover(e);
        if other.name() != known.name() || self.contains(other) {
            return Err(bad(format!(
                "the {role} log key {} must be a fresh key under the same origin {}",
                other.to_text(),
                known.name()
            )));
        }
        Checkpoint::open(checkpoint, other).map_err(|e| {
            bad(format!(
                "the hand-over checkpoint is not signed by the {role} log key {}: {e}",
                other.to_text()
            ))
        })?;
        Ok(())
    }
}

/// A hand-over checkpoint signed by `known`, and the `log.key_rotated` event `leaf`,
/// naming its size and proved (by `proof`) its last leaf.
fn proved_rotation(
    checkpoint: &str,
    leaf: &[u8],
    proof: &[Hash],
    known: &NoteVerifier,
) -> Result<(Checkpoint, LogKeyRotation), CheckpointError> {
    let bad = |e: String| CheckpointError::Handover(e);
    let cp = Checkpoint::open(checkpoint, known).map_err(|e| {
        bad(format!(
            "the hand-over checkpoint is not signed by the log key {} trusted: {e}",
            known.to_text()
        ))
    })?;
    if cp.size == 0 {
        return Err(bad("a hand-over checkpoint cannot be empty".into()));
    }
    let rotation = LogKeyRotation::from_leaf(leaf)
        .ok_or_else(|| bad(format!("the leaf is not a {LOG_KEY_ROTATED} event")))??;
    if rotation.size != cp.size {
        return Err(bad(format!(
            "the {LOG_KEY_ROTATED} event names the hand-over at {} but the checkpoint has {} entries",
            rotation.size, cp.size
        )));
    }
    verify_inclusion(&leaf_hash(leaf), cp.size - 1, cp.size, proof, &cp.root).map_err(|e| {
        bad(format!(
            "the {LOG_KEY_ROTATED} event is not the last leaf of the hand-over checkpoint: {e}"
        ))
    })?;
    Ok((cp, rotation))
}

#[cfg(test)]
#[path = "log_keys_tests.rs"]
mod tests;
