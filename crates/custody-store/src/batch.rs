//! One batch's plan: which appends of a group commit are replays, refusals or accepted,
//! and the rows the accepted ones write. Decided append by append under the log's lock.

use std::collections::HashMap;

use custody_ledger::{Frontier, Hash, leaf_hash};

use crate::commit::{node_key, to_i64, to_u64};
use crate::search::{self, Indexed};
use crate::sql::{self, Conn, NewIdempotencyRow, StateRow};
use crate::{Append, Appended, Expect, StoreError};

/// A search term and the index of the entry it finds.
pub(crate) type TermRow = (String, i64);

/// What one batch will write, decided append by append under the lock.
pub(crate) struct BatchPlan {
    /// The next free index.
    pub(crate) next: u64,
    pub(crate) results: Vec<Result<Appended, StoreError>>,
    /// Indices into the batch of the appends accepted, in order.
    accepted: Vec<usize>,
    pub(crate) nodes: Vec<(i64, Hash)>,
    /// One row per state record the batch writes: a record written twice in a batch (by
    /// two appends, or twice in one) is written once, as the later write left it.
    /// (PostgreSQL refuses an upsert that touches a row twice.)
    pub(crate) state: Vec<StateRow>,
    state_rows: HashMap<(String, String), usize>,
    /// Versions of state records as this batch leaves them (`None`: absent).
    versions: HashMap<(String, String), Option<i64>>,
    /// Idempotency keys accepted in this batch: key → (fingerprint, result index).
    keys: HashMap<String, ([u8; 32], usize)>,
}

impl BatchPlan {
    pub(crate) fn new(size: u64) -> Self {
        BatchPlan {
            next: size,
            results: Vec::new(),
            accepted: Vec::new(),
            nodes: Vec::new(),
            state: Vec::new(),
            state_rows: HashMap::new(),
            versions: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Before the first [`Self::admit`]: reads the versions of every record `appends`
    /// write, a few dozen to a round trip (rather than one each as `admit` comes to them:
    /// under the log's lock, each round trip delays every waiting append).
    pub(crate) async fn read_versions(
        &mut self,
        c: &mut Conn<'_>,
        appends: &[Append],
    ) -> Result<(), StoreError> {
        let mut asked = std::collections::HashSet::new();
        let wanted: Vec<(&str, &str)> = appends
            .iter()
            .flat_map(|a| &a.state)
            .map(|w| (w.kind.as_str(), w.key.as_str()))
            .filter(|id| asked.insert(*id))
            .collect();
        for chunk in wanted.chunks(sql::STATES_AT_ONCE) {
            for (kind, key) in chunk {
                self.versions
                    .insert(((*kind).to_owned(), (*key).to_owned()), None);
            }
            for (kind, key, version) in sql::state_versions(c, chunk).await? {
                self.versions.insert((kind, key), Some(version));
            }
        }
        Ok(())
    }

    /// Decides one append: a replay, a refusal, or accepted (leaves hashed into
    /// `frontier`, state staged). `Err` only for a database failure.
    pub(crate) async fn admit(
        &mut self,
        c: &mut Conn<'_>,
        append: &Append,
        frontier: &mut Frontier,
    ) -> Result<Result<Appended, StoreError>, StoreError> {
        if let Some(key) = &append.idempotency {
            if let Some((fingerprint, at)) = self.keys.get(&key.key) {
                return Ok(
                    match (&self.results[*at], *fingerprint == key.fingerprint) {
                        (Ok(first), true) => Ok(Appended {
                            replayed: true,
                            ..*first
                        }),
                        _ => Err(StoreError::IdempotencyConflict(key.key.clone())),
                    },
                );
            }
            if let Some((fingerprint, first, count, tree_size)) =
                sql::idempotency(c, &key.key).await?
            {
                return Ok(if fingerprint[..] == key.fingerprint[..] {
                    Ok(Appended {
                        first_index: to_u64(first)?,
                        count: to_u64(count)?,
                        tree_size: to_u64(tree_size)?,
                        replayed: true,
                    })
                } else {
                    Err(StoreError::IdempotencyConflict(key.key.clone()))
                });
            }
        }

        // Check every precondition before staging anything of this append.
        // (record, its version after this write: `None` when the write removes it)
        let mut staged: Vec<((String, String), Option<i64>)> =
            Vec::with_capacity(append.state.len());
        for write in &append.state {
            let id = (write.kind.clone(), write.key.clone());
            let current = match staged.iter().rev().find(|(k, _)| *k == id) {
                Some((_, version)) => *version,
                None => match self.versions.get(&id) {
                    Some(version) => *version,
                    None => {
                        let version = sql::state_version(c, &write.kind, &write.key).await?;
                        self.versions.insert(id.clone(), version);
                        version
                    }
                },
            };
            let holds = match write.expect {
                Expect::Any => true,
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current.is_some_and(|c| u64::try_from(c) == Ok(v)),
            };
            if !holds {
                return Ok(Err(StoreError::Conflict {
                    kind: write.kind.clone(),
                    key: write.key.clone(),
                    expected: write.expect,
                    found: current.and_then(|c| u64::try_from(c).ok()),
                }));
            }
            let removes = write.value.as_bytes() == b"null";
            staged.push((id, (!removes).then(|| current.unwrap_or(0) + 1)));
        }

        let first = self.next;
        for (write, (id, version)) in append.state.iter().zip(staged) {
            // A removal is staged as a row whose value is `null` (see `flush_state`).
            let row = (
                write.kind.clone(),
                write.key.clone(),
                version.unwrap_or(0),
                write.value.to_string(),
                to_i64(first)?,
            );
            match self.state_rows.get(&id) {
                Some(&at) => self.state[at] = row,
                None => {
                    self.state_rows.insert(id.clone(), self.state.len());
                    self.state.push(row);
                }
            }
            self.versions.insert(id, version);
        }
        for event in &append.events {
            for (id, hash) in frontier.append(leaf_hash(event.as_bytes())) {
                self.nodes.push((node_key(id)?, hash));
            }
        }
        self.next += append.events.len() as u64;
        if let Some(key) = &append.idempotency {
            self.keys
                .insert(key.key.clone(), (key.fingerprint, self.results.len()));
        }
        self.accepted.push(self.results.len());
        Ok(Ok(Appended {
            first_index: first,
            count: append.events.len() as u64,
            tree_size: 0, // set when the batch's size is known
            replayed: false,
        }))
    }

    pub(crate) fn leaves<'a>(&self, appends: &'a [Append]) -> Vec<&'a [u8]> {
        self.accepted
            .iter()
            .flat_map(|&i| appends[i].events.iter().map(|e| e.as_bytes()))
            .collect()
    }

    /// `(term, index)` for every term of every accepted event, in log order, the time
    /// terms following on from `latest`, the log's latest stamp before the batch; and the
    /// latest stamp after it.
    pub(crate) fn term_rows(
        &self,
        indexed: &[Vec<Indexed>],
        mut latest: Option<i128>,
    ) -> Result<(Vec<TermRow>, Option<i128>), StoreError> {
        let mut rows = Vec::new();
        let mut terms = Vec::new();
        for &i in &self.accepted {
            if let Ok(result) = &self.results[i] {
                for (offset, event) in indexed[i].iter().enumerate() {
                    let index = to_i64(result.first_index + offset as u64)?;
                    terms.clear();
                    terms.extend(event.terms.iter().cloned());
                    latest = search::time_terms(event.stamp, latest, &mut terms);
                    rows.extend(terms.drain(..).map(|t| (t, index)));
                }
            }
        }
        Ok((rows, latest))
    }

    pub(crate) fn idempotency_rows<'a>(
        &self,
        appends: &'a [Append],
        tree_size: u64,
    ) -> Result<Vec<NewIdempotencyRow<'a>>, StoreError> {
        let mut rows = Vec::new();
        for &i in &self.accepted {
            if let (Some(key), Ok(result)) = (&appends[i].idempotency, &self.results[i]) {
                rows.push((
                    key.key.as_str(),
                    &key.fingerprint[..],
                    to_i64(result.first_index)?,
                    to_i64(result.count)?,
                    to_i64(tree_size)?,
                ));
            }
        }
        Ok(rows)
    }
}
