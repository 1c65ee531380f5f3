//! RFC 3339 UTC timestamps, the only time format custody writes.
//!
//! in-toto requires timestamps in UTC with the `Z` suffix; custody also reads only that
//! form, so two spellings of one instant never produce two different signed documents.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a timestamp string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not RFC 3339 at all.
    #[error("timestamp {input:?} is not RFC 3339 (expected e.g. 2026-01-31T12:00:00Z): {reason}")]
    NotRfc3339 {
        /// The rejected text.
        input: String,
        /// What the parser said.
        reason: String,
    },
    /// RFC 3339 but with an offset instead of `Z`.
    #[error("timestamp {0:?} must be in UTC with a `Z` suffix")]
    NotUtc(String),
}

/// An instant, written as RFC 3339 in UTC with a `Z` suffix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Wraps an instant, converting it to UTC.
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        Timestamp(t.to_offset(time::UtcOffset::UTC))
    }

    /// The instant `seconds` after the Unix epoch.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimestampError> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(Timestamp)
            .map_err(|e| TimestampError::NotRfc3339 {
                input: seconds.to_string(),
                reason: e.to_string(),
            })
    }

    /// The instant `seconds` later, or the latest instant RFC 3339 can write
    /// (9999-12-31T23:59:59Z) if that is past it: a bound, never a wrap-around.
    pub fn plus_seconds(self, seconds: u64) -> Timestamp {
        let latest = time::macros::datetime!(9999-12-31 23:59:59 UTC);
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        let later = self.0.saturating_add(time::Duration::seconds(seconds));
        Timestamp(later.min(latest))
    }

    /// The instant without its fraction of a second: how times are shown to people, so
    /// that columns line up (records keep the full precision).
    pub fn to_second(self) -> Timestamp {
        Timestamp(self.0.replace_nanosecond(0).unwrap_or(self.0))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The instant as a `time` value.
    pub fn as_datetime(self) -> OffsetDateTime {
        self.0
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| TimestampError::NotRfc3339 {
            input: s.to_owned(),
            reason: e.to_string(),
        })?;
        if !s.ends_with('Z') {
            return Err(TimestampError::NotUtc(s.to_owned()));
        }
        Ok(Timestamp(t))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rfc3339 formatting of a UTC value always ends in `Z`; fractional seconds are
        // written only when present.
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn adding_seconds_saturates_at_the_last_writable_instant() {
        let t: super::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        assert_eq!(t.plus_seconds(3600).to_string(), "2026-11-01T01:00:00Z");
        assert_eq!(t.plus_seconds(u64::MAX).to_string(), "9999-12-31T23:59:59Z");
        assert!(t.plus_seconds(u64::MAX) > t, "never wraps into the past");
    }

    use super::*;

    #[test]
    fn accepts_utc_z_with_and_without_fraction() {
        for s in ["2026-11-27T15:51:34Z", "2026-11-27T15:51:34.25Z"] {
            let t: Timestamp = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn rejects_offsets_and_garbage() {
        let offset = "2026-11-27T15:51:34+00:00"
            .parse::<Timestamp>()
            .unwrap_err();
        assert!(matches!(offset, TimestampError::NotUtc(_)), "{offset}");
        for bad in ["2026-11-27", "2026-13-01T00:00:00Z", "yesterday", ""] {
            let err = bad.parse::<Timestamp>().unwrap_err();
            assert!(
                matches!(err, TimestampError::NotRfc3339 { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn from_datetime_normalises_to_utc() {
        let t = OffsetDateTime::parse("2026-11-27T16:51:34+01:00", &Rfc3339).unwrap();
        assert_eq!(
            Timestamp::from_datetime(t).to_string(),
            "2026-11-27T15:51:34Z"
        );
    }
}
