//! Signing an approval with your own enrolled key (`--sign-key`): the statement that makes
//! an approval yours (sent by you, or relayed by the operator on the data directory; see
//! `custody_app::approval_statement`).

use std::path::Path;

use anyhow::bail;
use custody_app::approval_statement::{self, ApprovalPredicate, Approved};
use custody_crypto::dsse::Envelope;
use custody_model::{Risk, Verdict};

use crate::custody::{Custody, PolicyInForce};
use crate::input::load_signer;

/// How long a statement signed here may wait before it is submitted. It is submitted at
/// once; the margin covers a slow network, not a statement kept for later.
const VALIDITY: u64 = 3600;

/// What a review of an exception or a policy proposal takes besides its id.
#[derive(Debug, clap::Args)]
pub(crate) struct Reviewing {
    /// Why: recorded with your review, for auditors.
    #[arg(long)]
    pub(crate) rationale: String,
    /// Sign your review with this private key, enrolled for you in the policy in force
    /// (`[[person_key]]`): the signature, not the credential, then says who reviews (the
    /// credential that sends it must still be allowed to review).
    #[arg(long, value_name = "KEY")]
    pub(crate) sign_key: Option<std::path::PathBuf>,
}

impl Reviewing {
    /// The signed statement of this review (with `--sign-key`) of what `approves` names.
    pub(crate) async fn statement(
        &self,
        custody: &Custody,
        verdict: Verdict,
        approves: impl AsyncFnOnce(&PolicyInForce) -> anyhow::Result<Approved>,
    ) -> anyhow::Result<Option<Envelope>> {
        let key = self.sign_key.as_deref();
        statement(custody, key, verdict, &self.rationale, None, approves).await
    }
}

/// Refuses a review without a rationale: it is recorded for auditors.
pub(crate) fn require_rationale(rationale: &str) -> anyhow::Result<()> {
    if rationale.trim().is_empty() {
        bail!("a review needs a rationale (--rationale): it is recorded for auditors");
    }
    Ok(())
}

/// The signed statement of a review when the reviewer gave `--sign-key` (`key`), of what
/// `approves` names under the policy in force; none without a key (nothing is read then).
pub(crate) async fn statement(
    custody: &Custody,
    key: Option<&Path>,
    verdict: Verdict,
    rationale: &str,
    risk: Option<Risk>,
    approves: impl AsyncFnOnce(&PolicyInForce) -> anyhow::Result<Approved>,
) -> anyhow::Result<Option<Envelope>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let in_force = custody.policy_in_force().await?;
    let approves = approves(&in_force).await?;
    sign(key, &in_force, approves, verdict, rationale, risk).map(Some)
}

/// Signs the approval (or rejection) of `approves` with the private key at `key`, which
/// the policy in force must enrol (`[[person_key]]`): the statement names the person the
/// key is enrolled for.
fn sign(
    key: &Path,
    in_force: &PolicyInForce,
    approves: Approved,
    verdict: Verdict,
    rationale: &str,
    risk: Option<Risk>,
) -> anyhow::Result<Envelope> {
    let signer = load_signer(key)?;
    let key_id = signer.key_id().to_string();
    let Some(enrolled) = in_force.policy.person_key(&key_id) else {
        bail!(
            "{} (key {key_id}) is not enrolled in the policy in force ({})\nhint: a personal key is enrolled by a reviewed policy change: [[person_key]] principal = \"you\", path = \"keys/you.pub\"",
            key.display(),
            in_force.digest
        );
    };
    let now = crate::context::now()?;
    let predicate = ApprovalPredicate {
        approver: enrolled.principal.clone(),
        verdict,
        rationale: rationale.to_owned(),
        risk,
        approves,
        signed_at: now,
        expires: now.plus_seconds(VALIDITY),
    };
    Ok(approval_statement::sign(signer.as_ref(), &predicate)?)
}
