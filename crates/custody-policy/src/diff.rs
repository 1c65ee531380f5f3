//! What a new policy version changes, said plainly: each change marked looser (it lets
//! more through, or more people act), stricter, or neither, so the owners reviewing a
//! proposal see at a glance what they are being asked to allow.
//!
//! Invariant: every field of a compiled [`Policy`] that a gate, a role check or the
//! governance reads is compared here; a field added to the policy without a line here would
//! let a change slip through review unnamed. The tests walk each one.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::policy::{Approvals, Environment, Policy};
use crate::roles::Grant;

/// Which way a change moves the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// More gets through, or more people may act.
    Looser,
    /// Less gets through, or fewer people may act.
    Stricter,
    /// Neither, or not comparable (a renamed rule, a new environment).
    Neutral,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Direction::Looser => "looser",
            Direction::Stricter => "stricter",
            Direction::Neutral => "neutral",
        })
    }
}

/// One change between two policy versions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Change {
    /// Which way it moves the bar.
    pub direction: Direction,
    /// What changed, for people: `production: approvals no longer required`.
    pub what: String,
}

/// The changes from `before` to `after`, looser ones first.
pub fn diff(before: &Policy, after: &Policy) -> Vec<Change> {
    let mut out = Changes::default();
    governance(before, after, &mut out);
    grants(&before.grants, &after.grants, &mut out);
    keys(before, after, &mut out);
    naming(before, after, &mut out);
    for b in &before.environments {
        match after.environment(&b.name) {
            Some(a) => environment(b, a, &mut out),
            None => out.neutral(format!("environment {} removed", b.name)),
        }
    }
    for a in &after.environments {
        if before.environment(&a.name).is_none() {
            out.neutral(format!(
                "environment {} added{}",
                a.name,
                a.after
                    .as_ref()
                    .map(|x| format!(" after {x}"))
                    .unwrap_or_default()
            ));
        }
    }
    let mut changes = out.0;
    changes.sort();
    changes
}

/// Whether any change lets more through.
pub fn loosens(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.direction == Direction::Looser)
}

/// A bound where absent means unbounded, ranked for [`Changes::ranked`]: a higher bound
/// is looser, and no bound is above every value.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Limit<T> {
    At(T),
    Unbounded,
}

pub(crate) fn limit<T>(bound: Option<T>) -> Limit<T> {
    bound.map_or(Limit::Unbounded, Limit::At)
}

#[derive(Default)]
pub(crate) struct Changes(Vec<Change>);

impl Changes {
    pub(crate) fn push(&mut self, direction: Direction, what: String) {
        self.0.push(Change { direction, what });
    }
    pub(crate) fn looser(&mut self, what: String) {
        self.push(Direction::Looser, what);
    }
    pub(crate) fn stricter(&mut self, what: String) {
        self.push(Direction::Stricter, what);
    }
    pub(crate) fn neutral(&mut self, what: String) {
        self.push(Direction::Neutral, what);
    }
    /// A setting that moved, given as ranks where higher is looser ([`Reverse`] for a
    /// requirement, [`Limit`] for a bound, `!x` for a flag whose absence is looser):
    /// looser if it rose, stricter if it fell, and nothing at all if it stayed.
    ///
    /// Every ordered setting goes through here, so "which way is looser" is said once per
    /// setting, by its rank, rather than by a comparison beside an inequality guard.
    pub(crate) fn ranked<T: Ord>(&mut self, before: T, after: T, what: impl FnOnce() -> String) {
        match after.cmp(&before) {
            Ordering::Greater => self.looser(what()),
            Ordering::Less => self.stricter(what()),
            Ordering::Equal => {}
        }
    }
    /// `looser` if `loose`, else `stricter`.
    pub(crate) fn either(&mut self, loose: bool, what: String) {
        self.push(
            if loose {
                Direction::Looser
            } else {
                Direction::Stricter
            },
            what,
        );
    }
    /// Members of `before` and `after` not in both: added ones are looser when `more_is_looser`.
    pub(crate) fn sets<T: Ord + fmt::Display>(
        &mut self,
        before: &BTreeSet<T>,
        after: &BTreeSet<T>,
        more_is_looser: bool,
        describe: impl Fn(&T, bool) -> String,
    ) {
        for added in after.difference(before) {
            self.either(more_is_looser, describe(added, true));
        }
        for removed in before.difference(after) {
            self.either(!more_is_looser, describe(removed, false));
        }
    }
}

fn governance(before: &Policy, after: &Policy, out: &mut Changes) {
    let (b, a) = (&before.governance, &after.governance);
    let owners = |g: &crate::governance::Governance| -> BTreeSet<&'static str> {
        g.owners.iter().map(|r| r.name()).collect()
    };
    out.sets(&owners(b), &owners(a), true, |role, added| {
        format!(
            "policy changes: holders of {role} {} approve them",
            if added { "now" } else { "no longer" }
        )
    });
    out.ranked(Reverse(b.quorum), Reverse(a.quorum), || {
        format!(
            "policy changes need {} approvals from owners (was {})",
            a.quorum, b.quorum
        )
    });
    if a.signed != b.signed {
        out.either(
            !a.signed,
            format!(
                "policy changes: approvals count {}",
                signed_or_not(a.signed)
            ),
        );
    }
    let persons = |p: &Policy| -> BTreeSet<String> {
        p.person_keys
            .iter()
            .map(|k| format!("{} ({})", k.principal, short(&k.key_id)))
            .collect()
    };
    out.sets(&persons(before), &persons(after), true, |k, added| {
        format!(
            "personal approval key of {k} {}",
            if added { "enrolled" } else { "withdrawn" }
        )
    });
}

fn grants(before: &[Grant], after: &[Grant], out: &mut Changes) {
    let role = |g: &Grant| (g.principal.clone(), g.key());
    let held = |gs: &[Grant]| gs.iter().map(role).collect::<BTreeSet<_>>();
    let (b, a) = (held(before), held(after));
    for (principal, key) in a.difference(&b) {
        out.looser(format!(
            "{principal} gains {key}{}",
            until_of(after, principal, key)
        ));
    }
    for (principal, key) in b.difference(&a) {
        out.stricter(format!("{principal} loses {key}"));
    }
    for (principal, key) in a.intersection(&b) {
        let end = |gs: &[Grant]| {
            gs.iter()
                .filter(|g| &g.principal == principal && &g.key() == key)
                .map(|g| g.until.unwrap_or(i64::MAX))
                .max()
        };
        let now = end(after);
        out.ranked(end(before), now, || {
            format!(
                "{principal}'s {key} now{}",
                match now {
                    Some(i64::MAX) | None => " does not end".to_owned(),
                    Some(t) => format!(" ends {}", time(t)),
                }
            )
        });
    }
}

fn until_of(grants: &[Grant], principal: &str, key: &str) -> String {
    grants
        .iter()
        .find(|g| g.principal == principal && g.key() == key)
        .and_then(|g| g.until)
        .map(|t| format!(" until {}", time(t)))
        .unwrap_or_default()
}

fn keys(before: &Policy, after: &Policy, out: &mut Changes) {
    let release = |p: &Policy| p.release_keys.keys().cloned().collect::<BTreeSet<_>>();
    out.sets(&release(before), &release(after), true, |id, added| {
        format!(
            "release key {} {}",
            short(id),
            if added {
                "trusted"
            } else {
                "no longer trusted"
            }
        )
    });
    let builders = |p: &Policy| {
        p.builders
            .iter()
            .map(|b| format!("{} ({})", b.id, short(&b.key_id)))
            .collect::<BTreeSet<_>>()
    };
    out.sets(&builders(before), &builders(after), true, |b, added| {
        format!(
            "builder {b} {}",
            if added {
                "trusted"
            } else {
                "no longer trusted"
            }
        )
    });
    // A key kept: its validity end (sooner is stricter; later or none is looser) and
    // what people call it (a new name or holder changes no gate).
    for b in &before.named_keys {
        let Some(a) = after
            .named_keys
            .iter()
            .find(|a| a.key_id == b.key_id && a.purpose == b.purpose)
        else {
            continue;
        };
        let what = format!(
            "{} key {} ({})",
            b.purpose.describe(),
            short(&b.key_id),
            a.name
        );
        let expiry = |t: Option<custody_model::Timestamp>| {
            t.map_or_else(|| "never".to_owned(), |t| format!("at {t}"))
        };
        out.ranked(limit(b.expires), limit(a.expires), || {
            format!(
                "{what} expires {} (was {})",
                expiry(a.expires),
                expiry(b.expires)
            )
        });
        if a.name != b.name {
            out.neutral(format!("{what} renamed (was {})", b.name));
        }
        if a.owner != b.owner {
            out.neutral(format!(
                "{what} now held by {} (was {})",
                a.owner.as_deref().unwrap_or("nobody named"),
                b.owner.as_deref().unwrap_or("nobody named")
            ));
        }
    }
    for b in &before.builders {
        if let Some(a) = after.builders.iter().find(|a| a.id == b.id) {
            let repos = |x: &crate::policy::Builder| {
                x.source_repos.iter().cloned().collect::<BTreeSet<_>>()
            };
            out.sets(&repos(b), &repos(a), true, |r, added| {
                format!(
                    "builder {} {} build {r}",
                    b.id,
                    if added { "may now" } else { "may no longer" }
                )
            });
        }
    }
}

fn naming(before: &Policy, after: &Policy, out: &mut Changes) {
    if before.artifact_name.as_str() != after.artifact_name.as_str() {
        out.neutral(format!(
            "artifact naming rule {} (was {})",
            after.artifact_name.as_str(),
            before.artifact_name.as_str()
        ));
    }
    if before.release_name.as_str() != after.release_name.as_str() {
        out.neutral(format!(
            "release naming rule {} (was {})",
            after.release_name.as_str(),
            before.release_name.as_str()
        ));
    }
    out.ranked(!before.semver, !after.semver, || {
        format!(
            "release versions {} be SemVer",
            if after.semver {
                "must"
            } else {
                "need no longer"
            }
        )
    });
}

fn environment(b: &Environment, a: &Environment, out: &mut Changes) {
    let env = &a.name;
    if a.after != b.after {
        out.either(
            a.after.is_none(),
            match &a.after {
                Some(x) => format!("{env}: releases must now pass {x} first"),
                None => format!("{env}: releases no longer need to pass an earlier environment"),
            },
        );
    }
    out.ranked(!b.verified, !a.verified, || {
        format!(
            "{env}: a verified deploy in {} {} required",
            a.after.as_deref().unwrap_or("the earlier environment"),
            if a.verified { "is now" } else { "is no longer" }
        )
    });
    // A soak is a wait required (none is the loosest); evidence max age bounds age.
    out.ranked(Reverse(b.soak), Reverse(a.soak), || {
        format!("{env}: soak {} (was {})", span(a.soak), span(b.soak))
    });
    approvals(out, env, b.approvals.as_ref(), a.approvals.as_ref());
    let types = |e: &Environment| e.evidence.iter().cloned().collect::<BTreeSet<_>>();
    out.sets(&types(b), &types(a), false, |t, added| {
        format!(
            "{env}: evidence {t} {} required",
            if added { "now" } else { "no longer" }
        )
    });
    out.ranked(limit(b.evidence_max_age), limit(a.evidence_max_age), || {
        format!(
            "{env}: evidence max age {} (was {})",
            span(a.evidence_max_age),
            span(b.evidence_max_age)
        )
    });
    allow_list(
        out,
        env,
        "release keys",
        b.release_keys.as_ref(),
        a.release_keys.as_ref(),
    );
    allow_list(
        out,
        env,
        "builders",
        b.builders.as_ref(),
        a.builders.as_ref(),
    );
    let glass = |e: &Environment| {
        e.break_glass
            .iter()
            .map(|r| r.name())
            .collect::<BTreeSet<_>>()
    };
    out.sets(&glass(b), &glass(a), true, |r, added| {
        format!(
            "{env}: holders of {r} {} break glass",
            if added { "may now" } else { "may no longer" }
        )
    });
    let freezes = |e: &Environment| {
        e.freezes
            .iter()
            .map(|f| format!("{} to {} ({})", time(f.from), time(f.until), f.reason))
            .collect::<BTreeSet<_>>()
    };
    out.sets(&freezes(b), &freezes(a), false, |f, added| {
        format!(
            "{env}: freeze {f} {}",
            if added { "added" } else { "lifted" }
        )
    });
    crate::diff_rules::evidence_rules(out, env, &b.rules, &a.rules);
}

/// A span as the diff shows it, `none` when absent.
fn span(s: Option<Span>) -> String {
    s.map_or_else(|| "none".to_owned(), |s| s.to_string())
}

fn approvals(out: &mut Changes, env: &str, b: Option<&Approvals>, a: Option<&Approvals>) {
    match (b, a) {
        (None, None) => {}
        (Some(_), None) => out.looser(format!("{env}: approvals no longer required")),
        (None, Some(a)) => out.stricter(format!(
            "{env}: {} approval(s) now required from {}",
            a.quorum,
            roles(&a.roles)
        )),
        (Some(b), Some(a)) => {
            out.ranked(Reverse(b.quorum), Reverse(a.quorum), || {
                format!(
                    "{env}: {} approval(s) required (was {})",
                    a.quorum, b.quorum
                )
            });
            let set = |x: &Approvals| x.roles.iter().map(|r| r.name()).collect::<BTreeSet<_>>();
            out.sets(&set(b), &set(a), true, |r, added| {
                format!(
                    "{env}: holders of {r} {} approve",
                    if added { "may now" } else { "may no longer" }
                )
            });
            out.ranked(b.expires, a.expires, || {
                format!(
                    "{env}: an approval counts for {} (was {})",
                    a.expires, b.expires
                )
            });
            if a.signed != b.signed {
                out.either(
                    !a.signed,
                    format!("{env}: approvals count {}", signed_or_not(a.signed)),
                );
            }
        }
    }
}

/// How approvals count under a rule's `signed`.
fn signed_or_not(signed: bool) -> &'static str {
    if signed {
        "only when signed with an enrolled personal key"
    } else {
        "from any credential of the approver's own, signed or not"
    }
}

fn allow_list(
    out: &mut Changes,
    env: &str,
    what: &str,
    b: Option<&Vec<String>>,
    a: Option<&Vec<String>>,
) {
    match (b, a) {
        (None, None) => {}
        (Some(_), None) => out.looser(format!("{env}: any trusted {what} now count")),
        (None, Some(a)) => out.stricter(format!(
            "{env}: only {what} {} count",
            a.iter().map(|x| short(x)).collect::<Vec<_>>().join(", ")
        )),
        (Some(b), Some(a)) => {
            let set = |x: &Vec<String>| {
                x.iter()
                    .map(|s| short(s).to_owned())
                    .collect::<BTreeSet<_>>()
            };
            out.sets(&set(b), &set(a), true, |x, added| {
                format!(
                    "{env}: {what} {x} {}",
                    if added {
                        "now count"
                    } else {
                        "no longer count"
                    }
                )
            });
        }
    }
}

fn roles(roles: &[crate::Role]) -> String {
    roles
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A key id as people compare them: its first 16 hex digits (anything else whole).
fn short(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..16]
    } else {
        id
    }
}

fn time(t: i64) -> String {
    custody_model::Timestamp::from_unix_seconds(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}
