//! The domain vocabulary of custody.
//!
//! Every noun that crosses a boundary (a CLI argument, a JSON body, a database row)
//! is parsed into one of these types exactly once; code that holds a [`Digest`] or a
//! [`Timestamp`] never re-checks it. Constructors reject bad input with an error that
//! names what is wrong.
//!
//! This crate does no I/O and never reads the clock: a time is always passed in.
//!
//! ```
//! use custody_model::{Digest, DigestAlgorithm, Timestamp};
//!
//! let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
//!     .parse()
//!     .unwrap();
//! assert_eq!(d.algorithm(), DigestAlgorithm::Sha256);
//! assert!("sha256:E3B0".parse::<Digest>().is_err()); // uppercase and short: rejected
//!
//! let t: Timestamp = "2026-11-27T15:51:34Z".parse().unwrap();
//! assert_eq!(t.to_string(), "2026-11-27T15:51:34Z");
//! assert!("2026-11-27T15:51:34+01:00".parse::<Timestamp>().is_err()); // UTC `Z` only
//! ```

mod canonical;
mod digest;
mod event;
mod promotion;
mod timestamp;

pub use canonical::{CanonicalJson, CanonicalJsonError};
pub use digest::{Digest, DigestAlgorithm, DigestError};
pub use event::{Authentication, BuildName, EventHeader, KeyName};
pub use promotion::{NameError, Principal, PromotionStatus, ReleaseRef, Risk, Verdict};
pub use timestamp::{Timestamp, TimestampError};
