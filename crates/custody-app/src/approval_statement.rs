//! Approvals a person signs with their own key: an in-toto Statement v1 in a DSSE envelope,
//! bound to exactly what it approves, that anyone can verify offline with the approver's
//! public key (the policy's `[[person_key]]` enrols it).
//!
//! ```json
//! {"_type": "https://in-toto.io/Statement/v1",
//!  "subject": [{"name": "shop@1.4.2", "digest": {"sha256": "<release manifest digest>"}}],
//!  "predicateType": "https://custody.dev/approval/v1",
//!  "predicate": {"approver": "bob", "verdict": "approve", "rationale": "…", "risk": "low",
//!                "kind": "promotion", "promotion": "prm-…", "environment": "production",
//!                "policy": "sha256:…", "signedAt": "…", "expires": "…"}}
//! ```
//!
//! For a policy proposal the subject is the proposed bundle (`policy`, its digest), and the
//! predicate names `"kind": "proposal"`, the proposal and the version it replaces. For
//! breaking glass the subject is `break-glass:RELEASE:ENV` with the policy version's
//! digest, and the predicate names `"kind": "break-glass"`, the release, the environment
//! and the policy; its rationale is the reason. For an
//! exception (waiver) the subject is `exception:ID` with the digest of what was asked for
//! (finding, subject, plan, expiry…), and the predicate names `"kind": "exception"`.
//!
//! Invariant: a statement counts for one thing only. Every field it binds is compared with
//! the thing being approved before it counts, a signature must come from a key the policy
//! in force enrols for the approver it names, and it counts only between `signedAt` (less a
//! minute of clock skew) and `expires`, at most [`MAX_VALIDITY`] later: an old statement
//! cannot be replayed into a later promotion or proposal.

use custody_crypto::dsse::{Envelope, KeyIdHint};
use custody_crypto::statement::{PAYLOAD_TYPE, Statement, Subject};
use custody_crypto::{PublicKey, Signer};
use custody_model::{Authentication, Digest, Risk, Timestamp, Verdict};
use custody_policy::Policy;
use serde::{Deserialize, Serialize};

use crate::app::Actor;
use crate::{AppError, AppResult};

/// The predicate type of a signed approval.
pub const APPROVAL_V1: &str = "https://custody.dev/approval/v1";

/// How long after signing a statement may be submitted: a week.
pub const MAX_VALIDITY: u64 = 7 * 86_400;

/// Clock skew tolerated between the signer's machine and custody.
pub(crate) const SKEW: i64 = 60;

/// What a signed approval approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Approved {
    /// A promotion of a release into an environment, under a policy version.
    Promotion {
        /// The promotion's id.
        promotion: String,
        /// `name@version`.
        release: String,
        /// The release manifest's digest (the statement's subject).
        #[serde(skip)]
        release_digest: Option<Digest>,
        /// The environment.
        environment: String,
        /// The policy version in force.
        policy: String,
    },
    /// A proposed policy version, replacing the one in force.
    Proposal {
        /// The proposal's id.
        proposal: String,
        /// The proposed version's digest (the statement's subject).
        policy: String,
        /// The version in force it replaces.
        previous: Option<String>,
    },
    /// Breaking glass: a release into an environment past the gates that time, people or a
    /// freeze hold closed, under a policy version (the reason is the rationale).
    #[serde(rename = "break-glass")]
    BreakGlass {
        /// `name@version`.
        release: String,
        /// The environment.
        environment: String,
        /// The policy version in force (the statement's subject: the release breaks glass
        /// under it).
        policy: String,
    },
    /// An exception (waiver) as it was asked for.
    Exception {
        /// The exception's id.
        exception: String,
        /// The digest of what was asked for (the statement's subject; see
        /// `ExceptionRecord::digest`).
        asked: Digest,
        /// The policy version in force.
        policy: String,
    },
}

impl Approved {
    /// What a statement approving this is, in a refusal ("the signed … does not count").
    pub fn statement_name(&self) -> &'static str {
        match self {
            Approved::Promotion { .. } => "approval",
            Approved::Proposal { .. } => "approval of the policy change",
            Approved::BreakGlass { .. } => "break-glass request",
            Approved::Exception { .. } => "approval of the waiver",
        }
    }
}

/// The predicate of a signed approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPredicate {
    /// Who approves (the principal the key is enrolled for).
    pub approver: String,
    /// Approve or reject.
    pub verdict: Verdict,
    /// Why.
    pub rationale: String,
    /// The risk the reviewer sees (promotions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// What is approved.
    #[serde(flatten)]
    pub approves: Approved,
    /// When it was signed.
    pub signed_at: Timestamp,
    /// Until when it may be submitted.
    pub expires: Timestamp,
}

impl Approved {
    /// The approval of `promotion` under the policy version `policy` (its digest).
    pub fn promotion(promotion: &crate::records::PromotionRecord, policy: &str) -> Approved {
        Approved::Promotion {
            promotion: promotion.id.clone(),
            release: promotion.release.clone(),
            release_digest: Some(promotion.release_digest.clone()),
            environment: promotion.environment.clone(),
            policy: policy.to_owned(),
        }
    }

    /// The statement's subject: the release, or the proposed bundle.
    fn subject(&self) -> AppResult<Subject> {
        Ok(match self {
            Approved::Promotion {
                release,
                release_digest: Some(digest),
                ..
            } => Subject::new(release, digest)?,
            Approved::Promotion { .. } => {
                return Err(AppError::invalid(
                    "a signed approval of a promotion needs the release digest",
                ));
            }
            Approved::Proposal { policy, .. } => Subject::new("policy", &policy_digest(policy)?)?,
            Approved::BreakGlass {
                release,
                environment,
                policy,
            } => Subject::new(
                format!("break-glass:{release}:{environment}"),
                &policy_digest(policy)?,
            )?,
            Approved::Exception {
                exception, asked, ..
            } => Subject::new(format!("exception:{exception}"), asked)?,
        })
    }

    /// For messages: `promotion prm-… (shop@1.4.2 → production)`.
    fn describe(&self) -> String {
        match self {
            Approved::Promotion {
                promotion,
                release,
                environment,
                ..
            } => format!("promotion {promotion} ({release} → {environment})"),
            Approved::Proposal {
                proposal, policy, ..
            } => format!("proposal {proposal} (policy {policy})"),
            Approved::Exception { exception, .. } => format!("exception {exception}"),
            Approved::BreakGlass {
                release,
                environment,
                ..
            } => format!("breaking glass: {release} → {environment}"),
        }
    }
}

/// The fields in which two statements' subjects that read alike differ, as `name (signed
/// VALUE, here VALUE)`: the policy version, say, when the policy changed since signing.
fn differing_fields(signed: &Approved, here: &Approved) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(signed), serde_json::to_value(here))
    else {
        return "subject".into();
    };
    let differing: Vec<String> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(*v))
        .map(|(k, v)| {
            let shown = |v: Option<&serde_json::Value>| {
                v.map_or_else(
                    || "none".to_owned(),
                    |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            };
            format!("{k} (signed {}, here {})", shown(a.get(k)), shown(Some(v)))
        })
        .collect();
    if differing.is_empty() {
        "subject".into()
    } else {
        differing.join(", ")
    }
}

fn policy_digest(policy: &str) -> AppResult<Digest> {
    policy
        .parse()
        .map_err(|e| AppError::invalid(format!("policy digest {policy:?}: {e}")))
}

/// What names a signed statement for its one use: the SHA-256 of the bytes its signatures
/// sign (DSSE's pre-authentication encoding of its type and payload), so that a copy
/// whose unsigned parts were changed (a signature's key id, a signature added twice, the
/// payload's base64 spelt otherwise) is the same statement.
pub fn use_key(envelope: &Envelope) -> AppResult<String> {
    let payload = envelope
        .unverified_payload()
        .map_err(|e| AppError::invalid(format!("the signed statement: {e}")))?;
    let signed = custody_crypto::dsse::pae(&envelope.payload_type, &payload);
    Ok(crate::attestations::sha256(&signed).to_string())
}

/// Signs `predicate` with the approver's own key: the envelope to send with the review.
/// Its signature carries the key id `securesystemslib` computes, so that independent
/// verifiers find the key by it (custody verifies against every enrolled key anyway).
pub fn sign(signer: &dyn Signer, predicate: &ApprovalPredicate) -> AppResult<Envelope> {
    let value = serde_json::to_value(predicate).map_err(|e| AppError::invalid(e.to_string()))?;
    let statement = Statement::new(vec![predicate.approves.subject()?], APPROVAL_V1, value)?;
    Ok(custody_crypto::dsse::sign(
        signer,
        PAYLOAD_TYPE,
        &statement.to_json(),
        KeyIdHint::Securesystemslib,
    )?)
}

/// What a signed statement is sent for: what it must approve, with the request's verdict,
/// rationale and risk (promotions).
pub(crate) struct Claim<'a> {
    pub(crate) approves: &'a Approved,
    pub(crate) verdict: Verdict,
    pub(crate) rationale: &'a str,
    pub(crate) risk: Option<Risk>,
}

impl<S: custody_store::Store> crate::app::App<S> {
    /// `envelope` checked as `actor`'s signed statement of `claim` under `policy` (see
    /// [`check`]), by a personal key the keyring still counts (not revoked, not retired):
    /// the keyring on its record as the store holds it (`keyring`: read by the caller
    /// with its other records; otherwise read here).
    pub(crate) async fn personally_signed(
        &self,
        envelope: &Envelope,
        policy: &Policy,
        actor: &Actor,
        claim: Claim<'_>,
        keyring: Option<Option<crate::app::Versioned<crate::keyring::KeyringRecord>>>,
    ) -> AppResult<SignedApproval> {
        let signed = check(
            envelope,
            policy,
            actor,
            claim.approves,
            claim.verdict,
            claim.rationale,
            claim.risk,
        )?;
        if let Err(why) = self
            .personal_key_counts(&signed.key.key, actor.now, keyring)
            .await?
        {
            return Err(AppError::denied(refusal(claim.approves, &why)));
        }
        Ok(signed)
    }
}

/// A signed approval that verified and matches what it is sent for.
#[derive(Debug, Clone)]
pub struct SignedApproval {
    /// The approver, acting by their key at the time of submission.
    pub actor: Actor,
    /// What they signed.
    pub predicate: ApprovalPredicate,
    /// The personal key that signed it.
    pub key: crate::events::KeyUse,
}

/// Why a signed statement of `approved` does not count, as the caller hears it.
fn refusal(approved: &Approved, why: &dyn std::fmt::Display) -> String {
    format!(
        "the signed {} does not count: {why}",
        approved.statement_name()
    )
}

/// Checks `envelope` as `actor`'s signed approval of `expected` with `verdict` and
/// `rationale` (and `risk`, for promotions), under `policy`, at `actor.now`. Returns the
/// approver acting by their key. The submitter must be the approver, unless they are the
/// operator on the data directory relaying it.
pub fn check(
    envelope: &Envelope,
    policy: &Policy,
    actor: &Actor,
    expected: &Approved,
    verdict: Verdict,
    rationale: &str,
    risk: Option<Risk>,
) -> AppResult<SignedApproval> {
    let refused = |why: String| AppError::denied(refusal(expected, &why));
    let keys: Vec<PublicKey> = policy.person_keys().iter().map(|k| k.key.clone()).collect();
    if keys.is_empty() {
        return Err(refused(
            "the policy in force enrols no personal keys ([[person_key]])".into(),
        ));
    }
    let verified = custody_crypto::dsse::verify(envelope, &keys, 1).map_err(|e| {
        refused(format!(
            "no enrolled personal key signed it ({e}); a tampered statement or another key's signature never counts"
        ))
    })?;
    if verified.payload_type() != PAYLOAD_TYPE {
        return Err(refused(format!(
            "payload type {:?} is not an in-toto statement",
            verified.payload_type()
        )));
    }
    let [signer] = verified.key_ids() else {
        return Err(refused(
            "it carries signatures of more than one person".into(),
        ));
    };
    let key_id = signer.to_string();
    let enrolled = policy
        .person_key(&key_id)
        .ok_or_else(|| refused(format!("key {key_id} is not enrolled")))?;
    let statement = Statement::from_json(verified.payload())?;
    if statement.predicate_type() != APPROVAL_V1 {
        return Err(refused(format!(
            "predicate type {:?} is not {APPROVAL_V1}",
            statement.predicate_type()
        )));
    }
    let predicate: ApprovalPredicate =
        serde_json::from_value(serde_json::Value::Object(statement.predicate().clone()))
            .map_err(|e| refused(format!("its predicate does not read: {e}")))?;
    if predicate.approver != enrolled.principal {
        return Err(refused(format!(
            "it names {} as approver, but key {} is enrolled for {}",
            predicate.approver,
            short(&key_id),
            enrolled.principal
        )));
    }
    let subject = expected.subject()?;
    if statement.subjects() != [subject] {
        return Err(refused(format!(
            "it is about another subject than {}",
            expected.describe()
        )));
    }
    let mut approves = predicate.approves.clone();
    if let (
        Approved::Promotion {
            release_digest: mine,
            ..
        },
        Approved::Promotion {
            release_digest: theirs,
            ..
        },
    ) = (&mut approves, expected)
    {
        mine.clone_from(theirs);
    }
    if &approves != expected {
        let (signed, here) = (approves.describe(), expected.describe());
        return Err(refused(if signed == here {
            format!(
                "it approves {here}, but with another {}; sign again for this one",
                differing_fields(&approves, expected)
            )
        } else {
            format!("it approves {signed}, not {here}; sign again for this one")
        }));
    }
    if predicate.verdict != verdict {
        return Err(refused(format!(
            "it says {:?}, but this is {verdict:?}",
            predicate.verdict
        )));
    }
    if predicate.rationale != rationale || predicate.risk != risk {
        return Err(refused(
            "its rationale or risk differs from the request's".into(),
        ));
    }
    let now = actor.now.unix_seconds();
    let (signed, expires) = (
        predicate.signed_at.unix_seconds(),
        predicate.expires.unix_seconds(),
    );
    if signed > now + SKEW {
        return Err(refused(format!(
            "it was signed at {}, in the future",
            predicate.signed_at
        )));
    }
    if expires <= now {
        return Err(refused(format!(
            "it expired at {}; sign a new one",
            predicate.expires
        )));
    }
    if expires.saturating_sub(signed) > i64::try_from(MAX_VALIDITY).unwrap_or(i64::MAX) {
        return Err(refused(
            "it may be submitted for more than a week after signing; sign one that expires sooner"
                .into(),
        ));
    }
    let relayed = matches!(actor.auth, Some(Authentication::Local { .. }));
    if actor.principal != enrolled.principal && !relayed {
        return Err(refused(format!(
            "it is {}'s, sent with {}'s credential; each person sends their own",
            enrolled.principal, actor.principal
        )));
    }
    let approver = Actor::new(enrolled.principal.clone(), actor.now)?.authenticated_by(
        Authentication::PersonalKey {
            key: key_id,
            sent_with: actor.auth.clone().map(Box::new),
        },
    );
    Ok(SignedApproval {
        actor: approver,
        predicate,
        key: crate::events::KeyUse::of(&enrolled.key),
    })
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
