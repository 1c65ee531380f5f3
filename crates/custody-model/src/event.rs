//! What every ledger event says about itself, whatever its kind: the part the store may read.
//!
//! A ledger leaf is the RFC 8785 JSON of one event: `{"type", "at", "actor", …}`. The
//! app defines each kind's fields (`custody_app::events`); the store indexes every leaf by
//! the names its [`EventHeader`] carries, without knowing the kinds. Keeping the header
//! here is what lets the store read it legitimately (the store sits below the app).

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// How the actor of an event proved who they are. Recorded with every event written
/// since custody records it; older events have none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Authentication {
    /// An API token (`cst_<id>_…`): its id, never its secret.
    Token {
        /// The token's id.
        token: String,
        /// Who created the token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_by: Option<String>,
        /// Whether its holder created it for themselves while signed in with a credential
        /// of their own (see [`Authentication::personal`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        personal: bool,
    },
    /// An OIDC ID token (a CI job's, or a person's dashboard sign-in).
    Oidc {
        /// The token's issuer (`iss`).
        issuer: String,
        /// The token's subject (`sub`).
        subject: String,
    },
    /// A signature by a personal key the person enrolled.
    PersonalKey {
        /// The key's id (lowercase hex SHA-256 of its SPKI DER).
        key: String,
        /// The credential the signed statement came with (the signer's own token or
        /// sign-in, or the data directory's operator relaying it); absent in events
        /// written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_with: Option<Box<Authentication>>,
    },
    /// Someone with the data directory on this machine, acting as its operator.
    Local {
        /// The operating-system user who ran the command.
        user: String,
    },
    /// custody itself (alerting, the ledger's own checks).
    System,
}

impl Authentication {
    /// Whether it is a credential its person alone controls, so that an approval made with
    /// it is theirs: an OIDC identity, a personal key they enrolled, the operating-system
    /// account of the machine's operator, or a token they created for themselves while
    /// authenticated by one of those. A token someone else created for them is not (its
    /// creator saw its secret), nor is custody itself.
    pub fn personal(&self) -> bool {
        match self {
            Authentication::Token { personal, .. } => *personal,
            Authentication::Oidc { .. }
            | Authentication::PersonalKey { .. }
            | Authentication::Local { .. } => true,
            Authentication::System => false,
        }
    }

    /// Who else made this credential for `holder`, when someone did: a token another
    /// principal (an admin) created, whose secret they saw. What it does is recorded as
    /// `holder`'s, and the record says whose hand it could also have been.
    pub fn made_by_another<'a>(&'a self, holder: &str) -> Option<&'a str> {
        match self {
            Authentication::Token {
                created_by: Some(by),
                personal: false,
                ..
            } if by != holder => Some(by),
            _ => None,
        }
    }

    /// A short description for people: `token tok123`, `oidc https://issuer sub`, …
    pub fn describe(&self) -> String {
        match self {
            Authentication::Token { token, .. } => format!("token {token}"),
            Authentication::Oidc { issuer, subject } => format!("OIDC {issuer} {subject}"),
            Authentication::PersonalKey { key, sent_with } => {
                let key = format!("personal key {}", key.get(..16).unwrap_or(key));
                match sent_with {
                    Some(with) => format!("{key}, sent with {}", with.describe()),
                    None => key,
                }
            }
            Authentication::Local { user } => format!("local operator {user}"),
            Authentication::System => "custody".into(),
        }
    }
}

/// The fields every event may carry that name what it is about: its kind, time, actor,
/// environment, artifacts and build. Everything else in a leaf is skipped unread.
///
/// Reading a header never fails on an unknown kind; it fails only if a field it knows has
/// the wrong shape (the store then indexes nothing for that leaf).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventHeader {
    /// The event's kind, e.g. `promotion.requested`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub at: Timestamp,
    /// Who acted (empty if the leaf names nobody; custody always names someone).
    #[serde(default)]
    pub actor: String,
    /// How the actor authenticated, when recorded.
    #[serde(default)]
    pub auth: Option<Authentication>,
    /// The environment it is about.
    #[serde(default)]
    pub environment: Option<String>,
    /// The artifact digests it names (as written: `sha256:…`).
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// The build it records.
    #[serde(default)]
    pub build: Option<BuildName>,
    /// The keys whose signatures it recorded as verified (what `custody key impact`
    /// finds by).
    #[serde(default)]
    pub keys: Vec<KeyName>,
}

/// The part of a key use that names the key: its key id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyName {
    /// The key id (lowercase hex SHA-256 of the SPKI DER).
    pub key: String,
}

/// The part of a build that names it: the CI run's invocation id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BuildName {
    /// The build's invocation id, if declared.
    #[serde(default)]
    pub invocation_id: Option<String>,
}

impl EventHeader {
    /// The header of a leaf (an event's JSON).
    pub fn read(leaf: &[u8]) -> Result<EventHeader, serde_json::Error> {
        serde_json::from_slice(leaf)
    }

    /// The build's invocation id, if the event records a build that declares one.
    pub fn invocation_id(&self) -> Option<&str> {
        self.build.as_ref()?.invocation_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_someone_else_made_names_its_maker() {
        let token = |by: Option<&str>, personal| Authentication::Token {
            token: "tok1".into(),
            created_by: by.map(str::to_owned),
            personal,
        };
        assert_eq!(
            token(Some("local:root"), false).made_by_another("olga"),
            Some("local:root")
        );
        assert_eq!(token(Some("olga"), false).made_by_another("olga"), None);
        assert_eq!(token(Some("olga"), true).made_by_another("olga"), None);
        assert_eq!(token(None, false).made_by_another("olga"), None);
        let local = Authentication::Local {
            user: "root".into(),
        };
        assert_eq!(local.made_by_another("olga"), None);
    }

    #[test]
    fn a_header_reads_the_names_and_skips_the_rest() {
        let leaf = br#"{"type":"artifact.registered","at":"2026-11-01T00:00:00Z","actor":"ci-bot",
            "artifacts":["sha256:00"],"build":{"invocation_id":"run-7","parameters":{}},"provenance":null}"#;
        let h = EventHeader::read(leaf).unwrap();
        assert_eq!(h.kind, "artifact.registered");
        assert_eq!(h.actor, "ci-bot");
        assert_eq!(h.artifacts, vec!["sha256:00"]);
        assert_eq!(h.invocation_id(), Some("run-7"));
        assert_eq!(h.environment, None);
        assert_eq!(h.auth, None);
        assert!(h.keys.is_empty());
        let signed = EventHeader::read(
            br#"{"type":"release.created","at":"2026-11-01T00:00:00Z","keys":[{"key":"ab","algorithm":"ed25519"}]}"#,
        )
        .unwrap();
        assert_eq!(signed.keys, vec![KeyName { key: "ab".into() }]);
    }

    #[test]
    fn a_header_of_the_wrong_shape_is_an_error_not_a_guess() {
        assert!(
            EventHeader::read(br#"{"type":"x","at":"2026-11-01T00:00:00Z","actor":7}"#).is_err()
        );
        assert!(
            EventHeader::read(br#"{"type":"x","actor":"a"}"#).is_err(),
            "no time"
        );
        let nobody = EventHeader::read(br#"{"type":"x","at":"2026-11-01T00:00:00Z"}"#).unwrap();
        assert_eq!(nobody.actor, "");
        assert!(EventHeader::read(b"[]").is_err());
    }

    #[test]
    fn authentication_is_tagged_by_method() {
        let a = Authentication::Token {
            token: "tok1".into(),
            created_by: None,
            personal: false,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"method":"token","token":"tok1"}"#
        );
        assert!(!a.personal(), "a token someone else made is not personal");
        let own: Authentication = serde_json::from_str(
            r#"{"method":"token","token":"tok2","created_by":"bob","personal":true}"#,
        )
        .unwrap();
        assert!(own.personal());
        assert!(!Authentication::System.personal());
        let back: Authentication =
            serde_json::from_str(r#"{"method":"personal-key","key":"ab"}"#).unwrap();
        assert_eq!(
            back,
            Authentication::PersonalKey {
                key: "ab".into(),
                sent_with: None
            }
        );
        let relayed: Authentication = serde_json::from_str(
            r#"{"method":"personal-key","key":"ab","sent_with":{"method":"local","user":"olga"}}"#,
        )
        .unwrap();
        assert_eq!(
            relayed.describe(),
            "personal key ab, sent with local operator olga"
        );
        assert!(serde_json::from_str::<Authentication>(r#"{"method":"magic"}"#).is_err());
    }
}
