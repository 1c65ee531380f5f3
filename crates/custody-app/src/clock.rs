//! The one clock. Use cases never read the time: an [`crate::Actor`] carries it. The
//! callers that stamp actors (the CLI, the server) take it from a [`Clock`], so a test or a
//! backfill sets it (`CUSTODY_NOW` for the CLI; a [`FixedClock`] for a server in a test).
//!
//! This module is the only place in custody that reads the system time (clippy's
//! `disallowed-methods` refuses it elsewhere).

use std::sync::Mutex;

use custody_model::Timestamp;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place custody reads the system time"
    )]
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(time::OffsetDateTime::now_utc())
    }
}

/// A clock that says what it is told (tests, backfills).
#[derive(Debug)]
pub struct FixedClock(Mutex<Timestamp>);

impl FixedClock {
    /// A clock stopped at `at`.
    pub fn at(at: Timestamp) -> FixedClock {
        FixedClock(Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        if let Ok(mut now) = self.0.lock() {
            *now = at;
        }
    }

    /// Moves the clock `seconds` forward.
    pub fn advance(&self, seconds: u64) {
        if let Ok(mut now) = self.0.lock() {
            *now = now.plus_seconds(seconds);
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        match self.0.lock() {
            Ok(now) => *now,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told() {
        let clock = FixedClock::at("2026-11-01T00:00:00Z".parse().unwrap());
        assert_eq!(clock.now().to_string(), "2026-11-01T00:00:00Z");
        clock.advance(90);
        assert_eq!(clock.now().to_string(), "2026-11-01T00:01:30Z");
        clock.set("2027-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(clock.now().to_string(), "2027-01-01T00:00:00Z");
        assert!(SystemClock.now().unix_seconds() > 1_700_000_000);
    }
}
