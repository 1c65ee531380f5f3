//! Which token key to sign with, written as an RFC 7512 PKCS#11 URI:
//!
//! ```text
//! pkcs11:token=custody;object=release-signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt
//! ```
//!
//! Path attributes (`;`-separated) pick the key: `token` (the token label, required),
//! `object` (the key label, required), `id` (the key's `CKA_ID`, percent-encoded bytes, to
//! tell apart keys that share a label) and `type` (only `private` makes sense for signing).
//! Query attributes (`&`-separated) say how to reach it: `module-path` (required) and
//! `pin-source`, either `file:PATH` (RFC 7512's form; a bare path works too) or `env:VAR`
//! (custody's addition, for CI secrets). `pin-value` is refused: a PIN in a URI ends up in shell
//! history and process listings. Values are percent-decoded. Any other attribute is refused
//! rather than ignored, so a typo cannot widen which token or key is used.

use std::io::Read as _;
use std::path::PathBuf;

use cryptoki::types::AuthPin;

use super::TokenError;

/// The largest PIN file read: a PIN is a few dozen bytes.
const MAX_PIN_FILE: u64 = 1024;

/// Where the user PIN comes from. Never the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (one trailing newline is ignored).
    File(PathBuf),
    /// An environment variable holding the PIN.
    Env(String),
}

impl std::fmt::Display for PinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinSource::File(path) => write!(f, "file {}", path.display()),
            PinSource::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

impl PinSource {
    /// Reads the PIN.
    pub fn read(&self) -> Result<AuthPin, TokenError> {
        let mut pin = match self {
            PinSource::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| {
                    TokenError::Pin(format!("cannot open PIN file {}: {e}", path.display()))
                })?;
                let mut bytes = Vec::new();
                file.take(MAX_PIN_FILE + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| {
                        TokenError::Pin(format!("cannot read PIN file {}: {e}", path.display()))
                    })?;
                if bytes.len() as u64 > MAX_PIN_FILE {
                    return Err(TokenError::Pin(format!(
                        "PIN file {} is larger than {MAX_PIN_FILE} bytes; is it the right file?",
                        path.display()
                    )));
                }
                String::from_utf8(bytes).map_err(|_| {
                    TokenError::Pin(format!("PIN file {} is not UTF-8 text", path.display()))
                })?
            }
            PinSource::Env(var) => std::env::var(var).map_err(|e| {
                TokenError::Pin(format!("environment variable {var} (the PIN source): {e}"))
            })?,
        };
        // `echo PIN > file` leaves a newline that is not part of the PIN.
        if pin.ends_with('\n') {
            pin.pop();
            if pin.ends_with('\r') {
                pin.pop();
            }
        }
        if pin.is_empty() {
            return Err(TokenError::Pin(format!("the PIN from {self} is empty")));
        }
        Ok(AuthPin::from(pin))
    }
}

/// A token key to sign with, parsed from a PKCS#11 URI (or built directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library) to load.
    pub module_path: PathBuf,
    /// The label of the token holding the key.
    pub token_label: String,
    /// The label (`CKA_LABEL`) of the key.
    pub key_label: String,
    /// The key's `CKA_ID`, when the label alone is ambiguous.
    pub key_id: Option<Vec<u8>>,
    /// Where the user PIN comes from.
    pub pin: PinSource,
}

impl Pkcs11Config {
    /// Parses a `pkcs11:` URI (RFC 7512), with errors naming the attribute at fault.
    pub fn from_uri(uri: &str) -> Result<Self, TokenError> {
        let bad = |why: String| TokenError::Uri(why);
        let rest = uri
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
            .map(|_| &uri[7..])
            .ok_or_else(|| bad("it does not start with `pkcs11:`".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));

        let (mut token, mut object, mut id, mut module, mut pin) = (None, None, None, None, None);
        for (name, value) in attributes(path, ';')? {
            let slot = match name.as_str() {
                "token" => &mut token,
                "object" => &mut object,
                "id" => &mut id,
                "type" => {
                    if value != b"private" {
                        return Err(bad(format!(
                            "type={}: custody signs with a private key (type=private)",
                            String::from_utf8_lossy(&value)
                        )));
                    }
                    continue;
                }
                other => {
                    return Err(bad(format!(
                        "path attribute `{other}` is not supported; name the token with \
                         `token=` (its label) and the key with `object=` (and `id=`)"
                    )));
                }
            };
            set_once(slot, &name, value)?;
        }
        for (name, value) in attributes(query, '&')? {
            let slot = match name.as_str() {
                "module-path" => &mut module,
                "pin-source" => &mut pin,
                "pin-value" => {
                    return Err(bad(
                        "pin-value is refused: a PIN written in a URI ends up in \
                                    shell history and process listings; use \
                                    pin-source=file:PATH or pin-source=env:VAR"
                            .into(),
                    ));
                }
                other => {
                    return Err(bad(format!(
                        "query attribute `{other}` is not supported; use module-path and \
                         pin-source"
                    )));
                }
            };
            set_once(slot, &name, value)?;
        }

        let text = |name: &str, value: Option<Vec<u8>>, hint: &str| {
            let value = value.ok_or_else(|| bad(format!("`{name}=` is missing: {hint}")))?;
            String::from_utf8(value).map_err(|_| bad(format!("`{name}=` is not UTF-8")))
        };
        let pin = text(
            "pin-source",
            pin,
            "add pin-source=file:PATH or pin-source=env:VAR",
        )?;
        Ok(Pkcs11Config {
            token_label: text("token", token, "add token=LABEL (the token's label)")?,
            key_label: text("object", object, "add object=LABEL (the key's label)")?,
            key_id: id,
            module_path: PathBuf::from(text(
                "module-path",
                module,
                "add module-path=/path/to/the/pkcs11/module.so",
            )?),
            pin: parse_pin_source(&pin)?,
        })
    }
}

/// `name=value` pairs separated by `separator`, values percent-decoded; empty parts skipped.
fn attributes(text: &str, separator: char) -> Result<Vec<(String, Vec<u8>)>, TokenError> {
    text.split(separator)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                TokenError::Uri(format!(
                    "`{part}` is not an attribute of the form name=value"
                ))
            })?;
            let value: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
            if value.is_empty() {
                return Err(TokenError::Uri(format!("`{name}=` has an empty value")));
            }
            Ok((name.to_ascii_lowercase(), value))
        })
        .collect()
}

fn set_once(slot: &mut Option<Vec<u8>>, name: &str, value: Vec<u8>) -> Result<(), TokenError> {
    if slot.replace(value).is_some() {
        return Err(TokenError::Uri(format!("`{name}=` is given twice")));
    }
    Ok(())
}

fn parse_pin_source(text: &str) -> Result<PinSource, TokenError> {
    if let Some(var) = text.strip_prefix("env:") {
        return Ok(PinSource::Env(var.to_owned()));
    }
    if text.starts_with('|') {
        return Err(TokenError::Uri(
            "pin-source=|COMMAND is not supported; use file:PATH or env:VAR".into(),
        ));
    }
    // `file:///abs/path` and `file:rel/path` name files; so does a bare path.
    let path = match text.strip_prefix("file:") {
        Some(rest) => rest.strip_prefix("//").unwrap_or(rest),
        None => text,
    };
    Ok(PinSource::File(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_uri_parses() {
        let c = Pkcs11Config::from_uri(
            "pkcs11:token=custody;object=release-signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt",
        )
        .unwrap();
        assert_eq!(c.token_label, "custody");
        assert_eq!(c.key_label, "release-signer");
        assert_eq!(c.key_id, None);
        assert_eq!(
            c.module_path,
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert_eq!(c.pin, PinSource::File("pin.txt".into()));
    }

    #[test]
    fn values_are_percent_decoded_and_pin_sources_vary() {
        let c = Pkcs11Config::from_uri(
            "PKCS11:token=My%20Token;object=k%3Bey;id=%01%ff;type=private\
             ?pin-source=env:HSM_PIN&module-path=%2Fopt%2Fm.so",
        )
        .unwrap();
        assert_eq!(c.token_label, "My Token");
        assert_eq!(c.key_label, "k;ey");
        assert_eq!(c.key_id, Some(vec![0x01, 0xff]));
        assert_eq!(c.module_path, PathBuf::from("/opt/m.so"));
        assert_eq!(c.pin, PinSource::Env("HSM_PIN".into()));
        for (source, want) in [
            ("file:///etc/pin", "/etc/pin"),
            ("file:pin.txt", "pin.txt"),
            ("/run/secrets/pin", "/run/secrets/pin"),
        ] {
            let uri = format!("pkcs11:token=t;object=o?module-path=m&pin-source={source}");
            assert_eq!(
                Pkcs11Config::from_uri(&uri).unwrap().pin,
                PinSource::File(want.into())
            );
        }
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        let base = "?module-path=m&pin-source=env:P";
        let cases = [
            (
                "pkcs12:token=t;object=o".to_owned(),
                "does not start with `pkcs11:`",
            ),
            (format!("pkcs11:object=o{base}"), "`token=` is missing"),
            (format!("pkcs11:token=t{base}"), "`object=` is missing"),
            (
                "pkcs11:token=t;object=o?pin-source=env:P".into(),
                "`module-path=` is missing",
            ),
            (
                "pkcs11:token=t;object=o?module-path=m".into(),
                "`pin-source=` is missing",
            ),
            (
                "pkcs11:token=t;object=o?module-path=m&pin-value=1234".into(),
                "pin-value is refused",
            ),
            (
                format!("pkcs11:token=t;object=o;serial=1{base}"),
                "`serial` is not supported",
            ),
            (
                format!("pkcs11:token=t;object=o;type=cert{base}"),
                "type=cert",
            ),
            (
                format!("pkcs11:token=t;token=u;object=o{base}"),
                "`token=` is given twice",
            ),
            (
                format!("pkcs11:token=;object=o{base}"),
                "`token=` has an empty value",
            ),
            (
                format!("pkcs11:token;object=o{base}"),
                "`token` is not an attribute",
            ),
            (
                format!("pkcs11:token=%ff;object=o{base}"),
                "`token=` is not UTF-8",
            ),
            (
                "pkcs11:token=t;object=o?module-path=m&pin-source=|cat".into(),
                "not supported",
            ),
            (
                "pkcs11:token=t;object=o?module-path=m&pin-source=env:P&verbose=1".into(),
                "`verbose` is not supported",
            ),
        ];
        for (uri, want) in cases {
            let err = Pkcs11Config::from_uri(&uri).unwrap_err().to_string();
            assert!(err.contains(want), "{uri}: {err} lacks {want:?}");
        }
    }

    #[test]
    fn pins_are_read_from_files_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "1234\r\n").unwrap();
        let pin = PinSource::File(path.clone()).read().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&pin), "1234");

        std::fs::write(&path, "\n").unwrap();
        let err = PinSource::File(path.clone()).read().unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        // At most 1 KiB, that much included.
        std::fs::write(&path, vec![b'1'; 1024]).unwrap();
        let pin = PinSource::File(path.clone()).read().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&pin).len(), 1024);
        std::fs::write(&path, vec![b'1'; 1025]).unwrap();
        let err = PinSource::File(path).read().unwrap_err();
        assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
        let err = PinSource::File(dir.path().join("absent"))
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("cannot open PIN file"), "{err}");
        let err = PinSource::Env("CUSTODY_TEST_SURELY_UNSET_PIN_VAR".into())
            .read()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("environment variable CUSTODY_TEST_SURELY_UNSET_PIN_VAR"),
            "{err}"
        );
    }
}
