//! How `custody log check` comes to trust the log key signing now from the key the checker
//! holds: by following each log-key hand-over from it ([`custody_ledger::LogKeys::follow`]:
//! the hand-over checkpoint signed by the key trusted so far and by the next, the
//! `log.key_rotated` event proved its last leaf). The source only says where the
//! hand-overs are (the local store's search index, or the entries a server serves as
//! they are read); every one is verified here, so a source cannot introduce a key.
//!
//! A checker holding a key that is not the log's first follows the hand-overs before it
//! backwards, from the one that introduced its key (its key signed that hand-over, naming
//! its predecessor), so checkpoints kept from before verify too.

use anyhow::anyhow;
use custody_crypto::PublicKey;
use custody_crypto::note::NoteVerifier;
use custody_ledger::{Checkpoint, LogKeyRotation, LogKeys};
use custody_store::{MAX_ENTRIES_PER_READ, SqlStore};

use crate::ledger_source::Ledger;

/// Follows the local ledger's hand-overs from `key`. `Ok(Err)`: a hand-over that fails, or
/// a key that is not this log's (a verdict, not an error).
pub(crate) async fn local(
    store: &SqlStore,
    key: &PublicKey,
    ledger: &Ledger,
) -> anyhow::Result<Result<LogKeys, String>> {
    let trusted = NoteVerifier::new(store.verifier().name(), key)?;
    let mut follower = Follower::new(LogKeys::new(trusted.clone()));
    // The store's own history starts at the ledger's first key.
    follower.started = *store.log_keys().first() == trusted;
    for size in store.log_keys().handovers() {
        let leaf = ledger
            .entries(size - 1, size)
            .await?
            .pop()
            .ok_or_else(|| anyhow!("entry {} is missing", size - 1))?;
        if let Err(why) = follower.leaf(ledger, size - 1, &leaf).await? {
            return Ok(Err(why));
        }
    }
    if !follower.started {
        return Ok(Err(format!(
            "the key {} is not a key of this log (it signs with {} now)",
            trusted.to_text(),
            store.log_keys().current().to_text()
        )));
    }
    Ok(Ok(follower.into_keys()))
}

/// The most hand-overs before the checker's key a walk keeps to follow back (each is a
/// deliberate operator action; a source serving more is not believed).
const MAX_EARLIER: usize = 1_000;

/// Follows hand-overs as the entries are read in order.
pub(crate) struct Follower {
    keys: LogKeys,
    /// Whether the walk reached the checker's key: at the first hand-over naming it as the
    /// old key, or the one naming it as the new key.
    started: bool,
    /// The hand-overs seen before the checker's key, `(index, leaf)`: once the one that
    /// introduced it is found they are followed back, newest first (the checker's key
    /// vouched for its predecessor by signing), so a checkpoint kept before them verifies.
    earlier: Vec<(u64, Vec<u8>)>,
    /// The hand-overs followed forwards, oldest first.
    followed: Vec<Followed>,
}

/// A hand-over followed forwards: its checkpoint (signed by both keys) and the two keys.
pub(crate) struct Followed {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) from: NoteVerifier,
    pub(crate) to: NoteVerifier,
}

impl Follower {
    /// A walk from `keys` (the checker's key alone).
    pub(crate) fn new(keys: LogKeys) -> Follower {
        Follower {
            keys,
            started: false,
            earlier: Vec::new(),
            followed: Vec::new(),
        }
    }

    /// Reads entries `[start, end)` from `ledger` a page at a time, following the
    /// hand-overs among them. `Ok(Err)`: a hand-over that fails.
    pub(crate) async fn entries(
        &mut self,
        ledger: &Ledger,
        start: u64,
        end: u64,
    ) -> anyhow::Result<Result<(), String>> {
        let mut at = start;
        while at < end {
            let page_end = end.min(at + MAX_ENTRIES_PER_READ);
            for (index, leaf) in (at..).zip(ledger.entries(at, page_end).await?) {
                if let Err(why) = self.leaf(ledger, index, &leaf).await? {
                    return Ok(Err(why));
                }
            }
            at = page_end;
        }
        Ok(Ok(()))
    }

    /// Reads entry `index`: a `log.key_rotated` event is followed (its checkpoint fetched
    /// from `ledger` with the inclusion proof). `Ok(Err)`: a hand-over that fails.
    pub(crate) async fn leaf(
        &mut self,
        ledger: &Ledger,
        index: u64,
        leaf: &[u8],
    ) -> anyhow::Result<Result<(), String>> {
        let rotation = match LogKeyRotation::from_leaf(leaf) {
            None => return Ok(Ok(())),
            Some(Ok(rotation)) => rotation,
            Some(Err(e)) => return Ok(Err(format!("entry {index}: {e}"))),
        };
        let current = self.keys.current().to_text();
        if !self.started && rotation.old_key != current {
            // A hand-over before the checker's key; the one to it starts the walk, and
            // those before it are followed back from there.
            if self.earlier.len() >= MAX_EARLIER {
                return Ok(Err(format!(
                    "more than {MAX_EARLIER} log-key hand-overs before the key given"
                )));
            }
            self.earlier.push((index, leaf.to_vec()));
            if rotation.new_key == current {
                self.started = true;
                for (index, leaf) in std::mem::take(&mut self.earlier).iter().rev() {
                    if let Err(why) = self.handover(ledger, *index, leaf, true).await? {
                        return Ok(Err(why));
                    }
                }
            }
            return Ok(Ok(()));
        }
        self.started = true;
        self.handover(ledger, index, leaf, false).await
    }

    /// Follows the hand-over whose event is entry `index`, forwards or `back`.
    async fn handover(
        &mut self,
        ledger: &Ledger,
        index: u64,
        leaf: &[u8],
        back: bool,
    ) -> anyhow::Result<Result<(), String>> {
        let size = index + 1;
        let note = match ledger.checkpoint_at(size).await {
            Ok(note) => note,
            Err(e) => {
                return Ok(Err(format!(
                    "the hand-over checkpoint of {size} entries: {e:#}"
                )));
            }
        };
        let (proof, _) = ledger.inclusion(index, size).await?;
        let from = self.keys.current().clone();
        let followed = if back {
            self.keys.follow_back(&note, leaf, &proof)
        } else {
            self.keys.follow(&note, leaf, &proof)
        };
        match followed {
            Ok(checkpoint) => {
                if !back {
                    let to = self.keys.current().clone();
                    self.followed.push(Followed {
                        checkpoint,
                        from,
                        to,
                    });
                }
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(format!("the log-key hand-over at {size} entries: {e}"))),
        }
    }

    /// The keys followed.
    pub(crate) fn into_keys(self) -> LogKeys {
        self.keys
    }

    /// The keys followed, and the hand-overs followed forwards, oldest first.
    pub(crate) fn into_parts(self) -> (LogKeys, Vec<Followed>) {
        (self.keys, self.followed)
    }
}
