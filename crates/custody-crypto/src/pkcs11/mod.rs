//! Keys that never leave a hardware token: a [`Signer`] that asks a PKCS#11 token to sign.
//!
//! A [`Pkcs11Signer`] is configured by a [`Pkcs11Config`] (module path, token label, key
//! label, PIN source), usually parsed from an RFC 7512 URI ([`Pkcs11Config::from_uri`]). It
//! reads the public key from the token, so its key id follows custody's rule (SHA-256 of the
//! SPKI DER) and a verifier needs nothing but the public key. Its signatures are exactly what a
//! file key's are: Ed25519 (CKM_EDDSA) 64 bytes; ECDSA P-256 (CKM_ECDSA over a SHA-256 digest
//! computed here) turned from the token's raw `r‖s` into low-S DER.
//!
//! What it does not do: export a private key (it only calls `C_Sign`), accept a PIN on the
//! command line, or pick a token or key by guessing: the token label and key label (and id)
//! must name exactly one key. [`generate_key_pair`] creates keys the token marks sensitive and
//! never extractable.
//!
//! I/O: besides the token, this module reads the PIN file or variable the config names.

mod token;
mod uri;

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use sha2::{Digest as _, Sha256};

pub use uri::{PinSource, Pkcs11Config};

use crate::error::Error;
use crate::key::{Algorithm, PublicKey};
use crate::signer::{Signer, Verifier as _};
use crate::strict;

/// Why a token key could not be used. Each names the token, key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The PKCS#11 URI is malformed or asks for something unsupported.
    #[error("invalid PKCS#11 URI: {0}")]
    Uri(String),
    /// The PIN could not be read from its source.
    #[error("PKCS#11 PIN: {0}")]
    Pin(String),
    /// No file at the module path.
    #[error("PKCS#11 module {} does not exist", path.display())]
    ModuleMissing {
        /// The module path given.
        path: PathBuf,
    },
    /// The module exists but could not be loaded or initialised.
    #[error("PKCS#11 module {} could not be loaded: {reason}", path.display())]
    Module {
        /// The module path given.
        path: PathBuf,
        /// What the loader or module said.
        reason: String,
    },
    /// No token carries the label.
    #[error("PKCS#11: no token labelled {label:?} ({present})")]
    TokenNotFound {
        /// The label asked for.
        label: String,
        /// The labels that are there.
        present: String,
    },
    /// The token refused the PIN.
    #[error("PKCS#11: wrong PIN for token {token:?} (the PIN came from {pin_source})")]
    WrongPin {
        /// The token's label.
        token: String,
        /// Where the PIN came from.
        pin_source: String,
    },
    /// Too many wrong PINs: the token locked the user PIN.
    #[error(
        "PKCS#11: the user PIN of token {token:?} is locked; its security officer must reset it"
    )]
    PinLocked {
        /// The token's label.
        token: String,
    },
    /// No private key carries the label (and id).
    #[error("PKCS#11: token {token:?} has no private key labelled {label:?}")]
    KeyNotFound {
        /// The token's label.
        token: String,
        /// The key label asked for.
        label: String,
    },
    /// More than one private key carries the label.
    #[error(
        "PKCS#11: token {token:?} has {count} private keys labelled {label:?}; add id= to the URI to pick one"
    )]
    KeyAmbiguous {
        /// The token's label.
        token: String,
        /// The key label asked for.
        label: String,
        /// How many matched.
        count: usize,
    },
    /// The key is of a type custody does not sign with, or its public half is unusable.
    #[error("PKCS#11: {0}")]
    UnsupportedKey(String),
    /// A key with the label exists already (when generating).
    #[error("PKCS#11: token {token:?} already has a key labelled {label:?}")]
    KeyExists {
        /// The token's label.
        token: String,
        /// The key label.
        label: String,
    },
    /// The token failed an operation.
    #[error("PKCS#11: token {token:?}: {operation} failed: {reason}")]
    Device {
        /// The token's label.
        token: String,
        /// What custody was doing.
        operation: &'static str,
        /// What the module said.
        reason: String,
    },
}

/// A signing key held in a PKCS#11 token.
pub struct Pkcs11Signer {
    /// One logged-in session; `cryptoki` sessions may not be used from two threads at once.
    session: Mutex<Session>,
    key: ObjectHandle,
    public: PublicKey,
    token: String,
    label: String,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pkcs11Signer({} {} on token {:?}, key {:?})",
            self.public.algorithm(),
            self.public.key_id(),
            self.token,
            self.label
        )
    }
}

impl Pkcs11Signer {
    /// Opens the key `config` names: loads the module, finds the token, logs in, finds the
    /// private key and reads its public key, then signs a probe message and checks it with
    /// that public key, so a mismatched pair is found now rather than by a verifier later.
    pub fn open(config: &Pkcs11Config) -> Result<Self, Error> {
        let ctx = token::module(&config.module_path)?;
        let slot = token::find_token(&ctx, &config.token_label)?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(token::device_error(config, "opening a session"))?;
        token::login(&session, config)?;
        let key =
            token::find_private_key(&session, config)?.ok_or_else(|| TokenError::KeyNotFound {
                token: config.token_label.clone(),
                label: config.key_label.clone(),
            })?;
        let public = token::read_public_key(&session, config)?;
        let signer = Pkcs11Signer {
            session: Mutex::new(session),
            key,
            public,
            token: config.token_label.clone(),
            label: config.key_label.clone(),
        };
        let probe = b"custody: does this token key match its public key?";
        let signature = signer.sign(probe)?;
        signer.public.verify(probe, &signature).map_err(|_| {
            TokenError::UnsupportedKey(format!(
                "the public key labelled {:?} on token {:?} does not match its private key",
                config.key_label, config.token_label
            ))
        })?;
        Ok(signer)
    }
}

/// Creates a key pair on the token `config` names, labelled `config.key_label`, and opens it.
///
/// The private key is a token object that is `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`: the
/// token will sign with it and never reveal it. Refuses a label already in use.
pub fn generate_key_pair(
    config: &Pkcs11Config,
    algorithm: Algorithm,
) -> Result<Pkcs11Signer, Error> {
    let ctx = token::module(&config.module_path)?;
    let slot = token::find_token(&ctx, &config.token_label)?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(token::device_error(config, "opening a read-write session"))?;
    token::login(&session, config)?;
    if token::find_private_key(&session, config)?.is_some() {
        return Err(TokenError::KeyExists {
            token: config.token_label.clone(),
            label: config.key_label.clone(),
        }
        .into());
    }
    let id = config.key_id.clone().unwrap_or_else(|| {
        // A fresh CKA_ID pairs the two objects for tools that match keys by id.
        let mut id = vec![0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        id
    });
    let (mechanism, params) = match algorithm {
        Algorithm::EcdsaP256 => (Mechanism::EccKeyPairGen, token::P256_PARAMS),
        Algorithm::Ed25519 => (Mechanism::EccEdwardsKeyPairGen, token::ED25519_PARAMS),
    };
    let label = Attribute::Label(config.key_label.as_bytes().to_vec());
    let public = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(params.to_vec()),
        label.clone(),
        Attribute::Id(id.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        label,
        Attribute::Id(id.clone()),
    ];
    session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(token::device_error(config, "generating a key pair"))?;
    drop(session);
    Pkcs11Signer::open(&Pkcs11Config {
        key_id: Some(id),
        ..config.clone()
    })
}

impl Signer for Pkcs11Signer {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Ed25519: CKM_EDDSA over the message. ECDSA P-256: CKM_ECDSA over SHA-256 of the
    /// message, the token's `r‖s` normalised to low-S and DER-encoded, as a file key signs.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |what: String| {
            Error::Signing(format!(
                "PKCS#11 token {:?}, key {:?}: {what}",
                self.token, self.label
            ))
        };
        let session = self
            .session
            .lock()
            .map_err(|_| failed("an earlier signature on this session panicked".into()))?;
        match self.public.algorithm() {
            Algorithm::Ed25519 => {
                let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                let signature = session
                    .sign(&mechanism, self.key, message)
                    .map_err(|e| failed(format!("C_Sign (EdDSA) failed: {e}")))?;
                if signature.len() != 64 {
                    return Err(failed(format!(
                        "the token returned a {}-byte Ed25519 signature",
                        signature.len()
                    )));
                }
                Ok(signature)
            }
            Algorithm::EcdsaP256 => {
                let digest = Sha256::digest(message);
                let raw = session
                    .sign(&Mechanism::Ecdsa, self.key, &digest)
                    .map_err(|e| failed(format!("C_Sign (ECDSA) failed: {e}")))?;
                let signature = p256::ecdsa::Signature::from_slice(&raw).map_err(|_| {
                    failed(format!(
                        "the token returned {} bytes, not a 64-byte r‖s ECDSA signature",
                        raw.len()
                    ))
                })?;
                Ok(strict::low_s(signature).to_der().as_bytes().to_vec())
            }
        }
    }
}
