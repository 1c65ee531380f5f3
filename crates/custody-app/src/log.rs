//! The log's reading face, for callers above the app (the server's public routes, its
//! ledger re-check, its access log): the narrow interface through which they reach the
//! store, so that the server never holds the store itself.
//!
//! The proof types are the wire form of `/api/v1/log/proof/…` (hashes as lowercase hex);
//! the CLI reads a server's proofs into the same types.

use custody_crypto::cosignature::CosignatureVerifier;
use custody_ledger::Hash;
use custody_store::{
    AccessEntry, AccessRecord, Entry, IntegrityReport, SignedCheckpoint, SqlStore, Store,
};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::{AppError, AppResult};

/// An RFC 9162 inclusion proof of entry `index` in the tree of `tree_size`, with that
/// tree's root (neither trusted by itself: a reader checks the root against a signed
/// checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InclusionProof {
    /// The entry.
    pub index: u64,
    /// The tree's size.
    pub tree_size: u64,
    /// The tree's root, hex.
    #[serde(with = "hex_hash")]
    #[schema(value_type = String)]
    pub root: Hash,
    /// The audit path, hex, leaf to root.
    #[serde(with = "hex_hashes")]
    #[schema(value_type = Vec<String>)]
    pub hashes: Vec<Hash>,
}

/// An RFC 9162 consistency proof between the trees of `from` and `to` entries, with both
/// roots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    /// The older tree's size.
    pub from: u64,
    /// The newer tree's size.
    pub to: u64,
    /// The older root, hex.
    #[serde(with = "hex_hash")]
    #[schema(value_type = String)]
    pub from_root: Hash,
    /// The newer root, hex.
    #[serde(with = "hex_hash")]
    #[schema(value_type = String)]
    pub to_root: Hash,
    /// The proof, hex.
    #[serde(with = "hex_hashes")]
    #[schema(value_type = Vec<String>)]
    pub hashes: Vec<Hash>,
}

/// A checkpoint as published: its signed note with the witnesses' cosignature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its size.
    pub size: u64,
    /// The signed note, the cosignature lines after the log's own.
    pub note: String,
    /// The witnesses whose lines it carries.
    pub witnesses: Vec<String>,
}

/// The most log-key hand-overs served at once (each is a deliberate operator action).
pub(crate) const MAX_HANDOVERS: u64 = 1_000;

/// The log of an [`App`], read-only but for the access log and cosignatures.
pub struct Log<'a, S: Store> {
    store: &'a S,
}

impl<S: Store> App<S> {
    /// The log, for reading.
    pub fn log(&self) -> Log<'_, S> {
        Log { store: &self.store }
    }
}

impl<S: Store> Log<'_, S> {
    /// The number of entries.
    pub async fn size(&self) -> AppResult<u64> {
        Ok(self.store.size().await?)
    }

    /// The latest signed checkpoint.
    pub async fn checkpoint(&self) -> AppResult<SignedCheckpoint> {
        Ok(self.store.checkpoint().await?)
    }

    /// The entries `[start, end)`, as their leaf bytes.
    pub async fn entries(&self, start: u64, end: u64) -> AppResult<Vec<Entry>> {
        Ok(self.store.entries(start, end).await?)
    }

    /// The log-key hand-overs (`log.key_rotated` entries) at or after index `from`, oldest
    /// first, at most [`MAX_HANDOVERS`]. Public, like the checkpoints: a monitor holding an
    /// old log key follows them to the key signing now, checking each against its
    /// checkpoint (signed by both keys) and inclusion proof, so whoever serves them cannot
    /// introduce a key.
    pub async fn handovers(&self, from: u64) -> AppResult<Vec<Entry>> {
        let terms = [custody_store::search::event_type("log.key_rotated")];
        let end = self.store.size().await?;
        let mut found = self
            .store
            .search(&terms, from.min(end), end, MAX_HANDOVERS)
            .await?;
        found.reverse();
        Ok(found)
    }

    /// The inclusion proof of `index` in the tree of `size` entries.
    pub async fn inclusion(&self, index: u64, size: u64) -> AppResult<InclusionProof> {
        Ok(InclusionProof {
            index,
            tree_size: size,
            hashes: self.store.inclusion_proof(index, size).await?,
            root: self.store.root_at(size).await?,
        })
    }

    /// The consistency proof from the tree of `from` entries to the one of `to`.
    pub async fn consistency(&self, from: u64, to: u64) -> AppResult<ConsistencyProof> {
        Ok(ConsistencyProof {
            from,
            to,
            hashes: self.store.consistency_proof(from, to).await?,
            from_root: self.store.root_at(from).await?,
            to_root: self.store.root_at(to).await?,
        })
    }

    /// The latest checkpoint with the cosignatures kept on it.
    pub async fn published(&self) -> AppResult<Published> {
        let head = self.store.checkpoint().await?;
        self.with_cosignatures(head).await
    }

    /// The checkpoint the log signed at exactly `size` entries, with its cosignatures (how
    /// a monitor holding a retired log key fetches the hand-over checkpoint, signed by both
    /// keys, that introduces the next). Not found when the log signed none of that size.
    pub async fn published_at(&self, size: u64) -> AppResult<Published> {
        match self.store.checkpoints(size, 1).await?.pop() {
            Some(cp) if cp.size == size => self.with_cosignatures(cp).await,
            _ => Err(AppError::not_found(format!(
                "this log signed no checkpoint of {size} entries"
            ))),
        }
    }

    /// The latest checkpoint that at least `quorum` of `witnesses` cosigned, with its
    /// cosignatures (`None`: none has so many yet).
    pub async fn final_checkpoint(
        &self,
        witnesses: &[CosignatureVerifier],
        quorum: usize,
    ) -> AppResult<Option<Published>> {
        if witnesses.is_empty() || quorum == 0 {
            return Ok(None);
        }
        let names: Vec<String> = witnesses.iter().map(|w| w.name().to_owned()).collect();
        let Some(size) = self.store.latest_cosigned(&names, quorum as u64).await? else {
            return Ok(None);
        };
        let Some(cp) = self.store.checkpoints(size, 1).await?.pop() else {
            return Ok(None);
        };
        Ok(Some(self.with_cosignatures(cp).await?))
    }

    async fn with_cosignatures(&self, cp: SignedCheckpoint) -> AppResult<Published> {
        let mut note = cp.note;
        let mut witnesses = Vec::new();
        for c in self.store.cosignatures(cp.size).await? {
            note.push_str(&c.line);
            note.push('\n');
            witnesses.push(c.witness);
        }
        Ok(Published {
            size: cp.size,
            note,
            witnesses,
        })
    }

    /// Keeps the cosignatures that `witnesses` put on a checkpoint this log published:
    /// `note` is that checkpoint's signed note with their lines added (what a witness
    /// returns). Refused unless its text is a stored checkpoint's and at least one known
    /// witness's line verifies (and none fails). Returns the checkpoint as now published.
    pub async fn add_cosignatures(
        &self,
        note: &str,
        witnesses: &[CosignatureVerifier],
    ) -> AppResult<Published> {
        let invalid =
            |e: &dyn std::fmt::Display| AppError::invalid(format!("the cosigned checkpoint: {e}"));
        let (text, _) = custody_crypto::note::split(note).map_err(|e| invalid(&e))?;
        let cp = custody_ledger::Checkpoint::from_body(text).map_err(|e| invalid(&e))?;
        let stored = self.store.checkpoints(cp.size, 1).await?.pop();
        let published = stored.filter(|s| {
            s.size == cp.size && custody_crypto::note::split(&s.note).is_ok_and(|(t, _)| t == text)
        });
        let Some(published) = published else {
            return Err(AppError::not_found(format!(
                "this log published no checkpoint of {} entries with that root",
                cp.size
            )));
        };
        let cosignatures =
            custody_crypto::cosignature::verify(note, witnesses).map_err(|e| invalid(&e))?;
        if cosignatures.is_empty() {
            return Err(AppError::invalid(
                "the checkpoint carries no cosignature by a witness this server is configured to accept",
            ));
        }
        for c in &cosignatures {
            self.store
                .add_cosignature(cp.size, &c.witness, &c.line)
                .await?;
        }
        self.with_cosignatures(published).await
    }

    /// Whether appends can succeed now, and why not (`/readyz`).
    pub async fn readiness(&self) -> custody_store::Readiness {
        self.store.readiness().await
    }

    /// Writes a batch of access-log entries (the one write here: the access log is not the
    /// ledger).
    pub async fn record_access(&self, batch: Vec<AccessEntry>) -> AppResult<()> {
        Ok(self.store.record_access(batch).await?)
    }

    /// Removes the access-log entries recorded before `before` (its retention); how many.
    pub async fn prune_access(&self, before: custody_model::Timestamp) -> AppResult<u64> {
        Ok(self.store.prune_access(&before.to_string()).await?)
    }

    /// Access-log entries after id `after`, at most `limit`.
    pub async fn access_log(&self, after: u64, limit: u64) -> AppResult<Vec<AccessRecord>> {
        Ok(self.store.access_log(after, limit).await?)
    }
}

impl Log<'_, SqlStore> {
    /// The log's name as its checkpoints' signed notes name it (the origin).
    pub fn verifier_key(&self) -> String {
        self.store.verifier().name().to_owned()
    }

    /// Why the last write of the checkpoint file (the restart witness kept outside the
    /// database) failed, if it did: the commits stand, but a rollback while stopped goes
    /// unnoticed past the file's last checkpoint until a write succeeds.
    pub fn checkpoint_file_error(&self) -> Option<String> {
        self.store.checkpoint_file_error()
    }

    /// The whole-ledger check: every leaf against every stored hash and signed checkpoint.
    pub async fn check(&self, progress: impl FnMut(u64) + Send) -> AppResult<IntegrityReport> {
        Ok(self.store.check(progress).await?)
    }
}

/// A hash as 64 lowercase hex digits.
pub(crate) mod hex_hash {
    use custody_ledger::Hash;
    use serde::{Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        // Parsed where the text lies (a bundle's verifier reads a million of these).
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Hash;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hash as 64 hex digits")
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<Hash, E> {
                parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }

    pub(crate) fn parse(text: &str) -> Result<Hash, String> {
        let mut h = [0u8; 32];
        // base16ct decodes a shorter text into the front of `h`: the length is checked here.
        if text.len() != 2 * h.len() || base16ct::mixed::decode(text, &mut h).is_err() {
            return Err(format!("{text:?} is not a hash (64 hex digits)"));
        }
        Ok(h)
    }
}

/// Hashes as a list of 64-hex-digit strings.
pub(crate) mod hex_hashes {
    use custody_ledger::Hash;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hs.iter().map(hex::encode))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        // RFC 9162 proofs have at most 64 hashes (one per tree level).
        if texts.len() > 64 {
            return Err(D::Error::custom("a proof has at most 64 hashes"));
        }
        texts
            .iter()
            .map(|t| super::hex_hash::parse(t).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_travel_as_hex_and_bad_hashes_are_refused() {
        let proof = InclusionProof {
            index: 3,
            tree_size: 8,
            root: [0xab; 32],
            hashes: vec![[1; 32], [2; 32]],
        };
        let text = serde_json::to_string(&proof).unwrap();
        assert!(text.contains(&"ab".repeat(32)), "{text}");
        assert_eq!(
            serde_json::from_str::<InclusionProof>(&text).unwrap(),
            proof
        );
        let short = text.replace(&"ab".repeat(32), "abcd");
        assert!(serde_json::from_str::<InclusionProof>(&short).is_err());
        let many = format!(
            r#"{{"index":0,"tree_size":1,"root":"{}","hashes":[{}]}}"#,
            "00".repeat(32),
            vec![format!("\"{}\"", "00".repeat(32)); 65].join(",")
        );
        assert!(serde_json::from_str::<InclusionProof>(&many).is_err());
    }
}
