//! Where `custody log` reads the ledger from: the local data directory (through the
//! store), or a custody server's public routes (through HTTP). A server is not trusted:
//! its checkpoint counts as signed only when it verifies with a log key the reader holds
//! (`--log-key`), and its proofs are checked against signed roots before they are shown.

use anyhow::{Context, bail};
use custody_app::{ConsistencyProof, InclusionProof};
use custody_crypto::PublicKey;
use custody_crypto::note::NoteVerifier;
use custody_ledger::{Checkpoint, Hash};
use custody_store::{MAX_ENTRIES_PER_READ, SqlStore, Store};

/// A ledger to read.
pub(crate) enum Ledger {
    /// The local store (its checkpoints verified with the data directory's log.pub).
    Local(SqlStore),
    /// A server's public routes.
    Remote {
        client: crate::client::Client,
        log_key: Option<PublicKey>,
    },
}

/// The latest checkpoint as read.
pub(crate) struct Head {
    pub(crate) size: u64,
    pub(crate) root: Hash,
    pub(crate) origin: String,
    pub(crate) note: String,
    /// Whether its signature verified with a log key the reader holds.
    pub(crate) signed: bool,
    /// The C2SP verifier key it verified with.
    pub(crate) verifier: Option<String>,
}

/// Opens a signed checkpoint note with `key`, under the origin the note names. A note that
/// does not verify is a [`crate::VerificationFailed`] (exit 1), not an error.
pub(crate) fn open_note(note: &str, key: &PublicKey) -> anyhow::Result<Checkpoint> {
    let origin = note.lines().next().unwrap_or_default();
    let verifier = NoteVerifier::new(origin, key).context("the log key")?;
    Checkpoint::open(note, &verifier).map_err(|e| {
        anyhow::Error::new(crate::VerificationFailed(format!(
            "the checkpoint does not verify with the log key: {e}"
        )))
    })
}

impl Ledger {
    pub(crate) fn remote(
        server: &str,
        token: Option<&str>,
        log_key: Option<PublicKey>,
        ca_cert: Option<&std::path::Path>,
    ) -> anyhow::Result<Ledger> {
        Ok(Ledger::Remote {
            client: crate::client::Client::new(server, token.map(str::to_owned), ca_cert)?,
            log_key,
        })
    }

    /// `GET path` on the server, its body (bounded by the client).
    async fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let Ledger::Remote { client, .. } = self else {
            bail!("not a remote ledger");
        };
        let (status, body) = client
            .exchange(reqwest::Method::GET, path, &(), None::<&()>, None)
            .await?;
        if !status.is_success() {
            return Err(crate::client::error_of(status, &body).into());
        }
        Ok(body)
    }

    /// A server's checkpoint note as served, with its cosignatures (with `final_`, the
    /// latest one the server's witness quorum cosigned).
    pub(crate) async fn checkpoint_note(&self, final_: bool) -> anyhow::Result<String> {
        let path = if final_ {
            "/api/v1/log/checkpoint?final=true"
        } else {
            "/api/v1/log/checkpoint"
        };
        String::from_utf8(self.get(path).await?).context("the checkpoint is not UTF-8")
    }

    /// The latest checkpoint; locally, once the database's own rows do not contradict it
    /// (`SqlStore::head_checked`: a head moved back is refused, not handed out).
    pub(crate) async fn head(&self) -> anyhow::Result<Head> {
        match self {
            Ledger::Local(store) => {
                let cp = store
                    .head_checked()
                    .await
                    .map_err(custody_app::AppError::Store)?;
                Ok(Self::local_head(store, cp))
            }
            Ledger::Remote { log_key, .. } => {
                let note = String::from_utf8(self.get("/api/v1/log/checkpoint").await?)
                    .context("the checkpoint is not UTF-8")?;
                let (cp, signed) = match log_key {
                    Some(key) => (open_note(&note, key)?, true),
                    None => {
                        let body = note.split("\n\n").next().unwrap_or_default();
                        (Checkpoint::from_body(&format!("{body}\n"))?, false)
                    }
                };
                let verifier = match log_key {
                    Some(key) => Some(NoteVerifier::new(&cp.origin, key)?.to_text()),
                    None => None,
                };
                Ok(Head {
                    size: cp.size,
                    root: cp.root,
                    origin: cp.origin,
                    note,
                    signed,
                    verifier,
                })
            }
        }
    }

    /// `cp`, the local store's head, as a [`Head`] (its signature checked when read).
    fn local_head(store: &SqlStore, cp: custody_store::SignedCheckpoint) -> Head {
        Head {
            size: cp.size,
            root: cp.root,
            origin: store.verifier().name().to_owned(),
            note: cp.note,
            signed: true,
            verifier: Some(store.verifier().to_text()),
        }
    }

    /// The latest checkpoint as the source gives it: a server's signature is not checked
    /// here (`signed` is false), for a caller that checks it with the log keys it follows.
    pub(crate) async fn head_unchecked(&self) -> anyhow::Result<Head> {
        if let Ledger::Local(store) = self {
            return Ok(Self::local_head(store, store.checkpoint().await?));
        }
        let note = self.checkpoint_note(false).await?;
        let body = note.split("\n\n").next().unwrap_or_default();
        let cp = Checkpoint::from_body(&format!("{body}\n"))?;
        Ok(Head {
            size: cp.size,
            root: cp.root,
            origin: cp.origin,
            note,
            signed: false,
            verifier: None,
        })
    }

    /// The checkpoint the source signed at exactly `size` entries, unchecked (a server's
    /// `GET /api/v1/log/checkpoint?size=N`).
    pub(crate) async fn checkpoint_at(&self, size: u64) -> anyhow::Result<String> {
        match self {
            Ledger::Local(store) => match store.checkpoints(size, 1).await?.pop() {
                Some(cp) if cp.size == size => Ok(cp.note),
                _ => bail!("the log signed no checkpoint of {size} entries"),
            },
            Ledger::Remote { .. } => String::from_utf8(
                self.get(&format!("/api/v1/log/checkpoint?size={size}"))
                    .await?,
            )
            .context("the checkpoint is not UTF-8"),
        }
    }

    /// The log-key hand-overs at or after index `from`, `(index, leaf)`, oldest first, as
    /// the server's public route lists them (nothing trusted: each is followed and proved).
    pub(crate) async fn handovers(&self, from: u64) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        #[derive(serde::Deserialize)]
        struct Listed {
            index: u64,
            leaf: String,
        }
        let body = self
            .get(&format!("/api/v1/log/handovers?from={from}"))
            .await?;
        let listed: Vec<Listed> =
            serde_json::from_slice(&body).context("the server's list of log-key hand-overs")?;
        Ok(listed
            .into_iter()
            .map(|l| (l.index, l.leaf.into_bytes()))
            .collect())
    }

    /// Leaves `[start, end)` (any range: read in pages).
    pub(crate) async fn entries(&self, start: u64, end: u64) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut at = start;
        while at < end {
            let page_end = end.min(at + MAX_ENTRIES_PER_READ);
            match self {
                Ledger::Local(store) => out.extend(
                    store
                        .entries(at, page_end)
                        .await?
                        .into_iter()
                        .map(|e| e.leaf),
                ),
                Ledger::Remote { .. } => {
                    let body = self
                        .get(&format!("/api/v1/log/entries?start={at}&end={page_end}"))
                        .await?;
                    let lines: Vec<Vec<u8>> = body
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect();
                    if lines.len() as u64 != page_end - at {
                        bail!(
                            "the server returned {} entries for {at}..{page_end}",
                            lines.len()
                        );
                    }
                    out.extend(lines);
                }
            }
            at = page_end;
        }
        Ok(out)
    }

    /// An inclusion proof and the root the source gives for `size` (signed or not:
    /// the caller decides what to trust).
    pub(crate) async fn inclusion(
        &self,
        index: u64,
        size: u64,
    ) -> anyhow::Result<(Vec<Hash>, Hash)> {
        match self {
            Ledger::Local(store) => Ok((
                store.inclusion_proof(index, size).await?,
                store.root_at(size).await?,
            )),
            Ledger::Remote { client, .. } => {
                let proof: InclusionProof = client
                    .get(
                        "/api/v1/log/proof/inclusion",
                        &[("index", index), ("size", size)],
                    )
                    .await?;
                Ok((proof.hashes, proof.root))
            }
        }
    }

    /// A consistency proof and the two roots the source gives.
    pub(crate) async fn consistency(
        &self,
        from: u64,
        to: u64,
    ) -> anyhow::Result<(Vec<Hash>, Hash, Hash)> {
        match self {
            Ledger::Local(store) => Ok((
                store.consistency_proof(from, to).await?,
                store.root_at(from).await?,
                store.root_at(to).await?,
            )),
            Ledger::Remote { client, .. } => {
                let proof: ConsistencyProof = client
                    .get(
                        "/api/v1/log/proof/consistency",
                        &[("from", from), ("to", to)],
                    )
                    .await?;
                Ok((proof.hashes, proof.from_root, proof.to_root))
            }
        }
    }
}
