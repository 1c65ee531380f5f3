//! The ledger's commitment to a confidential rationale: it binds the text kept in state
//! without revealing it, even to someone with a word list.
//!
//! A bare SHA-256 of a short rationale ("ok, CVE-2026-1234 accepted") is reversed by
//! hashing guesses. So each confidential rationale gets 32 random bytes of salt, kept in
//! state beside the text (and hidden with it from whoever may not read it), and the ledger
//! holds `hmac-sha256:HEX`, HMAC-SHA-256 (RFC 2104) keyed with the salt over the text. An
//! auditor given the record opens it by computing the same HMAC ([`opens`]).

use hmac::{Hmac, Mac};
use rand_core::RngCore;
use sha2::Sha256;

/// The prefix naming the construction.
const SCHEME: &str = "hmac-sha256:";

/// A fresh salt: 32 random bytes, hex.
pub(crate) fn new_salt() -> String {
    let mut salt = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut salt);
    hex::encode(salt)
}

/// The commitment to `text` under `salt_hex` (`None` if the salt is not hex).
pub fn commit(salt_hex: &str, text: &str) -> Option<String> {
    let salt = hex::decode(salt_hex).ok()?;
    // HMAC takes a key of any length; an error here is impossible, but never panic.
    let mut mac = Hmac::<Sha256>::new_from_slice(&salt).ok()?;
    mac.update(text.as_bytes());
    Some(format!(
        "{SCHEME}{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Whether `commitment` (from the ledger) is the commitment to `text` under `salt_hex`
/// (from state).
pub fn opens(commitment: &str, salt_hex: &str, text: &str) -> bool {
    commit(salt_hex, text)
        .is_some_and(|c| crate::identity::same(c.as_bytes(), commitment.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commitment_opens_with_its_salt_only_and_differs_per_salt() {
        let text = "ok, CVE-2026-1234 accepted";
        let (a, b) = (new_salt(), new_salt());
        let ca = commit(&a, text).unwrap();
        assert!(
            ca.starts_with("hmac-sha256:") && ca.len() == 12 + 64,
            "{ca}"
        );
        assert!(opens(&ca, &a, text));
        assert!(!opens(&ca, &b, text), "another salt");
        assert!(!opens(&ca, &a, "ok"), "another text");
        assert_ne!(commit(&b, text).unwrap(), ca, "the same text, another salt");
        // The bare digest a word list reverses is not what is committed.
        let bare = crate::attestations::sha256(text.as_bytes()).hex();
        assert!(!ca.contains(&bare));
        assert!(commit("not hex", text).is_none());
    }

    #[test]
    fn the_construction_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let c = commit(&hex::encode("Jefe"), "what do ya want for nothing?").unwrap();
        assert_eq!(
            c,
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
