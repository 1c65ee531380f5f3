//! The statements custody makes and reads: SLSA Provenance v1 for builds, SLSA Verification
//! Summary Attestation v1 for every gate decision, and custody's own release manifest. Our
//! own predicate types all live under [`PREDICATE_PREFIX`], defined here and nowhere else.

use std::collections::BTreeMap;

use custody_crypto::dsse::{self, Envelope, KeyIdHint};
use custody_crypto::statement::{PAYLOAD_TYPE, Statement, Subject};
use custody_crypto::{PublicKey, Signer};
use custody_model::{Digest, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AppError, AppResult};

/// Every custody-defined predicate type starts with this.
pub const PREDICATE_PREFIX: &str = "https://custody.dev/attestation/";
/// custody's release manifest: the exact artifact digests of a release.
pub const RELEASE_MANIFEST_V1: &str = "https://custody.dev/attestation/release-manifest/v1";
/// SLSA Provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// SLSA Verification Summary Attestation v1.
pub const SLSA_VSA_V1: &str = "https://slsa.dev/verification_summary/v1";
/// The build type of provenance custody writes from declared fields.
pub const BUILD_TYPE: &str = "https://custody.dev/build/declared/v1";
/// The VSA's verifier id.
pub const VERIFIER_ID: &str = "https://custody.dev/verifier";
/// The one entry of `verifiedLevels` in the VSA of a decision allowed by break-glass: it
/// passed as an exception, past gates that did not pass, so it claims no SLSA level. (The
/// VSA specification lets a verifier add its own levels, never starting with `SLSA_`; a
/// consumer that checks only `verificationResult` still reads PASSED, as the deploy gate
/// would allow it.)
pub const BREAK_GLASS_LEVEL: &str = "CUSTODY_BREAK_GLASS";

/// A build as the builder declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildFields {
    /// The SLSA builder id.
    pub builder_id: String,
    /// Source repository URL.
    pub source_repo: String,
    /// Source commit (hex).
    pub source_commit: String,
    /// Build parameters (name → value).
    pub parameters: BTreeMap<String, String>,
    /// Build environment facts (name → value).
    pub environment: BTreeMap<String, String>,
    /// Build start.
    pub started: Option<Timestamp>,
    /// Build finish.
    pub finished: Option<Timestamp>,
    /// Steps the build declares non-deterministic (timestamps embedded, network fetches…).
    pub nondeterministic_steps: Vec<String>,
    /// The build's invocation id (a CI run id).
    pub invocation_id: Option<String>,
}

/// Signs a statement into a DSSE envelope. The `keyid` hint is the one securesystemslib
/// computes, so Python verifiers find the key; custody never trusts the hint anyway.
fn dsse_sign(signer: &dyn Signer, statement: &Statement) -> AppResult<Envelope> {
    Ok(dsse::sign(
        signer,
        PAYLOAD_TYPE,
        &statement.to_json(),
        KeyIdHint::Securesystemslib,
    )?)
}

/// Builds the SLSA v1 provenance of `artifact` from declared fields and signs it.
pub fn sign_provenance(
    signer: &dyn Signer,
    artifact: &str,
    digest: &Digest,
    build: &BuildFields,
) -> AppResult<Envelope> {
    let mut internal = serde_json::Map::new();
    if !build.environment.is_empty() {
        internal.insert("environment".into(), json!(build.environment));
    }
    if !build.nondeterministic_steps.is_empty() {
        internal.insert(
            "nondeterministicSteps".into(),
            json!(build.nondeterministic_steps),
        );
    }
    let mut definition = json!({
        "buildType": BUILD_TYPE,
        "externalParameters": {
            "source": {"repository": build.source_repo, "commit": build.source_commit},
            "parameters": build.parameters,
        },
        "resolvedDependencies": [{
            "uri": format!("git+{}@{}", build.source_repo, build.source_commit),
            "digest": {"gitCommit": build.source_commit},
        }],
    });
    if !internal.is_empty() {
        definition["internalParameters"] = Value::Object(internal);
    }
    let mut metadata = serde_json::Map::new();
    if let Some(id) = &build.invocation_id {
        metadata.insert("invocationId".into(), json!(id));
    }
    if let Some(t) = build.started {
        metadata.insert("startedOn".into(), json!(t.to_string()));
    }
    if let Some(t) = build.finished {
        metadata.insert("finishedOn".into(), json!(t.to_string()));
    }
    let mut run = json!({"builder": {"id": build.builder_id}});
    if !metadata.is_empty() {
        run["metadata"] = Value::Object(metadata);
    }
    let statement = Statement::new(
        vec![Subject::new(artifact, digest)?],
        SLSA_PROVENANCE_V1,
        json!({"buildDefinition": definition, "runDetails": run}),
    )?;
    dsse_sign(signer, &statement)
}

/// What custody reads out of a provenance envelope it verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadProvenance {
    /// Key id of the trusted key that signed it.
    pub signing_key: String,
    /// `runDetails.builder.id`.
    pub builder_id: String,
    /// The source repository.
    pub source_repo: String,
    /// The source commit.
    pub source_commit: String,
    /// The build parameters (`externalParameters`), for comparing builds.
    pub parameters: Value,
    /// Whether a subject carries the artifact's digest.
    pub subject_matches: bool,
    /// The name of the subject that carries it (the artifact the builder says it built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_name: Option<String>,
}

/// Verifies a provenance envelope with any of `builder_keys` and reads what the gates need.
pub fn read_provenance(
    envelope: &Envelope,
    builder_keys: &[PublicKey],
    digest: &Digest,
) -> AppResult<ReadProvenance> {
    if builder_keys.is_empty() {
        return Err(AppError::denied(
            "the policy trusts no builder keys, so no provenance can be verified; add a [[builder]] to the policy",
        ));
    }
    // A malformed envelope is bad input, whoever signed it; only a well-formed one that no
    // trusted builder key signed is a denial.
    envelope
        .check_form()
        .map_err(|e| AppError::invalid(format!("the provenance is malformed: {e}")))?;
    let verified = dsse::verify(envelope, builder_keys, 1).map_err(|e| {
        AppError::denied(format!(
            "the provenance is not signed by a trusted builder key: {e}"
        ))
    })?;
    if verified.payload_type() != PAYLOAD_TYPE {
        return Err(AppError::invalid(format!(
            "the provenance envelope's payloadType is {:?}, not {PAYLOAD_TYPE}",
            verified.payload_type()
        )));
    }
    let signing_key = verified
        .key_ids()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let statement = Statement::from_json(verified.payload())?;
    if statement.predicate_type() != SLSA_PROVENANCE_V1 {
        return Err(AppError::invalid(format!(
            "the provenance's predicateType is {:?}, not {SLSA_PROVENANCE_V1}",
            statement.predicate_type()
        )));
    }
    let p = statement.predicate();
    let builder_id = p
        .get("runDetails")
        .and_then(|r| r.pointer("/builder/id"))
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::invalid("the provenance has no runDetails.builder.id"))?
        .to_owned();
    let definition = p.get("buildDefinition").cloned().unwrap_or_default();
    let (source_repo, source_commit) = source_of(&definition);
    Ok(ReadProvenance {
        signing_key,
        builder_id,
        source_repo,
        source_commit,
        parameters: definition
            .get("externalParameters")
            .cloned()
            .unwrap_or_default(),
        subject_matches: statement
            .subjects()
            .iter()
            .any(|s| s.digest.digest().as_ref() == Some(digest)),
        subject_name: statement
            .subjects()
            .iter()
            .find(|s| s.digest.digest().as_ref() == Some(digest))
            .map(|s| s.name.clone()),
    })
}

/// The source repository and commit: the first `git+URL@COMMIT` resolved dependency
/// (the SLSA convention), else `externalParameters.source`.
fn source_of(definition: &Value) -> (String, String) {
    let from_deps = definition
        .get("resolvedDependencies")
        .and_then(Value::as_array)
        .and_then(|deps| {
            deps.iter().find_map(|d| {
                let uri = d.get("uri")?.as_str()?.strip_prefix("git+")?;
                let (repo, commit) = uri.rsplit_once('@')?;
                let commit = d
                    .pointer("/digest/gitCommit")
                    .and_then(Value::as_str)
                    .unwrap_or(commit);
                Some((repo.to_owned(), commit.to_owned()))
            })
        });
    from_deps.unwrap_or_else(|| {
        let src = definition.pointer("/externalParameters/source");
        let field = |k: &str| {
            src.and_then(|s| s.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        (field("repository"), field("commit"))
    })
}

/// An artifact as a release manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestArtifact {
    /// Its name.
    pub name: String,
    /// Its digest.
    pub digest: Digest,
}

/// The release manifest statement: subjects are the artifacts.
pub fn release_manifest(
    name: &str,
    version: &str,
    artifacts: &[ManifestArtifact],
    created_by: &str,
    created_at: Timestamp,
) -> AppResult<Statement> {
    let subjects = artifacts
        .iter()
        .map(|a| Subject::new(&a.name, &a.digest))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Statement::new(
        subjects,
        RELEASE_MANIFEST_V1,
        json!({
            "name": name,
            "version": version,
            "artifacts": artifacts.iter().map(|a| json!({"name": a.name, "digest": a.digest.to_string()})).collect::<Vec<_>>(),
            "createdBy": created_by,
            "createdAt": created_at.to_string(),
        }),
    )?)
}

/// A statement in an envelope with no signature (an unsigned release: recorded, and refused
/// by every gate).
pub fn unsigned(statement: &Statement) -> Envelope {
    use base64::Engine as _;
    Envelope {
        payload: base64::engine::general_purpose::STANDARD.encode(statement.to_json()),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: Vec::new(),
    }
}

/// Signs an in-toto statement of `predicate_type` about artifact `name` with `digest`.
pub fn sign_statement(
    signer: &dyn Signer,
    name: &str,
    digest: &Digest,
    predicate_type: &str,
    predicate: Value,
) -> AppResult<Envelope> {
    let statement = Statement::new(vec![Subject::new(name, digest)?], predicate_type, predicate)?;
    dsse_sign(signer, &statement)
}

/// Signs a release manifest.
pub fn sign_release(signer: &dyn Signer, manifest: &Statement) -> AppResult<Envelope> {
    dsse_sign(signer, manifest)
}

/// The SLSA VSA for a gate decision about a release's artifacts.
#[allow(
    clippy::too_many_arguments,
    reason = "the VSA's fields, each named at the call"
)]
pub fn sign_vsa(
    signer: &dyn Signer,
    artifacts: &[ManifestArtifact],
    release: &str,
    promotion: &str,
    passed: bool,
    broke_glass: bool,
    policy_digest: &str,
    provenance: &[(Digest, Digest)],
    at: Timestamp,
) -> AppResult<Envelope> {
    let subjects = artifacts
        .iter()
        .map(|a| Subject::new(&a.name, &a.digest))
        .collect::<Result<Vec<_>, _>>()?;
    let policy_hex = policy_digest
        .strip_prefix("sha256:")
        .unwrap_or(policy_digest);
    let statement = Statement::new(
        subjects,
        SLSA_VSA_V1,
        json!({
            "verifier": {"id": VERIFIER_ID, "version": {"custody-policy": custody_policy::ENGINE}},
            "timeVerified": at.to_string(),
            "resourceUri": format!("custody:release/{release}?promotion={promotion}"),
            "policy": {"uri": format!("custody:policy/{policy_digest}"), "digest": {"sha256": policy_hex}},
            "inputAttestations": provenance.iter().map(|(artifact, envelope)| json!({
                "uri": format!("custody:provenance/{artifact}"),
                "digest": {"sha256": envelope.hex()},
            })).collect::<Vec<_>>(),
            "verificationResult": if passed { "PASSED" } else { "FAILED" },
            "verifiedLevels": match (passed, broke_glass) {
                (false, _) => vec![],
                (true, false) => vec!["SLSA_BUILD_LEVEL_2"],
                (true, true) => vec![BREAK_GLASS_LEVEL],
            },
            "slsaVersion": "1.0",
        }),
    )?;
    dsse_sign(signer, &statement)
}

/// SHA-256 of an envelope's JSON, as custody refers to stored envelopes.
pub fn envelope_digest(envelope: &Envelope) -> Digest {
    sha256(envelope.to_json().as_bytes())
}

/// The SHA-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::sha256(sha2::Sha256::digest(bytes).into())
}
