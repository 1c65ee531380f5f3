//! Recovering from lost history: the operator's explicit, recorded decision. (And the
//! other offline operator action on the log itself: the log key's hand-over event.)
//!
//! When the store finds the log's head does not extend the newest checkpoint it signed or
//! verified (the database was rolled back, truncated or forked), it turns read-only
//! (`custody_store::IntegrityFailure`). Nothing appends until an operator runs
//! `custody log recover --reason TEXT`, which appends a `log.recovered` event on the head
//! as it stands, naming what was lost (the signed checkpoint seen before, its size, the
//! size and root accepted). That event is the only way back to writing, and it stays in
//! the ledger for every auditor to see.

use custody_store::{Append, IdempotencyKey, IntegrityFailure, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::{Actor, App, event};
use crate::events::{EventBody, LogKeyRotated, LogRecovered};
use crate::{AppError, AppResult};
use custody_crypto::note::NoteVerifier;
use custody_model::CanonicalJson;

/// What `custody log recover` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    /// What custody had found, as it reported it.
    pub failure: String,
    /// The size of the checkpoint whose history was lost.
    pub lost_size: u64,
    /// The size of the log accepted.
    pub found_size: u64,
    /// The ledger index of the `log.recovered` event.
    pub ledger_index: u64,
    /// The head had been moved back over entries the database still held: it was put
    /// back on the checkpoint of `lost_size` entries, and nothing was lost.
    pub restored: bool,
}

impl App<custody_store::SqlStore> {
    /// Refuses `new` as the log key's successor, before anything is written, unless it
    /// is a new key: not one that signed this log before (a retired log key never signs
    /// again: its checkpoints would be indistinguishable from a rollback to its era), not
    /// one the keyring holds for another purpose, not the receipt key (one key, one
    /// purpose).
    pub async fn check_log_successor(&self, new: &NoteVerifier) -> AppResult<()> {
        let id = new.public_key().key_id().to_string();
        let history = self.store.log_keys();
        if history.contains(new) {
            let when = history
                .retirement(new)
                .map(|(at, _)| format!(", retired at the hand-over of {at} entries"))
                .unwrap_or_default();
            return Err(AppError::invalid(format!(
                "key {id} signed this log before{when}: a retired log key never signs again; omit --new-key to generate a new one"
            )));
        }
        if let Some(seen) = self.keyring().await?.get(&id) {
            return Err(AppError::invalid(format!(
                "key {id} is in the keyring as a {} key ({}, {}): one key never serves two purposes; omit --new-key to generate a new one",
                seen.purpose.describe(),
                seen.name,
                seen.status()
            )));
        }
        if self.attestor.public_key().key_id().to_string() == id {
            return Err(AppError::invalid(format!(
                "key {id} is this instance's receipt key: one key never serves two purposes; omit --new-key to generate a new one"
            )));
        }
        Ok(())
    }

    /// The `log.key_rotated` event handing the log over from `old` to `new` at a
    /// checkpoint of `size` entries (the store commits it: `SqlStore::rotate_log_key`;
    /// check the successor first, [`App::check_log_successor`]).
    pub fn log_key_rotation(
        &self,
        actor: &Actor,
        old: &NoteVerifier,
        new: &NoteVerifier,
        size: u64,
    ) -> AppResult<CanonicalJson> {
        event(
            actor,
            EventBody::LogKeyRotated(LogKeyRotated::new(old, new, size)),
        )
    }

    /// Hands the log over from its current key to `successor`, as `actor`: checks the
    /// successor ([`App::check_log_successor`]), then commits the `log.key_rotated` event
    /// at the head's next size and returns the checkpoint both keys sign. The instance is
    /// closed afterwards (consumed): open it again with the successor.
    pub async fn rotate_log_key(
        self,
        actor: &Actor,
        successor: custody_crypto::note::NoteSigner,
    ) -> AppResult<custody_store::SignedCheckpoint> {
        let new = successor.verifier().clone();
        self.check_log_successor(&new).await?;
        let old = self.store.verifier().clone();
        let size = self.log().size().await? + 1;
        let event = self.log_key_rotation(actor, &old, &new, size)?;
        Ok(self.store.rotate_log_key(successor, event).await?)
    }

    /// Closes the database cleanly (its connections and, on SQLite, the checkpoint of its
    /// write-ahead log).
    pub async fn close(self) {
        self.store.close().await;
    }
}

impl<S: Store> App<S> {
    /// The integrity failure that keeps the ledger read-only, if one does.
    pub fn integrity_failure(&self) -> Option<IntegrityFailure> {
        self.store.integrity()
    }

    /// Accepts the log as the database holds it, recording `reason` and what was lost in
    /// a `log.recovered` event; the ledger appends again afterwards. When the database
    /// still holds every entry of the checkpoint seen (its head row alone was moved back),
    /// the head is put back on that checkpoint instead, and nothing is lost. Refused when
    /// there is no integrity failure to recover from.
    pub async fn recover_log(&self, actor: &Actor, reason: &str) -> AppResult<Recovered> {
        crate::limits::text("reason", reason, crate::limits::MAX_REASON)?;
        let Some(failure) = self.store.integrity() else {
            return Err(AppError::conflict(
                "the ledger's history is whole (its head extends every checkpoint custody has seen): there is nothing to recover",
            ));
        };
        let found_root = hex::encode(failure.found_root);
        let record = event(
            actor,
            EventBody::LogRecovered(LogRecovered {
                reason: reason.to_owned(),
                failure: failure.to_string(),
                lost_checkpoint: failure.seen.note.clone(),
                lost_size: failure.seen.size,
                found_size: failure.found_size,
                found_root: found_root.clone(),
            }),
        )?;
        // The same decision, retried after an unknown outcome, converges on one event.
        let what = json!({"lost": failure.seen.size, "found": failure.found_size, "root": found_root, "reason": reason, "actor": actor.principal});
        let idempotency = IdempotencyKey {
            key: format!(
                "log.recovered:{}:{}:{found_root}",
                failure.seen.size, failure.found_size
            ),
            fingerprint: *crate::app::fingerprint(&what)?
                .as_bytes()
                .first_chunk::<32>()
                .unwrap_or(&[0; 32]),
        };
        let appended = self
            .store
            .acknowledge_integrity_failure(
                &failure,
                Append {
                    events: vec![record],
                    state: Vec::new(),
                    idempotency: Some(idempotency),
                },
            )
            .await?;
        self.state_cache.moved();
        Ok(Recovered {
            failure: failure.to_string(),
            lost_size: failure.seen.size,
            found_size: failure.found_size,
            ledger_index: appended.first_index,
            restored: failure.witness == custody_store::Witness::Database,
        })
    }
}
