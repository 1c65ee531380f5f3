//! A decision, checked: its VSA verifies with the attestor its leaf names and says what the
//! leaf says, and its facts, replayed under the policy in force at its index, reach the
//! recorded outcome.

use custody_crypto::PublicKey;
use custody_model::CanonicalJson;
use custody_policy::Facts;

use super::super::envelopes::vsa;
use super::super::timeline::Timeline;
use super::super::{Check, fail};
use super::{Outcome, Parsed};
use crate::attestations::sha256;

/// A decision: its VSA (signed by the attestor its leaf names, about its artifacts and
/// outcome) and its facts (their digest, and the replay under the recorded policy).
/// Returns the facts (typed) and whether the VSA verified.
pub(super) fn decision(
    p: &Parsed,
    d: &crate::events::DecisionRecorded,
    policies: &Timeline,
    attestors: &[PublicKey],
    o: &mut Outcome,
) -> (Option<Facts>, bool) {
    let i = p.index;
    let vsa = vsa(d, attestors, "in the bundle");
    if let Err(why) = &vsa {
        o.failures.push(fail(Some(i), Check::Vsa, why.clone()));
    }
    let Some(value) = &p.facts else {
        o.failures.push(fail(
            Some(i),
            Check::Decision,
            format!("the facts of decision {} are not in the bundle", d.decision),
        ));
        return (None, vsa.is_ok());
    };
    let digest = match CanonicalJson::from_value(value) {
        Ok(c) => format!("sha256:{}", sha256(c.as_bytes()).hex()),
        Err(e) => format!("(not canonicalisable: {e})"),
    };
    if digest != d.input {
        o.failures.push(fail(
            Some(i),
            Check::Decision,
            format!(
                "the facts beside it digest to {digest}, not the input {} the decision recorded: they were altered",
                d.input
            ),
        ));
        return (None, vsa.is_ok());
    }
    let facts: Facts = match serde_json::from_value(value.clone()) {
        Ok(f) => f,
        Err(e) => {
            o.failures
                .push(fail(Some(i), Check::Decision, format!("its facts: {e}")));
            return (None, vsa.is_ok());
        }
    };
    let Some(policy) = policies.by_digest(&d.policy).and_then(|v| v.policy.clone()) else {
        o.failures.push(fail(
            Some(i),
            Check::Decision,
            format!(
                "its policy version {} is not recorded in the bundle",
                d.policy
            ),
        ));
        return (Some(facts), vsa.is_ok());
    };
    let replayed = custody_policy::evaluate(&policy, &facts);
    o.checked.decisions_replayed += 1;
    if replayed.allowed != d.allowed || replayed.gates != d.gates {
        let differs: Vec<String> = replayed
            .gates
            .iter()
            .filter(|g| !d.gates.contains(g))
            .map(|g| format!("{} now says {:?}: {}", g.gate, g.status, g.reason))
            .collect();
        o.failures.push(fail(
            Some(i),
            Check::Decision,
            format!(
                "replayed under policy {} it is {} (recorded: {}): {}",
                d.policy,
                if replayed.allowed {
                    "allowed"
                } else {
                    "not allowed"
                },
                if d.allowed { "allowed" } else { "not allowed" },
                differs.join("; ")
            ),
        ));
    }
    (Some(facts), vsa.is_ok())
}
