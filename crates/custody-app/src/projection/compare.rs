//! How a stored record differs from what the ledger says it holds: one line per field
//! that differs, naming the field, what the row holds and what the ledger says. Only what
//! the ledger states is compared (a field it does not record is not a difference).

use std::fmt::Debug;

use crate::attestations::envelope_digest;
use crate::identity::TokenRecord;
use crate::records::{
    Certification, CertificationRecord, EnvironmentRecord, PolicyRecord, ReleaseRecord, kind,
};

use super::guard::Projected;
use super::{Expected, ExpectedCertification, ExpectedPolicy, Projection};

/// The differences found so far in one record. Field names are formatted only for a field
/// that differs: a server compares records on every hot read, and they agree.
#[derive(Default)]
pub(super) struct Fields {
    lines: Vec<String>,
    /// Put before each field's name (the part of the record being compared).
    prefix: &'static str,
}

impl Fields {
    fn field<T: PartialEq + Debug + ?Sized>(&mut self, name: &str, stored: &T, ledger: &T) {
        if stored != ledger {
            self.lines.push(format!(
                "{}{name} is {stored:?}, the ledger says {ledger:?}",
                self.prefix
            ));
        }
    }

    fn known<T: PartialEq + Debug>(&mut self, name: &str, stored: &T, ledger: &Option<T>) {
        if let Some(ledger) = ledger {
            self.field(name, stored, ledger);
        }
    }

    pub(super) fn into_lines(self) -> Vec<String> {
        self.lines
    }
}

impl Projected for TokenRecord {
    fn expected(p: &Projection, _: &str, key: &str) -> Option<u64> {
        p.tokens.get(key).map(|e| e.index)
    }

    fn differences(&self, p: &Projection, _: &str, key: &str) -> Vec<String> {
        let Some(Expected { value: e, .. }) = p.tokens.get(key) else {
            return Vec::new();
        };
        let mut f = Fields::default();
        f.field("id", self.id.as_str(), key);
        f.field("principal", &self.principal, &e.principal);
        f.field("description", &self.description, &e.description);
        f.field("created_by", &self.created_by, &e.created_by);
        f.field("created_at", &self.created_at, &e.created_at);
        f.field("expires_at", &self.expires_at, &e.expires_at);
        f.known("secret_digest", &self.secret_digest, &e.secret_digest);
        f.field("revoked_at", &self.revoked_at, &e.revoked_at);
        f.field("parent", &self.parent, &e.parent);
        f.known("personal", &self.personal, &e.personal);
        f.into_lines()
    }
}

/// The policy in force (`policy/current`) and each version (`policy-version/DIGEST`).
impl Projected for PolicyRecord {
    fn expected(p: &Projection, kind: &str, key: &str) -> Option<u64> {
        expected_policy(p, kind, key).map(|e| e.index)
    }

    fn differences(&self, p: &Projection, kind: &str, key: &str) -> Vec<String> {
        let Some(Expected { value: e, .. }) = expected_policy(p, kind, key) else {
            return Vec::new();
        };
        policy_fields(self, e)
    }
}

fn expected_policy<'p>(
    p: &'p Projection,
    kind: &str,
    key: &str,
) -> Option<&'p Expected<ExpectedPolicy>> {
    match kind {
        kind::POLICY if key == "current" => p.policy.as_ref(),
        kind::POLICY_VERSION => p.policy_versions.get(key),
        _ => None,
    }
}

fn policy_fields(stored: &PolicyRecord, e: &ExpectedPolicy) -> Vec<String> {
    let mut f = Fields::default();
    f.field("digest", &stored.digest, &e.digest);
    // The bundle is what the digest names: its files must hash to the ledger's digest.
    f.field("the bundle's digest", &stored.bundle.digest(), &e.digest);
    f.field("applied_at", &stored.applied_at, &e.applied_at);
    f.field("applied_by", &stored.applied_by, &e.applied_by);
    f.into_lines()
}

/// `policy-digest/current`: the digest alone, read by every request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct PolicyDigest(pub(crate) String);

impl Projected for PolicyDigest {
    fn expected(p: &Projection, _: &str, key: &str) -> Option<u64> {
        p.policy
            .as_ref()
            .filter(|_| key == "current")
            .map(|e| e.index)
    }

    fn differences(&self, p: &Projection, _: &str, _: &str) -> Vec<String> {
        let mut f = Fields::default();
        if let Some(e) = &p.policy {
            f.field("digest", &self.0, &e.value.digest);
        }
        f.into_lines()
    }
}

impl Projected for ReleaseRecord {
    fn expected(p: &Projection, _: &str, key: &str) -> Option<u64> {
        p.releases.get(key).map(|e| e.index)
    }

    fn differences(&self, p: &Projection, _: &str, key: &str) -> Vec<String> {
        let Some(Expected { value: e, .. }) = p.releases.get(key) else {
            return Vec::new();
        };
        let mut f = Fields::default();
        f.field("name@version", self.id().as_str(), key);
        f.field("digest", &self.digest, &e.digest);
        let artifacts: Vec<_> = self.artifacts.iter().map(|a| a.digest.clone()).collect();
        f.field("artifacts", &artifacts, &e.artifacts);
        f.field(
            "the manifest's digest",
            &envelope_digest(&self.manifest),
            &e.manifest_digest,
        );
        f.field("created_by", &self.created_by, &e.created_by);
        f.field("created_at", &self.created_at, &e.created_at);
        f.into_lines()
    }
}

impl Projected for EnvironmentRecord {
    fn expected(p: &Projection, _: &str, key: &str) -> Option<u64> {
        p.environments.get(key).map(|e| e.index)
    }

    fn differences(&self, p: &Projection, _: &str, key: &str) -> Vec<String> {
        let Some(Expected { value: e, .. }) = p.environments.get(key) else {
            return Vec::new();
        };
        let mut f = Fields::default();
        f.field("name", self.name.as_str(), key);
        match &self.certified {
            None => f.lines.push(format!(
                "nothing is certified in it, the ledger says {} is",
                e.release
            )),
            Some(c) => certification_fields(&mut f, "certified.", c, e),
        }
        f.into_lines()
    }
}

impl Projected for CertificationRecord {
    fn expected(p: &Projection, _: &str, key: &str) -> Option<u64> {
        p.standings.get(key).map(|e| e.index)
    }

    fn differences(&self, p: &Projection, _: &str, key: &str) -> Vec<String> {
        let Some(Expected { value: e, .. }) = p.standings.get(key) else {
            return Vec::new();
        };
        let mut f = Fields::default();
        f.field(
            "environment/release",
            CertificationRecord::key(&self.environment, &self.certification.release).as_str(),
            key,
        );
        certification_fields(
            &mut f,
            "certification.",
            &self.certification,
            &e.certification,
        );
        f.field(
            "first_certified_at",
            &self.first_certified_at,
            &e.first_certified_at,
        );
        f.field("failed", &self.failed, &e.failed);
        f.into_lines()
    }
}

fn certification_fields(
    f: &mut Fields,
    prefix: &'static str,
    stored: &Certification,
    e: &ExpectedCertification,
) {
    let outer = std::mem::replace(&mut f.prefix, prefix);
    f.field("release", &stored.release, &e.release);
    f.known("release_digest", &stored.release_digest, &e.release_digest);
    f.field("promotion", &stored.promotion, &e.promotion);
    f.known("decision", &stored.decision, &e.decision);
    f.field("at", &stored.at, &e.at);
    f.field("by_rollback", &stored.by_rollback, &e.by_rollback);
    f.prefix = outer;
}

/// `keyring/current`: every rotation and revocation, exactly as the ledger recorded them.
impl Projected for crate::keyring::KeyringRecord {
    fn expected(p: &Projection, _: &str, key: &str) -> Option<u64> {
        p.keyring
            .as_ref()
            .filter(|_| key == "current")
            .map(|e| e.index)
    }

    fn differences(&self, p: &Projection, _: &str, key: &str) -> Vec<String> {
        let Some(Expected { value: e, .. }) = p.keyring.as_ref().filter(|_| key == "current")
        else {
            return Vec::new();
        };
        let mut f = Fields::default();
        f.field("rotations", &self.rotations, &e.rotations);
        f.field("revocations", &self.revocations, &e.revocations);
        f.into_lines()
    }
}
