//! Changing the rules: a new policy version (and with it who holds which role and which
//! keys are trusted) is a *proposal* with its diff, in force only once a quorum of the
//! owners the policy in force names approved it, never counting its proposer.
//!
//! ```text
//! apply_policy ──▶ policy.proposed ──review_proposal×quorum──▶ proposal.reviewed + policy.applied
//!      │                              └──one rejection───────▶ proposal.reviewed (closed)
//!      └── bootstrap (first policy, or operator replacing an ungoverned one) ──▶ policy.applied
//! ```
//!
//! Invariants:
//! - The bar for a change is the policy in force's ([`custody_policy::Governance`]): a
//!   proposal is against one version, and approving it is refused once another version is
//!   in force (it is stale: propose again), so a proposal can never lower its own bar.
//! - An approval of a proposal counts only from the approver's own credential, as an
//!   approval of a promotion does (`identity::not_personal`, `approval_statement`).
//! - Bootstrapping is the one exception, recorded as such (`bootstrap: true`): the first
//!   policy of an instance, or the operator on the data directory replacing a policy that
//!   names too few owners for anyone to approve a change (a fresh instance's starter).
//! - Every version that takes effect raises an alert (critical if it loosens anything).

use custody_model::{Authentication, Timestamp, Verdict};
use custody_policy::{Bundle, Change, Policy, Role};
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};

use crate::app::{Actor, App, Versioned, event, expect_version, new_id, write};
use crate::catalog::ApplyPolicy;
use crate::events::{self, EventBody};
use crate::identity::Permission;
use crate::records::{PolicyRecord, kind};
use crate::{AppError, AppResult};

mod review;

pub use review::ReviewProposal;

/// How long a proposal stays open.
pub const PROPOSAL_LIFETIME: u64 = 7 * 86_400;

/// What asking for a policy version did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyChange {
    /// The bundle's digest.
    pub digest: String,
    /// Whether it is in force now because of this request.
    pub changed: bool,
    /// Ledger index of the event recorded (none if nothing was).
    pub ledger_index: Option<u64>,
    /// Put in force without approvals (see [`crate::governance`]).
    #[serde(default)]
    pub bootstrap: bool,
    /// The proposal, while it waits for its owners (or as it was decided).
    #[serde(default)]
    pub proposal: Option<ProposalView>,
    /// What it changes from the version in force.
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// A proposed policy version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalRecord {
    /// Its id.
    pub id: String,
    /// The proposed version's digest.
    pub policy: String,
    /// The version in force it replaces.
    pub previous: Option<String>,
    /// The proposed bundle.
    pub bundle: Bundle,
    /// What it changes.
    pub changes: Vec<Change>,
    /// Who proposed it.
    pub proposed_by: String,
    /// Who made the credential it was proposed with, when that was someone else (an admin
    /// who minted the proposer's token, and saw its secret): they could have proposed it
    /// themselves, so they never review it either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_through: Option<String>,
    /// When.
    pub proposed_at: Timestamp,
    /// When it lapses unless applied.
    pub expires_at: Timestamp,
    /// Approvals needed from owners other than the proposer.
    pub quorum: u32,
    /// The owner roles.
    pub owners: Vec<Role>,
    /// Owners' approvals and rejections, in order.
    pub reviews: Vec<ProposalVote>,
    /// Decided or not.
    pub status: ProposalStatus,
}

/// One owner's verdict on a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalVote {
    /// Who.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Approve or reject.
    pub verdict: Verdict,
    /// Why.
    pub rationale: String,
    /// How they authenticated.
    pub auth: Option<Authentication>,
    /// Their signed approval statement, if they signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<custody_crypto::dsse::Envelope>,
}

/// Where a proposal stands, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProposalStatus {
    /// Waiting for owners.
    Open,
    /// In force (or it was).
    Applied,
    /// An owner rejected it.
    Rejected,
}

/// A proposal as shown: the record and where it stands now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposalView {
    /// The record.
    #[serde(flatten)]
    pub record: ProposalRecord,
    /// `open`, `applied`, `rejected`, `stale` (another version came into force since) or
    /// `expired`.
    pub standing: String,
    /// Approvals still needed while open.
    pub approvals_needed: u32,
}

impl ProposalRecord {
    fn approvers(&self) -> Vec<String> {
        self.reviews
            .iter()
            .filter(|v| v.verdict == Verdict::Approve)
            .map(|v| v.by.clone())
            .collect()
    }

    /// Where it stands with `in_force` in force at `now`.
    pub fn view(self, in_force: Option<&str>, now: Timestamp) -> ProposalView {
        let approvals = u32::try_from(self.approvers().len()).unwrap_or(u32::MAX);
        let standing = match self.status {
            ProposalStatus::Applied => "applied",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Open if self.previous.as_deref() != in_force => "stale",
            ProposalStatus::Open if now >= self.expires_at => "expired",
            ProposalStatus::Open => "open",
        };
        ProposalView {
            approvals_needed: if standing == "open" {
                self.quorum.saturating_sub(approvals)
            } else {
                0
            },
            standing: standing.into(),
            record: self,
        }
    }
}

impl<S: Store> App<S> {
    /// Asks for a policy bundle to be put in force: compiles it (refusing it with every
    /// mistake, by line), then records it as a proposal for the policy's owners to approve,
    /// with what it changes. Asking for the version in force, or for one already proposed
    /// against it and still open, records nothing.
    ///
    /// Bootstrap, the one exception, puts it in force at once: when no policy is in force,
    /// or when the one in force names too few owners for a change ever to be approved and
    /// the operator on the data directory asks. Anyone else is told so.
    pub async fn apply_policy(
        &self,
        actor: &Actor,
        request: &ApplyPolicy,
    ) -> AppResult<PolicyChange> {
        let bundle = Bundle {
            files: request.files.clone(),
        };
        let proposed = custody_policy::compile(&bundle)?;
        self.keys_may_be_trusted(&proposed, actor.now).await?;
        let digest = bundle.digest();
        let now = actor.now.unix_seconds();
        let through = self.credential_made_by(actor).await?;
        self.retrying(|| async {
            let current: Option<Versioned<PolicyRecord>> =
                self.get(kind::POLICY, "current").await?;
            let in_force = match &current {
                Some(c) => Some(custody_policy::compile_recorded(&c.value.bundle)?),
                None => None,
            };
            let changes = in_force
                .as_ref()
                .map(|p| custody_policy::diff(p, &proposed))
                .unwrap_or_default();
            let unchanged = PolicyChange {
                digest: digest.clone(),
                changed: false,
                ledger_index: None,
                bootstrap: false,
                proposal: None,
                changes: Vec::new(),
            };
            if current.as_ref().is_some_and(|c| c.value.digest == digest) {
                return Ok(unchanged);
            }
            // Only someone shown to hold the data directory is its operator: an actor whose
            // authentication is not known (a library caller) is not.
            let operator = matches!(actor.auth, Some(Authentication::Local { .. }));
            let bootstrap = match &in_force {
                None => operator,
                // Never because owners' grants ended: that leaves a change stuck, not open.
                Some(p) => operator && !p.names_a_quorum(),
            };
            if bootstrap {
                return self.bootstrap(actor, &bundle, &current, changes).await;
            }
            let Some(in_force) = in_force else {
                return Err(AppError::denied(
                    "no policy is in force yet: the first one is applied by the operator on the data directory (`custody policy propose DIR`)",
                ));
            };
            self.permit(actor, Permission::Policy).await?;
            if !in_force.governed(now) {
                return Err(AppError::denied(format!(
                    "nobody could approve a change of the policy in force: it names {} owner(s) or fewer holding {} (unscoped), and a change needs {} other than its proposer\nhint: the operator on the data directory replaces it (`custody policy propose DIR` there), with a [governance] section and enough owners",
                    in_force.governance().quorum,
                    owner_names(&in_force),
                    in_force.governance().quorum
                )));
            }
            // A governed policy never proposes its way out of governance: a version naming
            // too few owners would leave the next change to the operator alone.
            if !proposed.names_a_quorum() {
                return Err(AppError::invalid(format!(
                    "this version names no more owners (holders of {}, unscoped) than its quorum of {}: once in force, nobody could approve a change of it, and the operator alone could replace it\nhint: keep more owners than the quorum (the proposer never counts)",
                    owner_names(&proposed),
                    proposed.governance().quorum
                )));
            }
            let previous = current.as_ref().map(|c| c.value.digest.clone());
            if let Some(open) = self.open_proposal(&digest, previous.as_deref(), actor.now).await? {
                return Ok(PolicyChange {
                    proposal: Some(open.view(previous.as_deref(), actor.now)),
                    changes,
                    ..unchanged
                });
            }
            let governance = in_force.governance();
            let record = ProposalRecord {
                id: new_id("prop"),
                policy: digest.clone(),
                previous: previous.clone(),
                bundle: bundle.clone(),
                changes: changes.clone(),
                proposed_by: actor.principal.clone(),
                proposed_through: through.clone(),
                proposed_at: actor.now,
                expires_at: actor.now.plus_seconds(PROPOSAL_LIFETIME),
                quorum: governance.quorum,
                owners: governance.owners.clone(),
                reviews: Vec::new(),
                status: ProposalStatus::Open,
            };
            let appended = self
                .append(
                    vec![event(
                        actor,
                        EventBody::PolicyProposed(events::PolicyProposed {
                            proposal: record.id.clone(),
                            policy: digest.clone(),
                            previous: previous.clone(),
                            files: bundle.files.clone(),
                            changes: changes.clone(),
                            quorum: record.quorum,
                            owners: record.owners.clone(),
                            expires_at: record.expires_at,
                        }),
                    )?],
                    vec![write(kind::PROPOSAL, &record.id, &record, Expect::Absent)?],
                    None,
                )
                .await?;
            Ok(PolicyChange {
                ledger_index: Some(appended.first_index),
                proposal: Some(record.view(previous.as_deref(), actor.now)),
                changes,
                ..unchanged
            })
        })
        .await
    }

    /// The proposals, newest first: all of them, or only those still open.
    pub async fn proposals(&self, open_only: bool, now: Timestamp) -> AppResult<Vec<ProposalView>> {
        let in_force = self
            .get::<String>(kind::POLICY_DIGEST, "current")
            .await?
            .map(|d| d.value);
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.store.states(kind::PROPOSAL, &after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.key.clone();
            for r in page {
                let record: ProposalRecord =
                    serde_json::from_slice(r.value.as_bytes()).map_err(|e| {
                        AppError::Store(custody_store::StoreError::Corrupt(format!(
                            "proposal {}: {e}",
                            r.key
                        )))
                    })?;
                let view = record.view(in_force.as_deref(), now);
                if !open_only || view.standing == "open" {
                    out.push(view);
                }
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.record.proposed_at));
        Ok(out)
    }

    /// The policy in force: its record and its compiled form.
    pub async fn policy_in_force(&self) -> AppResult<(PolicyRecord, std::sync::Arc<Policy>)> {
        let record: Versioned<PolicyRecord> = self
            .require(kind::POLICY, "current", || {
                "no policy is in force yet".into()
            })
            .await?;
        Ok((record.value, self.policy().await?))
    }

    /// One proposal.
    pub async fn proposal(&self, id: &str, now: Timestamp) -> AppResult<ProposalView> {
        let record: Versioned<ProposalRecord> = self
            .require(kind::PROPOSAL, id, || format!("no proposal {id}"))
            .await?;
        let in_force = self
            .get::<String>(kind::POLICY_DIGEST, "current")
            .await?
            .map(|d| d.value);
        Ok(record.value.view(in_force.as_deref(), now))
    }

    /// The open proposal of `digest` against `previous`, if there is one.
    async fn open_proposal(
        &self,
        digest: &str,
        previous: Option<&str>,
        now: Timestamp,
    ) -> AppResult<Option<ProposalRecord>> {
        Ok(self
            .proposals(true, now)
            .await?
            .into_iter()
            .map(|v| v.record)
            .find(|r| r.policy == digest && r.previous.as_deref() == previous))
    }

    /// Puts `bundle` in force as a bootstrap.
    async fn bootstrap(
        &self,
        actor: &Actor,
        bundle: &Bundle,
        current: &Option<Versioned<PolicyRecord>>,
        changes: Vec<Change>,
    ) -> AppResult<PolicyChange> {
        let digest = bundle.digest();
        let record = PolicyRecord {
            digest: digest.clone(),
            bundle: bundle.clone(),
            applied_at: actor.now,
            applied_by: actor.principal.clone(),
        };
        let appended = self
            .append(
                vec![event(
                    actor,
                    EventBody::PolicyApplied(events::PolicyApplied {
                        policy: digest.clone(),
                        previous: current.as_ref().map(|c| c.value.digest.clone()),
                        files: bundle.files.clone(),
                        proposal: None,
                        proposed_by: None,
                        approvers: Vec::new(),
                        changes: changes.clone(),
                        bootstrap: true,
                    }),
                )?],
                policy_writes(&record, expect_version(current))?,
                None,
            )
            .await?;
        Ok(PolicyChange {
            digest,
            changed: true,
            ledger_index: Some(appended.first_index),
            bootstrap: true,
            proposal: None,
            changes,
        })
    }
}

/// The state writes that put a policy version in force.
fn policy_writes(
    record: &PolicyRecord,
    expect: Expect,
) -> AppResult<Vec<custody_store::StateWrite>> {
    Ok(vec![
        write(kind::POLICY, "current", record, expect)?,
        write(kind::POLICY_VERSION, &record.digest, record, Expect::Any)?,
        write(kind::POLICY_DIGEST, "current", &record.digest, Expect::Any)?,
    ])
}

fn owner_names(policy: &Policy) -> String {
    policy
        .governance()
        .owners
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(" or ")
}
