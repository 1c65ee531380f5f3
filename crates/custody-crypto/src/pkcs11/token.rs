//! Reaching a key in a token: loading the module once per process, finding the token by
//! label, logging in, finding the key pair, and reading the public half into a [`PublicKey`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::der::asn1::{ObjectIdentifier, OctetStringRef, PrintableStringRef};

use super::{Pkcs11Config, TokenError};
use crate::key::{Algorithm, PublicKey};

/// `CKA_EC_PARAMS` of P-256: the DER OID prime256v1 (1.2.840.10045.3.1.7).
pub(super) const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `CKA_EC_PARAMS` of Ed25519 as SoftHSM and PKCS#11 3.0 write it: PrintableString
/// "edwards25519". (PKCS#11 3.1 also allows the OID 1.3.101.112, read below.)
pub(super) const ED25519_PARAMS: &[u8] = b"\x13\x0cedwards25519";
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// A module may be initialised once per process; every signer using it shares the context.
fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads and initialises the module at `path` (once per process).
pub(super) fn module(path: &Path) -> Result<Pkcs11, TokenError> {
    if !path.exists() {
        return Err(TokenError::ModuleMissing {
            path: path.to_owned(),
        });
    }
    let mut loaded = modules().lock().map_err(|_| TokenError::Module {
        path: path.to_owned(),
        reason: "an earlier use of the module panicked".into(),
    })?;
    if let Some(ctx) = loaded.get(path) {
        return Ok(ctx.clone());
    }
    let load_error = |e: CkError| TokenError::Module {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let ctx = Pkcs11::new(path).map_err(load_error)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Another part of this process (not custody) initialised it already: fine.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load_error(e)),
    }
    loaded.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// The slot whose token has `label`; the error lists the labels present.
pub(super) fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, TokenError> {
    let device = |e: CkError| TokenError::Device {
        token: label.to_owned(),
        operation: "listing slots",
        reason: e.to_string(),
    };
    let mut present = Vec::new();
    for slot in ctx.get_slots_with_initialized_token().map_err(device)? {
        let info = ctx.get_token_info(slot).map_err(device)?;
        if info.label() == label {
            return Ok(slot);
        }
        present.push(format!("{:?}", info.label()));
    }
    Err(TokenError::TokenNotFound {
        label: label.to_owned(),
        present: if present.is_empty() {
            "the module has no initialised token".into()
        } else {
            format!("tokens present: {}", present.join(", "))
        },
    })
}

/// Logs the user in on `session`; a second signer on the same token finds it logged in.
pub(super) fn login(session: &Session, config: &Pkcs11Config) -> Result<(), TokenError> {
    let pin = config.pin.read()?;
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(TokenError::WrongPin {
            token: config.token_label.clone(),
            pin_source: config.pin.to_string(),
        }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(TokenError::PinLocked {
            token: config.token_label.clone(),
        }),
        Err(e) => Err(TokenError::Device {
            token: config.token_label.clone(),
            operation: "logging in",
            reason: e.to_string(),
        }),
    }
}

/// The template that finds the key's objects of `class`: its label, and its id if given.
fn key_template(config: &Pkcs11Config, class: ObjectClass) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(class),
        Attribute::Label(config.key_label.as_bytes().to_vec()),
    ];
    if let Some(id) = &config.key_id {
        template.push(Attribute::Id(id.clone()));
    }
    template
}

/// Maps a module error during `operation` to a [`TokenError::Device`] naming the token.
pub(super) fn device_error<'a>(
    config: &'a Pkcs11Config,
    operation: &'static str,
) -> impl Fn(CkError) -> TokenError + 'a {
    move |e| TokenError::Device {
        token: config.token_label.clone(),
        operation,
        reason: e.to_string(),
    }
}

/// The private key object the config names: exactly one must match.
pub(super) fn find_private_key(
    session: &Session,
    config: &Pkcs11Config,
) -> Result<Option<ObjectHandle>, TokenError> {
    let found = session
        .find_objects(&key_template(config, ObjectClass::PRIVATE_KEY))
        .map_err(device_error(config, "searching for the private key"))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(TokenError::KeyAmbiguous {
            token: config.token_label.clone(),
            label: config.key_label.clone(),
            count: many.len(),
        }),
    }
}

/// Reads the public half from the key's public key object (`CKA_EC_PARAMS`, `CKA_EC_POINT`).
pub(super) fn read_public_key(
    session: &Session,
    config: &Pkcs11Config,
) -> Result<PublicKey, TokenError> {
    let found = session
        .find_objects(&key_template(config, ObjectClass::PUBLIC_KEY))
        .map_err(device_error(config, "searching for the public key"))?;
    let [object] = found.as_slice() else {
        return Err(TokenError::UnsupportedKey(format!(
            "token {:?} has {} public key objects labelled {:?}; custody reads the public key \
             (and so the key id) from exactly one",
            config.token_label,
            found.len(),
            config.key_label
        )));
    };
    let attributes = session
        .get_attributes(
            *object,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        )
        .map_err(device_error(config, "reading the public key"))?;
    let (mut key_type, mut params, mut point) = (None, None, None);
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let unsupported = |what: String| {
        TokenError::UnsupportedKey(format!(
            "key {:?} on token {:?} {what}; custody signs with ECDSA P-256 or Ed25519 keys",
            config.key_label, config.token_label
        ))
    };
    let (Some(key_type), Some(params), Some(point)) = (key_type, params, point) else {
        return Err(unsupported(
            "has no readable CKA_KEY_TYPE, CKA_EC_PARAMS and CKA_EC_POINT".into(),
        ));
    };
    let algorithm =
        if key_type == KeyType::EC && ObjectIdentifier::from_der(&params) == Ok(P256_OID) {
            Algorithm::EcdsaP256
        } else if key_type == KeyType::EC_EDWARDS && is_ed25519_params(&params) {
            Algorithm::Ed25519
        } else {
            return Err(unsupported(format!(
                "is of type {key_type} with parameters {}",
                hex::encode(&params)
            )));
        };
    // CKA_EC_POINT is a DER OCTET STRING around the point; some tokens return the bare point.
    let raw = OctetStringRef::from_der(&point)
        .map(|o| o.as_bytes().to_vec())
        .unwrap_or(point);
    let public = match algorithm {
        Algorithm::EcdsaP256 => PublicKey::p256_from_sec1(&raw),
        Algorithm::Ed25519 => PublicKey::ed25519_from_bytes(&raw),
    };
    public.map_err(|e| unsupported(format!("has an unusable public key ({e})")))
}

fn is_ed25519_params(params: &[u8]) -> bool {
    ObjectIdentifier::from_der(params) == Ok(ED25519_OID)
        || PrintableStringRef::from_der(params).is_ok_and(|s| s.as_str() == "edwards25519")
}
