//! in-toto Statement v1: what a signed attestation says, and about which artifacts.
//!
//! A [`Statement`] can only be built or parsed through constructors that enforce the
//! in-toto v1 rules custody relies on: the `_type` URI, at least one subject, each
//! subject named with a non-empty DigestSet of lowercase hex of the right length, a
//! non-empty `predicateType`, and a non-empty predicate object.

use std::collections::BTreeMap;

use custody_model::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// The `_type` of every in-toto v1 statement.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";

/// The DSSE `payloadType` of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Hex lengths of the DigestSet algorithms in-toto names; other names are allowed by the
/// spec and must still be lowercase hex. (The git object names have no one length: a
/// repository hashes with SHA-1 or SHA-256.)
fn expected_hex_len(algorithm: &str) -> Option<usize> {
    match algorithm {
        "sha256" | "sha512_256" | "sha3_256" => Some(64),
        "sha224" | "sha512_224" | "sha3_224" => Some(56),
        "sha384" | "sha3_384" => Some(96),
        "sha512" | "sha3_512" => Some(128),
        _ => None,
    }
}

/// An in-toto DigestSet: algorithm name → lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DigestSet(BTreeMap<String, String>);

impl DigestSet {
    /// Checks a DigestSet: non-empty, each value lowercase hex of the algorithm's length.
    pub fn new(entries: BTreeMap<String, String>) -> Result<Self, Error> {
        if entries.is_empty() {
            return Err(Error::Statement("subject digest set is empty".into()));
        }
        for (alg, value) in &entries {
            if alg.is_empty() {
                return Err(Error::Statement("digest algorithm name is empty".into()));
            }
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(Error::Statement(format!(
                    "{alg} digest {value:?} is not lowercase hex"
                )));
            }
            if let Some(want) = expected_hex_len(alg)
                && value.len() != want
            {
                return Err(Error::Statement(format!(
                    "{alg} digest must be {want} hex characters, got {}",
                    value.len()
                )));
            }
        }
        Ok(DigestSet(entries))
    }

    /// The DigestSet holding one digest.
    pub fn from_digest(digest: &Digest) -> Self {
        DigestSet(BTreeMap::from([(
            digest.algorithm().name().to_owned(),
            digest.hex(),
        )]))
    }

    /// The entries, by algorithm name.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The SHA-256 (or else SHA-512) entry as a custody [`Digest`], if present.
    pub fn digest(&self) -> Option<Digest> {
        ["sha256", "sha512"]
            .iter()
            .find_map(|alg| Digest::from_parts(alg, self.0.get(*alg)?).ok())
    }
}

impl<'de> Deserialize<'de> for DigestSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DigestSet::new(BTreeMap::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A statement subject: an artifact named and pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The artifact's name (a path, an image reference, …).
    pub name: String,
    /// Its digests.
    pub digest: DigestSet,
}

impl Subject {
    /// A subject named `name` with one digest.
    pub fn new(name: impl Into<String>, digest: &Digest) -> Result<Self, Error> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::Statement("subject name is empty".into()));
        }
        Ok(Subject {
            name,
            digest: DigestSet::from_digest(digest),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Value,
}

/// An in-toto Statement v1 that satisfies the rules above.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    subjects: Vec<Subject>,
    predicate_type: String,
    predicate: Map<String, Value>,
}

impl Statement {
    /// Builds a statement, checking it.
    pub fn new(
        subjects: Vec<Subject>,
        predicate_type: impl Into<String>,
        predicate: Value,
    ) -> Result<Self, Error> {
        let predicate_type = predicate_type.into();
        if subjects.is_empty() {
            return Err(Error::Statement("statement has no subject".into()));
        }
        if let Some(s) = subjects.iter().find(|s| s.name.is_empty()) {
            return Err(Error::Statement(format!(
                "subject {:?} has an empty name",
                s.digest
            )));
        }
        if predicate_type.is_empty() || !predicate_type.contains(':') {
            return Err(Error::Statement(format!(
                "predicateType {predicate_type:?} is not a URI"
            )));
        }
        let predicate = match predicate {
            Value::Object(map) if !map.is_empty() => map,
            Value::Object(_) => return Err(Error::Statement("predicate is empty".into())),
            other => {
                return Err(Error::Statement(format!(
                    "predicate must be a JSON object, got {}",
                    match other {
                        Value::Null => "null",
                        Value::Array(_) => "an array",
                        Value::String(_) => "a string",
                        Value::Number(_) => "a number",
                        Value::Bool(_) => "a boolean",
                        Value::Object(_) => "an object",
                    }
                )));
            }
        };
        Ok(Statement {
            subjects,
            predicate_type,
            predicate,
        })
    }

    /// Parses and checks statement JSON (typically a verified DSSE payload).
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| Error::Statement(format!("not an in-toto statement: {e}")))?;
        if wire.type_ != STATEMENT_TYPE_V1 {
            return Err(Error::Statement(format!(
                "_type is {:?}, expected {STATEMENT_TYPE_V1:?}",
                wire.type_
            )));
        }
        Statement::new(wire.subject, wire.predicate_type, wire.predicate)
    }

    /// The statement as compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            type_: STATEMENT_TYPE_V1.to_owned(),
            subject: self.subjects.clone(),
            predicate_type: self.predicate_type.clone(),
            predicate: Value::Object(self.predicate.clone()),
        };
        // Serialising strings, maps and JSON values cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The subjects.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    /// The predicate type URI.
    pub fn predicate_type(&self) -> &str {
        &self.predicate_type
    }

    /// The predicate.
    pub fn predicate(&self) -> &Map<String, Value> {
        &self.predicate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest() -> Digest {
        Digest::sha256([0xab; 32])
    }

    #[test]
    fn round_trips_through_json() {
        let st = Statement::new(
            vec![Subject::new("app.tar", &digest()).unwrap()],
            "https://slsa.dev/provenance/v1",
            json!({"buildDefinition": {"buildType": "x"}}),
        )
        .unwrap();
        let back = Statement::from_json(&st.to_json()).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.predicate_type(), "https://slsa.dev/provenance/v1");
        assert_eq!(
            Value::Object(back.predicate().clone()),
            json!({"buildDefinition": {"buildType": "x"}})
        );
        assert_eq!(back.subjects()[0].digest.digest(), Some(digest()));
    }

    #[test]
    fn rejects_each_broken_rule() {
        let hex = "ab".repeat(32);
        let cases = [
            (
                json!({"_type": "https://in-toto.io/Statement/v0.1", "subject": [{"name": "a", "digest": {"sha256": hex}}], "predicateType": "p:x", "predicate": {"a": 1}}),
                "_type",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [], "predicateType": "p:x", "predicate": {"a": 1}}),
                "no subject",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [{"name": "a", "digest": {}}], "predicateType": "p:x", "predicate": {"a": 1}}),
                "empty",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [{"name": "a", "digest": {"sha256": hex.to_uppercase()}}], "predicateType": "p:x", "predicate": {"a": 1}}),
                "lowercase hex",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [{"name": "a", "digest": {"sha256": "abcd"}}], "predicateType": "p:x", "predicate": {"a": 1}}),
                "64 hex",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [{"name": "a", "digest": {"sha256": hex}}], "predicateType": "", "predicate": {"a": 1}}),
                "not a URI",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [{"name": "a", "digest": {"sha256": hex}}], "predicateType": "p:x", "predicate": {}}),
                "predicate is empty",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [{"name": "a", "digest": {"sha256": hex}}], "predicateType": "p:x", "predicate": [1]}),
                "an array",
            ),
            (
                json!({"_type": STATEMENT_TYPE_V1, "subject": [{"name": "", "digest": {"sha256": hex}}], "predicateType": "p:x", "predicate": {"a": 1}}),
                "empty name",
            ),
        ];
        for (input, want) in cases {
            let err = Statement::from_json(input.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{input}: {err} lacks {want:?}");
        }
    }

    /// Each named algorithm's digest has its length (a truncated SHA-512 is not a SHA-384);
    /// other names, git's among them, are any lowercase hex.
    #[test]
    fn digest_lengths_follow_the_algorithm() {
        for (alg, len) in [
            ("sha256", 64),
            ("sha3_256", 64),
            ("sha224", 56),
            ("sha512_224", 56),
            ("sha384", 96),
            ("sha3_384", 96),
            ("sha512", 128),
            ("sha3_512", 128),
        ] {
            for wrong in [len - 2, len + 2, 40] {
                let set = BTreeMap::from([(alg.to_owned(), "a".repeat(wrong))]);
                let e = DigestSet::new(set).unwrap_err();
                assert!(
                    e.to_string().contains(&format!("must be {len} hex")),
                    "{alg}: {e}"
                );
            }
            let set = BTreeMap::from([(alg.to_owned(), "a".repeat(len))]);
            assert_eq!(DigestSet::new(set.clone()).unwrap().entries(), &set);
        }
        for alg in ["sha1", "gitCommit", "gitBlob", "blake3"] {
            for len in [40, 64] {
                let set = BTreeMap::from([(alg.to_owned(), "b".repeat(len))]);
                assert_eq!(DigestSet::new(set.clone()).unwrap().entries(), &set);
            }
        }
    }
}
