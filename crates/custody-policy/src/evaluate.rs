//! The gates, as pure functions: `(policy, facts) → decision`.
//!
//! Invariant: [`evaluate`] and [`evaluate_standing`] read nothing but their arguments (no
//! clock, no store, no environment), so a recorded decision replays to the same outcome from
//! its recorded facts and policy version. Every gate says why, in words a person can act on.
//!
//! [`evaluate`] decides a promotion: every gate of the target environment. A certified
//! release's standing ([`evaluate_standing`], for the deploy gate) is the part of that
//! which does not depend on when it was promoted: the release signature, naming,
//! provenance, agreeing rebuilds, the evidence it carries and what that evidence says —
//! under the policy in force now, so that a tightened policy or a new scan denies what it
//! would refuse to promote.

use crate::content::{content_gates, reproducible, soften};
use crate::decision::{Decision, Gate, Gates, OVERRIDABLE, Status, when};
use crate::facts::{Facts, ReleaseFacts};
use crate::policy::{Environment, Policy};
use crate::repo::RepoUrl;
use crate::review::approvals_gate;
use crate::roles::names;

/// Evaluates every gate of the target environment against the facts.
pub fn evaluate(policy: &Policy, facts: &Facts) -> Decision {
    let mut gates = Gates(Vec::new());
    let Some(env) = known_environment(policy, facts, &mut gates) else {
        return gates.decide(policy.digest(), facts);
    };
    integrity(policy, env, facts, &mut gates);
    if let Some(after) = &env.after {
        previous_environment(env, after, facts, &mut gates);
    }
    evidence(env, facts, Some(facts.now), &mut gates);
    content_gates(policy, env, facts, Some(facts.now), &mut gates);
    freeze(env, facts, &mut gates);
    if let Some(rule) = &env.approvals {
        let (problems, waiting, ok) = approvals_gate(policy, facts, rule);
        gates.push(Gate::Approvals, problems, waiting, ok);
    }
    if let Some(reason) = &facts.break_glass {
        break_glass(policy, env, facts, reason, &mut gates);
    }
    gates.decide(policy.digest(), facts)
}

/// A certified release's standing in `facts.environment` under `policy` (the one in force
/// now): the release signature (a trusted key, allowed there), naming, provenance (trusted
/// builders allowed there, of repositories they may build, as many agreeing as it asks),
/// the evidence types required there and what the evidence says (the newest reports, so a
/// scan recorded after certification counts). Nothing that depends on when it was
/// promoted counts: not the previous environment or its soak, evidence or scan age,
/// freezes, approvals or break-glass. `facts.now` is read only to tell which exceptions are
/// in force. Where the environment says `standing = "warn"`, failing evidence rules warn
/// ([`Status::Warn`]) instead of denying.
pub fn evaluate_standing(policy: &Policy, facts: &Facts) -> Decision {
    let mut gates = Gates(Vec::new());
    if let Some(env) = known_environment(policy, facts, &mut gates) {
        integrity(policy, env, facts, &mut gates);
        evidence(env, facts, None, &mut gates);
        content_gates(policy, env, facts, None, &mut gates);
        soften(env, &mut gates);
    }
    gates.decide(policy.digest(), facts)
}

/// The target environment, or a failed `environment` gate.
fn known_environment<'p>(
    policy: &'p Policy,
    facts: &Facts,
    gates: &mut Gates,
) -> Option<&'p Environment> {
    let env = policy.environment(&facts.environment);
    if env.is_none() {
        gates.push(
            Gate::Environment,
            vec![format!(
                "unknown environment {:?}; the pipeline is {}",
                facts.environment,
                policy.pipeline()
            )],
            vec![],
            String::new(),
        );
    }
    env
}

/// The gates of what the release is, whenever it is asked: its signature, its names and its
/// artifacts' provenance (and agreeing rebuilds, where asked).
fn integrity(policy: &Policy, env: &Environment, facts: &Facts, gates: &mut Gates) {
    release_signature(policy, env, &facts.release, gates);
    naming(policy, &facts.release, gates);
    provenance(policy, env, &facts.release, gates);
    reproducible(policy, env, facts, gates);
}

/// The release manifest: signed by a trusted release key allowed here that built nothing in
/// the release.
fn release_signature(
    policy: &Policy,
    env: &Environment,
    release: &ReleaseFacts,
    gates: &mut Gates,
) {
    let mut problems = Vec::new();
    // A retired key, or a successor by hand-over, counts as the policy's key in its place.
    // (The reasons below are recorded with decisions and replayed: their words are fixed.)
    let counted = release
        .signing_key
        .as_ref()
        .map(|k| release.signing_key_counts_as.as_ref().unwrap_or(k));
    match counted {
        None if release.signatures == 0 => {
            problems.push("the release is unsigned: its manifest has no signature".to_owned())
        }
        None if !release.refused_keys.is_empty() => problems.push(format!(
            "the release manifest is not signed by a trusted release key: {}",
            release.refused_keys.join("; ")
        )),
        None => problems.push(
            "the release manifest is not signed by a trusted release key (its signatures are by unknown or revoked keys)"
                .to_owned(),
        ),
        Some(k) if policy.release_key(k).is_none() => problems.push(format!(
            "the release is signed by key {k}, which is not a trusted release key"
        )),
        Some(k)
            if env
                .release_keys
                .as_ref()
                .is_some_and(|allowed| !allowed.contains(k)) =>
        {
            problems.push(format!(
                "the release is signed by key {k}, which may not sign releases for {}",
                env.name
            ))
        }
        Some(_) => {}
    }
    if let Some(k) = &release.signing_key {
        if release
            .artifacts
            .iter()
            .any(|a| a.provenance.as_ref().and_then(|p| p.signing_key.as_ref()) == Some(k))
        {
            problems.push(format!(
                "key {k} signed both a build and the release (separation of signing duties)"
            ));
        }
    }
    gates.push(
        Gate::ReleaseSignature,
        problems,
        vec![],
        "signed by a trusted release key".into(),
    );
}

/// The release's and its artifacts' names, and its version.
fn naming(policy: &Policy, release: &ReleaseFacts, gates: &mut Gates) {
    let mut problems = Vec::new();
    if let Err(e) = policy.check_release(&release.name, &release.version) {
        problems.push(e);
    }
    for a in &release.artifacts {
        if let Err(e) = policy.check_artifact_name(&a.name) {
            problems.push(e);
        }
    }
    gates.push(
        Gate::Naming,
        problems,
        vec![],
        "names and version follow the naming rules".into(),
    );
}

/// Provenance of every artifact, by a trusted builder allowed here, of a repository it may
/// build.
fn provenance(policy: &Policy, env: &Environment, release: &ReleaseFacts, gates: &mut Gates) {
    let mut problems = Vec::new();
    // A release's artifacts mostly come from one repository: each URL is parsed once.
    let mut urls: Vec<(&str, Option<RepoUrl>)> = Vec::new();
    for a in &release.artifacts {
        let Some(p) = &a.provenance else {
            problems.push(format!("artifact {} has no provenance", a.name));
            continue;
        };
        let builder = p
            .signing_key
            .as_ref()
            .map(|k| p.signing_key_counts_as.as_ref().unwrap_or(k))
            .and_then(|k| policy.builders().iter().find(|b| &b.key_id == k));
        match builder {
            None if !p.refused_keys.is_empty() => problems.push(format!(
                "the provenance of {} is not signed by a trusted builder key: {}",
                a.name,
                p.refused_keys.join("; ")
            )),
            None => problems.push(format!(
                "the provenance of {} is not signed by a trusted builder key",
                a.name
            )),
            Some(b)
                if env
                    .builders
                    .as_ref()
                    .is_some_and(|allowed| !allowed.contains(&b.id)) =>
            {
                problems.push(format!("builder {:?} may not build for {}", b.id, env.name))
            }
            Some(b) if b.id != p.builder_id => problems.push(format!(
                "the provenance of {} names builder {:?}, but its key belongs to {:?}",
                a.name, p.builder_id, b.id
            )),
            Some(b) if !b.may_build_url(parsed(&mut urls, &p.source_repo)) => {
                problems.push(format!(
                    "builder {:?} may not build {} (from {})",
                    b.id, a.name, p.source_repo
                ))
            }
            Some(_) => {}
        }
        if !p.subject_matches {
            problems.push(format!(
                "the provenance of {} is about another digest than {}",
                a.name, a.digest
            ));
        }
    }
    gates.push(
        Gate::Provenance,
        problems,
        vec![],
        "every artifact has provenance from a trusted builder".into(),
    );
}

/// `repo` parsed (`None` if it is not a clean URL), parsing it only the first time.
fn parsed<'u, 'r>(
    urls: &'u mut Vec<(&'r str, Option<RepoUrl>)>,
    repo: &'r str,
) -> Option<&'u RepoUrl> {
    let i = match urls.iter().position(|(r, _)| *r == repo) {
        Some(i) => i,
        None => {
            urls.push((repo, RepoUrl::parse(repo).ok()));
            urls.len() - 1
        }
    };
    urls.get(i).and_then(|(_, url)| url.as_ref())
}

/// The previous environment: certified there, soaked, deployed successfully.
fn previous_environment(env: &Environment, after: &str, facts: &Facts, gates: &mut Gates) {
    let release = &facts.release;
    let previous = facts.previous.as_ref().filter(|p| p.environment == after);
    let certified = previous.and_then(|p| p.certified_at);
    let (mut problems, mut waiting) = (Vec::new(), Vec::new());
    match certified {
        None => problems.push(format!(
            "{}@{} was never certified in {after}; promote it there first",
            release.name, release.version
        )),
        Some(at) => {
            if let Some(soak) = env.soak {
                let ready = soak.after(at);
                if facts.now < ready {
                    waiting.push(format!(
                        "soaking in {after} for {soak}, until {}",
                        when(ready)
                    ));
                }
            }
            if env.verified && !previous.is_some_and(|p| p.deploy_verified) {
                waiting.push(format!(
                    "no successful deploy of it has been reported in {after}"
                ));
            }
        }
    }
    gates.push(
        Gate::PreviousEnvironment,
        problems,
        waiting,
        format!("certified in {after}"),
    );
}

/// The evidence each artifact needs here; fresh at `now` when that is given (a promotion),
/// else only present (a standing: its age was judged when it was promoted).
fn evidence(env: &Environment, facts: &Facts, now: Option<i64>, gates: &mut Gates) {
    if env.evidence.is_empty() {
        return;
    }
    let max_age = now.and(env.evidence_max_age);
    let young_enough = |at: i64| match (now, max_age) {
        (Some(now), Some(max)) => now.saturating_sub(at) <= max.seconds_i64(),
        _ => true,
    };
    let mut problems = Vec::new();
    for a in &facts.release.artifacts {
        for kind in &env.evidence {
            let of_kind = || a.evidence.iter().filter(|e| &e.kind == kind);
            // A report custody never read (a digest alone) is evidence of nothing.
            let fresh = of_kind().any(|e| e.read != Some(false) && young_enough(e.at));
            if !fresh {
                let unread = of_kind().any(|e| e.read == Some(false) && young_enough(e.at));
                problems.push(format!(
                    "artifact {} has no {} evidence{}{}",
                    a.name,
                    kind,
                    max_age
                        .map(|m| format!(" younger than {m}"))
                        .unwrap_or_default(),
                    if unread {
                        " that custody read (only a report's digest was given; attach the report itself)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    gates.push(
        Gate::Evidence,
        problems,
        vec![],
        format!("evidence present: {}", env.evidence.join(", ")),
    );
}

/// Freeze windows.
fn freeze(env: &Environment, facts: &Facts, gates: &mut Gates) {
    if !env.freezes.is_empty() {
        let problems = env
            .freezes
            .iter()
            .filter(|f| f.from <= facts.now && facts.now < f.until)
            .map(|f| {
                format!(
                    "{} is frozen until {}: {}; only break-glass goes in",
                    env.name,
                    when(f.until),
                    f.reason
                )
            })
            .collect();
        gates.push(
            Gate::Freeze,
            problems,
            vec![],
            "not in a freeze window".into(),
        );
    }
}

/// Break-glass: loud, recorded, and only for whom the policy names (holding the role in
/// this environment at the facts' time).
fn break_glass(policy: &Policy, env: &Environment, facts: &Facts, reason: &str, gates: &mut Gates) {
    let who = &facts.requested_by;
    let may = env
        .break_glass
        .iter()
        .any(|r| policy.holds(who, *r, Some(&env.name), facts.now))
        || policy.holds_legacy(who, &env.legacy_break_glass);
    if !may {
        let problem = if env.break_glass.is_empty() && env.legacy_break_glass.is_empty() {
            format!(
                "nobody may break glass into {} (its policy names no break_glass roles)",
                env.name
            )
        } else {
            let mut roles: Vec<&str> = names(&env.break_glass);
            roles.extend(env.legacy_break_glass.iter().map(String::as_str));
            format!(
                "{who} may not break glass into {}: it takes one of the roles {roles:?}",
                env.name,
            )
        };
        gates.push(Gate::BreakGlass, vec![problem], vec![], String::new());
    } else if reason.trim().is_empty() {
        gates.push(
            Gate::BreakGlass,
            vec!["breaking glass needs a reason".into()],
            vec![],
            String::new(),
        );
    } else {
        let mut overridden = Vec::new();
        for g in &mut gates.0 {
            if g.status != Status::Pass && OVERRIDABLE.contains(&g.gate) {
                g.status = Status::Overridden;
                g.reason = format!("overridden by break-glass: {}", g.reason);
                overridden.push(g.gate.name());
            }
        }
        gates.push(
            Gate::BreakGlass,
            vec![],
            vec![],
            format!(
                "{who} broke glass ({reason}); overridden: {}; an after-the-fact review is due",
                if overridden.is_empty() {
                    "nothing".to_owned()
                } else {
                    overridden.join(", ")
                }
            ),
        );
    }
}
