//! What can go wrong reading a report, and where in it.

use crate::Format;
use std::fmt;

/// Where in a report a problem is: a line of an XML file, or a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The whole input (its size, its kind), not one place in it.
    Input,
    /// A 1-based line of an XML document.
    Line(u64),
    /// A JSON path in normalised form: `$`, `$.runs[0].results[3]`, `$['bom-ref']`.
    JsonPath(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Input => f.write_str("input"),
            Location::Line(n) => write!(f, "line {n}"),
            Location::JsonPath(p) => f.write_str(p),
        }
    }
}

/// A report that could not be read. Every variant but [`EvidenceError::Read`] is the
/// fault of whoever supplied the report: it is not of the named format, or is damaged.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The input is bigger than [`crate::MAX_INPUT_BYTES`]; nothing of it was parsed.
    #[error("{format}: input: {size} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The format it was read as.
        format: Format,
        /// Its size, or a lower bound when read from a stream (the limit + 1).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The input is not a well-formed report of the format: the location says where.
    #[error("{format}: {location}: {message}")]
    Malformed {
        /// The format it was read as.
        format: Format,
        /// Where the problem is.
        location: Location,
        /// What is wrong, for a person.
        message: String,
    },
    /// Reading the input from the caller's reader failed (not the report's fault).
    #[error("{format}: reading the input failed: {source}")]
    Read {
        /// The format it was read as.
        format: Format,
        /// The reader's error.
        #[source]
        source: std::io::Error,
    },
}

impl EvidenceError {
    /// Where the problem is, when it is in the report.
    pub fn location(&self) -> Option<&Location> {
        match self {
            EvidenceError::Malformed { location, .. } => Some(location),
            EvidenceError::TooLarge { .. } => Some(&Location::Input),
            EvidenceError::Read { .. } => None,
        }
    }

    /// Whether the report itself is at fault (bad or oversized input), as opposed to the
    /// reader it came through.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, EvidenceError::Read { .. })
    }

    pub(crate) fn malformed(
        format: Format,
        location: Location,
        message: impl Into<String>,
    ) -> Self {
        EvidenceError::Malformed {
            format,
            location,
            message: message.into(),
        }
    }

    pub(crate) fn at_path(
        format: Format,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::malformed(format, Location::JsonPath(path.into()), message)
    }
}
