//! Source repository URLs in normal form, and the patterns a builder's `source_repos` are
//! written in.
//!
//! A repository URL is `scheme://host[:port]/segment/…/segment` in printable ASCII. It is
//! compared normalised: the scheme and host lowercased, a port that is the scheme's default
//! dropped, and percent-escapes of letters, digits, `-`, `_` and `~` decoded (other escapes
//! kept, with uppercase hex). Anything that could name a different place than it seems to is
//! refused rather than normalised: `.` and `..` segments, empty segments (`//`, a trailing
//! `/`), backslashes, percent-encoded `.`, `/`, `\`, `%` or control characters, userinfo
//! (`user@host`), a query or a fragment, spaces and non-ASCII characters. Paths stay
//! case-sensitive.
//!
//! A pattern is written the same way, except that a path segment may be `*` (exactly one
//! segment) and the last one may be `**` (one or more segments):
//!
//! ```text
//! https://git.example.com/acme/shop   that repository only
//! https://git.example.com/acme/*      any repository directly under acme
//! https://git.example.com/acme/**     any repository at any depth under acme
//! ```
//!
//! The host is always written out in full (no `*`), so `git.example.com.evil.org` or
//! `git.example.com@evil.org` never match a pattern for `git.example.com`.
//!
//! Written here rather than with the `url` crate: WHATWG URL parsing resolves `..` and
//! `%2e%2e`, drops tabs and newlines and reads `\` as `/`, silently — the very spellings this
//! module must refuse, not normalise away — and repository URLs need only this strict subset.

use std::fmt;

/// Why a text is not a repository URL (or pattern) custody compares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoUrlError {
    /// Outside printable ASCII.
    #[error("contains a space, a control or a non-ASCII character")]
    NotPrintable,
    /// A `\`.
    #[error("contains a backslash")]
    Backslash,
    /// A `?` or `#`.
    #[error("has a query or fragment (`?` or `#`); a repository URL has neither")]
    QueryOrFragment,
    /// No `scheme://`.
    #[error("does not start with a scheme like https://")]
    NoScheme,
    /// `user@` before the host.
    #[error("has userinfo (`…@`) before its host; name the host alone")]
    Userinfo,
    /// The host is not a DNS name or IP literal.
    #[error("has no valid host: {0}")]
    Host(&'static str),
    /// The port is not a number from 1 to 65535.
    #[error("has an invalid port")]
    Port,
    /// Nothing after the host.
    #[error("has no path: name a repository, like https://host/owner/repo")]
    NoPath,
    /// `//` or a trailing `/`.
    #[error("has an empty path segment (`//` or a trailing `/`)")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("has a `.` or `..` path segment")]
    DotSegment,
    /// `%2e`, `%2f`, `%5c`, `%25` or an encoded control character.
    #[error("has a percent-encoded `.`, `/`, `\\`, `%` or control character")]
    EncodedForbidden,
    /// `%` without two hex digits.
    #[error("has a `%` that is not followed by two hex digits")]
    BadEscape,
    /// `*` as part of a segment.
    #[error(
        "uses `*` inside a path segment; `*` stands for a whole path segment (and `**`, last, for any depth)"
    )]
    PartialWildcard,
    /// `**` before the last segment.
    #[error("uses `**` before the end; `**` may appear only as the last segment")]
    DeepNotLast,
}

/// A repository URL in normal form (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// The whole normal form, `scheme://authority/segment/…`, in one allocation.
    text: String,
    /// Where the path (its first `/`) starts in `text`.
    path_start: usize,
}

/// One path segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`, last: one or more segments.
    AnyDepth,
}

/// A pattern of repository URLs (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPattern {
    /// As written.
    text: String,
    /// `scheme://authority`, normalised.
    origin: String,
    parts: Vec<Part>,
}

impl RepoUrl {
    /// Parses and normalises a repository URL, refusing every ambiguous spelling.
    pub fn parse(text: &str) -> Result<RepoUrl, RepoUrlError> {
        let mut normal = String::with_capacity(text.len());
        let segments = origin(text, &mut normal)?;
        let path_start = normal.len();
        for raw in segments {
            normal.push('/');
            segment(raw, false, &mut normal)?;
        }
        Ok(RepoUrl {
            text: normal,
            path_start,
        })
    }

    /// Its path segments, normalised.
    fn segments(&self) -> std::str::Split<'_, char> {
        self.text[self.path_start + 1..].split('/')
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl RepoPattern {
    /// Parses a pattern: a repository URL whose path segments may be `*`, and whose last
    /// one may be `**`.
    pub fn parse(text: &str) -> Result<RepoPattern, RepoUrlError> {
        let mut normal = String::new();
        let segments: Vec<&str> = origin(text, &mut normal)?.collect();
        let mut parts = Vec::with_capacity(segments.len());
        for (i, s) in segments.iter().enumerate() {
            parts.push(match *s {
                "*" => Part::One,
                "**" if i + 1 == segments.len() => Part::AnyDepth,
                "**" => return Err(RepoUrlError::DeepNotLast),
                s => {
                    let mut literal = String::new();
                    segment(s, true, &mut literal)?;
                    Part::Literal(literal)
                }
            });
        }
        Ok(RepoPattern {
            text: text.to_owned(),
            origin: normal,
            parts,
        })
    }

    /// Whether `url` is one of the repositories this pattern names.
    pub fn matches(&self, url: &RepoUrl) -> bool {
        if url.text[..url.path_start] != self.origin {
            return false;
        }
        let mut segments = url.segments();
        for part in &self.parts {
            match part {
                Part::AnyDepth => return segments.next().is_some(),
                Part::One => {
                    if segments.next().is_none() {
                        return false;
                    }
                }
                Part::Literal(l) => {
                    if segments.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        segments.next().is_none()
    }
}

impl fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Writes `scheme://authority`, normalised, to `out`; returns the raw path segments.
fn origin<'t>(text: &'t str, out: &mut String) -> Result<std::str::Split<'t, char>, RepoUrlError> {
    // One pass for the characters no repository URL has.
    for b in text.bytes() {
        match b {
            b'\\' => return Err(RepoUrlError::Backslash),
            b'?' | b'#' => return Err(RepoUrlError::QueryOrFragment),
            0x21..=0x7e => {}
            _ => return Err(RepoUrlError::NotPrintable),
        }
    }
    // The scheme has no `:`, so the first one must begin `://`.
    let colon = text.find(':').ok_or(RepoUrlError::NoScheme)?;
    let (scheme, rest) = (&text[..colon], &text[colon..]);
    let rest = rest.strip_prefix("://").ok_or(RepoUrlError::NoScheme)?;
    let mut chars = scheme.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(RepoUrlError::NoScheme);
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(RepoUrlError::Userinfo);
    }
    push_lowercase(out, scheme);
    out.push_str("://");
    normal_authority(scheme, authority, out)?;
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        return Err(RepoUrlError::NoPath);
    }
    Ok(path.split('/'))
}

fn push_lowercase(out: &mut String, ascii: &str) {
    let start = out.len();
    out.push_str(ascii);
    out[start..].make_ascii_lowercase();
}

/// Writes `host[:port]` to `out`, lowercased, without the scheme's default port.
fn normal_authority(scheme: &str, authority: &str, out: &mut String) -> Result<(), RepoUrlError> {
    let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
        // An IPv6 literal: hex digits, `:` and `.` (an embedded IPv4) between brackets.
        let (inner, after) = literal
            .split_once(']')
            .ok_or(RepoUrlError::Host("an unclosed `[`"))?;
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(RepoUrlError::Host("an IPv6 literal is hex digits and `:`"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(RepoUrlError::Port)?),
        };
        (&authority[..inner.len() + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.contains('*') {
        return Err(RepoUrlError::Host(
            "a host is written out in full, without `*`",
        ));
    }
    if !host.starts_with('[')
        && (host.is_empty()
            || host.split('.').any(|label| {
                label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
    {
        return Err(RepoUrlError::Host(
            "a host is letters, digits and `-` in non-empty labels separated by `.`",
        ));
    }
    push_lowercase(out, host);
    if let Some(port) = port {
        let number: u16 = if port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) {
            port.parse().map_err(|_| RepoUrlError::Port)?
        } else {
            return Err(RepoUrlError::Port);
        };
        let default = [("http", 80), ("https", 443), ("ssh", 22), ("git", 9418)]
            .into_iter()
            .find(|(name, _)| scheme.eq_ignore_ascii_case(name))
            .map(|(_, port)| port);
        if number == 0 {
            return Err(RepoUrlError::Port);
        }
        if default != Some(number) {
            out.push(':');
            out.push_str(&number.to_string());
        }
    }
    Ok(())
}

/// Writes one path segment to `out`, percent-escapes normalised; `*` refused in a pattern
/// (where a whole-segment `*` never reaches here).
fn segment(raw: &str, pattern: bool, out: &mut String) -> Result<(), RepoUrlError> {
    match raw {
        "" => return Err(RepoUrlError::EmptySegment),
        "." | ".." => return Err(RepoUrlError::DotSegment),
        _ => {}
    }
    if pattern && raw.contains('*') {
        return Err(RepoUrlError::PartialWildcard);
    }
    if !raw.contains('%') {
        out.push_str(raw);
        return Ok(());
    }
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let hex = raw.get(i + 1..i + 3).ok_or(RepoUrlError::BadEscape)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoUrlError::BadEscape);
        }
        let byte = u8::from_str_radix(hex, 16).map_err(|_| RepoUrlError::BadEscape)?;
        match byte {
            b'.' | b'/' | b'\\' | b'%' | 0..=0x1f | 0x7f => {
                return Err(RepoUrlError::EncodedForbidden);
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') => {
                out.push(char::from(b));
            }
            _ => {
                out.push('%');
                out.extend(hex.chars().map(|c| c.to_ascii_uppercase()));
            }
        }
        i += 3;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_print_in_normal_form() {
        for (raw, normal) in [
            (
                "HTTPS://Git.Example.COM:443/acme/shop",
                "https://git.example.com/acme/shop",
            ),
            (
                "https://git.example.com:8443/a/%73h%6fp",
                "https://git.example.com:8443/a/shop",
            ),
            (
                "https://h.example/a/b%20c%3a",
                "https://h.example/a/b%20c%3A",
            ),
            ("ssh://git.example.com:22/a/b", "ssh://git.example.com/a/b"),
            ("https://[::1]:443/a/b", "https://[::1]/a/b"),
        ] {
            assert_eq!(RepoUrl::parse(raw).unwrap().to_string(), normal, "{raw}");
        }
    }

    #[test]
    fn ports_and_escapes_are_checked() {
        for bad in [
            "https://h.example:0/a",
            "https://h.example:65536/a",
            "https://h.example:/a",
            "https://h.example:+1/a",
            "https://h.example/a%2",
            "https://h.example/a%zz",
            "https://h.example/a%7F",
            "https://h.example/%2e",
            "https://[::1/a",
            "https://[zz]/a",
            "https://h.example//",
            "https://h.example/",
            "https://h.example",
            "https://",
            "://h.example/a",
            "1https://h.example/a",
        ] {
            assert!(RepoUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
