//! Content digests: the identity of an artifact.
//!
//! The text form is the OCI one, `sha256:<64 lowercase hex>` (or `sha512:<128 hex>`);
//! inside in-toto statements the same value appears as a DigestSet entry
//! `{"sha256": "<hex>"}`. Both spellings go through [`Digest::from_parts`], so a digest
//! is checked the same way wherever it enters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest digest's length in bytes (SHA-512).
const MAX_DIGEST_BYTES: usize = 64;

/// A hash algorithm custody accepts as an artifact identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256, the default and the one custody computes itself.
    Sha256,
    /// SHA-512, accepted where another tool produced it.
    Sha512,
}

impl DigestAlgorithm {
    /// The name used in `alg:hex` strings and in-toto DigestSets.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// The length of the raw digest in bytes.
    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    /// Looks an algorithm up by its DigestSet name.
    pub fn from_name(name: &str) -> Result<Self, DigestError> {
        match name {
            "sha256" => Ok(DigestAlgorithm::Sha256),
            "sha512" => Ok(DigestAlgorithm::Sha512),
            other => Err(DigestError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Why a digest string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string has no `alg:` prefix.
    #[error("digest {0:?} has no algorithm prefix: expected `sha256:<64 lowercase hex>`")]
    MissingAlgorithm(String),
    /// The algorithm is not one custody accepts.
    #[error("digest algorithm {0:?} is not supported: use sha256 or sha512")]
    UnknownAlgorithm(String),
    /// The hex part has the wrong length for its algorithm.
    #[error("{algorithm} digest must be {expected} hex characters, got {actual}")]
    WrongLength {
        /// The algorithm named in the digest.
        algorithm: &'static str,
        /// Hex characters expected.
        expected: usize,
        /// Hex characters found.
        actual: usize,
    },
    /// The hex part has a character outside `0-9a-f`.
    #[error("digest hex must be lowercase 0-9a-f, found {0:?}")]
    NotLowercaseHex(char),
}

/// A content digest: an algorithm and the raw hash bytes of the right length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    // Invariant: bytes.len() == algorithm.output_len() (≤ MAX_DIGEST_BYTES).
    bytes: Box<[u8]>,
}

impl Digest {
    /// Builds a SHA-256 digest from its 32 raw bytes.
    pub fn sha256(bytes: [u8; 32]) -> Self {
        Digest {
            algorithm: DigestAlgorithm::Sha256,
            bytes: Box::new(bytes),
        }
    }

    /// Builds a digest from an algorithm name and lowercase hex, the two halves of a
    /// DigestSet entry.
    pub fn from_parts(algorithm: &str, hex_value: &str) -> Result<Self, DigestError> {
        let algorithm = DigestAlgorithm::from_name(algorithm)?;
        let expected = algorithm.output_len() * 2;
        // Check characters before length so that "E3B0" says "lowercase", the more
        // useful complaint.
        // Bytes first (every digest a ledger holds is read this way); the character only
        // for the message.
        if hex_value
            .bytes()
            .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            let c = hex_value
                .chars()
                .find(|c| !matches!(c, '0'..='9' | 'a'..='f'))
                .unwrap_or('?');
            return Err(DigestError::NotLowercaseHex(c));
        }
        if hex_value.len() != expected {
            return Err(DigestError::WrongLength {
                algorithm: algorithm.name(),
                expected,
                actual: hex_value.len(),
            });
        }
        let mut bytes = vec![0; expected / 2].into_boxed_slice();
        base16ct::lower::decode(hex_value, &mut bytes)
            .map_err(|_| DigestError::NotLowercaseHex('?'))?;
        Ok(Digest { algorithm, bytes })
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The lowercase hex of the hash, without the algorithm prefix.
    pub fn hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// Calls `f` with the lowercase hex of the hash, written into a buffer on the stack:
    /// [`Display`](fmt::Display) runs on every deploy-gate request, and `hex::encode`
    /// builds its string a character at a time. `None` only if the invariant on the
    /// length broke.
    fn with_hex<R>(&self, f: impl FnOnce(&str) -> R) -> Option<R> {
        let mut buffer = [0u8; 2 * MAX_DIGEST_BYTES];
        let out = buffer.get_mut(..2 * self.bytes.len())?;
        hex::encode_to_slice(&self.bytes, out).ok()?;
        std::str::from_utf8(out).ok().map(f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, value) = s
            .split_once(':')
            .ok_or_else(|| DigestError::MissingAlgorithm(s.to_owned()))?;
        Digest::from_parts(alg, value)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm.name())?;
        f.write_str(":")?;
        self.with_hex(|hex| f.write_str(hex)).ok_or(fmt::Error)?
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed from the text where it lies, without copying it into a String first.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a digest as ALGORITHM:HEX")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Digest, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_sha256() {
        let d: Digest = format!("sha256:{EMPTY}").parse().unwrap();
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(d.as_bytes().len(), 32);
    }

    #[test]
    fn parses_sha512() {
        let hex = "ab".repeat(64);
        let d: Digest = format!("sha512:{hex}").parse().unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha512);
        assert_eq!(d.to_string(), format!("sha512:{hex}"));
        assert_eq!(d.hex(), hex);
    }

    #[test]
    fn rejects_each_kind_of_bad_digest() {
        let cases = [
            (EMPTY.to_owned(), "no algorithm prefix"),
            (format!("md5:{EMPTY}"), "not supported"),
            (
                format!("sha256:{}", &EMPTY[..63]),
                "must be 64 hex characters, got 63",
            ),
            (format!("sha256:{EMPTY}00"), "got 66"),
            (format!("sha256:{}", EMPTY.to_uppercase()), "lowercase"),
            (format!("sha256: {}", &EMPTY[1..]), "lowercase"),
            (format!("sha512:{EMPTY}"), "must be 128"),
        ];
        for (input, want) in cases {
            let err = input.parse::<Digest>().unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn serde_uses_the_text_form_and_validates() {
        let d: Digest = serde_json::from_str(&format!("\"sha256:{EMPTY}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"sha256:{EMPTY}\"")
        );
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }

    proptest! {
        #[test]
        fn text_form_round_trips(bytes in any::<[u8; 32]>()) {
            let d = Digest::sha256(bytes);
            prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d.clone());
            prop_assert_eq!(d.hex(), hex::encode(bytes));
        }
    }
}
