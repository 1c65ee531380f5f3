//! Reading exceptions: one, a release's, those a gate counts (with the versions that
//! invalidate a cached verdict), and those about to lapse.

use custody_model::Timestamp;
use custody_policy::ExceptionFacts;
use custody_store::Store;

use super::{ExceptionIndex, ExceptionRecord, artifact_subject, release_subject};
use crate::app::App;
use crate::read_ahead::ReadAhead;
use crate::records::{ReleaseRecord, kind};
use crate::{AppError, AppResult};

impl<S: Store> App<S> {
    /// One exception.
    pub async fn exception(&self, id: &str) -> AppResult<ExceptionRecord> {
        Ok(self
            .require::<ExceptionRecord>(kind::EXCEPTION, id, || format!("no exception {id}"))
            .await?
            .value)
    }

    /// The exceptions about `release` or one of its artifacts, in the order they were
    /// asked for.
    pub async fn exceptions_of(&self, release: &ReleaseRecord) -> AppResult<Vec<ExceptionRecord>> {
        let ahead = self.read_ahead(index_keys(release).collect()).await?;
        self.exceptions_read_ahead(&ahead, release).await
    }

    /// [`App::exceptions_of`], its indexes read ahead (see [`index_keys`]): the exceptions
    /// they list are read together too.
    pub(crate) async fn exceptions_read_ahead(
        &self,
        ahead: &ReadAhead,
        release: &ReleaseRecord,
    ) -> AppResult<Vec<ExceptionRecord>> {
        let mut ids = Vec::new();
        for subject in subjects_of(release) {
            if let Some(index) = self
                .get_ahead::<ExceptionIndex>(ahead, kind::EXCEPTIONS_OF, &subject)
                .await?
            {
                ids.extend(index.value.ids);
            }
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let listed = self
            .read_ahead(ids.iter().map(|id| (kind::EXCEPTION, id.clone())).collect())
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(
                self.get_ahead::<ExceptionRecord>(&listed, kind::EXCEPTION, id)
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("no exception {id}")))?
                    .value,
            );
        }
        out.sort_by(|a, b| (a.requested_at, &a.id).cmp(&(b.requested_at, &b.id)));
        Ok(out)
    }

    /// The approved exceptions about `release` or its artifacts, as a decision reads them
    /// (their indexes read ahead, see [`index_keys`]).
    pub(crate) async fn exception_facts(
        &self,
        ahead: &ReadAhead,
        release: &ReleaseRecord,
    ) -> AppResult<Vec<ExceptionFacts>> {
        Ok(self
            .exceptions_read_ahead(ahead, release)
            .await?
            .iter()
            .filter_map(ExceptionRecord::facts)
            .collect())
    }

    /// The versions of the exception indexes of `release` and its artifacts, and of the
    /// exceptions they list (what a cached deploy-gate answer was computed from: a new
    /// exception, a review or a revocation changes one).
    pub(crate) async fn exception_versions(&self, release: &ReleaseRecord) -> AppResult<Vec<u64>> {
        let subjects = subjects_of(release);
        let mut out = Vec::new();
        // Read on every deploy-gate call, cached hit or not: through the state cache (a
        // round trip to the database each would queue every caller behind SQLite's pool).
        for subject in subjects {
            let index = self
                .get_hot::<ExceptionIndex>(kind::EXCEPTIONS_OF, &subject)
                .await?;
            out.push(index.as_ref().map_or(0, |i| i.version));
            // A review or revocation changes the exception, not the index.
            for id in index.iter().flat_map(|i| &i.value.ids) {
                let x = self.get_hot::<ExceptionRecord>(kind::EXCEPTION, id).await?;
                out.push(x.map_or(0, |x| x.version));
            }
        }
        Ok(out)
    }

    /// Every exception (newest first), at most `limit`.
    pub async fn exceptions(&self, limit: usize) -> AppResult<Vec<ExceptionRecord>> {
        let mut out: Vec<ExceptionRecord> = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.store.states(kind::EXCEPTION, &after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.key.clone();
            for r in page {
                out.push(
                    serde_json::from_slice(r.value.as_bytes())
                        .map_err(|e| AppError::Integrity(format!("exception {}: {e}", r.key)))?,
                );
            }
        }
        out.sort_by(|a, b| (b.requested_at, &b.id).cmp(&(a.requested_at, &a.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Approved exceptions that expire within `within_seconds` of `now` (and have not yet):
    /// (exception, seconds left).
    pub async fn expiring_exceptions(
        &self,
        now: Timestamp,
        within_seconds: i64,
    ) -> AppResult<Vec<(ExceptionRecord, i64)>> {
        Ok(self
            .exceptions(usize::MAX)
            .await?
            .into_iter()
            .filter(|x| x.in_force(now))
            .filter_map(|x| {
                let left = x.expires_at.unix_seconds() - now.unix_seconds();
                (left <= within_seconds).then_some((x, left))
            })
            .collect())
    }
}

/// What an exception about `release` may name: the release, or one of its artifacts.
/// The exception indexes a decision about `release` reads, to read ahead.
pub(crate) fn index_keys(
    release: &ReleaseRecord,
) -> impl Iterator<Item = (&'static str, String)> + '_ {
    subjects_of(release).map(|s| (kind::EXCEPTIONS_OF, s))
}

fn subjects_of(release: &ReleaseRecord) -> impl Iterator<Item = String> + '_ {
    std::iter::once(release_subject(&release.id())).chain(
        release
            .artifacts
            .iter()
            .map(|a| artifact_subject(&a.digest)),
    )
}
