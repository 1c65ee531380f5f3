//! One certification traced back through its decision, promotion, release, artifacts,
//! evidence and approvals (see the parent module).

use custody_crypto::dsse;
use custody_policy::Status;

use super::{ApprovalItem, Lineage};
use crate::audit::verify::story::{ApprovalStory, ArtifactStory, CertificationStory};
use crate::audit::verify::timeline::Timeline;

/// How long before a decision's facts were gathered a piece of evidence must have been
/// stamped for the facts to be sure to hold it (the gathering and the request's write are
/// milliseconds apart; a minute leaves room for retries and clocks).
const RACE_SECONDS: i64 = 60;

impl Lineage {
    /// One certification's lineage; `None` if its decision is missing (the story needs it).
    #[allow(
        clippy::too_many_arguments,
        reason = "the certification's fields, each named"
    )]
    pub(super) fn trace(
        &self,
        index: u64,
        environment: &str,
        release: &str,
        promotion: &str,
        decision: &str,
        policies: &Timeline,
        failures: &mut Vec<String>,
    ) -> Option<CertificationStory> {
        let Some(d) = self.decisions.get(decision).filter(|d| d.index < index) else {
            failures.push(format!("the decision {decision} that certified {release} in {environment} is not in the bundle"));
            return None;
        };
        if !d.allowed
            || d.environment != environment
            || d.release != release
            || d.promotion != promotion
        {
            failures.push(format!("its decision {decision} does not allow {release} into {environment} by promotion {promotion}"));
        }
        let p = self.promotions.get(promotion).filter(|p| p.index < d.index);
        match p {
            None => failures.push(format!(
                "the promotion {promotion} it certifies is not in the bundle"
            )),
            Some(p) if p.release != release || p.environment != environment => {
                failures.push(format!(
                    "its promotion {promotion} asked for {} in {}",
                    p.release, p.environment
                ));
            }
            Some(_) => {}
        }
        let r = self
            .releases
            .get(release)
            .filter(|r| p.is_none_or(|p| r.index < p.index));
        let Some(r) = r else {
            failures.push(format!(
                "the release {release} it certifies is not in the bundle"
            ));
            return None;
        };
        let mut artifacts = Vec::new();
        for digest in &r.artifacts {
            match self.artifacts.get(digest).filter(|a| a.index < d.index) {
                None => failures.push(format!(
                    "artifact {digest} of {release} is not registered in the bundle"
                )),
                Some(a) => artifacts.push(ArtifactStory {
                    name: a.name.clone(),
                    digest: digest.clone(),
                    builder_id: a.builder_id.clone(),
                    source: a.source.clone(),
                    provenance_key: a.provenance_key.clone(),
                    evidence: self
                        .evidence_of(digest)
                        .map(|e| {
                            e.iter()
                                .filter(|e| e.index < d.index)
                                .map(|e| format!("{} ({})", e.kind, e.format))
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
            }
        }
        let mut approvals = Vec::new();
        let mut release_key = r.trusted_key.clone();
        if let Some(facts) = &d.facts {
            if facts.release.digest != r.digest {
                failures.push(format!(
                    "its decision's facts name release digest {}, the ledger's release {} is {}",
                    facts.release.digest, release, r.digest
                ));
            }
            if p.is_some_and(|p| p.requested_by != facts.requested_by) {
                failures.push(
                    "its decision's facts name another requester than its promotion's".into(),
                );
            }
            if let Some(key) = &facts.release.signing_key {
                let policy = policies.by_digest(&d.policy).and_then(|v| v.policy.clone());
                let trusted = policy.as_ref().and_then(|p| p.release_key(key)).cloned();
                // A successor by hand-over counts as the policy's key it succeeded: the
                // manifest verified with it through the bundle's key history.
                let succeeded = facts
                    .release
                    .signing_key_counts_as
                    .as_ref()
                    .is_some_and(|named| {
                        policy
                            .as_ref()
                            .is_some_and(|p| p.release_key(named).is_some())
                    })
                    && r.trusted_key.as_deref() == Some(key.as_str());
                match trusted {
                    Some(k) if dsse::verify(&r.manifest, std::slice::from_ref(&k), 1).is_ok() => {
                        release_key = Some(key.clone())
                    }
                    None if succeeded => release_key = Some(key.clone()),
                    _ => failures.push(format!(
                        "its decision says release key {key} of policy {} signed the manifest of {release}, but the manifest the ledger holds does not verify with it",
                        d.policy
                    )),
                }
            }
            for fa in &facts.release.artifacts {
                let recorded = self.artifacts.get(&fa.digest);
                if let (Some(pf), Some(a)) = (&fa.provenance, recorded) {
                    if pf.signing_key.is_some() && pf.signing_key != a.provenance_key {
                        failures.push(format!(
                            "its decision says {}'s provenance was signed by {}, but the ledger's provenance verifies with {}",
                            fa.name,
                            pf.signing_key.as_deref().unwrap_or("-"),
                            a.provenance_key.as_deref().unwrap_or("no trusted key")
                        ));
                    }
                }
                let recorded: &[super::EvidenceItem] =
                    self.evidence_of(&fa.digest).map_or(&[], |v| v.as_slice());
                let before = |e: &&super::EvidenceItem| e.index < d.index;
                for ev in &fa.evidence {
                    let same = |e: &&super::EvidenceItem| e.kind == ev.kind && e.at == ev.at;
                    let found = recorded.iter().filter(before).filter(same);
                    // A piece whose report the decision read is the entry that attached
                    // that report, in that format: not another report of the same kind.
                    let named = ev.report.as_ref().map(|r| {
                        let digest = r.digest.parse().ok();
                        (
                            digest.as_ref().and_then(super::sha256_of),
                            r.format.as_str(),
                        )
                    });
                    let read = |e: &&super::EvidenceItem| {
                        named.is_none_or(|(digest, format)| {
                            digest.is_some() && digest == e.report && format == e.format
                        })
                    };
                    match (found.clone().next(), found.clone().find(read)) {
                        (_, Some(_)) => {}
                        (Some(e), None) => {
                            let r = ev.report.as_ref().map_or_else(Default::default, |r| {
                                format!("{} ({})", r.digest, r.format)
                            });
                            failures.push(format!(
                                "its decision read the {} evidence of {} as report {r}, but the entry that attached it (entry {}) names report {} ({})",
                                ev.kind,
                                fa.name,
                                e.index,
                                e.report_name(),
                                e.format
                            ));
                        }
                        (None, _) => failures.push(format!(
                            "the {} evidence of {} that its decision counted is not in the bundle",
                            ev.kind, fa.name
                        )),
                    }
                }
                // Every piece recorded before the promotion was asked for, and stamped a
                // minute before the facts were gathered, was there when they were: none
                // may be left out. (One recorded just before may have raced the request,
                // whose first decision gathers its facts before the request is written.)
                if let Some(p) = p {
                    let mut counted: std::collections::HashMap<(&str, i64), usize> =
                        Default::default();
                    for ev in &fa.evidence {
                        *counted.entry((ev.kind.as_str(), ev.at)).or_default() += 1;
                    }
                    let settled = |e: &&super::EvidenceItem| {
                        e.index < p.index && e.at.saturating_add(RACE_SECONDS) <= facts.now
                    };
                    for e in recorded.iter().filter(settled) {
                        match counted.get_mut(&(e.kind.as_str(), e.at)) {
                            Some(n) if *n > 0 => *n -= 1,
                            _ => failures.push(format!(
                                "its decision's facts leave out the {} evidence of {} that entry {} attached before the promotion was asked for (report {})",
                                e.kind,
                                fa.name,
                                e.index,
                                e.report_name()
                            )),
                        }
                    }
                }
            }
            for fa in &facts.approvals {
                match self.approvals.get(&fa.id).filter(|a| a.index < d.index) {
                    // Facts that say a review was signed name one whose leaf recorded a
                    // verified personal key (its statement is checked with the entries).
                    Some(a)
                        if a.by == fa.by
                            && a.approve == fa.approve
                            && (!fa.signed || !a.keys.is_empty()) =>
                    {
                        approvals.push(approval_story(a))
                    }
                    Some(_) => failures.push(format!(
                        "review {} disagrees with what its decision's facts say of it",
                        fa.id
                    )),
                    None => failures.push(format!(
                        "review {} by {} that its decision counted is not in the bundle",
                        fa.id, fa.by
                    )),
                }
            }
        }
        // Reviews after the fact (break-glass) come after the certification.
        approvals.extend(
            self.approvals
                .values()
                .filter(|a| a.promotion == promotion && a.after_the_fact)
                .map(approval_story),
        );
        Some(CertificationStory {
            entry: index,
            environment: environment.into(),
            release: release.into(),
            release_digest: r.digest.clone(),
            release_key,
            created_by: r.by.clone(),
            at: String::new(),
            promotion: promotion.into(),
            requested_by: p.map(|p| p.requested_by.clone()).unwrap_or_default(),
            requested_at: p.map(|p| p.at.clone()).unwrap_or_default(),
            break_glass: p.and_then(|p| p.break_glass.clone()),
            decision: decision.into(),
            decided_at: d.at.clone(),
            policy: d.policy.clone(),
            gates: d.gates.clone(),
            overridden: d
                .gates
                .iter()
                .filter(|g| g.status == Status::Overridden)
                .map(|g| g.gate.to_string())
                .collect(),
            approvals,
            artifacts,
        })
    }
}

fn approval_story(a: &ApprovalItem) -> ApprovalStory {
    ApprovalStory {
        entry: a.index,
        by: a.by.clone(),
        approve: a.approve,
        at: a.at.clone(),
        risk: a.risk.clone(),
        rationale: a.rationale.clone(),
        confidential: a.confidential,
        after_the_fact: a.after_the_fact,
    }
}
