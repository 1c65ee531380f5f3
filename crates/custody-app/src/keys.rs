//! The keys the policy in force trusts, by name (see [`custody_policy::NamedKey`]), with
//! how long each has been trusted: since the oldest policy version of the unbroken run of
//! versions, up to the one in force, whose bundle holds it.
//!
//! A bounded read: the newest [`POLICY_VERSIONS_SCANNED`] `policy.applied` events from the
//! ledger's index; a key in all of them has been trusted at least since the oldest.

use custody_crypto::PublicKey;
use custody_model::Timestamp;
use custody_policy::NamedKey;
use custody_store::{Store, search};
use serde::Serialize;

use crate::app::App;
use crate::events::EventBody;
use crate::{AppResult, HistoryEntry};

/// Policy versions read back at most to date the keys.
pub const POLICY_VERSIONS_SCANNED: u64 = 100;

/// A key the policy in force trusts, by name, and since when.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedKey {
    /// What it is for, what the policy calls it, who holds it, its file.
    pub key: NamedKey,
    /// When the policy first trusted it, as far as the versions read tell (`None`: no
    /// recorded version holds it, as for a policy put in force before versions were
    /// recorded with their files).
    pub since: Option<Since>,
}

/// When a key was first trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Since {
    /// When the version that first held it was applied.
    pub at: Timestamp,
    /// Whether every version read held it (it may be older still).
    pub at_least: bool,
}

/// The key ids of the public keys among a bundle's files (the PEM files; the policy text
/// and anything else is skipped).
fn key_ids(files: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    files
        .values()
        .filter(|text| text.contains("-----BEGIN PUBLIC KEY-----"))
        .filter_map(|pem| PublicKey::from_pem(pem).ok())
        .map(|k| k.key_id().to_string())
        .collect()
}

impl<S: Store> App<S> {
    /// Every key the policy in force trusts, by name, with since when.
    pub async fn trusted_keys(&self) -> AppResult<Vec<TrustedKey>> {
        let policy = self.policy().await?;
        let size = self.store.size().await?;
        let applied = self
            .store
            .search(
                &[search::event_type("policy.applied")],
                0,
                size,
                POLICY_VERSIONS_SCANNED,
            )
            .await?;
        let full = applied.len() as u64 == POLICY_VERSIONS_SCANNED;
        // Newest first: (applied at, the key ids in that version).
        let mut versions = Vec::with_capacity(applied.len());
        for entry in applied {
            let entry = HistoryEntry::read(entry)?;
            if let EventBody::PolicyApplied(p) = &entry.event.body {
                versions.push((entry.event.at, key_ids(&p.files)));
            }
        }
        Ok(policy
            .named_keys()
            .iter()
            .map(|key| {
                let held = versions
                    .iter()
                    .take_while(|(_, ids)| ids.contains(&key.key_id))
                    .count();
                let since = (held > 0).then(|| Since {
                    at: versions[held - 1].0,
                    at_least: full && held == versions.len(),
                });
                TrustedKey {
                    key: key.clone(),
                    since,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_crypto::{PrivateKey, Signer as _};

    #[test]
    fn only_public_key_files_count() {
        let key = PrivateKey::ed25519_from_seed(&[3; 32]).unwrap();
        let files = [
            ("custody.toml".to_owned(), "version = 1".to_owned()),
            ("keys/a.pub".to_owned(), key.public_key().to_pem()),
            (
                "keys/broken.pub".to_owned(),
                "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n".to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(key_ids(&files), [key.public_key().key_id().to_string()]);
    }
}
