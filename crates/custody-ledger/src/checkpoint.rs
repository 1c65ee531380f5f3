//! C2SP `tlog-checkpoint`: the signed statement "the log of origin O has size N and root R".
//!
//! ```text
//! <origin>
//! <size, decimal>
//! <root hash, base64>
//! [extension lines…]
//! ```
//!
//! A checkpoint is the body of a signed note ([`custody_crypto::note`]) by the log key,
//! whose key name is the origin. Cosignatures by witnesses are further signature lines
//! that verifiers who do not know them ignore.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use custody_crypto::note::{self, NoteSigner, NoteVerifier};

use crate::hash::{HASH_LEN, Hash};

/// Why a checkpoint was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The body does not follow the tlog-checkpoint format.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The signed note around it failed to verify.
    #[error(transparent)]
    Note(#[from] custody_crypto::Error),
    /// A log-key hand-over does not hold (see [`crate::LogKeys`]).
    #[error("log key hand-over refused: {0}")]
    Handover(String),
}

/// A log's size and root under its origin name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name; also the name of the key that signs its checkpoints.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash of the tree of `size` leaves.
    pub root: Hash,
    /// Optional extension lines, kept verbatim.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body text.
    pub fn to_body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for line in &self.extensions {
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// Parses a note body.
    pub fn from_body(body: &str) -> Result<Self, CheckpointError> {
        let bad = |m: String| CheckpointError::Malformed(m);
        let lines = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("body does not end with a newline".into()))?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("origin line is empty".into()));
        }
        let size_text = lines
            .next()
            .ok_or_else(|| bad("size line is missing".into()))?;
        // Decimal without sign or leading zeros, so one size has exactly one spelling.
        if size_text.is_empty()
            || !size_text.bytes().all(|b| b.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(bad(format!("size {size_text:?} is not a decimal number")));
        }
        let size = size_text
            .parse()
            .map_err(|_| bad(format!("size {size_text:?} does not fit in 64 bits")))?;
        let root_text = lines
            .next()
            .ok_or_else(|| bad("root hash line is missing".into()))?;
        let root_bytes = STANDARD
            .decode(root_text)
            .map_err(|_| bad(format!("root hash {root_text:?} is not base64")))?;
        let root = Hash::try_from(root_bytes.as_slice()).map_err(|_| {
            bad(format!(
                "root hash is {} bytes, want {HASH_LEN}",
                root_bytes.len()
            ))
        })?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line".into()));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint as a note by the log key. The key name must be the origin.
    pub fn sign(&self, log_key: &NoteSigner) -> Result<String, CheckpointError> {
        if log_key.verifier().name() != self.origin {
            return Err(CheckpointError::Malformed(format!(
                "log key is named {:?} but the checkpoint origin is {:?}",
                log_key.verifier().name(),
                self.origin
            )));
        }
        Ok(note::sign(&self.to_body(), &[log_key])?)
    }

    /// Signs the hand-over checkpoint of a log-key rotation: one note, signed by the
    /// retiring key and then by its successor, both named as the origin.
    pub fn sign_handover(
        &self,
        old: &NoteSigner,
        new: &NoteSigner,
    ) -> Result<String, CheckpointError> {
        for key in [old, new] {
            if key.verifier().name() != self.origin {
                return Err(CheckpointError::Malformed(format!(
                    "log key is named {:?} but the checkpoint origin is {:?}",
                    key.verifier().name(),
                    self.origin
                )));
            }
        }
        Ok(note::sign(&self.to_body(), &[old, new])?)
    }

    /// Verifies a signed checkpoint note with the log's verifier key and parses it. The
    /// origin must be the log key's name, so one log's checkpoint cannot pass for another's.
    pub fn open(signed: &str, log_key: &NoteVerifier) -> Result<Self, CheckpointError> {
        let opened = note::open(signed, std::slice::from_ref(log_key))?;
        let cp = Checkpoint::from_body(opened.text())?;
        if cp.origin != log_key.name() {
            return Err(CheckpointError::Malformed(format!(
                "checkpoint origin {:?} is not the log key's name {:?}",
                cp.origin,
                log_key.name()
            )));
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_crypto::{Algorithm, PrivateKey};

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "custody.example/log".into(),
            size: 42,
            root: [7; 32],
            extensions: vec![],
        }
    }

    #[test]
    fn body_round_trips() {
        let mut cp = checkpoint();
        assert_eq!(
            cp.to_body(),
            "custody.example/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        cp.extensions.push("ext line".into());
        assert_eq!(Checkpoint::from_body(&cp.to_body()).unwrap(), cp);
    }

    #[test]
    fn the_empty_log_has_size_zero() {
        let empty = Checkpoint {
            size: 0,
            ..checkpoint()
        };
        assert_eq!(Checkpoint::from_body(&empty.to_body()).unwrap(), empty);
    }

    #[test]
    fn rejects_malformed_bodies() {
        let good = checkpoint().to_body();
        let cases = [
            good.trim_end().to_owned(),
            good.replace("42", "042"),
            good.replace("42", "-1"),
            // Parsed as 42 by Rust's integer parser, but not the one spelling of 42.
            good.replace("42", "+42"),
            good.replace("42", "99999999999999999999"),
            good.replace("Bwc=", "Bw=="),
            good.replace("custody.example/log", ""),
            format!("{good}\n"),
            "origin\n".to_owned(),
        ];
        for bad in cases {
            assert!(Checkpoint::from_body(&bad).is_err(), "accepted {bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bodies_never_panics(body in "(.{0,40}\n){0,5}") {
            let _ = Checkpoint::from_body(&body);
        }
    }

    #[test]
    fn sign_and_open_check_origin_and_key() {
        let key = NoteSigner::new(
            "custody.example/log",
            Box::new(PrivateKey::generate(Algorithm::Ed25519)),
        )
        .unwrap();
        let signed = checkpoint().sign(&key).unwrap();
        assert_eq!(
            Checkpoint::open(&signed, key.verifier()).unwrap(),
            checkpoint()
        );

        let other = NoteSigner::new(
            "other.example/log",
            Box::new(PrivateKey::generate(Algorithm::Ed25519)),
        )
        .unwrap();
        assert!(checkpoint().sign(&other).is_err());
        assert!(Checkpoint::open(&signed, other.verifier()).is_err());
        let tampered = signed.replacen("42", "43", 1);
        assert!(Checkpoint::open(&tampered, key.verifier()).is_err());
    }

    /// The origin check on its own: a note that verifies with the log key but whose body
    /// names another log's origin (signed as a plain note, past `sign`'s own check) is not
    /// this log's checkpoint.
    #[test]
    fn a_verified_note_naming_another_origin_is_refused() {
        let key = NoteSigner::new(
            "custody.example/log",
            Box::new(PrivateKey::generate(Algorithm::Ed25519)),
        )
        .unwrap();
        let mut theirs = checkpoint();
        theirs.origin = "other.example/log".into();
        let signed = note::sign(&theirs.to_body(), &[&key]).unwrap();
        assert!(note::open(&signed, std::slice::from_ref(key.verifier())).is_ok());
        let err = Checkpoint::open(&signed, key.verifier()).unwrap_err();
        assert!(
            err.to_string().contains("is not the log key's name"),
            "{err}"
        );
    }
}
