//! What a principal may do: the permissions routes and use cases ask for, the roles that
//! hold them, and the checks every use case makes whoever calls it.

use custody_model::Authentication;
use custody_store::Store;

use crate::app::{Actor, App};
use crate::{AppError, AppResult};

impl<S: Store> App<S> {
    /// Whether `actor` has `permission` under the policy in force at the actor's time. Every
    /// use case that changes something asks, whoever calls it: the server's route guard
    /// answers the same question earlier (with a 401 or 403), the CLI on a data directory
    /// has no other guard. custody's own actions (alerting) need none.
    pub(crate) async fn permit(&self, actor: &Actor, permission: Permission) -> AppResult<()> {
        if actor.auth == Some(Authentication::System) {
            return Ok(());
        }
        let policy = self.policy().await?;
        let roles: Vec<String> = policy
            .grants_of(&actor.principal, actor.now.unix_seconds())
            .map(custody_policy::Grant::key)
            .collect();
        if permission.granted_to(&roles) {
            return Ok(());
        }
        let who = &actor.principal;
        let local = match &actor.auth {
            Some(Authentication::Local { .. }) => format!(
                "\nhint: on the data directory you act as the operator, {who}; to act as someone else use their token (--token), or propose a policy whose [roles] grants {who} one (`custody policy propose DIR`; the owners approve it)"
            ),
            _ => format!(
                "\nhint: roles come from the policy's [roles] (e.g. {} = [\"{who}\"]): propose a policy that grants it (`custody policy propose DIR`); it takes effect when the owners approve",
                permission.roles().first().copied().unwrap_or("admin")
            ),
        };
        let takes = match permission.roles() {
            [] => "that takes the admin role".to_owned(),
            roles => format!(
                "that takes one of the roles {} (or admin)",
                roles.join(", ")
            ),
        };
        Err(AppError::denied(format!(
            "{who} may not {}: {takes}, and {who} holds {}{local}",
            permission.name(),
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            },
        )))
    }
}

/// Why an approval by `actor` would not be theirs alone, if it would not: it counts only
/// from a credential its person controls ([`Authentication::personal`]).
pub(crate) fn not_personal(actor: &Actor) -> Option<String> {
    let who = &actor.principal;
    let how = why_not_personal(actor)?;
    Some(format!(
        "an approval counts only from {who}'s own credential, and {how}\nhint: sign it with your enrolled personal key (`--sign-key KEY`), sign in to the dashboard with your organisation's identity provider, or use a token you made for yourself with a credential of your own"
    ))
}

/// Why `actor`'s credential is not theirs alone (`None`: it is).
pub(crate) fn why_not_personal(actor: &Actor) -> Option<String> {
    let who = &actor.principal;
    let how = match &actor.auth {
        Some(a) if a.personal() => return None,
        Some(Authentication::Token {
            token, created_by, ..
        }) => match created_by {
            Some(by) if by != who => {
                format!("token {token} was created by {by}, who saw its secret")
            }
            _ => format!("token {token} was created with a credential that is not {who}'s own"),
        },
        Some(other) => format!("{} is not a person's credential", other.describe()),
        None => "the request names no credential".to_owned(),
    };
    Some(how)
}

/// Whether `actor` may do what takes one of `roles` in `environment`: a grant of one of them
/// that covers the environment (unscoped, or scoped to it), live at the actor's time, or
/// `admin`. A route's guard only knows a caller holds the role somewhere; this is where a
/// grant scoped to staging stops at production's door.
pub(crate) fn may_act_in(
    policy: &custody_policy::Policy,
    actor: &Actor,
    roles: &[custody_policy::Role],
    environment: &str,
    what: &str,
) -> AppResult<()> {
    use custody_policy::Role;
    let now = actor.now.unix_seconds();
    let who = actor.principal.as_str();
    let holds = |role: Role| policy.holds(who, role, Some(environment), now);
    if holds(Role::Admin) || roles.iter().any(|r| holds(*r)) {
        return Ok(());
    }
    let theirs: Vec<String> = policy
        .grants_of(who, now)
        .map(custody_policy::Grant::key)
        .collect();
    let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    let example = match roles.iter().find(|r| r.scopable()) {
        Some(r) => format!("\"{r}:{environment}\" = [\"{who}\"] for this environment only"),
        None => format!(
            "{} = [\"{who}\"]",
            names.first().copied().unwrap_or("signer")
        ),
    };
    Err(AppError::denied(format!(
        "{who} may not {what} in {environment}: that takes one of the roles {} there (or admin), and {who} holds {}\nhint: roles come from the policy's [roles] ({example}): propose a policy that grants it (`custody policy propose DIR`); it takes effect when the owners approve",
        names.join(", "),
        if theirs.is_empty() {
            "none".to_owned()
        } else {
            theirs.join(", ")
        },
    )))
}

/// What a route lets its caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Ask the deploy gate.
    Verify,
    /// Read history and decisions.
    Read,
    /// Read the access log.
    Audit,
    /// Request a promotion.
    Promote,
    /// Approve or reject a promotion (the gates then check the environment's roles).
    Review,
    /// Report deploys and roll back.
    Deploy,
    /// Apply a policy.
    Policy,
    /// Register artifacts with their provenance.
    Register,
    /// Attach evidence to artifacts.
    Attest,
    /// Record signed releases.
    Release,
    /// Create and revoke one's own API tokens.
    Tokens,
    /// Create and revoke tokens for others (admins only).
    Administer,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 12] = [
        Permission::Verify,
        Permission::Read,
        Permission::Audit,
        Permission::Promote,
        Permission::Review,
        Permission::Deploy,
        Permission::Policy,
        Permission::Register,
        Permission::Attest,
        Permission::Release,
        Permission::Tokens,
        Permission::Administer,
    ];

    /// The roles that hold it (besides `admin`, which holds all).
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Permission::Verify => &["deployer", "auditor", "viewer", "security"],
            Permission::Read => &[
                "auditor", "viewer", "security", "approver", "signer", "deployer",
            ],
            Permission::Audit => &["auditor"],
            Permission::Promote => &["signer", "deployer"],
            Permission::Review => &["approver", "security"],
            Permission::Deploy => &["deployer"],
            Permission::Policy => &["security"],
            Permission::Register => &["builder"],
            Permission::Attest => &["builder", "security"],
            Permission::Release => &["signer"],
            Permission::Tokens => &[
                "builder", "signer", "approver", "security", "deployer", "auditor", "viewer",
            ],
            Permission::Administer => &[],
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Verify => "verify",
            Permission::Read => "read history",
            Permission::Audit => "read the access log",
            Permission::Promote => "request promotions",
            Permission::Review => "review promotions",
            Permission::Deploy => "report deploys and roll back",
            Permission::Policy => "apply policies or rotate and revoke keys",
            Permission::Register => "register artifacts",
            Permission::Attest => "attach evidence",
            Permission::Release => "record releases",
            Permission::Tokens => "manage their own API tokens",
            Permission::Administer => "manage others' API tokens",
        }
    }

    /// Whether holders of `roles` have it. `approver:ENV` counts as `approver`.
    pub fn granted_to(self, roles: &[String]) -> bool {
        roles.iter().any(|r| self.granted_to_role(r))
    }

    /// Whether one role has it.
    pub fn granted_to_role(self, role: &str) -> bool {
        let base = role.split_once(':').map_or(role, |(b, _)| b);
        base == "admin" || self.roles().contains(&base)
    }
}
