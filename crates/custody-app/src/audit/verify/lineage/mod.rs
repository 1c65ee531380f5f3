//! The lineage part: what the verified entries say, gathered as they are checked, then
//! every certification traced back through its decision, promotion, release, artifacts,
//! evidence and approvals, each of which must be in the bundle and agree with what the
//! decision's facts say (so a replayed decision is a replay of what the ledger holds).
//!
//! It also tells the story a regulator reads: what each environment runs, how each
//! release got there, who approved it and why, and which gates were overridden.

use std::collections::{BTreeMap, HashMap};

use custody_crypto::dsse::Envelope;
use custody_model::Timestamp;
use custody_policy::{Facts, GateResult};

use super::story::{EnvironmentStory, RollbackStory, Story, WithdrawnStory};
use super::timeline::Timeline;
use super::{Check, Report, fail};

mod trace;

/// What one verified entry says, as far as lineage and the story go.
pub(crate) enum Item {
    Artifact {
        digest: String,
        artifact: Artifact,
    },
    Evidence {
        artifact: custody_model::Digest,
        evidence: EvidenceItem,
    },
    Release {
        id: String,
        release: Release,
    },
    Promotion {
        id: String,
        promotion: Promotion,
    },
    Decision(Box<DecisionItem>),
    Approval(ApprovalItem),
    Certified(Certified),
    RolledBack(RollbackStory),
}

/// A piece of evidence about an artifact, as its entry records it.
pub(crate) struct EvidenceItem {
    pub(crate) index: u64,
    pub(crate) kind: String,
    pub(crate) format: String,
    /// Unix seconds.
    pub(crate) at: i64,
    /// The report's SHA-256 (a report of another digest is never read: `None`), kept as
    /// bytes rather than text.
    pub(crate) report: Option<[u8; 32]>,
}

impl EvidenceItem {
    /// The report's digest as the ledger writes it.
    pub(crate) fn report_name(&self) -> String {
        self.report.map_or_else(
            || "(not a SHA-256)".into(),
            |h| format!("sha256:{}", hex::encode(h)),
        )
    }
}

/// The SHA-256 a `sha256:…` digest names, if that is what it is.
pub(crate) fn sha256_of(digest: &custody_model::Digest) -> Option<[u8; 32]> {
    if digest.algorithm() != custody_model::DigestAlgorithm::Sha256 {
        return None;
    }
    digest.as_bytes().try_into().ok()
}

/// A decision, with the facts it was taken on.
pub(crate) struct DecisionItem {
    pub(crate) index: u64,
    pub(crate) id: String,
    pub(crate) promotion: String,
    pub(crate) release: String,
    pub(crate) environment: String,
    pub(crate) allowed: bool,
    pub(crate) gates: Vec<GateResult>,
    pub(crate) policy: String,
    pub(crate) at: String,
    pub(crate) facts: Option<Facts>,
}

/// A review.
#[derive(Clone)]
pub(crate) struct ApprovalItem {
    pub(crate) index: u64,
    pub(crate) id: String,
    pub(crate) promotion: String,
    pub(crate) by: String,
    pub(crate) approve: bool,
    pub(crate) rationale: Option<String>,
    pub(crate) confidential: bool,
    pub(crate) risk: String,
    pub(crate) at: String,
    pub(crate) recorded: Timestamp,
    /// The personal keys whose signatures the leaf recorded as verified.
    pub(crate) keys: Vec<String>,
    pub(crate) after_the_fact: bool,
}

/// A registered artifact.
pub(crate) struct Artifact {
    pub(crate) index: u64,
    pub(crate) name: String,
    pub(crate) provenance_key: Option<String>,
    pub(crate) recorded: Timestamp,
    pub(crate) builder_id: Option<String>,
    pub(crate) source: Option<String>,
}

/// A release recorded.
pub(crate) struct Release {
    pub(crate) index: u64,
    pub(crate) digest: String,
    pub(crate) artifacts: Vec<String>,
    pub(crate) manifest: Envelope,
    pub(crate) trusted_key: Option<String>,
    pub(crate) recorded: Timestamp,
    pub(crate) by: String,
}

/// A promotion requested.
pub(crate) struct Promotion {
    pub(crate) index: u64,
    pub(crate) release: String,
    pub(crate) environment: String,
    pub(crate) requested_by: String,
    pub(crate) at: String,
    pub(crate) break_glass: Option<String>,
}

/// A release certified in an environment.
pub(crate) struct Certified {
    pub(crate) index: u64,
    pub(crate) environment: String,
    pub(crate) release: String,
    pub(crate) promotion: String,
    pub(crate) decision: String,
    pub(crate) at: String,
}

/// The verified entries, by what they name.
#[derive(Default)]
pub(crate) struct Lineage {
    artifacts: HashMap<String, Artifact>,
    /// artifact → its evidence, in ledger order
    /// By artifact (keyed by the digest itself: a million entries' worth of hex strings
    /// formatted and hashed was a tenth of a verification).
    evidence: HashMap<custody_model::Digest, Vec<EvidenceItem>>,
    releases: HashMap<String, Release>,
    promotions: HashMap<String, Promotion>,
    decisions: HashMap<String, DecisionItem>,
    approvals: HashMap<String, ApprovalItem>,
    /// In ledger order: (index, environment, what happened).
    moves: Vec<Move>,
}

/// What a decision's facts say a raw report reads, and what chose the rules that read it.
pub(crate) struct Decided {
    /// The decision's entry.
    pub(crate) index: u64,
    pub(crate) decision: String,
    pub(crate) environment: String,
    pub(crate) policy: String,
    pub(crate) facts: custody_policy::ReportFacts,
}

enum Move {
    Certified(Certified),
    RolledBack(RollbackStory),
}

impl Lineage {
    /// The raw reports the decisions' facts say they read (by the hex of their SHA-256),
    /// with what each says it read.
    pub(crate) fn decided_readings(&self) -> BTreeMap<String, Vec<Decided>> {
        let mut out: BTreeMap<String, Vec<Decided>> = BTreeMap::new();
        for d in self.decisions.values() {
            let Some(facts) = &d.facts else { continue };
            let read = facts.release.artifacts.iter().flat_map(|a| &a.evidence);
            for report in read.filter_map(|e| e.report.as_ref()) {
                let Some(hex) = report.digest.strip_prefix("sha256:") else {
                    continue;
                };
                let decided = out.entry(hex.to_owned()).or_default();
                // One report read alike for several artifacts is one reading.
                if decided
                    .iter()
                    .any(|x| x.index == d.index && x.facts == *report)
                {
                    continue;
                }
                decided.push(Decided {
                    index: d.index,
                    decision: d.id.clone(),
                    environment: d.environment.clone(),
                    policy: d.policy.clone(),
                    facts: report.clone(),
                });
            }
        }
        // In ledger order, whatever order the map gave them in.
        for decided in out.values_mut() {
            decided.sort_by_key(|d| d.index);
        }
        out
    }

    /// The evidence recorded about the artifact `digest` (`alg:hex`), if any.
    fn evidence_of(&self, digest: &str) -> Option<&Vec<EvidenceItem>> {
        let digest: custody_model::Digest = digest.parse().ok()?;
        self.evidence.get(&digest)
    }

    pub(crate) fn add(&mut self, item: Item) {
        match item {
            Item::Artifact { digest, artifact } => {
                self.artifacts.insert(digest, artifact);
            }
            Item::Evidence { artifact, evidence } => {
                // Most artifacts have a few pieces: room for one at first, not the four a
                // first push makes (200,000 entries of one piece each: 148 MB peak, against
                // 90 MB).
                self.evidence
                    .entry(artifact)
                    .or_insert_with(|| Vec::with_capacity(1))
                    .push(evidence);
            }
            Item::Release { id, release } => {
                self.releases.insert(id, release);
            }
            Item::Promotion { id, promotion } => {
                self.promotions.insert(id, promotion);
            }
            Item::Decision(d) => {
                self.decisions.insert(d.id.clone(), *d);
            }
            Item::Approval(a) => {
                self.approvals.insert(a.id.clone(), a);
            }
            Item::Certified(c) => self.moves.push(Move::Certified(c)),
            Item::RolledBack(r) => self.moves.push(Move::RolledBack(r)),
        }
    }

    /// Checks every certification's lineage and tells the story.
    pub(crate) fn check(&mut self, report: &mut Report, policies: &Timeline) -> Story {
        self.moves.sort_by_key(|m| match m {
            Move::Certified(c) => c.index,
            Move::RolledBack(r) => r.index,
        });
        let mut story = Story::default();
        let mut current: BTreeMap<String, (String, u64)> = BTreeMap::new();
        for m in &self.moves {
            match m {
                Move::Certified(Certified {
                    index,
                    environment,
                    release,
                    promotion,
                    decision,
                    at,
                }) => {
                    report.checked.certifications += 1;
                    let mut failures = Vec::new();
                    let told = self.trace(
                        *index,
                        environment,
                        release,
                        promotion,
                        decision,
                        policies,
                        &mut failures,
                    );
                    report.failures.extend(
                        failures
                            .into_iter()
                            .map(|why| fail(Some(*index), Check::Lineage, why)),
                    );
                    if let Some(mut told) = told {
                        told.at = at.clone();
                        story.certifications.push(told);
                    }
                    current.insert(environment.clone(), (release.clone(), *index));
                }
                Move::RolledBack(r) => {
                    current.insert(r.environment.clone(), (r.to.clone(), r.index));
                    story.rollbacks.push(r.clone());
                }
            }
        }
        let order: Vec<String> = policies
            .latest()
            .map(|p| p.environments().iter().map(|e| e.name.clone()).collect())
            .unwrap_or_default();
        let mut names: Vec<&String> = current.keys().collect();
        names.sort_by_key(|n| order.iter().position(|o| o == *n).unwrap_or(usize::MAX));
        story.environments = names
            .into_iter()
            .map(|n| EnvironmentStory {
                name: n.clone(),
                release: current[n].0.clone(),
                since_entry: current[n].1,
                trust_withdrawn: false,
            })
            .collect();
        story.withdrawn = self.withdrawn(policies, &mut story.environments);
        for (id, r) in &self.releases {
            if r.trusted_key.is_none() && !story.certifications.iter().any(|c| &c.release == id) {
                report.notes.push(format!(
                    "entry {}: release {id} is not signed by a release key of the policy in force then; it was never certified in this bundle",
                    r.index
                ));
            }
        }
        story
    }

    /// The signatures a revocation entered after them withdrew trust from (the key was
    /// compromised since a time at or before their signing), and the environments whose
    /// release at the anchor rests on one, marked. Only signatures that counted are looked
    /// at: one the keys in force then did not verify vouched for nothing to withdraw.
    fn withdrawn(
        &self,
        policies: &Timeline,
        environments: &mut [EnvironmentStory],
    ) -> Vec<WithdrawnStory> {
        let mut found: Vec<WithdrawnStory> = Vec::new();
        let mut story =
            |entry, what, name: String, key: &str, at, rests_on: &dyn Fn(&str) -> bool| {
                let Some(r) = policies.withdrawn(key, entry, at) else {
                    return;
                };
                let mut names = Vec::new();
                for e in environments.iter_mut().filter(|e| rests_on(&e.release)) {
                    e.trust_withdrawn = true;
                    names.push(e.name.clone());
                }
                found.push(withdrawal(entry, what, name, key, r, names));
            };
        for (id, r) in &self.releases {
            if let Some(key) = &r.trusted_key {
                story(
                    r.index,
                    "release",
                    id.clone(),
                    key,
                    r.recorded,
                    &|release| release == id,
                );
            }
        }
        for (digest, a) in &self.artifacts {
            if let Some(key) = &a.provenance_key {
                let name = format!("{} ({digest})", a.name);
                story(a.index, "provenance", name, key, a.recorded, &|release| {
                    self.releases
                        .get(release)
                        .is_some_and(|r| r.artifacts.iter().any(|d| d == digest))
                });
            }
        }
        self.withdrawn_approvals(policies, environments, &mut found);
        found.sort_by_key(|w| w.entry);
        found
    }

    /// The approvals whose personal key a later revocation withdrew, and the environments
    /// whose certification no longer makes its approval gate without them: the decision's
    /// facts with those approvals refused, evaluated again under its recorded policy (the
    /// gate's own rule; another approval may still make the quorum).
    fn withdrawn_approvals(
        &self,
        policies: &Timeline,
        environments: &mut [EnvironmentStory],
        found: &mut Vec<WithdrawnStory>,
    ) {
        let mut refused: HashMap<&str, (usize, String)> = HashMap::new();
        for a in self.approvals.values() {
            for key in &a.keys {
                let Some(r) = policies.withdrawn(key, a.index, a.recorded) else {
                    continue;
                };
                refused.insert(&a.id, (found.len(), r.reason.clone()));
                let name = format!("{} by {} of promotion {}", a.id, a.by, a.promotion);
                found.push(withdrawal(a.index, "approval", name, key, r, Vec::new()));
                break;
            }
        }
        if refused.is_empty() {
            return;
        }
        for e in environments.iter_mut() {
            let decision = self
                .certifying(e)
                .and_then(|decision| self.decisions.get(decision));
            let Some((d, mut facts)) = decision.and_then(|d| Some((d, d.facts.clone()?))) else {
                continue;
            };
            let mut hit = Vec::new();
            for a in &mut facts.approvals {
                if let Some((n, reason)) = refused.get(a.id.as_str()) {
                    a.key_refused = Some(format!("its key was revoked: {reason}"));
                    hit.push(*n);
                }
            }
            let policy = policies
                .by_digest(&d.policy)
                .and_then(|v| v.policy.as_deref());
            let Some(policy) = policy.filter(|_| !hit.is_empty()) else {
                continue;
            };
            if !custody_policy::evaluate(policy, &facts).allowed {
                e.trust_withdrawn = true;
                for n in hit {
                    found[n].environments.push(e.name.clone());
                }
            }
        }
    }

    /// The decision behind what `e` runs at the anchor: its certification's, or for a
    /// release a rollback restored, that of the last certification of that release there
    /// before the rollback (the gate counts the restored promotion's approvals).
    fn certifying(&self, e: &EnvironmentStory) -> Option<&String> {
        let at = self.moves.iter().position(|m| match m {
            Move::Certified(c) => c.index == e.since_entry,
            Move::RolledBack(r) => r.index == e.since_entry,
        })?;
        self.moves[..=at].iter().rev().find_map(|m| match m {
            Move::Certified(c) if c.environment == e.name && c.release == e.release => {
                Some(&c.decision)
            }
            _ => None,
        })
    }
}

/// What `revocation` took back: the signature `entry` recorded on `what` (`name`) with
/// `key`, and the environments resting on it.
fn withdrawal(
    entry: u64,
    what: &'static str,
    name: String,
    key: &str,
    revocation: &super::timeline::Revocation,
    environments: Vec<String>,
) -> WithdrawnStory {
    WithdrawnStory {
        entry,
        what,
        name,
        key: key.to_owned(),
        revoked_at_entry: revocation.index,
        reason: revocation.reason.clone(),
        cutoff: revocation.cutoff.to_string(),
        environments,
    }
}
