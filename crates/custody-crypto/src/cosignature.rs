//! C2SP `tlog-cosignature` (Ed25519, version 1): a witness's statement that, as of a time,
//! the checkpoint it signs is the largest consistent tree head it has seen of that log.
//!
//! A cosignature is one more signature line on the checkpoint's signed note:
//!
//! ```text
//! — <witness name> base64(key id (4 bytes) ‖ timestamp (u64, big-endian) ‖ Ed25519 signature)
//! ```
//!
//! where the key id is `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4]` and the signature
//! covers `"cosignature/v1\ntime <timestamp>\n" ‖ <checkpoint body>`. Verifier keys are
//! written as C2SP vkeys, `name+hash+base64(0x04 ‖ key)`.
//!
//! Like [`crate::note::open`], checking cosignatures ignores lines by unknown keys and
//! rejects a note on which a *known* witness's line fails. It reads no clock: whether a
//! timestamp is too far in the future is the caller's question.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::key::PublicKey;
use crate::note::{SIG_PREFIX, check_ed25519, key_text, split};
use crate::signer::{Signer, Verifier};

/// The signature type byte of Ed25519 cosignatures (C2SP signed-note).
const COSIGNATURE_TYPE: u8 = 0x04;
/// The first line of the signed message: domain separation from log signatures.
const HEADER: &str = "cosignature/v1\n";

/// The 4-byte key id: the first bytes of `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)`.
pub fn key_hash(name: &str, ed25519_public: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([COSIGNATURE_TYPE]);
    h.update(ed25519_public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// What a cosigner signs: the header, the time line and the checkpoint body.
pub fn signed_message(body: &str, timestamp: u64) -> String {
    format!("{HEADER}time {timestamp}\n{body}")
}

/// A witness's public key with its name.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    hash: u32,
    key: PublicKey,
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureVerifier({})", self.to_text())
    }
}

impl CosignatureVerifier {
    /// The verifier of witness `name` with Ed25519 `key`.
    pub fn new(name: &str, key: &PublicKey) -> Result<Self, Error> {
        check_ed25519(name, key, "cosignatures")?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            hash: key_hash(name, key.raw_bytes()),
            key: key.clone(),
        })
    }

    /// Parses the vkey `name+hash+base64(0x04 ‖ key)`, checking that the hash matches.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Note(format!("witness key {text:?}: {why}"));
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not of the form name+hash+base64"));
        };
        if hash.len() != 8 {
            return Err(bad("the key hash is not 8 hex digits"));
        }
        let hash = u32::from_str_radix(hash, 16).map_err(|_| bad("the key hash is not hex"))?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| bad("the key is not base64"))?;
        let Some((&COSIGNATURE_TYPE, raw)) = key.split_first() else {
            return Err(bad("not a cosignature (type 0x04) key"));
        };
        let v = CosignatureVerifier::new(name, &PublicKey::ed25519_from_bytes(raw)?)?;
        if v.hash != hash {
            return Err(bad("the key hash does not match the name and key"));
        }
        Ok(v)
    }

    /// The vkey text `name+hash+base64(0x04 ‖ key)`.
    pub fn to_text(&self) -> String {
        key_text(&self.name, self.hash, COSIGNATURE_TYPE, &self.key)
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_hash(&self) -> u32 {
        self.hash
    }
}

/// A cosignature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned, Unix seconds.
    pub timestamp: u64,
    /// The signature line as it appears in the note (without its newline).
    pub line: String,
}

/// Checks the cosignatures that the `witnesses` put on a signed note and returns them (one
/// per witness). Lines by keys not in `witnesses` (the log's own signature among them) are
/// ignored; a known witness's line that does not verify is an error.
pub fn verify(note: &str, witnesses: &[CosignatureVerifier]) -> Result<Vec<Cosignature>, Error> {
    let (text, lines) = split(note)?;
    let mut out: Vec<Cosignature> = Vec::new();
    for line in &lines {
        let Some(w) = witnesses
            .iter()
            .find(|w| w.name == line.name && w.hash == line.key_hash)
        else {
            continue;
        };
        let failed = |why: &str| {
            Error::BadSignature(format!(
                "the cosignature of witness {}+{:08x} {why}",
                w.name, w.hash
            ))
        };
        // timestamp (8 bytes) ‖ Ed25519 signature (64 bytes)
        let Some((stamp, signature)) = line.signature.split_first_chunk::<8>() else {
            return Err(failed("is too short to hold a timestamp"));
        };
        let timestamp = u64::from_be_bytes(*stamp);
        if timestamp > i64::MAX as u64 {
            return Err(failed("has a timestamp past 2^63 - 1"));
        }
        w.key
            .verify(signed_message(text, timestamp).as_bytes(), signature)
            .map_err(|_| failed("does not verify: the checkpoint was altered or forged"))?;
        if !out.iter().any(|c| c.witness == w.name) {
            out.push(Cosignature {
                witness: w.name.clone(),
                timestamp,
                line: line.line.to_owned(),
            });
        }
    }
    Ok(out)
}

/// A witness's key, for cosigning checkpoints (tests and small witnesses).
pub struct CosignatureSigner {
    verifier: CosignatureVerifier,
    signer: Box<dyn Signer>,
}

impl CosignatureSigner {
    /// Cosigns as `name` with `signer`, which must hold an Ed25519 key.
    pub fn new(name: &str, signer: Box<dyn Signer>) -> Result<Self, Error> {
        let verifier = CosignatureVerifier::new(name, signer.public_key())?;
        Ok(CosignatureSigner { verifier, signer })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &CosignatureVerifier {
        &self.verifier
    }

    /// The signature line (ending in a newline) cosigning the checkpoint `body` at
    /// `timestamp` (Unix seconds), to append to the checkpoint's note.
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<String, Error> {
        if timestamp > i64::MAX as u64 {
            return Err(Error::Note(
                "a cosignature's timestamp is at most 2^63 - 1".into(),
            ));
        }
        let sig = self
            .signer
            .sign(signed_message(body, timestamp).as_bytes())?;
        let mut blob = self.verifier.hash.to_be_bytes().to_vec();
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&sig);
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.verifier.name,
            STANDARD.encode(blob)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{self, NoteSigner};
    use crate::{Algorithm, PrivateKey};

    fn witness(name: &str) -> CosignatureSigner {
        CosignatureSigner::new(name, Box::new(PrivateKey::generate(Algorithm::Ed25519))).unwrap()
    }

    fn checkpoint() -> (NoteSigner, String) {
        let log = NoteSigner::new(
            "log.example/custody",
            Box::new(PrivateKey::generate(Algorithm::Ed25519)),
        )
        .unwrap();
        let note = note::sign("log.example/custody\n3\nAAAA\n", &[&log]).unwrap();
        (log, note)
    }

    #[test]
    fn a_cosigned_note_still_opens_for_the_log_and_verifies_for_the_witness() {
        let (log, note) = checkpoint();
        let w = witness("witness.example/w1");
        let body = "log.example/custody\n3\nAAAA\n";
        let cosigned = format!("{note}{}", w.cosign(body, 1_700_000_000).unwrap());
        note::open(&cosigned, &[log.verifier().clone()]).unwrap();
        let found = verify(&cosigned, &[w.verifier().clone()]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].timestamp, 1_700_000_000);
        assert_eq!(found[0].witness, "witness.example/w1");
        // Unknown witnesses are ignored.
        assert!(
            verify(&cosigned, &[witness("other").verifier().clone()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_tampered_body_or_timestamp_is_refused() {
        let (_, note) = checkpoint();
        let w = witness("w1");
        let line = w.cosign("log.example/custody\n3\nAAAA\n", 7).unwrap();
        let tampered = format!("{}{line}", note.replace("\n3\n", "\n4\n"));
        assert!(verify(&tampered, &[w.verifier().clone()]).is_err());
        // A cosignature over another time: flip a bit of the timestamp.
        let (name, b64) = line.trim_end().rsplit_once(' ').unwrap();
        let mut blob = STANDARD.decode(b64).unwrap();
        blob[11] ^= 1;
        let forged = format!("{note}{name} {}\n", STANDARD.encode(blob));
        assert!(verify(&forged, &[w.verifier().clone()]).is_err());
    }

    #[test]
    fn vkeys_round_trip_and_differ_from_log_keys() {
        let w = witness("witness.example/w1");
        let text = w.verifier().to_text();
        assert_eq!(
            &CosignatureVerifier::from_text(&text).unwrap(),
            w.verifier()
        );
        // The same key as a log (0x01) key has another key id.
        let as_log = note::NoteVerifier::new("witness.example/w1", &w.verifier().key).unwrap();
        assert_ne!(as_log.key_hash(), w.verifier().key_hash());
        assert!(CosignatureVerifier::from_text(&as_log.to_text()).is_err());
        assert!(CosignatureVerifier::from_text("w+00000000+AQ==").is_err());
    }

    /// The key id and vkey of a known key, computed independently (Python's hashlib over
    /// `name ‖ "\n" ‖ 0x04 ‖ key`; the key is RFC 8032's first test key).
    #[test]
    fn the_key_id_is_the_c2sp_one() {
        const RFC8032_KEY: &str =
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let key = PublicKey::ed25519_from_bytes(&hex::decode(RFC8032_KEY).unwrap()).unwrap();
        let v = CosignatureVerifier::new("witness.example/w1", &key).unwrap();
        assert_eq!(v.key_hash(), 0xeb76_2cc2);
        assert_eq!(key_hash("witness.example/w1", key.raw_bytes()), 0xeb76_2cc2);
        let vkey = "witness.example/w1+eb762cc2+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";
        assert_eq!(v.to_text(), vkey);
        assert_eq!(v.name(), "witness.example/w1");
        assert_eq!(format!("{v:?}"), format!("CosignatureVerifier({vkey})"));
    }

    /// A line by another key under a known witness's name is not that witness's: ignored,
    /// not refused (a witness's key id is its name *and* key).
    #[test]
    fn a_line_under_a_known_name_by_another_key_is_ignored() {
        let (_, note) = checkpoint();
        let body = "log.example/custody\n3\nAAAA\n";
        let impostor = witness("witness.example/w1");
        let real = witness("witness.example/w1");
        let cosigned = format!("{note}{}", impostor.cosign(body, 7).unwrap());
        assert_eq!(verify(&cosigned, &[real.verifier().clone()]).unwrap(), []);
    }

    /// Two lines by one witness (two times it cosigned) count once.
    #[test]
    fn a_witness_counts_once() {
        let (_, note) = checkpoint();
        let body = "log.example/custody\n3\nAAAA\n";
        let w = witness("w1");
        let cosigned = format!(
            "{note}{}{}",
            w.cosign(body, 7).unwrap(),
            w.cosign(body, 8).unwrap()
        );
        let found = verify(&cosigned, &[w.verifier().clone()]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].timestamp, 7);
    }

    /// Timestamps are at most 2^63 - 1 (C2SP: they fit a signed 64-bit time): the last one
    /// is cosigned and verifies; the next is refused on both sides.
    #[test]
    fn timestamps_end_at_two_to_the_63_minus_one() {
        let (_, note) = checkpoint();
        let body = "log.example/custody\n3\nAAAA\n";
        let w = witness("w1");
        let last = i64::MAX as u64;
        let line = w.cosign(body, last).unwrap();
        let found = verify(&format!("{note}{line}"), &[w.verifier().clone()]).unwrap();
        assert_eq!(found[0].timestamp, last);
        assert!(w.cosign(body, last + 1).is_err());
        // A line past the bound, signed as a cosigner would sign it: refused, saying why.
        let past = last + 1;
        let sig = w
            .signer
            .sign(signed_message(body, past).as_bytes())
            .unwrap();
        let mut blob = w.verifier().key_hash().to_be_bytes().to_vec();
        blob.extend_from_slice(&past.to_be_bytes());
        blob.extend_from_slice(&sig);
        let forged = format!("{note}{SIG_PREFIX}w1 {}\n", STANDARD.encode(blob));
        let e = verify(&forged, &[w.verifier().clone()]).unwrap_err();
        assert!(e.to_string().contains("past 2^63 - 1"), "{e}");
    }
}
