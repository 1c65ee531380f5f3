//! Durations as people write them in policy: `90s`, `30m`, `24h`, `7d`.
//!
//! Invariant: a [`Span`] is at most [`Span::MAX`] (ten years), checked where it is parsed, so
//! its seconds always fit an `i64` and adding one to a time can only saturate, never wrap.
//! Every duration custody reads goes through [`Span::parse`]: a policy's soak, evidence age,
//! approval expiry, and the service's token lifetimes and alert SLAs.

use std::fmt;

/// A span of time in whole seconds, at most [`Span::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(u64);

const DAY: u64 = 86_400;

impl Span {
    /// The longest span custody accepts: 3650 days, about ten years. Longer is a mistake (or
    /// an attempt to wrap an `i64`), never a policy.
    pub const MAX: Span = Span(3650 * DAY);

    /// One day.
    pub const DAY: Span = Span(DAY);

    /// A span of `seconds`, if it is at most [`Span::MAX`].
    pub const fn from_seconds(seconds: u64) -> Option<Span> {
        if seconds <= Span::MAX.0 {
            Some(Span(seconds))
        } else {
            None
        }
    }

    /// Parses `<n><unit>` with unit `s`, `m`, `h` or `d`, refusing anything longer than
    /// [`Span::MAX`].
    pub fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let malformed = || format!("{text:?} is not a duration like 90s, 30m, 24h or 7d");
        let (digits, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => DAY,
            _ => return Err(malformed()),
        };
        if digits.is_empty() {
            return Err(malformed());
        }
        // All digits: a parse failure is an overflow of u64, which is too long as well.
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .and_then(Span::from_seconds)
            .ok_or_else(|| {
                format!(
                    "{text:?} is longer than {}, the longest duration custody accepts (about ten years)",
                    Span::MAX
                )
            })
    }

    /// Seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// Seconds as an `i64`, the type of Unix times (exact: a span is at most ten years).
    pub fn seconds_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// `t` plus this span, saturating at the ends of time.
    pub fn after(self, t: i64) -> i64 {
        t.saturating_add(self.seconds_i64())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s % DAY == 0 && s > 0 {
            write!(f, "{}d", s / DAY)
        } else if s % 3600 == 0 && s > 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 && s > 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_the_rest() {
        assert_eq!(Span::parse("90s"), Ok(Span(90)));
        assert_eq!(Span::parse("24h"), Ok(Span(86_400)));
        assert_eq!(Span::parse("7d").unwrap().to_string(), "7d");
        for bad in ["", "h", "24", "1w", "-1h", "1.5h", "+1h", " 1 h"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bound_is_checked_after_scaling_and_never_wraps() {
        assert_eq!(Span::parse("3650d"), Ok(Span::MAX));
        assert_eq!(Span::parse("87600h"), Ok(Span::MAX));
        for long in [
            "3651d",
            "87601h",
            "315360001s",
            "9999999999999999999s",
            "18446744073709551615d",
            "99999999999999999999999s",
        ] {
            let e = Span::parse(long).unwrap_err();
            assert!(e.contains("longer than 3650d"), "{long}: {e}");
        }
        assert_eq!(Span::MAX.seconds_i64(), 315_360_000);
        assert_eq!(Span::MAX.after(i64::MAX - 1), i64::MAX);
        assert_eq!(Span::from_seconds(Span::MAX.seconds() + 1), None);
    }

    /// A span is shown in its largest whole unit, and zero as seconds.
    #[test]
    fn a_span_shows_in_its_largest_whole_unit() {
        for (seconds, shown) in [
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m"),
            (90, "90s"),
            (5_400, "90m"),
            (3_600, "1h"),
            (7_200, "2h"),
            (90_000, "25h"),
            (86_400, "1d"),
            (172_800, "2d"),
            (86_460, "1441m"),
        ] {
            assert_eq!(Span(seconds).to_string(), shown, "{seconds}");
        }
    }
}
