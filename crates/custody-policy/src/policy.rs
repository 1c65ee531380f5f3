//! A compiled policy: what every gate checks, by environment, and the questions the
//! application asks of it (keys, builders, names, roles).

use std::collections::BTreeMap;

use custody_crypto::PublicKey;
use regex::Regex;

use crate::duration::Span;
use crate::governance::{Governance, PersonKey};
use crate::keys::NamedKey;
use crate::repo::{RepoPattern, RepoUrl};
use crate::roles::{Grant, Role};

/// A compiled policy: what every gate checks, by environment.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) digest: String,
    pub(crate) artifact_name: Regex,
    pub(crate) release_name: Regex,
    pub(crate) semver: bool,
    /// Sorted by principal (see [`Policy::grants_of`]).
    pub(crate) grants: Vec<Grant>,
    /// (principal, legacy role name): only in a recorded policy (see `compile_recorded`).
    pub(crate) legacy_grants: Vec<(String, String)>,
    pub(crate) release_keys: BTreeMap<String, PublicKey>,
    pub(crate) builders: Vec<Builder>,
    pub(crate) environments: Vec<Environment>,
    /// Who approves a change of this policy.
    pub(crate) governance: Governance,
    /// Keys people enrolled to sign their approvals with.
    pub(crate) person_keys: Vec<PersonKey>,
    /// Every trusted key by name: release keys, builders, personal keys, as declared.
    pub(crate) named_keys: Vec<NamedKey>,
}

/// A trusted builder.
#[derive(Debug, Clone)]
pub struct Builder {
    /// Its SLSA builder id.
    pub id: String,
    /// Its signing key.
    pub key: PublicKey,
    /// Key id of `key`.
    pub key_id: String,
    /// Source repositories it may build, as written: patterns of normalised URLs where `*`
    /// is one path segment and a trailing `**` any depth (see [`RepoPattern`]).
    pub source_repos: Vec<String>,
    /// `source_repos`, parsed.
    pub(crate) patterns: Vec<RepoPattern>,
}

/// One environment and its gates.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Its name.
    pub name: String,
    /// The environment a release must be certified in first.
    pub after: Option<String>,
    /// Whether a successful deploy report in `after` is required.
    pub verified: bool,
    /// How long after certification in `after` before promotion here.
    pub soak: Option<Span>,
    /// The approvals required.
    pub approvals: Option<Approvals>,
    /// Evidence types every artifact needs.
    pub evidence: Vec<String>,
    /// How old evidence may be.
    pub evidence_max_age: Option<Span>,
    /// Key ids of the release keys that may sign releases promoted here (`None`: any
    /// trusted release key).
    pub release_keys: Option<Vec<String>>,
    /// Ids of the builders whose provenance counts here (`None`: any trusted builder).
    pub builders: Option<Vec<String>>,
    /// Roles whose holders (here) may break glass into this environment (empty: nobody
    /// may).
    pub break_glass: Vec<Role>,
    /// Legacy role names `break_glass` also names (a recorded policy only; see
    /// `compile_recorded`).
    pub legacy_break_glass: Vec<String>,
    /// Windows when promotions here need break-glass.
    pub freezes: Vec<Freeze>,
    /// What the evidence must say here, how many builders must agree, and what the deploy
    /// gate does when a rule fails after certification.
    pub rules: crate::rules::EvidenceRules,
}

/// A freeze window: `[from, until)`, Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    /// It starts.
    pub from: i64,
    /// It ends (exclusive).
    pub until: i64,
    /// Why (shown to whoever is refused).
    pub reason: String,
}

/// An approval requirement.
#[derive(Debug, Clone)]
pub struct Approvals {
    /// Distinct approvers needed.
    pub quorum: u32,
    /// Roles whose holders (here) may approve, reject and review after the fact.
    pub roles: Vec<Role>,
    /// Legacy role names the rule also names (a recorded policy only; see
    /// `compile_recorded`).
    pub legacy_roles: Vec<String>,
    /// How long an approval counts (default 24h).
    pub expires: Span,
    /// Only approvals signed with an enrolled personal key count (`signed = true`): a
    /// signature the approver alone can make and anyone can check offline, where a token or
    /// a sign-in is vouched for by the server's configuration, which its operator controls.
    pub signed: bool,
}

impl Environment {
    /// Whether only approvals signed with an enrolled personal key count here (its approvals
    /// rule says `signed = true`); so must breaking glass into it and approving a waiver
    /// that holds in it be signed.
    pub fn counts_only_signed_approvals(&self) -> bool {
        self.approvals.as_ref().is_some_and(|a| a.signed)
    }
}

impl Policy {
    /// The bundle's digest: the policy version decisions and approvals are bound to.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The environments in pipeline order.
    pub fn environments(&self) -> &[Environment] {
        &self.environments
    }

    /// The pipeline as people read it: `build → test → production`.
    pub fn pipeline(&self) -> String {
        self.environments
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// An environment by name.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// A trusted release key by key id.
    pub fn release_key(&self, key_id: &str) -> Option<&PublicKey> {
        self.release_keys.get(key_id)
    }

    /// Every trusted release key.
    pub fn release_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.release_keys.values()
    }

    /// Every key the policy trusts, by name (what it is for, what the policy calls it, who
    /// holds it, its file): release keys, builders, then personal keys, as declared.
    pub fn named_keys(&self) -> &[NamedKey] {
        &self.named_keys
    }

    /// A trusted key by key id, by name.
    pub fn named_key(&self, key_id: &str) -> Option<&NamedKey> {
        self.named_keys.iter().find(|k| k.key_id == key_id)
    }

    /// The trusted builders.
    pub fn builders(&self) -> &[Builder] {
        &self.builders
    }

    /// Who approves a change of this policy, and how many.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// The keys people enrolled to sign their approvals with.
    pub fn person_keys(&self) -> &[PersonKey] {
        &self.person_keys
    }

    /// The enrolled personal key with this key id.
    pub fn person_key(&self, key_id: &str) -> Option<&PersonKey> {
        self.person_keys.iter().find(|k| k.key_id == key_id)
    }

    /// Whether `principal` may approve or reject a change of this policy at `now`: they
    /// hold one of the owner roles, unscoped.
    pub fn owns(&self, principal: &str, now: i64) -> bool {
        self.governance
            .owners
            .iter()
            .any(|role| self.holds(principal, *role, None, now))
    }

    /// Whether it names more owners than its quorum, counting grants that have ended too:
    /// a policy that was governed never becomes the operator's to replace alone because a
    /// date passed.
    pub fn names_a_quorum(&self) -> bool {
        self.more_owners_than_quorum(|_| true)
    }

    /// Whether a change of this policy can be approved at all at `now`: more people own it
    /// than its quorum (the proposer never counts). A fresh instance's starter policy names
    /// no owners; until a governed policy is in force, only the operator on the data
    /// directory may replace it (a bootstrap, recorded as such).
    pub fn governed(&self, now: i64) -> bool {
        self.more_owners_than_quorum(|g| g.live_at(now))
    }

    /// Whether more distinct people hold an owner role (unscoped, by a grant `counts`)
    /// than the quorum.
    fn more_owners_than_quorum(&self, counts: impl Fn(&Grant) -> bool) -> bool {
        let owners: std::collections::BTreeSet<&str> = self
            .grants
            .iter()
            .filter(|g| g.environment.is_none() && self.governance.owners.contains(&g.role))
            .filter(|g| counts(g))
            .map(|g| g.principal.as_str())
            .collect();
        owners.len() > usize::try_from(self.governance.quorum).unwrap_or(usize::MAX)
    }

    /// Why an artifact name breaks the naming rule, if it does.
    pub fn check_artifact_name(&self, name: &str) -> Result<(), String> {
        if self.artifact_name.is_match(name) {
            Ok(())
        } else {
            Err(format!(
                "artifact name {name:?} does not match the naming rule {}",
                self.artifact_name.as_str()
            ))
        }
    }

    /// Why a release name or version breaks the naming rules, if it does.
    pub fn check_release(&self, name: &str, version: &str) -> Result<(), String> {
        if !self.release_name.is_match(name) {
            return Err(format!(
                "release name {name:?} does not match the naming rule {}",
                self.release_name.as_str()
            ));
        }
        if self.semver {
            semver::Version::parse(version).map_err(|e| {
                format!("release version {version:?} is not SemVer (e.g. 1.4.2): {e}")
            })?;
        }
        Ok(())
    }
}

impl Builder {
    /// Whether this builder may build `repo`: a URL in normal form (anything ambiguous,
    /// like a `..` segment or an encoded dot, is refused) that one of its patterns names.
    pub fn may_build(&self, repo: &str) -> bool {
        self.may_build_url(RepoUrl::parse(repo).ok().as_ref())
    }

    /// Whether this builder may build the repository at `url` (`None`: not a clean URL).
    pub(crate) fn may_build_url(&self, url: Option<&RepoUrl>) -> bool {
        url.is_some_and(|url| self.patterns.iter().any(|p| p.matches(url)))
    }
}
