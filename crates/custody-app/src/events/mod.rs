//! The ledger's events, typed: one variant per kind, each with exactly the fields its leaf
//! holds. Writers build variants; readers (history, alerts, metrics, the dashboard) match
//! them. This module *is* the ledger's schema.
//!
//! Invariants:
//! - **The bytes never change.** A leaf is the RFC 8785 JSON of an [`Event`]; parsing a leaf
//!   and encoding it again gives the same bytes, for every leaf any custody version wrote
//!   (the golden test `tests/golden_ledger.rs` checks a ledger written before these types
//!   existed). So a field that was written as `null` stays an `Option` without
//!   `skip_serializing_if`, and one that was left out when empty keeps its skip.
//! - **Unknown kinds are kept, never a panic.** A leaf of a kind this version does not know
//!   (a newer custody wrote it) reads as [`EventBody::Unknown`] holding its fields whole,
//!   and encodes back to the same bytes. A *known* kind with malformed fields is an error.
//! - The header every event shares (`type`, `at`, `actor`, `auth`, and where the kind has
//!   them `environment`, `artifacts`, `build`) is what [`custody_model::EventHeader`]
//!   reads, so the store can index leaves without this module.
//!
//! Each kind's fields are a struct beside its kin: `governance` (policy versions, their
//! proposals, trusted keys), `supply` (artifacts, evidence, releases), `promotion`
//! (request, decision, reviews, certification) and `operations` (deploys, rollbacks,
//! tokens, alerts, log recovery); exceptions' are in [`crate::exceptions`].

use std::collections::BTreeMap;

use custody_model::{Authentication, CanonicalJson, Digest, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::{AppError, AppResult};

mod governance;
mod operations;
mod promotion;
mod supply;

pub use governance::*;
pub use operations::*;
pub use promotion::*;
pub use supply::*;

/// One ledger event: who acted, when, how they authenticated, and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// Who (a principal).
    pub actor: String,
    /// How the actor authenticated (absent in events written before it was recorded).
    pub auth: Option<Authentication>,
    /// What happened.
    pub body: EventBody,
}

/// Declares [`EventBody`] with one variant per kind, and the list of known kinds.
macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $tag:literal => $variant:ident($ty:ty), )*) => {
        /// What happened: one variant per event kind, tagged in the leaf by `type`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        #[non_exhaustive]
        pub enum EventBody {
            $( $(#[$doc])* #[serde(rename = $tag)] $variant($ty), )*
            /// A kind this version does not know (a newer custody wrote it): every field
            /// but `at`, `actor` and `auth`, kept whole so it encodes back unchanged.
            #[serde(skip)]
            Unknown(Map<String, Value>),
        }

        impl EventBody {
            /// The kind, as the leaf's `type` says.
            pub fn kind(&self) -> &str {
                match self {
                    $( EventBody::$variant(_) => $tag, )*
                    EventBody::Unknown(fields) => {
                        fields.get("type").and_then(Value::as_str).unwrap_or("")
                    }
                }
            }
        }

        impl EventBody {
            /// Reads the fields of a known kind (all but `type`, `at`, `actor` and `auth`)
            /// straight into its type; `None` for a kind this version does not know.
            fn read_known<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                fields: D,
            ) -> Option<Result<EventBody, D::Error>> {
                match kind {
                    $( $tag => Some(<$ty as Deserialize>::deserialize(fields).map(EventBody::$variant)), )*
                    _ => None,
                }
            }
        }

        /// Every kind this version knows.
        pub const KINDS: &[&str] = &[$($tag),*];
    };
}

event_kinds! {
    /// A policy version was put in force.
    "policy.applied" => PolicyApplied(PolicyApplied),
    /// A new policy version was proposed, waiting for its owners' approval.
    "policy.proposed" => PolicyProposed(PolicyProposed),
    /// An owner approved or rejected a proposed policy version.
    "proposal.reviewed" => ProposalReviewed(ProposalReviewed),
    /// An artifact was registered with its build and provenance.
    "artifact.registered" => ArtifactRegistered(ArtifactRegistered),
    /// Another builder built a registered digest again: agreeing evidence.
    "artifact.rebuilt" => ArtifactRebuilt(ArtifactRebuilt),
    /// Two builds of the same source and parameters gave different digests.
    "provenance.discrepancy" => ProvenanceDiscrepancy(ProvenanceDiscrepancy),
    /// Evidence about an artifact was attached.
    "evidence.attached" => EvidenceAttached(EvidenceAttached),
    /// An exception (waiver) for a finding was asked for.
    "exception.requested" => ExceptionRequested(crate::exceptions::ExceptionRequested),
    /// A security reviewer approved or rejected an exception.
    "exception.reviewed" => ExceptionReviewed(crate::exceptions::ExceptionReviewed),
    /// An exception was revoked: it no longer counts.
    "exception.revoked" => ExceptionRevoked(crate::exceptions::ExceptionRevoked),
    /// A release manifest was recorded.
    "release.created" => ReleaseCreated(ReleaseCreated),
    /// A promotion was requested.
    "promotion.requested" => PromotionRequested(PromotionRequested),
    /// The gates of a promotion were evaluated and the VSA signed.
    "decision.recorded" => DecisionRecorded(DecisionRecorded),
    /// A release became an environment's certified release.
    "environment.certified" => EnvironmentCertified(EnvironmentCertified),
    /// A reviewer approved or rejected a promotion.
    "approval.recorded" => ApprovalRecorded(ApprovalRecorded),
    /// Deploy tooling reported what runs in an environment.
    "deploy.reported" => DeployReported(DeployReported),
    /// Digests reported running that were never certified there.
    "drift.detected" => DriftDetected(DriftDetected),
    /// An environment went back to an earlier certified release.
    "rollback" => RolledBack(RolledBack),
    /// A rollback was asked for (or due) but no earlier release passes.
    "rollback.refused" => RollbackRefused(RollbackRefused),
    /// An API token was created.
    "token.created" => TokenCreated(TokenCreated),
    /// An API token was revoked.
    "token.revoked" => TokenRevoked(TokenRevoked),
    /// An alert was raised (and queued for each webhook).
    "alert.raised" => AlertRaised(AlertRaised),
    /// An alert reached a webhook.
    "alert.delivered" => AlertDelivered(AlertDelivered),
    /// An attempt to deliver an alert failed (it stays queued).
    "alert.delivery_failed" => AlertDeliveryFailed(AlertDeliveryFailed),
    /// An operator accepted the log as the database holds it after custody found its
    /// history changed behind its back.
    "log.recovered" => LogRecovered(LogRecovered),
    /// A trusted key handed its purpose to a successor, both signing the hand-over.
    "key.rotated" => KeyRotated(KeyRotated),
    /// A trusted key was revoked: it verifies nothing signed after the revocation, or
    /// after the time it was compromised since.
    "key.revoked" => KeyRevoked(KeyRevoked),
    /// The log's own key was handed over to a successor; the checkpoint that ends with
    /// this event is signed by both keys (see [`custody_ledger::LogKeys`]).
    "log.key_rotated" => LogKeyRotated(LogKeyRotated),
}

/// For `skip_serializing_if`: a flag left out of the leaf while it is false.
fn is_false(b: &bool) -> bool {
    !*b
}

impl Event {
    /// `body`, done by `actor` (with how they authenticated) at their time.
    pub fn by(actor: &crate::Actor, body: EventBody) -> Event {
        Event {
            at: actor.now,
            actor: actor.principal.clone(),
            auth: actor.auth.clone(),
            body,
        }
    }

    /// The event's kind.
    pub fn kind(&self) -> &str {
        self.body.kind()
    }

    /// The environment it is about, if any.
    pub fn environment(&self) -> Option<&str> {
        use EventBody as B;
        Some(match &self.body {
            B::PromotionRequested(e) => &e.environment,
            B::DecisionRecorded(e) => &e.environment,
            B::EnvironmentCertified(e) => &e.environment,
            B::ApprovalRecorded(e) => &e.environment,
            B::DeployReported(e) => &e.environment,
            B::DriftDetected(e) => &e.environment,
            B::RolledBack(e) => &e.environment,
            B::RollbackRefused(e) => &e.environment,
            B::Unknown(f) => return f.get("environment").and_then(Value::as_str),
            _ => return None,
        })
    }

    /// The artifact digests it names.
    pub fn artifacts(&self) -> &[Digest] {
        use EventBody as B;
        match &self.body {
            B::ArtifactRegistered(e) => &e.artifacts,
            B::ProvenanceDiscrepancy(e) => &e.artifacts,
            B::EvidenceAttached(e) => &e.artifacts,
            B::ReleaseCreated(e) => &e.artifacts,
            B::PromotionRequested(e) => &e.artifacts,
            B::DecisionRecorded(e) => &e.artifacts,
            B::EnvironmentCertified(e) => &e.artifacts,
            B::ApprovalRecorded(e) => &e.artifacts,
            B::DeployReported(e) => &e.artifacts,
            B::DriftDetected(e) => &e.artifacts,
            B::RolledBack(e) => &e.artifacts,
            _ => &[],
        }
    }

    /// The event as a JSON value (what the leaf holds, before canonicalisation).
    pub fn to_value(&self) -> AppResult<Value> {
        let mut fields = match &self.body {
            EventBody::Unknown(fields) => fields.clone(),
            body => match serde_json::to_value(body) {
                Ok(Value::Object(fields)) => fields,
                Ok(_) => return Err(AppError::invalid("an event is not a JSON object")),
                Err(e) => {
                    return Err(AppError::invalid(format!(
                        "event {} is not representable: {e}",
                        self.kind()
                    )));
                }
            },
        };
        fields.insert("at".into(), Value::String(self.at.to_string()));
        fields.insert("actor".into(), Value::String(self.actor.clone()));
        if let Some(auth) = &self.auth {
            let auth = serde_json::to_value(auth).map_err(|e| AppError::invalid(e.to_string()))?;
            fields.insert("auth".into(), auth);
        }
        Ok(Value::Object(fields))
    }

    /// The leaf: the event's RFC 8785 bytes.
    pub fn to_leaf(&self) -> AppResult<CanonicalJson> {
        CanonicalJson::from_value(&self.to_value()?).map_err(|e| {
            AppError::invalid(format!("event {} is not representable: {e}", self.kind()))
        })
    }

    /// Reads a leaf. A kind this version does not know is [`EventBody::Unknown`]; a known
    /// kind whose fields do not match its schema is an error naming the kind.
    pub fn from_leaf(leaf: &[u8]) -> Result<Event, EventError> {
        // One pass splits the object into its members, each value's JSON text kept as it
        // is; each value is then read straight into its typed field. (Reading a `Value`
        // tree first, then the internally tagged enum, which buffers the tree once more,
        // built three trees per leaf: verifying a bundle reads a million leaves.) A
        // repeated member keeps its last value, as a `Map` does.
        let mut fields: BTreeMap<Member<'_>, &RawValue> = serde_json::from_slice(leaf)
            .map_err(|e| EventError(format!("not a JSON object: {e}")))?;
        let mut take_str = |name: &str| {
            fields
                .remove(name)
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
                .ok_or_else(|| EventError(format!("no {name:?} text")))
        };
        let at = take_str("at")?
            .parse::<Timestamp>()
            .map_err(|e| EventError(format!("at: {e}")))?;
        let actor = take_str("actor")?;
        let auth = match fields.remove("auth") {
            None => None,
            Some(v) => {
                Some(serde_json::from_str(v.get()).map_err(|e| EventError(format!("auth: {e}")))?)
            }
        };
        let kind = match fields.get("type") {
            Some(v) => serde_json::from_str::<String>(v.get()).ok(),
            None => None,
        }
        .ok_or_else(|| EventError("no \"type\" text".into()))?;
        let known = fields
            .iter()
            .filter(|(name, _)| name.0 != "type")
            .map(|(name, value)| (name.0.clone(), *value));
        let read = EventBody::read_known(
            &kind,
            serde::de::value::MapDeserializer::<_, serde_json::Error>::new(known),
        );
        let body = match read {
            Some(body) => body.map_err(|e| EventError(format!("{kind}: {e}")))?,
            None => EventBody::Unknown(
                fields
                    .into_iter()
                    .map(|(name, value)| {
                        serde_json::from_str(value.get())
                            .map(|v| (name.0.into_owned(), v))
                            .map_err(|e| EventError(format!("{kind}: {e}")))
                    })
                    .collect::<Result<Map<String, Value>, EventError>>()?,
            ),
        };
        Ok(Event {
            at,
            actor,
            auth,
            body,
        })
    }
}

/// A member name of a leaf's object, borrowed from the leaf unless it has escapes.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
struct Member<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl std::borrow::Borrow<str> for Member<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        let fields = Map::deserialize(deserializer)?;
        let leaf = serde_json::to_vec(&fields).map_err(serde::de::Error::custom)?;
        Event::from_leaf(&leaf).map_err(serde::de::Error::custom)
    }
}

/// A leaf that is not an event of the kind it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a custody event: {0}")]
pub struct EventError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_kind_is_kept_whole_and_encodes_back_unchanged() {
        let leaf = br#"{"actor":"x","at":"2026-11-01T00:00:00Z","future":{"a":[1,2]},"type":"widget.frobbed"}"#;
        let event = Event::from_leaf(leaf).unwrap();
        assert_eq!(event.kind(), "widget.frobbed");
        assert!(matches!(event.body, EventBody::Unknown(_)));
        assert_eq!(event.to_leaf().unwrap().as_bytes(), leaf);
    }

    #[test]
    fn a_known_kind_with_wrong_fields_is_an_error_naming_it() {
        let leaf = br#"{"actor":"x","at":"2026-11-01T00:00:00Z","type":"token.revoked","token":7,"principal":"p"}"#;
        let err = Event::from_leaf(leaf).unwrap_err();
        assert!(err.to_string().contains("token.revoked"), "{err}");
        let extra = br#"{"actor":"x","at":"2026-11-01T00:00:00Z","type":"token.revoked","token":"t","principal":"p","sneaky":1}"#;
        assert!(
            Event::from_leaf(extra).is_err(),
            "unknown fields of a known kind"
        );
        assert!(Event::from_leaf(b"[1]").is_err());
        assert!(Event::from_leaf(br#"{"type":"token.revoked"}"#).is_err());
    }

    #[test]
    fn auth_is_written_only_when_known() {
        let mut event = Event {
            at: "2026-11-01T00:00:00Z".parse().unwrap(),
            actor: "root".into(),
            auth: None,
            body: EventBody::TokenRevoked(TokenRevoked {
                token: "t1".into(),
                principal: "argo".into(),
                cascade_from: None,
            }),
        };
        let plain = event.to_leaf().unwrap();
        assert!(
            !std::str::from_utf8(plain.as_bytes())
                .unwrap()
                .contains("auth")
        );
        event.auth = Some(Authentication::Local { user: "ops".into() });
        let leaf = event.to_leaf().unwrap();
        let back = Event::from_leaf(leaf.as_bytes()).unwrap();
        assert_eq!(back, event);
        let header = custody_model::EventHeader::read(leaf.as_bytes()).unwrap();
        assert_eq!(header.auth, event.auth);
    }
}
