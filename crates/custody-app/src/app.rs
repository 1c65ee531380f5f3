//! [`App`]: the use cases over a [`Store`], and what they share: reading and writing state
//! records, the policy in force, events, ids and retries.

use std::sync::{Arc, Mutex};

use custody_crypto::Signer;
use custody_model::{CanonicalJson, Timestamp};
use custody_policy::Policy;
use custody_store::{Append, Appended, Expect, IdempotencyKey, StateWrite, Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::records::{PolicyRecord, kind};
use crate::state_cache::StateCache;
use crate::{AppError, AppResult};

/// Who acts and when. Every use case takes one; nothing reads the clock itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The principal (a person's or a service's identity).
    pub principal: String,
    /// The time of the action.
    pub now: Timestamp,
    /// How the principal authenticated, recorded with every event they cause.
    pub auth: Option<custody_model::Authentication>,
}

impl Actor {
    /// An actor at a time.
    pub fn new(principal: impl Into<String>, now: Timestamp) -> AppResult<Actor> {
        let principal = principal.into();
        if principal.is_empty()
            || principal.len() > 256
            || principal
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(AppError::invalid(format!(
                "principal {principal:?} must be 1 to 256 characters without spaces"
            )));
        }
        Ok(Actor {
            principal,
            now,
            auth: None,
        })
    }

    /// The same actor, recorded as having authenticated by `auth`.
    pub fn authenticated_by(mut self, auth: custody_model::Authentication) -> Actor {
        self.auth = Some(auth);
        self
    }
}

/// custody's use cases over a store.
pub struct App<S: Store> {
    pub(crate) store: S,
    /// Signs the VSA of every decision (custody's own key: not the log key, not a
    /// release or builder key).
    pub(crate) attestor: Box<dyn Signer>,
    policy: Mutex<Option<(String, Arc<Policy>)>>,
    /// Policy versions compiled by digest (a version never changes), at most
    /// [`VERSIONS_KEPT`]: the board reads the version each certification was decided under.
    versions: Mutex<std::collections::HashMap<String, Arc<Policy>>>,
    verdicts:
        Mutex<std::collections::HashMap<VerdictKey, (VerdictStamp, Arc<crate::Verification>)>>,
    /// The keyring, built for (the policy in force, the keyring record's version).
    pub(crate) keyring: Mutex<Option<(KeyringStamp, Arc<crate::keyring::Keyring>)>>,
    /// This instance's own keys besides the attestor (the log key), by key id.
    pub(crate) reserved_keys: Mutex<Vec<String>>,
    /// The hot records, for a server that runs [`App::follow_ledger`].
    pub(crate) state_cache: StateCache,
    /// The checked records as the ledger says they are, once a server installs it (see
    /// projection/).
    pub(crate) projection: crate::projection::Guard,
    /// What the ledger's follower saw (see tail.rs).
    pub(crate) tail: crate::tail::Tail,
    /// Stored reports parsed, by digest (see evidence.rs).
    pub(crate) reports: Mutex<crate::evidence::ReportCache>,
    /// Told how long each append took and whether it committed (a server's metrics).
    append_observer: std::sync::OnceLock<AppendObserver>,
}

/// See [`App::observe_appends`].
type AppendObserver = Box<dyn Fn(std::time::Duration, bool) + Send + Sync>;

/// (environment, digest).
pub(crate) type VerdictKey = (String, custody_model::Digest);
/// What a cached verdict was computed from; it is served only while all are the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerdictStamp {
    /// The environment record's version.
    pub(crate) environment: Option<u64>,
    /// The policy in force.
    pub(crate) policy: String,
    /// The certifying promotion's record version (reviews after the fact write it).
    pub(crate) promotion: Option<u64>,
    /// The version of each artifact record of the certified release, in its order
    /// (evidence attached to an artifact writes its record; the standing reads it).
    pub(crate) artifacts: Vec<u64>,
    /// The keyring record's version (a rotation or revocation writes it).
    pub(crate) keyring: Option<u64>,
    /// The versions of the exception indexes of the release and each of its artifacts
    /// (asking for an exception writes one).
    pub(crate) exceptions: Vec<u64>,
}

/// What a built keyring was built from: the policy in force and the keyring record's
/// version.
pub(crate) type KeyringStamp = (String, Option<u64>);

/// Compiled policy versions kept at most (the cache is cleared when it fills).
const VERSIONS_KEPT: usize = 16;

/// Verdicts kept at most (the cache is cleared when it fills).
const VERDICTS_KEPT: usize = 10_000;

/// A state record read with its version.
pub(crate) struct Versioned<T> {
    pub(crate) value: T,
    pub(crate) version: u64,
    pub(crate) log_index: u64,
}

/// A state record's value, as the type its kind holds.
pub(crate) fn parse_state<T: DeserializeOwned>(
    kind: &str,
    key: &str,
    record: &custody_store::StateRecord,
) -> AppResult<Versioned<T>> {
    let value = serde_json::from_slice(record.value.as_bytes()).map_err(|e| {
        AppError::Store(StoreError::Corrupt(format!(
            "state {kind}/{key} does not parse: {e}"
        )))
    })?;
    Ok(Versioned {
        value,
        version: record.version,
        log_index: record.log_index,
    })
}

/// How many times a use case retries when a concurrent writer changed a record it read.
/// Every round of conflicts has a winner, so the system always progresses; the bound only
/// stops a pathological loop.
const RETRIES: usize = 1000;

impl<S: Store> App<S> {
    /// The use cases over `store`, signing decisions with `attestor`.
    pub fn new(store: S, attestor: Box<dyn Signer>) -> Self {
        App {
            store,
            attestor,
            policy: Mutex::new(None),
            versions: Mutex::new(std::collections::HashMap::new()),
            verdicts: Mutex::new(std::collections::HashMap::new()),
            keyring: Mutex::new(None),
            reserved_keys: Mutex::new(Vec::new()),
            state_cache: StateCache::new(),
            projection: crate::projection::Guard::new(),
            tail: crate::tail::Tail::new(),
            reports: Mutex::new(Default::default()),
            append_observer: std::sync::OnceLock::new(),
        }
    }

    /// The store itself, for what writes behind the use cases' back (tests forging a
    /// ledger as whoever holds the database could).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The attestor's public key (verifies every VSA custody signs).
    pub fn attestor_key(&self) -> custody_crypto::PublicKey {
        self.attestor.public_key().clone()
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        kind: &str,
        key: &str,
    ) -> AppResult<Option<Versioned<T>>> {
        self.store
            .state(kind, key)
            .await?
            .map(|record| parse_state(kind, key, &record))
            .transpose()
    }

    /// [`App::get`] through the state cache, for the records every request reads.
    pub(crate) async fn get_hot<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        kind: &'static str,
        key: &str,
    ) -> AppResult<Option<Arc<Versioned<T>>>> {
        let stamp = self.state_cache.stamp();
        if let Some(s) = stamp {
            if let Some(hit) = self
                .state_cache
                .get::<Option<Arc<Versioned<T>>>>(s, kind, key)
            {
                return Ok((*hit).clone());
            }
        }
        let read = self.get::<T>(kind, key).await?.map(Arc::new);
        if let Some(s) = stamp {
            self.state_cache.put(s, kind, key, Arc::new(read.clone()));
        }
        Ok(read)
    }

    pub(crate) async fn require<T: DeserializeOwned>(
        &self,
        kind: &str,
        key: &str,
        missing: impl FnOnce() -> String,
    ) -> AppResult<Versioned<T>> {
        self.get(kind, key)
            .await?
            .ok_or_else(|| AppError::not_found(missing()))
    }

    /// The policy in force, compiled (cached by digest).
    pub async fn policy(&self) -> AppResult<Arc<Policy>> {
        // The digest alone first: the compiled policy is cached by it.
        if let Some(digest) = self
            .get_hot_checked::<crate::projection::PolicyDigest>(kind::POLICY_DIGEST, "current")
            .await?
        {
            if let Some(policy) = self.cached_policy(&digest.value.0) {
                return Ok(policy);
            }
        }
        let record: Versioned<PolicyRecord> = self
            .get_checked(kind::POLICY, "current")
            .await?
            .ok_or_else(|| AppError::not_found(
                "no policy has been applied yet\nhint: on the data directory, `custody policy propose DIR` puts the first policy in force (custody init writes a starter policy in DATA_DIR/policy)",
            ))?;
        if let Some(policy) = self.cached_policy(&record.value.digest) {
            return Ok(policy);
        }
        let policy = Arc::new(custody_policy::compile_recorded(&record.value.bundle)?);
        if let Ok(mut cache) = self.policy.lock() {
            *cache = Some((record.value.digest.clone(), policy.clone()));
        }
        Ok(policy)
    }

    pub(crate) fn cached_verdict(
        &self,
        key: &VerdictKey,
        stamp: &VerdictStamp,
        now: custody_model::Timestamp,
    ) -> Option<Arc<crate::Verification>> {
        let cache = self.verdicts.lock().ok()?;
        cache
            .get(key)
            .filter(|(s, v)| s == stamp && v.valid_until.is_none_or(|until| now < until))
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn cache_verdict(
        &self,
        key: VerdictKey,
        stamp: VerdictStamp,
        verdict: &Arc<crate::Verification>,
    ) {
        if let Ok(mut cache) = self.verdicts.lock() {
            if cache.len() >= VERDICTS_KEPT {
                cache.clear();
            }
            cache.insert(key, (stamp, verdict.clone()));
        }
    }

    fn cached_policy(&self, digest: &str) -> Option<Arc<Policy>> {
        let cache = self.policy.lock().ok()?;
        cache
            .as_ref()
            .filter(|(d, _)| d == digest)
            .map(|(_, p)| p.clone())
    }

    /// A policy version by digest (for replaying old decisions, and for what a decision
    /// required when it was made), compiled once and kept (see [`VERSIONS_KEPT`]).
    pub(crate) async fn policy_version(&self, digest: &str) -> AppResult<Arc<Policy>> {
        if let Some(policy) = self.cached_policy(digest) {
            return Ok(policy);
        }
        if let Some(policy) = self
            .versions
            .lock()
            .ok()
            .and_then(|v| v.get(digest).cloned())
        {
            return Ok(policy);
        }
        let record: Versioned<PolicyRecord> = self
            .get_checked(kind::POLICY_VERSION, digest)
            .await?
            .ok_or_else(|| {
                AppError::not_found(format!("policy version {digest} is not recorded"))
            })?;
        let policy = Arc::new(custody_policy::compile_recorded(&record.value.bundle)?);
        if let Ok(mut versions) = self.versions.lock() {
            if versions.len() >= VERSIONS_KEPT {
                versions.clear();
            }
            versions.insert(digest.to_owned(), policy.clone());
        }
        Ok(policy)
    }

    pub(crate) async fn append(
        &self,
        events: Vec<CanonicalJson>,
        state: Vec<StateWrite>,
        idempotency: Option<IdempotencyKey>,
    ) -> AppResult<Appended> {
        let started = std::time::Instant::now();
        let written: Vec<(String, String)> = state
            .iter()
            .map(|w| (w.kind.clone(), w.key.clone()))
            .collect();
        let appended = self
            .store
            .append(Append {
                events,
                state,
                idempotency,
            })
            .await;
        // Before the caller hears of it (even of a failure, whose outcome may be unknown).
        self.state_cache.wrote(
            written
                .iter()
                .map(|(kind, key)| (kind.as_str(), key.as_str())),
            appended
                .as_ref()
                .ok()
                .filter(|a| !a.replayed)
                .map(|a| (a.first_index, a.count)),
        );
        if let Some(observe) = self.append_observer.get() {
            observe(started.elapsed(), appended.is_ok());
        }
        Ok(appended?)
    }

    /// Calls `observe` with the duration of every append this `App` makes (queueing, the
    /// group commit and its fsync, as the use case waits for them) and whether it
    /// committed. One observer; a second call is ignored.
    pub fn observe_appends(
        &self,
        observe: impl Fn(std::time::Duration, bool) + Send + Sync + 'static,
    ) {
        let _ = self.append_observer.set(Box::new(observe));
    }

    /// Runs `attempt` again while it loses a race on a record it read (a store conflict),
    /// so concurrent requests serialise instead of failing.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> AppResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(AppError::Store(StoreError::Conflict { .. })) if tries < RETRIES => {
                    tries += 1;
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }
}

/// The leaf of `body`, done by `actor`: see [`crate::events`].
pub(crate) fn event(actor: &Actor, body: crate::events::EventBody) -> AppResult<CanonicalJson> {
    crate::events::Event::by(actor, body).to_leaf()
}

/// A state write of a record.
pub(crate) fn write<T: Serialize>(
    kind: &str,
    key: &str,
    value: &T,
    expect: Expect,
) -> AppResult<StateWrite> {
    let value = serde_json::to_value(value)
        .map_err(|e| AppError::invalid(format!("state {kind}/{key}: {e}")))?;
    Ok(StateWrite {
        kind: kind.into(),
        key: key.into(),
        value: CanonicalJson::from_value(&value)
            .map_err(|e| AppError::invalid(format!("state {kind}/{key}: {e}")))?,
        expect,
    })
}

/// The precondition for overwriting a record read at `version` (or creating it).
pub(crate) fn expect_version<T>(record: &Option<Versioned<T>>) -> Expect {
    match record {
        Some(r) => Expect::Version(r.version),
        None => Expect::Absent,
    }
}

/// A fresh id: `prefix-` and 16 random hex digits.
pub fn new_id(prefix: &str) -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

/// An idempotency key for the store: the caller's key, scoped by use case, with a
/// fingerprint of what was asked.
pub(crate) fn idempotency(scope: &str, key: &str, request: &Value) -> AppResult<IdempotencyKey> {
    let bytes = CanonicalJson::from_value(request)
        .map_err(|e| AppError::invalid(e.to_string()))?
        .into_bytes();
    Ok(IdempotencyKey {
        key: format!("{scope}:{key}"),
        fingerprint: *crate::attestations::sha256(&bytes)
            .as_bytes()
            .first_chunk::<32>()
            .unwrap_or(&[0; 32]),
    })
}

impl<S: Store> App<S> {
    /// The outcome stored for `scope:key`, if a request with that key committed; the same
    /// key with another request is refused.
    pub(crate) async fn replayed<T: DeserializeOwned>(
        &self,
        scope: &str,
        key: &str,
        request: &Value,
    ) -> AppResult<Option<(T, u64)>> {
        let Some(record) = self
            .get::<crate::records::ReplayRecord>(kind::REPLAY, &format!("{scope}:{key}"))
            .await?
        else {
            return Ok(None);
        };
        if record.value.fingerprint != fingerprint(request)? {
            return Err(key_reused(key));
        }
        let outcome = serde_json::from_value(record.value.outcome).map_err(|e| {
            AppError::Store(StoreError::Corrupt(format!(
                "stored outcome of {scope}:{key}: {e}"
            )))
        })?;
        Ok(Some((outcome, record.log_index)))
    }
}

/// The idempotency scope of `what` (`deploy`, `promote`, …) requested by `actor`. A key is
/// its caller's own: one principal's key never replays, blocks or reveals another's request
/// with the same key. (The principal is length-prefixed: principals may hold `:`.)
pub(crate) fn own_scope(what: &str, actor: &Actor) -> String {
    format!("{what}:{}:{}", actor.principal.len(), actor.principal)
}

/// The refusal of an idempotency key already used for a different request.
pub(crate) fn key_reused(key: &str) -> AppError {
    AppError::conflict(format!(
        "idempotency key {key:?} was already used for a different request\nhint: use a new key for a new request"
    ))
}

/// SHA-256 of a request's canonical JSON: tells a retry from another request.
pub(crate) fn fingerprint(request: &Value) -> AppResult<custody_model::Digest> {
    let bytes = CanonicalJson::from_value(request)
        .map_err(|e| AppError::invalid(e.to_string()))?
        .into_bytes();
    Ok(crate::attestations::sha256(&bytes))
}

/// The state write that stores `outcome` for `scope:key`, and the store-level key that
/// makes a concurrent twin a replay.
pub(crate) fn replay_write<T: Serialize>(
    scope: &str,
    key: &str,
    request: &Value,
    outcome: &T,
) -> AppResult<(StateWrite, IdempotencyKey)> {
    let record = crate::records::ReplayRecord {
        fingerprint: fingerprint(request)?,
        outcome: serde_json::to_value(outcome).map_err(|e| AppError::invalid(e.to_string()))?,
    };
    Ok((
        write(
            kind::REPLAY,
            &format!("{scope}:{key}"),
            &record,
            Expect::Absent,
        )?,
        idempotency(scope, key, request)?,
    ))
}

/// A request made with an idempotency key: `scope:key`, and what was asked (its fingerprint
/// tells a retry from another request under the same key).
pub(crate) struct Once<'a> {
    /// [`own_scope`]: whose key, and for what.
    pub(crate) scope: String,
    pub(crate) key: &'a str,
    pub(crate) request: &'a Value,
}

impl<S: Store> App<S> {
    /// Appends, storing `outcome` under the idempotency key if there is one, in the same
    /// transaction. `Err((outcome, index))`: a concurrent twin with the same key committed
    /// first; that is its outcome and ledger index, and nothing more was written.
    pub(crate) async fn append_once<T: Serialize + DeserializeOwned>(
        &self,
        events: Vec<CanonicalJson>,
        mut state: Vec<StateWrite>,
        once: Option<Once<'_>>,
        outcome: &T,
    ) -> AppResult<Result<Appended, (T, u64)>> {
        let mut idem = None;
        if let Some(o) = &once {
            let (write, key) = replay_write(&o.scope, o.key, o.request, outcome)?;
            state.push(write);
            idem = Some(key);
        }
        let appended = self.append(events, state, idem).await?;
        if appended.replayed {
            if let Some(o) = &once {
                if let Some(done) = self.replayed::<T>(&o.scope, o.key, o.request).await? {
                    return Ok(Err(done));
                }
            }
        }
        Ok(Ok(appended))
    }
}
