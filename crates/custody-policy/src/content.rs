//! The gates over what evidence says: `tests`, `static-analysis`, `vulnerabilities`,
//! `licences` (each with the findings that broke it), and `reproducible` (independent
//! builders agreeing on each digest).
//!
//! Which report counts: for each artifact, evidence type, report format and subject (what
//! the report says it is about: the suites and cases a test report ran, the tools of a
//! static analysis, the target a scanner scanned, the component an SBOM describes), the
//! newest piece custody read that holds the rule's kind of content. A later report of the
//! same tool about the same thing replaces an earlier one (a nightly re-scan, a re-run of
//! the tests); a report of another format or about something else, one that does not say
//! what it is about, one that holds other content (an SBOM listing no vulnerabilities), or
//! one recorded by its digest alone replaces nothing, so no report can hide another's
//! findings by saying nothing about them.
//!
//! A gate is evaluated when its rule is given, or, for an environment that requires
//! evidence, when a report custody read holds that content or a piece of the type that
//! carries it was read (so it fails closed when that piece says nothing the rule reads;
//! and decisions recorded before custody read reports replay unchanged: their facts hold
//! none). Exceptions waive vulnerabilities and licence findings while they are in force
//! at `facts.now`: approved by someone else than the requester, holding the security role
//! in the environment when they approved, before their expiry.

use crate::decision::{Gate, Gates, Status, when};
use crate::facts::{ArtifactFacts, EvidenceFacts, ExceptionFacts, Facts, WaivedFinding};
use crate::policy::{Environment, Policy};
use crate::report::{LicenceFact, ReportFacts, VulnerabilityFact};
use crate::roles::Role;
use crate::rules::{StandingMode, TestRule};

/// Gates that read what evidence says; break-glass may pass them, a `warn` standing
/// only warns on them.
pub(crate) const CONTENT_GATES: [Gate; 4] = [
    Gate::Tests,
    Gate::StaticAnalysis,
    Gate::Vulnerabilities,
    Gate::Licences,
];

/// A piece a rule reads, its report, and the report's content the rule reads.
type Read<'f, T> = (&'f EvidenceFacts, &'f ReportFacts, &'f T);

/// The pieces of `a` the rule over `content` reads: the newest holding it of each evidence
/// type, report format and subject (a later one wins a tie); every one whose report does
/// not say what it is about (nothing shows it is a re-run of another). A piece recorded by
/// its digest alone holds nothing, since nobody read what it says.
fn newest<'f, T>(
    a: &'f ArtifactFacts,
    content: &impl Fn(&'f ReportFacts) -> Option<&'f T>,
) -> Vec<Read<'f, T>> {
    let mut out: Vec<Read<'f, T>> = Vec::new();
    for e in &a.evidence {
        let Some((r, c)) = e.report.as_ref().and_then(|r| Some((r, content(r)?))) else {
            continue;
        };
        match out.iter_mut().find(|(x, xr, _)| {
            !r.subject.is_empty()
                && x.kind == e.kind
                && xr.format == r.format
                && xr.subject == r.subject
        }) {
            Some(x) if e.at >= x.0.at => *x = (e, r, c),
            Some(_) => {}
            None => out.push((e, r, c)),
        }
    }
    out
}

/// The reports of each artifact the rule over `content` reads (see [`newest`]).
fn reports<'f, T>(
    facts: &'f Facts,
    content: impl Fn(&'f ReportFacts) -> Option<&'f T>,
) -> Vec<(&'f ArtifactFacts, Vec<Read<'f, T>>)> {
    facts
        .release
        .artifacts
        .iter()
        .map(|a| (a, newest(a, &content)))
        .collect()
}

/// Whether the rule over some content applies by default in `env`: it requires evidence,
/// and a report custody read holds the content, or a piece of `kind` (the type that
/// carries it) was read, so that a piece saying nothing the rule reads fails the rule
/// rather than lifting it.
fn applies<T>(
    env: &Environment,
    facts: &Facts,
    kind: &str,
    found: &[(&ArtifactFacts, Vec<T>)],
) -> bool {
    !env.evidence.is_empty()
        && (found.iter().any(|(_, r)| !r.is_empty())
            || (env.evidence.iter().any(|k| k == kind)
                && facts
                    .release
                    .artifacts
                    .iter()
                    .flat_map(|a| &a.evidence)
                    .any(|e| e.kind == kind && e.read == Some(true))))
}

/// What a passing gate's reason says before the findings it passed only by approved
/// exceptions (the deploy gate tells such a pass apart from a clean one by it; the text is
/// part of recorded decisions, so it never changes).
pub const WAIVED: &str = "but those waived:";

/// Exceptions in force here at `facts.now`, and the others (for reasons).
fn exceptions<'f>(
    policy: &Policy,
    env: &Environment,
    facts: &'f Facts,
) -> Vec<(&'f ExceptionFacts, Result<(), String>)> {
    facts
        .exceptions
        .iter()
        .filter(|x| x.environments.is_empty() || x.environments.contains(&env.name))
        .map(|x| {
            let state = if x.approved_by == x.requested_by {
                Err(format!("{} approved their own request", x.approved_by))
            } else if !policy.holds(
                &x.approved_by,
                Role::Security,
                Some(&env.name),
                x.approved_at,
            ) {
                Err(format!(
                    "{} did not hold the security role in {} when approving it",
                    x.approved_by, env.name
                ))
            } else if env.counts_only_signed_approvals() && !x.signed {
                // Approved before signed approvals were asked for here, or behind the
                // use case's back: where only signatures count, neither does this waiver.
                Err(format!(
                    "its approval by {} was not signed with an enrolled personal key, and {} counts only signed approvals",
                    x.approved_by, env.name
                ))
            } else if facts.now < x.approved_at {
                Err(format!("approved only at {}", when(x.approved_at)))
            } else if facts.now >= x.expires_at {
                Err(format!("expired at {}", when(x.expires_at)))
            } else {
                Ok(())
            };
            (x, state)
        })
        .collect()
}

/// The exception waiving `finding` of artifact `a`, if one is in force; else why those
/// naming it do not count ("" when none names it).
fn waiver(
    all: &[(&ExceptionFacts, Result<(), String>)],
    facts: &Facts,
    a: &ArtifactFacts,
    matches: impl Fn(&WaivedFinding) -> bool,
) -> Result<String, String> {
    let release = format!("{}@{}", facts.release.name, facts.release.version);
    let mut why_not = Vec::new();
    for (x, state) in all {
        let covers = match (&x.artifact, &x.release) {
            (Some(d), _) => d == &a.digest,
            (None, Some(r)) => r == &release,
            (None, None) => false,
        };
        if covers && matches(&x.finding) {
            match state {
                Ok(()) => return Ok(x.id.clone()),
                Err(e) => why_not.push(format!("exception {} {e}", x.id)),
            }
        }
    }
    Err(why_not.join(", "))
}

fn with_why(text: String, why_not: &str) -> String {
    if why_not.is_empty() {
        text
    } else {
        format!("{text} ({why_not})")
    }
}

/// Every evidence-content gate of `env`; `now` is `None` for a standing (a scan's age
/// was judged when it was promoted).
pub(crate) fn content_gates(
    policy: &Policy,
    env: &Environment,
    facts: &Facts,
    now: Option<i64>,
    gates: &mut Gates,
) {
    let waivers = exceptions(policy, env, facts);
    tests(env, facts, gates);
    static_analysis(env, facts, gates);
    vulnerabilities(env, facts, now, &waivers, gates);
    licences(env, facts, &waivers, gates);
}

fn tests(env: &Environment, facts: &Facts, gates: &mut Gates) {
    let found = reports(facts, |r| r.tests.as_ref());
    let Some(rule) = env
        .rules
        .tests
        .clone()
        .or_else(|| applies(env, facts, "test-results", &found).then(TestRule::default))
    else {
        return;
    };
    let (mut problems, mut total, mut passed) = (Vec::new(), 0, 0);
    for (a, found) in &found {
        if found.is_empty() {
            problems.push(format!(
                "artifact {} has no test report custody has read",
                a.name
            ));
            continue;
        }
        let tests: u64 = found.iter().map(|(_, _, t)| t.tests).sum();
        // Skipped cases did not run: they make no minimum.
        let ran: u64 = found
            .iter()
            .map(|(_, _, t)| t.tests.saturating_sub(t.skipped))
            .sum();
        (total, passed) = (
            total + tests,
            passed + found.iter().map(|(_, _, t)| t.passed).sum::<u64>(),
        );
        if ran < rule.min_tests {
            problems.push(format!(
                "artifact {}: its reports count {ran} test cases run, fewer than the {} required",
                a.name, rule.min_tests
            ));
        }
        for (_, r, t) in found {
            if !rule.allow_failures && t.failed + t.errored > 0 {
                problems.push(format!(
                    "artifact {}: {} of {} tests failed{} (report {}): {}",
                    a.name,
                    t.failed + t.errored,
                    t.tests,
                    if t.errored > 0 {
                        format!(", {} with errors", t.errored)
                    } else {
                        String::new()
                    },
                    r.digest,
                    t.failing.join("; ")
                ));
            }
        }
    }
    gates.push(
        Gate::Tests,
        problems,
        vec![],
        format!("{passed}/{total} tests passed"),
    );
}

fn static_analysis(env: &Environment, facts: &Facts, gates: &mut Gates) {
    let found = reports(facts, |r| r.findings.as_ref());
    let Some(rule) = env
        .rules
        .static_analysis
        .clone()
        .or_else(|| applies(env, facts, "static-analysis", &found).then(Default::default))
    else {
        return;
    };
    let mut problems = Vec::new();
    for (a, found) in &found {
        if found.is_empty() {
            problems.push(format!(
                "artifact {} has no static-analysis report custody has read",
                a.name
            ));
            continue;
        }
        for (name, max) in rule.limits() {
            let count: u64 = found
                .iter()
                .map(|(_, _, f)| match name {
                    "error" => f.error,
                    "warning" => f.warning,
                    _ => f.note,
                })
                .sum();
            if let Some(max) = max.filter(|max| count > *max) {
                let examples: Vec<&str> = found
                    .iter()
                    .flat_map(|(_, _, f)| f.examples.iter().filter(|e| e.starts_with(name)))
                    .map(String::as_str)
                    .collect();
                problems.push(format!(
                    "artifact {}: {count} {name}-level results, more than the {max} allowed: {}",
                    a.name,
                    examples.join("; ")
                ));
            }
        }
    }
    gates.push(
        Gate::StaticAnalysis,
        problems,
        vec![],
        "static analysis within its limits".into(),
    );
}

fn vulnerabilities(
    env: &Environment,
    facts: &Facts,
    now: Option<i64>,
    waivers: &[(&ExceptionFacts, Result<(), String>)],
    gates: &mut Gates,
) {
    let found = reports(facts, |r| r.vulnerabilities.as_ref());
    if env.rules.vulnerabilities.is_none() && !applies(env, facts, "vulnerability-scan", &found) {
        return;
    }
    let rule = env.rules.vulnerability_rule();
    let (mut problems, mut waived) = (Vec::new(), Vec::new());
    for (a, found) in &found {
        if found.is_empty() {
            problems.push(format!(
                "artifact {} has no vulnerability scan custody has read",
                a.name
            ));
            continue;
        }
        if let (Some(now), Some(max)) = (now, rule.max_age) {
            // The newest of the scans read decides how old the artifact's scanning is.
            let newest = found.iter().map(|(e, _, _)| e.at).max().unwrap_or(i64::MIN);
            if now.saturating_sub(newest) > max.seconds_i64() {
                problems.push(format!(
                    "artifact {}: its newest vulnerability scan is from {}, older than {max}",
                    a.name,
                    when(newest)
                ));
            }
        }
        let mut blocking: Vec<String> = Vec::new();
        let mut unlisted = 0;
        for (_, r, v) in found {
            unlisted += v.unlisted;
            for f in &v.counted {
                match waiver(
                    waivers,
                    facts,
                    a,
                    |w| matches!(w, WaivedFinding::Vulnerability { id } if waives(id, f)),
                ) {
                    Ok(x) => waived.push(format!("{} in {} (exception {x})", f.id, a.name)),
                    Err(why_not) => {
                        blocking.push(with_why(describe_vulnerability(f, &r.digest), &why_not))
                    }
                }
            }
        }
        blocking.dedup();
        let count = blocking.len() as u64 + unlisted;
        // Findings past the recorded list cannot be named, so no exception can waive them.
        if unlisted != 0 {
            blocking.push(format!("and {unlisted} more not listed"));
        }
        if !blocking.is_empty() {
            problems.push(format!(
                "artifact {}: {count} vulnerabilities {}: {}",
                a.name,
                rule.describe(),
                blocking.join("; ")
            ));
        }
    }
    let ok = match waived.is_empty() {
        true => format!("no vulnerabilities {}", rule.describe()),
        false => format!(
            "no vulnerabilities {} {WAIVED} {}",
            rule.describe(),
            waived.join(", ")
        ),
    };
    gates.push(Gate::Vulnerabilities, problems, vec![], ok);
}

/// Whether an exception for vulnerability `id` waives finding `f`: when it is the
/// finding's own id, or the one CVE the finding names among its id and aliases (ids
/// compared whatever their case: `cve-2024-3094` is `CVE-2024-3094`). An advisory that
/// names several CVEs is waived only by its own id (waiving one of its CVEs does not
/// waive the others), and a finding is never waived by an alias it shares with other CVEs.
fn waives(id: &str, f: &VulnerabilityFact) -> bool {
    let same = |a: &str| a.eq_ignore_ascii_case(id);
    if same(&f.id) {
        return true;
    }
    let mut cves = std::iter::once(&f.id)
        .chain(&f.aliases)
        .filter(|a| a.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("CVE-")));
    cves.next().is_some_and(|only| same(only)) && cves.all(|other| same(other))
}

fn describe_vulnerability(f: &VulnerabilityFact, report: &str) -> String {
    let version = f
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let fix = match &f.fixed_in {
        Some(v) => format!(", fixed in {v}"),
        None => ", no fix known".to_owned(),
    };
    format!(
        "{} in {}{version} ({}{fix}; report {report})",
        f.id, f.package, f.severity
    )
}

fn licences(
    env: &Environment,
    facts: &Facts,
    waivers: &[(&ExceptionFacts, Result<(), String>)],
    gates: &mut Gates,
) {
    let Some(rule) = &env.rules.licences else {
        return;
    };
    let found = reports(facts, |r| r.licences.as_ref());
    let (mut problems, mut waived) = (Vec::new(), Vec::new());
    for (a, found) in &found {
        if found.is_empty() {
            problems.push(format!("artifact {} has no SBOM custody has read", a.name));
            continue;
        }
        let mut blocking = Vec::new();
        for (_, _, l) in found {
            for fact in &l.denied {
                // Judged again here, so that the reason is this policy's own.
                let verdict = rule.rules.evaluate(fact.licence.as_deref());
                if verdict.allowed {
                    continue;
                }
                let (mut open, why_not) = unwaived(waivers, facts, a, fact, &mut waived);
                // Packages past the recorded list cannot be named, so nothing waives them.
                if fact.more_packages != 0 {
                    open.push(format!("{} more not listed", fact.more_packages));
                }
                if !open.is_empty() {
                    blocking.push(with_why(
                        format!(
                            "{} ({}): {}",
                            fact.licence.as_deref().unwrap_or("no licence"),
                            open.join(", "),
                            verdict.reason
                        ),
                        &why_not,
                    ));
                }
            }
            if l.unlisted != 0 {
                blocking.push(format!("and {} more denied licences", l.unlisted));
            }
        }
        if !blocking.is_empty() {
            problems.push(format!("artifact {}: {}", a.name, blocking.join("; ")));
        }
    }
    let ok = match waived.is_empty() {
        true => "every licence found is allowed".to_owned(),
        false => format!(
            "every licence found is allowed {WAIVED} {}",
            waived.join(", ")
        ),
    };
    gates.push(Gate::Licences, problems, vec![], ok);
}

/// The packages of a denied licence that no exception in force waives, and why those
/// naming them do not count.
fn unwaived(
    waivers: &[(&ExceptionFacts, Result<(), String>)],
    facts: &Facts,
    a: &ArtifactFacts,
    fact: &LicenceFact,
    waived: &mut Vec<String>,
) -> (Vec<String>, String) {
    let licence = fact.licence.as_deref().unwrap_or("NOASSERTION");
    let (mut open, mut why_not) = (Vec::new(), Vec::new());
    for p in &fact.packages {
        let names = |package: &str| {
            p == package || p.strip_prefix(package).is_some_and(|v| v.starts_with('@'))
        };
        match waiver(
            waivers,
            facts,
            a,
            |w| matches!(w, WaivedFinding::Licence { licence: l, package } if l == licence && names(package)),
        ) {
            Ok(x) => waived.push(format!("{licence} of {p} in {} (exception {x})", a.name)),
            Err(e) => {
                open.push(p.clone());
                if !e.is_empty() {
                    why_not.push(e);
                }
            }
        }
    }
    (open, why_not.join(", "))
}

/// Independent builders agreeing on every artifact's digest, when the environment asks.
pub(crate) fn reproducible(policy: &Policy, env: &Environment, facts: &Facts, gates: &mut Gates) {
    let Some(k) = env.rules.reproducible else {
        return;
    };
    let mut problems = Vec::new();
    for a in &facts.release.artifacts {
        let mut agreeing: Vec<&str> = a
            .provenance
            .iter()
            .chain(&a.rebuilds)
            .filter(|p| p.subject_matches)
            .filter_map(|p| {
                let key = p.signing_key.as_ref()?;
                let b = policy.builders().iter().find(|b| &b.key_id == key)?;
                (b.id == p.builder_id).then_some(b.id.as_str())
            })
            .collect();
        agreeing.sort_unstable();
        agreeing.dedup();
        if (agreeing.len() as u64) < u64::from(k) {
            problems.push(format!(
                "artifact {} ({}): {} of the {k} independent trusted builders required agree on its digest ({})",
                a.name,
                a.digest,
                agreeing.len(),
                if agreeing.is_empty() { "none".to_owned() } else { agreeing.join(", ") }
            ));
        }
    }
    gates.push(
        Gate::Reproducible,
        problems,
        vec![],
        format!("{k} independent builders agree on every digest"),
    );
}

/// In a standing under a `warn` environment, the evidence-content gates that failed only
/// warn.
pub(crate) fn soften(env: &Environment, gates: &mut Gates) {
    if env.rules.standing != StandingMode::Warn {
        return;
    }
    for g in &mut gates.0 {
        if g.status == Status::Fail && CONTENT_GATES.contains(&g.gate) {
            g.status = Status::Warn;
            g.reason = format!(
                "warning ({} only warns after certification): {}",
                env.name, g.reason
            );
        }
    }
}
