//! `custody.toml` (and the key files it names) compiled into a [`Policy`].
//!
//! Compilation reports every mistake it finds, each with the file, line and column, and
//! refuses contradictions a reviewer would miss: an environment `after` one that does not
//! exist or comes later, an empty quorum, a quorum more people than could ever approve, a
//! role nobody holds there, a builder with no source repositories. It also refuses what
//! would quietly mean something else: a role custody does not know or a meaningless scope
//! (`admin:readonly`), a duration over ten years, a naming rule that is not a regular
//! expression on its own, a repository pattern that is not a clean URL.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use custody_crypto::PublicKey;
use regex::Regex;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use toml::Spanned;

use crate::compile_env::{
    self, FindingsDoc, FreezeDoc, LicencesDoc, RulesDoc, TestsDoc, VulnerabilitiesDoc,
};
use crate::duration::Span;
use crate::governance::{GovernanceDoc, PersonKeyDoc, compile_governance, compile_person_keys};
use crate::keys::{BuilderDoc, KeyDoc, compile_signing_keys, name_person_keys};
use crate::policy::{Approvals, Environment, Policy};
use crate::roles::{Role, RolesDoc, compile_roles, names, roles_here};

/// The file that declares the pipeline.
pub const POLICY_FILE: &str = "custody.toml";
/// Largest policy bundle file read.
pub const MAX_POLICY_FILE: usize = 1 << 20;

/// A policy bundle as files: path (relative to the bundle) → text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bundle {
    /// The files, by relative path.
    pub files: BTreeMap<String, String>,
}

impl Bundle {
    /// The bundle's digest: SHA-256 over each path and text, length-prefixed, in path order.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (path, text) in &self.files {
            h.update((path.len() as u64).to_be_bytes());
            h.update(path.as_bytes());
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// One mistake in a policy bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file.
    pub file: String,
    /// 1-based line, 0 when not known.
    pub line: usize,
    /// 1-based column, 0 when not known.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every mistake found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: Spanned<u32>,
    #[serde(default)]
    naming: Option<NamingDoc>,
    #[serde(default)]
    roles: RolesDoc,
    #[serde(default, rename = "release_key")]
    release_keys: Vec<KeyDoc>,
    #[serde(default, rename = "builder")]
    builders: Vec<BuilderDoc>,
    #[serde(rename = "environment")]
    environments: Vec<EnvDoc>,
    #[serde(default)]
    governance: Option<Spanned<GovernanceDoc>>,
    #[serde(default, rename = "person_key")]
    person_keys: Vec<PersonKeyDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamingDoc {
    artifact: Option<Spanned<String>>,
    release: Option<Spanned<String>>,
    #[serde(default)]
    semver: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvDoc {
    name: Spanned<String>,
    after: Option<Spanned<String>>,
    #[serde(default)]
    verified: bool,
    soak: Option<Spanned<String>>,
    approvals: Option<Spanned<ApprovalsDoc>>,
    #[serde(default)]
    evidence: Vec<Spanned<String>>,
    evidence_max_age: Option<Spanned<String>>,
    /// Only these release keys (paths of declared [[release_key]]s) may sign here.
    release_keys: Option<Spanned<Vec<String>>>,
    /// Only these builders (ids of declared [[builder]]s) may build for here.
    builders: Option<Spanned<Vec<String>>>,
    /// Roles whose holders may break glass into this environment.
    break_glass: Option<Spanned<Vec<Spanned<String>>>>,
    /// Windows when promotions here need break-glass.
    #[serde(default)]
    freeze: Vec<Spanned<FreezeDoc>>,
    /// What the evidence must say, and what the deploy gate does when it stops saying so
    /// (see rules.rs).
    tests: Option<Spanned<TestsDoc>>,
    static_analysis: Option<Spanned<FindingsDoc>>,
    vulnerabilities: Option<Spanned<VulnerabilitiesDoc>>,
    licences: Option<Spanned<LicencesDoc>>,
    reproducible: Option<Spanned<u32>>,
    standing: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsDoc {
    quorum: Spanned<u32>,
    roles: Spanned<Vec<Spanned<String>>>,
    expires: Option<Spanned<String>>,
    #[serde(default)]
    signed: bool,
}

const DEFAULT_NAME_RULE: &str = "^[a-z0-9][a-z0-9._-]*$";

/// Names of environments and evidence types, and artifact and release names by default.
static NAME_RULE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(
        clippy::expect_used,
        reason = "a constant pattern; the tests compile it"
    )]
    Regex::new(DEFAULT_NAME_RULE).expect("the default naming rule compiles")
});

/// A naming rule compiled to match whole names: `^(?:RULE)$`.
///
/// Invariant: RULE must be a regular expression on its own, so its groups are balanced and
/// it cannot close the wrapping group (`a)|(b` would otherwise make `^(?:a)|(b)$`, which
/// admits any name starting with `a` or ending with `b`). The rule's own leading `^` and
/// trailing unescaped `$` are dropped first, as they always were: recorded decisions quote
/// the anchored form in their reasons.
fn naming_rule(rule: &str) -> Result<Regex, String> {
    let invalid =
        |e: regex::Error| format!("naming rule {rule:?} is not a valid regular expression: {e}");
    let mut body = rule.trim_start_matches('^');
    while let Some(rest) = body.strip_suffix('$') {
        let escapes = rest.bytes().rev().take_while(|&b| b == b'\\').count();
        if escapes % 2 == 1 {
            break;
        }
        body = rest;
    }
    Regex::new(body).map_err(invalid)?;
    // Still checked: a rule ending in an `(?x)` comment swallows the closing `)$`.
    Regex::new(&format!("^(?:{body})$")).map_err(|e| {
        format!("naming rule {rule:?} does not hold as a whole-name rule ^(?:RULE)$: {e}")
    })
}

/// Line and column (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

pub(crate) struct Errors<'a> {
    text: &'a str,
    found: Vec<PolicyError>,
    /// Reading a policy recorded before roles were a closed set (see [`compile_recorded`]).
    pub(crate) recorded: bool,
}

impl Errors<'_> {
    pub(crate) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = position(self.text, span.start);
        self.found.push(PolicyError {
            file: POLICY_FILE.into(),
            line,
            column,
            message: message.into(),
        });
    }
}

/// Compiles a policy bundle, reporting every mistake with its line. This is the compiler
/// for a policy about to be put in force.
pub fn compile(bundle: &Bundle) -> Result<Policy, PolicyErrors> {
    // A new policy's files are bounded however they arrive (a recorded one is compiled as
    // it was recorded, by [`compile_recorded`]).
    let over: Vec<PolicyError> = bundle
        .files
        .iter()
        .filter_map(|(file, text)| {
            let message = if let Some(why) = unsafe_file_name(file) {
                format!("{why}: a policy file is named by a relative path of plain names (letters, digits, '.', '_', '-'), like keys/release.pub")
            } else if text.len() > MAX_POLICY_FILE {
                format!(
                    "the file is {} bytes; a policy file holds at most {MAX_POLICY_FILE}",
                    text.len()
                )
            } else {
                return None;
            };
            Some(PolicyError {
                file: file.clone(),
                line: 0,
                column: 0,
                message,
            })
        })
        .collect();
    if !over.is_empty() {
        return Err(PolicyErrors(over));
    }
    compile_as(bundle, false)
}

/// Why a bundle's file name is not one a policy directory could hold, if it is not: each
/// `/`-separated part a plain name, never `.` or `..` (a name that climbs out of the
/// directory, or hides in it, would mislead whoever writes the bundle out or reads its
/// diff).
fn unsafe_file_name(name: &str) -> Option<&'static str> {
    let plain = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if name.len() > 255 {
        Some("the name is longer than 255 bytes")
    } else if name.split('/').any(|part| part == "..") {
        Some("the name climbs out of the policy directory ('..')")
    } else if !name.split('/').all(plain) {
        Some("the name is not a relative path of plain names")
    } else {
        None
    }
}

/// Compiles a policy version the ledger already records, as it was read when it was put
/// in force: the one in force now, and older ones decisions are replayed under.
///
/// The only difference from [`compile`]: a role name that is not one of custody's (written
/// before roles were a closed set, like the demo's `sre = ["olga"]` with
/// `break_glass = ["sre"]`) is kept as a *legacy role* instead of refused. A legacy role
/// grants no permission of the service; it is held exactly by the principals `[roles]`
/// lists under that name, and counts only where an approval rule or `break_glass` names it,
/// as it did then. So a recorded decision replays to its recorded outcome, and the policy
/// in force keeps working after an upgrade until a corrected one is applied (which
/// [`compile`] then holds to the closed set).
pub fn compile_recorded(bundle: &Bundle) -> Result<Policy, PolicyErrors> {
    compile_as(bundle, true)
}

fn compile_as(bundle: &Bundle, recorded: bool) -> Result<Policy, PolicyErrors> {
    let Some(text) = bundle.files.get(POLICY_FILE) else {
        return Err(PolicyErrors(vec![PolicyError {
            file: POLICY_FILE.into(),
            line: 0,
            column: 0,
            message: "the policy bundle has no custody.toml".into(),
        }]));
    };
    let doc: Doc = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| position(text, s.start));
        PolicyErrors(vec![PolicyError {
            file: POLICY_FILE.into(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }])
    })?;
    let mut errors = Errors {
        text,
        found: Vec::new(),
        recorded,
    };

    if *doc.version.get_ref() != 1 {
        errors.at(
            doc.version.span(),
            format!(
                "policy version {} is not supported (this custody reads version 1)",
                doc.version.get_ref()
            ),
        );
    }

    let rule = |value: Option<&Spanned<String>>, errors: &mut Errors<'_>| -> Regex {
        let (pattern, span) = match value {
            Some(v) => (v.get_ref().as_str(), v.span()),
            None => (DEFAULT_NAME_RULE, 0..0),
        };
        naming_rule(pattern).unwrap_or_else(|e| {
            errors.at(span, e);
            NAME_RULE.clone()
        })
    };
    let artifact_name = rule(
        doc.naming.as_ref().and_then(|n| n.artifact.as_ref()),
        &mut errors,
    );
    let release_name = rule(
        doc.naming.as_ref().and_then(|n| n.release.as_ref()),
        &mut errors,
    );
    let semver = doc.naming.as_ref().and_then(|n| n.semver).unwrap_or(true);

    let declared: Vec<&str> = doc
        .environments
        .iter()
        .map(|e| e.name.get_ref().as_str())
        .collect();
    let (grants, legacy_grants) = compile_roles(&doc.roles, &declared, &mut errors);

    let load_key = |path: &Spanned<String>, errors: &mut Errors<'_>| -> Option<PublicKey> {
        let Some(pem) = bundle.files.get(path.get_ref()) else {
            errors.at(
                path.span(),
                format!("key file {:?} is not in the policy bundle", path.get_ref()),
            );
            return None;
        };
        PublicKey::from_pem(pem)
            .map_err(|e| errors.at(path.span(), format!("key file {:?}: {e}", path.get_ref())))
            .ok()
    };

    let signing = compile_signing_keys(&doc.release_keys, &doc.builders, &load_key, &mut errors);
    // Each personal key's file, for its name.
    let mut person_files = BTreeMap::new();
    let person_keys = compile_person_keys(
        &doc.person_keys,
        &mut |path, errors| {
            let key = load_key(path, errors)?;
            person_files.insert(key.key_id().to_string(), path.get_ref().clone());
            Some(key)
        },
        &signing.ids(),
        &mut errors,
    );
    let governance =
        compile_governance(doc.governance.as_ref(), &grants, &person_keys, &mut errors);

    let mut environments: Vec<Environment> = Vec::new();
    if doc.environments.is_empty() {
        errors.at(0..0, "the policy declares no [[environment]]");
    }
    for e in &doc.environments {
        let name = e.name.get_ref();
        if !NAME_RULE.is_match(name) {
            errors.at(
                e.name.span(),
                format!(
                    "environment name {name:?} must be lowercase letters, digits, '.', '_' or '-'"
                ),
            );
        }
        if environments.iter().any(|x| &x.name == name) {
            errors.at(
                e.name.span(),
                format!("environment {name:?} is declared twice"),
            );
        }
        if let Some(after) = &e.after {
            if !environments.iter().any(|x| &x.name == after.get_ref()) {
                let later = doc
                    .environments
                    .iter()
                    .any(|x| x.name.get_ref() == after.get_ref());
                errors.at(
                    after.span(),
                    if later {
                        format!("environment {name:?} comes after {:?}, which is declared later; list environments in pipeline order", after.get_ref())
                    } else {
                        format!("unknown environment {:?} in `after`", after.get_ref())
                    },
                );
            }
        } else if e.verified || e.soak.is_some() {
            errors.at(
                e.name.span(),
                format!(
                    "environment {name:?} sets `verified` or `soak` but has no `after` environment"
                ),
            );
        }
        let span_of = |s: &Option<Spanned<String>>, errors: &mut Errors<'_>| -> Option<Span> {
            s.as_ref().and_then(|s| {
                Span::parse(s.get_ref())
                    .map_err(|m| errors.at(s.span(), m))
                    .ok()
            })
        };
        let soak = span_of(&e.soak, &mut errors);
        let evidence_max_age = span_of(&e.evidence_max_age, &mut errors);
        let approvals = e.approvals.as_ref().map(|a| {
            let doc = a.get_ref();
            let quorum = *doc.quorum.get_ref();
            if quorum == 0 {
                errors.at(
                    doc.quorum.span(),
                    "an approval quorum of 0 approves nothing; remove `approvals` to require none",
                );
            }
            if doc.roles.get_ref().is_empty() {
                errors.at(
                    doc.roles.span(),
                    "approvals name no roles, so nobody could approve",
                );
            }
            let (roles, legacy_roles) =
                roles_here(&doc.roles, name, &grants, &legacy_grants, &mut errors);
            // Who could ever approve here (at some time: the compiler has no clock).
            let eligible: BTreeSet<&str> = grants
                .iter()
                .filter(|g| roles.contains(&g.role) && g.covers(Some(name)))
                .map(|g| g.principal.as_str())
                .collect();
            // (After a misspelt role, the count would only repeat that mistake.)
            if doc
                .roles
                .get_ref()
                .iter()
                .all(|r| r.get_ref().parse::<Role>().is_ok())
                && usize::try_from(quorum).is_ok_and(|q| eligible.len() < q)
            {
                errors.at(
                    doc.quorum.span(),
                    format!(
                        "a quorum of {quorum} can never be met: only {} people hold the roles {:?}",
                        eligible.len(),
                        names(&roles)
                    ),
                );
            } else if doc.signed && !errors.recorded {
                let enrolled = eligible
                    .iter()
                    .filter(|p| person_keys.iter().any(|k| k.principal == **p))
                    .count();
                if usize::try_from(quorum).is_ok_and(|q| enrolled < q) {
                    errors.at(
                        doc.quorum.span(),
                        format!(
                            "signed approvals: a quorum of {quorum} can never be met: only {enrolled} of the people holding the roles {:?} enrolled a personal key ([[person_key]])\nhint: enrol their keys ([[person_key]] with principal and path = \"keys/NAME.pub\"), or drop `signed = true` here",
                            names(&roles)
                        ),
                    );
                }
            }
            Approvals {
                quorum,
                roles,
                legacy_roles,
                expires: span_of(&doc.expires, &mut errors).unwrap_or(Span::DAY),
                signed: doc.signed,
            }
        });
        let mut evidence = Vec::new();
        for kind in &e.evidence {
            if !NAME_RULE.is_match(kind.get_ref()) {
                errors.at(
                    kind.span(),
                    format!(
                        "evidence type {:?} must be lowercase letters, digits or '-'",
                        kind.get_ref()
                    ),
                );
            }
            evidence.push(kind.get_ref().clone());
        }
        let env_keys = e.release_keys.as_ref().map(|paths| {
            paths
                .get_ref()
                .iter()
                .filter_map(|path| match signing.release_key_paths.get(path) {
                    Some(id) => Some(id.clone()),
                    None => {
                        errors.at(
                            paths.span(),
                            format!("release key {path:?} is not a declared [[release_key]]"),
                        );
                        None
                    }
                })
                .collect::<Vec<_>>()
        });
        let env_builders = e.builders.as_ref().map(|ids| {
            for id in ids.get_ref() {
                if !doc.builders.iter().any(|b| b.id.get_ref() == id) {
                    errors.at(
                        ids.span(),
                        format!("builder {id:?} is not a declared [[builder]]"),
                    );
                }
            }
            ids.get_ref().clone()
        });
        let (break_glass, legacy_break_glass) =
            e.break_glass.as_ref().map_or_else(Default::default, |r| {
                if r.get_ref().is_empty() {
                    errors.at(
                        r.span(),
                        "break_glass names no roles; remove it to let nobody break glass",
                    );
                }
                roles_here(r, name, &grants, &legacy_grants, &mut errors)
            });
        let freezes = compile_env::freezes(&e.freeze, &mut errors);
        let rules = compile_env::rules(
            RulesDoc {
                tests: e.tests.as_ref(),
                static_analysis: e.static_analysis.as_ref(),
                vulnerabilities: e.vulnerabilities.as_ref(),
                licences: e.licences.as_ref(),
                reproducible: e.reproducible.as_ref(),
                standing: e.standing.as_ref(),
            },
            &mut errors,
        );
        environments.push(Environment {
            name: name.clone(),
            release_keys: env_keys,
            builders: env_builders,
            break_glass,
            legacy_break_glass,
            freezes,
            after: e.after.as_ref().map(|a| a.get_ref().clone()),
            verified: e.verified,
            soak,
            approvals,
            evidence,
            evidence_max_age,
            rules,
        });
    }

    if !errors.found.is_empty() {
        return Err(PolicyErrors(errors.found));
    }
    Ok(Policy {
        digest: bundle.digest(),
        artifact_name,
        release_name,
        semver,
        grants,
        legacy_grants,
        named_keys: [signing.named, name_person_keys(&person_keys, &person_files)].concat(),
        release_keys: signing.release_keys,
        builders: signing.builders,
        environments,
        governance,
        person_keys,
    })
}
