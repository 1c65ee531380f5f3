//! Who governs the policy itself, and the keys people approve with.
//!
//! ```toml
//! [governance]
//! owners = ["security"]   # roles whose holders approve a change of this policy
//! quorum = 2              # distinct owners, never counting the one who proposed it
//!
//! [[person_key]]          # a key its person alone holds: their approvals count
//! principal = "alice"
//! path = "keys/alice.pub"
//! ```
//!
//! A change of the policy (its rules, who holds which role, which keys it trusts) takes
//! effect only once `quorum` owners other than its proposer approved it, under the
//! governance of the policy in force *before* the change: a proposal cannot lower its own
//! bar. Without `[governance]`, the owners are the security role and one approval is enough.
//! A person key serves one purpose, that person's approvals: it may not also be a release or
//! builder key.

use std::collections::BTreeSet;

use custody_crypto::PublicKey;
use serde::Deserialize;
use toml::Spanned;

use crate::compile::Errors;
use crate::roles::{Grant, Role};

/// How the policy may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governance {
    /// Roles whose holders approve changes.
    pub owners: Vec<Role>,
    /// Distinct owners needed, never counting the proposer.
    pub quorum: u32,
    /// Only reviews signed with an enrolled personal key count (`signed = true`).
    pub signed: bool,
}

impl Default for Governance {
    fn default() -> Self {
        Governance {
            owners: vec![Role::Security],
            quorum: 1,
            signed: false,
        }
    }
}

/// A key a person enrolled to sign their approvals with.
#[derive(Debug, Clone)]
pub struct PersonKey {
    /// Whose.
    pub principal: String,
    /// The key.
    pub key: PublicKey,
    /// Its key id.
    pub key_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GovernanceDoc {
    owners: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "one")]
    quorum: Spanned<u32>,
    #[serde(default)]
    signed: bool,
}

fn one() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonKeyDoc {
    principal: Spanned<String>,
    pub(crate) path: Spanned<String>,
}

/// `[governance]` compiled: the owner roles must be custody's, held by enough people to
/// reach the quorum without the proposer, and enough of them for good (see
/// [`check_owners`]).
pub(crate) fn compile_governance(
    doc: Option<&Spanned<GovernanceDoc>>,
    grants: &[Grant],
    person_keys: &[PersonKey],
    errors: &mut Errors<'_>,
) -> Governance {
    let Some(doc) = doc else {
        let governance = Governance::default();
        check_owners(&governance, None, grants, errors);
        return governance;
    };
    let doc = doc.get_ref();
    let mut owners = Vec::new();
    for name in doc.owners.get_ref() {
        match name.get_ref().parse::<Role>() {
            Ok(role) if !owners.contains(&role) => owners.push(role),
            Ok(_) => {}
            Err(e) => errors.at(name.span(), e.to_string()),
        }
    }
    if owners.is_empty() && !errors.recorded {
        errors.at(
            doc.owners.span(),
            "[governance] names no owner roles, so nobody could approve a change",
        );
    }
    let quorum = *doc.quorum.get_ref();
    let governance = Governance {
        owners,
        quorum,
        signed: doc.signed,
    };
    if quorum == 0 {
        errors.at(
            doc.quorum.span(),
            "a quorum of 0 would let a change approve itself; it must be at least 1",
        );
    } else if !governance.owners.is_empty() {
        check_owners(&governance, Some(doc.quorum.span()), grants, errors);
        if governance.signed && !errors.recorded {
            // Signed approvals only: enough owners other than the proposer must have
            // enrolled a key, or no change could ever be approved again.
            let enrolled: BTreeSet<&str> = grants
                .iter()
                .filter(|g| governance.owners.contains(&g.role) && g.environment.is_none())
                .map(|g| g.principal.as_str())
                .filter(|p| person_keys.iter().any(|k| k.principal == *p))
                .collect();
            if usize::try_from(quorum).is_ok_and(|q| enrolled.len() <= q) {
                errors.at(
                    doc.quorum.span(),
                    format!(
                        "signed approvals of changes: a quorum of {quorum} other than the proposer needs {} owners with an enrolled personal key ([[person_key]]), and {} have one: no change could ever be approved\nhint: enrol more owners' keys ([[person_key]] with principal and path = \"keys/NAME.pub\"), or drop `signed = true` from [governance]",
                        quorum + 1,
                        enrolled.len()
                    ),
                );
            }
        }
    }
    governance
}

/// Whether the owners' holders can reach the quorum without the proposer, now and once
/// every grant with an `until` has ended. `declared` is the span of `[governance]`'s
/// quorum; `None` for the defaults (the security role, a quorum of 1).
///
/// Declared governance needs enough holders now. The defaults do not: a fresh instance's
/// first policy may name a single security holder (`policy check` warns that nobody
/// could then approve a change). Both need enough holders for good whenever they have
/// enough now: owners whose grants end may only come on top of enough that do not, or the
/// passing of a date would leave the policy ungoverned, and open it to its operator.
fn check_owners(
    governance: &Governance,
    declared: Option<std::ops::Range<usize>>,
    grants: &[Grant],
    errors: &mut Errors<'_>,
) {
    if errors.recorded {
        // A recorded policy is read as it was recorded, before owners were counted.
        return;
    }
    let Governance { owners, quorum, .. } = governance;
    let needed = usize::try_from(*quorum).unwrap_or(usize::MAX);
    let holders = |lasting_only: bool| -> BTreeSet<&str> {
        grants
            .iter()
            .filter(|g| owners.contains(&g.role) && g.environment.is_none())
            .filter(|g| !lasting_only || g.until.is_none())
            .map(|g| g.principal.as_str())
            .collect()
    };
    let (people, lasting) = (holders(false), holders(true));
    let roles = owners
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(" or ");
    let owners_are = match declared {
        Some(_) if *quorum == 1 => "a quorum of 1 owner".to_owned(),
        Some(_) => format!("a quorum of {quorum} owners"),
        None => format!(
            "without [governance], a change is approved by {quorum} {roles} holder other than its proposer, which"
        ),
    };
    let span = declared.clone().unwrap_or(0..0);
    if people.len() <= needed {
        if declared.is_some() {
            errors.at(
                span,
                format!(
                    "{owners_are} other than the proposer needs at least {} people holding {roles} (unscoped); [roles] gives {}",
                    quorum + 1,
                    people.len()
                ),
            );
        }
    } else if lasting.len() <= needed {
        let ending: Vec<&str> = people.difference(&lasting).copied().collect();
        errors.at(
            span,
            format!(
                "{owners_are} needs at least {} owners whose grants do not end (no `until`); [roles] gives {}: when the grants of {} end, nobody could approve a change",
                quorum + 1,
                lasting.len(),
                ending.join(", ")
            ),
        );
    }
}

/// `[[person_key]]`s: each file in the bundle, each key one person's and no other purpose's.
pub(crate) fn compile_person_keys(
    docs: &[PersonKeyDoc],
    load: &mut dyn FnMut(&Spanned<String>, &mut Errors<'_>) -> Option<PublicKey>,
    other_keys: &BTreeSet<String>,
    errors: &mut Errors<'_>,
) -> Vec<PersonKey> {
    let mut out: Vec<PersonKey> = Vec::new();
    for doc in docs {
        let Some(key) = load(&doc.path, errors) else {
            continue;
        };
        let key_id = key.key_id().to_string();
        if other_keys.contains(&key_id) {
            errors.at(
                doc.path.span(),
                format!("key {key_id} is already a release or builder key; a person's approval key must serve that purpose alone"),
            );
            continue;
        }
        if let Some(other) = out.iter().find(|k| k.key_id == key_id) {
            errors.at(
                doc.path.span(),
                format!(
                    "key {key_id} is already {}'s; one key, one person",
                    other.principal
                ),
            );
            continue;
        }
        out.push(PersonKey {
            principal: doc.principal.get_ref().clone(),
            key,
            key_id,
        });
    }
    out
}
