//! The state as a checked projection of the ledger.
//!
//! custody keeps the records every decision reads (tokens, the policy in force, releases,
//! environments, each release's standing in an environment) in state tables beside the
//! ledger, written in the same transaction as the events that explain them. Someone with
//! a database login but without the log key can edit those rows without touching the
//! ledger; so the records that decide who is who and what may run are checked against
//! the ledger:
//!
//! - [`Projection`] folds the ledger's typed events, in ledger order, into what each of
//!   those records must hold and the entry that last set it (this file);
//! - `compare.rs` says how a stored record differs from its expected value, naming each
//!   field, and only for what the ledger states (a token's secret digest, for example, is
//!   only in events written since this check existed);
//! - `guard.rs` runs the whole comparison (the server's start-up and periodic checks,
//!   `custody log check`) and, in a server, keeps the projection live so that the deploy
//!   gate and authentication refuse to act on a record that does not match (fail closed).
//!
//! The fold reads each leaf's `type` before parsing it, and parses only the kinds that set
//! a checked record, so the check costs one pass over the leaves.

mod compare;
mod guard;

use std::collections::HashMap;

use custody_model::{Digest, Timestamp};

use crate::events::{DeployStatus, Event, EventBody};

pub(crate) use compare::PolicyDigest;
pub(crate) use guard::{Guard, Projected};
pub use guard::{StateCheck, StateDifference, check_state};

/// The kinds of event that set a checked record; other leaves are skipped unparsed.
const SETTERS: &[&str] = &[
    "policy.applied",
    "token.created",
    "token.revoked",
    "release.created",
    "environment.certified",
    "rollback",
    "deploy.reported",
    "key.rotated",
    "key.revoked",
];

/// An expected value and the ledger entry that last set it.
#[derive(Debug, Clone)]
pub(crate) struct Expected<T> {
    pub(crate) value: T,
    pub(crate) index: u64,
}

/// What the ledger says of an API token.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedToken {
    pub(crate) principal: String,
    pub(crate) description: String,
    pub(crate) created_by: String,
    pub(crate) created_at: Timestamp,
    pub(crate) expires_at: Timestamp,
    /// Only in `token.created` events written since the check existed.
    pub(crate) secret_digest: Option<Digest>,
    pub(crate) revoked_at: Option<Timestamp>,
    /// Absent in `token.created` events written before it was kept (and then in the
    /// record too).
    pub(crate) parent: Option<String>,
    /// Only in `token.created` events written since it was kept.
    pub(crate) personal: Option<bool>,
}

/// What the ledger says of a policy version put in force.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedPolicy {
    pub(crate) digest: String,
    pub(crate) applied_at: Timestamp,
    pub(crate) applied_by: String,
}

/// What the ledger says of a release.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedRelease {
    pub(crate) digest: Digest,
    pub(crate) artifacts: Vec<Digest>,
    pub(crate) manifest_digest: Digest,
    pub(crate) created_by: String,
    pub(crate) created_at: Timestamp,
}

/// What the ledger says of a certification (an environment's, or a release's latest in
/// one). `None`: the ledger does not say (a release or certification it never recorded),
/// so that field is not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedCertification {
    pub(crate) release: String,
    pub(crate) release_digest: Option<Digest>,
    pub(crate) promotion: String,
    pub(crate) decision: Option<String>,
    pub(crate) at: Timestamp,
    pub(crate) by_rollback: bool,
}

/// What the ledger says of a release's standing in an environment.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedStanding {
    pub(crate) certification: ExpectedCertification,
    pub(crate) first_certified_at: Timestamp,
    pub(crate) failed: bool,
}

/// The checked records as the ledger's entries `[0, next)` set them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Projection {
    /// Entries folded.
    pub(crate) next: u64,
    pub(crate) tokens: HashMap<String, Expected<ExpectedToken>>,
    pub(crate) policy: Option<Expected<ExpectedPolicy>>,
    pub(crate) policy_versions: HashMap<String, Expected<ExpectedPolicy>>,
    pub(crate) releases: HashMap<String, Expected<ExpectedRelease>>,
    pub(crate) environments: HashMap<String, Expected<ExpectedCertification>>,
    /// By `environment/release`, the state key of a standing.
    pub(crate) standings: HashMap<String, Expected<ExpectedStanding>>,
    /// The key rotations and revocations (`keyring/current`).
    pub(crate) keyring: Option<Expected<crate::keyring::KeyringRecord>>,
    /// `policy.applied` events folded (a rotation's place among the versions).
    pub(crate) policies_applied: u64,
    /// Leaves that did not read as events of their kind, with why.
    pub(crate) unreadable: Vec<(u64, String)>,
}

/// Whether `leaf` may set a checked record: one of its `"type":"…"` members names a
/// setter kind. Cheap, and never wrong the other way: a string inside a JSON value cannot
/// hold the bytes `"type":"` unescaped, so every real `type` member is seen.
pub(crate) fn may_set(leaf: &[u8]) -> bool {
    const TYPE: &[u8] = b"\"type\":\"";
    memchr::memmem::find_iter(leaf, TYPE).any(|at| {
        let rest = &leaf[at + TYPE.len()..];
        let end = memchr::memchr(b'"', rest).unwrap_or(rest.len());
        SETTERS.iter().any(|k| k.as_bytes() == &rest[..end])
    })
}

impl Projection {
    /// Folds ledger entry `index` (the next one) into the projection.
    pub(crate) fn fold(&mut self, index: u64, leaf: &[u8]) {
        self.fold_read(index, Projection::read(leaf));
    }

    /// What folding `leaf` needs: nothing (`None`) unless it may set a checked record,
    /// else its event (parsed apart from the fold, so a live projection is locked only
    /// to apply it).
    pub(crate) fn read(leaf: &[u8]) -> Option<Result<Event, String>> {
        may_set(leaf).then(|| Event::from_leaf(leaf).map_err(|e| e.to_string()))
    }

    /// Folds entry `index` as [`Projection::read`] read it; an entry already folded is
    /// skipped.
    pub(crate) fn fold_read(&mut self, index: u64, read: Option<Result<Event, String>>) {
        if index < self.next {
            return;
        }
        self.next = index + 1;
        match read {
            None => {}
            Some(Ok(event)) => self.apply(index, &event),
            Some(Err(why)) => self.unreadable.push((index, why)),
        }
    }

    fn apply(&mut self, index: u64, event: &Event) {
        match &event.body {
            EventBody::PolicyApplied(p) => {
                self.policies_applied += 1;
                let policy = ExpectedPolicy {
                    digest: p.policy.clone(),
                    applied_at: event.at,
                    applied_by: event.actor.clone(),
                };
                self.policy_versions.insert(
                    p.policy.clone(),
                    Expected {
                        value: policy.clone(),
                        index,
                    },
                );
                self.policy = Some(Expected {
                    value: policy,
                    index,
                });
            }
            EventBody::TokenCreated(t) => {
                let token = ExpectedToken {
                    principal: t.principal.clone(),
                    description: t.description.clone(),
                    created_by: event.actor.clone(),
                    created_at: event.at,
                    expires_at: t.expires_at,
                    secret_digest: t.secret_digest.clone(),
                    revoked_at: None,
                    parent: t.parent.clone(),
                    personal: t.personal,
                };
                self.tokens.insert(
                    t.token.clone(),
                    Expected {
                        value: token,
                        index,
                    },
                );
            }
            EventBody::TokenRevoked(t) => {
                // Revoking a revoked token writes nothing: the first revocation stands.
                if let Some(token) = self.tokens.get_mut(&t.token) {
                    if token.value.revoked_at.is_none() {
                        token.value.revoked_at = Some(event.at);
                        token.index = index;
                    }
                }
            }
            EventBody::ReleaseCreated(r) => {
                let release = ExpectedRelease {
                    digest: r.digest.clone(),
                    artifacts: r.artifacts.clone(),
                    manifest_digest: r.manifest_digest.clone(),
                    created_by: event.actor.clone(),
                    created_at: event.at,
                };
                self.releases.insert(
                    r.release.clone(),
                    Expected {
                        value: release,
                        index,
                    },
                );
            }
            EventBody::EnvironmentCertified(c) => {
                let certification = ExpectedCertification {
                    release: c.release.clone(),
                    release_digest: self
                        .releases
                        .get(&c.release)
                        .map(|r| r.value.digest.clone()),
                    promotion: c.promotion.clone(),
                    decision: Some(c.decision.clone()),
                    at: event.at,
                    by_rollback: false,
                };
                self.certify(&c.environment, certification, index);
            }
            EventBody::RolledBack(r) => {
                // The release gone back to keeps its latest certification there, now by
                // rollback.
                let earlier = self
                    .standings
                    .get(&standing_key(&r.environment, &r.to))
                    .map(|s| s.value.certification.clone());
                let certification = ExpectedCertification {
                    release: r.to.clone(),
                    release_digest: earlier.as_ref().and_then(|c| c.release_digest.clone()),
                    promotion: r.restored_promotion.clone(),
                    decision: earlier.and_then(|c| c.decision),
                    at: event.at,
                    by_rollback: true,
                };
                self.certify(&r.environment, certification, index);
            }
            EventBody::KeyRotated(r) => {
                let after_versions = self.policies_applied;
                let ring = self.keyring_at(index);
                ring.rotations.push(crate::keyring::Rotation {
                    purpose: r.purpose,
                    from: r.from.clone(),
                    to: r.to.clone(),
                    public_key: r.public_key.clone(),
                    at: event.at,
                    by: event.actor.clone(),
                    after_versions,
                });
            }
            EventBody::KeyRevoked(r) => {
                let Some(key) = r.keys.first() else { return };
                let ring = self.keyring_at(index);
                ring.revocations.push(crate::keyring::Revocation {
                    key: key.key.clone(),
                    purpose: r.purpose,
                    reason: r.reason.clone(),
                    compromised_since: r.compromised_since,
                    at: event.at,
                    by: event.actor.clone(),
                    successors: r.successors.clone(),
                });
            }
            EventBody::DeployReported(d) if d.status == DeployStatus::Failed => {
                // A failed rollout of the certified release marks its standing failed
                // (so no rollback picks it), whether or not a rollback followed.
                let Some(current) = self.environments.get(&d.environment) else {
                    return;
                };
                let release = current.value.release.clone();
                let in_release = |digest: &Digest| {
                    self.releases
                        .get(&release)
                        .is_some_and(|r| r.value.artifacts.contains(digest))
                };
                if d.artifacts.is_empty() || d.artifacts.iter().any(in_release) {
                    if let Some(standing) = self
                        .standings
                        .get_mut(&standing_key(&d.environment, &release))
                    {
                        standing.value.failed = true;
                        standing.index = index;
                    }
                }
            }
            _ => {}
        }
    }

    /// The keyring record, now set by entry `index`.
    fn keyring_at(&mut self, index: u64) -> &mut crate::keyring::KeyringRecord {
        let ring = self.keyring.get_or_insert_with(|| Expected {
            value: Default::default(),
            index,
        });
        ring.index = index;
        &mut ring.value
    }

    /// `certification` becomes `environment`'s certified release and that release's
    /// latest standing there (first certified when it first was).
    fn certify(&mut self, environment: &str, certification: ExpectedCertification, index: u64) {
        let key = standing_key(environment, &certification.release);
        let first = self
            .standings
            .get(&key)
            .map_or(certification.at, |s| s.value.first_certified_at);
        self.standings.insert(
            key,
            Expected {
                value: ExpectedStanding {
                    certification: certification.clone(),
                    first_certified_at: first,
                    failed: false,
                },
                index,
            },
        );
        self.environments.insert(
            environment.to_owned(),
            Expected {
                value: certification,
                index,
            },
        );
    }
}

/// The state key of a release's standing in an environment.
fn standing_key(environment: &str, release: &str) -> String {
    crate::records::CertificationRecord::key(environment, release)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_setter_kinds_are_parsed() {
        assert!(may_set(
            br#"{"actor":"a","at":"2026-01-01T00:00:00Z","token":"t","principal":"p","type":"token.revoked"}"#
        ));
        assert!(!may_set(
            br#"{"actor":"a","at":"2026-01-01T00:00:00Z","alert":"x","type":"alert.delivered"}"#
        ));
        // A nested `type` member does not hide the event's own.
        assert!(may_set(
            br#"{"auth":{"type":"x"},"environment":"p","type":"rollback"}"#
        ));
        // Text that merely mentions a kind is not a member.
        assert!(!may_set(
            br#"{"text":"a \"type\":\"rollback\" here","type":"alert.raised"}"#
        ));
    }
}
