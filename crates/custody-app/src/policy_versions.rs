//! The policy versions the ledger records: each `policy.applied` event (where, when, by
//! whom, how), and every version compiled in ledger order, which the keyring is built from.

use std::collections::BTreeMap;
use std::sync::Arc;

use custody_model::Timestamp;
use custody_policy::Policy;
use custody_store::{Store, search};
use serde::Serialize;

use crate::AppResult;
use crate::app::{App, Versioned};
use crate::events::{self, EventBody};
use crate::records::{PolicyRecord, kind};

/// Policy versions read at most to build the keyring (newest first; a key trusted only
/// by older versions than these is unknown, so what it signed no longer counts).
pub const MAX_POLICY_VERSIONS: u64 = 10_000;

/// A policy version put in force: its `policy.applied` event, without the bundle's files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedVersion {
    /// Its ledger index.
    pub index: u64,
    /// When.
    pub at: Timestamp,
    /// Who put it in force (for an approved proposal, the owner whose approval completed
    /// the quorum; for a bootstrap, the operator).
    pub actor: String,
    /// What the event says: the digest, the previous version, the proposal, its approvers
    /// and what changed (`files` left empty).
    pub applied: events::PolicyApplied,
}

impl<S: Store> App<S> {
    /// How many `policy.applied` events the ledger holds (a rotation's place among them).
    pub(crate) async fn policy_versions_applied(&self) -> AppResult<u64> {
        Ok(self.applied_versions(u64::MAX).await?.len() as u64)
    }

    /// The `policy.applied` events, newest first, at most `limit`: where, when, by whom
    /// and how each version was put in force (its files left out).
    /// Found through the index, read from the leaves: an index hit whose leaf is not such
    /// an event is skipped (the index narrows, the leaf decides; the ledger check reports
    /// a changed leaf), here and in the projection's count alike.
    pub async fn applied_versions(&self, limit: u64) -> AppResult<Vec<AppliedVersion>> {
        let term = [search::event_type("policy.applied")];
        let (mut out, mut end) = (Vec::new(), self.store.size().await?);
        while (out.len() as u64) < limit {
            let page = self.store.search(&term, 0, end, 1_000).await?;
            let Some(last) = page.last() else { break };
            end = last.index;
            for entry in page {
                if let Ok(crate::events::Event {
                    at,
                    actor,
                    body: EventBody::PolicyApplied(mut applied),
                    ..
                }) = crate::events::Event::from_leaf(&entry.leaf)
                {
                    applied.files.clear();
                    out.push(AppliedVersion {
                        index: entry.index,
                        at,
                        actor,
                        applied,
                    });
                }
            }
        }
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }

    /// Every policy version put in force, in ledger order, with its place among every
    /// `policy.applied` event and when; ending with the one in force (`current`). At most
    /// the newest [`MAX_POLICY_VERSIONS`].
    pub(crate) async fn policy_history(
        &self,
        current: &Arc<Policy>,
    ) -> AppResult<Vec<(u64, Timestamp, Arc<Policy>)>> {
        let mut applied = self.applied_versions(MAX_POLICY_VERSIONS).await?;
        let total = if (applied.len() as u64) < MAX_POLICY_VERSIONS {
            applied.len() as u64
        } else {
            self.policy_versions_applied().await?
        };
        let first = total.saturating_sub(applied.len() as u64);
        applied.reverse();
        let mut compiled: BTreeMap<String, Arc<Policy>> = BTreeMap::new();
        compiled.insert(current.digest().to_owned(), current.clone());
        let mut out = Vec::with_capacity(applied.len() + 1);
        for (
            place,
            AppliedVersion {
                at,
                applied: version,
                ..
            },
        ) in (first..).zip(applied)
        {
            let digest = version.policy;
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
}
