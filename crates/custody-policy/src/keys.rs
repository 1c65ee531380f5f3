//! The signing keys a policy trusts — release keys and builders — compiled from their
//! `[[release_key]]` and `[[builder]]` tables, and every trusted key by name: what it is
//! for, what the policy calls it, who holds it and the bundle file it was read from. The
//! ledger records keys by id (a SHA-256 of the key); people read them by name.
//!
//! A `[[release_key]]` may name itself and its holder:
//!
//! ```toml
//! [[release_key]]
//! path = "keys/release-signer.pub"
//! name = "release signer"      # default: the file's name without `.pub`
//! owner = "rita"               # who holds the private key (a person or a team)
//! expires = "2027-06-30T00:00:00Z"  # optional: nothing it signs from then on counts
//! ```
//!
//! A `[[builder]]` may say `expires` too.
//!
//! A builder is named by its id, a personal key by its person. Names are for people only:
//! no gate reads them, so renaming a key changes nothing a decision depends on.

use std::collections::{BTreeMap, BTreeSet};

use custody_crypto::PublicKey;
use serde::Deserialize;
use toml::Spanned;

use crate::compile::Errors;
use crate::governance::PersonKey;
use crate::policy::Builder;
use crate::repo::RepoPattern;

/// What a trusted key is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPurpose {
    /// Signs release manifests (`[[release_key]]`).
    ReleaseSigner,
    /// Signs a builder's provenance (`[[builder]]`).
    Builder,
    /// A person signs their approvals with it (`[[person_key]]`).
    PersonalApproval,
}

impl KeyPurpose {
    /// Every purpose a policy names keys for.
    pub const ALL: [KeyPurpose; 3] = [
        KeyPurpose::ReleaseSigner,
        KeyPurpose::Builder,
        KeyPurpose::PersonalApproval,
    ];

    /// As written in commands and events: `release-signer`, `builder`, `personal-approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::ReleaseSigner => "release-signer",
            KeyPurpose::Builder => "builder",
            KeyPurpose::PersonalApproval => "personal-approval",
        }
    }

    /// The purpose `text` names (as [`KeyPurpose::as_str`] writes it).
    pub fn parse(text: &str) -> Option<KeyPurpose> {
        KeyPurpose::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// For people: "release signer", "builder", "personal approval" (followed by "key").
    pub fn describe(self) -> &'static str {
        match self {
            KeyPurpose::ReleaseSigner => "release signer",
            KeyPurpose::Builder => "builder",
            KeyPurpose::PersonalApproval => "personal approval",
        }
    }
}

/// A key the policy trusts, by name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamedKey {
    /// Its key id (as the ledger records it).
    pub key_id: String,
    /// What it is for.
    pub purpose: KeyPurpose,
    /// What the policy calls it: a release key's `name` (else its file's name without
    /// `.pub`), a builder's id, a person's principal.
    pub name: String,
    /// Who holds the private key, when the policy says: a release key's `owner`, the
    /// person of a personal key.
    pub owner: Option<String>,
    /// The bundle file it was read from.
    pub file: String,
    /// Its algorithm (`ed25519`, `ecdsa-p256`).
    pub algorithm: String,
    /// When the policy stops trusting it (`expires = "…"`): nothing it signs from then on
    /// counts, and an alert warns before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<custody_model::Timestamp>,
}

/// Longest name or owner a `[[release_key]]` may give.
const MAX_LABEL: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyDoc {
    path: Spanned<String>,
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    owner: Option<Spanned<String>>,
    #[serde(default)]
    expires: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuilderDoc {
    pub(crate) id: Spanned<String>,
    key: Spanned<String>,
    source_repos: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    expires: Option<Spanned<String>>,
}

/// Loads the key file a path names (reporting what is wrong at the path's line).
pub(crate) type LoadKey<'f> = dyn Fn(&Spanned<String>, &mut Errors<'_>) -> Option<PublicKey> + 'f;

/// Release keys and builders, compiled.
pub(crate) struct SigningKeys {
    /// Release keys by key id.
    pub(crate) release_keys: BTreeMap<String, PublicKey>,
    /// Release key file → key id (environments narrow the keys by file).
    pub(crate) release_key_paths: BTreeMap<String, String>,
    pub(crate) builders: Vec<Builder>,
    /// The release keys and builders by name, in the order declared.
    pub(crate) named: Vec<NamedKey>,
}

/// A label the policy gives a key: trimmed, not empty, printable, at most [`MAX_LABEL`]
/// characters.
fn label(value: Option<&Spanned<String>>, what: &str, errors: &mut Errors<'_>) -> Option<String> {
    let value = value?;
    let text = value.get_ref().trim();
    if text.is_empty()
        || text.chars().count() > MAX_LABEL
        || text.chars().any(|c| c.is_control() || crate::invisible(c))
    {
        errors.at(
            value.span(),
            format!("a release key's {what} must be 1 to {MAX_LABEL} printable characters"),
        );
        return None;
    }
    Some(text.to_owned())
}

/// A key's `expires`: an RFC 3339 time.
fn expires(
    value: Option<&Spanned<String>>,
    errors: &mut Errors<'_>,
) -> Option<custody_model::Timestamp> {
    let value = value?;
    match value.get_ref().parse::<custody_model::Timestamp>() {
        Ok(t) => Some(t),
        Err(e) => {
            errors.at(
                value.span(),
                format!(
                    "expires {:?}: {e} (an RFC 3339 time such as 2027-06-30T00:00:00Z)",
                    value.get_ref()
                ),
            );
            None
        }
    }
}

/// `[[release_key]]`s and `[[builder]]`s: each file in the bundle, a builder's key never
/// also a release key (separation of signing duties), every builder with repositories.
pub(crate) fn compile_signing_keys(
    release_docs: &[KeyDoc],
    builder_docs: &[BuilderDoc],
    load: &LoadKey<'_>,
    errors: &mut Errors<'_>,
) -> SigningKeys {
    let mut keys = SigningKeys {
        release_keys: BTreeMap::new(),
        release_key_paths: BTreeMap::new(),
        builders: Vec::new(),
        named: Vec::new(),
    };
    for k in release_docs {
        let name = label(k.name.as_ref(), "name", errors);
        let owner = label(k.owner.as_ref(), "owner", errors);
        let expires = expires(k.expires.as_ref(), errors);
        if let Some(key) = load(&k.path, errors) {
            let path = k.path.get_ref();
            let key_id = key.key_id().to_string();
            keys.named.push(NamedKey {
                key_id: key_id.clone(),
                purpose: KeyPurpose::ReleaseSigner,
                name: name.unwrap_or_else(|| file_stem(path)),
                owner,
                file: path.clone(),
                algorithm: key.algorithm().to_string(),
                expires,
            });
            keys.release_key_paths.insert(path.clone(), key_id.clone());
            keys.release_keys.insert(key_id, key);
        }
    }
    for b in builder_docs {
        if b.source_repos.get_ref().is_empty() {
            errors.at(
                b.source_repos.span(),
                format!(
                    "builder {:?} lists no source repositories it may build",
                    b.id.get_ref()
                ),
            );
        }
        let mut patterns = Vec::new();
        for repo in b.source_repos.get_ref() {
            match RepoPattern::parse(repo.get_ref()) {
                Ok(p) => patterns.push(p),
                Err(e) => errors.at(
                    repo.span(),
                    format!("source repository pattern {:?} {e}", repo.get_ref()),
                ),
            }
        }
        let expires = expires(b.expires.as_ref(), errors);
        if let Some(key) = load(&b.key, errors) {
            let key_id = key.key_id().to_string();
            if keys.release_keys.contains_key(&key_id) {
                errors.at(
                    b.key.span(),
                    "a builder key may not also be a release key (separation of signing duties)",
                );
            }
            keys.named.push(NamedKey {
                key_id: key_id.clone(),
                purpose: KeyPurpose::Builder,
                name: b.id.get_ref().clone(),
                owner: None,
                file: b.key.get_ref().clone(),
                algorithm: key.algorithm().to_string(),
                expires,
            });
            keys.builders.push(Builder {
                id: b.id.get_ref().clone(),
                key_id,
                key,
                source_repos: b
                    .source_repos
                    .get_ref()
                    .iter()
                    .map(|r| r.get_ref().clone())
                    .collect(),
                patterns,
            });
        }
    }
    keys
}

impl SigningKeys {
    /// The key ids of every release key and builder key.
    pub(crate) fn ids(&self) -> BTreeSet<String> {
        self.named.iter().map(|k| k.key_id.clone()).collect()
    }
}

/// The personal keys by name, read from `files` (`[[person_key]]` path by principal).
pub(crate) fn name_person_keys(
    person_keys: &[PersonKey],
    files: &BTreeMap<String, String>,
) -> Vec<NamedKey> {
    person_keys
        .iter()
        .map(|k| NamedKey {
            key_id: k.key_id.clone(),
            purpose: KeyPurpose::PersonalApproval,
            name: k.principal.clone(),
            owner: Some(k.principal.clone()),
            file: files.get(&k.key_id).cloned().unwrap_or_default(),
            algorithm: k.key.algorithm().to_string(),
            expires: None,
        })
        .collect()
}

/// `keys/release-signer.pub` → `release-signer`.
fn file_stem(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_suffix(".pub")
        .or_else(|| name.strip_suffix(".pem"))
        .unwrap_or(name)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_named_after_its_file_when_the_policy_gives_no_name() {
        assert_eq!(file_stem("keys/release-signer.pub"), "release-signer");
        assert_eq!(file_stem("ci.pem"), "ci");
        assert_eq!(file_stem("keys/odd"), "odd");
    }
}
