//! The entries' part: each entry file is parsed and hashed in parallel, placed in the tree
//! and the policy timeline in order, then its envelopes, decisions and rationales are
//! checked in parallel against the policy in force at each entry's index.

use custody_crypto::PublicKey;
use custody_crypto::dsse;
use custody_ledger::{Hash, leaf_hash};
use custody_policy::KeyPurpose;
use rayon::prelude::*;
use serde_json::Value;

use super::envelopes::{evidence_statement, manifest, provenance};
use super::lineage::{
    ApprovalItem, Artifact, Certified, DecisionItem, EvidenceItem, Item, Promotion, Release,
};
use super::log::json_lines;
use super::reports::{Named, Reports};
use super::story::RollbackStory;
use super::timeline::Timeline;
use super::{Check, Checked, Failure, State, fail};
use crate::attestations::sha256;
use crate::audit::format::EntryLine;
use crate::events::{Event, EventBody};

mod decision;
mod time_order;

use decision::decision;
pub(crate) use time_order::TimeOrder;

/// An entry line, parsed and hashed.
struct Parsed {
    index: u64,
    stated: Hash,
    computed: Hash,
    /// Scoped bundles: whether the stated hash is proved against the anchor.
    proved: Option<Result<(), String>>,
    event: Result<Event, String>,
    facts: Option<Value>,
    rationale: Option<String>,
    rationale_salt: Option<String>,
    withheld: bool,
}

impl Parsed {
    /// Whether the leaf is the one the signed tree holds (as far as this entry alone can
    /// tell: a complete bundle's roots are compared separately).
    fn sound(&self) -> bool {
        self.stated == self.computed && !matches!(self.proved, Some(Err(_)))
    }
}

/// What checking one entry found.
#[derive(Default)]
struct Outcome {
    failures: Vec<Failure>,
    checked: Checked,
    notes: Vec<String>,
    item: Option<Item>,
    /// The raw report an evidence entry names (by the hex of its SHA-256).
    report: Option<(String, Named)>,
}

impl Outcome {
    /// Counts a personal statement of entry `index` that verified, or its failure.
    fn personally_signed(&mut self, index: u64, checked: Result<(), String>) {
        match checked {
            Ok(()) => self.checked.approvals_signed += 1,
            Err(why) => self.failures.push(fail(Some(index), Check::Approval, why)),
        }
    }

    /// An entry that says a personal key made it (`auth` `personal-key`) must carry the
    /// statement that key signed (`kept`: unless the entry keeps none by design): without
    /// it, nothing but the log's signature says the person acted.
    fn statement_missing(&mut self, index: u64, event: &Event, kept: bool) {
        if !kept
            && matches!(
                event.auth,
                Some(custody_model::Authentication::PersonalKey { .. })
            )
        {
            self.failures.push(fail(
                Some(index),
                Check::Approval,
                "it says a personal key made it, but carries no statement that key signed: it was removed, or custody did not write this entry",
            ));
        }
    }
}

/// The outcomes of an entry file's checks, not yet in the report and lineage: they go in
/// while the next file is parsed and hashed, so the one thread that adds them works beside
/// the others (the order they go in is the order of the entries, as if added at once).
///
/// It also keeps the buffers each file's lines are parsed and checked into, from file to
/// file: fresh ones (a few MB a file) are fresh pages for the kernel to zero, now and then
/// (measured on 200,000 signed entries, alternating with fresh buffers: system time 0.10–0.52 s
/// down to 0.06–0.09 s, the whole verification about a tenth faster).
#[derive(Default)]
pub(crate) struct Pending {
    outcomes: Vec<Option<Outcome>>,
    parsed: Vec<Result<Parsed, String>>,
}

impl State {
    /// One entry file.
    pub(super) fn entry_file(&mut self, name: &str, bytes: &[u8]) {
        let lines = json_lines(bytes);
        let complete = self.report.complete;
        let mut pending = std::mem::take(&mut self.pending);
        let Pending { outcomes, parsed } = &mut pending;
        let (report, lineage, reports, tree) = (
            &mut self.report,
            &mut self.lineage,
            &mut self.reports,
            &self.log,
        );
        rayon::join(
            || add_outcomes(report, lineage, reports, outcomes),
            || parse(name, &lines, tree, complete, parsed),
        );
        // In order: the tree, and the policy timeline later entries are checked against.
        for p in parsed.iter() {
            let p = match p {
                Ok(p) => p,
                Err(why) => {
                    self.report
                        .failures
                        .push(fail(None, Check::Format, why.clone()));
                    self.log.unreadable += 1;
                    continue;
                }
            };
            self.report.checked.entries += 1;
            self.log.place(p.index, p.stated, &mut self.report);
            let failures = &mut self.report.failures;
            match &p.proved {
                // No verified anchor: the one failure that says so covers every entry.
                Some(Err(_)) if !self.log.anchored() => {}
                Some(Err(why)) => failures.push(fail(Some(p.index), Check::Inclusion, why.clone())),
                Some(Ok(())) => self.report.checked.inclusion_proofs += 1,
                None => {}
            }
            if p.stated != p.computed {
                failures.push(fail(
                    Some(p.index),
                    Check::LeafHash,
                    "its leaf does not hash to the leaf hash the signed tree holds: the entry was altered",
                ));
            }
            if let Ok(event) = &p.event
                && p.sound()
            {
                self.time_order.see(p.index, event.at);
            }
            match &p.event {
                Err(why) => failures.push(fail(Some(p.index), Check::Event, why.clone())),
                Ok(Event {
                    body: EventBody::PolicyApplied(a),
                    ..
                }) if p.sound() => {
                    self.report.checked.policies += 1;
                    if let Some(f) = self.policies.push(p.index, a) {
                        failures.push(f);
                    }
                }
                Ok(Event {
                    at,
                    body: EventBody::KeyRotated(r),
                    ..
                }) if p.sound() => {
                    if let Some(f) = self.policies.rotated(p.index, *at, r) {
                        failures.push(f);
                    }
                }
                Ok(Event {
                    at,
                    body: EventBody::KeyRevoked(r),
                    ..
                }) if p.sound() => self.policies.revoked(p.index, *at, r),
                Ok(Event {
                    actor,
                    body: EventBody::TokenCreated(t),
                    ..
                }) if p.sound() => self.tokens.created(p.index, actor, t),
                Ok(Event {
                    body: body @ EventBody::Unknown(_),
                    ..
                }) => {
                    *self
                        .unknown_kinds
                        .entry(body.kind().to_owned())
                        .or_default() += 1;
                }
                Ok(_) => {}
            }
        }
        let (policies, attestors, confidential, tokens) = (
            &self.policies,
            &self.attestors,
            self.report.unverified.confidential,
            &self.tokens,
        );
        // One slot per line (an indexed collect writes each in place, where a filtered one
        // would gather pieces and copy them together).
        parsed
            .par_iter()
            .map(|p| match p {
                Ok(p) if p.sound() => Some(check(p, policies, attestors, confidential, tokens)),
                _ => None,
            })
            .collect_into_vec(outcomes);
        // Freed on every core, not on this one.
        parsed.par_drain(..).for_each(drop);
        self.pending = pending;
    }

    /// Adds the last entry file's outcomes (before the reports and the lineage are
    /// checked).
    pub(super) fn entries_done(&mut self) {
        add_outcomes(
            &mut self.report,
            &mut self.lineage,
            &mut self.reports,
            &mut self.pending.outcomes,
        );
        let lineage = &self.lineage;
        self.reports.decided(|| lineage.decided_readings());
    }
}

/// Parses and hashes an entry file's lines, in parallel, into `parsed`.
fn parse(
    name: &str,
    lines: &[&[u8]],
    tree: &super::log::Tree,
    complete: bool,
    parsed: &mut Vec<Result<Parsed, String>>,
) {
    lines
        .par_iter()
        .enumerate()
        .map(|(n, line)| {
            let line: EntryLine = serde_json::from_slice(line)
                .map_err(|e| format!("{name} line {}: not an entry line: {e}", n + 1))?;
            let computed = leaf_hash(line.leaf.as_bytes());
            let proved =
                (!complete).then(|| tree.prove(line.index, &line.leaf_hash, line.proof.as_ref()));
            Ok(Parsed {
                index: line.index,
                stated: line.leaf_hash,
                computed,
                proved,
                event: Event::from_leaf(line.leaf.as_bytes()).map_err(|e| e.to_string()),
                facts: line.facts,
                rationale: line.rationale,
                rationale_salt: line.rationale_salt,
                withheld: line.withheld,
            })
        })
        .collect_into_vec(parsed);
}

/// Puts checks' outcomes into the report and the lineage, in entry order.
fn add_outcomes(
    report: &mut super::Report,
    lineage: &mut super::lineage::Lineage,
    reports: &mut Reports,
    outcomes: &mut Vec<Option<Outcome>>,
) {
    for o in outcomes.drain(..).flatten() {
        report.failures.extend(o.failures);
        report.notes.extend(o.notes);
        add(&mut report.checked, &o.checked);
        if let Some(item) = o.item {
            lineage.add(item);
        }
        if let Some((hex, named)) = o.report {
            report.failures.extend(reports.expect(hex, named));
        }
    }
}

fn add(total: &mut Checked, one: &Checked) {
    total.provenance += one.provenance;
    total.manifests += one.manifests;
    total.vsas += one.vsas;
    total.evidence_statements += one.evidence_statements;
    total.approvals_signed += one.approvals_signed;
    total.decisions_replayed += one.decisions_replayed;
    total.rationales_checked += one.rationales_checked;
    total.rationales_withheld += one.rationales_withheld;
}

/// Checks one entry's signed content against the policy in force at its index.
fn check(
    p: &Parsed,
    policies: &Timeline,
    attestors: &[PublicKey],
    confidential: crate::audit::format::Confidential,
    tokens: &super::credentials::Tokens,
) -> Outcome {
    let mut o = Outcome::default();
    let Ok(event) = &p.event else {
        return o;
    };
    o.failures.extend(tokens.check(p.index, event));
    let i = p.index;
    let mut found: Vec<Failure> = Vec::new();
    let mut failed = |check: Check, why: String| found.push(fail(Some(i), check, why));
    if p.facts.is_some() && !matches!(event.body, EventBody::DecisionRecorded(_)) {
        failed(
            Check::Format,
            "it carries facts, but it is not a decision".into(),
        );
    }
    if (p.rationale.is_some() || p.withheld)
        && !matches!(&event.body, EventBody::ApprovalRecorded(a) if a.confidential)
    {
        failed(
            Check::Format,
            "it carries a rationale beside its leaf, but it is not a confidential review".into(),
        );
    }
    let in_force = policies.at(i);
    match &event.body {
        EventBody::ArtifactRegistered(a) => {
            let mut key = None;
            if let Some(envelope) = &a.provenance {
                let keys = policies.keys(i, KeyPurpose::Builder, event.at);
                let builder = a.builder_id.as_deref();
                match provenance(envelope, &a.artifact.digest, builder, in_force, &keys) {
                    Ok(k) => {
                        o.checked.provenance += 1;
                        key = Some(k);
                    }
                    Err(why) => o.failures.push(fail(Some(i), Check::Provenance, why)),
                }
            }
            o.item = Some(Item::Artifact {
                digest: a.artifact.digest.to_string(),
                artifact: Artifact {
                    index: i,
                    name: a.artifact.name.clone(),
                    provenance_key: key,
                    recorded: event.at,
                    builder_id: a.builder_id.clone(),
                    source: a
                        .source
                        .as_ref()
                        .map(|s| format!("{}@{}", s.repository, s.commit)),
                },
            });
        }
        EventBody::ArtifactRebuilt(a) => {
            let keys = policies.keys(i, KeyPurpose::Builder, event.at);
            let builder = Some(a.builder_id.as_str());
            match provenance(&a.provenance, &a.artifact.digest, builder, in_force, &keys) {
                Ok(_) => o.checked.provenance += 1,
                Err(why) => o.failures.push(fail(Some(i), Check::Provenance, why)),
            }
        }
        EventBody::ReleaseCreated(r) => {
            let mut trusted = None;
            match manifest(r) {
                Err(why) => failed(Check::Manifest, why),
                Ok(()) if r.manifest.signatures.is_empty() => {}
                Ok(()) => {
                    let keys = policies.keys(i, KeyPurpose::ReleaseSigner, event.at);
                    if let Ok(v) = dsse::verify(&r.manifest, &keys, 1) {
                        o.checked.manifests += 1;
                        trusted = v.key_ids().first().map(ToString::to_string);
                    }
                }
            }
            o.item = Some(Item::Release {
                id: r.release.clone(),
                release: Release {
                    index: i,
                    digest: r.digest.to_string(),
                    artifacts: r.artifacts.iter().map(ToString::to_string).collect(),
                    manifest: r.manifest.clone(),
                    trusted_key: trusted,
                    recorded: event.at,
                    by: event.actor.clone(),
                },
            });
        }
        EventBody::EvidenceAttached(e) => {
            if let Some(statement) = &e.statement {
                match evidence_statement(e, statement, attestors) {
                    Ok(()) => o.checked.evidence_statements += 1,
                    Err(why) => failed(Check::Evidence, why),
                }
            }
            if let Some(read) = &e.report
                && e.evidence.algorithm() == custody_model::DigestAlgorithm::Sha256
            {
                let named = Named {
                    index: i,
                    format: e.format.clone(),
                    read: read.clone(),
                    signed: e.statement.is_some(),
                };
                o.report = Some((e.evidence.hex(), named));
            }
            o.item = e.artifacts.first().map(|a| Item::Evidence {
                artifact: a.clone(),
                evidence: EvidenceItem {
                    index: i,
                    kind: e.kind.clone(),
                    format: e.format.clone(),
                    at: event.at.unix_seconds(),
                    report: super::lineage::sha256_of(&e.evidence),
                },
            });
        }
        EventBody::PromotionRequested(r) => {
            o.statement_missing(i, event, r.statement.is_some());
            if let Some(statement) = &r.statement {
                let keys = policies.keys(i, KeyPurpose::PersonalApproval, event.at);
                let policy = in_force.map(|v| v.digest.as_str());
                let checked = super::envelopes::break_glass_statement(
                    &event.actor,
                    event.at,
                    r,
                    policy,
                    statement,
                    &keys,
                );
                o.personally_signed(i, revocation_named(checked, policies, event, i));
            }
            o.item = Some(Item::Promotion {
                id: r.promotion.clone(),
                promotion: Promotion {
                    index: i,
                    release: r.release.clone(),
                    environment: r.environment.clone(),
                    requested_by: event.actor.clone(),
                    at: event.at.to_string(),
                    break_glass: r.break_glass.clone(),
                },
            });
        }
        EventBody::DecisionRecorded(d) => {
            let (facts, vsa_ok) = decision(p, d, policies, attestors, &mut o);
            if vsa_ok {
                o.checked.vsas += 1;
            }
            if in_force.is_some_and(|v| v.digest != d.policy) {
                o.notes.push(format!(
                    "entry {i}: decision {} was made under policy {}, while the newest policy recorded before it is {}",
                    d.decision,
                    d.policy,
                    in_force.map(|v| v.digest.as_str()).unwrap_or_default()
                ));
            }
            o.item = Some(Item::Decision(Box::new(DecisionItem {
                index: i,
                id: d.decision.clone(),
                promotion: d.promotion.clone(),
                release: d.release.clone(),
                environment: d.environment.clone(),
                allowed: d.allowed,
                gates: d.gates.clone(),
                policy: d.policy.clone(),
                at: event.at.to_string(),
                facts,
            })));
        }
        EventBody::EnvironmentCertified(c) => {
            o.item = Some(Item::Certified(Certified {
                index: i,
                environment: c.environment.clone(),
                release: c.release.clone(),
                promotion: c.promotion.clone(),
                decision: c.decision.clone(),
                at: event.at.to_string(),
            }));
        }
        EventBody::ApprovalRecorded(a) => {
            // A confidential review keeps no statement in its leaf (it quotes the rationale).
            o.statement_missing(i, event, a.statement.is_some() || a.confidential);
            if let Some(statement) = &a.statement {
                let keys = policies.keys(i, KeyPurpose::PersonalApproval, event.at);
                let checked = super::envelopes::approval_statement(
                    &event.actor,
                    event.at,
                    a,
                    statement,
                    &keys,
                );
                o.personally_signed(i, revocation_named(checked, policies, event, i));
            }
            let mut text = a.rationale.clone();
            // A salted commitment opens with the salt beside it; older leaves (and public
            // rationales) carry a bare SHA-256.
            let committed = |t: &str| match (&a.rationale_commitment, &p.rationale_salt) {
                (Some(c), Some(salt)) => crate::review_commitment::opens(c, salt, t),
                (Some(_), None) => false,
                (None, _) => Some(sha256(t.as_bytes())) == a.rationale_digest,
            };
            if !a.confidential {
                match &a.rationale {
                    Some(t) if committed(t) => {}
                    _ => failed(
                        Check::Rationale,
                        "its rationale does not match the commitment in its leaf".into(),
                    ),
                }
            } else if let Some(t) = &p.rationale {
                if committed(t) {
                    o.checked.rationales_checked += 1;
                    text = Some(t.clone());
                } else {
                    failed(
                        Check::Rationale,
                        "the confidential rationale beside it does not match the commitment in its leaf (rationale_commitment, or rationale_digest in older leaves)".into(),
                    );
                }
            } else if p.withheld {
                o.checked.rationales_withheld += 1;
            } else {
                let expected = match confidential {
                    crate::audit::format::Confidential::Included => "included",
                    crate::audit::format::Confidential::Withheld => "marked withheld",
                };
                failed(
                    Check::Rationale,
                    format!(
                        "its confidential rationale is missing: the bundle says they are {expected}"
                    ),
                );
            }
            o.item = Some(Item::Approval(ApprovalItem {
                index: i,
                id: a.approval.clone(),
                promotion: a.promotion.clone(),
                by: event.actor.clone(),
                approve: a.verdict == custody_model::Verdict::Approve,
                rationale: text,
                confidential: a.confidential,
                risk: format!("{:?}", a.risk).to_lowercase(),
                at: event.at.to_string(),
                recorded: event.at,
                keys: a.keys.iter().map(|k| k.key.clone()).collect(),
                after_the_fact: a.after_the_fact,
            }));
        }
        EventBody::RolledBack(r) => {
            o.item = Some(Item::RolledBack(RollbackStory {
                index: i,
                environment: r.environment.clone(),
                from: r.from.clone(),
                to: r.to.clone(),
                reason: r.reason.clone(),
                automatic: r.automatic,
                at: event.at.to_string(),
            }));
        }
        _ => {}
    }
    o.failures.extend(found);
    o
}

/// A personal statement's failure, saying so when its key was revoked before the entry
/// recorded it (nothing recorded after a personal key's revocation counts, whatever time
/// it carries), rather than only that no key in force signed it.
fn revocation_named(
    checked: Result<(), String>,
    policies: &Timeline,
    event: &Event,
    index: u64,
) -> Result<(), String> {
    checked.map_err(|why| match &event.auth {
        Some(custody_model::Authentication::PersonalKey { key, .. }) => {
            match policies.revoked_before(key, index) {
                Some(r) => format!(
                    "{why} (its key {key} was revoked at entry {} ({}), and nothing recorded after a personal key's revocation counts, whatever time it carries)",
                    r.index, r.reason
                ),
                None => why,
            }
        }
        _ => why,
    })
}
