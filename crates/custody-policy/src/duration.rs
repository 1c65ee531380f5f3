//! Durations as people write them in policy: `90s`, `30m`, `24h`, `7d`.

use std::fmt;

/// A span of time in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub u64);

impl Span {
    /// Parses `<n><unit>` with unit `s`, `m`, `h` or `d`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let (digits, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 24h or 7d"))?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "{text:?} is not a duration like 90s, 30m, 24h or 7d"
                ));
            }
        };
        n.checked_mul(scale)
            .map(Span)
            .ok_or_else(|| format!("{text:?} is too long"))
    }

    /// Seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s % 86_400 == 0 && s > 0 {
            write!(f, "{}d", s / 86_400)
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
        for bad in ["", "h", "24", "1w", "-1h", "1.5h"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }
}
