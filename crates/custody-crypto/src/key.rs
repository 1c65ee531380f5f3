//! Keys: Ed25519 and ECDSA P-256, in PKCS#8 / SPKI PEM, named by key id.
//!
//! Signing uses the RustCrypto implementations (ECDSA there is deterministic, RFC 6979,
//! so a signature is reproducible and never depends on a random source at signing time, and
//! normalised to low-S). Verification follows the strict rules of [`crate::strict`]: Ed25519
//! with ed25519-dalek's `verify_strict`, P-256 with `ring` (several times faster) after the
//! low-S check. Both read the same SPKI bytes, so a key means the same thing to both.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer as _;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::signer::{Signer, Verifier};
use crate::strict;

/// A signature algorithm custody supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032): the default, and the only one for signed notes.
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256: what every hardware token supports.
    EcdsaP256,
}

impl Algorithm {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "ecdsa-p256" => Ok(Algorithm::EcdsaP256),
            other => Err(Error::Key(format!(
                "unknown algorithm {other:?}: use ed25519 or ecdsa-p256"
            ))),
        }
    }
}

/// A key id: the SHA-256 of the key's SPKI DER encoding, written as lowercase hex.
///
/// It names a key, nothing more: a key id in a signature is a hint for finding the key,
/// never a reason to trust one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The key id of a public key given as SPKI DER.
    pub fn of_spki_der(der: &[u8]) -> Self {
        KeyId(Sha256::digest(der).into())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::Key(format!(
                "key id {s:?} is not 64 lowercase hex characters"
            )));
        }
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| Error::Key(format!("key id {s:?} is not 64 lowercase hex characters")))?;
        Ok(KeyId(out))
    }
}

/// A public key that verifies signatures.
///
/// Every constructor applies the key rules of [`crate::strict`]: an Ed25519 key of small order,
/// or with a small-order component, is refused when it is read, not when it verifies.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    material: Material,
    spki_der: Vec<u8>,
    key_id: KeyId,
}

/// What the verifiers read: the checked Ed25519 key, or the 65-byte uncompressed SEC1 point
/// `ring` verifies P-256 with.
#[derive(Clone, PartialEq, Eq)]
enum Material {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256([u8; 65]),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm(), self.key_id)
    }
}

impl PublicKey {
    /// An Ed25519 key from outside: checked by the rules of [`crate::strict`] first.
    fn from_ed25519(key: &ed25519_dalek::VerifyingKey) -> Result<Self, Error> {
        let key = strict::ed25519_key(key.as_bytes())
            .map_err(|why| Error::Key(format!("Ed25519 public key refused: {why}")))?;
        PublicKey::from_ed25519_unchecked(key)
    }

    /// The public half of a signing key: `a·B` is in the prime-order subgroup by
    /// construction, so the (costly) subgroup check is skipped.
    fn from_ed25519_unchecked(key: ed25519_dalek::VerifyingKey) -> Result<Self, Error> {
        let der = key
            .to_public_key_der()
            .map_err(|e| Error::Key(format!("encoding Ed25519 public key: {e}")))?;
        Ok(PublicKey {
            material: Material::Ed25519(key),
            key_id: KeyId::of_spki_der(der.as_bytes()),
            spki_der: der.into_vec(),
        })
    }

    fn from_p256(key: &p256::PublicKey) -> Result<Self, Error> {
        // P-256 has cofactor 1: every point but the identity (which SEC1 cannot carry and
        // p256 refuses) generates the whole group, so there is no weak P-256 key to refuse.
        let der = key
            .to_public_key_der()
            .map_err(|e| Error::Key(format!("encoding P-256 public key: {e}")))?;
        let point: [u8; 65] = p256::EncodedPoint::from(key)
            .as_bytes()
            .try_into()
            .map_err(|_| Error::Key("P-256 point is not 65 bytes uncompressed".into()))?;
        Ok(PublicKey {
            material: Material::EcdsaP256(point),
            key_id: KeyId::of_spki_der(der.as_bytes()),
            spki_der: der.into_vec(),
        })
    }

    /// An Ed25519 public key from its 32 raw bytes (as in a signed-note verifier key).
    pub fn ed25519_from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::Key(format!(
                "Ed25519 public key is {} bytes, want 32",
                bytes.len()
            ))
        })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| Error::Key("bytes are not an Ed25519 public key".into()))?;
        PublicKey::from_ed25519(&key)
    }

    /// A P-256 public key from its SEC1 encoding (compressed or uncompressed point).
    pub fn p256_from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        let key = p256::PublicKey::from_sec1_bytes(bytes)
            .map_err(|_| Error::Key("bytes are not a P-256 public key point".into()))?;
        PublicKey::from_p256(&key)
    }

    /// Reads a public key from SPKI DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Error> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return PublicKey::from_ed25519(&k);
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return PublicKey::from_p256(&k);
        }
        Err(Error::Key(
            "not an Ed25519 or ECDSA P-256 SubjectPublicKeyInfo (SPKI) key".into(),
        ))
    }

    /// Reads a public key from an SPKI PEM block (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        if pem.contains("PRIVATE KEY-----") {
            return Err(Error::Key(
                "this is a private key; pass the public key (the .pub file) instead".into(),
            ));
        }
        if !pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(Error::Key(
                "no `-----BEGIN PUBLIC KEY-----` PEM block found".into(),
            ));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return PublicKey::from_ed25519(&k);
        }
        match p256::PublicKey::from_public_key_pem(pem) {
            Ok(k) => PublicKey::from_p256(&k),
            Err(e) => Err(Error::Key(format!(
                "PEM public key is not a valid Ed25519 or ECDSA P-256 key ({e})"
            ))),
        }
    }

    /// The SPKI PEM text, LF line endings, ending in a newline.
    pub fn to_pem(&self) -> String {
        // SPKI PEM is plain base64 of the DER we hold, 64 columns, as RFC 7468 lays out.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.spki_der);
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            Material::Ed25519(_) => Algorithm::Ed25519,
            Material::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The SPKI DER encoding.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The raw key: 32 bytes for Ed25519, the 65-byte uncompressed point for P-256.
    pub fn raw_bytes(&self) -> &[u8] {
        match &self.material {
            Material::Ed25519(k) => k.as_bytes(),
            Material::EcdsaP256(point) => point,
        }
    }

    /// The key id custody uses: hex SHA-256 of the SPKI DER.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The key id `securesystemslib` computes by default for this key (hex SHA-256 of the
    /// OLPC canonical JSON of `{keytype, keyval: {public}, scheme}`), so that an envelope
    /// signed by custody is matched to the key by Python verifiers.
    pub fn securesystemslib_keyid(&self) -> String {
        let (keytype, scheme, public) = match self.algorithm() {
            Algorithm::Ed25519 => ("ed25519", "ed25519", hex::encode(self.raw_bytes())),
            Algorithm::EcdsaP256 => ("ecdsa", "ecdsa-sha2-nistp256", self.to_pem()),
        };
        // OLPC canonical JSON escapes only `\` and `"`; neither occurs in hex or PEM, and
        // keys are already in sorted order, so this literal is the canonical form.
        let canonical = format!(
            r#"{{"keytype":"{keytype}","keyval":{{"public":"{public}"}},"scheme":"{scheme}"}}"#
        );
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

impl Verifier for PublicKey {
    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn algorithm(&self) -> Algorithm {
        PublicKey::algorithm(self)
    }

    /// Strict verification ([`crate::strict`]): Ed25519 as `verify_strict`; ECDSA P-256 in DER
    /// or raw `r‖s`, low-S only.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        match &self.material {
            Material::Ed25519(key) => strict::verify_ed25519(key, message, signature),
            Material::EcdsaP256(point) => strict::verify_p256(point, message, signature),
        }
        .map_err(|why| {
            Error::BadSignature(format!(
                "signature does not verify with {} key {}: {why}",
                self.algorithm(),
                self.key_id
            ))
        })
    }
}

enum SecretKey {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256(p256::ecdsa::SigningKey),
}

/// A private key held in memory (read from a PKCS#8 file or freshly generated).
pub struct PrivateKey {
    secret: SecretKey,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(
            f,
            "PrivateKey({} {})",
            self.public.algorithm(),
            self.public.key_id
        )
    }
}

impl PrivateKey {
    fn from_secret(secret: SecretKey) -> Result<Self, Error> {
        let public = match &secret {
            SecretKey::Ed25519(k) => PublicKey::from_ed25519_unchecked(k.verifying_key())?,
            SecretKey::EcdsaP256(k) => {
                PublicKey::from_p256(&p256::PublicKey::from(k.verifying_key()))?
            }
        };
        Ok(PrivateKey { secret, public })
    }

    /// Generates a new key from the operating system's random source.
    pub fn generate(algorithm: Algorithm) -> Self {
        let secret = match algorithm {
            Algorithm::Ed25519 => {
                SecretKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
            Algorithm::EcdsaP256 => {
                SecretKey::EcdsaP256(p256::ecdsa::SigningKey::random(&mut OsRng))
            }
        };
        match PrivateKey::from_secret(secret) {
            Ok(key) => key,
            // Encoding a well-formed key into SPKI cannot fail; the der crate only fails on
            // lengths beyond 256 MiB.
            Err(e) => unreachable!("encoding a freshly generated key failed: {e}"),
        }
    }

    /// An Ed25519 key from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8]) -> Result<Self, Error> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| Error::Key(format!("Ed25519 seed is {} bytes, want 32", seed.len())))?;
        PrivateKey::from_secret(SecretKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    }

    /// A P-256 key from its 32-byte big-endian scalar.
    pub fn p256_from_scalar(d: &[u8]) -> Result<Self, Error> {
        let k = p256::ecdsa::SigningKey::from_slice(d)
            .map_err(|_| Error::Key("bytes are not a valid P-256 private scalar".into()))?;
        PrivateKey::from_secret(SecretKey::EcdsaP256(k))
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        if pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(Error::Key(
                "this is a public key; signing needs the private key (the .key file)".into(),
            ));
        }
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(Error::Key(
                "encrypted PKCS#8 keys are not supported; decrypt it with `openssl pkcs8` or use a PKCS#11 token".into(),
            ));
        }
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(Error::Key(
                "no `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM block found".into(),
            ));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return PrivateKey::from_secret(SecretKey::Ed25519(k));
        }
        match p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Ok(k) => PrivateKey::from_secret(SecretKey::EcdsaP256(k)),
            Err(e) => Err(Error::Key(format!(
                "PKCS#8 key is not a valid Ed25519 or ECDSA P-256 key ({e})"
            ))),
        }
    }

    /// The PKCS#8 PEM text. Treat it as a secret: write it only to a file of mode 0600.
    pub fn to_pkcs8_pem(&self) -> Result<String, Error> {
        let pem = match &self.secret {
            // PKCS#8 v1 (RFC 8410): no embedded public key. OpenSSL 3.0 and Python's
            // `cryptography` reject the v2 form with the public key that dalek emits.
            SecretKey::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
            SecretKey::EcdsaP256(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| Error::Key(format!("encoding PKCS#8: {e}")))?;
        Ok(pem.to_string())
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Ed25519: the 64-byte signature. ECDSA P-256: a deterministic (RFC 6979) signature
    /// over SHA-256 of the message in low-S form, DER-encoded, as `securesystemslib` and most
    /// DSSE verifiers expect.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(match &self.secret {
            SecretKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SecretKey::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(k, message);
                // p256 signs with whichever s the equation gives; custody only accepts low-S.
                strict::low_s(sig).to_der().as_bytes().to_vec()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_key_id_for_both_algorithms() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let key = PrivateKey::generate(alg);
            let again = PrivateKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
            assert_eq!(public.key_id(), key.key_id());
            assert_eq!(public.algorithm(), alg);
            assert_eq!(public.key_id(), KeyId::of_spki_der(public.spki_der()));
        }
    }

    #[test]
    fn ed25519_pkcs8_is_v1_as_openssl_writes_it() {
        let pem = PrivateKey::generate(Algorithm::Ed25519)
            .to_pkcs8_pem()
            .unwrap();
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        // SEQUENCE(46) { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING(34) }
        assert_eq!(der.len(), 48);
        assert_eq!(
            &der[..16],
            &hex::decode("302e020100300506032b657004220420").unwrap()[..]
        );
    }

    #[test]
    fn our_pem_matches_the_der_crate_encoding() {
        let key = PrivateKey::generate(Algorithm::EcdsaP256);
        let theirs = p256::PublicKey::from_sec1_bytes(key.public_key().raw_bytes())
            .unwrap()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(key.public_key().to_pem(), theirs);
    }

    #[test]
    fn signatures_verify_and_wrong_key_or_message_fails() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let key = PrivateKey::generate(alg);
            let other = PrivateKey::generate(alg);
            let sig = key.sign(b"message").unwrap();
            key.public_key().verify(b"message", &sig).unwrap();
            assert!(key.public_key().verify(b"messagE", &sig).is_err());
            assert!(other.public_key().verify(b"message", &sig).is_err());
        }
    }

    #[test]
    fn ecdsa_accepts_raw_and_der_signatures() {
        let key = PrivateKey::generate(Algorithm::EcdsaP256);
        let der = key.sign(b"m").unwrap();
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        key.public_key().verify(b"m", &der).unwrap();
        key.public_key().verify(b"m", &raw).unwrap();
    }

    #[test]
    fn confused_and_malformed_pem_say_what_is_wrong() {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let private_pem = key.to_pkcs8_pem().unwrap();
        let public_pem = key.public_key().to_pem();
        let cases = [
            (
                PublicKey::from_pem(&private_pem).unwrap_err(),
                "private key",
            ),
            (
                PrivateKey::from_pkcs8_pem(&public_pem).unwrap_err(),
                "public key",
            ),
            (
                PublicKey::from_pem("hello").unwrap_err(),
                "no `-----BEGIN PUBLIC KEY",
            ),
            (
                PublicKey::from_pem(&public_pem.replace("MCow", "MCoX")).unwrap_err(),
                "not a valid",
            ),
            (
                PrivateKey::from_pkcs8_pem("").unwrap_err(),
                "no `-----BEGIN PRIVATE KEY",
            ),
        ];
        for (err, want) in cases {
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
    }

    #[test]
    fn key_id_parsing_is_strict() {
        let id = PrivateKey::generate(Algorithm::Ed25519).key_id();
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
        assert!(id.to_string().to_uppercase().parse::<KeyId>().is_err());
        assert!("abc".parse::<KeyId>().is_err());
    }

    /// Algorithms by the names the command line and JSON use, both ways; a key shows its
    /// algorithm and id when debugged, and a private key never its material (RFC 8032's
    /// first test seed, whose hex and base64 would show).
    #[test]
    fn names_and_debug_output_say_what_a_key_is_and_no_more() {
        for (alg, name) in [
            (Algorithm::Ed25519, "ed25519"),
            (Algorithm::EcdsaP256, "ecdsa-p256"),
        ] {
            assert_eq!(alg.name(), name);
            assert_eq!(alg.to_string(), name);
            assert_eq!(name.parse::<Algorithm>().unwrap(), alg);
        }
        const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let seed = hex::decode(SEED).unwrap();
        let key = PrivateKey::ed25519_from_seed(&seed).unwrap();
        let id = key.key_id();
        assert_eq!(format!("{id:?}"), format!("KeyId({id})"));
        assert_eq!(
            format!("{:?}", key.public_key()),
            format!("PublicKey(ed25519 {id})")
        );
        let shown = format!("{key:?}");
        assert_eq!(shown, format!("PrivateKey(ed25519 {id})"));
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&seed);
        for secret in [SEED, &b64[..20]] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
