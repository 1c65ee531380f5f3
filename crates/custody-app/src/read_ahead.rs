//! Reading a use case's records together: the keys it knows before it reads them (a
//! release's artifacts, their exception indexes, its standing in the previous environment)
//! in one round trip to the store, rather than one each, and none for the records the
//! state cache holds.
//!
//! Invariant: a record read ahead is what [`App::get_hot`] would have read at that moment
//! (what the store holds, but for another process's write in the last moments: see
//! `state_cache`); a use case that reads ahead and then writes still guards its writes
//! with the versions it read (`Expect::Version`), so reading together changes no outcome,
//! only the round trips.

use std::sync::Arc;

use custody_store::{StateRecord, Store};
use serde::de::DeserializeOwned;

use crate::AppResult;
use crate::app::{App, Versioned};
use crate::projection::Projected;

/// Records read together, by kind and key (present or not).
pub(crate) struct ReadAhead {
    rows: Vec<(&'static str, String, Arc<Option<StateRecord>>)>,
}

impl ReadAhead {
    /// What was read for `kind`/`key`: `None` when it was not asked for.
    fn row(&self, kind: &str, key: &str) -> Option<Option<&StateRecord>> {
        self.rows
            .iter()
            .find(|(k, name, _)| *k == kind && name == key)
            .map(|(_, _, row)| row.as_ref().as_ref())
    }
}

impl<S: Store> App<S> {
    /// Reads `keys` together: those the state cache holds from it, the others from the
    /// store in one round trip (and kept in the cache).
    pub(crate) async fn read_ahead(
        &self,
        keys: Vec<(&'static str, String)>,
    ) -> AppResult<ReadAhead> {
        let stamp = self.state_cache.stamp();
        let mut rows: Vec<Option<Arc<Option<StateRecord>>>> = keys
            .iter()
            .map(|(kind, key)| stamp.and_then(|s| self.state_cache.get(s, kind, key)))
            .collect();
        let asked: Vec<(&str, &str)> = keys
            .iter()
            .zip(&rows)
            .filter(|(_, kept)| kept.is_none())
            .map(|((kind, key), _)| (*kind, key.as_str()))
            .collect();
        if !asked.is_empty() {
            let mut found = self.store.states_by_key(&asked).await?.into_iter();
            for ((kind, key), row) in keys.iter().zip(&mut rows) {
                if row.is_none() {
                    let read = found.next().flatten();
                    let bytes = read.as_ref().map_or(0, |r| r.value.as_bytes().len());
                    let read = Arc::new(read);
                    if let Some(s) = stamp {
                        self.state_cache
                            .put_weighing(s, kind, key, read.clone(), bytes);
                    }
                    *row = Some(read);
                }
            }
        }
        Ok(ReadAhead {
            rows: keys
                .into_iter()
                .zip(rows)
                .map(|((kind, key), row)| (kind, key, row.unwrap_or_default()))
                .collect(),
        })
    }

    /// `kind`/`key` as read ahead, or from the store if it was not asked for.
    pub(crate) async fn get_ahead<T: DeserializeOwned>(
        &self,
        ahead: &ReadAhead,
        kind: &str,
        key: &str,
    ) -> AppResult<Option<Versioned<T>>> {
        match ahead.row(kind, key) {
            Some(row) => row
                .map(|r| crate::app::parse_state(kind, key, r))
                .transpose(),
            None => self.get(kind, key).await,
        }
    }

    /// [`App::get_checked`] of a record read ahead.
    pub(crate) async fn get_checked_ahead<T: Projected>(
        &self,
        ahead: &ReadAhead,
        kind: &'static str,
        key: &str,
    ) -> AppResult<Option<Versioned<T>>> {
        let read = self.get_ahead::<T>(ahead, kind, key).await?;
        self.checked(kind, key, read).await
    }
}
