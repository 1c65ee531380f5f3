//! The vocabulary of promotions: who acts, which release, what a reviewer decided.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A principal with spaces, control characters, or of the wrong length.
    #[error("principal {0:?} must be 1 to 256 characters without spaces")]
    Principal(String),
    /// Not `NAME@VERSION`.
    #[error("{0:?} is not a release: write NAME@VERSION, e.g. shop@1.4.2")]
    Release(String),
}

/// A person's or a service's identity (`alice`, `ci:acme/shop`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Principal(String);

impl Principal {
    /// The identity as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Principal {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, NameError> {
        if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(NameError::Principal(s));
        }
        Ok(Principal(s))
    }
}

impl From<Principal> for String {
    fn from(p: Principal) -> String {
        p.0
    }
}

impl FromStr for Principal {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        Principal::try_from(s.to_owned())
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A release named `NAME@VERSION` (the naming rules themselves are the policy's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseRef {
    /// The release name.
    pub name: String,
    /// The version.
    pub version: String,
}

impl FromStr for ReleaseRef {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        match s.rsplit_once('@') {
            Some((name, version)) if !name.is_empty() && !version.is_empty() => Ok(ReleaseRef {
                name: name.into(),
                version: version.into(),
            }),
            _ => Err(NameError::Release(s.into())),
        }
    }
}

impl TryFrom<String> for ReleaseRef {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<ReleaseRef> for String {
    fn from(r: ReleaseRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for ReleaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// Where a promotion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromotionStatus {
    /// Some gate does not pass yet.
    Pending,
    /// Every gate passed: the release is certified in the environment.
    Certified,
    /// An approver rejected it.
    Rejected,
}

impl fmt::Display for PromotionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PromotionStatus::Pending => "pending",
            PromotionStatus::Certified => "certified",
            PromotionStatus::Rejected => "rejected",
        })
    }
}

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
}

/// `approve` or `reject`: as it is serialised, and as the review routes name it.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        })
    }
}

/// The risk posture a reviewer states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// `low`, `medium` or `high`, as it is serialised.
impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_and_release_refs_are_parsed_once() {
        assert!("ci:acme/shop".parse::<Principal>().is_ok());
        let long = "x".repeat(257);
        for bad in ["", "two words", "tab\there", "new\nline", long.as_str()] {
            assert!(bad.parse::<Principal>().is_err(), "{bad:?}");
        }
        let r: ReleaseRef = "shop@1.4.2".parse().unwrap();
        assert_eq!((r.name.as_str(), r.version.as_str()), ("shop", "1.4.2"));
        assert_eq!(r.to_string(), "shop@1.4.2");
        for bad in ["shop", "@1.0", "shop@", ""] {
            let err = bad.parse::<ReleaseRef>().unwrap_err();
            assert!(err.to_string().contains("NAME@VERSION"), "{err}");
        }
        assert_eq!(PromotionStatus::Certified.to_string(), "certified");
    }
}
