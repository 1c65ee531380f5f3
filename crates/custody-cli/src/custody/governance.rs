//! The governance calls of [`Custody`]: the policy, its proposals, and exceptions.

use custody_app::{
    AppError, AppResult, ApplyPolicy, ExceptionRecord, PolicyChange, ProposalView,
    RequestException, ReviewException, ReviewProposal,
};
use custody_model::Verdict;
use serde::Deserialize;

use super::{Custody, now};
use crate::client::segment;

/// The policy in force, as fetched.
pub(crate) struct PolicyInForce {
    pub(crate) digest: String,
    pub(crate) policy: custody_policy::Policy,
}

#[derive(Deserialize)]
struct RemotePolicy {
    digest: String,
    files: std::collections::BTreeMap<String, String>,
}

impl Custody {
    pub(crate) async fn apply_policy(&self, request: &ApplyPolicy) -> AppResult<PolicyChange> {
        match self {
            Custody::Local { app, actor } => app.apply_policy(Self::actor(actor)?, request).await,
            Custody::Remote(c) => {
                c.send(
                    reqwest::Method::PUT,
                    "/api/v1/policy",
                    &(),
                    Some(request),
                    None,
                )
                .await
            }
        }
    }

    /// The policy in force: its digest and bundle, compiled.
    pub(crate) async fn policy_in_force(&self) -> AppResult<PolicyInForce> {
        let (digest, files) = match self {
            Custody::Local { app, .. } => {
                let (record, _) = app.policy_in_force().await?;
                (record.digest, record.bundle.files)
            }
            Custody::Remote(c) => {
                let read: RemotePolicy = c.get("/api/v1/policy", &()).await?;
                (read.digest, read.files)
            }
        };
        let bundle = custody_policy::Bundle { files };
        if bundle.digest() != digest {
            return Err(AppError::Invalid(format!(
                "the policy served as {digest} has digest {}",
                bundle.digest()
            )));
        }
        let policy = custody_policy::compile_recorded(&bundle)?;
        Ok(PolicyInForce { digest, policy })
    }

    pub(crate) async fn proposals(&self, all: bool) -> AppResult<Vec<ProposalView>> {
        match self {
            Custody::Local { app, .. } => app.proposals(!all, now()?).await,
            Custody::Remote(c) => c.get("/api/v1/proposals", &[("all", all)]).await,
        }
    }

    pub(crate) async fn proposal(&self, id: &str) -> AppResult<ProposalView> {
        match self {
            Custody::Local { app, .. } => app.proposal(id, now()?).await,
            Custody::Remote(c) => {
                c.get(&format!("/api/v1/proposals/{}", segment(id)), &())
                    .await
            }
        }
    }

    pub(crate) async fn review_proposal(
        &self,
        id: &str,
        verdict: Verdict,
        request: &ReviewProposal,
    ) -> AppResult<PolicyChange> {
        match self {
            Custody::Local { app, actor } => {
                app.review_proposal(Self::actor(actor)?, id, verdict, request)
                    .await
            }
            Custody::Remote(c) => {
                let action = verdict;
                c.post(
                    &format!("/api/v1/proposals/{}/{action}", segment(id)),
                    request,
                    None,
                )
                .await
            }
        }
    }

    pub(crate) async fn request_exception(
        &self,
        request: &RequestException,
        key: Option<&str>,
    ) -> AppResult<ExceptionRecord> {
        match self {
            Custody::Local { app, actor } => {
                app.request_exception(Self::actor(actor)?, request, key)
                    .await
            }
            Custody::Remote(c) => c.post("/api/v1/exceptions", request, key).await,
        }
    }

    pub(crate) async fn review_exception(
        &self,
        id: &str,
        verdict: Verdict,
        request: &ReviewException,
    ) -> AppResult<ExceptionRecord> {
        match self {
            Custody::Local { app, actor } => {
                app.review_exception(Self::actor(actor)?, id, verdict, request)
                    .await
            }
            Custody::Remote(c) => {
                let action = verdict;
                let path = format!("/api/v1/exceptions/{}/{action}", segment(id));
                c.post(&path, request, None).await
            }
        }
    }

    pub(crate) async fn revoke_exception(
        &self,
        id: &str,
        revoke: &custody_app::RevokeException,
    ) -> AppResult<ExceptionRecord> {
        match self {
            Custody::Local { app, actor } => {
                app.revoke_exception(Self::actor(actor)?, id, revoke).await
            }
            Custody::Remote(c) => {
                let path = format!("/api/v1/exceptions/{}/revoke", segment(id));
                c.post(&path, revoke, None).await
            }
        }
    }

    pub(crate) async fn exceptions(&self, limit: usize) -> AppResult<Vec<ExceptionRecord>> {
        match self {
            Custody::Local { app, .. } => app.exceptions(limit).await,
            Custody::Remote(c) => c.get("/api/v1/exceptions", &[("limit", limit)]).await,
        }
    }

    pub(crate) async fn exception(&self, id: &str) -> AppResult<ExceptionRecord> {
        match self {
            Custody::Local { app, .. } => app.exception(id).await,
            Custody::Remote(c) => {
                c.get(&format!("/api/v1/exceptions/{}", segment(id)), &())
                    .await
            }
        }
    }
}
