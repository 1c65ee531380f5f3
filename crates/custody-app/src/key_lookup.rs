//! Naming a key of the keyring the way people copy it: its whole id (64 hex digits), or a
//! prefix of at least [`MIN_KEY_PREFIX`] digits that names one key only (`custody history`
//! and the dashboard show 12). Pure: it reads the keyring it is given and nothing else.
//!
//! What a prefix resolves to is always recorded by its whole id: a revocation names the
//! key it revoked, never the digits someone typed.

use crate::AppError;
use crate::keyring::{KeyEntry, Keyring};

/// The fewest hex digits of a key id that name a key (32 bits: a collision by chance
/// among a keyring's keys is unlikely, and one made on purpose is refused as ambiguous).
pub const MIN_KEY_PREFIX: usize = 8;

/// The length of a whole key id (hex SHA-256 of the key's SPKI DER).
const KEY_ID_LEN: usize = 64;

/// Candidates an ambiguous prefix names at most in its error.
const MAX_NAMED: usize = 10;

/// Why a key id (or prefix) names no one key of the keyring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLookupError {
    /// Not hex, or longer than a key id.
    #[error(
        "{given} is not a key id: a key id is {KEY_ID_LEN} hex digits (the first {MIN_KEY_PREFIX} or more will do); `custody key list` shows them"
    )]
    NotAKeyId {
        /// What was given, quoted and shortened for the message.
        given: String,
    },
    /// Hex, but fewer than [`MIN_KEY_PREFIX`] digits.
    #[error(
        "key id prefix {given:?} is too short: give at least {MIN_KEY_PREFIX} hex digits of the key id; `custody key list` shows them"
    )]
    TooShort {
        /// The prefix.
        given: String,
    },
    /// No key of the keyring has that id or prefix.
    #[error("no key {given} in the keyring; `custody key list` shows them")]
    Unknown {
        /// The id or prefix.
        given: String,
    },
    /// More than one key starts with the prefix.
    #[error(
        "key id prefix {given} is ambiguous: it names {} keys of the keyring ({}); give more digits",
        .candidates.len(),
        .candidates.iter().take(MAX_NAMED).cloned().collect::<Vec<_>>().join("; ")
    )]
    Ambiguous {
        /// The prefix.
        given: String,
        /// Each key it names: its whole id, name and purpose.
        candidates: Vec<String>,
    },
}

impl From<KeyLookupError> for AppError {
    fn from(e: KeyLookupError) -> AppError {
        match e {
            KeyLookupError::Unknown { .. } => AppError::not_found(e.to_string()),
            _ => AppError::invalid(e.to_string()),
        }
    }
}

impl Keyring {
    /// The one key `given` names: its whole key id, or a prefix of at least
    /// [`MIN_KEY_PREFIX`] hex digits that only one key's id starts with (either case).
    pub fn resolve(&self, given: &str) -> Result<&KeyEntry, KeyLookupError> {
        let given = given.trim();
        if given.len() > KEY_ID_LEN || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
            // Quoted (so an odd character shows as an escape), and shortened: the
            // message must not grow with what was sent.
            let shown: String = given.chars().take(KEY_ID_LEN + 8).collect();
            return Err(KeyLookupError::NotAKeyId {
                given: format!("{shown:?}"),
            });
        }
        let given = given.to_ascii_lowercase();
        if given.len() < MIN_KEY_PREFIX {
            return Err(KeyLookupError::TooShort { given });
        }
        if let Some(exact) = self.get(&given) {
            return Ok(exact);
        }
        // A keyring holds at most thousands of keys: one pass is cheap.
        let mut found = self.entries().filter(|e| e.key_id.starts_with(&given));
        match (found.next(), found.next()) {
            (Some(one), None) => Ok(one),
            (None, _) => Err(KeyLookupError::Unknown { given }),
            (Some(a), Some(b)) => {
                let candidates = [a, b]
                    .into_iter()
                    .chain(found)
                    .map(|e| format!("{} ({}, {})", e.key_id, e.name, e.purpose.describe()))
                    .collect();
                Err(KeyLookupError::Ambiguous { given, candidates })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use custody_crypto::{PrivateKey, Signer as _};
    use custody_policy::Bundle;

    use super::*;

    /// Two Ed25519 seeds whose key ids share their first 9 hex digits (`ffa467b65…`),
    /// found by a birthday search over `u32` seeds.
    const TWINS: [u32; 2] = [89, 42_240];

    fn seeded(n: u32) -> PrivateKey {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        PrivateKey::ed25519_from_seed(&seed).unwrap()
    }

    fn id(key: &PrivateKey) -> String {
        key.public_key().key_id().to_string()
    }

    /// A keyring of one policy version trusting the twins as alice's and bob's approval
    /// keys, and a release key.
    fn ring() -> (Keyring, [PrivateKey; 3]) {
        let keys = [seeded(TWINS[0]), seeded(TWINS[1]), seeded(7)];
        let mut b = Bundle::default();
        b.files.insert(
            "custody.toml".into(),
            "version = 1\n[roles]\napprover = [\"alice\", \"bob\"]\n\
             [[release_key]]\npath = \"keys/release.pub\"\nname = \"release signer\"\n\
             [[person_key]]\nprincipal = \"alice\"\npath = \"keys/alice.pub\"\n\
             [[person_key]]\nprincipal = \"bob\"\npath = \"keys/bob.pub\"\n\
             [[environment]]\nname = \"prod\"\n"
                .into(),
        );
        for (file, key) in ["keys/alice.pub", "keys/bob.pub", "keys/release.pub"]
            .into_iter()
            .zip(&keys)
        {
            b.files.insert(file.into(), key.public_key().to_pem());
        }
        let policy = custody_policy::compile(&b).unwrap();
        let at = "2026-11-10T09:00:00Z".parse().unwrap();
        let ring = Keyring::build(&[(0, at, &policy)], &Default::default());
        (ring, keys)
    }

    #[test]
    fn the_twins_share_nine_digits() {
        let (a, b) = (id(&seeded(TWINS[0])), id(&seeded(TWINS[1])));
        assert_eq!(a[..9], b[..9]);
        assert_ne!(a[..10], b[..10]);
    }

    #[test]
    fn a_whole_id_or_a_unique_prefix_names_the_key() {
        let (ring, [alice, bob, release]) = ring();
        for key in [&alice, &bob, &release] {
            let whole = id(key);
            assert_eq!(ring.resolve(&whole).unwrap().key_id, whole);
        }
        // Ten digits tell the twins apart; a release key's twelve (as history prints
        // them), in upper case, with the spaces of a paste.
        assert_eq!(ring.resolve(&id(&alice)[..10]).unwrap().key_id, id(&alice));
        assert_eq!(ring.resolve(&id(&bob)[..10]).unwrap().key_id, id(&bob));
        let pasted = format!(" {} ", id(&release)[..12].to_ascii_uppercase());
        assert_eq!(ring.resolve(&pasted).unwrap().key_id, id(&release));
    }

    #[test]
    fn an_ambiguous_prefix_is_refused_naming_the_candidates() {
        let (ring, [alice, bob, _]) = ring();
        for digits in [8, 9] {
            match ring.resolve(&id(&alice)[..digits]) {
                Err(e @ KeyLookupError::Ambiguous { .. }) => {
                    let m = e.to_string();
                    assert!(
                        m.contains("ambiguous")
                            && m.contains("2 keys")
                            && m.contains(&id(&alice))
                            && m.contains(&id(&bob))
                            && m.contains("alice")
                            && m.contains("give more digits"),
                        "{m}"
                    );
                    assert!(matches!(AppError::from(e), AppError::Invalid(_)));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_short_a_foreign_or_an_unknown_id_names_no_key() {
        let (ring, [alice, ..]) = ring();
        match ring.resolve(&id(&alice)[..7]) {
            Err(e @ KeyLookupError::TooShort { .. }) => {
                assert!(e.to_string().contains("at least 8 hex digits"), "{e}");
                assert!(matches!(AppError::from(e), AppError::Invalid(_)));
            }
            other => panic!("{other:?}"),
        }
        for bad in ["release-signer", "ffa467b6\u{202E}", &"a".repeat(65)] {
            match ring.resolve(bad) {
                Err(e @ KeyLookupError::NotAKeyId { .. }) => {
                    let m = e.to_string();
                    assert!(
                        m.contains("is not a key id") && !m.contains('\u{202E}'),
                        "{m}"
                    );
                    assert!(m.len() < 300, "{m}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        // Hex no key's id starts with (the keys are seeded: the answer is fixed).
        let unknown = ["00000000", "11111111"]
            .into_iter()
            .find(|p| ring.entries().all(|e| !e.key_id.starts_with(p)))
            .unwrap();
        match ring.resolve(unknown) {
            Err(e @ KeyLookupError::Unknown { .. }) => {
                assert_eq!(
                    e.to_string(),
                    format!("no key {unknown} in the keyring; `custody key list` shows them")
                );
                assert!(matches!(AppError::from(e), AppError::NotFound(_)));
            }
            other => panic!("{other:?}"),
        }
        // A whole id no key has is unknown too.
        assert!(matches!(
            ring.resolve(&"0".repeat(64)),
            Err(KeyLookupError::Unknown { .. })
        ));
    }
}
