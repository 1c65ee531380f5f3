//! The JSON plumbing every JSON format shares: parse fast, and when parsing fails, parse
//! again with path tracking so the error names the JSON path of the problem.
//!
//! The typed structs each format deserialises into name only the fields custody reads;
//! serde skips every other field without allocating (it reads them as `IgnoredAny`), so a
//! large report costs one pass over its bytes and a few small allocations per item.

use crate::{EvidenceError, Format, MAX_ITEMS};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde_path_to_error::Segment;
use std::fmt;
use std::marker::PhantomData;

/// Deserialises a whole JSON document. The fast path has no path tracking; only a failing
/// document is read a second time (deterministically failing at the same place) to learn
/// where, so a good report pays nothing for good errors.
pub(crate) fn from_slice<T: DeserializeOwned>(
    format: Format,
    bytes: &[u8],
) -> Result<T, EvidenceError> {
    // A UTF-8 byte order mark (some Windows tools write one) is not JSON, but says nothing.
    let bom = bytes.starts_with(b"\xef\xbb\xbf");
    let bytes = if bom { &bytes[3..] } else { bytes };
    // JSON exchanged between systems is UTF-8 (RFC 8259). serde skips the fields custody
    // does not read without looking at their bytes, so this is checked first: otherwise a
    // report kept as sent could hold bytes no other JSON reader accepts.
    if let Err(e) = std::str::from_utf8(bytes) {
        let bad = e.valid_up_to();
        let line = bytes[..bad].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(EvidenceError::malformed(
            format,
            crate::Location::Input,
            format!(
                "byte {} is not UTF-8 (0x{:02x}, on line {line}; bytes count from 0): a JSON report must be UTF-8 throughout",
                bad + if bom { 3 } else { 0 },
                bytes[bad]
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if let Ok(value) = T::deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let (path, message) = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => match de.end() {
            Ok(()) => {
                return Err(EvidenceError::at_path(
                    format,
                    "$",
                    "the document could not be read",
                ));
            }
            Err(e) => (
                "$".to_owned(),
                format!("content after the document ends: {e}"),
            ),
        },
        Err(e) => (json_path(e.path()), describe(e.inner())),
    };
    Err(EvidenceError::at_path(format, path, message))
}

/// serde_json's message, with a hint when the input simply stopped.
fn describe(e: &serde_json::Error) -> String {
    if e.is_eof() {
        format!("{e} (the file is truncated?)")
    } else {
        e.to_string()
    }
}

/// A serde path in normalised JSONPath form: `$.runs[0]['bom-ref']`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::from("$");
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => push_key(&mut out, key),
            Segment::Unknown => out.push_str("[?]"),
        }
    }
    out
}

/// Appends `.key` when the key is a plain name, else `['key']` (quotes escaped).
pub(crate) fn push_key(out: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        out.push('.');
        out.push_str(key);
    } else {
        out.push_str("['");
        out.push_str(&key.replace('\\', "\\\\").replace('\'', "\\'"));
        out.push_str("']");
    }
}

/// A JSON array of at most [`MAX_ITEMS`] elements. Use with
/// `#[serde(deserialize_with = "json::bounded")]`: the count is enforced while reading,
/// so a hostile array never grows a vector past the bound, and the error names the array.
pub(crate) fn bounded<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            // The size hint is the reader's guess; never allocate more than a little from it.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = seq.next_element()? {
                if out.len() == MAX_ITEMS {
                    return Err(serde::de::Error::custom(format_args!(
                        "more than {MAX_ITEMS} items: custody reads at most that many"
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    de.deserialize_seq(Bounded(PhantomData))
}

/// Like [`bounded`], for an array that may be `null` or absent (pair it with
/// `#[serde(default)]`).
pub(crate) fn bounded_or_null<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(bounded_option(de)?.unwrap_or_default())
}

/// A JSON number that is a score out of 10 (CVSS), kept as tenths so that nothing
/// recorded is a float. Accepts a number or a numeric string (OSV writes "7.5").
pub(crate) fn parse_score_tenths(text: &str) -> Option<u16> {
    let value: f64 = text.trim().parse().ok()?;
    score_tenths(value)
}

/// A float score out of 10 as tenths, refusing anything outside 0..=10 or not finite.
pub(crate) fn score_tenths(value: f64) -> Option<u16> {
    if !(0.0..=10.0).contains(&value) {
        return None;
    }
    // In range, so the cast cannot truncate: at most 100.
    Some((value * 10.0).round() as u16)
}

/// Like [`bounded`], keeping the difference between an absent or `null` array (`None`,
/// with `#[serde(default)]`) and an empty one.
pub(crate) fn bounded_option<'de, D, T>(de: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(transparent, bound(deserialize = "T: Deserialize<'de>"))]
    struct Inner<T>(#[serde(deserialize_with = "bounded")] Vec<T>);
    Ok(Option::<Inner<T>>::deserialize(de)?.map(|i| i.0))
}
