//! Signed envelopes against the keys in force: provenance (builder keys of the policy in
//! force at its ledger index, through hand-overs and revocations: `Timeline::keys`),
//! release manifests (their digests, name and artifacts), and VSAs and evidence statements
//! (the attestor key the proven leaf names).

use custody_crypto::PublicKey;
use custody_crypto::dsse::{self, Envelope};
use custody_crypto::statement::Statement;
use serde_json::Value;

use super::timeline::Version;
use crate::attestations::{self, envelope_digest, read_provenance, sha256};

/// A provenance envelope against `keys`, the builder keys in force at its index; the key
/// that signed it.
pub(crate) fn provenance(
    envelope: &Envelope,
    digest: &custody_model::Digest,
    recorded_builder: Option<&str>,
    in_force: Option<&Version>,
    keys: &[PublicKey],
) -> Result<String, String> {
    let Some(version) = in_force else {
        return Err(
            "no policy was in force when it was registered, so no builder key was trusted".into(),
        );
    };
    if version.policy.is_none() {
        return Err(format!(
            "the policy in force ({}) did not compile",
            version.digest
        ));
    }
    let read = read_provenance(envelope, keys, digest).map_err(|e| {
        format!(
            "its provenance does not verify with a builder key of the policy in force (policy {} applied at entry {}): {e}",
            version.digest, version.index
        )
    })?;
    if !read.subject_matches {
        return Err(format!(
            "its provenance is about another artifact than {digest}"
        ));
    }
    if recorded_builder != Some(read.builder_id.as_str()) {
        return Err(format!(
            "it records builder {recorded_builder:?}, but its signed provenance names {:?}",
            read.builder_id
        ));
    }
    Ok(read.signing_key)
}

/// A release manifest's envelope against what the entry says about it (its digests, name
/// and artifacts); signatures are checked by the caller.
pub(crate) fn manifest(r: &crate::events::ReleaseCreated) -> Result<(), String> {
    if envelope_digest(&r.manifest) != r.manifest_digest {
        return Err("its manifest_digest is not the digest of its manifest envelope".into());
    }
    let payload = r
        .manifest
        .unverified_payload()
        .map_err(|_| "its manifest's payload is not base64".to_owned())?;
    if sha256(&payload) != r.digest {
        return Err("its digest is not the digest of its manifest statement".into());
    }
    let statement = Statement::from_json(&payload).map_err(|e| e.to_string())?;
    let mut subjects: Vec<String> = statement
        .subjects()
        .iter()
        .filter_map(|s| s.digest.digest().map(|d| d.to_string()))
        .collect();
    let mut artifacts: Vec<String> = r.artifacts.iter().map(ToString::to_string).collect();
    subjects.sort();
    artifacts.sort();
    if statement.predicate_type() != attestations::RELEASE_MANIFEST_V1 || subjects != artifacts {
        return Err("its manifest is not a release manifest of exactly its artifacts".into());
    }
    let p = statement.predicate();
    let named = format!(
        "{}@{}",
        p.get("name").and_then(Value::as_str).unwrap_or_default(),
        p.get("version").and_then(Value::as_str).unwrap_or_default()
    );
    if named != r.release {
        return Err(format!(
            "its manifest names release {named}, not {}",
            r.release
        ));
    }
    Ok(())
}

/// The keys of `attestors` a signature of `envelope` names (the leaf records each
/// signature's key id; a bundled key counts only if it is named).
fn named(envelope: &Envelope, attestors: &[PublicKey]) -> Vec<PublicKey> {
    attestors
        .iter()
        .filter(|k| {
            envelope.signatures.iter().any(|s| {
                s.keyid.as_deref().is_some_and(|id| {
                    id == k.key_id().to_string() || id == k.securesystemslib_keyid()
                })
            })
        })
        .cloned()
        .collect()
}

/// custody's statement of what it read in an evidence report: signed by an attestor key
/// a signature names, about exactly the event's artifacts, naming the event's report by
/// its digest.
pub(crate) fn evidence_statement(
    e: &crate::events::EvidenceAttached,
    statement: &Envelope,
    attestors: &[PublicKey],
) -> Result<(), String> {
    let named = named(statement, attestors);
    if named.is_empty() {
        return Err(
            "no attestor key in the bundle has the key id its evidence statement's signature names"
                .into(),
        );
    }
    let verified = dsse::verify(statement, &named, 1).map_err(|e| {
        format!("its evidence statement does not verify with the attestor key it names: {e}")
    })?;
    let s = Statement::from_json(verified.payload())
        .map_err(|e| format!("its evidence statement: {e}"))?;
    let subjects: Vec<String> = s
        .subjects()
        .iter()
        .filter_map(|s| s.digest.digest().map(|d| d.to_string()))
        .collect();
    let artifacts: Vec<String> = e.artifacts.iter().map(ToString::to_string).collect();
    let p = Value::Object(s.predicate().clone());
    let report = match s.predicate_type() {
        crate::evidence::TEST_RESULT_V0_1 => p.pointer("/configuration/0/digest/sha256"),
        crate::evidence::EVIDENCE_V1 => p.pointer("/report/digest/sha256"),
        _ => None,
    }
    .and_then(Value::as_str);
    if subjects != artifacts || report != Some(e.evidence.hex().as_str()) {
        return Err("its evidence statement is not about exactly this artifact and report".into());
    }
    // What the leaf says custody read is what the attestor signed (and the raw report,
    // read again, is compared with the leaf: reports.rs).
    if let Some(read) = &e.report
        && !signed_reading_agrees(s.predicate_type(), &p, e, read)
    {
        return Err(
            "what its leaf says custody read in the report is not what its evidence statement signs"
                .into(),
        );
    }
    Ok(())
}

/// A personal statement (an approval statement, of a review or of breaking glass), checked
/// for what every one must be: signed by one of `person_keys` (the personal keys the policy
/// in force at the entry enrols, none revoked by then), an approval statement naming the
/// entry's `actor`, and signed no later than the entry (give or take the clock skew custody
/// allows when it checks one). `what` names it in errors. Returns it, read.
fn person_statement(
    what: &str,
    actor: &str,
    at: custody_model::Timestamp,
    statement: &Envelope,
    person_keys: &[PublicKey],
) -> Result<(Statement, crate::approval_statement::ApprovalPredicate), String> {
    use crate::approval_statement::{APPROVAL_V1, SKEW};
    let verified = dsse::verify(statement, person_keys, 1).map_err(|e| {
        format!(
            "its signed {what} does not verify with a personal key the policy then enrolled: {e}"
        )
    })?;
    let s =
        Statement::from_json(verified.payload()).map_err(|e| format!("its signed {what}: {e}"))?;
    let p: crate::approval_statement::ApprovalPredicate =
        serde_json::from_value(Value::Object(s.predicate().clone()))
            .map_err(|e| format!("its signed {what}'s predicate: {e}"))?;
    if s.predicate_type() != APPROVAL_V1 || p.approver != actor {
        return Err(format!(
            "its signed {what} is not {actor}'s approval statement"
        ));
    }
    if p.signed_at.unix_seconds() > at.unix_seconds() + SKEW {
        return Err(format!(
            "its signed {what} was signed at {}, after its entry ({at})",
            p.signed_at
        ));
    }
    Ok((s, p))
}

/// A reviewer's signed approval statement (`approval.recorded`'s `statement`): its digest
/// the leaf's, a personal statement of the entry's actor ([`person_statement`]), about
/// exactly this promotion (release digest, environment, policy version) with its verdict,
/// risk and rationale.
pub(crate) fn approval_statement(
    actor: &str,
    at: custody_model::Timestamp,
    a: &crate::events::ApprovalRecorded,
    statement: &Envelope,
    person_keys: &[PublicKey],
) -> Result<(), String> {
    use crate::approval_statement::Approved;
    if a.statement_digest.as_ref() != Some(&envelope_digest(statement)) {
        return Err("its statement_digest is not the digest of its signed statement".into());
    }
    let (s, p) = person_statement("approval", actor, at, statement, person_keys)?;
    let subject_digest = s
        .subjects()
        .first()
        .and_then(|s| s.digest.digest())
        .map(|d| d.to_string());
    let about_this = matches!(&p.approves, Approved::Promotion { promotion, release, environment, policy, .. }
        if *promotion == a.promotion
            && *release == a.release
            && *environment == a.environment
            && *policy == a.policy
            && subject_digest == Some(a.release_digest.to_string()));
    let says_this = p.verdict == a.verdict
        && p.risk == Some(a.risk)
        && a.rationale.as_ref().is_none_or(|r| *r == p.rationale);
    if !about_this || !says_this {
        return Err(
            "its signed approval is not this approver's statement of this verdict on this promotion"
                .into(),
        );
    }
    Ok(())
}

/// A requester's signed statement of breaking glass (`promotion.requested`'s
/// `statement`): a personal statement of the entry's actor ([`person_statement`]), about
/// exactly this release and environment under `policy` (the version in force at the
/// entry), with the entry's reason.
pub(crate) fn break_glass_statement(
    actor: &str,
    at: custody_model::Timestamp,
    r: &crate::events::PromotionRequested,
    policy: Option<&str>,
    statement: &Envelope,
    person_keys: &[PublicKey],
) -> Result<(), String> {
    use crate::approval_statement::Approved;
    let (_, p) = person_statement("break-glass", actor, at, statement, person_keys)?;
    let about_this = matches!(&p.approves, Approved::BreakGlass { release, environment, policy: signed }
        if *release == r.release && *environment == r.environment && Some(signed.as_str()) == policy);
    let says_this = p.verdict == custody_model::Verdict::Approve
        && Some(&p.rationale) == r.break_glass.as_ref();
    if !about_this || !says_this {
        return Err(
            "its signed break-glass is not this requester's statement of breaking glass with this release into this environment, under the policy then in force, for this reason"
                .into(),
        );
    }
    Ok(())
}

/// Whether a statement's predicate says what the leaf records reading: the test-result
/// predicate its verdict (failed exactly when a case failed or errored) and the report's
/// name (type and format) and media type; custody's evidence predicate its type, format,
/// totals, size and media type.
fn signed_reading_agrees(
    predicate_type: &str,
    p: &Value,
    e: &crate::events::EvidenceAttached,
    read: &crate::evidence::ReportRead,
) -> bool {
    let text = |pointer: &str| p.pointer(pointer).and_then(Value::as_str);
    match predicate_type {
        crate::evidence::TEST_RESULT_V0_1 => {
            let failed = read
                .summary
                .tests
                .as_ref()
                .is_some_and(|t| t.failed + t.errored > 0);
            let name = format!("{} ({})", e.kind, e.format);
            text("/result") == Some(if failed { "FAILED" } else { "PASSED" })
                && text("/configuration/0/name") == Some(name.as_str())
                && text("/configuration/0/mediaType") == Some(read.media_type.as_str())
        }
        crate::evidence::EVIDENCE_V1 => {
            let summary = p
                .get("summary")
                .cloned()
                .and_then(|v| serde_json::from_value::<custody_evidence::Summary>(v).ok());
            summary.as_ref() == Some(&read.summary)
                && p.pointer("/report/size").and_then(Value::as_u64) == Some(read.size)
                && text("/report/mediaType") == Some(read.media_type.as_str())
                && text("/type") == Some(e.kind.as_str())
                && text("/format") == Some(e.format.as_str())
        }
        _ => false,
    }
}

/// The VSA of a decision: signed by an attestor key whose id its proven leaf records,
/// about exactly the decision's artifacts, with its outcome and policy. Returns whether it
/// carries the break-glass mark ([`attestations::BREAK_GLASS_LEVEL`]). `keys_from` says
/// where `attestors` came from, for the error that none is named.
pub(crate) fn vsa(
    d: &crate::events::DecisionRecorded,
    attestors: &[PublicKey],
    keys_from: &str,
) -> Result<bool, String> {
    if envelope_digest(&d.vsa) != d.vsa_digest {
        return Err("its vsa_digest is not the digest of its VSA envelope".into());
    }
    let named = named(&d.vsa, attestors);
    if named.is_empty() {
        return Err(format!(
            "no attestor key {keys_from} has the key id its VSA's signature names"
        ));
    }
    let verified = dsse::verify(&d.vsa, &named, 1)
        .map_err(|e| format!("its VSA does not verify with the attestor key it names: {e}"))?;
    let statement =
        Statement::from_json(verified.payload()).map_err(|e| format!("its VSA: {e}"))?;
    let mut subjects: Vec<String> = statement
        .subjects()
        .iter()
        .filter_map(|s| s.digest.digest().map(|d| d.to_string()))
        .collect();
    let mut artifacts: Vec<String> = d.artifacts.iter().map(ToString::to_string).collect();
    subjects.sort();
    artifacts.sort();
    let p = statement.predicate();
    let result = p.get("verificationResult").and_then(Value::as_str);
    let policy = p
        .get("policy")
        .and_then(|v| v.pointer("/digest/sha256"))
        .and_then(Value::as_str);
    if statement.predicate_type() != attestations::SLSA_VSA_V1
        || subjects != artifacts
        || result != Some(if d.allowed { "PASSED" } else { "FAILED" })
        || policy != d.policy.strip_prefix("sha256:")
    {
        return Err(
            "its VSA is not about exactly this decision's artifacts, outcome and policy".into(),
        );
    }
    // A VSA marked as break-glass belongs to a break-glass decision. (The VSA of one made
    // before the mark existed has no mark: it reads as a clean pass, which the exception
    // section of the report corrects.)
    let marked = p
        .get("verifiedLevels")
        .and_then(Value::as_array)
        .is_some_and(|levels| levels.iter().any(|l| l == attestations::BREAK_GLASS_LEVEL));
    if marked && d.break_glass.is_none() {
        return Err(format!(
            "its VSA says {} but the decision did not break glass",
            attestations::BREAK_GLASS_LEVEL
        ));
    }
    Ok(marked)
}
