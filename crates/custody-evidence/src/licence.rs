//! Licence rules: an allow list and a deny list of SPDX licences, and the judgement of a
//! component's SPDX licence expression against them.
//!
//! The rules, term by term (a term is one licence, with its `WITH` exception and `+`):
//! - a term is **denied** when a deny entry matches it, **allowed** when it is not
//!   denied and an allow entry matches it (or there is no allow list); deny wins;
//! - an expression passes when its terms make it true: `OR` needs one side, `AND` both.
//!   So `MIT OR GPL-3.0-only` passes an allow list holding MIT (the recipient may choose
//!   MIT), and `MIT AND GPL-3.0-only` does not;
//! - an entry without an exception matches the licence with or without any exception
//!   (an exception only grants more); an entry with one matches only that pair;
//! - an or-later term (`GPL-2.0-or-later`, `Apache-1.0+`) is matched by an entry naming
//!   that licence or a later version of it (both lists: `GPL-2.0-or-later` is denied
//!   by a deny list holding `GPL-3.0-only`, since the code may come under it);
//! - deprecated ids are read as their successors (`GPL-2.0` is `GPL-2.0-only`, `GPL-2.0+`
//!   is `GPL-2.0-or-later`); ids and operators match whatever their case (SPDX says so:
//!   `gpl-3.0-only` is `GPL-3.0-only`, and a deny list holding it denies it);
//! - `LicenseRef-…` terms (a licence only the SBOM's author knows) and `NOASSERTION`
//!   (which the SPDX list carries as an id, but which asserts nothing) are unknown: they
//!   pass only an allow list naming them (a `LicenseRef-…` only the same one), never a
//!   deny list alone;
//! - no licence, or an expression that is not SPDX (parsed leniently: `/` for `OR`,
//!   lowercase operators, deprecated and common imprecise ids accepted), is unknown, and
//!   unknown is denied unless the rules say [`LicenceRules::allow_unknown`].
//!
//! The expression parser is the `spdx` crate's; only the matching above is custody's.

use crate::sbom::Sbom;
use serde::{Deserialize, Serialize};
use spdx::expression::{Expression, ExpressionReq};
use spdx::{LicenseId, LicenseItem, LicenseReq, Licensee, ParseMode};

/// Allow and deny lists, checked once when made.
#[derive(Debug, Clone)]
pub struct LicenceRules {
    allow: Option<Vec<Licensee>>,
    deny: Vec<Licensee>,
    allow_unknown: bool,
}

/// An allow or deny entry that is not an SPDX licence, or rules that say nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenceRulesError {
    /// An entry is not one SPDX licence (optionally `WITH` an exception).
    #[error("{list} list entry {entry:?} is not an SPDX licence id: {reason}")]
    BadEntry {
        /// `allow` or `deny`.
        list: &'static str,
        /// The entry as given.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// The allow list is given but empty: it would deny everything.
    #[error(
        "the allow list is empty, which would deny every licence; leave it out to allow all but the denied ones"
    )]
    EmptyAllowList,
    /// Neither list says anything.
    #[error("no licence rules: give an allow list, a deny list, or both")]
    NoRules,
}

/// The judgement of one licence expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceVerdict {
    /// Whether the rules accept it.
    pub allowed: bool,
    /// Why, naming the licence(s) that decided it.
    pub reason: String,
}

/// A component the rules did not accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedComponent {
    /// Its name.
    pub name: String,
    /// Its version, if given.
    pub version: Option<String>,
    /// Its licence as written, if any.
    pub licence: Option<String>,
    /// Why it was denied.
    pub reason: String,
}

impl LicenceRules {
    /// Rules from an allow list (`None`: every known licence not denied is allowed) and a
    /// deny list. Entries are SPDX ids (`MIT`, `GPL-3.0-only`, `LicenseRef-Acme`),
    /// optionally with an exception (`GPL-2.0-only WITH Classpath-exception-2.0`).
    pub fn new<S: AsRef<str>>(allow: Option<&[S]>, deny: &[S]) -> Result<Self, LicenceRulesError> {
        let allow = match allow {
            Some([]) => return Err(LicenceRulesError::EmptyAllowList),
            Some(list) => Some(entries("allow", list)?),
            None if deny.is_empty() => return Err(LicenceRulesError::NoRules),
            None => None,
        };
        Ok(LicenceRules {
            allow,
            deny: entries("deny", deny)?,
            allow_unknown: false,
        })
    }

    /// Whether a component with no licence, or one that is not SPDX, passes (default: no).
    #[must_use]
    pub fn allow_unknown(mut self, allow: bool) -> Self {
        self.allow_unknown = allow;
        self
    }

    /// Judges one component's licence expression (`None`: it declares none).
    pub fn evaluate(&self, licence: Option<&str>) -> LicenceVerdict {
        let Some(text) = licence.map(str::trim).filter(|t| !t.is_empty()) else {
            return self.unknown("no licence is declared".to_owned());
        };
        let text = canonical_case(text);
        let text = text.as_ref();
        let expr = match Expression::parse_mode(text, ParseMode::LAX) {
            Ok(e) => e,
            Err(e) => {
                return self.unknown(format!("{text:?} is not an SPDX expression ({})", e.reason));
            }
        };
        match expr.evaluate_with_failures(|req| self.term_allowed(req)) {
            Ok(()) => LicenceVerdict {
                allowed: true,
                reason: format!("{text} is allowed"),
            },
            Err(failures) => LicenceVerdict {
                allowed: false,
                reason: format!("{text} is not allowed: {}", self.explain(&failures)),
            },
        }
    }

    /// Every component of `sbom` the rules do not accept, in the SBOM's order.
    pub fn denied_components(&self, sbom: &Sbom) -> Vec<DeniedComponent> {
        sbom.components
            .iter()
            .filter_map(|c| {
                let verdict = self.evaluate(c.licence.as_deref());
                (!verdict.allowed).then(|| DeniedComponent {
                    name: c.name.clone(),
                    version: c.version.clone(),
                    licence: c.licence.clone(),
                    reason: verdict.reason,
                })
            })
            .collect()
    }

    fn unknown(&self, why: String) -> LicenceVerdict {
        if self.allow_unknown {
            LicenceVerdict {
                allowed: true,
                reason: format!("{why}; unknown licences are allowed by the rules"),
            }
        } else {
            LicenceVerdict {
                allowed: false,
                reason: format!("{why}; an unknown licence is denied"),
            }
        }
    }

    fn term_allowed(&self, req: &LicenseReq) -> bool {
        if self.deny.iter().any(|d| matches(d, req)) {
            return false;
        }
        let unknown_allowed = self.allow_unknown && unknown(req);
        match &self.allow {
            Some(allow) => allow.iter().any(|e| matches(e, req)) || unknown_allowed,
            None => !unknown(req) || unknown_allowed,
        }
    }

    /// "X is denied, Y is not on the allow list", for the terms that failed.
    fn explain(&self, failures: &[&ExpressionReq]) -> String {
        let mut parts: Vec<String> = failures
            .iter()
            .map(|f| {
                if self.deny.iter().any(|d| matches(d, &f.req)) {
                    format!("{} is denied", f.req)
                } else if unknown(&f.req) && self.allow.is_none() {
                    format!(
                        "{} names no SPDX licence, and an unknown licence is denied",
                        f.req
                    )
                } else {
                    format!("{} is not on the allow list", f.req)
                }
            })
            .collect();
        parts.dedup();
        parts.join(", ")
    }
}

/// Whether a term names no licence custody can judge (see the module doc).
fn unknown(req: &LicenseReq) -> bool {
    match &req.license {
        LicenseItem::Spdx { id, .. } => id.name == "NOASSERTION",
        LicenseItem::Other(_) => true,
    }
}

/// `text` with every licence and exception id, operator and `LicenseRef-` prefix in the
/// case the SPDX list gives it: SPDX matches them case-insensitively, the `spdx` crate
/// (even in its lax mode) only in the list's case. Borrowed when nothing changes.
fn canonical_case(text: &str) -> std::borrow::Cow<'_, str> {
    let canonical = |word: &str| -> Option<String> {
        let (base, plus) = match word.strip_suffix('+') {
            Some(b) => (b, "+"),
            None => (word, ""),
        };
        if spdx::license_id(base).is_some() || spdx::exception_id(base).is_some() {
            return None;
        }
        if let Some(op) = ["AND", "OR", "WITH"]
            .into_iter()
            .find(|op| op.eq_ignore_ascii_case(base))
        {
            return (op != base).then(|| op.to_owned());
        }
        if let Some(rest) = base
            .get(..11)
            .filter(|p| p.eq_ignore_ascii_case("LicenseRef-"))
            .map(|_| &base[11..])
        {
            return Some(format!("LicenseRef-{rest}{plus}"));
        }
        let name = spdx::identifiers::LICENSES
            .iter()
            .map(|l| l.name)
            .chain(spdx::identifiers::EXCEPTIONS.iter().map(|e| e.name))
            .find(|n| n.eq_ignore_ascii_case(base))?;
        Some(format!("{name}{plus}"))
    };
    let separator = |c: char| c.is_whitespace() || c == '(' || c == ')';
    let (mut out, mut changed, mut rest) = (String::with_capacity(text.len()), false, text);
    while let Some(c) = rest.chars().next() {
        let end = match separator(c) {
            true => c.len_utf8(),
            false => rest.find(separator).unwrap_or(rest.len()),
        };
        let word = &rest[..end];
        match (!separator(c)).then(|| canonical(word)).flatten() {
            Some(c) => (out.push_str(&c), changed = true).1,
            None => out.push_str(word),
        }
        rest = &rest[end..];
    }
    match changed {
        true => std::borrow::Cow::Owned(out),
        false => std::borrow::Cow::Borrowed(text),
    }
}

fn entries<S: AsRef<str>>(
    list: &'static str,
    items: &[S],
) -> Result<Vec<Licensee>, LicenceRulesError> {
    items
        .iter()
        .map(|s| {
            Licensee::parse_mode(&canonical_case(s.as_ref().trim()), ParseMode::LAX).map_err(|e| {
                LicenceRulesError::BadEntry {
                    list,
                    entry: s.as_ref().to_owned(),
                    reason: e.reason.to_string(),
                }
            })
        })
        .collect()
}

/// Whether a list entry matches one term of an expression (see the module doc).
fn matches(entry: &Licensee, term: &LicenseReq) -> bool {
    let entry = entry.as_ref();
    if entry.addition.is_some() && entry.addition != term.addition {
        return false;
    }
    match (&entry.license, &term.license) {
        (LicenseItem::Spdx { id: a, .. }, LicenseItem::Spdx { id: b, or_later }) => {
            let (a, (b, b_later)) = (current(*a).0, current(*b));
            if a == b {
                return true;
            }
            let Some(base) = (if *or_later || b_later { only(b) } else { None }) else {
                return false;
            };
            // A later version of the same licence: spdx compares the version parts.
            let chosen = Licensee::new(
                LicenseItem::Spdx {
                    id: only(a).unwrap_or(a),
                    or_later: false,
                },
                None,
            );
            chosen.satisfies(&LicenseReq {
                license: LicenseItem::Spdx {
                    id: base,
                    or_later: true,
                },
                addition: None,
            })
        }
        (LicenseItem::Other(a), LicenseItem::Other(b)) => a == b,
        _ => false,
    }
}

/// A licence id as its current, non-deprecated form, and whether it is an or-later one:
/// `GPL-2.0` → `GPL-2.0-only`, `GPL-2.0+` → `GPL-2.0-or-later`.
fn current(id: LicenseId) -> (LicenseId, bool) {
    let later = id.name.ends_with("-or-later") || id.name.ends_with('+');
    if !id.is_deprecated() {
        return (id, later);
    }
    let successor = match id.name.strip_suffix('+') {
        Some(base) => spdx::license_id(&format!("{base}-or-later")),
        None => spdx::license_id(&format!("{}-only", id.name)),
    };
    (successor.unwrap_or(id), later)
}

/// The `-only` form of an `-or-later` (or plain) id, when the licence has one.
fn only(id: LicenseId) -> Option<LicenseId> {
    match id.name.strip_suffix("-or-later") {
        Some(base) => spdx::license_id(&format!("{base}-only")),
        None => Some(id),
    }
}
