//! Whether a certification still stands, as the ledger shows it: what an environment is
//! certified to run now (its newest certification or rollback), and which certification
//! of a digest that rests on. `App::audit_receipt` reads it so that a receipt is not
//! written, unasked, for a certification that a rollback or a later release replaced:
//! a receipt proves only that a certification happened, and a reader could take it for
//! what runs now.

use custody_model::Digest;
use custody_store::{Entry, MAX_ENTRIES_PER_READ, SqlStore, Store, search};
use serde::Serialize;

use crate::app::App;
use crate::events::{Event, EventBody};
use crate::records::{ReleaseRecord, kind};
use crate::{AppError, AppResult};

/// Whether the certification a receipt proves still stands, as of the receipt's
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "standing", rename_all = "snake_case")]
pub enum Standing {
    /// Its release is what the environment is certified to run now.
    Stands {
        /// The rollback that brought it back, if one did (a later release had replaced
        /// it in between).
        restored_at: Option<u64>,
    },
    /// It was replaced: the environment now runs a release without the digest.
    Replaced {
        /// The change that replaced it (the first after it).
        entry: u64,
        /// The release it runs now.
        now: String,
        /// That change, in words, and the newest change since, if another.
        how: String,
    },
}

/// An environment's newest change: a certification or a rollback.
pub(super) struct Change {
    /// Its ledger index.
    pub(super) index: u64,
    /// The release certified there from then on.
    pub(super) release: String,
    /// Whether a rollback made it.
    pub(super) rollback: bool,
    /// It, in words.
    pub(super) how: String,
}

impl App<SqlStore> {
    /// The newest entry below `end` carrying every one of `terms` for which `pick` gives
    /// something: its index, leaf, and what `pick` gave. Pages back through the search.
    pub(super) async fn newest<T>(
        &self,
        terms: &[String],
        end: u64,
        pick: impl FnMut(Event) -> Option<T>,
    ) -> AppResult<Option<(Entry, T)>> {
        self.find(terms, 0, end, Which::Newest, pick).await
    }

    /// The newest or oldest entry in `[start, end)` carrying every one of `terms` for which
    /// `pick` gives something. The search answers newest first, so the oldest takes every
    /// page (a search of one environment's changes, not of the ledger).
    async fn find<T>(
        &self,
        terms: &[String],
        start: u64,
        end: u64,
        which: Which,
        mut pick: impl FnMut(Event) -> Option<T>,
    ) -> AppResult<Option<(Entry, T)>> {
        let mut end = end;
        let mut oldest = None;
        while end > start {
            let page = self
                .store
                .search(terms, start, end, MAX_ENTRIES_PER_READ)
                .await?;
            for entry in &page {
                let event = Event::from_leaf(&entry.leaf).map_err(|e| {
                    AppError::Integrity(format!("ledger entry {}: {e}", entry.index))
                })?;
                if let Some(found) = pick(event) {
                    match which {
                        Which::Newest => return Ok(Some((entry.clone(), found))),
                        Which::Oldest => oldest = Some((entry.clone(), found)),
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() as u64 == MAX_ENTRIES_PER_READ => end = last.index,
                _ => break,
            }
        }
        Ok(oldest)
    }

    /// The newest certification or rollback of `environment` below `end`.
    pub(super) async fn newest_change(
        &self,
        environment: &str,
        end: u64,
    ) -> AppResult<Option<Change>> {
        self.change(environment, 0, end, Which::Newest).await
    }

    /// The first certification or rollback of `environment` after entry `after`, below
    /// `end`: what replaced the certification at `after`.
    pub(super) async fn first_change_after(
        &self,
        environment: &str,
        after: u64,
        end: u64,
    ) -> AppResult<Option<Change>> {
        self.change(environment, after.saturating_add(1), end, Which::Oldest)
            .await
    }

    /// The newest or oldest certification or rollback of `environment` in `[start, end)`.
    async fn change(
        &self,
        environment: &str,
        start: u64,
        end: u64,
        which: Which,
    ) -> AppResult<Option<Change>> {
        let env = search::environment(environment);
        let certified = self
            .find(
                &[search::event_type("environment.certified"), env.clone()],
                start,
                end,
                which,
                |e| match e.body {
                    EventBody::EnvironmentCertified(c) => Some(c.release),
                    _ => None,
                },
            )
            .await?;
        let terms = [search::event_type("rollback"), env];
        let rolled = self
            .find(&terms, start, end, which, |e| match e.body {
                EventBody::RolledBack(r) => Some(r),
                _ => None,
            })
            .await?;
        let rollback = |(r, back): (Entry, crate::events::RolledBack)| Change {
            index: r.index,
            how: format!(
                "entry {} rolled {environment} back from {} to {} ({})",
                r.index, back.from, back.to, back.reason
            ),
            release: back.to,
            rollback: true,
        };
        let certification = |(c, release): (Entry, String)| Change {
            index: c.index,
            how: format!("entry {} certified {release} in {environment}", c.index),
            release,
            rollback: false,
        };
        Ok(match (certified, rolled) {
            (Some(c), Some(r)) => {
                let rollback_wins = match which {
                    Which::Newest => r.0.index > c.0.index,
                    Which::Oldest => r.0.index < c.0.index,
                };
                Some(if rollback_wins {
                    rollback(r)
                } else {
                    certification(c)
                })
            }
            (None, Some(r)) => Some(rollback(r)),
            (Some(c), None) => Some(certification(c)),
            (None, None) => None,
        })
    }

    /// Whether `release` holds the artifact `digest`.
    pub(super) async fn release_holds(&self, release: &str, digest: &Digest) -> AppResult<bool> {
        Ok(self
            .get::<ReleaseRecord>(kind::RELEASE, release)
            .await?
            .is_some_and(|r| r.value.artifacts.iter().any(|a| a.digest == *digest)))
    }
}

/// Which of the entries a search finds.
#[derive(Debug, Clone, Copy)]
enum Which {
    Newest,
    Oldest,
}
