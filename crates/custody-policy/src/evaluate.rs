//! The gates, as one pure function: `(policy, facts) → decision`.
//!
//! Invariant: [`evaluate`] reads nothing but its arguments (no clock, no store, no
//! environment), so a recorded decision replays to the same outcome from its recorded facts
//! and policy version. Every gate says why, in words a person can act on.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::facts::Facts;
use crate::policy::Policy;
use crate::roles::names;

/// The engine's name and version, recorded in every decision.
pub const ENGINE: &str = concat!("custody-policy/", env!("CARGO_PKG_VERSION"));

/// A gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The gate passes.
    Pass,
    /// The gate fails; the promotion cannot proceed until the facts change.
    Fail,
    /// Not yet: it may pass with time or more approvals.
    Waiting,
    /// It failed or waited, and the requester broke glass past it (see the `break-glass`
    /// gate, which says who and why).
    Overridden,
}

/// Gates break-glass may override: those that time, people or a freeze hold closed. The
/// integrity gates (the release's signature, naming, provenance) are never overridden: a
/// broken glass still only lets through what was built and signed as recorded.
pub const OVERRIDABLE: [&str; 4] = ["previous-environment", "evidence", "freeze", "approvals"];

/// One gate's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateResult {
    /// The gate's name.
    pub gate: String,
    /// Its verdict.
    pub status: Status,
    /// Why, for a person.
    pub reason: String,
}

/// A decision about a promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// True when every gate passes.
    pub allowed: bool,
    /// Each gate, in evaluation order.
    pub gates: Vec<GateResult>,
    /// The policy version evaluated.
    pub policy_digest: String,
    /// SHA-256 of the facts' RFC 8785 JSON (`sha256:…`).
    pub input_digest: String,
    /// [`ENGINE`].
    pub engine: String,
}

impl Decision {
    /// The gates that did not pass (and were not overridden).
    pub fn blocking(&self) -> impl Iterator<Item = &GateResult> {
        self.gates
            .iter()
            .filter(|g| !matches!(g.status, Status::Pass | Status::Overridden))
    }

    /// Whether the requester broke glass past a gate.
    pub fn broke_glass(&self) -> bool {
        self.gates
            .iter()
            .any(|g| g.gate == "break-glass" && g.status == Status::Pass)
    }
}

/// The digest of a set of facts: SHA-256 of their canonical JSON.
pub fn facts_digest(facts: &Facts) -> String {
    // Canonicalised straight from the struct (no intermediate JSON tree): the facts hold
    // strings, booleans and integers well inside ±2^53, so this is their RFC 8785 form.
    let bytes = serde_json_canonicalizer::to_vec(facts).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

struct Gates(Vec<GateResult>);

impl Gates {
    fn push(&mut self, gate: &str, problems: Vec<String>, waiting: Vec<String>, ok: String) {
        let (status, reason) = if !problems.is_empty() {
            (Status::Fail, problems.join("; "))
        } else if !waiting.is_empty() {
            (Status::Waiting, waiting.join("; "))
        } else {
            (Status::Pass, ok)
        };
        self.0.push(GateResult {
            gate: gate.into(),
            status,
            reason,
        });
    }
}

fn when(t: i64) -> String {
    custody_model::Timestamp::from_unix_seconds(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// Evaluates every gate of the target environment against the facts.
pub fn evaluate(policy: &Policy, facts: &Facts) -> Decision {
    let mut gates = Gates(Vec::new());
    let decision = |gates: Gates| {
        let allowed = !gates.0.is_empty()
            && gates
                .0
                .iter()
                .all(|g| matches!(g.status, Status::Pass | Status::Overridden));
        Decision {
            allowed,
            gates: gates.0,
            policy_digest: policy.digest.clone(),
            input_digest: facts_digest(facts),
            engine: ENGINE.into(),
        }
    };
    let Some(env) = policy.environment(&facts.environment) else {
        gates.push(
            "environment",
            vec![format!(
                "unknown environment {:?}; the pipeline is {}",
                facts.environment,
                policy
                    .environments
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            )],
            vec![],
            String::new(),
        );
        return decision(gates);
    };
    let release = &facts.release;

    // The release manifest: signed by a trusted release key that built nothing in it.
    let mut problems = Vec::new();
    match &release.signing_key {
        None if release.signatures == 0 => {
            problems.push("the release is unsigned: its manifest has no signature".to_owned())
        }
        None => problems.push(
            "the release manifest is not signed by a trusted release key (its signatures are by unknown or revoked keys)"
                .to_owned(),
        ),
        Some(k) if policy.release_key(k).is_none() => problems.push(format!(
            "the release is signed by key {k}, which is not a trusted release key"
        )),
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
        "release-signature",
        problems,
        vec![],
        "signed by a trusted release key".into(),
    );

    // Naming.
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
        "naming",
        problems,
        vec![],
        "names and version follow the naming rules".into(),
    );

    // Provenance of every artifact, by a trusted builder of an allowed repository.
    let mut problems = Vec::new();
    for a in &release.artifacts {
        let Some(p) = &a.provenance else {
            problems.push(format!("artifact {} has no provenance", a.name));
            continue;
        };
        let builder = p
            .signing_key
            .as_ref()
            .and_then(|k| policy.builders.iter().find(|b| &b.key_id == k));
        match builder {
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
            Some(b) if !b.may_build(&p.source_repo) => problems.push(format!(
                "builder {:?} may not build {} (from {})",
                b.id, a.name, p.source_repo
            )),
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
        "provenance",
        problems,
        vec![],
        "every artifact has provenance from a trusted builder".into(),
    );

    // The previous environment: certified there, soaked, deployed successfully.
    if let Some(after) = &env.after {
        let previous = facts.previous.as_ref().filter(|p| &p.environment == after);
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
            "previous-environment",
            problems,
            waiting,
            format!("certified in {after}"),
        );
    }

    // Evidence.
    if !env.evidence.is_empty() {
        let mut problems = Vec::new();
        for a in &release.artifacts {
            for kind in &env.evidence {
                let fresh = a.evidence.iter().filter(|e| &e.kind == kind).any(|e| {
                    env.evidence_max_age
                        .is_none_or(|max| facts.now.saturating_sub(e.at) <= max.seconds_i64())
                });
                if !fresh {
                    problems.push(format!(
                        "artifact {} has no {} evidence{}",
                        a.name,
                        kind,
                        env.evidence_max_age
                            .map(|m| format!(" younger than {m}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        gates.push(
            "evidence",
            problems,
            vec![],
            format!("evidence present: {}", env.evidence.join(", ")),
        );
    }

    // Freeze windows.
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
        gates.push("freeze", problems, vec![], "not in a freeze window".into());
    }

    // Approvals.
    if let Some(rule) = &env.approvals {
        let (problems, waiting, ok) = approvals(policy, facts, rule);
        gates.push("approvals", problems, waiting, ok);
    }

    // Break-glass: loud, recorded, and only for whom the policy names.
    if let Some(reason) = &facts.break_glass {
        let who = &facts.requested_by;
        let may = env
            .break_glass
            .iter()
            .any(|r| policy.holds(who, *r, Some(&env.name), facts.now));
        if !may {
            let problem = if env.break_glass.is_empty() {
                format!(
                    "nobody may break glass into {} (its policy names no break_glass roles)",
                    env.name
                )
            } else {
                format!(
                    "{who} may not break glass into {}: it takes one of the roles {:?}",
                    env.name,
                    names(&env.break_glass)
                )
            };
            gates.push("break-glass", vec![problem], vec![], String::new());
        } else if reason.trim().is_empty() {
            gates.push(
                "break-glass",
                vec!["breaking glass needs a reason".into()],
                vec![],
                String::new(),
            );
        } else {
            let mut overridden = Vec::new();
            for g in &mut gates.0 {
                if g.status != Status::Pass && OVERRIDABLE.contains(&g.gate.as_str()) {
                    g.status = Status::Overridden;
                    g.reason = format!("overridden by break-glass: {}", g.reason);
                    overridden.push(g.gate.clone());
                }
            }
            gates.push(
                "break-glass",
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
    decision(gates)
}

/// How each recorded approval stands against an approval rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It counts towards the quorum.
    Counted,
    /// It is a live rejection.
    Rejects,
    /// It does not count, and why.
    Ignored(String),
}

/// The standing of every approval in `facts`, in order, under the target environment's
/// approval rule (`None` if the environment needs no approvals or does not exist).
pub fn approval_standings(policy: &Policy, facts: &Facts) -> Option<Vec<(String, Standing)>> {
    let rule = policy.environment(&facts.environment)?.approvals.as_ref()?;
    Some(standings(policy, facts, rule))
}

fn standings(
    policy: &Policy,
    facts: &Facts,
    rule: &crate::policy::Approvals,
) -> Vec<(String, Standing)> {
    let release = &facts.release;
    let mut counted: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(facts.approvals.len());
    for a in &facts.approvals {
        let expires = a.expires_at.min(rule.expires.after(a.at));
        let ignored = |why: String| Standing::Ignored(format!("{} ({why})", a.by));
        let standing = if a.superseded {
            ignored("superseded by a later decision".into())
        } else if a.release_digest != release.digest
            || a.environment != facts.environment
            || a.policy_digest != policy.digest
        {
            ignored("given for another release, environment or policy version".into())
        } else if facts.now >= expires {
            ignored(format!("expired at {}", when(expires)))
        } else if !a.approve {
            Standing::Rejects
        } else if a.by == facts.requested_by {
            ignored("requested the promotion".into())
        } else if release.artifacts.iter().any(|x| x.built_by == a.by) {
            ignored("built an artifact of the release".into())
        } else if release.signed_by == a.by {
            ignored("signed the release".into())
        } else if !rule
            .roles
            .iter()
            .any(|r| policy.holds(&a.by, *r, Some(&facts.environment), facts.now))
        {
            ignored(format!("holds none of the roles {:?}", names(&rule.roles)))
        } else if counted.contains(&a.by.as_str()) {
            ignored("already counted".into())
        } else {
            counted.push(&a.by);
            Standing::Counted
        };
        out.push((a.id.clone(), standing));
    }
    out
}

fn approvals(
    policy: &Policy,
    facts: &Facts,
    rule: &crate::policy::Approvals,
) -> (Vec<String>, Vec<String>, String) {
    let standings = standings(policy, facts, rule);
    let by = |id: &str| {
        facts
            .approvals
            .iter()
            .find(|a| a.id == id)
            .map_or("", |a| a.by.as_str())
    };
    let mut counted = Vec::new();
    let mut ignored = Vec::new();
    let mut problems = Vec::new();
    for (id, standing) in &standings {
        match standing {
            Standing::Counted => counted.push(by(id)),
            Standing::Rejects => problems.push(format!("rejected by {}", by(id))),
            Standing::Ignored(why) => ignored.push(why.clone()),
        }
    }
    let have = counted.len() as u64;
    let mut waiting = Vec::new();
    if problems.is_empty() && have < u64::from(rule.quorum) {
        let mut w = format!("{have} of {} approvals", rule.quorum);
        if !ignored.is_empty() {
            w.push_str(&format!("; not counted: {}", ignored.join(", ")));
        }
        waiting.push(w);
    }
    let ok = format!("approved by {}", counted.join(", "));
    (problems, waiting, ok)
}
