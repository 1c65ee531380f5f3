//! C2SP signed notes: a text and signature lines, as the Go `sumdb/note` package and every
//! transparency log witness speak them. Checkpoints of custody's ledger are signed notes.
//!
//! ```text
//! <text, ending in a newline>
//!
//! — <key name> <base64(key hash (4 bytes) ‖ signature)>
//! ```
//!
//! Only Ed25519 keys (signature type `0x01`) are supported, as the spec requires for
//! logs. Verification ignores signatures by unknown keys (witnesses may add cosignatures
//! later), but a signature by a *known* key that fails rejects the whole note.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::key::{Algorithm, PrivateKey, PublicKey};
use crate::signer::{Signer, Verifier};

/// Signature type byte of Ed25519 in key hashes and key texts.
const ED25519_TYPE: u8 = 0x01;
/// The largest note accepted, in bytes; a checkpoint is a few hundred.
pub const MAX_NOTE_LEN: usize = 1 << 20;
/// The most signature lines accepted on one note.
pub const MAX_SIGNATURES: usize = 100;
/// The dash that starts a signature line: U+2014 EM DASH and a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";

/// The 4-byte key hash: the first bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
pub fn key_hash(name: &str, ed25519_public: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(ed25519_public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Checks a key name: non-empty, no whitespace, no `+` (the key-text separator).
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(Error::Note(format!(
            "key name {name:?} must be non-empty and contain no spaces or '+'"
        )));
    }
    Ok(())
}

/// Checks a named key for `what` (say, "signed notes"): a good name and an Ed25519 key.
pub(crate) fn check_ed25519(name: &str, key: &PublicKey, what: &str) -> Result<(), Error> {
    check_name(name)?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(Error::Note(format!(
            "{what} need an Ed25519 key; {} is {}",
            key.key_id(),
            key.algorithm()
        )));
    }
    Ok(())
}

/// The text form of a named public key: `name+hash+base64(key_type ‖ key)`.
pub(crate) fn key_text(name: &str, hash: u32, key_type: u8, key: &PublicKey) -> String {
    let mut bytes = vec![key_type];
    bytes.extend_from_slice(key.raw_bytes());
    format!("{name}+{hash:08x}+{}", STANDARD.encode(bytes))
}

/// A public key that verifies signed notes, with its name.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    hash: u32,
    key: PublicKey,
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({})", self.to_text())
    }
}

impl NoteVerifier {
    /// The verifier for an Ed25519 `key` under `name`.
    pub fn new(name: &str, key: &PublicKey) -> Result<Self, Error> {
        check_ed25519(name, key, "signed notes")?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            hash: key_hash(name, key.raw_bytes()),
            key: key.clone(),
        })
    }

    /// Parses the text form `name+hash+base64(0x01 ‖ key)`, checking that the hash
    /// matches the name and key.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let (name, hash, public) = parse_key_text(text.trim(), "verifier key")?;
        let v = NoteVerifier::new(name, &PublicKey::ed25519_from_bytes(&public)?)?;
        if v.hash != hash {
            return Err(Error::Note(format!(
                "verifier key hash {hash:08x} does not match its name and key (expected {:08x})",
                v.hash
            )));
        }
        Ok(v)
    }

    /// The text form `name+hash+base64(0x01 ‖ key)`.
    pub fn to_text(&self) -> String {
        key_text(&self.name, self.hash, ED25519_TYPE, &self.key)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key hash.
    pub fn key_hash(&self) -> u32 {
        self.hash
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }
}

/// Splits the key text `name+hash+base64(0x01 ‖ key)` (public or private alike) into the
/// name, the key hash and the key bytes after the Ed25519 type byte.
fn parse_key_text<'a>(text: &'a str, what: &str) -> Result<(&'a str, u32, Vec<u8>), Error> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Note(format!(
            "{what} is not of the form name+hash+base64"
        )));
    };
    check_name(name)?;
    let hash = parse_hash(hash_hex)?;
    let key = STANDARD
        .decode(key_b64)
        .map_err(|e| Error::Note(format!("{what} is not base64: {e}")))?;
    match key.split_first() {
        Some((&ED25519_TYPE, rest)) => Ok((name, hash, rest.to_vec())),
        _ => Err(Error::Note(format!(
            "{what} is not an Ed25519 (type 0x01) key"
        ))),
    }
}

fn parse_hash(hex_text: &str) -> Result<u32, Error> {
    if hex_text.len() != 8 {
        return Err(Error::Note(format!(
            "key hash {hex_text:?} is not 8 hex digits"
        )));
    }
    u32::from_str_radix(hex_text, 16)
        .map_err(|_| Error::Note(format!("key hash {hex_text:?} is not 8 hex digits")))
}

/// An Ed25519 signer with the key name it signs notes under.
pub struct NoteSigner {
    verifier: NoteVerifier,
    signer: Box<dyn Signer>,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({})", self.verifier.to_text())
    }
}

impl NoteSigner {
    /// Signs notes as `name` with `signer`, which must hold an Ed25519 key.
    pub fn new(name: &str, signer: Box<dyn Signer>) -> Result<Self, Error> {
        let verifier = NoteVerifier::new(name, signer.public_key())?;
        Ok(NoteSigner { verifier, signer })
    }

    /// Parses the Go `sumdb/note` private key text
    /// `PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)`.
    pub fn from_go_private_key(text: &str) -> Result<Self, Error> {
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(|| {
            Error::Note("private note key does not start with PRIVATE+KEY+".into())
        })?;
        let (name, hash, seed) = parse_key_text(rest, "private note key")?;
        let signer = NoteSigner::new(name, Box::new(PrivateKey::ed25519_from_seed(&seed)?))?;
        if signer.verifier.hash != hash {
            return Err(Error::Note(format!(
                "private note key hash {hash:08x} does not match its name and key"
            )));
        }
        Ok(signer)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    fn signature_line(&self, text: &str) -> Result<String, Error> {
        let sig = self.signer.sign(text.as_bytes())?;
        let mut blob = self.verifier.hash.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig);
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.verifier.name,
            STANDARD.encode(blob)
        ))
    }
}

/// Checks note text: UTF-8 (given), ending in a newline, no control characters but `\n`.
fn check_text(text: &str) -> Result<(), Error> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(Error::Note(
            "note text must be non-empty and end with a newline".into(),
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_ascii_control() && *c != '\n') {
        return Err(Error::Note(format!(
            "note text contains the control character {c:?}"
        )));
    }
    Ok(())
}

/// Signs `text` with each signer, returning the whole note.
pub fn sign(text: &str, signers: &[&NoteSigner]) -> Result<String, Error> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(Error::Note("a note needs at least one signer".into()));
    }
    let mut note = format!("{text}\n");
    for s in signers {
        note.push_str(&s.signature_line(text)?);
    }
    Ok(note)
}

/// A note whose text carries at least one valid signature from a known key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    text: String,
    verified_by: Vec<String>,
    unknown_signatures: usize,
}

impl OpenedNote {
    /// The signed text, ending in a newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Names of the known keys whose signatures verified.
    pub fn verified_by(&self) -> &[String] {
        &self.verified_by
    }

    /// How many signatures were by keys the caller did not pass (ignored).
    pub fn unknown_signatures(&self) -> usize {
        self.unknown_signatures
    }
}

/// Parses and verifies a signed note against `known` verifiers.
///
/// Rejects a malformed note ([`Error::Note`]), and a note with a failing signature from a
/// known key or with no valid signature from any known key ([`Error::BadSignature`]).
/// Ignores signatures from unknown keys.
pub fn open(note: &str, known: &[NoteVerifier]) -> Result<OpenedNote, Error> {
    let (text, lines) = split(note)?;
    let mut verified_by: Vec<String> = Vec::new();
    let mut unknown = 0;
    for line in &lines {
        let Some(v) = known
            .iter()
            .find(|v| v.name == line.name && v.hash == line.key_hash)
        else {
            unknown += 1;
            continue;
        };
        v.key.verify(text.as_bytes(), &line.signature).map_err(|_| {
            Error::BadSignature(format!(
                "signature by known key {}+{:08x} does not verify: the note was altered or forged",
                line.name, line.key_hash
            ))
        })?;
        if !verified_by.iter().any(|n| n == line.name) {
            verified_by.push(line.name.to_owned());
        }
    }
    if verified_by.is_empty() {
        return Err(Error::BadSignature(format!(
            "no signature from a known key ({} signature(s) by unknown keys); check the verifier key",
            unknown
        )));
    }
    Ok(OpenedNote {
        text: text.to_owned(),
        verified_by,
        unknown_signatures: unknown,
    })
}

/// One signature line of a note: `— <name> base64(key hash ‖ signature)`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine<'a> {
    /// The key name.
    pub name: &'a str,
    /// The 4-byte key hash (big-endian).
    pub key_hash: u32,
    /// The bytes after the key hash (for Ed25519 the signature; for a cosignature the
    /// timestamp and then the signature).
    pub signature: Vec<u8>,
    /// The line as written, without its newline.
    pub line: &'a str,
}

/// Splits a note into its text (ending in a newline) and its decoded signature lines,
/// checking the format but no signature. Bounded: at most [`MAX_NOTE_LEN`] bytes and
/// [`MAX_SIGNATURES`] lines.
pub fn split(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), Error> {
    if note.len() > MAX_NOTE_LEN {
        return Err(Error::Note(format!(
            "note is {} bytes; at most {MAX_NOTE_LEN} are accepted",
            note.len()
        )));
    }
    let split = note.rfind("\n\n").ok_or_else(|| {
        Error::Note("no blank line separates the text from the signatures".into())
    })?;
    let text = &note[..=split];
    let block = &note[split + 2..];
    check_text(text)?;
    if block.is_empty() || !block.ends_with('\n') {
        return Err(Error::Note(
            "signature block is empty or does not end with a newline".into(),
        ));
    }
    let raw: Vec<&str> = block[..block.len() - 1].split('\n').collect();
    if raw.len() > MAX_SIGNATURES {
        return Err(Error::Note(format!(
            "note has {} signatures; at most {MAX_SIGNATURES} are accepted",
            raw.len()
        )));
    }
    let mut lines = Vec::with_capacity(raw.len());
    for (n, line) in raw.iter().enumerate() {
        let malformed = || Error::Note(format!("signature line {} is malformed: {line:?}", n + 1));
        let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(malformed)?;
        let (name, b64) = rest.split_once(' ').ok_or_else(malformed)?;
        check_name(name).map_err(|_| malformed())?;
        let blob = STANDARD.decode(b64).map_err(|_| malformed())?;
        if blob.len() < 5 {
            return Err(malformed());
        }
        lines.push(SignatureLine {
            name,
            key_hash: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
            signature: blob[4..].to_vec(),
            line,
        });
    }
    Ok((text, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str) -> NoteSigner {
        NoteSigner::new(name, Box::new(PrivateKey::generate(Algorithm::Ed25519))).unwrap()
    }

    #[test]
    fn sign_then_open() {
        let s = signer("log.example/custody");
        let note = sign("hello\nworld\n", &[&s]).unwrap();
        let opened = open(&note, &[s.verifier().clone()]).unwrap();
        assert_eq!(opened.text(), "hello\nworld\n");
        assert_eq!(opened.verified_by(), ["log.example/custody"]);
    }

    #[test]
    fn verifier_text_round_trips_and_checks_its_hash() {
        let s = signer("a.example");
        let text = s.verifier().to_text();
        assert_eq!(&NoteVerifier::from_text(&text).unwrap(), s.verifier());
        let wrong_hash = text.replacen('+', "+0", 1).replacen(
            &format!("+0{:08x}", s.verifier().key_hash()),
            "+00000000",
            1,
        );
        assert!(NoteVerifier::from_text(&wrong_hash).is_err());
        assert!(NoteVerifier::from_text("a.example+1234").is_err());
        assert!(NoteVerifier::new("a b", s.verifier().public_key()).is_err());
        let p256 = PrivateKey::generate(Algorithm::EcdsaP256);
        assert!(NoteVerifier::new("p", p256.public_key()).is_err());
    }

    #[test]
    fn unknown_signatures_are_ignored_known_failures_reject() {
        let (log, witness) = (signer("log"), signer("witness"));
        let note = sign("body\n", &[&log, &witness]).unwrap();
        let opened = open(&note, &[log.verifier().clone()]).unwrap();
        assert_eq!(opened.unknown_signatures(), 1);

        // Only the unknown witness known: still fine, but the log alone failing is fatal.
        let tampered = note.replace("body\n", "bodY\n");
        assert!(open(&tampered, &[log.verifier().clone()]).is_err());
        // A key with the right name but another key hash is "unknown", so nothing verifies.
        let impostor = signer("log");
        let err = open(&note, &[impostor.verifier().clone()]).unwrap_err();
        assert!(
            err.to_string().contains("no signature from a known key"),
            "{err}"
        );
    }

    /// A known signer's failing signature rejects the note even beside another known
    /// signer's good one ("any good known signature passes" would let a forged cosignature
    /// of a known witness stand).
    #[test]
    fn a_known_signers_bad_signature_rejects_beside_a_good_one() {
        let (log, witness) = (signer("log"), signer("witness"));
        let note = sign("body\n", &[&log, &witness]).unwrap();
        // The witness's line, replaced by its real signature of another text.
        let elsewhere = sign("other\n", &[&witness]).unwrap();
        let line = |n: &str, who: &str| {
            n.lines()
                .find(|l| l.starts_with(&format!("\u{2014} {who} ")))
                .unwrap()
                .to_owned()
        };
        let forged = note.replace(&line(&note, "witness"), &line(&elsewhere, "witness"));
        assert_ne!(forged, note);
        let both = [log.verifier().clone(), witness.verifier().clone()];
        assert!(open(&note, &both).is_ok());
        let err = open(&forged, &both).unwrap_err();
        assert!(err.to_string().contains("witness"), "{err}");
        // Not known, the same line is ignored: the log's own signature stands alone.
        assert!(open(&forged, &[log.verifier().clone()]).is_ok());
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let s = signer("log");
        let good = sign("body\n", &[&s]).unwrap();
        let known = [s.verifier().clone()];
        let cases = [
            "no blank line\n".to_owned(),
            good.trim_end().to_owned(),
            good.replace('\u{2014}', "-"),
            good.replace("log ", "log  "),
            "text\r\n\n— log AAAAAAA=\n".to_owned(),
            "body\n\n— log AAAA\n".to_owned(),
            format!("body\n\n{}", "— x AAAAAAAA\n".repeat(MAX_SIGNATURES + 1)),
        ];
        for bad in cases {
            assert!(open(&bad, &known).is_err(), "accepted {bad:?}");
        }
        assert!(sign("no newline", &[&s]).is_err());
        assert!(sign("ctl\x07\n", &[&s]).is_err());
    }

    /// A note's bounds are inclusive: [`MAX_SIGNATURES`] lines and [`MAX_NOTE_LEN`] bytes
    /// open, one more is refused saying so; a line's blob needs a key hash and at least one
    /// byte (5 bytes: an unknown line, ignored; 4: malformed); the block ends in a newline.
    #[test]
    fn the_bounds_are_inclusive() {
        let s = signer("log");
        let known = [s.verifier().clone()];
        let good = sign("body\n", &[&s]).unwrap();
        let other = "\u{2014} x AAAAAAAA\n";
        let at = format!("{good}{}", other.repeat(MAX_SIGNATURES - 1));
        assert_eq!(
            open(&at, &known).unwrap().unknown_signatures(),
            MAX_SIGNATURES - 1
        );
        let e = open(&format!("{at}{other}"), &known).unwrap_err();
        assert!(e.to_string().contains("at most 100"), "{e}");

        let short = format!("{good}\u{2014} x AAAAAAA=\n");
        assert_eq!(open(&short, &known).unwrap().unknown_signatures(), 1);
        assert!(open(&format!("{good}\u{2014} x AAAAAA==\n"), &known).is_err());
        // The final newline replaced by a space: not a signature block.
        assert!(open(&format!("{} ", good.trim_end()), &known).is_err());

        // A note of exactly the longest length, then one byte longer.
        let line = good.len() - "body\n".len();
        let text = |len: usize| format!("{}\n", "b".repeat(len - 1));
        let longest = sign(&text(MAX_NOTE_LEN - line), &[&s]).unwrap();
        assert_eq!(longest.len(), MAX_NOTE_LEN);
        assert!(open(&longest, &known).is_ok());
        let over = sign(&text(MAX_NOTE_LEN - line + 1), &[&s]).unwrap();
        let e = open(&over, &known).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }

    /// What an opened note says of its signers: each known signer once, however many of
    /// its lines; unknown lines counted.
    #[test]
    fn an_opened_note_names_each_known_signer_once() {
        let (log, witness) = (signer("log"), signer("witness"));
        let note = sign("body\n", &[&log, &witness, &log]).unwrap();
        let both = [log.verifier().clone(), witness.verifier().clone()];
        let opened = open(&note, &both).unwrap();
        assert_eq!(opened.verified_by(), ["log", "witness"]);
        assert_eq!(opened.unknown_signatures(), 0);
        let opened = open(&note, &[witness.verifier().clone()]).unwrap();
        assert_eq!(opened.unknown_signatures(), 2);
    }
}
