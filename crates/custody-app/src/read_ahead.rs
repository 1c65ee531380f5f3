//! Reading a use case's records together: the keys it knows before it reads them (a
//! release's artifacts, their exception indexes, its standing in the previous environment)
//! in one round trip to the store, rather than one each.
//!
//! Invariant: a record read ahead is what [`App::get`] would have read at that moment; a
//! use case that reads ahead and then writes still guards its writes with the versions it
//! read (`Expect::Version`), so reading together changes no outcome, only the round trips.

use custody_store::{StateRecord, Store};
use serde::de::DeserializeOwned;

use crate::AppResult;
use crate::app::{App, Versioned};
use crate::projection::Projected;

/// Records read together, by kind and key (present or not).
pub(crate) struct ReadAhead {
    rows: Vec<(&'static str, String, Option<StateRecord>)>,
}

impl ReadAhead {
    /// What was read for `kind`/`key`: `None` when it was not asked for.
    fn row(&self, kind: &str, key: &str) -> Option<Option<&StateRecord>> {
        self.rows
            .iter()
            .find(|(k, name, _)| *k == kind && name == key)
            .map(|(_, _, row)| row.as_ref())
    }
}

impl<S: Store> App<S> {
    /// Reads `keys` together.
    pub(crate) async fn read_ahead(
        &self,
        keys: Vec<(&'static str, String)>,
    ) -> AppResult<ReadAhead> {
        let asked: Vec<(&str, &str)> = keys.iter().map(|(k, key)| (*k, key.as_str())).collect();
        let found = self.store.states_by_key(&asked).await?;
        Ok(ReadAhead {
            rows: keys
                .into_iter()
                .zip(found)
                .map(|((kind, key), row)| (kind, key, row))
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
