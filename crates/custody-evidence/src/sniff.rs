//! Guessing a report's format from its first bytes and top-level keys. The caller
//! normally names the format; this is for tools that accept "any report".

use crate::Format;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The format `bytes` most likely are, or `None`. XML whose root is `<testsuites>` or
/// `<testsuite>` is JUnit; JSON is told apart by its top-level keys (`bomFormat`,
/// `spdxVersion`, `runs` + `version`, `SchemaVersion` + `Results`, `matches`, `results`).
/// A guess only: [`crate::parse`] still checks the whole document.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF)?;
    match bytes[start] {
        b'<' => junit_root(&bytes[start..]).then_some(Format::Junit),
        b'{' => json_kind(&bytes[start..]),
        _ => None,
    }
}

/// Whether the first element is `<testsuites>` or `<testsuite>`.
fn junit_root(bytes: &[u8]) -> bool {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                return matches!(e.local_name().as_ref(), b"testsuites" | b"testsuite");
            }
            Ok(Event::Eof) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// The top-level keys that tell the JSON formats apart; every value is skipped unread.
#[derive(Deserialize)]
struct Keys {
    #[serde(rename = "bomFormat")]
    bom_format: Option<IgnoredAny>,
    #[serde(rename = "spdxVersion")]
    spdx_version: Option<IgnoredAny>,
    runs: Option<IgnoredAny>,
    version: Option<IgnoredAny>,
    #[serde(rename = "SchemaVersion")]
    schema_version: Option<IgnoredAny>,
    matches: Option<IgnoredAny>,
    results: Option<IgnoredAny>,
}

fn json_kind(bytes: &[u8]) -> Option<Format> {
    let k: Keys = serde_json::from_slice(bytes).ok()?;
    Some(if k.bom_format.is_some() {
        Format::Cyclonedx
    } else if k.spdx_version.is_some() {
        Format::Spdx
    } else if k.runs.is_some() && k.version.is_some() {
        Format::Sarif
    } else if k.schema_version.is_some() {
        Format::Trivy
    } else if k.matches.is_some() {
        Format::Grype
    } else if k.results.is_some() {
        Format::Osv
    } else {
        return None;
    })
}
