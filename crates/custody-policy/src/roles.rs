//! Who holds which role: the closed set of roles custody knows, and the grants a policy's
//! `[roles]` table makes, each perhaps scoped to one environment and ending at a time.
//!
//! ```toml
//! [roles]
//! admin = ["root"]
//! approver = ["alice", "bob"]                       # everywhere, for good
//! "approver:production" = [                         # only in production …
//!     "dave",
//!     { principal = "carol", until = "2027-01-31T00:00:00Z" },   # … until then
//! ]
//! "deployer:staging" = ["argo-staging"]
//! ```
//!
//! A key is a role, or `ROLE:ENV` for a role whose work is done in one environment at a time
//! ([`Role::scopable`]: approver, deployer, security), `ENV` being a declared environment.
//! Any other name or scope is a mistake at its line: `admin:readonly` does not make a
//! read-only admin, it makes a policy that does not compile. A member is a principal, or a
//! table naming one with the time its grant ends (exclusive, RFC 3339 UTC).
//!
//! Invariant: holding a role is a function of the time passed in ([`Policy::holds`]); the
//! policy never reads the clock.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::compile::Errors;
use crate::policy::Policy;

/// A role custody knows. The set is closed: a policy can bind principals to these only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every permission of the service (not an approver or a break-glass role by itself).
    Admin,
    /// Registers artifacts and their provenance; attaches evidence.
    Builder,
    /// Records signed releases and requests promotions.
    Signer,
    /// Reviews promotions (approves or rejects).
    Approver,
    /// Owns the policy; attaches evidence; may review where the policy says.
    Security,
    /// Requests promotions, reports deploys and rolls back.
    Deployer,
    /// Reads history and the access log.
    Auditor,
    /// Reads history and asks the deploy gate.
    Viewer,
}

impl Role {
    /// Every role, in the order people list them.
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Builder,
        Role::Signer,
        Role::Approver,
        Role::Security,
        Role::Deployer,
        Role::Auditor,
        Role::Viewer,
    ];

    /// Its name in `[roles]`, approvals and `break_glass`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Builder => "builder",
            Role::Signer => "signer",
            Role::Approver => "approver",
            Role::Security => "security",
            Role::Deployer => "deployer",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }

    /// Whether a grant of it may be scoped to one environment (`ROLE:ENV`): true for the
    /// roles whose work is done in one environment at a time (reviewing a promotion into
    /// it, deploying to it, breaking glass into it). Administration, building, signing
    /// releases and reading are not per environment, so a scope there would mean nothing.
    pub fn scopable(self) -> bool {
        matches!(self, Role::Approver | Role::Deployer | Role::Security)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A name that is not one of custody's roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; custody's roles are {roles}", roles = role_list())]
pub struct UnknownRole(pub String);

fn role_list() -> String {
    Role::ALL.map(Role::name).join(", ")
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// The names of `roles`, as reasons quote them (`["approver", "security"]`).
pub(crate) fn names(roles: &[Role]) -> Vec<&'static str> {
    roles.iter().map(|r| r.name()).collect()
}

/// One grant of `[roles]`: `principal` holds `role` (in `environment` only, if scoped)
/// until `until` (if it ends). Ordered by principal first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// Who holds it.
    pub principal: String,
    /// The role.
    pub role: Role,
    /// The one environment it holds in (`None`: everywhere, and for actions that are in
    /// no environment).
    pub environment: Option<String>,
    /// When it ends, Unix seconds, exclusive (`None`: it does not).
    pub until: Option<i64>,
}

impl Grant {
    /// Whether it still holds at `now` (Unix seconds).
    pub fn live_at(&self, now: i64) -> bool {
        self.until.is_none_or(|until| now < until)
    }

    /// Whether it covers an action in `environment` (`None`: an action in no environment,
    /// which only an unscoped grant covers).
    pub fn covers(&self, environment: Option<&str>) -> bool {
        match (&self.environment, environment) {
            (None, _) => true,
            (Some(scope), Some(env)) => scope == env,
            (Some(_), None) => false,
        }
    }

    /// Its key as `[roles]` writes it: `approver` or `approver:production`.
    pub fn key(&self) -> String {
        match &self.environment {
            Some(env) => format!("{}:{env}", self.role),
            None => self.role.name().to_owned(),
        }
    }
}

impl Policy {
    /// Whether `principal` holds `role` for an action in `environment` (`None`: an action in
    /// no environment) at `now` (Unix seconds): some grant of that role, unscoped or scoped
    /// to that very environment, that has not ended.
    pub fn holds(&self, principal: &str, role: Role, environment: Option<&str>, now: i64) -> bool {
        self.grants_of(principal, now)
            .any(|g| g.role == role && g.covers(environment))
    }

    /// The grants `principal` holds at `now` (Unix seconds), in any environment.
    pub fn grants_of(&self, principal: &str, now: i64) -> impl Iterator<Item = &Grant> {
        self.all_grants_of(principal)
            .iter()
            .filter(move |g| g.live_at(now))
    }

    /// Every grant to `principal`, ended or not.
    pub(crate) fn all_grants_of(&self, principal: &str) -> &[Grant] {
        // Sorted by principal at compile time: two binary searches find them.
        let start = self
            .grants
            .partition_point(|g| g.principal.as_str() < principal);
        let end = self
            .grants
            .partition_point(|g| g.principal.as_str() <= principal);
        &self.grants[start..end]
    }

    /// Every grant of `[roles]`, ended or not, by principal, then role and scope.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Whether `principal` holds one of the legacy roles `names` (a recorded policy's
    /// names that are not custody's roles; see `compile_recorded`). Legacy grants do not
    /// end and are not scoped, as none were then.
    pub fn holds_legacy(&self, principal: &str, names: &[String]) -> bool {
        !names.is_empty()
            && self
                .legacy_grants
                .iter()
                .any(|(p, n)| p == principal && names.contains(n))
    }

    /// Every legacy grant `(principal, name)` of a recorded policy.
    pub fn legacy_grants(&self) -> &[(String, String)] {
        &self.legacy_grants
    }
}

/// `[roles]`: key → members, with their places in the file.
pub(crate) type RolesDoc =
    std::collections::BTreeMap<Spanned<String>, Spanned<Vec<Spanned<toml::Value>>>>;

/// Compiles `[roles]` into grants sorted by principal, reporting every mistake at its line;
/// and, reading a recorded policy, the legacy grants `(principal, name)` of names that are
/// not custody's roles (see `compile_recorded`).
pub(crate) fn compile_roles(
    doc: &RolesDoc,
    environments: &[&str],
    errors: &mut Errors<'_>,
) -> (Vec<Grant>, Vec<(String, String)>) {
    let mut grants = Vec::new();
    let mut legacy = Vec::new();
    // Every name granted anything so far, with its folded form, to refuse look-alikes
    // across roles.
    let mut names: Vec<(String, String)> = Vec::new();
    for (key, members) in doc {
        let (role, environment) = match role_key(key.get_ref(), environments) {
            Ok(parsed) => parsed,
            Err(_) if errors.recorded => {
                for member in members.get_ref() {
                    if let Some((principal, _)) = member_of(member, errors) {
                        legacy.push((principal, key.get_ref().clone()));
                    }
                }
                continue;
            }
            Err(why) => {
                errors.at(key.span(), why);
                continue;
            }
        };
        if members.get_ref().is_empty() {
            errors.at(
                members.span(),
                format!("role {:?} has no members", key.get_ref()),
            );
        }
        let mut seen = Vec::new();
        for member in members.get_ref() {
            let Some((principal, until)) = member_of(member, errors) else {
                continue;
            };
            if seen.contains(&principal) {
                errors.at(
                    member.span(),
                    format!("{principal:?} is listed twice under {:?}", key.get_ref()),
                );
                continue;
            }
            seen.push(principal.clone());
            if !errors.recorded {
                if let Some(why) = look_alike(&principal, &names) {
                    errors.at(member.span(), why);
                    continue;
                }
            }
            if !names.iter().any(|(n, _)| *n == principal) {
                names.push((principal.clone(), fold(&principal)));
            }
            grants.push(Grant {
                principal,
                role,
                environment: environment.clone(),
                until,
            });
        }
    }
    grants.sort();
    legacy.sort();
    (grants, legacy)
}

/// Why `name` could pass for another person's name among `names`, if it could: it holds
/// an invisible character (a control, format, filler or blank character, a variation
/// selector or tag), or reads the same as one of them once both are put in the form
/// people compare (NFKC, lowercase: `Sam`, `ſam` and `sam`; a precomposed `é` and `e` with
/// an accent). Two such names would count as two people (two owners towards a quorum,
/// say) while people read them as one.
fn look_alike(name: &str, names: &[(String, String)]) -> Option<String> {
    if let Some(c) = name.chars().find(|c| invisible(*c)) {
        return Some(format!(
            "{name:?} holds the invisible character U+{:04X}: it could pass for another name",
            u32::from(c)
        ));
    }
    let folded = fold(name);
    names
        .iter()
        .find(|(other, theirs)| other != name && *theirs == folded)
        .map(|(other, _)| {
            format!(
                "{name:?} reads the same as {other:?}, also named in [roles] (they differ only by case or by how their letters are encoded): people would read one person, custody would count two\nhint: use one spelling for one person"
            )
        })
}

/// A name as people compare names: compatibility-normalised (NFKC) and lowercased.
fn fold(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    name.nfkc().collect::<String>().to_lowercase()
}

/// Characters that show nothing, or nothing a reader tells apart from a space.
fn invisible(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// `ROLE` or `ROLE:ENV`; `Err` says what is wrong with it.
fn role_key(key: &str, environments: &[&str]) -> Result<(Role, Option<String>), String> {
    let (name, scope) = match key.split_once(':') {
        Some((name, scope)) => (name, Some(scope)),
        None => (key, None),
    };
    let role = name.parse::<Role>().map_err(|e| e.to_string())?;
    let Some(scope) = scope else {
        return Ok((role, None));
    };
    if !role.scopable() {
        return Err(format!(
            "{key:?}: role {role} cannot be scoped to an environment (only approver, deployer and security can); grant {role} unscoped, or not at all"
        ));
    }
    if !environments.contains(&scope) {
        return Err(format!(
            "{key:?} scopes {role} to {scope:?}, which is not a declared environment (the pipeline is {})",
            environments.join(" → ")
        ));
    }
    Ok((role, Some(scope.to_owned())))
}

/// A member: `"name"` or `{ principal = "name", until = "RFC 3339 time" }`.
fn member_of(
    member: &Spanned<toml::Value>,
    errors: &mut Errors<'_>,
) -> Option<(String, Option<i64>)> {
    const FORM: &str = "a member of a role is a principal's name, or { principal = \"name\", until = \"2027-01-31T00:00:00Z\" }";
    let name = |v: &toml::Value, errors: &mut Errors<'_>| match v.as_str() {
        Some(n) if !n.is_empty() && n.trim() == n => Some(n.to_owned()),
        _ => {
            errors.at(
                member.span(),
                format!(
                    "{FORM}; a principal's name is a non-empty string without surrounding spaces"
                ),
            );
            None
        }
    };
    match member.get_ref() {
        v @ toml::Value::String(_) => Some((name(v, errors)?, None)),
        toml::Value::Table(table) => {
            if let Some(other) = table
                .keys()
                .find(|k| !matches!(k.as_str(), "principal" | "until"))
            {
                errors.at(
                    member.span(),
                    format!("unknown key {other:?} in a grant; {FORM}"),
                );
                return None;
            }
            let principal = match table.get("principal") {
                Some(v) => name(v, errors)?,
                None => {
                    errors.at(member.span(), format!("a grant names no principal; {FORM}"));
                    return None;
                }
            };
            let until = match table.get("until") {
                None => None,
                Some(v) => {
                    // A quoted string or a TOML date-time; either must be RFC 3339 UTC.
                    let text = match v {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Datetime(d) => d.to_string(),
                        _ => String::new(),
                    };
                    match text.parse::<custody_model::Timestamp>() {
                        Ok(t) => Some(t.unix_seconds()),
                        Err(e) => {
                            errors.at(member.span(), format!("`until` of {principal:?}: {e}"));
                            return None;
                        }
                    }
                }
            };
            Some((principal, until))
        }
        _ => {
            errors.at(member.span(), FORM);
            None
        }
    }
}

/// The roles an environment's `approvals` or `break_glass` names: each one of custody's,
/// unscoped (scoping is the grants' business), and held here by someone.
pub(crate) fn roles_here(
    list: &Spanned<Vec<Spanned<String>>>,
    environment: &str,
    grants: &[Grant],
    legacy_grants: &[(String, String)],
    errors: &mut Errors<'_>,
) -> (Vec<Role>, Vec<String>) {
    let mut roles = Vec::new();
    let mut legacy = Vec::new();
    for name in list.get_ref() {
        // A recorded policy's name that [roles] granted as a legacy role stays one.
        if errors.recorded && legacy_grants.iter().any(|(_, n)| n == name.get_ref()) {
            if !legacy.contains(name.get_ref()) {
                legacy.push(name.get_ref().clone());
            }
            continue;
        }
        if let Some((role, _)) = name.get_ref().split_once(':') {
            errors.at(
                name.span(),
                format!(
                    "{:?}: name the role here ({role:?}) and scope its grants in [roles] (\"{role}:{environment}\" = [...])",
                    name.get_ref()
                ),
            );
            continue;
        }
        let role = match name.get_ref().parse::<Role>() {
            Ok(role) => role,
            Err(e) => {
                errors.at(name.span(), e.to_string());
                continue;
            }
        };
        if !errors.recorded
            && !grants
                .iter()
                .any(|g| g.role == role && g.covers(Some(environment)))
        {
            errors.at(
                name.span(),
                format!(
                    "role {:?} is not granted to anyone in {environment} by [roles]",
                    role.name()
                ),
            );
        }
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    (roles, legacy)
}
